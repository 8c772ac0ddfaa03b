"""Strimzi's order and checks on the simulated platform, one scenario per rule; and what the planner and executor
compute per plan and per observation."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.scenarios.harness import Scenario, make
from toolkit.catalog import load
from toolkit.config.platform import KafkaSpec
from toolkit.engine import planner
from toolkit.engine.executor import Event
from toolkit.engine.gates import kafka as kafka_gates
from toolkit.model import Component, UpgradeSettings
from toolkit.targets.sim.world import SimKafkaNode, kafka_assignment, rack_alternated

TO = {Component.KAFKA: "4.1.0"}


def out_of_isr(sc: Scenario, broker: int, until: float, partitions: int | None = None) -> list[str]:
    """Broker `broker` falls out of the ISR of (the first `partitions` of) its partitions and catches up at
    `until`: a lagging follower, as a slow disk or a network blip makes one."""
    names = []
    for p in [p for p in sc.world.kafka.partitions if broker in p.replicas][:partitions]:
        if broker in p.isr:
            p.isr.remove(broker)
            p.rejoin_at[str(broker)] = until
            names.append(f"{p.topic}-{p.partition}")
    sc.world.last_observed_at = -1.0  # observe the change now
    sc.target._snapshot = None
    return names


def test_controller_role_nodes_go_first_controller_only_then_combined_active_controller_last() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    sc.world.controllers.add_workload("kafka-combined", "kafka", "StatefulSet", "combined", 2, "4.0.1", base=50)
    for i in range(2):
        sc.world.kafka.nodes.append(SimKafkaNode(50 + i, "combined", f"kafka-combined-{i}", "zone-a"))
    active = sc.world.kafka.active_controller
    result = sc.run(TO)
    assert result.ok, result.reason
    order = sc.restart_order()
    controllers = [f"kafka-controller-{i}" for i in range(3) if i != active]
    assert order == [*controllers, "kafka-combined-0", "kafka-combined-1", f"kafka-controller-{active}"] + [
        f"kafka-broker-{i}" for i in range(3)
    ]


def test_a_lagging_broker_does_not_hold_controllers_back_but_holds_brokers() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    lagging = out_of_isr(sc, 102, until=400.0)
    assert lagging
    result = sc.run(TO)
    assert result.ok, result.reason
    restarts = sc.acts("restart ")
    controllers = [t for t, what in restarts if "controller" in what]
    assert controllers[0] < 60  # the quorum check alone: the under-replicated partitions did not hold them back
    brokers = [r for r in result.steps if r.members[0].startswith("kafka-broker")]
    # brokers 100 and 101 may not go while 102 lags: they go back in the queue, and the lagging broker goes first
    # (its own missing replicas are what its restart fixes); the others follow once every partition is whole
    requeued = [e for e in sc.events if e.kind == "requeue"]
    assert requeued and requeued[0].rule == "kafka.no-under-replicated"
    assert requeued[0].message.startswith("kafka/restart/kafka-broker-0 cannot roll yet")
    assert f"e.g. {lagging[0]}: ISR " in requeued[0].message
    assert brokers[0].members == ("kafka-broker-2",) and brokers[1].started_at >= brokers[0].ended_at


def test_combined_nodes_are_gated_by_partition_health_the_lagging_one_goes_first() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", combined=True, controllers=0, brokers=3))
    out_of_isr(sc, 2, until=600.0)
    result = sc.run(TO)
    assert result.ok, result.reason
    order = sc.restart_order()
    assert order[0] == "kafka-2"  # its own missing replicas are what its restart fixes; the others wait on them
    requeues = [e for e in sc.events if e.kind == "requeue"]
    assert requeues and requeues[0].rule == "kafka.no-under-replicated"


def test_the_same_state_is_gated_the_same_way_after_the_first_restart() -> None:
    """Before the first restart a lagging follower blocks a broker; after it, the same state blocks the same way,
    with the same wording (formerly only the availability rule applied once something had restarted)."""
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=6))
    knocked: list[str] = []

    def after_first_broker(e: Event) -> None:
        if e.kind == "recovered" and e.step.endswith("/kafka-broker-0") and not knocked:
            knocked.extend(out_of_isr(sc, 105, until=sc.world.now + 300, partitions=1))

    result = sc.run(TO, hook=after_first_broker)
    assert result.ok, result.reason
    after = [e for e in sc.events if e.kind == "requeue"]
    assert after and after[0].rule == "kafka.no-under-replicated"
    assert after[0].message.startswith("kafka/restart/kafka-broker-1 cannot roll yet")
    brokers = [m for m in sc.restart_order() if m.startswith("kafka-broker")]
    assert brokers[:2] == ["kafka-broker-0", "kafka-broker-5"]  # the lagging one went first, the rest waited
    before = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=6))
    out_of_isr(before, 105, until=300, partitions=1)
    plan = planner.plan(before.target.observe(), TO, UpgradeSettings(), load())
    blocked = next(s.blocked for s in plan.steps if s.members == ("kafka-broker-0",))
    assert blocked is not None and blocked.rule == "kafka.no-under-replicated"
    wording = f"1 under-replicated partition(s), e.g. {knocked[0]}: ISR "
    assert blocked.reason.startswith(wording) and f"roll yet and goes back in the queue: {wording}" in after[0].message


def test_rf_equal_to_min_isr_is_warned_by_name_and_the_roll_does_not_wait_on_it() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3, replication_factor=2, min_insync_replicas=2))
    plan = planner.plan(sc.target.observe(), TO, UpgradeSettings(), load())
    warning = next(w for w in plan.warnings if w.rule == "kafka.topic-rf-equals-min-isr")
    assert "security-events" in warning.reason and "audit-events" in warning.reason
    result = sc.run(TO, UpgradeSettings(gate_timeout=120))
    assert result.ok, result.reason
    assert not {g.rule for r in result.steps for g in r.gates_waited} & {"kafka.isr-at-min", "kafka.effective-isr"}
    assert any(h["below_min_isr"] for h in sc.world.history)  # what the warning said: acks=all fails meanwhile


def test_rf_below_min_isr_is_warned_loudest_and_does_not_stall_the_roll() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3, replication_factor=2, min_insync_replicas=2))
    sc.world.kafka.topics = [replace(t, min_insync_replicas=3) for t in sc.world.kafka.topics]
    plan = planner.plan(sc.target.observe(), TO, UpgradeSettings(), load())
    assert plan.warnings[0].rule == "kafka.topic-rf-below-min-isr"
    assert plan.warnings[0].reason.startswith("ALWAYS FAILING")
    result = sc.run(TO, UpgradeSettings(gate_timeout=120))
    assert result.ok, result.reason  # under min by construction: never waited on (it would have stalled)


def test_a_quorum_of_one_controller_rolls_and_is_warned() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=1, brokers=3))
    plan = planner.plan(sc.target.observe(), TO, UpgradeSettings(), load())
    assert any(w.rule == "kafka.small-quorum" for w in plan.warnings)
    result = sc.run(TO, UpgradeSettings(gate_timeout=120))
    assert result.ok, result.reason


def test_a_replica_on_a_missing_broker_refuses_the_plan_up_front() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3))
    sc.world.kafka.partitions[0].replicas[2] = 999
    uids = {n: p.uid for n, p in sc.world.pods.items()}
    result = sc.run(TO)
    assert result.outcome == "refused" and result.rule == "kafka.replica-on-unknown-broker"
    assert "broker 999" in result.reason
    assert {n: p.uid for n, p in sc.world.pods.items()} == uids  # nothing restarted, not even the controllers


def batches_of(sc: Scenario, settings: UpgradeSettings) -> list[tuple[str, ...]]:
    plan = planner.plan(sc.target.observe(), TO, settings, load())
    return [s.members for s in plan.steps if s.kind == "restart" and s.members[0].startswith("kafka-broker")]


@pytest.mark.parametrize("brokers", [12, 30, 99, 100])
def test_parallel_auto_makes_one_batch_per_rack_on_kafkas_own_placement(brokers: int) -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=brokers))
    batches = batches_of(sc, UpgradeSettings(parallel="auto"))
    assert len(batches) == 3
    for batch in batches:
        assert len({sc.world.pods[p].zone for p in batch}) == 1
    state = sc.target.observe()
    for batch in batches:
        ids = [n.id for n in state.kafka.nodes if n.pod in batch]
        assert not any(kafka_gates.shares_partition(state.kafka, a, b) for a in ids for b in ids if a < b), (
            "two brokers of one batch share a partition"
        )


def test_racks_that_share_partitions_are_split_and_max_batch_caps() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=12, replication_factor=4))  # 4 copies, 3 racks
    batches = batches_of(sc, UpgradeSettings(parallel="auto"))
    assert len(batches) > 3
    state = sc.target.observe()
    for batch in batches:
        ids = [n.id for n in state.kafka.nodes if n.pod in batch]
        assert not any(kafka_gates.shares_partition(state.kafka, a, b) for a in ids for b in ids if a < b)
    capped = batches_of(
        make(kafka=KafkaSpec(version="4.0.1", brokers=12)), UpgradeSettings(parallel="auto", max_batch=3)
    )
    assert [len(b) for b in capped] == [3, 1] * 3


def test_thirty_brokers_roll_in_three_rack_batches_and_stay_above_min_isr() -> None:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=30))
    result = sc.run(TO, UpgradeSettings(parallel="auto"))
    assert result.ok, result.reason
    assert len([r for r in result.steps if r.members[0].startswith("kafka-broker")]) == 3
    assert not [h for h in sc.world.history if h["below_min_isr"] or h["offline"]]


def test_the_sim_places_replicas_as_kafka_does() -> None:
    """Kafka's documented example: racks 0:rack1 1:rack3 2:rack3 3:rack2 4:rack2 5:rack1 -> ring 0,3,1,5,4,2; seven
    partitions with RF 3 from start 0, shift 0."""
    racks = {0: "rack1", 1: "rack3", 2: "rack3", 3: "rack2", 4: "rack2", 5: "rack1"}
    assert rack_alternated(racks) == [0, 3, 1, 5, 4, 2]
    assert kafka_assignment(racks, 7, 3, 0, 0) == [
        [0, 3, 1],
        [3, 1, 5],
        [1, 5, 4],
        [5, 4, 2],
        [4, 2, 0],
        [2, 0, 3],
        [0, 4, 2],
    ]
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=9))
    rack = {n.id: n.rack for n in sc.world.kafka.nodes}
    assert all(len({rack[b] for b in p.replicas}) == 3 for p in sc.world.kafka.partitions)


def test_the_index_is_built_once_per_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []
    real = kafka_gates.KafkaIndex

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(kafka_gates, "KafkaIndex", counting)
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=30))
    plan = planner.plan(sc.target.observe(), TO, UpgradeSettings(), load())
    assert len([s for s in plan.steps if s.kind == "restart"]) == 33 and len(built) == 1


def test_the_executor_plans_once_per_observation(monkeypatch: pytest.MonkeyPatch) -> None:
    planned: list[int] = []
    real = planner.plan

    def recording(state, *args, **kwargs):  # type: ignore[no-untyped-def]
        planned.append(id(state))
        return real(state, *args, **kwargs)

    monkeypatch.setattr(planner, "plan", recording)
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3), params=None)
    observed: list[object] = []
    observe = sc.target.observe

    def keep(*a, **k):  # type: ignore[no-untyped-def]
        state = observe()
        observed.append(state)  # keep every state alive so that ids are never reused
        return state

    monkeypatch.setattr(sc.target, "observe", keep)
    result = sc.run(TO, UpgradeSettings(poll_interval=1))  # polls faster than the sim observes (every 5 s)
    assert result.ok, result.reason
    assert len(planned) == len(set(planned)) > 7
