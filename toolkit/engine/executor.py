"""The executor: observe -> plan -> gate -> act -> wait, one step at a time, on the target's clock.

Algorithm
1. Refuse settings that cannot work (a NaN, infinite, zero or negative duration) before anything else. Observe and
   plan. A refused plan changes nothing. Otherwise take the environment's lease (one orchestrator per platform,
   compare-and-swap through the control port) and keep renewing it.
2. Each round: observe and plan ONCE from that observation (so a re-run after a crash resumes where the platform
   stands). The plan carries every step's verdict on this state (`Step.blocked`, the driver's gates evaluated once):
   take the first step if nothing blocks it; else another step of the same component and phase that nothing blocks
   (the blocked one is re-checked next round, never skipped: Strimzi's re-queue). If none can go, wait one
   observation interval and observe again, up to `gate_timeout`; past it the run halts naming the gate and reason.
3. Act through the target (each action audited before it is taken and after, failed actions retried up to
   `action_retries`), then wait for the state the step promised. A member that does not recover within
   `step_timeout` is restarted again while its restart budget lasts (the budget is kept with the platform by the
   control port, so a resumed run does not start it over; a member already terminating is never restarted again);
   then the run halts before touching any other member. A recovered member must stay healthy for `confirm_seconds`
   before the next step: as long as the member needs, plus that window, plus at most one observation interval.
4. Stopping. A first stop request (Ctrl-C, SIGTERM) ends the run at the next safe point: at once while it waits for
   gates or is paused (within one observation interval), after the current step while a step is being performed.
   A second request, or `toolkit upgrade abort` (a request stored with the platform), stops at once: the step being
   performed undoes what it prepared (drivers catch `Stop`), the lease is released, the outcome is "stopped".
   `toolkit upgrade pause` holds the run at its next step boundary (gate timeouts do not run while paused) until
   `resume` withdraws the request. Every decision, action, wait, request and outcome is audited with the platform.

The executor never sleeps by itself: all waiting goes through the target's clock, which is virtual in tests; a clock
may return early from a wait (a change, a signal), and the executor checks what it waits for after every wait.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from toolkit.catalog import Catalog
from toolkit.engine import lease as lease_rules
from toolkit.engine import planner
from toolkit.engine.drivers import ComponentDriver, Halt, Stop, default_drivers
from toolkit.engine.ports import ActionError, Clock, LeaseHeldError, Target
from toolkit.model import (
    REQUEUED_KINDS,
    Lease,
    Plan,
    PlatformState,
    Step,
    UpgradeSettings,
    Verdict,
    first_blocking,
)


def default_holder() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}/{os.getpid()}"


@dataclass
class GateWait:
    rule: str
    seconds: float
    last_reason: str


@dataclass
class StepRecord:
    id: str
    kind: str
    component: str
    members: tuple[str, ...]
    version: str
    reason: str
    started_at: float
    ended_at: float = 0.0
    outcome: str = "running"  # done | halted | interrupted
    message: str = ""
    gates_waited: list[GateWait] = field(default_factory=list)
    restarts: int = 0

    def waited(self, verdict: Verdict, seconds: float) -> None:
        for g in self.gates_waited:
            if g.rule == verdict.rule:
                g.seconds += seconds
                g.last_reason = verdict.reason
                return
        self.gates_waited.append(GateWait(verdict.rule, seconds, verdict.reason))

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "component": self.component,
            "members": list(self.members),
            "version": self.version,
            "reason": self.reason,
            "start": round(self.started_at, 3),
            "end": round(self.ended_at, 3),
            "duration_seconds": round(self.ended_at - self.started_at, 3),
            "outcome": self.outcome,
            "message": self.message,
            "restarts": self.restarts,
            "gates_waited": [
                {"rule": g.rule, "seconds": round(g.seconds, 3), "reason": g.last_reason} for g in self.gates_waited
            ],
        }


@dataclass
class RunResult:
    environment: str
    simulated: bool
    outcome: str  # completed | halted | refused | stopped
    reason: str
    rule: str
    started_at: float
    ended_at: float
    plan: Plan
    steps: list[StepRecord]

    @property
    def ok(self) -> bool:
        return self.outcome == "completed"


@dataclass(frozen=True)
class Event:
    at: float
    # plan | lease | step | gate-wait | requeue | act | recovered | pace | paused | resumed | stop-requested | halt |
    # done | stop
    kind: str
    message: str
    step: str = ""
    rule: str = ""
    # (steps done in this run, steps this run has planned: done + the steps of the latest plan it acted from)
    progress: tuple[int, int] = (0, 0)


class Executor:
    def __init__(
        self,
        target: Target,
        catalog: Catalog,
        targets: Mapping[str, str],
        settings: UpgradeSettings,
        holder: str | None = None,
        on_event: Callable[[Event], None] | None = None,
        stop_requested: Callable[[], bool] = lambda: False,
        drivers: Mapping[str, ComponentDriver] | None = None,
        stop_now: Callable[[], bool] = lambda: False,
    ) -> None:
        self.target = target
        self.clock = target.clock
        self.catalog = catalog
        self.targets = dict(targets)
        self.drivers = drivers if drivers is not None else default_drivers()
        self.settings = settings
        self.holder = holder or default_holder()
        self._on_event = on_event
        self._stop_requested = stop_requested
        self._stop_now = stop_now
        self._stop_announced = False
        self.records: list[StepRecord] = []
        self._lease: Lease | None = None
        self._pending_gates: dict[str, float] = {}
        self._gate_reasons: dict[str, str] = {}
        self._steps_planned = 0
        problems = settings.problems()
        self._settings_problem = "; ".join(f"{name}: {why}" for name, why in problems)
        poll = settings.poll_interval if not problems else 0.0
        self._lease_ttl = max(lease_rules.DEFAULT_TTL, poll * 6)

    # ------------------------------------------------------------------ plumbing

    def emit(self, kind: str, message: str, step: str = "", rule: str = "") -> None:
        if self._on_event is not None:
            done = sum(1 for r in self.records if r.outcome == "done")
            progress = (done, max(done, self._steps_planned))
            self._on_event(Event(self.clock.now(), kind, message, step, rule, progress))

    def audit(self, what: str, why: str, result: str, step: str = "") -> None:
        self.target.control.audit(
            {
                "at": round(self.clock.now(), 3),
                "who": self.holder,
                "environment": self.target.name,
                "what": what,
                "step": step,
                "why": why,
                "result": result,
            }
        )

    def plan(self, state: PlatformState) -> Plan:
        return planner.plan(state, self.targets, self.settings, self.catalog, self.drivers)

    def _sleep(self, seconds: float, until_stop: bool = True) -> None:
        """Wait the whole `seconds` (pacing, backoff), renewing the lease; a clock may return early (a signal), so
        the rest is waited again unless the run must stop (`until_stop`: a first stop request ends the wait too)."""
        end = self.clock.now() + max(0.0, seconds)
        while True:
            left = end - self.clock.now()
            if left > 0:
                self.clock.sleep(min(left, max(self.settings.poll_interval, 1.0)))
            self._renew_lease()
            self._check_stop_now()
            if until_stop and self._stop_requested():
                return
            if self.clock.now() >= end:
                return

    def _poll(self) -> None:
        """Wait for the next observation: until the target reports a change, at most one poll interval. Raises
        Stop when the run must stop at once."""
        self.clock.wait(self.settings.poll_interval)
        self._renew_lease()
        self._check_stop_now()

    # ------------------------------------------------------------------ stopping and requests

    def _stop_verdict(self, rule: str, why: str) -> Verdict:
        return Verdict.wait(rule, f"{why}; the platform is in a safe state: run the same command to resume")

    def _check_stop_now(self) -> None:
        """Raise Stop on a second stop request or an abort request stored with the platform."""
        if self._stop_now():
            raise Stop(self._stop_verdict("run.stopped-at-once", "stopped at once on a second request"))
        request = self.target.control.read_request()
        if request is not None and request.action == "abort":
            self.target.control.write_request(None)  # consumed: the next run is not aborted by it
            self.audit("abort", request.describe(), "stopping at once")
            raise Stop(self._stop_verdict("run.aborted", f"aborted: {request.describe()}"))
        if self._stop_requested() and not self._stop_announced:
            self._stop_announced = True
            self.emit(
                "stop-requested", "stop requested: the run stops at the next safe point (send it again to stop at once)"
            )

    def _stop_if_requested(self, where: str) -> None:
        """At a safe point (before a step acts): a first stop request ends the run here."""
        self._check_stop_now()
        if self._stop_requested():
            raise Stop(self._stop_verdict("run.stop-requested", f"stopped on request {where}"))

    def _hold_while_paused(self, where: str) -> bool:
        """A pause request holds the run here (a step boundary) until it is withdrawn; True if it held."""
        request = self.target.control.read_request()
        if request is None or request.action != "pause":
            return False
        message = (
            f"paused {where}: {request.describe()}; `toolkit upgrade resume --env {self.target.name}` continues, "
            "`toolkit upgrade abort` stops"
        )
        self.emit("paused", message)
        self.audit("pause", request.describe(), f"holding {where}")
        while request is not None and request.action == "pause":
            self._poll()
            self._stop_if_requested(f"while paused {where}")
            request = self.target.control.read_request()
        self.emit("resumed", f"resumed {where}")
        self.audit("resume", "the pause request was withdrawn", f"continuing {where}")
        return True

    # ------------------------------------------------------------------ lease

    def _take_lease(self) -> None:
        existing = self.target.control.read_lease()
        alive = existing is not None and self.target.control.holder_alive(existing.holder)
        verdict = lease_rules.may_acquire(existing, self.holder, self.clock.now(), alive)
        if not verdict.ok:
            raise Halt(verdict, outcome="refused")
        new = lease_rules.acquire(existing, self.holder, self.clock.now(), self._lease_ttl)
        try:
            self.target.control.write_lease(new, existing)
        except LeaseHeldError as exc:
            raise Halt(Verdict.refuse("lease.single-holder", str(exc)), outcome="refused") from None
        self._lease = new
        self.emit("lease", verdict.reason)

    def _renew_lease(self) -> None:
        lease = self._lease
        if lease is None:
            return
        new = lease_rules.acquire(lease, self.holder, self.clock.now(), self._lease_ttl)
        try:
            self.target.control.write_lease(new, lease)
        except LeaseHeldError as exc:
            self._lease = None
            raise Halt(Verdict.refuse("lease.lost", f"lost the lease while running: {exc}")) from None
        self._lease = new

    def _release_lease(self) -> None:
        lease = self._lease
        if lease is not None:
            with contextlib.suppress(LeaseHeldError):
                self.target.control.write_lease(None, lease)
            self._lease = None

    # ------------------------------------------------------------------ run

    def run(self) -> RunResult:
        started = self.clock.now()
        if self._settings_problem:
            v = Verdict.refuse("run.settings", f"settings that cannot work: {self._settings_problem}")
            empty = Plan(environment=self.target.name, simulated=self.target.simulated, targets=(), refusals=(v,))
            return self._result(empty, "refused", v, started)
        state = self.target.observe()
        first_plan = self.plan(state)
        self._steps_planned = len(first_plan.steps)
        self.emit("plan", f"{len(first_plan.steps)} steps planned")
        if first_plan.refused:
            v = first_plan.refusals[0]
            self.audit("plan", v.reason, "refused")
            return self._result(first_plan, "refused", v, started)
        try:
            self._take_lease()
        except Halt as h:
            self.audit("lease", h.verdict.reason, "refused")
            return self._result(first_plan, h.outcome, h.verdict, started)
        self.audit("start", f"upgrade to {self.targets}", "lease taken")
        try:
            outcome, verdict = self._loop(state, first_plan)
        except Halt as h:
            outcome, verdict = h.outcome, h.verdict
            kind = "stop" if isinstance(h, Stop) else "halt"
            self.emit(kind, verdict.reason, rule=verdict.rule)
            self.audit(kind, verdict.reason, h.outcome)
        self._release_lease()
        return self._result(first_plan, outcome, verdict, started)

    def _result(self, plan: Plan, outcome: str, verdict: Verdict, started: float) -> RunResult:
        return RunResult(
            environment=self.target.name,
            simulated=self.target.simulated,
            outcome=outcome,
            reason=verdict.reason,
            rule=verdict.rule,
            started_at=started,
            ended_at=self.clock.now(),
            plan=plan,
            steps=self.records,
        )

    def _loop(self, state: PlatformState, plan: Plan) -> tuple[str, Verdict]:
        last_done: StepRecord | None = None
        fresh = True  # `state` and `plan` were just made: plan once per observation
        while True:
            where = f"after step {last_done.id}" if last_done else "before the first step"
            self._stop_if_requested(where)
            if self._hold_while_paused(where):
                fresh = False
            if not fresh:
                self._renew_lease()
                observed = self.target.observe()
                while observed is state:  # nothing observed since the last plan: wait for the next observation
                    self._poll()
                    observed = self.target.observe()
                state = observed
                plan = self.plan(state)
            fresh = False
            if plan.refused:
                raise Halt(plan.refusals[0])
            if not plan.steps:
                self._steps_planned = 0  # done == total
                v = Verdict.passed("run.completed", "every component runs its target version")
                self.target.control.clear_restarts()
                self.emit("done", v.reason)
                self.audit("finish", v.reason, "completed")
                return "completed", v
            step = self._await_gates(plan, state)
            record = self._execute(step)
            last_done = record
            if self.settings.pace_seconds > 0:
                self.emit("pace", f"pacing {self.settings.pace_seconds:.0f} s before the next step")
                self._sleep(self.settings.pace_seconds)

    # ------------------------------------------------------------------ gates

    def _candidates(self, plan: Plan) -> list[Step]:
        head = plan.steps[0]
        if head.kind not in REQUEUED_KINDS:
            return [head]
        return [
            s for s in plan.steps if s.kind == head.kind and s.component == head.component and s.phase == head.phase
        ]

    def _await_gates(self, plan: Plan, state: PlatformState) -> Step:
        """The step to take next, from the plan's own verdicts (`Step.blocked`); waits while every candidate is
        blocked. A stop request ends the wait within one observation interval; a pause holds it."""
        waited_since = self.clock.now()
        pending: dict[str, float] = {}
        last_reason = ""
        head_id = plan.steps[0].id
        while True:
            candidates = self._candidates(plan)
            blocking: Verdict | None = None
            for step in candidates:
                verdict = step.blocked
                if verdict is None:
                    self._pending_gates = pending
                    self._steps_planned = sum(1 for r in self.records if r.outcome == "done") + len(plan.steps)
                    if blocking is not None:
                        message = f"{candidates[0].id} cannot roll yet and goes back in the queue: {blocking.reason}"
                        self.emit("requeue", message, step=step.id, rule=blocking.rule)
                        self.audit("requeue", message, f"taking {step.id} first", step=step.id)
                    return step
                if verdict.fatal:
                    raise Halt(verdict)
                if blocking is None:
                    blocking = verdict
            assert blocking is not None
            now = self.clock.now()
            pending[blocking.rule] = pending.get(blocking.rule, 0.0)
            if blocking.reason != last_reason:
                self.emit("gate-wait", blocking.reason, step=head_id, rule=blocking.rule)
                self.audit("gate-wait", blocking.reason, "waiting", step=head_id)
                last_reason = blocking.reason
            if now - waited_since >= self.settings.gate_timeout:
                raise Halt(
                    Verdict.refuse(
                        blocking.rule,
                        f"gave up after {now - waited_since:.0f} s waiting to start {head_id}: {blocking.reason}. "
                        "Nothing else was touched; fix the cause and run the same command to resume",
                    )
                )
            before = self.clock.now()
            self._poll()
            pending[blocking.rule] += self.clock.now() - before
            self._gate_reasons[blocking.rule] = blocking.reason
            self._stop_if_requested(f"while waiting to start {head_id}")
            if self._hold_while_paused(f"while waiting to start {head_id}"):
                waited_since = self.clock.now()  # a pause is not a gate that failed to clear
            observed = self.target.observe()
            if observed is state:
                continue  # the same observation: the same plan (a target may return before new data arrives)
            state = observed
            plan = self.plan(state)
            if plan.refused:
                raise Halt(plan.refusals[0])
            if not plan.steps:
                raise Halt(Verdict.passed("run.completed", "nothing left to do"), outcome="completed")
            head_id = plan.steps[0].id

    # ------------------------------------------------------------------ acting

    def _act(self, what: str, action: Callable[[], None], step: Step) -> None:
        attempts = 0
        while True:
            self.audit(
                what, step.reason, "intent" if not attempts else f"intent (attempt {attempts + 1})", step=step.id
            )
            try:
                action()
            except ActionError as exc:
                attempts += 1
                self.audit(what, str(exc), f"failed (attempt {attempts})", step=step.id)
                if attempts > self.settings.action_retries:
                    raise Halt(
                        Verdict.refuse(
                            "run.action-failed",
                            f"{what} for {step.id} failed {attempts} times: {exc}. Run the same command to retry",
                        )
                    ) from None
                self._sleep(min(self.settings.poll_interval * 2**attempts, 60.0), until_stop=False)
                continue
            self.audit(what, step.reason, "ok", step=step.id)
            self.emit("act", what, step=step.id)
            return

    def _cleanup(self, what: str, action: Callable[[], None], step: Step) -> None:
        for attempt in range(1, self.settings.action_retries + 2):
            self.audit(what, "undo the step's preparation before stopping", "intent", step=step.id)
            try:
                action()
            except ActionError as exc:
                self.audit(what, str(exc), f"failed (attempt {attempt}); the next run repairs it", step=step.id)
                continue
            self.audit(what, "undo the step's preparation before stopping", "ok", step=step.id)
            self.emit("act", what, step=step.id)
            return

    def _execute(self, step: Step) -> StepRecord:
        record = StepRecord(
            id=step.id,
            kind=step.kind,
            component=step.component,
            members=step.members,
            version=step.version,
            reason=step.reason,
            started_at=self.clock.now(),
        )
        for rule, seconds in self._pending_gates.items():
            reason = self._gate_reasons.get(rule, "")
            record.gates_waited.append(GateWait(rule, seconds, reason))
        self._pending_gates = {}
        self._gate_reasons = {}
        self.records.append(record)
        self.emit("step", step.reason, step=step.id)
        try:
            self.drivers[step.component].perform(step, _StepRun(self, step, record))
        except Halt as h:
            record.outcome = "halted"
            record.message = h.verdict.reason
            record.ended_at = self.clock.now()
            raise
        except BaseException:
            record.outcome = "interrupted"
            record.ended_at = self.clock.now()
            raise
        record.outcome = "done"
        record.ended_at = self.clock.now()
        self.emit("recovered", record.message or "done", step=step.id)
        return record

    def _restart(self, pod: str, step: Step, record: StepRecord, recheck: bool = True) -> None:
        if recheck:
            self._recheck_gates(step, record)
        control = self.target.control
        used = control.restarts_spent(pod, step.version)
        if used >= self.settings.restart_budget:
            raise Halt(
                Verdict.refuse(
                    "run.restart-budget",
                    f"restart budget of {self.settings.restart_budget} spent on {pod}: {used} restarts towards "
                    f"{step.version} are recorded with the platform (kept across resumed runs) and it did not "
                    "recover. Nothing else was touched; investigate the pod, then run the same command with "
                    f"--restart-budget {used + 1} to give it one more",
                )
            )
        control.spend_restart(pod, step.version)
        record.restarts += 1
        self._act(f"restart {pod}", lambda: self.target.workloads.restart_pod(pod), step)

    def _recheck_gates(self, step: Step, record: StepRecord) -> None:
        """Right before a member goes down, its step's gates again on a fresh observation: a step may have spent
        time preparing (Elasticsearch's shutdown record) while another member went down or NotReady. Waits while
        blocked, up to `gate_timeout`; a stop request ends the wait (nothing went down yet)."""
        started = self.clock.now()
        last_reason = ""
        while True:
            state = self.target.observe()
            verdict = first_blocking(planner.step_gates(state, step, self.settings, self.drivers))
            if verdict is None:
                return
            if verdict.fatal:
                raise Halt(verdict)
            if verdict.reason != last_reason:
                self.emit("gate-wait", f"before going down: {verdict.reason}", step=step.id, rule=verdict.rule)
                self.audit("gate-wait", verdict.reason, "waiting before going down", step=step.id)
                last_reason = verdict.reason
            if self.clock.now() - started >= self.settings.gate_timeout:
                raise Halt(
                    Verdict.refuse(
                        verdict.rule,
                        f"gave up after {self.clock.now() - started:.0f} s waiting to take {step.id} down: "
                        f"{verdict.reason}. Its preparation was undone; fix the cause and run the same command",
                    )
                )
            before = self.clock.now()
            self._poll()
            record.waited(verdict, self.clock.now() - before)
            self._stop_if_requested(f"before taking {step.id} down")

    # ------------------------------------------------------------------ waiting

    def _wait_for(
        self,
        step: Step,
        record: StepRecord,
        condition: Callable[[PlatformState], Verdict],
        confirm: bool = False,
        retry_members: bool = False,
    ) -> None:
        started = self.clock.now()
        ok_since: float | None = None
        last_reason = ""
        while True:
            state = self.target.observe()
            verdict = condition(state)
            now = self.clock.now()
            if verdict.ok:
                if ok_since is None:
                    ok_since = now
                if not confirm or now - ok_since >= self.settings.confirm_seconds:
                    record.message = verdict.reason
                    return
            else:
                if ok_since is not None:
                    self.emit("gate-wait", f"relapsed: {verdict.reason}", step=step.id, rule=verdict.rule)
                ok_since = None
                if verdict.fatal:
                    raise Halt(verdict)
                if verdict.reason != last_reason:
                    self.emit("gate-wait", verdict.reason, step=step.id, rule=verdict.rule)
                    last_reason = verdict.reason
                if now - started >= self.settings.step_timeout:
                    unready = (
                        [m for m in step.members if (p := state.pod(m)) is None or (not p.ready and not p.terminating)]
                        if retry_members
                        else []
                    )
                    spent = self.target.control.restarts_spent
                    if unready and all(spent(m, step.version) < self.settings.restart_budget for m in unready):
                        for m in unready:
                            self.audit(
                                "retry",
                                f"{m} did not recover within {self.settings.step_timeout:.0f} s",
                                "restarting again",
                                step=step.id,
                            )
                            self._restart(m, step, record, recheck=False)
                        started = self.clock.now()
                        continue
                    budget = ""
                    if unready:
                        used = max(spent(m, step.version) for m in unready)
                        budget = (
                            f"; restart budget {self.settings.restart_budget} spent ({used} restarts towards "
                            f"{step.version} recorded with the platform, kept across resumed runs; --restart-budget "
                            f"{used + 1} allows one more)"
                        )
                    raise Halt(
                        Verdict.refuse(
                            verdict.rule,
                            f"{step.id} did not reach its promised state within "
                            f"{self.settings.step_timeout:.0f} s: {verdict.reason}{budget}. Nothing after it was "
                            "touched; fix the cause and run the same command to resume",
                        )
                    )
            before = self.clock.now()
            self._poll()
            if not verdict.ok:
                record.waited(verdict, self.clock.now() - before)


class _StepRun:
    """The executor's side of one step, lent to the component's driver (`toolkit.engine.drivers.StepContext`)."""

    def __init__(self, executor: Executor, step: Step, record: StepRecord) -> None:
        self._executor = executor
        self._step = step
        self._record = record

    @property
    def settings(self) -> UpgradeSettings:
        return self._executor.settings

    @property
    def clock(self) -> Clock:
        return self._executor.clock

    @property
    def target(self) -> Target:
        return self._executor.target

    def observe(self) -> PlatformState:
        return self._executor.target.observe()

    def act(self, what: str, action: Callable[[], None]) -> None:
        self._executor._act(what, action, self._step)

    def cleanup(self, what: str, action: Callable[[], None]) -> None:
        self._executor._cleanup(what, action, self._step)

    def restart(self, pod: str) -> None:
        self._executor._restart(pod, self._step, self._record)

    def wait_for(
        self, condition: Callable[[PlatformState], Verdict], confirm: bool = False, retry_members: bool = False
    ) -> None:
        self._executor._wait_for(self._step, self._record, condition, confirm=confirm, retry_members=retry_members)

    def wait_done(self, confirm: bool, retry_members: bool = False) -> None:
        executor, step = self._executor, self._step
        self.wait_for(
            lambda s: planner.step_done(s, step, executor.settings, executor.drivers),
            confirm=confirm,
            retry_members=retry_members,
        )

    def poll(self) -> None:
        self._executor._poll()

    def waited(self, verdict: Verdict, seconds: float) -> None:
        self._record.waited(verdict, seconds)

    def note(self, what: str, verdict: Verdict) -> None:
        self._record.waited(verdict, 0.0)
        self._executor.audit(what, verdict.reason, "refused; waiting", step=self._step.id)
        self._executor.emit("gate-wait", f"{what}: {verdict.reason}", step=self._step.id, rule=verdict.rule)

    def finish(self, message: str) -> None:
        self._record.message = message
