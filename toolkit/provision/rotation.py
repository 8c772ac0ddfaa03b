"""`toolkit certs rotate`: the platform's CA replaced with zero downtime, as cert-manager and Strimzi renew a CA:

1. trust: a new CA is made (its key in the CA namespace only, beside the current one); every Secret's `ca.crt`
   becomes the bundle old + new; then every pod restarts behind the usual gates, so every pod trusts both;
2. reissue: every leaf is issued again (new key, same names and usages) by the new CA; every pod restarts behind
   the gates, so every pod presents the new CA's certificate (which every peer trusts since phase 1);
3. drop: every `ca.crt` holds the new CA only and the CA Secret switches to it; every pod restarts behind the
   gates, so nothing trusts the old CA any more.
A phase's Secrets are written only once every pod restarted on the previous phase's (observed, not assumed: the
pod-template stamp `toolkit.io/tls-generation: <generation>-<phase>` is on every workload and every pod runs its
workload's current revision, Ready), so no pod ever trusts only a CA that a peer does not present.

How pods restart: the rotation stamps each component's workloads (`WorkloadsPort.annotate_template`, the version
unchanged), then runs the engine at the component's CURRENT version: its drivers see every pod on an old revision
(`stale_pods`) and restart them one by one behind the same gates as an upgrade (Kafka ISR, availability and quorum;
Elasticsearch's predicates; the workers' lag), components in the catalog's upgrade order. Nothing here decides how a
pod restarts: the planner and the executor are the upgrade's, unchanged.

Resuming: where the rotation stands is kept with the platform (`Progress`: generation, phase, stage; the CA
namespace's ConfigMap `toolkit-cert-rotation`, or the simulated platform's state), written before and after each
stage; every stage is idempotent (a CA already made is reused, a bundle already written is written the same, a
leaf already signed by the new CA is kept, the engine plans only pods still on an old revision), so the same
command run again after Ctrl-C, SIGTERM or SIGKILL continues at the stage that was interrupted. The Secrets and
template stamps are written under the environment's lease (the engine's), so an upgrade and a rotation never act
on one platform at the same time.

Each stage works on a target opened afresh (`targets`): on a real cluster the orchestrator's own Kafka and
Elasticsearch clients load the Secrets as they stand when the stage begins, so they trust both CAs once the bundle
is written and present their reissued identity once it is issued, which every pod they talk to accepts in turn.

Refused before anything changes (exit 3): a Secret of the plan missing, a component whose spec and pods disagree
on its version (an upgrade in progress: finish it first), a CA Secret that is not the one the recorded rotation
was using, the lease held by a live orchestrator.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from toolkit.catalog import Catalog
from toolkit.config.environments import Environment
from toolkit.engine import lease as lease_rules
from toolkit.engine.drivers import ComponentDriver
from toolkit.engine.executor import Event, Executor, RunResult, StepRecord, default_holder
from toolkit.engine.ports import ActionError, LeaseHeldError, Target
from toolkit.model import PlatformState, UpgradeSettings, Verdict
from toolkit.provision import certs, credentials
from toolkit.provision.certs import Authorities, CertStore, Progress
from toolkit.provision.credentials import CredentialPlan

STAMP_ANNOTATION = "toolkit.io/tls-generation"
NEXT_PHASE = {"trust": "reissue", "reissue": "drop", "drop": "done"}
PREVIOUS_PHASE = {"reissue": "trust", "drop": "reissue"}


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def fixed(target: Target) -> Callable[[], AbstractContextManager[Target]]:
    """The same open target for every stage (the simulated platform, a rehearsal, a test)."""
    return lambda: contextlib.nullcontext(target)


@dataclass
class StageRecord:
    """One stage of one phase: the Secrets it wrote, or the engine runs that restarted the pods."""

    phase: str
    stage: str  # secrets | roll
    started_at: float
    ended_at: float = 0.0
    outcome: str = "running"  # done | halted | stopped | refused
    message: str = ""
    secrets: list[str] = field(default_factory=list)  # "<namespace>/<name>" written
    runs: list[RunResult] = field(default_factory=list)  # one engine run per component (roll)

    @property
    def restarts(self) -> int:
        """Pods the engine restarted one by one (StatefulSets)."""
        return sum(len(s.members) for r in self.runs for s in r.steps if s.kind == "restart")

    @property
    def rolls(self) -> int:
        """Deployments the engine rolled through their strategy, following each batch."""
        return sum(1 for r in self.runs for s in r.steps if s.kind == "roll")

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "stage": self.stage,
            "start": round(self.started_at, 3),
            "end": round(self.ended_at, 3),
            "duration_seconds": round(self.ended_at - self.started_at, 3),
            "outcome": self.outcome,
            "message": self.message,
            "secrets": list(self.secrets),
            "restarts": self.restarts,
            "rolls": self.rolls,
            "runs": [
                {
                    "targets": dict(r.plan.targets),
                    "outcome": r.outcome,
                    "reason": r.reason,
                    "steps": [s.as_dict() for s in r.steps],
                }
                for r in self.runs
            ],
        }


@dataclass
class RotationResult:
    environment: str
    simulated: bool
    outcome: str  # completed | halted | refused | stopped
    reason: str
    rule: str
    generation: int
    progress: Progress | None
    stages: list[StageRecord]
    started_at: float
    ended_at: float

    @property
    def ok(self) -> bool:
        return self.outcome == "completed"

    @property
    def steps(self) -> list[StepRecord]:
        return [s for stage in self.stages for r in stage.runs for s in r.steps]


class _Ended(Exception):
    def __init__(self, outcome: str, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.outcome = outcome
        self.verdict = verdict
        self.reported = False


class Rotation:
    """One `toolkit certs rotate` (see the module docstring)."""

    @classmethod
    def of_environment(
        cls,
        env: Environment,
        targets: Callable[[], AbstractContextManager[Target]],
        store: CertStore,
        settings: UpgradeSettings,
        **options: Any,
    ) -> Rotation:
        """The rotation of `env`'s credentials (its plan) against the catalog; `options` as for the constructor."""
        from toolkit.catalog import load

        return cls(env.name, credentials.plan(env), targets, store, load(), settings, **options)

    def __init__(
        self,
        environment: str,
        items: CredentialPlan,
        targets: Callable[[], AbstractContextManager[Target]],
        store: CertStore,
        catalog: Catalog,
        settings: UpgradeSettings,
        holder: str | None = None,
        on_event: Callable[[Event], None] | None = None,
        stop_requested: Callable[[], bool] = lambda: False,
        stop_now: Callable[[], bool] = lambda: False,
        now: Callable[[], dt.datetime] = utc_now,
        drivers: Mapping[str, ComponentDriver] | None = None,
        on_secrets: Callable[[str], None] | None = None,
    ) -> None:
        self.environment = environment
        # told the phase each time its Secrets were written (before the pods restart): a client outside the platform
        # (a rehearsal's load) takes the new trust and identity from them then
        self._on_secrets = on_secrets
        self.items = items
        self._targets = targets
        self._depth = 0
        self.target: Target | Any = None  # the target of the stage in progress (the last one opened, after)
        self.store = store
        self.catalog = catalog
        self.settings = settings
        self.holder = holder or default_holder()
        self._on_event = on_event
        self._stop_requested = stop_requested
        self._stop_now = stop_now
        self._now = now
        self._drivers = drivers
        self.stages: list[StageRecord] = []
        self.progress: Progress | None = None

    # ------------------------------------------------------------------ plumbing

    def emit(self, kind: str, message: str, rule: str = "") -> None:
        if self._on_event is not None:
            self._on_event(Event(self.target.clock.now(), kind, message, "", rule))

    def audit(self, what: str, why: str, result: str) -> None:
        self.target.control.audit(
            {
                "at": round(self.target.clock.now(), 3),
                "who": self.holder,
                "environment": self.target.name,
                "what": what,
                "step": "",
                "why": why,
                "result": result,
            }
        )

    def _record(self, progress: Progress) -> Progress:
        progress = progress.moved(updated_at=self._now().isoformat(timespec="seconds"), by=self.holder)
        self.store.write_progress(progress.to_json())
        self.progress = progress
        self.audit(f"certs {progress.phase}", progress.describe(), "recorded")
        return progress

    def _authorities(self) -> Authorities:
        data = self.store.read(self.items.ca_namespace, self.items.ca_secret)
        if data is None:
            raise _Ended("refused", _missing(self.items.ca_namespace, self.items.ca_secret, self.environment))
        return Authorities.from_secret(data)

    def _write(self, namespace: str, name: str, data: dict[str, bytes], authorities: Authorities) -> None:
        if namespace != self.items.ca_namespace:
            certs.check_platform_data(namespace, name, data, authorities)
        self.store.write(namespace, name, data)

    @contextlib.contextmanager
    def _lease(self) -> Iterator[None]:
        """The environment's lease (the engine's) while Secrets or templates are written."""
        control = self.target.control
        existing = control.read_lease()
        alive = existing is not None and control.holder_alive(existing.holder)
        verdict = lease_rules.may_acquire(existing, self.holder, self.target.clock.now(), alive)
        if not verdict.ok:
            raise _Ended("refused", verdict)
        ours = lease_rules.acquire(existing, self.holder, self.target.clock.now())
        try:
            control.write_lease(ours, existing)
        except LeaseHeldError as exc:
            raise _Ended("refused", Verdict.refuse("lease.single-holder", str(exc))) from None
        try:
            yield
        finally:
            with contextlib.suppress(LeaseHeldError):
                control.write_lease(None, ours)

    @contextlib.contextmanager
    def _opened(self) -> Iterator[None]:
        """A target opened afresh for this stage (re-entrant): on a real cluster the orchestrator's own Kafka and
        Elasticsearch clients then load the Secrets as they stand now (the bundle once trusted, its reissued
        identity once reissued), so they keep verifying the pods they watch and being accepted by them."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with self._targets() as target:
            self.target, self._depth = target, 1
            try:
                yield
            except _Ended as ended:
                self._report(ended)  # while the target is open: the audit goes through it
                raise
            finally:
                self._depth = 0

    def _report(self, ended: _Ended) -> None:
        if ended.reported:
            return
        ended.reported = True
        verdict = ended.verdict
        if self.stages and self.stages[-1].outcome == "running":
            self.stages[-1].outcome = ended.outcome
            self.stages[-1].message = verdict.reason
            self.stages[-1].ended_at = self.target.clock.now()
        self.emit("stop" if ended.outcome == "stopped" else "halt", verdict.reason, verdict.rule)
        if ended.outcome != "refused" or self.progress is not None:
            self.audit("certs rotate", verdict.reason, ended.outcome)

    def _check_stop(self, where: str) -> None:
        if self._stop_requested() or self._stop_now():
            raise _Ended(
                "stopped",
                Verdict.wait(
                    "run.stop-requested",
                    f"stopped on request {where}; the platform is in a safe state: run the same command to resume",
                ),
            )

    # ------------------------------------------------------------------ run

    def run(self) -> RotationResult:
        started = 0.0
        generation = 0
        try:
            with self._opened():
                started = self.target.clock.now()
                progress = self._begin()
                generation = progress.generation
            while progress.in_progress:
                stage = self._secrets_stage if progress.stage == "secrets" else self._roll_stage
                progress = stage(progress)
            how = "WITHOUT any gate (UNSAFE)" if self.settings.skip_gates else "behind the gates"
            outcome, verdict = (
                "completed",
                Verdict.passed(
                    "certs.rotated",
                    f"rotation {generation} completed: every Secret trusts only the new CA, every leaf is signed by "
                    f"it, every pod restarted on them {how}",
                ),
            )
            self.emit("done", verdict.reason)
        except _Ended as ended:
            outcome, verdict = ended.outcome, ended.verdict
            self._report(ended)
        return RotationResult(
            environment=self.environment,
            simulated=self.target.simulated,
            outcome=outcome,
            reason=verdict.reason,
            rule=verdict.rule,
            generation=generation or (self.progress.generation if self.progress else 0),
            progress=self.progress,
            stages=self.stages,
            started_at=started,
            ended_at=self.target.clock.now(),
        )

    def _begin(self) -> Progress:
        """Refuse what cannot be rotated, or start a new rotation's record, or pick up the one in progress."""
        state = self.target.observe()
        progress = Progress.from_json(self.store.read_progress())
        refusals = preflight(self.items, self.store, state, progress, self.environment)
        if refusals:
            raise _Ended("refused", refusals[0])
        if progress is not None and progress.in_progress:
            self.progress = progress
            self.emit("phase", f"resuming {progress.describe()}")
            return progress
        generation = (progress.generation if progress else 0) + 1
        current = self._authorities().current
        assert current is not None  # preflight
        with self._lease():
            progress = self._record(
                Progress(
                    generation,
                    "trust",
                    "secrets",
                    old_ca=certs.fingerprint(current),
                    started_at=self._now().isoformat(timespec="seconds"),
                )
            )
        self.emit("phase", f"rotation {generation} starts: a new CA will be trusted beside the current one")
        return progress

    # ------------------------------------------------------------------ stages

    def _stage(self, phase: str, stage: str) -> StageRecord:
        record = StageRecord(phase, stage, self.target.clock.now())
        self.stages.append(record)
        return record

    def _secrets_stage(self, progress: Progress) -> Progress:
        with self._opened():
            return self._secrets(progress)

    def _secrets(self, progress: Progress) -> Progress:
        self._check_stop(f"before writing the Secrets of phase {progress.phase}")
        previous = PREVIOUS_PHASE.get(progress.phase)
        if previous is not None:
            # the previous phase's roll must be complete as observed, not as recorded: roll it (again) if not
            stamp = f"{progress.generation}-{previous}"
            if self._not_rolled(self.target.observe(), stamp):
                self._roll(progress.moved(phase=previous, stage="roll"))
        record = self._stage(progress.phase, "secrets")
        try:
            with self._lease():
                if progress.phase == "trust":
                    progress = self._trust(progress, record)
                elif progress.phase == "reissue":
                    self._reissue(progress, record)
                else:
                    self._drop(progress, record)
                progress = self._record(progress.moved(stage="roll"))
        except ActionError as exc:
            raise _Ended(
                "halted",
                Verdict.refuse(
                    "certs.write",
                    f"phase {progress.phase}: {exc}. What was written is consistent (each Secret is written whole); "
                    "run the same command to resume",
                ),
            ) from None
        record.outcome, record.ended_at = "done", self.target.clock.now()
        self.emit("phase", f"{progress.phase}: {record.message}")
        if self._on_secrets is not None:
            self._on_secrets(progress.phase)
        return progress

    def _trust(self, progress: Progress, record: StageRecord) -> Progress:
        ns, ca_ns = self.items.namespace, self.items.ca_namespace
        authorities = self._authorities()
        if authorities.next is None:
            crt, key = credentials.new_ca(
                f"security-data-platform {self.environment} CA {progress.generation}", now=self._now()
            )
            authorities = Authorities(authorities.current_crt, authorities.current_key, crt, key)
            self._write(ca_ns, self.items.ca_secret, authorities.secret(), authorities)
            record.secrets.append(f"{ca_ns}/{self.items.ca_secret}")
            self.audit("certs trust: new CA", f"next CA made in {ca_ns}/{self.items.ca_secret}", "ok")
        assert authorities.next is not None
        progress = self._record(progress.moved(new_ca=certs.fingerprint(authorities.next)))
        for name in certs.secret_names(self.items):
            data = self._read(ns, name)
            new = certs.trusted(data, authorities)
            if new != data:
                self._write(ns, name, new, authorities)
                record.secrets.append(f"{ns}/{name}")
        record.message = (
            f"new CA {certs.short(progress.new_ca)} made in {ca_ns}; ca.crt of "
            f"{len(certs.secret_names(self.items))} Secrets = current CA {certs.short(progress.old_ca)} + new CA"
        )
        self.audit("certs trust: bundles", record.message, "ok")
        return progress

    def _reissue(self, progress: Progress, record: StageRecord) -> None:
        ns = self.items.namespace
        authorities = self._authorities()
        for item in self.items.certificates:
            data = self._read(ns, item.secret)
            new = certs.reissued(data, item.secret, authorities, self._now())
            if new is not None:
                self._write(ns, item.secret, new, authorities)
                record.secrets.append(f"{ns}/{item.secret}")
        record.message = (
            f"{len(self.items.certificates)} leaves signed by the new CA {certs.short(progress.new_ca)} "
            f"(new keys, {credentials.LEAF_DAYS} days)"
        )
        self.audit("certs reissue: leaves", record.message, "ok")

    def _drop(self, progress: Progress, record: StageRecord) -> None:
        ns, ca_ns = self.items.namespace, self.items.ca_namespace
        authorities = self._authorities()
        # after an interrupted drop the CA Secret may have switched already: the new CA is then the current one
        final = (
            authorities
            if authorities.next is not None
            else Authorities(b"", b"", authorities.current_crt, authorities.current_key)
        )
        for name in certs.secret_names(self.items):
            data = self._read(ns, name)
            new = certs.dropped(data, final)
            if new != data:
                self._write(ns, name, new, authorities)
                record.secrets.append(f"{ns}/{name}")
        if authorities.next is not None:
            switched = certs.switched(authorities)
            self._write(ca_ns, self.items.ca_secret, switched.secret(), switched)
            record.secrets.append(f"{ca_ns}/{self.items.ca_secret}")
        record.message = (
            f"old CA {certs.short(progress.old_ca)} dropped: ca.crt of {len(certs.secret_names(self.items))} Secrets "
            f"= new CA {certs.short(progress.new_ca)} only; {ca_ns}/{self.items.ca_secret} holds the new CA"
        )
        self.audit("certs drop: bundles and CA", record.message, "ok")

    def _read(self, namespace: str, name: str) -> dict[str, bytes]:
        data = self.store.read(namespace, name)
        if data is None:
            raise _Ended("refused", _missing(namespace, name, self.environment))
        return data

    def _roll_stage(self, progress: Progress) -> Progress:
        with self._opened():
            self._roll(progress)
            with self._lease():
                following = NEXT_PHASE[progress.phase]
                return self._record(progress.moved(phase=following, stage="secrets" if following != "done" else ""))

    def _roll(self, progress: Progress) -> None:
        """Stamp every workload with this phase and restart every pod behind the gates, component by component."""
        self._check_stop(f"before restarting the pods on phase {progress.phase}")
        stamp = progress.stamp
        record = self._stage(progress.phase, "roll")
        how = "WITHOUT gates (UNSAFE)" if self.settings.skip_gates else "behind the gates"
        self.emit("phase", f"{progress.phase}: every pod restarts {how} (pod template stamp {stamp})")
        state = self.target.observe()
        for component in self.catalog.upgrade_order:
            workloads = state.workloads_of(component)
            if not workloads:
                continue
            # OnDelete workloads (StatefulSets) are stamped together: nothing restarts until the engine restarts
            # it. A RollingUpdate workload (a Deployment) starts rolling through its own strategy when stamped, so
            # each is stamped alone, right before the engine run that follows its roll (lag gate between batches)
            on_delete = tuple(w.name for w in workloads if w.update_strategy == "OnDelete")
            batches = ([on_delete] if on_delete else []) + [
                (w.name,) for w in workloads if w.update_strategy != "OnDelete"
            ]
            for names in batches:
                self._stamp(component, names, stamp, progress.phase)
                result = Executor(
                    self.target,
                    self.catalog,
                    {component: workloads[0].target_version},
                    self.settings,
                    holder=self.holder,
                    on_event=self._on_event,
                    stop_requested=self._stop_requested,
                    drivers=self._drivers,
                    stop_now=self._stop_now,
                ).run()
                record.runs.append(result)
                if not result.ok:
                    raise _Ended(
                        result.outcome, Verdict.refuse(result.rule, f"phase {progress.phase}: {result.reason}")
                    )
                self._check_stop(f"after restarting {', '.join(names)} on phase {progress.phase}")
        self._await_rolled(progress.phase, stamp)
        record.outcome, record.ended_at = "done", self.target.clock.now()
        record.message = (
            f"every pod restarted on {stamp}: {record.restarts} pods restarted one at a time, {record.rolls} "
            "Deployments rolled"
        )
        self.emit("phase", f"{progress.phase}: {record.message}")

    def _stamp(self, component: str, names: tuple[str, ...], stamp: str, phase: str) -> None:
        """Stamp the workloads' pod template with this phase (under the lease; skipped where it is there), and wait
        until the stamp is observed."""
        state = self.target.observe()
        if all(w.annotation(STAMP_ANNOTATION) == stamp for w in state.workloads if w.name in names):
            return
        with self._lease():
            try:
                self.target.workloads.annotate_template(component, names, {STAMP_ANNOTATION: stamp})
            except ActionError as exc:
                raise _Ended(
                    "halted",
                    Verdict.refuse(
                        "certs.stamp", f"stamping {', '.join(names)}: {exc}; run the same command to resume"
                    ),
                ) from None
            self.audit(
                f"stamp {', '.join(names)} {STAMP_ANNOTATION}={stamp}",
                f"phase {phase}: restart every pod of {', '.join(names)} behind the gates",
                "ok",
            )
        self._await_stamp(names, stamp)

    def _await_stamp(self, names: tuple[str, ...], stamp: str) -> None:
        """Observe until the workloads show the stamp (a target's observations may lag its actions, as polling
        does), so the engine plans on it; halt past the step timeout."""

        def behind() -> str:
            state = self.target.observe()
            return ", ".join(
                w.name for w in state.workloads if w.name in names and w.annotation(STAMP_ANNOTATION) != stamp
            )

        self._await(
            behind,
            "certs.stamp",
            lambda why, took: (
                f"{why} do not show {STAMP_ANNOTATION}={stamp} after {took}; run the same command to resume"
            ),
            "while waiting for the stamp to be observed",
        )

    def _await_rolled(self, phase: str, stamp: str) -> None:
        """Observe until every pod runs on the `stamp` template and no pod of an earlier one is left, not even one
        shutting down (it drains with the identity it loaded: a receiver flushing its last events to Kafka must not
        meet a server that no longer trusts it); halt past the step timeout."""
        self._await(
            lambda: self._not_rolled(self.target.observe(), stamp),
            "certs.rolled",
            lambda why, took: (
                f"phase {phase}: {why} after {took}; the next phase's Secrets are not written until "
                "every pod restarted on this one. Run the same command to resume"
            ),
            f"while waiting for every pod of phase {phase}",
        )

    def _await(self, behind: Callable[[], str], rule: str, halted: Callable[[str, str], str], where: str) -> None:
        """Poll `behind` (why not yet; "" when done) on the target's clock; past the step timeout, halt with `rule`
        and `halted(why, took)`; a stop asked for at once ends the wait."""
        started = self.target.clock.now()
        while True:
            why = behind()
            if not why:
                return
            if self.target.clock.now() - started >= self.settings.step_timeout:
                raise _Ended("halted", Verdict.refuse(rule, halted(why, f"{self.settings.step_timeout:.0f} s")))
            self.target.clock.wait(self.settings.poll_interval)
            if self._stop_now():
                self._check_stop(where)

    @staticmethod
    def _not_rolled(state: PlatformState, stamp: str) -> str:
        """Why not every pod runs on the `stamp` template ("" when every one does, Ready, and no pod of an earlier
        template is left, also none shutting down)."""
        for w in state.workloads:
            if w.annotation(STAMP_ANNOTATION) != stamp:
                return f"workload {w.name} is not stamped {STAMP_ANNOTATION}={stamp}"
            for p in w.pods:
                if p.revision != w.update_revision and p.terminating:
                    return f"pod {p.name} of an earlier template is still shutting down"
                if p.terminating:
                    continue
                if p.revision != w.update_revision or not p.ready:
                    return f"pod {p.name} has not restarted on {stamp} (or is not Ready)"
        return ""


