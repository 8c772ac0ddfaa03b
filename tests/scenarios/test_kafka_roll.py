"""Kafka rolls on the simulated platform: order, ISR safety over the whole timeline, batching, faults."""

from __future__ import annotations

from tests.scenarios.harness import make
from toolkit.config.platform import KafkaSpec
from toolkit.model import Component, UpgradeSettings
from toolkit.targets.sim import Faults

TO = {Component.KAFKA: "4.1.0"}


def assert_never_below_min_isr(world) -> None:  # type: ignore[no-untyped-def]
    assert world.history, "no timeline recorded"
    bad = [h for h in world.history if h["below_min_isr"] or h["offline"]]
    assert not bad, f"below min ISR or offline at t={bad[0]['t']}: {bad[0]}"


def test_three_combined_nodes_roll_with_the_active_controller_last() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", combined=True, controllers=0, brokers=3))
    active = sc.world.kafka.active_controller
    result = sc.run(TO)
    assert result.outcome == "completed", result.reason
    order = sc.restart_order()
    assert len(order) == 3 and order[-1] == f"kafka-{active}"
    assert all(p.version == "4.1.0" for p in sc.world.pods.values() if p.workload == "kafka")
    assert_never_below_min_isr(sc.world)


def test_nine_brokers_controllers_first_active_controller_last_of_them() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=9))
    active = sc.world.kafka.active_controller
    result = sc.run(TO)
    assert result.outcome == "completed", result.reason
    order = sc.restart_order()
    assert order[:3] == sorted(order[:3], key=lambda p: p == f"kafka-controller-{active}")
    assert order[2] == f"kafka-controller-{active}"
    assert order[3:] == [f"kafka-broker-{i}" for i in range(9)]
    assert_never_below_min_isr(sc.world)
    # each member restarted exactly once, and leadership is back on the preferred replicas
    assert all(p.restarts == 1 for p in sc.world.pods.values() if sc.world.workloads[p.workload].component == "kafka")
    assert all(p.leader == p.replicas[0] for p in sc.world.kafka.partitions)


def test_unready_broker_restarts_first() -> None:
    sc = make(
        kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=6), faults=Faults(unready_at_start=["kafka-broker-4"])
    )
    sc.world.pods["kafka-broker-4"].ready_at = 10_000  # stuck: a restart is what it needs
    result = sc.run(TO)
    assert result.outcome == "completed", result.reason
    assert sc.restart_order()[0] == "kafka-broker-4"


def test_parallel_auto_batches_brokers_by_zone_and_stays_safe() -> None:
    serial = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=12))
    serial_result = serial.run(TO)
    parallel = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=12))
    parallel_result = parallel.run(TO, UpgradeSettings(parallel="auto"))
    assert serial_result.ok and parallel_result.ok
    batches = [
        r.members for r in parallel_result.steps if r.kind == "restart" and r.members[0].startswith("kafka-broker")
    ]
    assert [len(b) for b in batches] == [4, 4, 4]
    for batch in batches:  # a batch is one zone: its brokers share no partition
        zones = {parallel.world.pods[p].zone for p in batch}
        assert len(zones) == 1
    assert all("controller" not in m for b in batches for m in b)
    assert_never_below_min_isr(parallel.world)
    speedup = (serial_result.ended_at - serial_result.started_at) / (
        parallel_result.ended_at - parallel_result.started_at
    )
    assert speedup >= 2.0


def test_blocked_broker_goes_back_in_the_queue_and_others_proceed() -> None:
    # broker 100 is in log recovery for a while: it may not restart, but its peers may
    sc = make(
        kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3), faults=Faults(recovering={"kafka-broker-0": 400})
    )
    result = sc.run(TO)
    assert result.outcome == "completed", result.reason
    brokers = [p for p in sc.restart_order() if p.startswith("kafka-broker")]
    assert brokers[-1] == "kafka-broker-0" and len(brokers) == 3
    requeued = [e for e in sc.events if e.kind == "requeue"]
    assert requeued and requeued[0].rule == "kafka.not-in-recovery" and "kafka-broker-0" in requeued[0].message


def test_broker_that_never_becomes_ready_halts_and_nothing_else_is_touched() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=6), faults=Faults(never_ready=["kafka-broker-1"]))
    uids = {n: p.uid for n, p in sc.world.pods.items()}
    result = sc.run(TO, UpgradeSettings(step_timeout=300))
    assert result.outcome == "halted"
    assert "kafka-broker-1" in result.reason and "restart budget" in result.reason
    assert result.steps[-1].outcome == "halted"
    for i in (2, 3, 4, 5):  # nothing after the failed broker was touched
        assert sc.world.pods[f"kafka-broker-{i}"].uid == uids[f"kafka-broker-{i}"]
    assert sc.world.lease is None  # released on halt
    assert_never_below_min_isr_except(sc.world, broker_down=101)


def assert_never_below_min_isr_except(world, broker_down: int) -> None:  # type: ignore[no-untyped-def]
    # with one broker gone for good, RF=3/minISR=2 partitions keep 2 in-sync replicas: still writable
    assert all(h["below_min_isr"] == 0 for h in world.history)


def test_slow_catch_up_waits_then_completes() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3), faults=Faults(slow_catchup=8.0))
    result = sc.run(TO, UpgradeSettings(step_timeout=600))
    assert result.outcome == "completed", result.reason
    waits = [g for r in result.steps for g in r.gates_waited if g.rule == "kafka.isr-rejoined"]
    assert waits and max(g.seconds for g in waits) > 60


def test_slow_catch_up_past_the_timeout_halts_naming_partition_and_lag() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3), faults=Faults(slow_catchup=20.0))
    result = sc.run(TO, UpgradeSettings(step_timeout=200))
    assert result.outcome == "halted"
    assert result.rule == "kafka.isr-rejoined"
    assert "messages behind" in result.reason and "security-events-" in result.reason


def test_finalize_raises_metadata_version_after_all_nodes_run_the_new_version() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    result = sc.run(TO, UpgradeSettings(finalize=True))
    assert result.ok
    assert result.steps[-1].kind == "finalize"
    assert sc.world.kafka.metadata_version == "4.1-IV1"


def test_pacing_adds_the_pause_between_steps() -> None:
    plain = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    r1 = plain.run(TO)
    paced = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    r2 = paced.run(TO, UpgradeSettings(pace_seconds=120))
    steps = len(r2.steps)
    assert (r2.ended_at - r2.started_at) - (r1.ended_at - r1.started_at) >= 120 * (steps - 1)
