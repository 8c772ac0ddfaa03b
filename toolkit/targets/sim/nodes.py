"""Kubernetes itself on the simulated platform: nodes, node groups, the control plane, add-ons, placement,
PodDisruptionBudgets and evictions.

- Nodes in node groups per role and zone (`platform.kubernetes.node_pools`), each pod placed on a Ready, schedulable
  node of its component's role (a StatefulSet pod in its own zone: its volume lives there, and it takes
  `volume_attach_seconds` more to start on another node).
- A control plane and EKS add-ons with versions; an upgrade or update completes after its set time.
- A surged node is Ready `node_ready_seconds` later; a terminated node takes its pods down at once, and its Node
  object disappears `node_terminate_seconds` later.
- PodDisruptionBudgets of maxUnavailable 1 per workload (as the charts render them) refuse evictions that would
  exceed them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolkit.catalog import Catalog
from toolkit.config.platform import KubernetesSpec
from toolkit.model import Addon, DisruptionBudget, KubernetesState, Node, NodeGroup, NodePod
from toolkit.targets.sim.params import NEVER, STEADY_SECONDS

if TYPE_CHECKING:
    from toolkit.targets.sim.world import World


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


class KubernetesModel:
    """Kubernetes itself: its nodes, node groups, control plane, add-ons and the evictions it accepted or refused.
    Reads the world's pods (placement load, budgets) and deletes them (a terminated node, an eviction)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.nodes: dict[str, SimNode] = {}
        self.groups: dict[str, SimGroup] = {}
        self.node_seq = 0
        self.cp_version = ""
        self.cp_status = "ACTIVE"
        self.cp_target = ""
        self.cp_ready_at = 0.0
        self.addons: dict[str, SimAddon] = {}
        self.evictions: list[dict[str, Any]] = []  # every eviction accepted: t, pod, uid, node
        self.evictions_refused = 0  # evictions a PodDisruptionBudget refused (429)

    def build(self, spec: KubernetesSpec, zones: tuple[str, ...], version: str, catalog: Catalog) -> None:
        """The control plane, its add-ons at the catalog's versions, node groups per role and zone, their nodes up
        for a while."""
        self.cp_version = version
        for name, addon_version in sorted(catalog.component("kubernetes").versions[version].addons.items()):
            self.addons[name] = SimAddon(addon_version or "sim-unversioned")
        for pool in spec.node_pools:
            for zone in zones:
                group = f"{pool.role or 'nodes'}-{zone}"
                self.groups[group] = SimGroup(group, pool.role, zone, pool.max_per_zone)
                for _ in range(pool.per_zone):
                    self.add_node(group, version).created_at = -STEADY_SECONDS

    # ------------------------------------------------------------------ nodes and placement

    def _roles_for(self, component: str) -> set[str]:
        """Node roles that may carry the component's pods: its own pool, else pools for any role."""
        roles = {g.role for g in self.groups.values()}
        return {component} if component in roles else {""} if "" in roles else roles

    def place(self, component: str, zone: str | None) -> str:
        """The node a new pod of `component` lands on (in `zone` when given: a StatefulSet pod's volume lives
        there): Ready, schedulable, of the component's role; the least loaded, newest first. "" when none fits."""
        roles = self._roles_for(component)
        load: dict[str, int] = {}
        for pod in self.world.pods.values():
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
        world = self.world
        g = self.groups[group]
        self.node_seq += 1
        name = f"{g.role or 'node'}-{g.zone}-{self.node_seq}"
        never = "*" in world.faults.node_never_ready or g.zone in world.faults.node_never_ready
        node = SimNode(
            name=name,
            zone=g.zone,
            group=group,
            role=g.role,
            version=version,
            image=image,
            ready=ready_in <= 0 and not never,
            ready_at=NEVER if never else world.now + ready_in,
            created_at=world.now,
        )
        self.nodes[name] = node
        return node

    def group_size(self, group: str) -> int:
        return sum(1 for n in self.nodes.values() if n.group == group and not n.terminating)

    # ------------------------------------------------------------------ actions

    def surge(self, group: str, version: str) -> SimNode:
        if self.group_size(group) >= self.groups[group].max_size:
            raise ValueError(f"node group {group} is at its maximum of {self.groups[group].max_size}")
        return self.add_node(group, version, ready_in=self.world.params.node_ready_seconds)

    def cordon(self, node: str) -> None:
        self.nodes[node].unschedulable = True

    def claim(self, node: str, replaces: str) -> None:
        self.nodes[node].replaces = replaces

    def terminate_node(self, name: str) -> None:
        """The node's instance is terminated (its group's capacity decremented): its pods die with it at once; the
        Node object disappears `node_terminate_seconds` later."""
        world = self.world
        node = self.nodes[name]
        if node.terminating:
            return
        node.terminating, node.ready = True, False
        node.gone_at = world.now + world.params.node_terminate_seconds
        for pod in [p for p in world.pods.values() if p.node == name]:
            if pod.phase != "terminating":
                world.controllers.delete_pod(pod.name, seconds=0.0)
            pod.gone_at = min(pod.gone_at, world.now)
            if pod.down_at is not None:
                pod.down_at = None
                world.member_down(pod.name)

    def budget(self, workload: str) -> tuple[int, int, int]:
        """(disruptions allowed, healthy, desired healthy) of the workload's PDB (maxUnavailable 1)."""
        world = self.world
        w = world.workloads[workload]
        healthy = sum(1 for p in world.pods_of(workload) if p.ready and p.phase != "terminating")
        desired = max(0, w.replicas - 1)
        if world.now < world.faults.pdb_blocks.get(workload, -NEVER):
            desired = max(desired, healthy)  # someone set minAvailable to every pod (the injected fault)
        allowed = max(0, healthy - desired)
        return allowed, healthy, desired

    def evict(self, name: str, uid: str) -> bool:
        """The Eviction API: False when the pod's PDB allows no disruption now (429); a pod already gone, replaced
        (another uid) or terminating counts as evicted."""
        world = self.world
        pod = world.pods.get(name)
        if pod is None or pod.uid != uid or pod.phase == "terminating":
            return True
        allowed, _healthy, _desired = self.budget(pod.workload)
        if allowed <= 0 and pod.ready:
            self.evictions_refused += 1
            return False
        self.evictions.append({"t": world.now, "pod": name, "uid": uid, "node": pod.node})
        component = world.component_of(pod)
        world.controllers.delete_pod(name, seconds=world.controllers.stop_seconds(component) * world.faults.slow_drain)
        return True

    def upgrade_control_plane(self, version: str) -> None:
        if self.cp_status == "UPDATING":
            return
        self.cp_status, self.cp_target = "UPDATING", version
        self.cp_ready_at = self.world.now + self.world.params.control_plane_upgrade_seconds

    def update_addon(self, name: str, version: str) -> None:
        addon = self.addons[name]
        if addon.status == "UPDATING" and addon.target == version:
            return
        addon.status, addon.target = "UPDATING", version
        addon.ready_at = self.world.now + self.world.params.addon_update_seconds

    # ------------------------------------------------------------------ physics

    def tick(self) -> None:
        now = self.world.now
        for name, node in list(self.nodes.items()):
            if node.terminating and node.gone_at <= now:
                del self.nodes[name]
            elif not node.ready and not node.terminating and node.ready_at <= now:
                node.ready = True
        if self.cp_status == "UPDATING" and self.cp_ready_at <= now:
            self.cp_version, self.cp_status, self.cp_target = self.cp_target, "ACTIVE", ""
        for addon in self.addons.values():
            if addon.status == "UPDATING" and addon.ready_at <= now:
                addon.version, addon.status, addon.target = addon.target, "ACTIVE", ""

    # ------------------------------------------------------------------ observation

    def snapshot(self) -> KubernetesState:
        if not self.nodes:
            return KubernetesState()
        world = self.world
        namespace = "security-platform"
        pods = []
        for p in sorted(world.pods.values(), key=lambda p: p.name):
            if not p.node or p.node not in self.nodes:
                continue
            w = world.workloads[p.workload]
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
        for w in world.workloads.values():
            allowed, healthy, desired = self.budget(w.name)
            budgets.append(
                DisruptionBudget(
                    namespace=namespace,
                    name=w.name,
                    pods=tuple(sorted(p.name for p in world.pods_of(w.name))),
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
