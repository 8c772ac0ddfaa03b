"""Runs you can stop, pause, abort and resume, on the simulated platform (in process; the same with real OS
processes and signals is in tests/cli/test_processes.py): where each request takes effect, what is left behind,
what is kept with the platform."""

from __future__ import annotations

import pytest

from tests.scenarios.harness import make
from toolkit.config.platform import KafkaSpec
from toolkit.engine.executor import Event
from toolkit.model import Component, RunRequest, UpgradeSettings
from toolkit.targets.sim import Faults, InjectionError, SimParams, parse_injections

ES = {Component.ELASTICSEARCH: "8.19.3"}
KAFKA = {Component.KAFKA: "4.1.0"}


def test_a_stop_request_during_a_gate_wait_stops_within_one_poll_interval_and_releases_the_lease() -> None:
    sc = make(faults=Faults(red_cluster=True))  # the health gate cannot pass: the run waits on it
    asked: list[float] = []

    def on_first_wait(e: Event) -> None:
        if e.kind == "gate-wait" and e.rule == "elasticsearch.health" and not asked:
            asked.append(e.at)

    settings = UpgradeSettings(poll_interval=30, gate_timeout=3600)
    result = sc.run(ES, settings, hook=on_first_wait, stop_requested=lambda: bool(asked))
    assert result.outcome == "stopped" and result.rule == "run.stop-requested"
    assert "while waiting to start" in result.reason and "safe state" in result.reason
    assert result.ended_at - asked[0] <= settings.poll_interval
    assert sc.world.lease is None
    assert sc.target.control.audit_trail()[-1]["what"] == "stop"


def test_a_first_stop_request_during_a_step_finishes_the_step() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    asked: list[str] = []

    def during_second_restart(e: Event) -> None:
        if e.kind == "act" and e.message == "restart kafka-controller-2":
            asked.append(e.step)

    result = sc.run(KAFKA, hook=during_second_restart, stop_requested=lambda: bool(asked))
    assert result.outcome == "stopped" and result.steps[-1].id == asked[0] and result.steps[-1].outcome == "done"
    assert any(e.kind == "stop-requested" for e in sc.events)
    assert sc.resume().run(KAFKA).ok


def test_stop_at_once_during_a_step_undoes_its_preparation() -> None:
    # allocation method: an Elasticsearch restart first restricts allocation to primaries
    sc = make(params=SimParams(es_shutdown_api=False))
    now: list[bool] = []

    def after_first_es_restart(e: Event) -> None:
        if e.kind == "act" and e.message.startswith("restart es-"):
            now.append(True)

    result = sc.run(ES, hook=after_first_es_restart, stop_now=lambda: bool(now))
    assert result.outcome == "stopped" and result.rule == "run.stopped-at-once"
    assert result.steps[-1].outcome == "halted"
    assert sc.world.elasticsearch.allocation is None  # never left restricted
    trail = sc.target.control.audit_trail()
    undo = [a for a in trail if a["what"].startswith("undo the preparation")]
    assert [a["result"] for a in undo] == ["intent", "ok"]
    assert sc.world.lease is None
    assert sc.resume().run(ES).ok


def test_a_pause_holds_the_run_at_the_next_step_boundary_beyond_the_gate_timeout_until_resumed() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    control = sc.target.control
    paused_at: list[float] = []

    def pause_during_first_restart(e: Event) -> None:
        if e.kind == "act" and e.message.startswith("restart ") and not paused_at:
            control.write_request(RunRequest("pause", "ops@host/9", "2026-01-01T00:00:00+00:00", "change freeze"))
            paused_at.append(e.at)

    class ResumeLater:
        def tick(self, world, dt: float) -> None:  # type: ignore[no-untyped-def]
            world.workers.tick(dt)
            if paused_at and world.now >= paused_at[0] + 1000 and world.request is not None:
                world.request = None  # `toolkit upgrade resume`

    sc.world.traffic = ResumeLater()
    result = sc.run(KAFKA, UpgradeSettings(gate_timeout=300), hook=pause_during_first_restart)
    assert result.ok, result.reason
    held = next(e for e in sc.events if e.kind == "paused")
    resumed = next(e for e in sc.events if e.kind == "resumed")
    assert "after step kafka/restart/" in held.message and "change freeze" in held.message
    assert resumed.at - held.at >= 900  # longer than the gate timeout: a pause is not a gate that failed
    first, second = [r for r in result.steps if r.kind == "restart"][:2]
    assert first.outcome == "done" and first.ended_at <= held.at  # the step in progress finished
    assert second.started_at >= resumed.at  # nothing started while paused
    trail = [a["what"] for a in control.audit_trail()]
    assert "pause" in trail and "resume" in trail


