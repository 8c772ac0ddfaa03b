"""The run's status object and Events on the simulated platform, on the virtual clock: the phases a run goes through
(with the gate, its rule and reason while one blocks it), how it ends (Completed, Halted, Stopped, Refused), the
conditions as Kubernetes keeps them, the Events on pods and workloads, and the throttle (a transition is written at
once, a change within one gate at most every `interval` seconds).

Each run is wired as `toolkit.operations.run_upgrade` wires it (Executor -> RunReporter -> the target's status
port); the status is read back through the port after every event, as `kubectl get` would show it at that moment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness import make

from toolkit.catalog import load
from toolkit.config.platform import KafkaSpec
from toolkit.engine.executor import Event, Executor, RunResult
from toolkit.engine.status import from_data, rfc3339
from toolkit.model import Component, Lease, RunRequest, UpgradeSettings
from toolkit.targets.run_reporting import RunReporter
from toolkit.targets.sim import Faults

HOLDER = "sre@host-a/1"
EPOCH = 1_800_000_000.0  # the wall clock of virtual second 0
KAFKA: dict[str, str] = {Component.KAFKA: "4.1.0"}


@dataclass
class Reported:
    result: RunResult
    seen: list[tuple[Event, dict[str, Any]]]  # each event with the status as the port held it right after
    reporter: RunReporter
    final: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def phases(self) -> list[str]:
        out: list[str] = []
        for _, doc in self.seen:
            if not out or out[-1] != doc["phase"]:
                out.append(doc["phase"])
        return out


def run_reported(
    sc: Any, settings: UpgradeSettings | None = None, hook: Any = None, interval: float = 10.0
) -> Reported:
    seen: list[tuple[Event, dict[str, Any]]] = []

    def forward(e: Event) -> None:
        seen.append((e, from_data(sc.target.status.read_status() or {})))
        if hook is not None:
            hook(e)

    reporter = RunReporter(
        sc.target, HOLDER, KAFKA, forward=forward, interval=interval, wall=lambda: EPOCH + sc.target.clock.now()
    )
    executor = Executor(sc.target, load(), KAFKA, settings or UpgradeSettings(), holder=HOLDER, on_event=reporter)
    result = executor.run()
    reporter.finish(result)
    final = from_data(sc.target.status.read_status() or {})
    return Reported(result, seen, reporter, final, sc.target.status.events())


def recovering_broker(seconds: float) -> Any:
    # broker 100 (kafka-broker-0) is in log recovery: it may not restart; its peers go first (re-queued), then the
    # run waits on it
    return make(
        kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3),
        faults=Faults(recovering={"kafka-broker-0": seconds}),
    )


def conditions(doc: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["type"]: c for c in doc["conditions"]}


def test_a_blocked_gate_shows_as_waiting_on_its_rule_with_the_reason_then_the_run_completes() -> None:
    run = run_reported(recovering_broker(1200))
    assert run.result.outcome == "completed", run.result.reason
    assert run.phases()[:3] == ["Planning", "Running", "WaitingOnGate"]
    assert run.phases()[-1] == "Running"  # the last event before the outcome (written by finish)
    waiting = [(e, doc) for e, doc in run.seen if doc["gate"] and doc["gate"]["rule"] == "kafka.not-in-recovery"]
    assert waiting, "the run never showed the log-recovery gate"
    event, doc = waiting[0]
    assert doc["phase"] == "WaitingOnGate" and doc["step"] == "kafka/restart/kafka-broker-0"
    gate = doc["gate"]
    assert gate["stage"] == "before-step" and gate["step"] == "kafka/restart/kafka-broker-0"
    assert "kafka-broker-0" in gate["reason"] and "log recovery" in gate["reason"]
    assert gate["since"] == rfc3339(EPOCH + event.at)
    blocked = conditions(doc)["GateBlocked"]
    assert blocked["status"] == "True" and blocked["reason"] == "KafkaNotInRecovery"
    assert blocked["message"].startswith("[kafka.not-in-recovery] ") and blocked["lastTransitionTime"] == gate["since"]
    assert conditions(doc)["Progressing"]["status"] == "True"
    assert doc["holder"] == HOLDER and doc["targets"] == {"kafka": "4.1.0"} and doc["simulated"] is True
    assert doc["startedAt"] == rfc3339(EPOCH) and doc["updatedAt"] == rfc3339(EPOCH + event.at)
    # the wait ended when the broker finished recovering (t=1200), then it restarted
    restart = next(e for e, _ in run.seen if e.kind == "act" and e.message == "restart kafka-broker-0")
    assert restart.at >= 1200

    final = run.final
    assert final["phase"] == "Completed" and final["rule"] == "run.completed" and final["gate"] is None
    assert final["steps"] == {"done": len(run.result.steps), "total": len(run.result.steps)}
    assert final["restarts"] == 6 and final["finishedAt"] == rfc3339(EPOCH + run.result.ended_at)
    ended = conditions(final)
    assert ended["Completed"] == {
        "type": "Completed",
        "status": "True",
        "reason": "RunCompleted",
        "message": "[run.completed] every component runs its target version",
        "lastTransitionTime": final["finishedAt"],
    }
    assert ended["Progressing"]["status"] == "False" and ended["Progressing"]["reason"] == "RunCompleted"
    assert ended["GateBlocked"]["status"] == "False" and ended["Paused"]["status"] == "False"
    # Paused never flipped: its lastTransitionTime is still the start, as Kubernetes keeps it
    assert ended["Paused"]["lastTransitionTime"] == rfc3339(EPOCH)


def test_progress_counts_steps_done_against_steps_planned() -> None:
    run = run_reported(recovering_broker(1200))
    done = [doc["steps"] for e, doc in run.seen if e.kind == "recovered"]
    assert [d["done"] for d in done] == list(range(1, len(run.result.steps) + 1))
    assert {d["total"] for d in done} == {len(run.result.steps)}  # 1 apply-spec + 6 restarts, planned from the start


def test_events_name_the_pod_and_its_workload_for_restarts_and_the_gate_wait_and_completion() -> None:
    run = run_reported(recovering_broker(1200))
    by_reason: dict[str, list[dict[str, Any]]] = {}
    for e in run.events:
        by_reason.setdefault(e["reason"], []).append(e)
    restarted = {
        e["involvedObject"]["name"] for e in by_reason["ToolkitRestart"] if e["involvedObject"]["kind"] == "Pod"
    }
    assert restarted == {f"kafka-controller-{i}" for i in range(3)} | {f"kafka-broker-{i}" for i in range(3)}
    on_sets = [e for e in by_reason["ToolkitRestart"] if e["involvedObject"]["kind"] == "StatefulSet"]
    assert {e["involvedObject"]["name"] for e in on_sets} == {"kafka-controller", "kafka-broker"}
    assert all(e["type"] == "Normal" and e["source"]["component"] == "toolkit-orchestrator" for e in on_sets)
    waits = [e for e in by_reason["ToolkitGateWait"] if "kafka.not-in-recovery" in e["message"]]
    assert {(e["involvedObject"]["kind"], e["involvedObject"]["name"]) for e in waits} == {
        ("Pod", "kafka-broker-0"),
        ("StatefulSet", "kafka-broker"),
    }
    assert all("log recovery" in e["message"] and e["count"] == 1 for e in waits)  # one per transition, no repeats
    completed = by_reason["ToolkitCompleted"]
    assert {e["involvedObject"]["name"] for e in completed} == {"kafka-controller", "kafka-broker"}
    assert all("completed (7/7 steps done)" in e["message"] for e in completed)
    assert "ToolkitHalted" not in by_reason


def test_a_gate_that_does_not_clear_halts_and_the_status_says_halted_with_the_rule() -> None:
    sc = recovering_broker(5000)
    run = run_reported(sc, UpgradeSettings(gate_timeout=300))
    assert run.result.outcome == "halted" and run.result.rule == "kafka.not-in-recovery"
    final = run.final
    assert final["phase"] == "Halted" and final["rule"] == "kafka.not-in-recovery"
    assert "gave up after 300 s" in final["message"] and final["gate"] is None
    ended = conditions(final)
    assert ended["Completed"]["status"] == "False" and ended["Completed"]["reason"] == "RunHalted"
    assert ended["Progressing"]["status"] == "False" and "[kafka.not-in-recovery]" in ended["Progressing"]["message"]
    halted = [e for e in run.events if e["reason"] == "ToolkitHalted"]
    assert {(e["involvedObject"]["kind"], e["involvedObject"]["name"]) for e in halted} == {
        ("Pod", "kafka-broker-0"),
        ("StatefulSet", "kafka-broker"),
    }
    assert all(e["type"] == "Warning" and "gave up after 300 s" in e["message"] for e in halted)


def test_a_pause_shows_as_paused_with_the_request_then_running_again() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    paused_at: list[float] = []

    def pause_after_first_restart(e: Event) -> None:
        if e.kind == "act" and e.message.startswith("restart ") and not paused_at:
            sc.target.control.write_request(RunRequest("pause", "ops@host/9", "2026-01-01T00:00:00+00:00", "freeze"))
            paused_at.append(e.at)

    class ResumeLater:
        def tick(self, world: Any, dt: float) -> None:
            world.workers.tick(dt)
            if paused_at and world.now >= paused_at[0] + 600 and world.request is not None:
                world.request = None  # `toolkit upgrade resume`

    sc.world.traffic = ResumeLater()
    run = run_reported(sc, hook=pause_after_first_restart)
    assert run.result.ok, run.result.reason
    paused = next(doc for e, doc in run.seen if e.kind == "paused")
    assert paused["phase"] == "Paused"
    held = conditions(paused)["Paused"]
    assert held["status"] == "True" and held["reason"] == "PauseRequested" and "freeze" in held["message"]
    resumed = next(doc for e, doc in run.seen if e.kind == "resumed")
    assert resumed["phase"] == "Running" and conditions(resumed)["Paused"]["status"] == "False"
    assert conditions(resumed)["Paused"]["lastTransitionTime"] > held["lastTransitionTime"]
    reasons = [e["reason"] for e in run.events if e["involvedObject"]["name"] == "kafka-broker"]
    assert "ToolkitPaused" in reasons and "ToolkitResumed" in reasons
    assert run.final["phase"] == "Completed"


def test_a_stop_request_ends_stopped() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    done = [0]

    def count(e: Event) -> None:
        done[0] += e.kind == "recovered"

    reporter = RunReporter(sc.target, HOLDER, KAFKA, forward=count, wall=lambda: EPOCH)
    result = Executor(
        sc.target,
        load(),
        KAFKA,
        UpgradeSettings(),
        holder=HOLDER,
        on_event=reporter,
        stop_requested=lambda: done[0] >= 2,
    ).run()
    reporter.finish(result)
    final = from_data(sc.target.status.read_status() or {})
    assert result.outcome == "stopped" and final["phase"] == "Stopped" and final["rule"] == "run.stop-requested"
    assert final["steps"]["done"] == 2
    assert any(e["reason"] == "ToolkitStopped" for e in sc.target.status.events())


def test_a_run_refused_because_another_holds_the_lease_leaves_that_runs_status_alone() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    other = "ops@host-b/7"
    sc.world.lease = Lease(other, 0.0, 0.0, 3600.0)  # a live run on another host
    theirs = {"phase": "WaitingOnGate", "holder": other, "gate": "kafka.isr-rejoined"}
    sc.target.status.write_status(theirs)
    run = run_reported(sc)
    assert run.result.outcome == "refused" and run.result.rule == "lease.single-holder"
    assert sc.target.status.read_status() == theirs
    assert run.events == [] and run.reporter.writes == 0


def test_a_refused_plan_shows_refused_when_nobody_else_runs() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    reporter = RunReporter(sc.target, HOLDER, {"kafka": "3.9.1"}, wall=lambda: EPOCH)
    result = Executor(sc.target, load(), {"kafka": "3.9.1"}, UpgradeSettings(), holder=HOLDER, on_event=reporter).run()
    reporter.finish(result)
    final = from_data(sc.target.status.read_status() or {})
    assert result.outcome == "refused"
    assert (
        final["phase"] == "Refused"
        and final["rule"] == result.rule
        and conditions(final)["Completed"]["reason"] == "RunRefused"
    )
    refused = [e for e in sc.target.status.events() if e["reason"] == "ToolkitRefused"]
    assert refused and all(e["type"] == "Warning" for e in refused)


def test_writes_happen_on_transitions_and_at_most_every_interval_while_a_gates_reason_changes() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    reporter = RunReporter(sc.target, HOLDER, KAFKA, interval=10.0, wall=lambda: EPOCH + sc.target.clock.now())
    clock = sc.target.clock
    reporter(Event(clock.now(), "plan", "7 steps planned", progress=(0, 7)))
    reporter(Event(clock.now(), "lease", "no orchestrator holds this environment", progress=(0, 7)))
    assert reporter.writes == 2  # two transitions: Planning, Running
    step = "kafka/restart/kafka-broker-1"
    for second in range(60):  # a minute of a gate whose reason changes at every poll (a lag figure)
        reporter(
            Event(
                clock.now(), "gate-wait", f"lag {1000 - second}", step=step, rule="kafka.isr-rejoined", progress=(0, 7)
            )
        )
        clock.sleep(1.0)
    # one transition (WaitingOnGate) + one write per 10 s of changed reasons, not 60
    assert reporter.writes == 2 + 1 + 5
    shown = from_data(sc.target.status.read_status() or {})
    assert shown["gate"]["rule"] == "kafka.isr-rejoined" and shown["gate"]["reason"] == "lag 950"
    assert shown["gate"]["since"] == rfc3339(EPOCH)  # the same gate: since its first report
    reporter(Event(clock.now(), "recovered", "done", step=step, progress=(1, 7)))
    assert reporter.writes == 9  # a transition is written at once
    assert from_data(sc.target.status.read_status() or {})["steps"] == {"done": 1, "total": 7}
