"""A deterministic simulated platform on a virtual clock: Kubernetes workloads, a KRaft Kafka cluster, an
Elasticsearch cluster and ingestion workers, modelling exactly what the engine's gates observe.

It is a model, not the real thing, and every output built on it says "simulated". The `World` composes one model
per part, split as the engine's drivers are (toolkit/engine/drivers/); each holds its own state and its module says
what it models:
- `pods.py`: Kubernetes workloads (StatefulSets, Deployments), their controllers, and the pods every model reads;
- `kafka.py`: Kafka nodes, partitions, ISRs, the controller quorum and catch-up;
- `elasticsearch.py`: shards, recovery, allocation, shutdown records and health;
- `workers.py`: the event rate and the indexers' lag;
- `nodes.py`: Kubernetes itself: nodes, node groups, zones, placement, PDBs, evictions, add-ons, control plane;
- `tls.py`: which pod trusts and presents which CA, and which handshakes fail;
- `faults.py`: faults injected into a fresh or running platform; `params.py`: how long each thing takes.
The world keeps what they share: the clock, the pods and workloads, the faults, and what the orchestrator keeps in
the platform (lease, audit trail, requests, restart budgets), and the samples of the invariants.

Observations are snapshots taken every `observe_interval` seconds, as real polling would see them.

Time advances only through `advance(to)`, in steps of at most one second, each moving the parts in a fixed order
(Kubernetes nodes, pods, Kafka, Elasticsearch, the workers' load); every transition happens at a recorded time, so
a run is the same every time for the same seed and inputs. The whole world (including pending transitions, the
lease and the audit trail) serialises to JSON (`World.dump`, `World.load`), so a CLI run can be interrupted and
resumed; the format is `SavedWorld`'s, the same as when the world was a single class.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from toolkit.catalog import load as load_catalog
from toolkit.config.platform import PlatformSpec
from toolkit.model import Lease, PlatformState, RunRequest, Topic
from toolkit.targets.sim.elasticsearch import ElasticsearchModel, SimShard, SimShutdown
from toolkit.targets.sim.faults import Faults, InjectionError, apply_faults
from toolkit.targets.sim.kafka import KafkaModel, SimKafkaNode, SimPartition, kafka_assignment, rack_alternated
from toolkit.targets.sim.nodes import KubernetesModel, SimAddon, SimGroup, SimNode
from toolkit.targets.sim.params import NEVER, STEADY_SECONDS, SimParams, params_from
from toolkit.targets.sim.pods import Controllers, SimPod, SimWorkload
from toolkit.targets.sim.tls import SimTlsView, TlsModel
from toolkit.targets.sim.workers import WorkersModel

__all__ = [  # the names it defined as one module stay importable from here (re-exported from the per-part modules)
    "HISTORY_LIMIT",
    "NEVER",
    "STEADY_SECONDS",
    "Faults",
    "InjectionError",
    "SavedWorld",
    "SimAddon",
    "SimGroup",
    "SimKafkaNode",
    "SimNode",
    "SimParams",
    "SimPartition",
    "SimPod",
    "SimShard",
    "SimShutdown",
    "SimTlsView",
    "SimWorkload",
    "World",
    "build_world",
    "kafka_assignment",
    "params_from",
    "rack_alternated",
]

HISTORY_LIMIT = 50_000  # invariant samples kept (one per simulated second)


class World:
    """The simulated platform: its clock, the shared pods and workloads, one model per part (`controllers`,
    `kubernetes`, `kafka`, `elasticsearch`, `workers`, `tls`), the injected faults, and what the orchestrator keeps
    in the platform (lease, audit trail, requests, restart budgets)."""

    def __init__(self, environment: str, params: SimParams, faults: Faults) -> None:
        self.environment = environment
        self.params = params
        self.faults = faults
        self.now = 0.0
        self.last_observed_at = -NEVER
        # the pods and workloads every model reads (written by the controllers, and by the local target's sync)
        self.workloads: dict[str, SimWorkload] = {}
        self.pods: dict[str, SimPod] = {}
        self.controllers = Controllers(self)
        self.kubernetes = KubernetesModel(self)
        self.kafka = KafkaModel(self)
        self.elasticsearch = ElasticsearchModel(self)
        self.workers = WorkersModel(self)
        self.tls = TlsModel(self)
        self.lease: Lease | None = None
        self.audit: list[dict[str, Any]] = []
        self.request: RunRequest | None = None  # a pause/abort request waiting for the run (in-memory control)
        self.restarts_given: dict[str, int] = {}  # "pod@version" -> restarts (in-memory control)
        self.actions = 0  # step-starting actions taken, for crash injection
        self.history: list[dict[str, Any]] = []  # invariants sampled every simulated second
        # live load during a rehearsal (toolkit.rehearsal.traffic): anything with tick(world, dt); never saved
        self.traffic: Any = None

    # ------------------------------------------------------------------ shared helpers

    def factor(self, *key: object) -> float:
        """A deterministic spread in [0.5, 1.0] for `key` under this world's seed."""
        digest = hashlib.sha1(f"{self.params.seed}/{key}".encode()).digest()
        return 0.5 + 0.5 * (digest[0] / 255.0)

    def pick(self, size: int, *key: object) -> int:
        """A deterministic stand-in for a random choice in range(size) (Kafka picks some placements at random)."""
        digest = hashlib.sha1(f"{self.params.seed}/{key}".encode()).digest()
        return int.from_bytes(digest[:4], "big") % max(1, size)

    def pods_of(self, workload: str) -> list[SimPod]:
        return [p for p in self.pods.values() if p.workload == workload]

    def component_of(self, pod: SimPod) -> str:
        return self.workloads[pod.workload].component

    def member_down(self, name: str) -> None:
        """The data plane's side of pod `name` stopping: its broker leaves every ISR (and the quorum), or its
        Elasticsearch node leaves with its shard copies. Shared by the simulated pods and the local target's real
        pods (toolkit.targets.dataplane)."""
        component = self.component_of(self.pods[name])
        if component == "kafka":
            node = self.kafka.node_of_pod(name)
            if node is not None:
                self.kafka.node_down(node.id)
        elif component == "elasticsearch":
            self.elasticsearch.node_down(name)

    def member_up(self, name: str) -> None:
        """The data plane's side of pod `name` becoming Ready: its broker starts catching up (Elasticsearch nodes
        recover their copies on the next tick by themselves)."""
        if self.component_of(self.pods[name]) == "kafka":
            node = self.kafka.node_of_pod(name)
            if node is not None:
                self.kafka.node_up(node.id)

    def apply_faults(self, faults: Faults) -> None:
        """Inject `faults` into this platform NOW (a fresh one or one that has been running): each takes effect
        at once or at the pod's next restart (never-ready), or is refused with why. All are checked before any is
        applied, so a refusal changes nothing."""
        apply_faults(self, faults)

    # ------------------------------------------------------------------ time

    def advance(self, to: float, kubernetes: bool = True) -> None:
        """Move time to `to` in steps of at most one second. With `kubernetes=False` the pods are not moved by
        the model (the local target's pods are real and synced in from outside); only the data plane ticks."""
        while self.now < to:
            dt = min(1.0, to - self.now)
            self.now += dt
            if kubernetes:
                self.kubernetes.tick()
                self.controllers.tick()
            self.kafka.tick()
            self.elasticsearch.tick()
            if self.traffic is not None:
                self.traffic.tick(self, dt)
            else:
                self.workers.tick(dt)
            self._sample_invariants()
            interval = self.params.observe_interval
            if self.now - self.last_observed_at >= interval - 1e-9:
                self.last_observed_at = math.floor(self.now / interval + 1e-9) * interval

    def _sample_invariants(self) -> None:
        below = self.kafka.below_min_isr()
        offline = self.kafka.offline()
        ready: dict[str, int] = {}
        for w in self.workloads.values():
            if w.kind == "Deployment":
                ready[w.name] = sum(1 for p in self.pods_of(w.name) if p.ready)
        if len(self.history) >= HISTORY_LIMIT:
            del self.history[: HISTORY_LIMIT // 10]
        sample = {
            "t": self.now,
            "below_min_isr": below,
            "offline": offline,
            "es_health": self.elasticsearch.health().value,
            "workers_ready": ready,
            "lag": round(self.workers.lag),
            "allocation": self.elasticsearch.allocation,
        }
        self.tls.sample(sample)
        self.history.append(sample)

    # ------------------------------------------------------------------ observation

    def snapshot(self) -> PlatformState:
        return PlatformState(
            environment=self.environment,
            observed_at=self.now,
            simulated=True,
            workloads=self.controllers.snapshot(),
            kafka=self.kafka.snapshot(),
            elasticsearch=self.elasticsearch.snapshot(),
            workers=self.workers.snapshot(),
            kubernetes=self.kubernetes.snapshot(),
        )

    # ------------------------------------------------------------------ serialisation

    def dump(self) -> dict[str, Any]:
        """The world as the object of its saved JSON (Python values: `json.dumps(..., default=str)` it)."""
        return _SAVED.dump_python(self._saved(), mode="python")

    @classmethod
    def load(cls, data: Any) -> World:
        """The world saved as `data` (the parsed JSON of `dump`, by this or any earlier version)."""
        return cls._from_saved(_SAVED.validate_python(data))

    def _saved(self) -> SavedWorld:
        k8s, kafka, es, tls = self.kubernetes, self.kafka, self.elasticsearch, self.tls
        return SavedWorld(
            environment=self.environment,
            params=self.params,
            faults=self.faults,
            now=self.now,
            seq=self.controllers.seq,
            workloads=self.workloads,
            pods=self.pods,
            kafka_nodes=kafka.nodes,
            topics=kafka.topics,
            partitions=kafka.partitions,
            active_controller=kafka.active_controller,
            metadata_version=kafka.metadata_version,
            es_allocation=es.allocation,
            es_shards=es.shards,
            es_shutdowns=es.shutdowns,
            es_elected_master=es.elected_master,
            es_snapshot_repositories=es.snapshot_repositories,
            lag=self.workers.lag,
            last_observed_at=self.last_observed_at,
            lease=self.lease,
            audit=self.audit,
            request=self.request,
            restarts_given=self.restarts_given,
            actions=self.actions,
            nodes=k8s.nodes,
            groups=k8s.groups,
            node_seq=k8s.node_seq,
            cp_version=k8s.cp_version,
            cp_status=k8s.cp_status,
            cp_target=k8s.cp_target,
            cp_ready_at=k8s.cp_ready_at,
            addons=k8s.addons,
            evictions=k8s.evictions,
            evictions_refused=k8s.evictions_refused,
            history=self.history,
            pki=tls.secrets,
            pki_views=tls.views,
            tls_mounts=tls.mounts,
            pki_progress=tls.progress,
        )

    @classmethod
    def _from_saved(cls, s: SavedWorld) -> World:
        world = cls(s.environment, s.params, s.faults)
        world.now = s.now
        world.controllers.seq = s.seq
        world.workloads = s.workloads
        world.pods = s.pods
        kafka = world.kafka
        kafka.nodes, kafka.topics, kafka.partitions = s.kafka_nodes, s.topics, s.partitions
        kafka.active_controller, kafka.metadata_version = s.active_controller, s.metadata_version
        es = world.elasticsearch
        es.allocation, es.shards, es.shutdowns = s.es_allocation, s.es_shards, s.es_shutdowns
        es.elected_master, es.snapshot_repositories = s.es_elected_master, s.es_snapshot_repositories
        world.workers.lag = s.lag
        world.last_observed_at = s.last_observed_at
        world.lease, world.audit, world.request = s.lease, s.audit, s.request
        world.restarts_given, world.actions = s.restarts_given, s.actions
        k8s = world.kubernetes
        k8s.nodes, k8s.groups, k8s.node_seq = s.nodes, s.groups, s.node_seq
        k8s.cp_version, k8s.cp_status, k8s.cp_target, k8s.cp_ready_at = (
            s.cp_version,
            s.cp_status,
            s.cp_target,
            s.cp_ready_at,
        )
        k8s.addons, k8s.evictions, k8s.evictions_refused = s.addons, s.evictions, s.evictions_refused
        world.history = s.history
        tls = world.tls
        tls.secrets, tls.views, tls.mounts, tls.progress = s.pki, s.pki_views, s.tls_mounts, s.pki_progress
        return world


@dataclass
class SavedWorld:
    """The saved world's JSON: every key, its type, default and place, exactly as when the World was one dataclass
    (its fields, in their order), so that a world saved by any version loads, and saves to the same bytes. A new
    key goes at the end, with a default; a key is never renamed or dropped."""

    environment: str
    params: SimParams
    faults: Faults
    now: float = 0.0
    seq: int = 0  # Controllers.seq
    workloads: dict[str, SimWorkload] = field(default_factory=dict)
    pods: dict[str, SimPod] = field(default_factory=dict)
    kafka_nodes: list[SimKafkaNode] = field(default_factory=list)  # KafkaModel.nodes
    topics: list[Topic] = field(default_factory=list)
    partitions: list[SimPartition] = field(default_factory=list)
    active_controller: int | None = None
    metadata_version: str = ""
    es_allocation: str | None = None  # ElasticsearchModel.allocation, .shards, ...
    es_shards: list[SimShard] = field(default_factory=list)
    es_shutdowns: list[SimShutdown] = field(default_factory=list)
    es_elected_master: str | None = None
    es_snapshot_repositories: list[str] = field(default_factory=list)
    lag: float = 0.0  # WorkersModel.lag
    last_observed_at: float = -NEVER
    lease: Lease | None = None
    audit: list[dict[str, Any]] = field(default_factory=list)
    request: RunRequest | None = None
    restarts_given: dict[str, int] = field(default_factory=dict)
    actions: int = 0
    nodes: dict[str, SimNode] = field(default_factory=dict)  # KubernetesModel.nodes, .groups, ...
    groups: dict[str, SimGroup] = field(default_factory=dict)
    node_seq: int = 0
    cp_version: str = ""
    cp_status: str = "ACTIVE"
    cp_target: str = ""
    cp_ready_at: float = 0.0
    addons: dict[str, SimAddon] = field(default_factory=dict)
    evictions: list[dict[str, Any]] = field(default_factory=list)
    evictions_refused: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    pki: dict[str, dict[str, str]] = field(default_factory=dict)  # TlsModel.secrets, .views, .mounts, .progress
    pki_views: dict[str, SimTlsView] = field(default_factory=dict)
    tls_mounts: dict[str, list[str]] = field(default_factory=dict)
    pki_progress: str = ""


_SAVED = TypeAdapter(SavedWorld)


# ---------------------------------------------------------------------------------------------- building


def build_world(
    environment: str,
    spec: PlatformSpec,
    params: SimParams | None = None,
    faults: Faults | None = None,
    versions: dict[str, str] | None = None,
) -> World:
    """A healthy platform shaped by `spec`, every member on its version (or the `versions` override)."""
    params = params or SimParams()
    faults = faults or Faults()
    versions = versions or {}
    catalog = load_catalog()
    world = World(environment=environment, params=params, faults=Faults())
    zones = spec.zones
    # in this order (it names the pods and nodes): Kubernetes itself, Kafka, Elasticsearch, the workers
    world.kubernetes.build(spec.kubernetes, zones, versions.get("kubernetes", spec.kubernetes.version), catalog)
    world.kafka.build(spec.kafka, zones, versions.get("kafka", spec.kafka.version), catalog)
    world.elasticsearch.build(spec.elasticsearch, zones, versions.get("elasticsearch", spec.elasticsearch.version))
    world.workers.build(spec.workers, zones, versions.get("workers", spec.workers.version))
    world.apply_faults(faults)
    world._sample_invariants()
    world.last_observed_at = 0.0
    return world
