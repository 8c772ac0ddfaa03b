"""Kafka gates over fixtures: each rule of upgrade-gates.md blocks in one case and passes in another, and its reason
names the numbers."""

from __future__ import annotations

from dataclasses import replace

from tests.builders import kafka
from toolkit.engine.gates import kafka as gates
from toolkit.model import BrokerState, Partition, Topic

HEALTHY = [("events", 0, [1, 2, 3], [1, 2, 3]), ("events", 1, [2, 3, 1], [2, 3, 1])]


def rules(verdicts):  # type: ignore[no-untyped-def]
    return {v.rule: v for v in verdicts}


def test_preflight_passes_on_a_healthy_cluster() -> None:
    assert all(v.ok for v in gates.preflight(kafka(HEALTHY)))


def test_preflight_blocks_when_a_broker_does_not_answer() -> None:
    v = rules(gates.preflight(kafka(HEALTHY, unreachable=(2,))))["kafka.all-nodes-answer"]
    assert not v.ok and "2 (kafka-broker-2)" in v.reason
    assert gates.nodes_answer(kafka(HEALTHY, unreachable=(2,)), batch=[2]).ok  # its own step: not held back


def test_under_replicated_partitions_block_naming_isr_and_replicas() -> None:
    v = rules(gates.preflight(kafka([("events", 0, [1, 2, 3], [1, 2])])))["kafka.no-under-replicated"]
    assert not v.ok and "events-0: ISR [1,2] of replicas [1,2,3]" in v.reason


def test_under_min_isr_blocks_naming_the_minimum() -> None:
    v = rules(gates.preflight(kafka([("events", 0, [1, 2, 3], [1])])))["kafka.no-under-min-isr"]
    assert not v.ok and "events-0: ISR [1] is below min.insync.replicas=2" in v.reason


def test_offline_partitions_block() -> None:
    v = rules(gates.preflight(kafka([("events", 0, [1, 2, 3], [])])))["kafka.no-offline-partitions"]
    assert not v.ok and "1 offline partition(s), e.g. events-0: no leader, ISR [] of replicas [1,2,3]" in v.reason


def test_partition_health_excludes_what_the_steps_own_members_cause() -> None:
    state = kafka([("events", 0, [1, 2, 3], [1, 2])])  # 3 is out of the ISR: it is the member restarting
    assert all(v.ok for v in gates.partition_health(state, batch=[3]))
    assert not all(v.ok for v in gates.partition_health(state, batch=[1]))


def test_rf_below_min_isr_is_not_waited_on_and_is_warned_loudest() -> None:
    state = kafka([("events", 0, [1, 2], [1, 2])], rf=2, min_isr=3)
    assert all(v.ok for v in gates.partition_health(state))  # under min by construction: no wait can clear it
    assert gates.can_restart(state, 1).ok
    first = gates.warnings(state)[0]
    assert first.rule == "kafka.topic-rf-below-min-isr" and first.reason.startswith("ALWAYS FAILING")
    assert "events" in first.reason and "min.insync.replicas=3" in first.reason


def test_rf_equal_to_min_isr_is_warned_by_name_and_not_waited_on() -> None:
    state = kafka([("events", 0, [1, 2], [1, 2]), ("audit", 0, [2, 3], [2, 3])], rf=2, min_isr=2)
    assert gates.can_restart(state, 1).ok  # no order keeps RF == minISR writable: the roll does not wait on it
    v = rules(gates.warnings(state))["kafka.topic-rf-equals-min-isr"]
    assert "audit, events" in v.reason and "fail during each restart of one of their replicas" in v.reason
    assert "kafka.topic-rf-equals-min-isr" not in rules(gates.warnings(kafka(HEALTHY)))


def test_warnings_for_weak_topics_group_the_names() -> None:
    found = rules(gates.warnings(kafka(HEALTHY, rf=2, min_isr=1, unclean=True)))
    assert {"kafka.topic-rf", "kafka.topic-min-isr", "kafka.unclean-election"} <= set(found)
    assert "topics events:" in found["kafka.topic-rf"].reason
    assert gates.warnings(kafka(HEALTHY)) == []


def test_a_long_list_of_topics_is_cut_with_a_count() -> None:
    state = kafka([(f"t{i:02d}", 0, [1, 2], [1, 2]) for i in range(20)], rf=2, min_isr=2)
    reason = rules(gates.warnings(state))["kafka.topic-rf-equals-min-isr"].reason
    assert "t11" in reason and "t12" not in reason and "and 8 more" in reason


def test_broker_at_min_isr_is_blocked_with_the_numbers() -> None:
    state = kafka([("t", 0, [100, 101, 102], [100, 101])], brokers=[100, 101, 102])
    v = gates.can_restart(state, 101)
    assert not v.ok and v.rule == "kafka.isr-at-min"
    assert v.reason.startswith("t-0: ISR [100,101] is at min.insync.replicas=2")
    assert "until [102] rejoin the ISR" in v.reason


def test_broker_outside_the_isr_may_restart_even_when_isr_is_at_min() -> None:
    state = kafka([("events", 0, [1, 2, 3], [1, 2])])
    assert gates.can_restart(state, 3).ok


def test_effective_isr_counts_brokers_already_restarting() -> None:
    state = kafka(HEALTHY)
    assert gates.can_restart(state, 1).ok
    v = gates.can_restart(state, 1, restarting=[1, 2])
    assert not v.ok and v.rule == "kafka.effective-isr"
    assert "events-0: ISR [1,2,3] minus restarting [2] leaves [1,3] at min.insync.replicas=2" in v.reason


