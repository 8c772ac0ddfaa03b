"""The `local` environment's data plane: a SIMULATED Kafka and Elasticsearch that follow the REAL pods' lifecycle.

No Kafka broker or Elasticsearch node runs on the local control plane (its pods are driven by the node agent), so
the data plane is the simulated platform's model (`toolkit.targets.sim.world`), driven by what the real pods do
instead of by the model's own pods. Every output built on it says "simulated data plane".

Algorithm (each observation and each action)
1. Time: the model's clock is wall-clock seconds since the data plane was created (`time.time() - created_wall`),
   so it keeps running across orchestrator restarts; the model advances to it with its Kubernetes physics switched
   off (`World.advance(to, kubernetes=False)`): only catch-up, shard recovery, quorum and lag tick.
2. Mapping: a real StatefulSet pod maps to the model pod with the same component, role (label
   `app.kubernetes.io/component`, e.g. `combined`, `broker`, `master`, `hot`) and ordinal. The model is built from the
   environment's platform spec, so its names (`kafka-0`, `es-hot-1`) may differ from the real ones: every name the
   model reports is translated to the real pod name. Deployment pods (workers) are mirrored one to one.
3. Lifecycle: a member serves while its real pod exists, is Ready and is not terminating. When a serving member
   stops serving, or its pod UID changes (it was re-created between two observations), the model applies
   `World.member_down` (the broker leaves every ISR and the quorum, the ES node leaves with its shard copies);
   when it serves again, `World.member_up` (the broker starts catching up and rejoins each ISR after the modelled
   catch-up time; ES copies recover on the next ticks). The version a member runs is its real pod's version label.
   This is the same physics the simulated platform applies to its own pods: one implementation, two drivers.
4. Components without a real workload report an empty state (no phantom members).
5. The model is saved (JSON, `SimStore`) under the environment's state directory after every observation and
   action, so a restarted orchestrator continues with the same ISRs, lag and pending catch-ups.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any

from toolkit.config.platform import PlatformSpec
from toolkit.model import (
    EsNode,
    EsState,
    KafkaNode,
    KafkaState,
    Shard,
    ShutdownRecord,
    WorkersState,
    Workload,
)
from toolkit.targets.kube.workloads import pod_ordinal
from toolkit.targets.sim import SimStore
from toolkit.targets.sim.world import SimParams, SimPod, World, build_world

DESCRIPTION = "simulated data plane (Kafka and Elasticsearch modelled, following the real pods' lifecycle)"
STATEFUL_COMPONENTS = ("kafka", "elasticsearch")
REAL_UID_PREFIX = "k8s:"  # model pods synced from a real pod store its UID with this prefix


class SimulatedDataPlane:
    """Kafka + Elasticsearch + worker lag modelled by `World`, following real pods (see the module docstring)."""

    simulated = True
    description = DESCRIPTION

    def __init__(
        self,
        environment: str,
        spec: PlatformSpec,
        params: SimParams,
        store_path: Path | None = None,
    ) -> None:
        self._store = SimStore(store_path) if store_path is not None else None
        self.world: World
        if self._store is not None and self._store.exists():
            self.world = self._store.load()
        else:
            self.world = build_world(environment, spec, params)
            self.world.environment = environment
        self._created_wall = self._load_created_wall()
        self._to_real: dict[str, str] = {}
        self._to_model: dict[str, str] = {}
        self._present: set[str] = set()

    # ------------------------------------------------------------------ time and persistence

    def _load_created_wall(self) -> float:
        """The wall-clock instant of model time 0, kept in the model's audit slot of the saved world."""
        for entry in self.world.audit:
            if entry.get("what") == "data-plane-created":
                return float(entry["wall_epoch"]) - float(entry["model_time"])
        now = time.time()
        self.world.audit.append({"what": "data-plane-created", "wall_epoch": now, "model_time": self.world.now})
        return now - self.world.now

    def _advance(self) -> None:
        to = time.time() - self._created_wall
        if to > self.world.now:
            self.world.advance(to, kubernetes=False)

    def _save(self) -> None:
        if self._store is not None:
            self._store.save(self.world)

    # ------------------------------------------------------------------ following the real pods

    def _model_workload(self, component: str, role: str) -> str | None:
        for w in self.world.workloads.values():
            if w.component == component and w.role == role:
                return w.name
        return None

    def _sync(self, workloads: tuple[Workload, ...]) -> None:
        world = self.world
        self._to_real, self._to_model, self._present = {}, {}, set()
        real_sets: dict[str, Workload] = {}
        for w in workloads:
            if w.kind == "StatefulSet" and w.component in STATEFUL_COMPONENTS:
                model = self._model_workload(w.component, w.role)
                if model is not None:
                    real_sets[model] = w
                    self._present.add(w.component)
            elif w.kind == "Deployment":
                self._mirror_deployment(w)
        for name, mw in world.workloads.items():
            real = real_sets.get(name)
            if real is None:
                continue
            by_ordinal = {pod_ordinal(p.name): p for p in real.pods}
            model_pods = sorted((p for p in world.pods.values() if p.workload == name), key=lambda p: p.name)
            for sim_pod in model_pods:
                ordinal = pod_ordinal(sim_pod.name)
                pod = by_ordinal.get(ordinal)
                real_name = pod.name if pod is not None else f"{real.name}-{ordinal}"
                self._to_real[sim_pod.name] = real_name
                self._to_model[real_name] = sim_pod.name
                serving = pod is not None and pod.ready and not pod.terminating
                uid = REAL_UID_PREFIX + pod.uid if pod is not None else REAL_UID_PREFIX
                # the model's own pods carry generated uids: the first sync adopts the real pod as it is
                first_look = not sim_pod.uid.startswith(REAL_UID_PREFIX)
                recreated = not first_look and uid != sim_pod.uid
                if (sim_pod.ready and not serving) or recreated:
                    sim_pod.ready = False
                    world.member_down(sim_pod.name)
                if pod is None or pod.terminating:
                    sim_pod.phase = "terminating"
                elif not serving:
                    sim_pod.phase = "starting"
                if serving and not sim_pod.ready:
                    sim_pod.ready, sim_pod.phase, sim_pod.up_since = True, "running", world.now
                    world.member_up(sim_pod.name)
                if pod is not None:
                    sim_pod.version, sim_pod.revision = pod.version, pod.revision
                    sim_pod.zone, sim_pod.node = pod.zone or sim_pod.zone, pod.node or sim_pod.node
                    if mw.revisions.get(pod.revision) is None:
                        mw.revisions[pod.revision] = pod.version
                sim_pod.uid = uid

    def _mirror_deployment(self, w: Workload) -> None:
        """Worker pods: the model only counts Ready indexers (lag), so the real pods are mirrored as they are."""
        model = self._model_workload(w.component, w.role)
        if model is None:
            return
        world = self.world
        for name in [p.name for p in world.pods.values() if p.workload == model]:
            del world.pods[name]
        for pod in w.pods:
            world.pods[pod.name] = SimPod(
                name=pod.name,
                workload=model,
                revision=pod.revision,
                version=pod.version,
                zone=pod.zone,
                node=pod.node,
                uid=pod.uid or hashlib.sha1(pod.name.encode()).hexdigest()[:12],
                phase="terminating" if pod.terminating else ("running" if pod.ready else "starting"),
                ready=pod.ready and not pod.terminating,
            )
        self._present.add("workers")

    # ------------------------------------------------------------------ observation

    def observe(
        self, workloads: tuple[Workload, ...], node_id_base: dict[str, int], now: float
    ) -> tuple[KafkaState, EsState, WorkersState]:
        self._advance()
        self._sync(workloads)
        snapshot = self.world.snapshot()
        self._save()
        real = self._real_name
        kafka = KafkaState()
        if "kafka" in self._present:
            k = snapshot.kafka
            kafka = dataclasses.replace(
                k, nodes=tuple(dataclasses.replace(n, pod=real(n.pod)) for n in k.nodes if n.pod in self._to_real)
            )
            kafka = _only_known_nodes(kafka)
        es = EsState()
        if "elasticsearch" in self._present:
            e = snapshot.elasticsearch
            es = dataclasses.replace(
                e,
                nodes=tuple(
                    EsNode(real(n.name), n.roles, n.version, n.tier, n.joined)
                    for n in e.nodes
                    if n.name in self._to_real
                ),
                shards=tuple(
                    Shard(s.index, s.number, s.primary, s.state, real(s.node) if s.node else None) for s in e.shards
                ),
                elected_master=real(e.elected_master) if e.elected_master else None,
                shutdowns=tuple(ShutdownRecord(real(r.node), r.type, r.status) for r in e.shutdowns),
            )
        workers = snapshot.workers if "workers" in self._present else WorkersState()
        return kafka, es, workers

    def _real_name(self, model_name: str) -> str:
        return self._to_real.get(model_name, model_name)

    def _model_name(self, real_name: str) -> str:
        return self._to_model.get(real_name, real_name)

    # ------------------------------------------------------------------ actions (through the ports below)

    def ports(self) -> dict[str, Any]:
        return {"kafka": _KafkaPort(self), "elasticsearch": _ElasticsearchPort(self)}

    def act(self, action: Any) -> None:
        """Advance the model to now, apply `action(world)`, save."""
        self._advance()
        action(self.world)
        self._save()

    def close(self) -> None:
        self._save()


