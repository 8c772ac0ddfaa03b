"""A simulated platform saved before the world was split into per-part models still loads, saves to the same bytes,
carries on from where it was and can be upgraded to the end.

data/saved-world-single-class.json was saved by the single-class `World` (commit 4356cdf) through `SimStore.save`: a
small platform (3 controllers + 3 brokers, 9 Elasticsearch nodes, 3 workers, 13 nodes) half way through a Kubernetes
1.33 -> 1.34 and Kafka 4.0.1 -> 4.1.0 upgrade whose orchestrator crashed after its 9th step-starting action, with
made-up certificates mounted (a Kafka Secret trusting ca-1, an Elasticsearch one trusting ca-1 and ca-2), and at the
moment of saving: kafka-broker-0 catching up (a rejoin time in every partition), es-hot-1 and kafka-controller-1
restarting, es-warm-1 terminating while still joined, es-master-0's readiness probe failing, a surged node not Ready
yet, allocation restricted to primaries and a shutdown record in progress. The figures asserted after it are those
the single-class World produced from the same file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from toolkit.catalog import load
from toolkit.engine.executor import Executor
from toolkit.model import Component, ShardState, UpgradeSettings
from toolkit.targets.sim import SimStore, SimTarget, World

SAVED = Path(__file__).with_name("data") / "saved-world-single-class.json"


def loaded(tmp_path: Path) -> World:
    shutil.copy(SAVED, tmp_path / "sim-world.json")
    return SimStore(tmp_path / "sim-world.json").load()


def test_a_world_saved_before_the_split_saves_to_the_same_bytes(tmp_path: Path) -> None:
    world = loaded(tmp_path)
    SimStore(tmp_path / "again.json").save(world)
    assert (tmp_path / "again.json").read_bytes() == SAVED.read_bytes()


def test_its_pending_transitions_carry_on_after_loading(tmp_path: Path) -> None:
    world = loaded(tmp_path)
    assert world.now == 940.0
    assert all(p.rejoin_at for p in world.kafka.partitions)  # kafka-broker-0 (node 100) catching up
    world.advance(world.now + 120)

    assert [p.isr for p in world.kafka.partitions] == [
        [100, 102, 101],
        [101, 100, 102],
        [100, 101, 102],
        [101, 102, 100],
    ]
    assert not any(p.rejoin_at for p in world.kafka.partitions)
    restarted = {p.name: p.restarts for p in world.pods.values() if p.restarts}
    assert restarted == {"es-hot-1": 1, "es-warm-1": 1, "kafka-broker-0": 1, "kafka-controller-1": 1}
    assert all(p.phase == "running" and p.ready for p in world.pods.values())
    es = world.elasticsearch
    assert es.allocation == "primaries"  # so the replicas wait unassigned on their returned nodes
    assert [(s.node, s.state, s.home) for s in es.shards] == [
        ("es-hot-0", ShardState.STARTED.value, None),
        (None, ShardState.UNASSIGNED.value, "es-hot-1"),
        (None, ShardState.UNASSIGNED.value, "es-warm-1"),
        ("es-warm-2", ShardState.STARTED.value, None),
    ]
    assert [(r.node, r.status) for r in es.shutdowns] == [("es-warm-0", "COMPLETE")]
    assert all(n.ready for n in world.kubernetes.nodes.values())  # the surged node too
    assert world.pods["es-hot-1"].trusts == ["ca-1", "ca-2"]  # the restarted pod loaded its mounted Secret
    assert world.history[-1] == {
        "t": 1060.0,
        "below_min_isr": 0,
        "offline": 0,
        "es_health": "yellow",
        "workers_ready": {"workers-receiver": 1, "workers-indexer": 2},
        "lag": 0,
        "allocation": "primaries",
        "tls_failures": 0,
    }


def test_the_interrupted_upgrade_resumes_to_the_end(tmp_path: Path) -> None:
    world = loaded(tmp_path)
    world.advance(world.now + 120)
    result = Executor(
        SimTarget(world),
        load(),
        {Component.KUBERNETES: "1.34", Component.KAFKA: "4.1.0"},
        UpgradeSettings(),
        holder="b@c/2",  # the crashed run's lease (a@b/1) has expired
    ).run()
    assert (result.outcome, result.started_at, result.ended_at) == ("completed", 1060.0, 4425.0)
    assert world.elasticsearch.allocation is None
    assert world.history[-1]["es_health"] == "green" and world.history[-1]["tls_failures"] == 0
