"""The observed state of one platform, as plain frozen data.

A target (sim, local control plane, kind, EKS) observes the world into a `PlatformState`; the engine's gates and
planner are pure functions of it. Nothing here knows where the data came from, except the `simulated` flag that every
output carries forward so a simulated result is never mistaken for a real one.

Conventions
- Kafka nodes are identified by their KRaft node id; a node's pod is named in `KafkaNode.pod`.
- Elasticsearch nodes are identified by node name, which equals the pod name.
- Versions are catalog version strings ("4.1.0"); a workload's `target_version` is the version its spec asks for,
  a pod's `version` is the version it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Component(StrEnum):
    """The components built into the toolkit. A component is named by a plain string everywhere (the catalog's
    name): these constants are for the built-in ones, and a plug-in component needs none."""

    KAFKA = "kafka"
    ELASTICSEARCH = "elasticsearch"
    WORKERS = "workers"
    KUBERNETES = "kubernetes"


# --------------------------------------------------------------------------------------------- Kubernetes


@dataclass(frozen=True, slots=True)
class Pod:
    name: str
    workload: str
    ready: bool
    revision: str
    version: str
    zone: str = ""
    node: str = ""
    uid: str = ""
    phase: str = "Running"
    terminating: bool = False
    restarts: int = 0


@dataclass(frozen=True, slots=True)
class Workload:
    """A StatefulSet or Deployment that belongs to one component."""

    name: str
    component: str  # the catalog's component name (Component.KAFKA, ...)
    kind: str  # "StatefulSet" | "Deployment"
    role: str  # kafka: controller|broker|combined; elasticsearch: node-set name; workers: receiver|indexer
    replicas: int
    update_strategy: str  # "OnDelete" | "RollingUpdate"
    update_revision: str
    target_version: str
    previous_version: str = ""  # the version before the last spec change (recorded by the toolkit)
    paused: bool = False
    max_surge: int = 1
    max_unavailable: int = 0
    tier: str = ""  # elasticsearch data tier of the node set, "" for master-only sets
    pods: tuple[Pod, ...] = ()
    # the pod template's `toolkit.io/` annotations, sorted: what the toolkit stamped on it without a version change
    # (e.g. `toolkit.io/tls-generation` while certificates rotate); a change is a new revision like a version's
    annotations: tuple[tuple[str, str], ...] = ()

    def annotation(self, key: str) -> str:
        return dict(self.annotations).get(key, "")

    @property
    def ready_replicas(self) -> int:
        return sum(1 for p in self.pods if p.ready and not p.terminating)

    @property
    def updated_pods(self) -> tuple[Pod, ...]:
        return tuple(p for p in self.pods if p.revision == self.update_revision)


# --------------------------------------------------------------------------------------------- Kafka


class KafkaRole(StrEnum):
    CONTROLLER = "controller"
    BROKER = "broker"
    COMBINED = "combined"


class BrokerState(StrEnum):
    """Kafka's BrokerState metric, as read from the broker's metrics (not from the admin API)."""

    NOT_RUNNING = "not_running"
    STARTING = "starting"
    RECOVERY = "recovery"  # log recovery after an unclean shutdown: never force-restart
    RUNNING = "running"
    PENDING_CONTROLLED_SHUTDOWN = "pending_controlled_shutdown"
    SHUTTING_DOWN = "shutting_down"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class KafkaNode:
    id: int
    role: KafkaRole
    pod: str
    rack: str
    version: str
    state: BrokerState
    reachable: bool  # answers the admin API (brokers) or the quorum (controllers)

    @property
    def is_broker(self) -> bool:
        return self.role in (KafkaRole.BROKER, KafkaRole.COMBINED)

    @property
    def is_controller(self) -> bool:
        return self.role in (KafkaRole.CONTROLLER, KafkaRole.COMBINED)


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    replication_factor: int
    min_insync_replicas: int
    unclean_leader_election: bool = False


@dataclass(frozen=True, slots=True)
class Partition:
    topic: str
    partition: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int | None
    follower_lag: tuple[tuple[int, int], ...] = ()  # (broker id, messages behind the leader) for out-of-ISR replicas

    @property
    def name(self) -> str:
        return f"{self.topic}-{self.partition}"


@dataclass(frozen=True, slots=True)
class Voter:
    id: int
    lag: int  # log-end-offset behind the leader, from DescribeQuorum
    caught_up: bool


@dataclass(frozen=True, slots=True)
class KafkaState:
    nodes: tuple[KafkaNode, ...] = ()
    topics: tuple[Topic, ...] = ()
    partitions: tuple[Partition, ...] = ()
    active_controller: int | None = None  # DescribeQuorum leader id
    voters: tuple[Voter, ...] = ()
    metadata_version: str = ""  # finalized metadata.version, e.g. "4.0-IV3"
    unobserved: str = ""  # why the cluster could not be observed at all ("" = observed); the engine refuses to plan

    def node(self, node_id: int) -> KafkaNode | None:
        for n in self.nodes:
            if n.id == node_id:
                return n
        return None

    def topic(self, name: str) -> Topic | None:
        for t in self.topics:
            if t.name == name:
                return t
        return None


# --------------------------------------------------------------------------------------------- Elasticsearch


class Health(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    UNKNOWN = "unknown"  # no answer


class ShardState(StrEnum):
    STARTED = "STARTED"
    INITIALIZING = "INITIALIZING"
    RELOCATING = "RELOCATING"
    UNASSIGNED = "UNASSIGNED"


@dataclass(frozen=True, slots=True)
class EsNode:
    name: str  # equals the pod name
    roles: tuple[str, ...]
    version: str
    tier: str = ""  # hot | warm | cold | frozen | "" (master-only, coordinating)
    joined: bool = True  # present in _cat/nodes

    @property
    def master_eligible(self) -> bool:
        return "master" in self.roles

    @property
    def holds_data(self) -> bool:
        return any(r == "data" or r.startswith("data_") for r in self.roles)


@dataclass(frozen=True, slots=True)
class Shard:
    index: str
    number: int
    primary: bool
    state: ShardState
    node: str | None

    @property
    def key(self) -> str:
        return f"{self.index}[{self.number}]"


@dataclass(frozen=True, slots=True)
class ShutdownRecord:
    node: str
    type: str  # restart | remove | replace
    status: str  # NOT_STARTED | IN_PROGRESS | STALLED | COMPLETE


@dataclass(frozen=True, slots=True)
class EsState:
    health: Health = Health.UNKNOWN
    nodes: tuple[EsNode, ...] = ()
    shards: tuple[Shard, ...] = ()
    elected_master: str | None = None
    allocation_enable: str | None = None  # cluster.routing.allocation.enable; None means the default ("all")
    shutdowns: tuple[ShutdownRecord, ...] = ()
    snapshot_repositories: tuple[str, ...] = ()
    supports_shutdown_api: bool = True  # False where GET _nodes/shutdown answers 404 (older or partial servers)
    unobserved: str = ""  # why the cluster could not be observed at all ("" = observed); the engine refuses to plan

    def node(self, name: str) -> EsNode | None:
        for n in self.nodes:
            if n.name == name:
                return n
        return None


# --------------------------------------------------------------------------------------------- Workers


@dataclass(frozen=True, slots=True)
class WorkersState:
    consumer_group: str = ""
    lag: int = 0  # total consumer-group lag over the events topic
    lag_by_partition: tuple[tuple[str, int], ...] = ()
    unobserved: str = ""  # why the lag could not be observed at all ("" = observed)


# --------------------------------------------------------------------------------------------- Kubernetes itself


@dataclass(frozen=True, slots=True)
class Node:
    """A node that carries the platform. `version` is its kubelet's minor ("1.33"); `group` the node group (EKS
    managed node group, Auto Scaling group, the local node pool's group) that launched it; `replaces` the node it
    was brought up to replace (label toolkit.io/replaces, set when the engine claims a surge node), so a resumed run
    finds the replacement it already made."""

    name: str
    zone: str
    group: str
    version: str
    ready: bool
    unschedulable: bool = False  # cordoned
    role: str = ""  # the component whose pods the node's group carries ("" = any)
    instance: str = ""  # the cloud instance behind it (EKS: the EC2 instance id), "" where there is none
    replaces: str = ""
    image: str = ""  # the node image it was launched from (an AMI, the local pool's image), "" = not known
    created_at: float = 0.0  # on the target's clock (sim), or wall seconds (real clusters)


@dataclass(frozen=True, slots=True)
class NodeGroup:
    """What can launch nodes: `version` "" launches any version (the simulated platform's groups, the local node
    pool); an EKS managed node group launches exactly its own."""

    name: str
    role: str
    zone: str
    version: str
    size: int
    max_size: int
    image: str = ""  # the node image it launches now ("" = not known): nodes of an older image are replaced


@dataclass(frozen=True, slots=True)
class NodePod:
    """A pod bound to a platform node, in any namespace: what a drain has to move. `component` is the platform
    component it belongs to ("" for pods of other namespaces, kube-system's, ...)."""

    namespace: str
    name: str
    node: str
    uid: str
    owner_kind: str  # StatefulSet | ReplicaSet | DaemonSet | Node (a mirror pod) | "" (a bare pod)
    component: str = ""
    ready: bool = True
    terminating: bool = False


@dataclass(frozen=True, slots=True)
class DisruptionBudget:
    """A PodDisruptionBudget as the eviction API applies it: `allowed` is status.disruptionsAllowed."""

    namespace: str
    name: str
    pods: tuple[str, ...]  # the pods it selects (names, in its namespace)
    allowed: int
    healthy: int
    desired_healthy: int


@dataclass(frozen=True, slots=True)
class Addon:
    name: str
    version: str
    status: str = "ACTIVE"  # EKS: ACTIVE | CREATING | UPDATING | DEGRADED | ...


@dataclass(frozen=True, slots=True)
class KubernetesState:
    control_plane_version: str = ""  # minor, "1.33"
    control_plane_status: str = "ACTIVE"  # EKS: ACTIVE | UPDATING | ...; elsewhere ACTIVE when it answers
    declared_version: str = ""  # what the infrastructure code declares for the control plane ("" = not known)
    can_upgrade_control_plane: bool = True  # False where the control plane is fixed (the local one is 1.20)
    nodes: tuple[Node, ...] = ()
    groups: tuple[NodeGroup, ...] = ()
    pods: tuple[NodePod, ...] = ()
    budgets: tuple[DisruptionBudget, ...] = ()
    addons: tuple[Addon, ...] = ()
    unobserved: str = ""  # why Kubernetes itself could not be observed ("" = observed)

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    def pods_on(self, node: str) -> tuple[NodePod, ...]:
        return tuple(p for p in self.pods if p.node == node)

    def budgets_of(self, namespace: str, pod: str) -> tuple[DisruptionBudget, ...]:
        return tuple(b for b in self.budgets if b.namespace == namespace and pod in b.pods)


# --------------------------------------------------------------------------------------------- Platform


@dataclass(frozen=True, slots=True)
class Lease:
    holder: str
    acquired_at: float
    renewed_at: float
    ttl_seconds: float

    def expired(self, now: float) -> bool:
        return now > self.renewed_at + self.ttl_seconds


@dataclass(frozen=True, slots=True)
class RunRequest:
    """A request to the run in progress, stored with the platform (kubectl rollout pause/resume, Argo Rollouts'
    abort): `pause` holds the run at its next step boundary until the request is withdrawn (resume); `abort` stops
    it at once, leaving the platform safe. `by` names who asked (user@host/pid), `at` when (wall clock, ISO 8601)."""

    action: str  # "pause" | "abort"
    by: str
    at: str
    reason: str = ""

    def describe(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.action} requested by {self.by} at {self.at}{why}"


@dataclass(frozen=True, slots=True)
class PlatformState:
    environment: str
    observed_at: float  # seconds on the target's clock
    simulated: bool
    workloads: tuple[Workload, ...] = ()
    kafka: KafkaState = field(default_factory=KafkaState)
    elasticsearch: EsState = field(default_factory=EsState)
    workers: WorkersState = field(default_factory=WorkersState)
    kubernetes: KubernetesState = field(default_factory=KubernetesState)
    # data-plane states of plug-in components (beyond the built-in three), keyed by component name; each is plain
    # frozen data that only that component's driver reads
    extra: tuple[tuple[str, Any], ...] = ()

    def workloads_of(self, component: str) -> tuple[Workload, ...]:
        return tuple(w for w in self.workloads if w.component == component)

    def data(self, component: str) -> Any:
        """The data-plane state of `component` (None when it has none or it was not observed)."""
        builtin = {
            "kafka": self.kafka,
            "elasticsearch": self.elasticsearch,
            "workers": self.workers,
            "kubernetes": self.kubernetes,
        }
        if component in builtin:
            return builtin[component]
        return dict(self.extra).get(component)

    def pod(self, name: str) -> Pod | None:
        for w in self.workloads:
            for p in w.pods:
                if p.name == name:
                    return p
        return None

    def workload_of_pod(self, name: str) -> Workload | None:
        for w in self.workloads:
            for p in w.pods:
                if p.name == name:
                    return w
        return None


@dataclass(frozen=True)
class Notice:
    """A Kubernetes Event worth recording: `reason` (ToolkitRestart, ToolkitGateWait, ToolkitHalted, ...), `type`
    (Normal | Warning), on `objects` (pods or workloads by name; a pod's event also goes to its workload) and on every
    workload of `components`."""

    reason: str
    type: str
    message: str
    objects: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