class _KafkaPort:
    def __init__(self, plane: SimulatedDataPlane) -> None:
        self._plane = plane

    def elect_preferred_leaders(self) -> None:
        self._plane.act(lambda world: world.kafka.elect_preferred_leaders())

    def finalize_metadata_version(self, metadata_version: str) -> None:
        self._plane.act(lambda world: setattr(world.kafka, "metadata_version", metadata_version))


class _ElasticsearchPort:
    def __init__(self, plane: SimulatedDataPlane) -> None:
        self._plane = plane

    def prepare_restart(self, node: str, method: str) -> None:
        model = self._plane._model_name(node)
        self._plane.act(lambda world: world.elasticsearch.prepare(model, method))

    def shutdown_complete(self, node: str) -> bool:
        self._plane._advance()
        model = self._plane._model_name(node)
        return any(r.node == model and r.status == "COMPLETE" for r in self._plane.world.elasticsearch.shutdowns)

    def finish_restart(self, node: str, method: str) -> None:
        model = self._plane._model_name(node)
        self._plane.act(lambda world: world.elasticsearch.finish(model, method))

    def reset_allocation(self) -> None:
        self._plane.act(lambda world: setattr(world.elasticsearch, "allocation", None))

    def remove_shutdown(self, node: str) -> None:
        model = self._plane._model_name(node)
        self._plane.act(lambda world: world.elasticsearch.remove_shutdown(model))


def _only_known_nodes(kafka: KafkaState) -> KafkaState:
    """Voters of nodes that were filtered out (no real pod mapping) are dropped with them."""
    ids = {n.id for n in kafka.nodes}
    voters = tuple(v for v in kafka.voters if v.id in ids)
    active = kafka.active_controller if kafka.active_controller in ids else None
    nodes: tuple[KafkaNode, ...] = kafka.nodes
    return dataclasses.replace(kafka, nodes=nodes, voters=voters, active_controller=active)
