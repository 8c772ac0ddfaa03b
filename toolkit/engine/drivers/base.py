"""What a component is to the engine: one driver per component, the only place that knows the component.

A driver declares, for its component,
- `plan`: after the catalog's version-path rules passed, the steps that bring it to a version (in order, each with
  the reason it comes when it does and its `phase`), plus its own refusals, warnings and notes;
- `repairs`: what an interrupted run of it may have left behind, undone before anything else moves;
- `gates`: every check that must pass before one of its steps acts (pure, over observed state);
- `done`: whether the state a step promised has been reached (pure);
- `perform`: how a step is carried out, through the target's ports and the executor's `StepContext` (act with
  retries, restart a pod within its budget, wait for a condition on the target's clock);
- `path_rules` / `rollback_rules`: version rules beyond the catalog's generic ones (Kafka's metadata.version,
  Elasticsearch's "no rollback once a newer node joined");
- `observed`: whether its data plane could be observed at all: the engine refuses to plan on what it cannot see;
- optionally `installed(state) -> bool`: whether the component is present, for a component whose members are not
  workloads (Kubernetes itself: its members are nodes); without it, a component is present when a workload of it
  is observed.
The planner and the executor iterate drivers (in the catalog's upgrade order) and contain no component-specific
branch. Adding a component is: a driver, its data-plane port's adapters (real and simulated), a catalog entry, a
chart and a role (see docs/architecture.md).

Shared helpers for drivers live here too: which pods are stale for a version, the apply-spec step of
StatefulSets, and the negative control (restart without gates).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from toolkit.catalog import Catalog
from toolkit.engine.ports import Clock, Target
from toolkit.model import PlatformState, Pod, Step, StepKind, UpgradeSettings, Verdict, Workload


class Halt(Exception):
    """Stop the run here: the verdict says why; nothing after the current step is touched. A driver that prepared
    something for a step (Elasticsearch's allocation setting, a shutdown record) catches it to undo that (see
    `StepContext.cleanup`) and re-raises."""

    def __init__(self, verdict: Verdict, outcome: str = "halted") -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict
        self.outcome = outcome


class Stop(Halt):
    """A request to stop at once (a second Ctrl-C/SIGTERM, `toolkit upgrade abort`), raised where the run waits:
    like any Halt, the step being performed undoes what it prepared and the run ends with the platform safe."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict, outcome="stopped")


