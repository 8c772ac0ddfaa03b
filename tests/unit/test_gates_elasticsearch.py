"""Elasticsearch gates over fixtures: each ECK / Elastic rule blocks in one case and passes in another."""

from __future__ import annotations

from tests.builders import es
from toolkit.engine.gates import elasticsearch as gates
from toolkit.model import EsState, Health, ShutdownRecord

S, INIT, R, U = "STARTED", "INITIALIZING", "RELOCATING", "UNASSIGNED"
GREEN = [
    ("logs", 0, True, S, "hot-0"),
    ("logs", 0, False, S, "hot-1"),
    ("logs", 1, True, S, "hot-2"),
    ("logs", 1, False, S, "hot-0"),
]


def test_green_cluster_allows_a_restart() -> None:
    assert gates.can_restart(es(GREEN), "hot-1").ok


def test_yellow_with_primaries_started_and_nothing_moving_allows() -> None:
    shards = [*GREEN, ("logs", 2, True, S, "hot-1"), ("logs", 2, False, U, None)]
    assert gates.health_allows_restart(es(shards)).ok


def test_yellow_with_initializing_shards_blocks() -> None:
    v = gates.health_allows_restart(es([("logs", 0, True, S, "hot-0"), ("logs", 0, False, INIT, "hot-1")]))
    assert not v.ok and "INITIALIZING" in v.reason


def test_relocating_shards_block() -> None:
    v = gates.health_allows_restart(es([("logs", 0, True, R, "hot-0"), ("logs", 0, False, S, "hot-1")]))
    assert not v.ok and "RELOCATING" in v.reason


def test_red_cluster_blocks() -> None:
    v = gates.can_restart(es([("logs", 0, True, U, None), ("logs", 1, True, S, "hot-0")]), "hot-0")
    assert not v.ok and "red" in v.reason and "logs[0]" in v.reason


def test_unknown_health_blocks() -> None:
    assert not gates.health_allows_restart(EsState(health=Health.UNKNOWN)).ok


def test_node_holding_the_only_started_copy_is_blocked() -> None:
    shards = [("logs", 0, True, S, "hot-0"), ("logs", 0, False, U, None), ("logs", 1, True, S, "hot-1")]
    v = gates.can_restart(es(shards, health=Health.GREEN), "hot-0")
    assert not v.ok and v.rule == "elasticsearch.started-copy-elsewhere"
    assert "logs[0]: hot-0 holds a copy and no other copy is STARTED on an available node" in v.reason
    # the same node with its replica started elsewhere may go
    assert gates.can_restart(es(GREEN), "hot-0").ok


def test_every_shard_it_holds_needs_a_started_copy_elsewhere_also_a_replica() -> None:
    # hot-1 holds a STARTED replica whose primary sits on hot-0, which is NotReady while joined: the only other
    # started copy is on an unavailable node (ECK's require_started_replica, counting healthy pods)
    v = gates.can_restart(es(GREEN), "hot-1", max_unavailable=2, unavailable={"hot-0": "NotReady while joined"})
    assert not v.ok and v.rule == "elasticsearch.shared-shard"
    assert "hot-0 (NotReady while joined) also holds a copy of it, like hot-1" in v.reason


def test_two_nodes_holding_copies_of_one_shard_never_go_together() -> None:
    shards = [("logs", 0, True, S, "hot-0"), ("logs", 0, False, S, "hot-1"), ("logs", 0, False, S, "hot-2")]
    v = gates.can_restart(es(shards), "hot-0", restarting=["hot-1"], max_unavailable=2)
    assert not v.ok and v.rule == "elasticsearch.shared-shard" and "hot-1 (restarting with it)" in v.reason
    assert gates.can_restart(es(shards), "hot-0", max_unavailable=2).ok


def test_a_node_sharing_a_shard_with_a_terminating_pod_waits() -> None:
    """The bug this rule fixes: a terminating pod whose node is still joined (its preStop hook) still lists its
    shards as STARTED; a second node holding copies of them must not go, even within maxUnavailable."""
    terminating = {"hot-2": "terminating"}
    shards = [
        ("logs", 0, True, S, "hot-2"),
        ("logs", 0, False, S, "hot-1"),
        ("logs", 1, True, S, "hot-0"),
        ("logs", 1, False, S, "hot-1"),
    ]
    v = gates.can_restart(es(shards), "hot-1", max_unavailable=2, unavailable=terminating)
    assert not v.ok and v.rule == "elasticsearch.shared-shard" and "hot-2 (terminating)" in v.reason
    assert gates.can_restart(es(shards), "hot-0", max_unavailable=2, unavailable=terminating).ok  # shares nothing


