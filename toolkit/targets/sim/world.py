"""A deterministic simulated platform on a virtual clock: Kubernetes workloads, a KRaft Kafka cluster, an
Elasticsearch cluster and ingestion workers, modelling exactly what the engine's gates observe.

It is a model, not the real thing, and every output built on it says "simulated". What it models:
- Kubernetes: StatefulSets with OnDelete (a deleted pod comes back on the update revision after a start delay),
  Deployments with RollingUpdate maxSurge/maxUnavailable 0 (new pods first, an old pod goes only when the ready count
  stays at the desired count), pausing, graceful termination.
- Kafka: a broker going down leaves every ISR at once (controlled shutdown) and hands leadership to another ISR
  member; a partition with no ISR member left goes offline (unclean election off) until its last ISR member returns.
  A broker coming back catches up per partition after `kafka_catchup_seconds` (spread 0.5-1.0x, deterministic) and
  rejoins the ISR. Controllers rejoin the quorum shortly after start; leadership moves when the active one leaves.
- Elasticsearch: a node leaving unassigns its shard copies and promotes a started replica where the primary left
  (no started copy: the primary is unassigned and health turns red). A returning node recovers its copies, except
  replicas while allocation is restricted to primaries, and never a replica whose primary sits on a newer node.
- Workers: events arrive at a steady rate; each ready indexer consumes at a fixed capacity; lag is the backlog.
- TLS (only once certificates are installed: `pki`, the platform's Secrets with real X.509 content, made by the
  same code as deploy's): a pod loads the Secrets its workload mounts when it starts and keeps them; it trusts the
  CAs of their `ca.crt` and presents the issuer of their `tls.crt` (by key identifier). Peers that talk (Kafka
  nodes with each other and with the workers, mutual; Elasticsearch nodes with each other, mutual; the indexers
  with Elasticsearch, server only) and do not trust what the other presents fail their handshake: a broker then
  does not rejoin the ISR of a partition whose leader it cannot reach, and every sample counts such pairs
  (`tls_failures`).
- Kubernetes itself: nodes in node groups per role and zone (`platform.kubernetes.node_pools`), each pod placed on
  a Ready, schedulable node of its component's role (a StatefulSet pod in its own zone: its volume lives there, and
  it takes `volume_attach_seconds` more to start on another node); a control plane and EKS add-ons with versions; a
  surged node is Ready `node_ready_seconds` later; a terminated node takes its pods down at once; PodDisruptionBudgets
  of maxUnavailable 1 per workload (as the charts render them) refuse evictions that would exceed them.
- Observations are snapshots taken every `observe_interval` seconds, as real polling would see them.

Time advances only through `advance(to)`, in steps of at most one second; every transition happens at a recorded
time, so a run is the same every time for the same seed and inputs. The whole world (including pending
transitions, the lease and the audit trail) serialises to JSON, so a CLI run can be interrupted and resumed.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, fields
from difflib import get_close_matches
from typing import Annotated, Any

from pydantic import Field

from toolkit.catalog import load as load_catalog
from toolkit.config.platform import PlatformSpec
from toolkit.errors import UsageError
from toolkit.model import (
    Addon,
    BrokerState,
    DisruptionBudget,
    EsNode,
    EsState,
    Health,
    KafkaNode,
    KafkaRole,
    KafkaState,
    KubernetesState,
    Lease,
    Node,
    NodeGroup,
    NodePod,
    Partition,
    PlatformState,
    Pod,
    RunRequest,
    Shard,
    ShardState,
    ShutdownRecord,
    Topic,
    Voter,
    WorkersState,
    Workload,
)

NEVER = math.inf
STEADY_SECONDS = 86_400.0
HISTORY_LIMIT = 50_000  # invariant samples kept (one per simulated second)


@dataclass
class SimParams:
    observe_interval: float = 5.0
    kafka_stop_seconds: float = 5.0
    kafka_restart_seconds: float = 60.0  # pod deleted -> broker running and Ready
    kafka_recovery_seconds: float = 0.0  # broker in log recovery after start
    kafka_catchup_seconds: float = 30.0  # broker running -> back in every ISR (per partition spread 0.5-1.0x)
    quorum_catchup_seconds: float = 2.0
    es_stop_seconds: float = 5.0
    es_restart_seconds: float = 45.0
    es_recovery_seconds: float = 20.0
    shutdown_complete_seconds: float = 5.0
    worker_start_seconds: float = 15.0
    worker_stop_seconds: float = 5.0
    events_per_second: float = 2000.0
    indexer_capacity: float = 1500.0  # events/s per ready indexer pod
    es_shutdown_api: bool = True  # False models a server without the node shutdown API (allocation method)
    node_ready_seconds: float = 90.0  # a surged node: instance launched -> kubelet registered and Ready
    node_terminate_seconds: float = 30.0  # a terminated node's Node object disappears after this
    volume_attach_seconds: float = 20.0  # a StatefulSet pod that starts on another node waits for its volume
    control_plane_upgrade_seconds: float = 480.0
    addon_update_seconds: float = 60.0
    seed: int = 7
    wall_pace: float = 0.0  # wall-clock seconds slept per simulated second (0: as fast as possible), so that a
    # person or a test can watch, signal or pause a run of the simulated platform as it goes


def params_from(values: dict[str, float]) -> SimParams:
    """SimParams from an environment's `sim:` mapping; unknown keys raise ValueError naming them."""
    known = {f.name for f in fields(SimParams)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown sim parameters {unknown} (known: {', '.join(sorted(known))})")
    defaults = SimParams()
    return SimParams(**{k: type(getattr(defaults, k))(v) for k, v in values.items()})


@dataclass
class Faults:
    never_ready: list[str] = field(default_factory=list)  # pods that never become Ready after their next restart
    slow_catchup: float = 1.0  # multiplier on catch-up time
    red_cluster: bool = False  # an Elasticsearch primary is lost from the start
    crash_after_step: int = 0  # the orchestrator dies right after its K-th step-starting action
    unready_at_start: list[str] = field(default_factory=list)  # pods that are not Ready when the run starts
    recovering: dict[str, float] = field(default_factory=dict)  # broker pod -> seconds it stays in log recovery
    terminating: dict[str, float] = field(default_factory=dict)  # pod -> seconds it takes to terminate (deleted)
    readiness_fails: dict[str, float] = field(default_factory=dict)  # pod -> seconds its readiness probe fails
    node_never_ready: list[str] = field(default_factory=list)  # zones ("*": any) whose surged nodes never get Ready
    pdb_blocks: dict[str, float] = field(default_factory=dict)  # workload -> seconds its PDB allows no disruption
    slow_drain: float = 1.0  # multiplier on the time an evicted pod takes to terminate


class InjectionError(UsageError):
    """A fault that cannot be injected: unknown or malformed, a pod the platform does not have, or a state the
    fault cannot apply to. Nothing was changed."""


@dataclass
class SimPod:
    name: str
    workload: str
    revision: str
    version: str
    zone: str
    node: str
    uid: str
    phase: str = "running"  # starting | running | terminating
    ready: bool = True
    ready_at: float = 0.0
    gone_at: float = NEVER
    up_since: float = 0.0
    restarts: int = 0
    recovering_until: float = 0.0  # a Kafka broker in log recovery until then (fault injection)
    probe_fails_until: float = 0.0  # readiness probe failing (NotReady) while the process serves, until then
    down_at: float | None = None  # terminating: when its process leaves the data plane (None: already left)
    trusts: list[str] = field(default_factory=list)  # key ids of the CAs it loaded at start ([]: no TLS modelled)
    presents: list[str] = field(default_factory=list)  # key ids of the CAs that issued the certificates it presents


@dataclass
class SimNode:
    name: str
    zone: str
    group: str
    role: str
    version: str
    image: str = ""
    ready: bool = True
    ready_at: float = 0.0
    unschedulable: bool = False
    replaces: str = ""
    created_at: float = 0.0
    terminating: bool = False
    gone_at: float = NEVER


@dataclass
class SimGroup:
    name: str
    role: str
    zone: str
    max_size: int


@dataclass
class SimAddon:
    version: str
    status: str = "ACTIVE"
    target: str = ""
    ready_at: float = 0.0


@dataclass
class SimWorkload:
    name: str
    component: str
    kind: str
    role: str
    replicas: int
    update_revision: str
    target_version: str
    previous_version: str = ""
    tier: str = ""
    paused: bool = False
    max_surge: int = 1
    node_id_base: int = 0
    revisions: dict[str, str] = field(default_factory=dict)  # revision -> version
    annotations: dict[str, str] = field(default_factory=dict)  # pod template annotations (toolkit.io/...)


@dataclass
class SimKafkaNode:
    id: int
    role: str
    pod: str
    rack: str


@dataclass
class SimPartition:
    topic: str
    partition: int
    replicas: list[int]
    isr: list[int]
    leader: int | None
    last_isr: list[int] = field(default_factory=list)
    rejoin_at: dict[str, float] = field(default_factory=dict)  # broker id (str for JSON) -> time


@dataclass
class SimShard:
    index: str
    number: int
    primary: bool
    node: str | None
    state: str
    home: str | None = None  # node that holds this copy's data while it is unassigned
    started_at: float = 0.0


@dataclass
class SimShutdown:
    node: str
    type: str
    status: str
    complete_at: float


@dataclass
class SimTlsView:
    """What a Secret gives the pod that mounts it: the key ids of the CAs in its `ca.crt` and of the issuer of its
    `tls.crt` (computed where the Secret is written: toolkit.targets.sim.pki)."""

    trusts: list[str] = field(default_factory=list)
    presents: list[str] = field(default_factory=list)


@dataclass
class World:
    environment: str
    params: SimParams
    faults: Faults
    now: float = 0.0
    seq: int = 0
    workloads: dict[str, SimWorkload] = field(default_factory=dict)
    pods: dict[str, SimPod] = field(default_factory=dict)
    kafka_nodes: list[SimKafkaNode] = field(default_factory=list)
    topics: list[Topic] = field(default_factory=list)
    partitions: list[SimPartition] = field(default_factory=list)
    active_controller: int | None = None
    metadata_version: str = ""
    es_allocation: str | None = None
    es_shards: list[SimShard] = field(default_factory=list)
    es_shutdowns: list[SimShutdown] = field(default_factory=list)
    es_elected_master: str | None = None
    es_snapshot_repositories: list[str] = field(default_factory=list)
    lag: float = 0.0
    last_observed_at: float = -NEVER
    lease: Lease | None = None
    audit: list[dict[str, Any]] = field(default_factory=list)
    request: RunRequest | None = None  # a pause/abort request waiting for the run (in-memory control)
    restarts_given: dict[str, int] = field(default_factory=dict)  # "pod@version" -> restarts (in-memory control)
    actions: int = 0  # step-starting actions taken, for crash injection
    nodes: dict[str, SimNode] = field(default_factory=dict)
    groups: dict[str, SimGroup] = field(default_factory=dict)
    node_seq: int = 0
    cp_version: str = ""
    cp_status: str = "ACTIVE"
    cp_target: str = ""
    cp_ready_at: float = 0.0
    addons: dict[str, SimAddon] = field(default_factory=dict)
    evictions: list[dict[str, Any]] = field(default_factory=list)  # every eviction accepted: t, pod, uid, node
    evictions_refused: int = 0  # evictions a PodDisruptionBudget refused (429)
    history: list[dict[str, Any]] = field(default_factory=list)  # invariants sampled every simulated second
    # certificates (empty: TLS not modelled): "<namespace>/<secret>" -> key -> base64 value, what each Secret gives a
    # pod, which Secrets each workload's pods mount, and a certificate rotation's progress record (its JSON)
    pki: dict[str, dict[str, str]] = field(default_factory=dict)
    pki_views: dict[str, SimTlsView] = field(default_factory=dict)
    tls_mounts: dict[str, list[str]] = field(default_factory=dict)
    pki_progress: str = ""
    # live load during a rehearsal (toolkit.rehearsal.traffic): anything with tick(world, dt); never saved
    traffic: Annotated[Any, Field(exclude=True)] = None
    # the last TLS judgement and the running pods (by uid) it was made for; never saved
    tls_judged: Annotated[Any, Field(exclude=True)] = None

    # ------------------------------------------------------------------ helpers

    def _next_uid(self, name: str) -> str:
        self.seq += 1
        return hashlib.sha1(f"{name}/{self.seq}".encode()).hexdigest()[:12]

    def _factor(self, *key: object) -> float:
        digest = hashlib.sha1(f"{self.params.seed}/{key}".encode()).digest()
        return 0.5 + 0.5 * (digest[0] / 255.0)

    def _pick(self, size: int, *key: object) -> int:
        """A deterministic stand-in for a random choice in range(size) (Kafka picks some placements at random)."""
        digest = hashlib.sha1(f"{self.params.seed}/{key}".encode()).digest()
        return int.from_bytes(digest[:4], "big") % max(1, size)

    @staticmethod
    def _revision(name: str, version: str, annotations: dict[str, str] | None = None) -> str:
        """A workload's revision: its name, version and template annotations (none: the same as without them)."""
        key = f"{name}/{version}" + "".join(f"/{k}={v}" for k, v in sorted((annotations or {}).items()))
        return f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"

    def kafka_node_of_pod(self, pod: str) -> SimKafkaNode | None:
        return next((n for n in self.kafka_nodes if n.pod == pod), None)

    def component_of(self, pod: SimPod) -> str:
        return self.workloads[pod.workload].component

    def _restart_seconds(self, component: str) -> float:
        return {
            "kafka": self.params.kafka_restart_seconds,
            "elasticsearch": self.params.es_restart_seconds,
        }.get(component, self.params.worker_start_seconds)

    def _stop_seconds(self, component: str) -> float:
        return {
            "kafka": self.params.kafka_stop_seconds,
            "elasticsearch": self.params.es_stop_seconds,
        }.get(component, self.params.worker_stop_seconds)

    def add_workload(
        self,
        name: str,
        component: str,
        kind: str,
        role: str,
        replicas: int,
        version: str,
        tier: str = "",
        base: int = 0,
        max_surge: int = 1,
        zones: tuple[str, ...] = ("zone-a", "zone-b", "zone-c"),
    ) -> SimWorkload:
        """A workload of any component, its pods healthy and up for a while, every one on `version`."""
        rev = self._revision(name, version)
        w = SimWorkload(
            name=name,
            component=component,
            kind=kind,
            role=role,
            replicas=replicas,
            update_revision=rev,
            target_version=version,
            tier=tier,
            node_id_base=base,
            max_surge=max_surge,
            revisions={rev: version},
        )
        self.workloads[name] = w
        for i in range(replicas):
            zone = zones[i % len(zones)]
            pod_name = f"{name}-{i}" if kind == "StatefulSet" else f"{name}-{self._next_uid(name)[:5]}"
            self.pods[pod_name] = SimPod(
                name=pod_name,
                workload=name,
                revision=rev,
                version=version,
                zone=zone,
                node=self.place(component, zone) or f"node-{zone}",
                uid=self._next_uid(pod_name),
                up_since=-STEADY_SECONDS,  # a healthy platform has been up for a while: voters are caught up
            )
        return w

    # ------------------------------------------------------------------ Kubernetes: nodes and placement

    def _roles_for(self, component: str) -> set[str]:
        """Node roles that may carry the component's pods: its own pool, else pools for any role."""
        roles = {g.role for g in self.groups.values()}
        return {component} if component in roles else {""} if "" in roles else roles

    def place(self, component: str, zone: str | None) -> str:
        """The node a new pod of `component` lands on (in `zone` when given: a StatefulSet pod's volume lives
        there): Ready, schedulable, of the component's role; the least loaded, newest first. "" when none fits."""
        roles = self._roles_for(component)
        load: dict[str, int] = {}
        for pod in self.pods.values():
            load[pod.node] = load.get(pod.node, 0) + 1
        candidates = [
            n
            for n in self.nodes.values()
            if n.ready
            and not n.unschedulable
            and not n.terminating
            and n.role in roles
            and (zone is None or n.zone == zone)
        ]
        if not candidates:
            return ""
        best = min(candidates, key=lambda n: (load.get(n.name, 0), -n.created_at, n.name))
        return best.name

    def add_node(self, group: str, version: str, ready_in: float = 0.0, image: str = "") -> SimNode:
        g = self.groups[group]
        self.node_seq += 1
        name = f"{g.role or 'node'}-{g.zone}-{self.node_seq}"
        never = "*" in self.faults.node_never_ready or g.zone in self.faults.node_never_ready
        node = SimNode(
            name=name,
            zone=g.zone,
            group=group,
            role=g.role,
            version=version,
            image=image,
            ready=ready_in <= 0 and not never,
            ready_at=NEVER if never else self.now + ready_in,
            created_at=self.now,
        )
        self.nodes[name] = node
        return node

    def group_size(self, group: str) -> int:
        return sum(1 for n in self.nodes.values() if n.group == group and not n.terminating)

    def surge(self, group: str, version: str) -> SimNode:
        if self.group_size(group) >= self.groups[group].max_size:
            raise ValueError(f"node group {group} is at its maximum of {self.groups[group].max_size}")
        return self.add_node(group, version, ready_in=self.params.node_ready_seconds)

    def cordon(self, node: str) -> None:
        self.nodes[node].unschedulable = True

    def claim(self, node: str, replaces: str) -> None:
        self.nodes[node].replaces = replaces

    def terminate_node(self, name: str) -> None:
        """The node's instance is terminated (its group's capacity decremented): its pods die with it at once; the
        Node object disappears `node_terminate_seconds` later."""
        node = self.nodes[name]
        if node.terminating:
            return
        node.terminating, node.ready = True, False
        node.gone_at = self.now + self.params.node_terminate_seconds
        for pod in [p for p in self.pods.values() if p.node == name]:
            if pod.phase != "terminating":
                self.delete_pod(pod.name, seconds=0.0)
            pod.gone_at = min(pod.gone_at, self.now)
            if pod.down_at is not None:
                pod.down_at = None
                self.member_down(pod.name)

    def budget(self, workload: str) -> tuple[int, int, int]:
        """(disruptions allowed, healthy, desired healthy) of the workload's PDB (maxUnavailable 1)."""
        w = self.workloads[workload]
        healthy = sum(1 for p in self._pods_of(workload) if p.ready and p.phase != "terminating")
        desired = max(0, w.replicas - 1)
        if self.now < self.faults.pdb_blocks.get(workload, -NEVER):
            desired = max(desired, healthy)  # someone set minAvailable to every pod (the injected fault)
        allowed = max(0, healthy - desired)
        return allowed, healthy, desired

    def evict(self, name: str, uid: str) -> bool:
        """The Eviction API: False when the pod's PDB allows no disruption now (429); a pod already gone, replaced
        (another uid) or terminating counts as evicted."""
        pod = self.pods.get(name)
        if pod is None or pod.uid != uid or pod.phase == "terminating":
            return True
        allowed, _healthy, _desired = self.budget(pod.workload)
        if allowed <= 0 and pod.ready:
            self.evictions_refused += 1
            return False
        self.evictions.append({"t": self.now, "pod": name, "uid": uid, "node": pod.node})
        component = self.component_of(pod)
        self.delete_pod(name, seconds=self._stop_seconds(component) * self.faults.slow_drain)
        return True

    def upgrade_control_plane(self, version: str) -> None:
        if self.cp_status == "UPDATING":
            return
        self.cp_status, self.cp_target = "UPDATING", version
        self.cp_ready_at = self.now + self.params.control_plane_upgrade_seconds

    def update_addon(self, name: str, version: str) -> None:
        addon = self.addons[name]
        if addon.status == "UPDATING" and addon.target == version:
            return
        addon.status, addon.target = "UPDATING", version
        addon.ready_at = self.now + self.params.addon_update_seconds

    def _nodes_tick(self) -> None:
        for name, node in list(self.nodes.items()):
            if node.terminating and node.gone_at <= self.now:
                del self.nodes[name]
            elif not node.ready and not node.terminating and node.ready_at <= self.now:
                node.ready = True
        if self.cp_status == "UPDATING" and self.cp_ready_at <= self.now:
            self.cp_version, self.cp_status, self.cp_target = self.cp_target, "ACTIVE", ""
        for addon in self.addons.values():
            if addon.status == "UPDATING" and addon.ready_at <= self.now:
                addon.version, addon.status, addon.target = addon.target, "ACTIVE", ""

    # ------------------------------------------------------------------ actions

    def apply_spec(self, workload: str, version: str) -> None:
        w = self.workloads[workload]
        if w.target_version == version:
            return
        w.previous_version = w.target_version
        w.target_version = version
        rev = self._revision(w.name, version, w.annotations)
        w.update_revision = rev
        w.revisions[rev] = version

    def annotate_template(self, workload: str, annotations: dict[str, str]) -> None:
        """Stamp the workload's pod template (its version unchanged): a new revision when anything changed."""
        w = self.workloads[workload]
        merged = {**w.annotations, **annotations}
        if merged == w.annotations:
            return
        w.annotations = merged
        rev = self._revision(w.name, w.target_version, merged)
        w.update_revision = rev
        w.revisions[rev] = w.target_version

    def delete_pod(self, name: str, seconds: float | None = None, node_stays: bool = False) -> None:
        """The pod is deleted: it terminates for `seconds` (default: the component's stop time), then its
        controller re-creates it. Its Kafka broker leaves the ISRs at once (controlled shutdown); with `node_stays`
        an Elasticsearch node stays joined with its shards until the pod is gone (a preStop hook holding it)."""
        pod = self.pods[name]
        if pod.phase == "terminating":
            return
        component = self.component_of(pod)
        pod.phase = "terminating"
        pod.ready = False
        pod.probe_fails_until = 0.0
        pod.gone_at = self.now + (self._stop_seconds(component) if seconds is None else seconds)
        pod.down_at = pod.gone_at if node_stays and component == "elasticsearch" else self.now
        if pod.down_at <= self.now:
            pod.down_at = None
            self.member_down(name)

    def member_down(self, name: str) -> None:
        """The data plane's side of pod `name` stopping: its broker leaves every ISR (and the quorum), or its
        Elasticsearch node leaves with its shard copies. Shared by the simulated pods and the local target's real
        pods (toolkit.targets.dataplane)."""
        component = self.component_of(self.pods[name])
        if component == "kafka":
            node = self.kafka_node_of_pod(name)
            if node is not None:
                self._kafka_node_down(node.id)
        elif component == "elasticsearch":
            self._es_node_down(name)

    def member_up(self, name: str) -> None:
        """The data plane's side of pod `name` becoming Ready: its broker starts catching up (Elasticsearch nodes
        recover their copies on the next tick by themselves)."""
        if self.component_of(self.pods[name]) == "kafka":
            node = self.kafka_node_of_pod(name)
            if node is not None:
                self._kafka_node_up(node.id)

    def set_paused(self, workload: str, paused: bool) -> None:
        self.workloads[workload].paused = paused

    # ------------------------------------------------------------------ faults

    def apply_faults(self, faults: Faults) -> None:
        """Inject `faults` into this platform NOW (a fresh one or one that has been running): each takes effect
        at once or at the pod's next restart (never-ready), or is refused with why. All are checked before any is
        applied, so a refusal changes nothing."""
        problems = self._fault_problems(faults)
        if problems:
            raise InjectionError("; ".join(problems) + ". Nothing was injected")
        self.faults.never_ready.extend(n for n in faults.never_ready if n not in self.faults.never_ready)
        for name in faults.never_ready:
            if self.pods[name].phase == "starting":
                self.pods[name].ready_at = NEVER
        if faults.slow_catchup != 1.0:
            self.faults.slow_catchup = faults.slow_catchup
        if faults.crash_after_step:
            self.faults.crash_after_step = faults.crash_after_step
        for name, seconds in faults.recovering.items():
            self.pods[name].recovering_until = self.now + seconds
            self.faults.recovering[name] = seconds
        for name in faults.unready_at_start:
            pod = self.pods[name]
            pod.ready, pod.phase = False, "starting"
            pod.ready_at = (
                NEVER if name in self.faults.never_ready else self.now + self._restart_seconds(self.component_of(pod))
            )
            self.member_down(name)
            self.faults.unready_at_start.append(name)
        for name, seconds in faults.terminating.items():
            self.delete_pod(name, seconds=seconds, node_stays=True)
            self.faults.terminating[name] = seconds
        for name, seconds in faults.readiness_fails.items():
            pod = self.pods[name]
            pod.ready, pod.probe_fails_until = False, self.now + seconds
            self.faults.readiness_fails[name] = seconds
        for zone in faults.node_never_ready:
            if zone not in self.faults.node_never_ready:
                self.faults.node_never_ready.append(zone)
        for workload, seconds in faults.pdb_blocks.items():
            self.faults.pdb_blocks[workload] = self.now + seconds  # until then
        if faults.slow_drain != 1.0:
            self.faults.slow_drain = faults.slow_drain
        if faults.red_cluster:
            first = next(s for s in self.es_shards if s.primary and s.state == ShardState.STARTED.value)
            for s in self.es_shards:
                if s.index == first.index and s.number == first.number:
                    s.state, s.home, s.node = ShardState.UNASSIGNED.value, None, None
            self.faults.red_cluster = True

    def _fault_problems(self, faults: Faults) -> list[str]:
        problems: list[str] = []
        named: list[tuple[str, str]] = [("never-ready", n) for n in faults.never_ready]
        named += [("unready", n) for n in faults.unready_at_start]
        named += [("recovering", n) for n in faults.recovering]
        named += [("terminating", n) for n in faults.terminating]
        named += [("readiness-fails", n) for n in faults.readiness_fails]
        unknown = [(fault, name) for fault, name in named if name not in self.pods]
        if unknown:
            guesses = [get_close_matches(name, list(self.pods), n=1) for _fault, name in unknown]
            hint = "; ".join(f"did you mean {g[0]}?" for g in guesses if g)
            problems.append(
                f"--inject {', '.join(f'{f}={n}' for f, n in unknown)}: no such pod in {self.environment}"
                + (f" ({hint})" if hint else "")
                + f"; its pods: {', '.join(sorted(self.pods))}"
            )
        for name in faults.recovering:
            if name in self.pods and self.kafka_node_of_pod(name) is None:
                problems.append(f"--inject recovering={name}: log recovery applies to Kafka nodes, {name} is not one")
        for fault, name in named:
            pod = self.pods.get(name)
            if pod is None or fault == "never-ready":
                continue
            if pod.phase != "running" or not pod.ready:
                state = "terminating" if pod.phase == "terminating" else "not Ready"
                problems.append(f"--inject {fault}={name}: {name} is already {state}; inject it once it is Ready again")
        zones = {n.zone for n in self.nodes.values()}
        for zone in faults.node_never_ready:
            if zone != "*" and zone not in zones:
                problems.append(
                    f"--inject node-never-ready={zone}: no zone {zone} in {self.environment} (its zones: "
                    f"{', '.join(sorted(zones)) or 'none: it models no nodes'})"
                )
        for workload in faults.pdb_blocks:
            if workload not in self.workloads:
                guess = get_close_matches(workload, list(self.workloads), n=1)
                problems.append(
                    f"--inject pdb-blocks={workload}: no such workload in {self.environment}"
                    + (f" (did you mean {guess[0]}?)" if guess else "")
                    + f"; its workloads: {', '.join(sorted(self.workloads))}"
                )
        if faults.red_cluster:
            if not any(s.primary for s in self.es_shards):
                problems.append("--inject red-cluster: this platform has no Elasticsearch shard to lose")
            elif self.es_health() is Health.RED:
                problems.append("--inject red-cluster: Elasticsearch is already red")
        return problems

    # ------------------------------------------------------------------ Kafka physics

    def _kafka_node_down(self, node_id: int) -> None:
        key = str(node_id)
        for p in self.partitions:
            p.rejoin_at.pop(key, None)
            if node_id in p.isr:
                if len(p.isr) == 1:
                    p.last_isr = list(p.isr)
                p.isr = [b for b in p.isr if b != node_id]
            if p.leader == node_id:
                p.leader = next((b for b in p.replicas if b in p.isr), None)
        if self.active_controller == node_id:
            self.active_controller = None

    def _kafka_node_up(self, node_id: int) -> None:
        key = str(node_id)
        for p in self.partitions:
            if node_id not in p.replicas:
                continue
            if p.leader is None and node_id in p.last_isr:
                p.leader, p.isr = node_id, [node_id]
                continue
            delay = self.params.kafka_catchup_seconds * self._factor(p.topic, p.partition, node_id)
            p.rejoin_at[key] = self.now + self.params.kafka_recovery_seconds + delay * self.faults.slow_catchup

    def _kafka_tick(self) -> None:
        ready = {n.id for n in self.kafka_nodes if self.pods[n.pod].ready}
        for p in self.partitions:
            for key, at in list(p.rejoin_at.items()):
                b = int(key)
                if at <= self.now and b in ready and self._can_fetch(b, p.leader):
                    if p.leader is None:
                        p.leader = b
                    if b not in p.isr:
                        p.isr = sorted([*p.isr, b], key=p.replicas.index)
                    del p.rejoin_at[key]
        if self.active_controller is None:
            voters = [n for n in self.kafka_nodes if n.role != "broker" and self._voter_caught_up(n)]
            if voters:
                self.active_controller = voters[0].id

    def _can_fetch(self, follower: int, leader: int | None) -> bool:
        """Whether a follower's fetch requests reach the partition's leader (TLS between the two nodes)."""
        if leader is None or leader == follower or not self.tls_mounts:
            return True
        a, b = self.kafka_node(follower), self.kafka_node(leader)
        if a is None or b is None or a.pod not in self.pods or b.pod not in self.pods:
            return True
        return self.tls_ok(self.pods[a.pod], self.pods[b.pod])

    def kafka_node(self, node_id: int) -> SimKafkaNode | None:
        return next((n for n in self.kafka_nodes if n.id == node_id), None)

    def _voter_caught_up(self, node: SimKafkaNode) -> bool:
        pod = self.pods[node.pod]
        return pod.ready and self.now - pod.up_since >= self.params.quorum_catchup_seconds

    def elect_preferred_leaders(self) -> None:
        for p in self.partitions:
            if p.replicas and p.replicas[0] in p.isr:
                p.leader = p.replicas[0]

    # ------------------------------------------------------------------ Elasticsearch physics

    def _es_node_down(self, node: str) -> None:
        for s in self.es_shards:
            if s.node != node:
                continue
            was_primary = s.primary
            s.home, s.node, s.state = node, None, ShardState.UNASSIGNED.value
            if was_primary:
                promoted = next(
                    (
                        r
                        for r in self.es_shards
                        if r.index == s.index
                        and r.number == s.number
                        and r is not s
                        and r.state == ShardState.STARTED.value
                    ),
                    None,
                )
                if promoted is not None:
                    promoted.primary = True
                    s.primary = False
        if self.es_elected_master == node:
            self.es_elected_master = None

    def _node_version(self, node: str | None) -> str | None:
        if node is None or node not in self.pods:
            return None
        return self.pods[node].version

    def _es_tick(self) -> None:
        for s in self.es_shards:
            if s.state == ShardState.INITIALIZING.value and s.started_at <= self.now:
                s.state = ShardState.STARTED.value
        for s in self.es_shards:
            if s.state != ShardState.UNASSIGNED.value or s.home is None:
                continue
            pod = self.pods.get(s.home)
            if pod is None or not pod.ready:
                continue
            if not s.primary and self.es_allocation in ("primaries", "new_primaries", "none"):
                continue
            if not s.primary:
                primary = next(
                    (
                        p
                        for p in self.es_shards
                        if p.index == s.index and p.number == s.number and p.primary and p is not s
                    ),
                    None,
                )
                if primary is None or primary.state != ShardState.STARTED.value:
                    continue
                pv, hv = self._node_version(primary.node), pod.version
                if pv is not None and _vkey(pv) > _vkey(hv):
                    continue  # never allocate a replica from a newer node to an older one
            s.node, s.state = s.home, ShardState.INITIALIZING.value
            s.started_at = self.now + self.params.es_recovery_seconds
            s.home = None
        for r in self.es_shutdowns:
            if r.status != "COMPLETE" and r.complete_at <= self.now:
                r.status = "COMPLETE"
        if self.es_elected_master is None:
            masters = [w for w in self.workloads.values() if w.component == "elasticsearch" and w.role == "master"]
            for w in masters:
                for pod in sorted(self._pods_of(w.name), key=lambda p: p.name):
                    if pod.ready:
                        self.es_elected_master = pod.name
                        return

    def es_health(self) -> Health:
        if any(s.primary and s.state != ShardState.STARTED.value for s in self.es_shards):
            return Health.RED
        if any(s.state != ShardState.STARTED.value for s in self.es_shards):
            return Health.YELLOW
        return Health.GREEN

    def es_prepare(self, node: str, method: str) -> None:
        if method == "shutdown-api":
            self.es_shutdowns = [r for r in self.es_shutdowns if r.node != node]
            self.es_shutdowns.append(
                SimShutdown(node, "restart", "IN_PROGRESS", self.now + self.params.shutdown_complete_seconds)
            )
        else:
            self.es_allocation = "primaries"

    def es_finish(self, node: str, method: str) -> None:
        if method == "shutdown-api":
            self.es_remove_shutdown(node)
        else:
            self.es_allocation = None

    def es_remove_shutdown(self, node: str) -> None:
        self.es_shutdowns = [r for r in self.es_shutdowns if r.node != node]

    # ------------------------------------------------------------------ TLS physics

    def put_secret(self, key: str, data: dict[str, str], view: SimTlsView) -> None:
        """Write one Secret ("<namespace>/<name>", base64 values) and what it gives a pod; running pods keep what
        they loaded at start (they read their certificates once), new pods load the new content."""
        self.pki[key] = dict(data)
        self.pki_views[key] = view

    def mount(self, mounts: dict[str, list[str]]) -> None:
        """Which Secrets each workload's pods mount; the pods running now are taken to have loaded them at start."""
        self.tls_mounts = {k: list(v) for k, v in mounts.items()}
        self.tls_judged = None
        for pod in self.pods.values():
            pod.trusts, pod.presents = self.tls_loaded(pod.workload)

    def tls_loaded(self, workload: str) -> tuple[list[str], list[str]]:
        """(trusted CA key ids, presented issuer key ids) a pod of `workload` starting now loads: it trusts what
        every mounted Secret's ca.crt holds (each connection uses its own Secret), presents every issuer."""
        views = [self.pki_views[k] for k in self.tls_mounts.get(workload, []) if k in self.pki_views]
        if not views:
            return [], []
        trusts = set(views[0].trusts)
        for view in views[1:]:
            trusts &= set(view.trusts)
        presents = sorted({p for view in views for p in view.presents})
        return sorted(trusts), presents

    @staticmethod
    def tls_ok(a: SimPod, b: SimPod, mutual: bool = True) -> bool:
        """Can client `a` complete a handshake with server `b` (and `b` verify `a`, with mutual TLS)? Pods that
        loaded no certificate are not modelled (always True)."""
        if not a.trusts or not b.trusts:
            return True
        if not set(b.presents) <= set(a.trusts):
            return False
        return not mutual or set(a.presents) <= set(b.trusts)

    def tls_failures(self) -> tuple[int, str]:
        """How many (client, server) pairs of running pods that talk fail their handshake, and the first of them
        ("client -> server", by name). Computed over the distinct certificate sets loaded, not pod by pod."""
        if not self.tls_mounts:
            return 0, ""
        groups: dict[str, list[SimPod]] = {"kafka": [], "elasticsearch": [], "workers": [], "indexer": []}
        for pod in sorted(self.pods.values(), key=lambda p: p.name):
            if pod.phase != "running" or not pod.trusts:
                continue
            w = self.workloads[pod.workload]
            groups.setdefault(w.component, []).append(pod)
            if w.component == "workers" and w.role == "indexer":
                groups["indexer"].append(pod)
        count, first = 0, ""
        for client_group, server_group, mutual in (
            ("kafka", "kafka", True),
            ("workers", "kafka", True),
            ("elasticsearch", "elasticsearch", True),
            ("indexer", "elasticsearch", False),
        ):
            clients, servers = _by_view(groups[client_group]), _by_view(groups[server_group])
            for c_pods in clients.values():
                for s_pods in servers.values():
                    if self.tls_ok(c_pods[0], s_pods[0], mutual):
                        continue
                    pairs = [(a.name, b.name) for a in c_pods for b in s_pods if a is not b]
                    count += len(pairs)
                    if pairs and not first:
                        first = f"{pairs[0][0]} -> {pairs[0][1]}"
        return count, first

    # ------------------------------------------------------------------ Kubernetes physics

    def serving(self, pod: SimPod) -> bool:
        """Whether the pod's process serves (an Elasticsearch node is joined): Ready, or running with a failing
        readiness probe, or terminating while its process has not left yet (a preStop hook)."""
        if pod.phase == "running":
            return True
        return pod.phase == "terminating" and pod.down_at is not None

    def _pods_of(self, workload: str) -> list[SimPod]:
        return [p for p in self.pods.values() if p.workload == workload]

    def _new_pod(self, w: SimWorkload, name: str, zone: str, previous_node: str = "") -> SimPod:
        version = w.revisions[w.update_revision]
        pod = SimPod(
            name=name,
            workload=w.name,
            revision=w.update_revision,
            version=version,
            zone=zone,
            node="",
            uid=self._next_uid(name),
            phase="starting",
            ready=False,
            ready_at=NEVER,
        )
        pod.trusts, pod.presents = self.tls_loaded(w.name)
        self._schedule(pod, w, previous_node)
        return pod

    def _schedule(self, pod: SimPod, w: SimWorkload, previous_node: str = "") -> None:
        """Bind a new pod to a node (pending while none fits); its start-up time runs from then."""
        if not self.nodes:
            pod.node = f"node-{pod.zone}"
        else:
            pod.node = self.place(w.component, pod.zone if w.kind == "StatefulSet" else None)
            if not pod.node:
                return
            pod.zone = self.nodes[pod.node].zone
        start = self._restart_seconds(w.component)
        if w.kind == "StatefulSet" and previous_node and previous_node != pod.node:
            start += self.params.volume_attach_seconds
        pod.ready_at = NEVER if pod.name in self.faults.never_ready else self.now + start

    def _pods_tick(self) -> None:
        for pod in list(self.pods.values()):
            if pod.phase == "terminating" and pod.down_at is not None and pod.down_at <= self.now:
                pod.down_at = None
                self.member_down(pod.name)
            if pod.phase == "running" and pod.probe_fails_until and pod.probe_fails_until <= self.now:
                pod.probe_fails_until, pod.ready = 0.0, True
            if pod.phase == "terminating" and pod.gone_at <= self.now:
                w = self.workloads[pod.workload]
                del self.pods[pod.name]
                if w.kind == "StatefulSet":
                    new = self._new_pod(w, pod.name, pod.zone, previous_node=pod.node)
                    new.restarts = pod.restarts + 1
                    self.pods[new.name] = new
        for pod in self.pods.values():
            if pod.phase == "starting" and not pod.node:
                self._schedule(pod, self.workloads[pod.workload], previous_node="?")
            if pod.phase == "starting" and pod.ready_at <= self.now:
                pod.phase, pod.ready, pod.up_since = "running", True, pod.ready_at
                self.member_up(pod.name)
        for w in self.workloads.values():
            if w.kind == "Deployment":
                self._deployment_tick(w)

    def _deployment_tick(self, w: SimWorkload) -> None:
        if w.paused:
            return
        live = [p for p in self._pods_of(w.name) if p.phase != "terminating"]
        new = [p for p in live if p.revision == w.update_revision]
        old = [p for p in live if p.revision != w.update_revision]
        while len(live) < w.replicas + w.max_surge and len(new) < w.replicas and (old or len(live) < w.replicas):
            zones = sorted({n.zone for n in self.nodes.values()}) or ["zone-a", "zone-b", "zone-c"]
            zone = zones[len(new) % len(zones)]
            pod = self._new_pod(w, f"{w.name}-{self._next_uid(w.name)[:5]}", zone)
            self.pods[pod.name] = pod
            live.append(pod)
            new.append(pod)
        ready = [p for p in live if p.ready]
        for pod in sorted(old, key=lambda p: (p.ready, p.name)):
            if not pod.ready or len(ready) - 1 >= w.replicas:
                pod.phase, pod.gone_at = "terminating", self.now + self.params.worker_stop_seconds
                if pod.ready:
                    ready.remove(pod)
                pod.ready = False

    def _lag_tick(self, dt: float) -> None:
        indexers = [
            p
            for w in self.workloads.values()
            if w.component == "workers" and w.role == "indexer"
            for p in self._pods_of(w.name)
            if p.ready
        ]
        capacity = len(indexers) * self.params.indexer_capacity
        if self.es_health() is Health.RED:
            capacity *= 0.5
        self.lag = max(0.0, self.lag + (self.params.events_per_second - capacity) * dt)

    # ------------------------------------------------------------------ time

    def advance(self, to: float, kubernetes: bool = True) -> None:
        """Move time to `to` in steps of at most one second. With `kubernetes=False` the pods are not moved by
        the model (the local target's pods are real and synced in from outside); only the data plane ticks."""
        while self.now < to:
            dt = min(1.0, to - self.now)
            self.now += dt
            if kubernetes:
                self._nodes_tick()
                self._pods_tick()
            self._kafka_tick()
            self._es_tick()
            if self.traffic is not None:
                self.traffic.tick(self, dt)
            else:
                self._lag_tick(dt)
            self._sample_invariants()
            interval = self.params.observe_interval
            if self.now - self.last_observed_at >= interval - 1e-9:
                self.last_observed_at = math.floor(self.now / interval + 1e-9) * interval

    def _sample_invariants(self) -> None:
        min_isr = {t.name: t.min_insync_replicas for t in self.topics}
        below = sum(1 for p in self.partitions if len(p.isr) < min_isr.get(p.topic, 1))
        offline = sum(1 for p in self.partitions if p.leader is None)
        ready: dict[str, int] = {}
        for w in self.workloads.values():
            if w.kind == "Deployment":
                ready[w.name] = sum(1 for p in self._pods_of(w.name) if p.ready)
        if len(self.history) >= HISTORY_LIMIT:
            del self.history[: HISTORY_LIMIT // 10]
        sample = {
            "t": self.now,
            "below_min_isr": below,
            "offline": offline,
            "es_health": self.es_health().value,
            "workers_ready": ready,
            "lag": round(self.lag),
            "allocation": self.es_allocation,
        }
        if self.tls_mounts:
            running = tuple(sorted(p.uid for p in self.pods.values() if p.phase == "running"))
            if self.tls_judged is None or self.tls_judged[0] != running:
                self.tls_judged = (running, self.tls_failures())  # what running pods loaded changes only with them
            count, first = self.tls_judged[1]
            sample["tls_failures"] = count
            if first:
                sample["tls_failure"] = first
        self.history.append(sample)

    # ------------------------------------------------------------------ observation

    def snapshot(self) -> PlatformState:
        workloads = []
        for w in self.workloads.values():
            pods = tuple(
                Pod(
                    name=p.name,
                    workload=p.workload,
                    ready=p.ready,
                    revision=p.revision,
                    version=p.version,
                    zone=p.zone,
                    node=p.node,
                    uid=p.uid,
                    phase="Running" if p.phase != "starting" else "Pending",
                    terminating=p.phase == "terminating",
                    restarts=p.restarts,
                )
                for p in sorted(self._pods_of(w.name), key=lambda p: p.name)
            )
            workloads.append(
                Workload(
                    name=w.name,
                    component=w.component,
                    kind=w.kind,
                    role=w.role,
                    replicas=w.replicas,
                    update_strategy="OnDelete" if w.kind == "StatefulSet" else "RollingUpdate",
                    update_revision=w.update_revision,
                    target_version=w.target_version,
                    previous_version=w.previous_version,
                    paused=w.paused,
                    max_surge=w.max_surge,
                    max_unavailable=0,
                    tier=w.tier,
                    pods=pods,
                    annotations=tuple(sorted(w.annotations.items())),
                )
            )
        return PlatformState(
            environment=self.environment,
            observed_at=self.now,
            simulated=True,
            workloads=tuple(workloads),
            kafka=self._kafka_snapshot(),
            elasticsearch=self._es_snapshot(),
            workers=WorkersState(
                consumer_group="toolkit-indexer",
                lag=round(self.lag),
                lag_by_partition=(),
            ),
            kubernetes=self._kubernetes_snapshot(),
        )

    def _kubernetes_snapshot(self) -> KubernetesState:
        if not self.nodes:
            return KubernetesState()
        namespace = "security-platform"
        pods = []
        for p in sorted(self.pods.values(), key=lambda p: p.name):
            if not p.node or p.node not in self.nodes:
                continue
            w = self.workloads[p.workload]
            pods.append(
                NodePod(
                    namespace=namespace,
                    name=p.name,
                    node=p.node,
                    uid=p.uid,
                    owner_kind="StatefulSet" if w.kind == "StatefulSet" else "ReplicaSet",
                    component=w.component,
                    ready=p.ready,
                    terminating=p.phase == "terminating",
                )
            )
        budgets = []
        for w in self.workloads.values():
            allowed, healthy, desired = self.budget(w.name)
            budgets.append(
                DisruptionBudget(
                    namespace=namespace,
                    name=w.name,
                    pods=tuple(sorted(p.name for p in self._pods_of(w.name))),
                    allowed=allowed,
                    healthy=healthy,
                    desired_healthy=desired,
                )
            )
        return KubernetesState(
            control_plane_version=self.cp_version,
            control_plane_status=self.cp_status,
            nodes=tuple(
                Node(
                    name=n.name,
                    zone=n.zone,
                    group=n.group,
                    version=n.version,
                    ready=n.ready and not n.terminating,
                    unschedulable=n.unschedulable,
                    role=n.role,
                    instance=f"sim-{n.name}",
                    replaces=n.replaces,
                    image=n.image,
                    created_at=n.created_at,
                )
                for n in sorted(self.nodes.values(), key=lambda n: n.name)
            ),
            groups=tuple(
                NodeGroup(g.name, g.role, g.zone, "", self.group_size(g.name), g.max_size)
                for g in sorted(self.groups.values(), key=lambda g: g.name)
            ),
            pods=tuple(pods),
            budgets=tuple(budgets),
            addons=tuple(Addon(name, a.version, a.status) for name, a in sorted(self.addons.items())),
        )

    def _kafka_snapshot(self) -> KafkaState:
        nodes = []
        voters = []
        for n in self.kafka_nodes:
            pod = self.pods.get(n.pod)
            if pod is None or pod.phase == "terminating":
                state = BrokerState.SHUTTING_DOWN if pod is not None else BrokerState.NOT_RUNNING
            elif pod.phase == "starting":
                state = BrokerState.STARTING
            elif self.now - pod.up_since < self.params.kafka_recovery_seconds or self.now < pod.recovering_until:
                state = BrokerState.RECOVERY
            else:
                state = BrokerState.RUNNING
            nodes.append(
                KafkaNode(
                    id=n.id,
                    role=KafkaRole(n.role),
                    pod=n.pod,
                    rack=n.rack,
                    version=pod.version if pod is not None else "",
                    state=state,
                    reachable=pod is not None and pod.ready,
                )
            )
            if n.role != "broker":
                caught = self._voter_caught_up(n)
                voters.append(Voter(id=n.id, lag=0 if caught else 1000, caught_up=caught))
        rate = self.params.events_per_second / max(1, len(self.partitions))
        partitions = tuple(
            Partition(
                topic=p.topic,
                partition=p.partition,
                replicas=tuple(p.replicas),
                isr=tuple(p.isr),
                leader=p.leader,
                follower_lag=tuple(
                    (int(k), max(0, round((at - self.now) * rate))) for k, at in sorted(p.rejoin_at.items())
                ),
            )
            for p in self.partitions
        )
        return KafkaState(
            nodes=tuple(nodes),
            topics=tuple(self.topics),
            partitions=partitions,
            active_controller=self.active_controller,
            voters=tuple(voters),
            metadata_version=self.metadata_version,
        )

    def _es_snapshot(self) -> EsState:
        nodes = []
        for w in self.workloads.values():
            if w.component != "elasticsearch":
                continue
            roles = ("master",) if w.role == "master" else (f"data_{w.tier}",)
            for pod in sorted(self._pods_of(w.name), key=lambda p: p.name):
                nodes.append(
                    EsNode(name=pod.name, roles=roles, version=pod.version, tier=w.tier, joined=self.serving(pod))
                )
        return EsState(
            health=self.es_health(),
            nodes=tuple(nodes),
            shards=tuple(
                Shard(index=s.index, number=s.number, primary=s.primary, state=ShardState(s.state), node=s.node)
                for s in self.es_shards
            ),
            elected_master=self.es_elected_master,
            allocation_enable=self.es_allocation,
            shutdowns=tuple(ShutdownRecord(r.node, r.type, r.status) for r in self.es_shutdowns),
            snapshot_repositories=tuple(self.es_snapshot_repositories),
            supports_shutdown_api=self.params.es_shutdown_api,
        )


def _by_view(pods: list[SimPod]) -> dict[tuple[tuple[str, ...], tuple[str, ...]], list[SimPod]]:
    out: dict[tuple[tuple[str, ...], tuple[str, ...]], list[SimPod]] = {}
    for pod in pods:
        out.setdefault((tuple(pod.trusts), tuple(pod.presents)), []).append(pod)
    return out


def rack_alternated(rack_of: dict[int, str]) -> list[int]:
    """Brokers taken one rack at a time in turn (racks by name, brokers by id within a rack): 0,3,6,1,4,7,... for
    racks a: 0,1,2 / b: 3,4,5 / c: 6,7,8. Consecutive brokers of this ring sit in different racks."""
    queues = {rack: sorted(b for b, r in rack_of.items() if r == rack) for rack in sorted(set(rack_of.values()))}
    ring: list[int] = []
    while len(ring) < len(rack_of):
        for rack in queues:
            if queues[rack]:
                ring.append(queues[rack].pop(0))
    return ring


def kafka_assignment(rack_of: dict[int, str], partitions: int, rf: int, start: int, shift: int) -> list[list[int]]:
    """The replica assignment Apache Kafka computes for a new topic on brokers with racks (the rack-aware algorithm
    of its admin utilities, KIP-36), written from its description: our implementation, not a copy.

    - Brokers are arranged in a rack-alternated ring (`rack_alternated`).
    - Partition p's first replica (its preferred leader) is ring[(p + start) % n]: leaders go round-robin.
    - Further replicas walk the ring from the first one with a stride that grows with `shift` (which increases by
      one every n partitions, so the sequences do not repeat), skipping a broker whose rack already holds a replica
      while some rack holds none, and a broker that already holds one while some broker holds none.
    So with RF <= racks every rack holds at most one replica of each partition. Kafka draws `start` and `shift` at
    random in range(n) when the topic is created; the simulated platform derives them from its seed."""
    ring = rack_alternated(rack_of)
    n, racks = len(ring), len(set(rack_of.values()))
    if not 1 <= rf <= n:
        raise ValueError(f"replication factor {rf} needs between 1 and {n} brokers")
    out: list[list[int]] = []
    for p in range(partitions):
        if p and p % n == 0:
            shift += 1
        first = (p + start) % n
        chosen = [ring[first]]
        racks_used = {rack_of[ring[first]]}
        step = 0
        while len(chosen) < rf:
            candidate = ring[(first + 1 + (shift * racks + step) % (n - 1)) % n]
            step += 1
            rack = rack_of[candidate]
            if rack in racks_used and len(racks_used) < racks:
                continue
            if candidate in chosen and len(chosen) < n:
                continue
            chosen.append(candidate)
            racks_used.add(rack)
        out.append(chosen)
    return out


def _vkey(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))


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
    zones = list(spec.zones)

    # Kubernetes itself: the control plane, its add-ons at the catalog's versions, node groups per role and zone
    kube = spec.kubernetes
    kv8s = versions.get("kubernetes", kube.version)
    world.cp_version = kv8s
    for name, version in sorted(catalog.component("kubernetes").versions[kv8s].addons.items()):
        world.addons[name] = SimAddon(version or "sim-unversioned")
    for pool in kube.node_pools:
        for zone in zones:
            group = f"{pool.role or 'nodes'}-{zone}"
            world.groups[group] = SimGroup(group, pool.role, zone, pool.max_per_zone)
            for _ in range(pool.per_zone):
                world.add_node(group, kv8s).created_at = -STEADY_SECONDS

    # Kafka
    k = spec.kafka
    kv = versions.get("kafka", k.version)
    if k.combined:
        world.add_workload("kafka", "kafka", "StatefulSet", "combined", k.brokers, kv, zones=spec.zones)
        for i in range(k.brokers):
            world.kafka_nodes.append(SimKafkaNode(i, "combined", f"kafka-{i}", zones[i % len(zones)]))
        brokers = [n.id for n in world.kafka_nodes]
    else:
        world.add_workload(
            "kafka-controller", "kafka", "StatefulSet", "controller", k.controllers, kv, zones=spec.zones
        )
        world.add_workload("kafka-broker", "kafka", "StatefulSet", "broker", k.brokers, kv, base=100, zones=spec.zones)
        for i in range(k.controllers):
            world.kafka_nodes.append(SimKafkaNode(i, "controller", f"kafka-controller-{i}", zones[i % len(zones)]))
        for i in range(k.brokers):
            world.kafka_nodes.append(SimKafkaNode(100 + i, "broker", f"kafka-broker-{i}", zones[i % len(zones)]))
        brokers = [100 + i for i in range(k.brokers)]
    voters = [n.id for n in world.kafka_nodes if n.role != "broker"]
    world.active_controller = voters[len(voters) // 2] if voters else None
    world.metadata_version = catalog.components["kafka"].versions[kv].metadata_version or ""
    # Kafka's own rack-aware placement, as a topic created on this cluster would get it (see kafka_assignment)
    rack_of = {n.id: n.rack for n in world.kafka_nodes if n.role != "controller"}
    names = ["security-events", "security-events-dlq", "audit-events", "syslog-raw"][: k.topics]
    names += [f"topic-{i}" for i in range(len(names), k.topics)]
    for t in names:
        world.topics.append(Topic(t, k.replication_factor, k.min_insync_replicas, False))
        start, shift = (world._pick(len(brokers), t, what) for what in ("start", "shift"))
        for p, replicas in enumerate(
            kafka_assignment(rack_of, k.partitions_per_topic, k.replication_factor, start, shift)
        ):
            world.partitions.append(SimPartition(t, p, replicas, list(replicas), replicas[0]))

    # Elasticsearch
    e = spec.elasticsearch
    ev = versions.get("elasticsearch", e.version)
    data_nodes: dict[str, list[str]] = {}
    for ns in e.node_sets:
        set_tier: str = ns.tier or ""
        world.add_workload(
            f"es-{ns.name}", "elasticsearch", "StatefulSet", ns.name, ns.replicas, ev, tier=set_tier, zones=spec.zones
        )
        if set_tier:
            data_nodes.setdefault(set_tier, []).extend(f"es-{ns.name}-{i}" for i in range(ns.replicas))
    tiers = sorted(data_nodes)
    for i in range(e.indices):
        if not tiers:
            break
        tier = tiers[i % len(tiers)]
        nodes = data_nodes[tier]
        for n in range(e.shards_per_index):
            for c in range(min(e.replicas + 1, len(nodes))):
                holder = nodes[(i + n + c) % len(nodes)]
                world.es_shards.append(SimShard(f"events-{tier}-{i:04d}", n, c == 0, holder, ShardState.STARTED.value))
    masters = sorted(p.name for p in world.pods.values() if world.workloads[p.workload].role == "master")
    world.es_elected_master = masters[len(masters) // 2] if masters else None
    world.es_snapshot_repositories = ["snapshots"]
    # Workers
    wv = versions.get("workers", spec.workers.version)
    for role, count in (("receiver", spec.workers.receivers), ("indexer", spec.workers.indexers)):
        world.add_workload(
            f"workers-{role}",
            "workers",
            "Deployment",
            role,
            count,
            wv,
            max_surge=spec.workers.max_surge,
            zones=spec.zones,
        )

    world.apply_faults(faults)
    world._sample_invariants()
    world.last_observed_at = 0.0
    return world