def test_replica_on_a_broker_the_cluster_does_not_have_is_fatal() -> None:
    state = kafka([("events", 0, [1, 2, 9], [1, 2])])
    v = rules(gates.partition_health(state))["kafka.replica-on-unknown-broker"]
    assert v.fatal and "broker 9" in v.reason and "reassign" in v.reason


def test_broker_in_log_recovery_is_never_restarted() -> None:
    v = gates.can_restart(kafka(HEALTHY, states={2: BrokerState.RECOVERY}), 2)
    assert not v.ok and v.rule == "kafka.not-in-recovery"
    assert gates.can_restart(kafka(HEALTHY, states={2: BrokerState.RUNNING}), 2).ok


def test_controller_needs_a_caught_up_majority_without_it() -> None:
    ok = kafka(HEALTHY, controllers=[10, 11, 12])
    assert gates.can_restart(ok, 10).ok
    lagging = kafka(HEALTHY, controllers=[10, 11, 12], voters_caught_up={10: True, 11: False, 12: True})
    v = gates.can_restart(lagging, 10)
    assert not v.ok and v.rule == "kafka.quorum-majority"
    assert "1 of 3 voters caught up (a majority is 2)" in v.reason and "11 (lag 5000)" in v.reason


def test_controller_only_node_ignores_partitions_but_combined_node_does_not() -> None:
    # a partition at min ISR that lists the node ids of the controllers: only nodes with the broker role replicate
    state = kafka([("t", 0, [1, 2, 3], [1, 2])], controllers=[10, 11, 12])
    assert gates.can_restart(state, 10).ok
    combined = replace(
        state,
        nodes=tuple(replace(n, role=n.role.__class__("combined")) if n.id == 1 else n for n in state.nodes),
        voters=(*state.voters, replace(state.voters[0], id=1)),
    )
    v = gates.can_restart(combined, 1)
    assert not v.ok and v.rule == "kafka.isr-at-min"


def test_a_quorum_too_small_to_keep_a_majority_passes_and_is_warned() -> None:
    single = kafka(HEALTHY, controllers=[10])
    assert gates.can_restart(single, 10).ok  # waiting could never bring a majority: no stall
    assert "[10]" in rules(gates.warnings(single))["kafka.small-quorum"].reason
    two = kafka(HEALTHY, controllers=[10, 11])
    assert gates.can_restart(two, 10).ok
    assert "kafka.small-quorum" in rules(gates.warnings(two))
    lagging = kafka(HEALTHY, controllers=[10, 11], voters_caught_up={10: True, 11: False})
    v = gates.can_restart(lagging, 10)  # what can clear is waited on: the other voter catching up
    assert not v.ok and "11 (lag 5000)" in v.reason
    assert "kafka.small-quorum" not in rules(gates.warnings(kafka(HEALTHY, controllers=[10, 11, 12])))


def test_recovered_waits_for_isr_rejoin_and_names_the_partition() -> None:
    state = kafka([("events", 0, [1, 2, 3], [2, 3]), ("events", 1, [2, 3, 1], [2, 3, 1])])
    v = gates.recovered(state, 1, "4.0.1")
    assert not v.ok and v.rule == "kafka.isr-rejoined" and "events-0 (ISR [2,3])" in v.reason
    assert gates.recovered(kafka(HEALTHY), 1, "4.0.1").ok


def test_recovered_waits_for_the_new_version_and_running_state() -> None:
    assert not gates.recovered(kafka(HEALTHY), 1, "4.1.0").ok
    assert not gates.recovered(kafka(HEALTHY, states={1: BrokerState.STARTING}), 1, "4.0.1").ok


def test_preferred_leaders_misplaced() -> None:
    state = kafka([("events", 0, [1, 2, 3], [2, 3, 1])])
    assert [p.name for p in gates.preferred_leaders_misplaced(state)] == ["events-0"]
    assert gates.preferred_leaders_misplaced(kafka(HEALTHY)) == []


def test_the_index_is_built_once_per_state_and_files_partitions_by_broker() -> None:
    state = kafka([*HEALTHY, ("events", 2, [1, 2, 3], [1, 2])])
    idx = gates.index(state)
    assert gates.index(state) is idx
    assert [p.name for p in idx.of_broker(3)] == ["events-0", "events-1", "events-2"]
    assert idx.in_isr_of[3] == [0, 1]
    assert [p.name for p in idx.under_replicated] == ["events-2"]
    assert [p.name for p in idx.at_min[1]] == ["events-2"]  # ISR [1,2] at min 2 with RF 3: both are at risk
    other = replace(state, topics=(Topic("events", 3, 2),))
    assert gates.index(other) is not idx  # another state object, another index
    single = gates.index(replace(state, partitions=(Partition("x", 0, (1,), (1,), 1),)))
    assert single.of_broker(1) == [Partition("x", 0, (1,), (1,), 1)] and single.of_broker(2) == []


def test_shared_isr_finds_partitions_with_two_batch_members_in_sync() -> None:
    state = kafka([("a", 0, [1, 2, 3], [1, 2, 3]), ("a", 1, [1, 2, 3], [1, 3]), ("a", 2, [2, 3, 1], [2, 3])])
    idx = gates.index(state)
    assert [p.name for p in idx.shared_isr(frozenset({1, 2}))] == ["a-0"]
    assert [p.name for p in idx.shared_isr(frozenset({1, 3}))] == ["a-0", "a-1"]