# ---------------------------------------------------------------------------------------------- refusals


def _missing(namespace: str, name: str, environment: str) -> Verdict:
    return Verdict.refuse(
        "certs.secret-present",
        f"Secret {namespace}/{name} does not exist: the platform's certificates are made by "
        f"`toolkit deploy --env {environment}`; deploy first, then rotate",
    )


def consistent(progress: Progress, current: str, following: str) -> bool:
    """Does the CA Secret (current CA, next CA fingerprints; "" for none) hold what the recorded rotation left?"""
    before = current == progress.old_ca and following == progress.new_ca
    after = current == progress.new_ca and following == ""
    if progress.phase == "trust" and progress.stage == "secrets" and not progress.new_ca:
        return current == progress.old_ca  # the new CA may or may not have been made before the record said so
    if progress.phase == "drop":
        return after if progress.stage == "roll" else before or after
    return before


def preflight(
    items: CredentialPlan, store: CertStore, state: PlatformState, progress: Progress | None, environment: str
) -> list[Verdict]:
    """What refuses a rotation before anything changes (each names the object and the way out)."""
    out: list[Verdict] = []
    ca = store.read(items.ca_namespace, items.ca_secret)
    if ca is None:
        return [_missing(items.ca_namespace, items.ca_secret, environment)]
    authorities = Authorities.from_secret(ca)
    if authorities.current is None or not authorities.current_key.strip():
        out.append(
            Verdict.refuse(
                "certs.ca",
                f"Secret {items.ca_namespace}/{items.ca_secret} holds no usable {certs.CA_CRT} and {certs.CA_KEY}: "
                "nothing can sign the new leaves; restore it from your backup",
            )
        )
    leaves = {c.secret for c in items.certificates}
    for name in certs.secret_names(items):
        data = store.read(items.namespace, name)
        if data is None:
            out.append(_missing(items.namespace, name, environment))
        elif name in leaves and not certs.certificates(data.get(certs.TLS_CRT, b"")):
            out.append(
                Verdict.refuse(
                    "certs.leaf",
                    f"Secret {items.namespace}/{name} holds no {certs.TLS_CRT} to issue again; delete it and run "
                    f"`toolkit deploy --env {environment}` to make it",
                )
            )
    if not state.workloads:
        out.append(
            Verdict.refuse(
                "certs.workloads",
                f"no workload of the platform is observed in {environment}: nothing would load the rotated "
                f"certificates; deploy it first (`toolkit deploy --env {environment}`)",
            )
        )
    for w in state.workloads:
        versions = {p.version for p in w.pods if not p.terminating} - {w.target_version}
        if versions:
            out.append(
                Verdict.refuse(
                    "certs.upgrade-in-progress",
                    f"{w.component}: {w.name} asks for {w.target_version} while some of its pods run "
                    f"{', '.join(sorted(versions))}: an upgrade is in progress; finish it (`toolkit upgrade run "
                    f"--env {environment} --to {w.component}={w.target_version}`) or roll it back, then rotate",
                )
            )
            break
    if progress is not None and progress.in_progress and authorities.current is not None:
        current = certs.fingerprint(authorities.current)
        following = certs.fingerprint(authorities.next) if authorities.next is not None else ""
        if not consistent(progress, current, following):
            out.append(
                Verdict.refuse(
                    "certs.rotation-consistent",
                    f"{progress.describe()}, from CA {certs.short(progress.old_ca)} to "
                    f"{certs.short(progress.new_ca) or '(not made yet)'}, but Secret {items.ca_namespace}/"
                    f"{items.ca_secret} holds CA {certs.short(current)}"
                    + (f" and next CA {certs.short(following)}" if following else " and no next CA")
                    + ": it was changed outside the rotation. Inspect it (`toolkit certs status`), restore the CA "
                    f"Secret, or remove the rotation's record ({store.progress_location}) to start over",
                )
            )
    return out