@dataclass
class ComponentPlan:
    """A driver's contribution to a plan."""

    steps: list[Step] = field(default_factory=list)
    refusals: list[Verdict] = field(default_factory=list)
    warnings: list[Verdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class StepContext(Protocol):
    """What the executor lends a driver while it performs one step."""

    @property
    def settings(self) -> UpgradeSettings: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def target(self) -> Target: ...

    def observe(self) -> PlatformState: ...

    def act(self, what: str, action: Callable[[], None]) -> None:
        """Carry out an action, retrying ActionError within the action budget; audited and announced."""

    def cleanup(self, what: str, action: Callable[[], None]) -> None:
        """Undo a preparation while the step is halting or stopping: audited, tried `action_retries` + 1 times
        without waiting, never raising (what it could not undo is planned as a repair by the next run)."""

    def restart(self, pod: str) -> None:
        """Restart one pod through the workloads port, within that pod's restart budget (kept with the platform by
        the control port, so a resumed run does not start over; else Halt)."""

    def wait_for(
        self, condition: Callable[[PlatformState], Verdict], confirm: bool = False, retry_members: bool = False
    ) -> None:
        """Observe until `condition` passes (and, with `confirm`, keeps passing for the confirmation window);
        with `retry_members`, members that stay unready past the step timeout (and are not already terminating)
        are restarted again within their budget; otherwise Halt at the step timeout. Raises Stop when the run is
        asked to stop at once."""

    def wait_done(self, confirm: bool, retry_members: bool = False) -> None:
        """wait_for the driver's own `done` of the current step."""

    def poll(self) -> None:
        """Wait one observation interval (or until the target reports a change); raises Stop when the run is asked
        to stop at once."""

    def waited(self, verdict: Verdict, seconds: float) -> None:
        """Account `seconds` spent waiting on `verdict` in the step's record."""

    def note(self, what: str, verdict: Verdict) -> None:
        """Audit and announce something the platform refused while the step acts (an eviction a
        PodDisruptionBudget refused with 429), and that the step waits it out: `verdict` says why."""

    def finish(self, message: str) -> None:
        """The sentence the step's record ends with."""


class ComponentDriver(Protocol):
    name: str

    def plan(
        self, state: PlatformState, version: str, settings: UpgradeSettings, catalog: Catalog
    ) -> ComponentPlan: ...

    def repairs(self, state: PlatformState) -> list[Step]: ...

    def gates(self, state: PlatformState, step: Step, settings: UpgradeSettings) -> list[Verdict]: ...

    def done(self, state: PlatformState, step: Step, settings: UpgradeSettings) -> Verdict: ...

    def perform(self, step: Step, ctx: StepContext) -> None: ...

    def running_versions(self, state: PlatformState) -> set[str]:
        """Versions the component's members run as its data plane reports them (beyond the pods' labels)."""

    def path_rules(self, catalog: Catalog, state: PlatformState, running: list[str], target: str) -> Verdict | None:
        """A refusal of the upgrade path beyond the catalog's generic rules, or None."""

    def rollback_rules(self, catalog: Catalog, state: PlatformState, previous: str) -> Verdict:
        """May the component return to `previous`? (The catalog check that `previous` exists is done first.)"""

    def observed(self, state: PlatformState) -> Verdict:
        """Could the component's data plane be observed? A refusal names what is missing and how to provide it."""


# ---------------------------------------------------------------------------------------------- shared helpers


def stale_pods(workloads: tuple[Workload, ...], version: str) -> list[tuple[Workload, Pod]]:
    """Pods that do not run `version` on their workload's current revision (terminating pods excluded: their
    controller brings them back; they are never deleted twice)."""
    out = []
    for w in workloads:
        for p in w.pods:
            if p.terminating:
                continue
            spec_current = w.target_version == version
            if p.version != version or (spec_current and p.revision != w.update_revision):
                out.append((w, p))
    return out


def recover_steps(component: str, workloads: tuple[Workload, ...], version: str) -> list[Step]:
    """Members that already run `version` on their workload's current revision but are not Ready (a restart whose
    recovery a crashed or halted run did not see through, or a member that failed since): the roll waits for each
    before touching anything else (Strimzi: a restarted broker that stays unready stops the roll), restarting it
    again only within its restart budget, which is kept with the platform."""
    out = []
    for w in workloads:
        if w.target_version != version:
            continue
        for p in w.pods:
            if p.version == version and p.revision == w.update_revision and not p.ready and not p.terminating:
                out.append(
                    Step(
                        StepKind.RECOVER,
                        component,
                        (p.name,),
                        version,
                        f"pod {p.name} runs {version} but is not Ready: it must recover (restarted again only within "
                        "its restart budget) before anything else moves",
                    )
                )
    return out


def apply_spec_step(component: str, workloads: tuple[Workload, ...], version: str) -> Step | None:
    """The step that makes OnDelete StatefulSets ask for `version` (nothing restarts until the engine restarts
    each pod), or None when they all ask for it already."""
    stale_spec = tuple(w.name for w in workloads if w.target_version != version)
    if not stale_spec:
        return None
    return Step(
        StepKind.APPLY_SPEC,
        component,
        stale_spec,
        version,
        f"{', '.join(stale_spec)} ask for {version} first; with the OnDelete strategy no pod restarts until the "
        "engine restarts it",
    )


def spec_applied(state: PlatformState, step: Step) -> Verdict:
    workloads = state.workloads_of(step.component)
    behind = [w.name for w in workloads if w.name in step.members and w.target_version != step.version]
    if behind:
        return Verdict.wait("spec.applied", f"{', '.join(behind)} do not ask for {step.version} yet")
    return Verdict.passed("spec.applied", f"{', '.join(step.members)} ask for {step.version}")


def perform_apply_spec(step: Step, ctx: StepContext) -> None:
    ctx.act(
        f"apply {step.component} {step.version} spec",
        lambda: ctx.target.workloads.apply_spec(step.component, step.members, step.version),
    )
    ctx.wait_done(confirm=False)


def restart_unsafe(step: Step, ctx: StepContext, members: list[str]) -> None:
    """The negative control: what a naive roller does. No gate, no preparation, no wait beyond the pods being
    replaced (a new pod: another UID, so a restart at the same version is not taken for done before it happened)
    and Ready on the version."""
    before = ctx.observe()
    uids = {pod: p.uid for pod in members if (p := before.pod(pod)) is not None}
    for pod in members:
        ctx.act(f"restart {pod} (UNSAFE)", _restart_call(ctx, pod))

    def pods_ready(s: PlatformState) -> Verdict:
        for pod in members:
            p = s.pod(pod)
            replaced = p is not None and (not p.uid or p.uid != uids.get(pod))
            if p is None or not replaced or not p.ready or p.version != step.version:
                return Verdict.wait("unsafe.pod-ready", f"pod {pod} is not replaced and Ready on {step.version} yet")
        return Verdict.passed("unsafe.pod-ready", f"{', '.join(members)} Ready (no other check: UNSAFE)")

    ctx.wait_for(pods_ready)


def _restart_call(ctx: StepContext, pod: str) -> Callable[[], None]:
    return lambda: ctx.target.workloads.restart_pod(pod)


def pods_unready(state: PlatformState, members: tuple[str, ...]) -> list[str]:
    return [m for m in members if (p := state.pod(m)) is None or not p.ready]