def test_an_abort_request_stops_within_one_poll_interval_and_is_consumed() -> None:
    sc = make(params=SimParams(es_shutdown_api=False))
    control = sc.target.control
    asked: list[float] = []

    def abort_after_first_es_restart(e: Event) -> None:
        if e.kind == "act" and e.message.startswith("restart es-") and not asked:
            control.write_request(RunRequest("abort", "ops@host/9", "2026-01-01T00:00:00+00:00"))
            asked.append(e.at)

    settings = UpgradeSettings(poll_interval=5)
    result = sc.run(ES, settings, hook=abort_after_first_es_restart)
    assert result.outcome == "stopped" and result.rule == "run.aborted" and "ops@host/9" in result.reason
    assert result.ended_at - asked[0] <= settings.poll_interval
    assert sc.world.elasticsearch.allocation is None and sc.world.lease is None
    assert control.read_request() is None  # consumed: the next run is not aborted by it
    assert sc.resume().run(ES).ok


def test_the_restart_budget_is_kept_with_the_platform_across_a_resume() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3), faults=Faults(never_ready=["kafka-broker-1"]))
    settings = UpgradeSettings(step_timeout=120, restart_budget=2)
    first = sc.run(KAFKA, settings)
    assert first.outcome == "halted" and "restart budget 2 spent" in first.reason
    assert sc.target.control.restarts_spent("kafka-broker-1", "4.1.0") == 2
    # a new orchestrator: the broker is on the new revision but not Ready, so the roll waits for it first and may
    # restart it again only within what is left of its budget: nothing
    again = sc.resume()
    before = len(again.acts("restart kafka-broker-1"))
    second = again.run(KAFKA, settings)
    assert second.steps[0].kind == "recover" and second.steps[0].members == ("kafka-broker-1",)
    assert second.outcome == "halted"
    assert "2 restarts towards 4.1.0 recorded with the platform" in second.reason
    assert "--restart-budget 3 allows one more" in second.reason
    assert len(again.acts("restart kafka-broker-1")) == before  # not restarted a third time
    third = sc.resume()
    third_result = third.run(KAFKA, UpgradeSettings(step_timeout=120, restart_budget=3))
    assert third_result.outcome == "halted" and sc.target.control.restarts_spent("kafka-broker-1", "4.1.0") == 3
    assert len(third.acts("restart kafka-broker-1")) == before + 1


def test_the_restart_budget_is_cleared_when_an_upgrade_completes() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    assert sc.run(KAFKA).ok
    assert sc.world.restarts_given == {}


def test_settings_that_cannot_work_are_refused_by_the_executor_itself() -> None:
    sc = make()
    for bad in (
        UpgradeSettings(poll_interval=float("nan")),
        UpgradeSettings(poll_interval=0),
        UpgradeSettings(gate_timeout=float("inf")),
        UpgradeSettings(step_timeout=-1),
    ):
        result = sc.run(KAFKA, bad)
        assert result.outcome == "refused" and result.rule == "run.settings", bad
    assert sc.world.lease is None and all(p.restarts == 0 for p in sc.world.pods.values())


def test_faults_apply_to_a_platform_that_has_been_running() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    sc.world.advance(600)
    sc.world.apply_faults(parse_injections(["unready=kafka-broker-2", "recovering=kafka-broker-0:300"]))
    assert not sc.world.pods["kafka-broker-2"].ready
    assert sc.world.pods["kafka-broker-0"].recovering_until == 900
    result = sc.run(KAFKA)
    assert result.ok and sc.restart_order()[0] == "kafka-broker-2"  # applied: the unready one restarts first


def test_faults_naming_unknown_pods_or_impossible_states_are_refused_and_change_nothing() -> None:
    sc = make()
    with pytest.raises(InjectionError, match=r"never-ready=kafka-brokr-2: no such pod in scenario .*kafka-broker-2"):
        sc.world.apply_faults(parse_injections(["unready=kafka-broker-1", "never-ready=kafka-brokr-2"]))
    assert sc.world.pods["kafka-broker-1"].ready  # nothing of the batch was applied
    with pytest.raises(InjectionError, match="log recovery applies to Kafka nodes"):
        sc.world.apply_faults(parse_injections(["recovering=es-hot-0:60"]))
    sc.world.apply_faults(parse_injections(["red-cluster"]))
    with pytest.raises(InjectionError, match="already red"):
        sc.world.apply_faults(parse_injections(["red-cluster"]))
    sc.world.apply_faults(parse_injections(["terminating=es-warm-0:60"]))
    with pytest.raises(InjectionError, match="already terminating"):
        sc.world.apply_faults(parse_injections(["unready=es-warm-0"]))
