"""Kafka gates over fixtures: each rule of upgrade-gates.md blocks in one case and passes in another."""

from __future__ import annotations

from tests.builders import kafka
from toolkit.engine.gates import kafka as gates
from toolkit.model import BrokerState

HEALTHY = [("events", 0, [1, 2, 3], [1, 2, 3]), ("events", 1, [2, 3, 1], [2, 3, 1])]


def rules(verdicts):  # type: ignore[no-untyped-def]
    return {v.rule: v for v in verdicts}


def test_preflight_passes_on_a_healthy_cluster() -> None:
    assert all(v.ok for v in gates.preflight(kafka(HEALTHY)))


def test_preflight_blocks_when_a_broker_does_not_answer() -> None:
    v = rules(gates.preflight(kafka(HEALTHY, unreachable=(2,))))["kafka.all-nodes-answer"]
    assert not v.ok and "2 (kafka-broker-2)" in v.reason


def test_preflight_blocks_on_under_replicated_partitions() -> None:
    v = rules(gates.preflight(kafka([("events", 0, [1, 2, 3], [1, 2])])))["kafka.no-under-replicated"]
    assert not v.ok and "events-0 ISR [1, 2] of [1, 2, 3]" in v.reason


def test_preflight_blocks_on_under_min_isr() -> None:
    v = rules(gates.preflight(kafka([("events", 0, [1, 2, 3], [1])])))["kafka.no-under-min-isr"]
    assert not v.ok and "events-0" in v.reason


def test_preflight_blocks_on_offline_partitions() -> None:
    v = rules(gates.preflight(kafka([("events", 0, [1, 2, 3], [])])))["kafka.no-offline-partitions"]
    assert not v.ok and "1 offline partitions" in v.reason


def test_warnings_for_weak_topics() -> None:
    found = {v.rule for v in gates.warnings(kafka(HEALTHY, rf=2, min_isr=1, unclean=True))}
    assert found == {"kafka.topic-rf", "kafka.topic-min-isr", "kafka.unclean-election"}
    assert gates.warnings(kafka(HEALTHY)) == []


def test_broker_at_min_isr_is_blocked_when_rf_exceeds_min_isr() -> None:
    state = kafka([("events", 0, [1, 2, 3], [1, 2])])
    v = gates.can_restart(state, 1)
    assert not v.ok and v.rule == "kafka.isr-at-min" and "events-0" in v.reason and "ISR [1, 2]" in v.reason


def test_broker_outside_the_isr_may_restart_even_when_isr_is_at_min() -> None:
    state = kafka([("events", 0, [1, 2, 3], [1, 2])])
    assert gates.can_restart(state, 3).ok


def test_isr_at_min_with_rf_equal_min_isr_is_not_blocked_by_that_rule() -> None:
    state = kafka([("events", 0, [1, 2], [1, 2])], rf=2, min_isr=2)
    assert gates.can_restart(state, 1).ok  # no order keeps RF == minISR writable; preflight warns instead


def test_effective_isr_counts_brokers_already_restarting() -> None:
    state = kafka(HEALTHY)
    assert gates.can_restart(state, 1).ok
    v = gates.can_restart(state, 1, restarting=[1, 2])
    assert not v.ok and v.rule == "kafka.effective-isr" and "restarting [2]" in v.reason


def test_broker_in_log_recovery_is_never_restarted() -> None:
    v = gates.can_restart(kafka(HEALTHY, states={2: BrokerState.RECOVERY}), 2)
    assert not v.ok and v.rule == "kafka.not-in-recovery"
    assert gates.can_restart(kafka(HEALTHY, states={2: BrokerState.RUNNING}), 2).ok


def test_controller_needs_a_caught_up_majority_without_it() -> None:
    ok = kafka(HEALTHY, controllers=[10, 11, 12])
    assert gates.can_restart(ok, 10).ok
    lagging = kafka(HEALTHY, controllers=[10, 11, 12], voters_caught_up={10: True, 11: False, 12: True})
    v = gates.can_restart(lagging, 10)
    assert not v.ok and v.rule == "kafka.quorum-majority" and "11 (lag 5000)" in v.reason


def test_recovered_waits_for_isr_rejoin_and_names_the_partition() -> None:
    state = kafka([("events", 0, [1, 2, 3], [2, 3]), ("events", 1, [2, 3, 1], [2, 3, 1])])
    v = gates.recovered(state, 1, "4.0.1")
    assert not v.ok and v.rule == "kafka.isr-rejoined" and "events-0" in v.reason
    assert gates.recovered(kafka(HEALTHY), 1, "4.0.1").ok


def test_recovered_waits_for_the_new_version_and_running_state() -> None:
    assert not gates.recovered(kafka(HEALTHY), 1, "4.1.0").ok
    assert not gates.recovered(kafka(HEALTHY, states={1: BrokerState.STARTING}), 1, "4.0.1").ok


def test_preferred_leaders_misplaced() -> None:
    state = kafka([("events", 0, [1, 2, 3], [2, 3, 1])])
    assert [p.name for p in gates.preferred_leaders_misplaced(state)] == ["events-0"]
    assert gates.preferred_leaders_misplaced(kafka(HEALTHY)) == []
