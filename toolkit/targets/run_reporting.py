"""Show a run while and after it runs: the executor's events, folded by `toolkit.engine.status.RunStatus`, written
to the target's status port (the ConfigMap `toolkit-upgrade-status` on Kubernetes, the simulated platform's status
file), recorded as Kubernetes Events on the pods and workloads, and counted in Prometheus metrics
(`toolkit.targets.run_metrics`), served and/or pushed.

When it writes
- on a transition (phase, step, gate rule, progress, a condition's status): at once, and a Pushgateway push;
- otherwise (a gate's reason changed, e.g. a lag figure) at most every `interval` seconds of the run's clock; a change
  held back is written with the next transition or at the end;
- the outcome (Completed, Halted, Stopped, Refused) once, by `finish`, after the executor returned.
Whose status it is: the run writes only while it holds the lease, or, before or after holding it, when no other live
orchestrator does: a run refused because another one holds the lease leaves that run's status alone.
It never fails or slows the run beyond a short retry: a write that fails is counted
(`toolkit_upgrade_status_write_errors_total`), remembered in `problems`, and tried again at the next write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from toolkit.engine.executor import Event, RunResult
from toolkit.engine.ports import Target
from toolkit.engine.status import TERMINAL_EVENTS, RunStatus
from toolkit.model import Notice
from toolkit.targets.run_metrics import RunMetrics

DEFAULT_INTERVAL = 10.0  # run-clock seconds between two writes of a status that changed without a transition


class RunReporter:
    def __init__(
        self,
        target: Target,
        holder: str,
        targets: Mapping[str, str],
        forward: Callable[[Event], None] | None = None,
        metrics: RunMetrics | None = None,
        push_url: str | None = None,
        interval: float = DEFAULT_INTERVAL,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self.port: Any = getattr(target, "status", None)  # a StatusPort, when the target offers one
        self.holder = holder
        self.forward = forward
        self.metrics = metrics
        self.push_url = push_url
        self.interval = interval
        self.wall = wall
        self.status = RunStatus(target.name, target.simulated, holder, dict(targets), wall)
        self.problems: list[str] = []
        self.writes = 0
        self.pushes = 0
        self._owner = False  # holds the lease now
        self._other: bool | None = None  # another live orchestrator holds it (asked once before the lease is ours)
        self._written_key: tuple[Any, ...] | None = None
        self._written_at = float("-inf")
        if metrics is not None:
            metrics.start(self.status)

    # ------------------------------------------------------------------ whose status

    def _another_holds(self) -> bool:
        control = self.target.control
        try:
            lease = control.read_lease()
        except Exception as exc:  # cannot tell: do not risk overwriting another run's status
            self._problem("read the lease", exc)
            return True
        if lease is None or lease.holder == self.holder or lease.expired(self.target.clock.now()):
            return False
        return bool(control.holder_alive(lease.holder))

    def _may_write(self) -> bool:
        if self._owner:
            return True
        if self._other is None:
            self._other = self._another_holds()
        return not self._other

    # ------------------------------------------------------------------ events

    def __call__(self, event: Event) -> None:
        """Show `event`, then hand it on (`forward`: the CLI's live view), so what the CLI prints is already what
        `kubectl get` shows."""
        self._report(event)
        if self.forward is not None:
            self.forward(event)

    def _report(self, event: Event) -> None:
        notices = self.status.apply(event)
        if event.kind == "lease":
            self._owner = True
        if self.metrics is not None:
            self.metrics.update(event, self.status)
        if event.kind in TERMINAL_EVENTS or not self._may_write():
            return  # the outcome is written by finish(), with the run's result
        self._record(notices)
        key = self.status.key()
        now = self.target.clock.now()
        if key != self._written_key:
            self._write(key, now, push=True)
        elif now - self._written_at >= self.interval:
            self._write(key, now, push=False)

    def finish(self, result: RunResult) -> None:
        """The run returned (its lease released): write its outcome, record the Event, push the last metrics."""
        self._owner = False
        self._other = None
        steps = self.status.steps_done, max(self.status.steps_total, self.status.steps_done)
        notices = self.status.finish(result.outcome, result.rule, result.reason, steps)
        if self.metrics is not None:
            self.metrics.finish(result.outcome, result.rule, self.status, self.target.clock.now())
        if self._may_write():
            self._record(notices)
            self._write(self.status.key(), self.target.clock.now(), push=False)
        self._push()

    # ------------------------------------------------------------------ writing

    def _problem(self, what: str, exc: BaseException) -> None:
        message = f"could not {what}: {exc}"
        if message not in self.problems:
            self.problems.append(message)
        if self.metrics is not None:
            self.metrics.write_errors.labels(what=what.split(" ", 1)[0]).inc()

    def _record(self, notices: list[Notice]) -> None:
        if self.port is None:
            return
        for notice in notices:
            try:
                self.port.record_event(notice)
            except Exception as exc:  # showing a run must never fail it
                self._problem("record an event", exc)

    def _write(self, key: tuple[Any, ...], now: float, push: bool) -> None:
        if self.metrics is not None and key != self._written_key:
            self.metrics.transitioned(self.wall())
        self._written_key, self._written_at = key, now
        if self.port is not None:
            try:
                self.port.write_status(self.status.to_data())
                self.writes += 1
            except Exception as exc:
                self._problem("write the status", exc)
                self._written_key = None  # try again at the next event
        if push:
            self._push()

    def _push(self) -> None:
        if self.metrics is None or not self.push_url:
            return
        try:
            self.metrics.push(self.push_url)
            self.pushes += 1
        except Exception as exc:
            self._problem(f"push to {self.push_url}", exc)
