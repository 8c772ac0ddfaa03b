"""Crash and resume from observed state, the lease, stop requests, rollback."""

from __future__ import annotations

import pytest

from tests.scenarios.harness import make
from toolkit.config.platform import KafkaSpec
from toolkit.model import Component, Lease, UpgradeSettings
from toolkit.operations import RefusedError, rollback_targets
from toolkit.targets.sim import Faults, OrchestratorCrash, SimParams

TO_ALL = {Component.KAFKA: "4.1.0", Component.ELASTICSEARCH: "8.19.3"}


@pytest.mark.parametrize("crash_after", [1, 3, 6, 9, 12, 14])
def test_crash_after_step_k_then_rerun_completes_without_rerolling(crash_after: int) -> None:
    sc = make(
        kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3),
        faults=Faults(crash_after_step=crash_after),
        params=SimParams(es_shutdown_api=False),
    )
    with pytest.raises(OrchestratorCrash):
        sc.run(TO_ALL)
    assert sc.world.lease is not None  # a dead process does not release its lease
    again = sc.resume()
    result = again.run(TO_ALL)  # same holder host, dead pid: the lease is taken over at once
    assert result.outcome == "completed", result.reason
    for pod in sc.world.pods.values():
        w = sc.world.workloads[pod.workload]
        if w.kind == "StatefulSet":
            assert pod.restarts == 1, f"{pod.name} restarted {pod.restarts} times"
    assert sc.world.elasticsearch.allocation is None and sc.world.elasticsearch.shutdowns == []


def test_crash_inside_an_es_restart_is_repaired_first() -> None:
    # kafka apply-spec, 6 kafka restarts, es apply-spec, then the first es node restart: allocation left 'primaries'
    sc = make(
        kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3),
        faults=Faults(crash_after_step=9),
        params=SimParams(es_shutdown_api=False),
    )
    with pytest.raises(OrchestratorCrash):
        sc.run(TO_ALL)
    assert sc.world.elasticsearch.allocation == "primaries"
    again = sc.resume()
    result = again.run(TO_ALL)
    assert result.ok
    repairs = [r for r in result.steps if r.kind == "repair"]
    assert repairs and repairs[0].id == "elasticsearch/repair/cluster"
    assert result.steps[0].kind == "repair"


def test_crash_with_shutdown_api_leaves_a_record_that_is_removed() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3), faults=Faults(crash_after_step=9))
    with pytest.raises(OrchestratorCrash):
        sc.run(TO_ALL)
    assert sc.world.elasticsearch.shutdowns
    sc.world.advance(sc.world.now + 120)  # the node comes back while nobody is watching
    result = sc.resume().run(TO_ALL)
    assert result.ok
    assert any(r.kind == "repair" and "shutdown" not in r.id for r in result.steps) or any(
        r.kind == "repair" for r in result.steps
    )
    assert sc.world.elasticsearch.shutdowns == []


def test_second_orchestrator_is_refused_by_the_lease() -> None:
    sc = make()
    sc.world.lease = Lease(holder="alice@other-host/42", acquired_at=0, renewed_at=0, ttl_seconds=600)
    before = {n: p.uid for n, p in sc.world.pods.items()}
    result = sc.run({Component.KAFKA: "4.1.0"}, holder="bob@host-b/7")
    assert result.outcome == "refused" and result.rule == "lease.single-holder"
    assert "alice@other-host/42" in result.reason
    assert {n: p.uid for n, p in sc.world.pods.items()} == before
    assert sc.world.lease.holder == "alice@other-host/42"


def test_expired_lease_is_taken_over() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    sc.world.lease = Lease(holder="alice@other-host/42", acquired_at=0, renewed_at=0, ttl_seconds=60)
    sc.world.advance(120)
    assert sc.run({Component.KAFKA: "4.1.0"}).ok


def test_stop_request_ends_after_the_current_step_and_resume_finishes() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    result = sc.run({Component.KAFKA: "4.1.0"}, stop_after_steps=2)
    assert result.outcome == "stopped"
    assert [r.outcome for r in result.steps] == ["done", "done"]
    assert sc.world.lease is None
    assert sc.resume().run({Component.KAFKA: "4.1.0"}).ok


def test_rollback_of_kafka_before_finalize_returns_every_node() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    assert sc.run({Component.KAFKA: "4.1.0"}).ok
    targets = rollback_targets(sc.target.observe(), [Component.KAFKA])
    assert targets == {Component.KAFKA: "4.0.1"}
    result = sc.run(targets, UpgradeSettings(rollback=True))
    assert result.ok, result.reason
    assert {p.version for p in sc.world.pods.values() if p.workload.startswith("kafka")} == {"4.0.1"}


def test_rollback_of_kafka_after_finalize_is_refused() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    assert sc.run({Component.KAFKA: "4.1.0"}, UpgradeSettings(finalize=True)).ok
    with pytest.raises(RefusedError, match="cannot be lowered"):
        rollback_targets(sc.target.observe(), [Component.KAFKA])


def test_rollback_of_elasticsearch_after_a_new_node_joined_is_refused() -> None:
    sc = make(faults=Faults(never_ready=["es-master-1"]))
    result = sc.run({Component.ELASTICSEARCH: "8.19.3"}, UpgradeSettings(step_timeout=200))
    assert result.outcome == "halted"
    with pytest.raises(RefusedError, match="restore from a snapshot"):
        rollback_targets(sc.target.observe(), [Component.ELASTICSEARCH])


def test_audit_trail_records_every_action_with_who_and_why() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    assert sc.run({Component.KAFKA: "4.1.0"}, holder="sre@host-a/1").ok
    trail = sc.target.control.audit_trail()
    restarts = [a for a in trail if a["what"].startswith("restart ")]
    assert [a["result"] for a in restarts] == ["intent", "ok"] * 6  # recorded before it is taken, and after
    assert all(a["who"] == "sre@host-a/1" and a["why"] for a in restarts)
    assert [a["what"] for a in restarts[0::2]] == [a["what"] for a in restarts[1::2]]
    assert trail[0]["what"] == "start" and trail[-1]["what"] == "finish"
