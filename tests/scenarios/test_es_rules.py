"""ECK's availability accounting and our stricter rules on the simulated platform, one scenario per rule."""

from __future__ import annotations

from tests.scenarios.harness import make
from toolkit.catalog import load
from toolkit.config.platform import ElasticsearchSpec, NodeSetSpec
from toolkit.engine import planner
from toolkit.engine.executor import Event
from toolkit.model import Component, UpgradeSettings
from toolkit.targets.sim import Faults, parse_injections

TO = {Component.ELASTICSEARCH: "8.19.3"}


def never_red(world) -> bool:  # type: ignore[no-untyped-def]
    return all(h["es_health"] != "red" for h in world.history)


def test_a_terminating_pod_is_never_restarted_again_and_counts_against_max_unavailable() -> None:
    # someone deleted es-hot-1; its preStop hook keeps the node joined for 300 s while the pod terminates
    sc = make(faults=Faults(terminating={"es-hot-1": 300}))
    result = sc.run(TO)
    assert result.ok, result.reason
    assert not sc.acts("restart es-hot-1")  # it came back on the new spec by itself
    assert sc.world.pods["es-hot-1"].version == "8.19.3" and sc.world.pods["es-hot-1"].restarts == 1
    first = min(t for t, _ in sc.acts("restart es-"))
    assert first >= 300  # nothing else went down while it was terminating (maxUnavailable 1)
    waits = [e.message for e in sc.events if e.kind == "gate-wait" and e.rule == "elasticsearch.max-unavailable"]
    assert waits and "es-hot-1 (terminating)" in waits[0]
    assert never_red(sc.world)


def test_a_node_sharing_shards_with_a_terminating_pod_waits_even_within_max_unavailable() -> None:
    """The hole this closes: with maxUnavailable 2, a second node holding copies of the terminating node's shards
    used to be restarted, and when the terminating node left, those shards had no copy: red."""
    sc = make(faults=Faults(terminating={"es-hot-1": 300}))
    gone_at = sc.world.pods["es-hot-1"].gone_at
    result = sc.run(TO, UpgradeSettings(es_max_unavailable=2))
    assert result.ok, result.reason
    for t, what in sc.acts("restart es-hot-"):
        assert t >= gone_at, f"{what} at {t} s while es-hot-1 (sharing its shards) was still terminating"
    warm = [t for t, _ in sc.acts("restart es-warm-")]
    assert warm and min(warm) < gone_at  # nodes sharing nothing with it did not wait
    rules = {e.rule for e in sc.events if e.kind in ("gate-wait", "requeue")}
    assert "elasticsearch.shared-shard" in rules
    assert never_red(sc.world)


def test_a_pod_not_ready_while_its_node_is_joined_counts_against_max_unavailable() -> None:
    sc = make()
    hit: list[float] = []

    def after_first_es_node(e: Event) -> None:
        if e.kind == "recovered" and e.step.startswith("elasticsearch/restart/") and not hit:
            node = e.step.rsplit("/", 1)[1]
            sc.world.apply_faults(parse_injections([f"readiness-fails={node}:120"]))
            hit.append(sc.world.now)

    result = sc.run(TO, hook=after_first_es_node)
    assert result.ok, result.reason
    restarts = [t for t, _ in sc.acts("restart es-")]
    assert restarts[1] >= hit[0] + 120  # the next node waited until the NotReady one was Ready again
    waits = [g for r in result.steps for g in r.gates_waited if g.rule == "elasticsearch.max-unavailable"]
    assert waits and "(NotReady while joined)" in waits[0].last_reason


def test_indices_with_zero_replicas_are_refused_by_name_unless_accepted() -> None:
    es = ElasticsearchSpec(version="8.18.3", replicas=0)
    sc = make(es=es)
    uids = {n: p.uid for n, p in sc.world.pods.items()}
    refused = sc.run(TO)
    assert refused.outcome == "refused" and refused.rule == "elasticsearch.zero-replicas"
    assert "events-hot-0000" in refused.reason and "--accept-unavailable-index" in refused.reason
    assert {n: p.uid for n, p in sc.world.pods.items()} == uids
    indices = sorted({s.index for s in sc.world.elasticsearch.shards})
    partly = sc.run(TO, UpgradeSettings(accept_unavailable_indices=tuple(indices[:1])))
    assert partly.outcome == "refused" and indices[0] not in partly.reason and indices[1] in partly.reason
    accepted = sc.run(TO, UpgradeSettings(accept_unavailable_indices=tuple(indices)))
    assert accepted.ok, accepted.reason
    assert not never_red(sc.world)  # the unavailability that was accepted is real


def test_fewer_than_three_master_eligible_nodes_roll_with_a_warning_instead_of_stalling() -> None:
    es = ElasticsearchSpec(
        version="8.18.3",
        node_sets=(
            NodeSetSpec(name="master", roles=("master",), replicas=2),
            NodeSetSpec(name="hot", roles=("data_hot",), replicas=3, tier="hot"),
        ),
    )
    sc = make(es=es)
    plan = planner.plan(sc.target.observe(), TO, UpgradeSettings(), load())
    assert any(w.rule == "elasticsearch.small-master-quorum" for w in plan.warnings)
    result = sc.run(TO, UpgradeSettings(gate_timeout=300))
    assert result.ok, result.reason
