"""Prometheus metrics of an orchestrator run, fed from the executor's events (`toolkit.targets.run_reporting`).

One registry per run (no process-wide default registry). Served on `--metrics-port` while the run is up (GET
/metrics), and pushed to a Pushgateway with `--metrics-push URL` at each transition and at the end, because the
in-cluster Job is short-lived: the push replaces the group `job="toolkit-upgrade", environment=<name>` (PUT), so the
gateway always holds the run's latest picture, also after the pod is gone.

| metric | type | labels | meaning |
|---|---|---|---|
| toolkit_upgrade_phase | gauge | phase | 1 for the run's phase, 0 for the others (Idle ... Refused) |
| toolkit_upgrade_steps_done | gauge | | steps finished in this run |
| toolkit_upgrade_steps_planned | gauge | | steps this run has planned (done + still planned) |
| toolkit_upgrade_gate_waiting | gauge | rule | 1 while the run waits on this gate |
| toolkit_upgrade_gate_wait_seconds | histogram | rule | each wait on a gate, from its first report until it cleared |
| toolkit_upgrade_restarts_total | counter | component | pods the run restarted |
| toolkit_upgrade_rolls_total | counter | component | Deployments the run rolled |
| toolkit_upgrade_halts_total | counter | rule | runs that halted, by the rule that halted them |
| toolkit_upgrade_runs_total | counter | outcome | runs that ended (completed, halted, stopped, refused) |
| toolkit_upgrade_lease_held | gauge | | 1 while this orchestrator holds the environment's lease |
| toolkit_upgrade_last_transition_timestamp_seconds | gauge | | wall clock of the last transition |
| toolkit_upgrade_status_write_errors_total | counter | what | status, event or push writes that failed (run goes on) |
| toolkit_upgrade_run_info | gauge | environment, holder, targets, simulated | 1 |
Gate wait seconds are on the run's clock (virtual on the simulated platform).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, push_to_gateway, start_http_server

from toolkit.engine.executor import Event
from toolkit.engine.status import PHASES, RunStatus, step_members

JOB = "toolkit-upgrade"
WAIT_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
PUSH_TIMEOUT = 5.0


class RunMetrics:
    def __init__(self, environment: str) -> None:
        self.environment = environment
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.phase = Gauge("toolkit_upgrade_phase", "1 for the run's current phase", ["phase"], registry=r)
        self.steps_done = Gauge("toolkit_upgrade_steps_done", "Steps finished in this run", registry=r)
        self.steps_planned = Gauge(
            "toolkit_upgrade_steps_planned", "Steps this run has planned (done + still planned)", registry=r
        )
        self.waiting = Gauge("toolkit_upgrade_gate_waiting", "1 while the run waits on this gate", ["rule"], registry=r)
        self.gate_wait = Histogram(
            "toolkit_upgrade_gate_wait_seconds",
            "Each wait on a gate, from its first report until it cleared (run clock)",
            ["rule"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.restarts = Counter("toolkit_upgrade_restarts_total", "Pods the run restarted", ["component"], registry=r)
        self.rolls = Counter("toolkit_upgrade_rolls_total", "Deployments the run rolled", ["component"], registry=r)
        self.halts = Counter("toolkit_upgrade_halts_total", "Runs that halted, by rule", ["rule"], registry=r)
        self.runs = Counter("toolkit_upgrade_runs_total", "Runs that ended, by outcome", ["outcome"], registry=r)
        self.lease = Gauge("toolkit_upgrade_lease_held", "1 while this orchestrator holds the lease", registry=r)
        self.transition = Gauge(
            "toolkit_upgrade_last_transition_timestamp_seconds", "Wall clock of the run's last transition", registry=r
        )
        self.write_errors = Counter(
            "toolkit_upgrade_status_write_errors_total",
            "Status, event or push writes that failed (the run goes on)",
            ["what"],
            registry=r,
        )
        self.info = Gauge(
            "toolkit_upgrade_run_info",
            "The run: environment, holder, targets, simulated",
            ["environment", "holder", "targets", "simulated"],
            registry=r,
        )
        self._set_phase(PHASES[0])
        self._wait: tuple[str, str, float] | None = None  # (rule, step, since on the run clock)

    def _set_phase(self, phase: str) -> None:
        for p in PHASES:
            self.phase.labels(phase=p).set(1 if p == phase else 0)

    def start(self, status: RunStatus) -> None:
        targets = ",".join(f"{c}={v}" for c, v in status.targets.items())
        simulated = "true" if status.simulated else "false"
        self.info.labels(status.environment, status.holder, targets, simulated).set(1)
        self._set_phase(status.phase)

    def _close_wait(self, at: float) -> None:
        if self._wait is not None:
            rule, _step, since = self._wait
            self.gate_wait.labels(rule=rule).observe(max(0.0, at - since))
            self.waiting.labels(rule=rule).set(0)
            self._wait = None

    def update(self, event: Event, status: RunStatus) -> None:
        """After `status` folded `event` in."""
        self.steps_done.set(status.steps_done)
        self.steps_planned.set(status.steps_total)
        if event.kind == "gate-wait":
            if self._wait is None or self._wait[:2] != (event.rule, event.step):
                self._close_wait(event.at)
                self._wait = (event.rule, event.step, event.at)
                self.waiting.labels(rule=event.rule).set(1)
        elif event.kind not in ("stop-requested", "pace"):
            self._close_wait(event.at)
        if event.kind == "lease":
            self.lease.set(1)
        elif event.kind == "act":
            component = step_members(event.step)[0]
            if event.message.startswith("restart "):
                self.restarts.labels(component=component).inc()
            elif event.message.startswith("roll deployment "):
                self.rolls.labels(component=component).inc()
        self._set_phase(status.phase)

    def transitioned(self, wall: float) -> None:
        self.transition.set(wall)

    def finish(self, outcome: str, rule: str, status: RunStatus, at: float) -> None:
        self._close_wait(at)
        self.lease.set(0)
        self.steps_done.set(status.steps_done)
        self.steps_planned.set(status.steps_total)
        self.runs.labels(outcome=outcome).inc()
        if outcome == "halted":
            self.halts.labels(rule=rule).inc()
        self._set_phase(status.phase)

    # ------------------------------------------------------------------ exposition

    def serve(self, port: int, addr: str = "0.0.0.0") -> MetricsServer:
        """Serve GET /metrics on `port` (0: any free port, see `MetricsServer.port`) from a daemon thread."""
        server, thread = start_http_server(port, addr=addr, registry=self.registry)
        return MetricsServer(server, thread)

    def push(self, gateway: str) -> None:
        """PUT the registry to the Pushgateway at `gateway` (group job=toolkit-upgrade, environment=<name>)."""
        push_to_gateway(
            gateway,
            job=JOB,
            registry=self.registry,
            grouping_key={"environment": self.environment},
            timeout=PUSH_TIMEOUT,
        )


class MetricsServer:
    def __init__(self, server: Any, thread: Any) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
