"""The ingestion workers' driver: stateless Deployments that roll through their own strategy.

Each Deployment is one `roll` step. Its gates: a safe strategy, every pod ready, and the indexers' consumer lag under
the bound (shown in the plan's "blocked now" like every other gate). Its spec changes (maxUnavailable 0,
maxSurge >= 1, so the ready count never drops below the desired count), and the engine follows the roll. When a
new batch of pods is Ready while the lag is above the bound, the Deployment is paused until the lag comes back
under it, then resumed (Argo Rollouts' analysis between steps, with lag as the metric). A pause left by an
interrupted run is repaired first. The roll is done when every pod runs the new revision and version, no surplus
pod remains, all are Ready and the lag is under the bound, for the confirmation window. Gates are in
`toolkit.engine.gates.workers`.

A `restart` step (the node replacement moves worker pods off a node one at a time through it: `detail` names the
Deployment) waits for the Deployment at its desired ready count and the lag under the bound before a pod goes, and
is done when the pod is gone, its replacement Ready, nothing terminating and the lag under the bound.

Workers act only through the shared workloads port (no data-plane port); their lag is observed by the target.
"""

from __future__ import annotations

from functools import partial

from toolkit.catalog import Catalog
from toolkit.engine.drivers.base import ComponentPlan, Halt, StepContext, stale_pods
from toolkit.engine.gates import workers as gates
from toolkit.model import Component, PlatformState, Step, StepKind, UpgradeSettings, Verdict, Workload

NAME = Component.WORKERS.value


def _workload(state: PlatformState, name: str) -> Workload | None:
    return next((w for w in state.workloads if w.name == name), None)


