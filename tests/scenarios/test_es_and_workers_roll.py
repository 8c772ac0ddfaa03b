"""Elasticsearch and worker rolls on the simulated platform."""

from __future__ import annotations

from tests.scenarios.harness import make
from toolkit.catalog import load
from toolkit.config.platform import ElasticsearchSpec, NodeSetSpec, WorkersSpec
from toolkit.engine import planner
from toolkit.model import Component, UpgradeSettings
from toolkit.targets.sim import Faults, SimParams

THREE_MASTERS_SIX_DATA = ElasticsearchSpec(
    version="8.18.3",
    node_sets=(
        NodeSetSpec(name="master", roles=("master",), replicas=3),
        NodeSetSpec(name="hot", roles=("data_hot",), replicas=3, tier="hot"),
        NodeSetSpec(name="warm", roles=("data_warm",), replicas=3, tier="warm"),
    ),
    indices=6,
    shards_per_index=3,
    replicas=1,
)


def test_es_roll_never_red_tiers_in_order_masters_last_allocation_restored() -> None:
    sc = make(es=THREE_MASTERS_SIX_DATA)
    elected = sc.world.elasticsearch.elected_master
    result = sc.run({Component.ELASTICSEARCH: "8.19.3"})
    assert result.outcome == "completed", result.reason
    order = sc.restart_order()
    assert [p.split("-")[1] for p in order] == ["warm"] * 3 + ["hot"] * 3 + ["master"] * 3
    assert order[-1] == elected
    assert all(h["es_health"] != "red" for h in sc.world.history)
    assert sc.world.elasticsearch.allocation is None and sc.world.elasticsearch.shutdowns == []
    assert sc.world.elasticsearch.health().value == "green"


def test_es_roll_with_the_allocation_method_restores_allocation_every_time() -> None:
    sc = make(es=THREE_MASTERS_SIX_DATA, params=SimParams(es_shutdown_api=False))
    result = sc.run({Component.ELASTICSEARCH: "8.19.3"})
    assert result.ok, result.reason
    assert any(h["allocation"] == "primaries" for h in sc.world.history)
    assert sc.world.elasticsearch.allocation is None
    assert all(h["es_health"] != "red" for h in sc.world.history)


def test_red_cluster_halts_before_touching_any_node() -> None:
    sc = make(es=THREE_MASTERS_SIX_DATA, faults=Faults(red_cluster=True))
    uids = {n: p.uid for n, p in sc.world.pods.items()}
    result = sc.run({Component.ELASTICSEARCH: "8.19.3"}, UpgradeSettings(gate_timeout=120))
    assert result.outcome == "halted"
    assert result.rule == "elasticsearch.health" and "red" in result.reason
    assert {n: p.uid for n, p in sc.world.pods.items()} == uids  # nothing restarted


def test_worker_roll_never_drops_below_desired_ready() -> None:
    sc = make(workers=WorkersSpec(version="0.1.0", receivers=3, indexers=4))
    result = sc.run({Component.WORKERS: "0.2.0"})
    assert result.outcome == "completed", result.reason
    for h in sc.world.history:
        assert h["workers_ready"]["workers-receiver"] >= 3, h
        assert h["workers_ready"]["workers-indexer"] >= 4, h
    versions = {p.version for p in sc.world.pods.values() if sc.world.workloads[p.workload].component == "workers"}
    assert versions == {"0.2.0"}


class BurstWhenANewIndexerIsReady:
    """Steady load, plus a burst of `extra` events the moment the first indexer of `version` becomes Ready."""

    def __init__(self, version: str, extra: float) -> None:
        self.version, self.extra, self.fired_at = version, extra, -1.0

    def tick(self, world, dt: float) -> None:  # type: ignore[no-untyped-def]
        world.workers.tick(dt)
        ready_new = [
            p for p in world.pods.values() if p.workload == "workers-indexer" and p.ready and p.version == self.version
        ]
        if ready_new and self.fired_at < 0:
            world.workers.lag += self.extra
            self.fired_at = world.now


def test_worker_lag_gate_pauses_the_roll_until_lag_drains() -> None:
    sc = make(workers=WorkersSpec(version="0.1.0", indexers=3))
    burst = BurstWhenANewIndexerIsReady("0.2.0", 200_000)
    sc.world.traffic = burst
    result = sc.run({Component.WORKERS: "0.2.0"}, UpgradeSettings(lag_bound=20_000, step_timeout=3600))
    assert result.outcome == "completed", result.reason
    assert burst.fired_at > 0
    acts = [e.message for e in sc.events if e.kind == "act"]
    paused = [a for a in acts if a.endswith("(lag gate)")]
    assert paused == ["pause deployment workers-indexer (lag gate)"], acts
    assert acts.index("resume deployment workers-indexer") > acts.index(paused[0])
    assert sc.world.workers.lag <= 20_000


def test_worker_lag_gate_shows_in_the_plan_and_holds_the_roll_until_lag_is_under_the_bound() -> None:
    sc = make(workers=WorkersSpec(version="0.1.0", indexers=3))
    sc.world.workers.lag = 120_000  # a backlog the 3 indexers drain at 2,500 events/s
    plan = planner.plan(sc.target.observe(), {"workers": "0.2.0"}, UpgradeSettings(lag_bound=20_000), load())
    blocked = [s.blocked for s in plan.steps if s.kind == "roll"]
    assert blocked[0] is not None and blocked[0].rule == "workers.lag-bound"
    assert "lag 120000 > bound 20000" in blocked[0].reason
    result = sc.run({Component.WORKERS: "0.2.0"}, UpgradeSettings(lag_bound=20_000))
    assert result.ok, result.reason
    first = result.steps[0]
    assert first.gates_waited[0].rule == "workers.lag-bound" and first.gates_waited[0].seconds >= 35
    assert first.started_at >= 40  # (120,000 - 20,000) / 2,500 per second: the roll waited for the backlog


def test_whole_platform_upgrade_in_catalog_order() -> None:
    sc = make()
    result = sc.run({Component.WORKERS: "0.2.0", Component.KAFKA: "4.1.0", Component.ELASTICSEARCH: "8.19.3"})
    assert result.ok, result.reason
    components = [r.component for r in result.steps]
    first = {c: components.index(c) for c in ("kafka", "elasticsearch", "workers")}
    assert first["kafka"] < first["elasticsearch"] < first["workers"]
    assert components == sorted(components, key=["kafka", "elasticsearch", "workers"].index)