def test_terminating_and_not_ready_pods_count_against_max_unavailable() -> None:
    for why in ("terminating", "NotReady while joined"):
        v = gates.can_restart(es(GREEN), "hot-1", unavailable={"hot-2": why})
        assert not v.ok and v.rule == "elasticsearch.max-unavailable"
        assert f"1 node(s) already unavailable: hot-2 ({why})" in v.reason and "maxUnavailable=1" in v.reason
    assert gates.can_restart(es(GREEN), "hot-1", unavailable={"hot-1": "NotReady while joined"}).ok  # itself


def test_an_index_with_zero_replicas_is_fatal_unless_accepted() -> None:
    shards = [*GREEN, ("single", 0, True, S, "hot-1")]
    v = gates.can_restart(es(shards), "hot-1")
    assert not v.ok and v.fatal and v.rule == "elasticsearch.zero-replicas"
    assert "single[0] has no replica" in v.reason and "--accept-unavailable-index single" in v.reason
    assert gates.can_restart(es(shards), "hot-1", accepted=["single"]).ok
    assert gates.zero_replica_indices(es(shards)) == ["single"]
    assert gates.zero_replica_indices(es(GREEN)) == []


def test_never_every_member_of_a_tier() -> None:
    nodes = [("warm-0", "warm"), ("warm-1", "warm"), ("hot-0", "hot")]
    v = gates.can_restart(es([], nodes=nodes), "warm-0", restarting=["warm-1"], max_unavailable=3)
    assert not v.ok and v.rule == "elasticsearch.tier-member-left"
    assert gates.can_restart(es([], nodes=nodes), "warm-0", restarting=["hot-0"], max_unavailable=3).ok


def test_one_master_at_a_time_and_majority_kept() -> None:
    state = es([], masters=["m-0", "m-1", "m-2"], down=("m-1",))
    v = gates.can_restart(state, "m-0", max_unavailable=2)
    assert not v.ok and v.rule == "elasticsearch.one-master-at-a-time" and "m-1 (left the cluster)" in v.reason
    assert gates.can_restart(es([], masters=["m-0", "m-1", "m-2"]), "m-0").ok


def test_one_or_two_masters_cannot_keep_a_majority_so_the_rule_does_not_stall() -> None:
    assert gates.can_restart(es([], masters=["m-0"]), "m-0").ok
    assert gates.can_restart(es([], masters=["m-0", "m-1"]), "m-0").ok
    five = es([], masters=["m-0", "m-1", "m-2", "m-3", "m-4"], down=("m-1", "m-2"))
    v = gates.can_restart(five, "m-0", max_unavailable=5)
    assert not v.ok and v.rule == "elasticsearch.one-master-at-a-time"


def test_max_unavailable_counts_nodes_already_down() -> None:
    v = gates.can_restart(es(GREEN, down=("hot-2",)), "hot-1")
    assert not v.ok and v.rule == "elasticsearch.max-unavailable" and "hot-2 (left the cluster)" in v.reason


def test_restart_method_by_version_and_capability() -> None:
    assert gates.restart_method("8.18.3", EsState()) == "shutdown-api"
    assert gates.restart_method("7.15.1", EsState()) == "allocation"
    assert gates.restart_method("8.18.3", EsState(supports_shutdown_api=False)) == "allocation"


def test_recovered_requires_rejoin_version_allocation_reset_and_no_shutdown_record() -> None:
    base = es(GREEN)
    assert gates.recovered(base, "hot-0", "8.18.3").ok
    assert not gates.recovered(es(GREEN, down=("hot-0",)), "hot-0", "8.18.3").ok
    assert not gates.recovered(base, "hot-0", "8.19.3").ok
    from dataclasses import replace

    v = gates.recovered(replace(base, allocation_enable="primaries"), "hot-0", "8.18.3")
    assert not v.ok and v.rule == "elasticsearch.allocation-restored"
    v = gates.recovered(replace(base, shutdowns=(ShutdownRecord("hot-0", "restart", "COMPLETE"),)), "hot-0", "8.18.3")
    assert not v.ok and v.rule == "elasticsearch.shutdown-removed"


def test_recovered_waits_while_shards_initialize_and_accepts_quiet_yellow() -> None:
    moving = [("logs", 0, True, S, "hot-0"), ("logs", 0, False, INIT, "hot-1")]
    assert not gates.recovered(es(moving), "hot-1", "8.18.3").ok
    quiet_yellow = [("logs", 0, True, S, "hot-0"), ("logs", 0, False, U, None)]
    assert gates.recovered(es(quiet_yellow), "hot-1", "8.18.3").ok


def test_snapshot_warning_only_without_repository() -> None:
    assert gates.snapshot_warning(EsState()) is not None
    assert gates.snapshot_warning(EsState(snapshot_repositories=("s3",))) is None