class WorkersDriver:
    name = NAME

    def plan(self, state: PlatformState, version: str, settings: UpgradeSettings, catalog: Catalog) -> ComponentPlan:
        out = ComponentPlan()
        for w in state.workloads_of(NAME):
            safe = gates.strategy_safe(w)
            if not safe.ok:
                out.refusals.append(safe)
            if w.target_version != version or stale_pods((w,), version):
                out.steps.append(
                    Step(
                        StepKind.ROLL,
                        NAME,
                        (w.name,),
                        version,
                        f"deployment {w.name} rolls through its strategy (maxSurge {w.max_surge}, maxUnavailable 0); "
                        "each batch must bring consumer lag back under the bound",
                    )
                )
        return out

    def repairs(self, state: PlatformState) -> list[Step]:
        return [
            Step(
                StepKind.REPAIR,
                NAME,
                (w.name,),
                "",
                f"deployment {w.name} is paused, left by an interrupted lag gate; resume it",
                detail=f"unpause:{w.name}",
            )
            for w in state.workloads_of(NAME)
            if w.paused
        ]

    def gates(self, state: PlatformState, step: Step, settings: UpgradeSettings) -> list[Verdict]:
        if step.kind == StepKind.RESTART:
            w = _workload(state, step.detail) if step.detail else state.workload_of_pod(step.members[0])
            if w is None:
                return [
                    Verdict.wait("workers.deployment-known", f"the deployment of {step.members[0]} is not observed")
                ]
            return [gates.ready_at_desired(w), gates.lag_under_bound(state.workers, settings.lag_bound)]
        if step.kind != StepKind.ROLL:
            return []
        w = _workload(state, step.members[0])
        if w is None:
            return [Verdict.refuse("workers.deployment-known", f"deployment {step.members[0]} is not observed")]
        # the lag gate is a gate like the others: a roll starts only with the lag under its bound (and the plan's
        # "blocked now" says so), then each new batch must bring it back under the bound
        return [
            gates.strategy_safe(w),
            gates.ready_at_desired(w),
            gates.lag_under_bound(state.workers, settings.lag_bound),
        ]

    def done(self, state: PlatformState, step: Step, settings: UpgradeSettings) -> Verdict:
        if step.kind == StepKind.RESTART:
            return self._restarted(state, step, settings)
        name = step.members[0]
        w = _workload(state, name)
        if step.kind == StepKind.REPAIR:
            if w is not None and w.paused:
                return Verdict.wait("repair.unpause", f"deployment {name} is still paused")
            return Verdict.passed("repair.unpause", f"deployment {name} is not paused")
        if w is None:
            return Verdict.wait("workers.rolled", f"deployment {name} is not observed")
        v = gates.rolled(w, step.version)
        if not v.ok:
            return v
        return gates.lag_under_bound(state.workers, settings.lag_bound)

    def _restarted(self, state: PlatformState, step: Step, settings: UpgradeSettings) -> Verdict:
        rule = "workers.restarted"
        still = [m for m in step.members if state.pod(m) is not None]
        if still:
            return Verdict.wait(rule, f"pod {still[0]} is still there")
        w = _workload(state, step.detail)
        if w is None:
            return Verdict.wait(rule, f"deployment {step.detail} is not observed")
        going = [p.name for p in w.pods if p.terminating]
        if going:
            return Verdict.wait(rule, f"deployment {w.name}: pod {going[0]} is still terminating")
        ready = gates.ready_at_desired(w)
        if not ready.ok:
            return ready
        return gates.lag_under_bound(state.workers, settings.lag_bound)

    def perform(self, step: Step, ctx: StepContext) -> None:
        if step.kind == StepKind.RESTART:
            for pod in step.members:
                ctx.restart(pod)
            ctx.wait_done(confirm=True)
            return
        workloads = ctx.target.workloads
        name = step.members[0]
        if step.kind == StepKind.REPAIR:
            ctx.act(f"resume deployment {name}", lambda: workloads.pause(name, False))
            ctx.wait_done(confirm=False)
            return
        if ctx.settings.skip_gates:
            self._roll_unsafe(step, ctx)
            return
        ctx.act(f"roll deployment {name} to {step.version}", lambda: workloads.apply_spec(NAME, (name,), step.version))
        settings = ctx.settings
        last_updated_ready = -1
        paused = False
        started = ctx.clock.now()
        confirmed_since: float | None = None
        while True:
            state = ctx.observe()
            w = _workload(state, name)
            lag = gates.lag_under_bound(state.workers, settings.lag_bound)
            if w is not None:
                updated_ready = sum(1 for p in w.pods if p.ready and p.version == step.version and not p.terminating)
                if paused and lag.ok:
                    ctx.act(f"resume deployment {name}", lambda: workloads.pause(name, False))
                    paused = False
                elif not paused and updated_ready > last_updated_ready >= 0 and not lag.ok:
                    ctx.act(f"pause deployment {name} (lag gate)", lambda: workloads.pause(name, True))
                    paused = True
                last_updated_ready = max(last_updated_ready, updated_ready)
            done = self.done(state, step, settings)
            if done.ok:
                confirmed_since = confirmed_since if confirmed_since is not None else ctx.clock.now()
                if ctx.clock.now() - confirmed_since >= settings.confirm_seconds:
                    ctx.finish(done.reason)
                    return
            else:
                confirmed_since = None
                ctx.waited(done, settings.poll_interval)
            if ctx.clock.now() - started >= settings.step_timeout:
                raise Halt(
                    Verdict.refuse(
                        done.rule,
                        f"deployment {name} did not finish rolling within {settings.step_timeout:.0f} s: "
                        f"{done.reason}. The Deployment keeps its old pods serving (maxUnavailable 0); fix the cause "
                        "and run the same command to resume",
                    )
                )
            ctx.poll()

    def _roll_unsafe(self, step: Step, ctx: StepContext) -> None:
        """The negative control: the Deployment replaced all at once, no lag gate."""
        name = step.members[0]
        workloads = ctx.target.workloads
        ctx.act(
            f"roll deployment {name} to {step.version} (UNSAFE)",
            lambda: workloads.apply_spec(NAME, (name,), step.version),
        )
        w = _workload(ctx.observe(), name)
        for pod in [p.name for p in w.pods] if w is not None else []:
            ctx.act(f"restart {pod} (UNSAFE, all at once)", partial(workloads.restart_pod, pod))

        def rolled(s: PlatformState) -> Verdict:
            current = _workload(s, name)
            if current is None:
                return Verdict.wait("workers.rolled", f"deployment {name} is not observed")
            return gates.rolled(current, step.version)

        ctx.wait_for(rolled)

    def running_versions(self, state: PlatformState) -> set[str]:
        return set()

    def path_rules(self, catalog: Catalog, state: PlatformState, running: list[str], target: str) -> Verdict | None:
        return None

    def rollback_rules(self, catalog: Catalog, state: PlatformState, previous: str) -> Verdict:
        return Verdict.passed(f"{NAME}.rollback", f"{NAME} is stateless: rollback to {previous} allowed")

    def observed(self, state: PlatformState) -> Verdict:
        if state.workers.unobserved:
            return Verdict.refuse(f"{NAME}.observable", state.workers.unobserved)
        return Verdict.passed(f"{NAME}.observable", "consumer lag observed")
