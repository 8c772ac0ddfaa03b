"""The simulated Elasticsearch cluster: shard copies, their recovery and allocation, node shutdown records, the
elected master and the cluster's health.

- A node leaving unassigns its shard copies and promotes a started replica where the primary left (no started copy:
  the primary is unassigned and health turns red).
- A returning node recovers its copies (`es_recovery_seconds`), except replicas while allocation is restricted to
  primaries, and never a replica whose primary sits on a newer node.
- A node shutdown record (the shutdown API) completes `shutdown_complete_seconds` after it is put.
- A master node that is Ready is elected when there is no elected master.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit.config.platform import ElasticsearchSpec
from toolkit.model import EsNode, EsState, Health, Shard, ShardState, ShutdownRecord
from toolkit.targets.sim.pods import serving

if TYPE_CHECKING:
    from toolkit.targets.sim.world import World


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


class ElasticsearchModel:
    """The Elasticsearch cluster's own state (allocation setting, shard copies, shutdown records, elected master,
    snapshot repositories); its nodes are the world's pods of its workloads, by pod name."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.allocation: str | None = None
        self.shards: list[SimShard] = []
        self.shutdowns: list[SimShutdown] = []
        self.elected_master: str | None = None
        self.snapshot_repositories: list[str] = []

    def build(self, spec: ElasticsearchSpec, zones: tuple[str, ...], version: str) -> None:
        """A workload per node set, every index's shard copies started on its tier's data nodes, a master elected."""
        world = self.world
        data_nodes: dict[str, list[str]] = {}
        for ns in spec.node_sets:
            set_tier: str = ns.tier or ""
            world.controllers.add_workload(
                f"es-{ns.name}",
                "elasticsearch",
                "StatefulSet",
                ns.name,
                ns.replicas,
                version,
                tier=set_tier,
                zones=zones,
            )
            if set_tier:
                data_nodes.setdefault(set_tier, []).extend(f"es-{ns.name}-{i}" for i in range(ns.replicas))
        tiers = sorted(data_nodes)
        for i in range(spec.indices):
            if not tiers:
                break
            tier = tiers[i % len(tiers)]
            nodes = data_nodes[tier]
            for n in range(spec.shards_per_index):
                for c in range(min(spec.replicas + 1, len(nodes))):
                    holder = nodes[(i + n + c) % len(nodes)]
                    self.shards.append(SimShard(f"events-{tier}-{i:04d}", n, c == 0, holder, ShardState.STARTED.value))
        masters = sorted(p.name for p in world.pods.values() if world.workloads[p.workload].role == "master")
        self.elected_master = masters[len(masters) // 2] if masters else None
        self.snapshot_repositories = ["snapshots"]

    # ------------------------------------------------------------------ physics

    def node_down(self, node: str) -> None:
        for s in self.shards:
            if s.node != node:
                continue
            was_primary = s.primary
            s.home, s.node, s.state = node, None, ShardState.UNASSIGNED.value
            if was_primary:
                promoted = next(
                    (
                        r
                        for r in self.shards
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
        if self.elected_master == node:
            self.elected_master = None

    def _node_version(self, node: str | None) -> str | None:
        pods = self.world.pods
        if node is None or node not in pods:
            return None
        return pods[node].version

    def tick(self) -> None:
        world = self.world
        for s in self.shards:
            if s.state == ShardState.INITIALIZING.value and s.started_at <= world.now:
                s.state = ShardState.STARTED.value
        for s in self.shards:
            if s.state != ShardState.UNASSIGNED.value or s.home is None:
                continue
            pod = world.pods.get(s.home)
            if pod is None or not pod.ready:
                continue
            if not s.primary and self.allocation in ("primaries", "new_primaries", "none"):
                continue
            if not s.primary:
                primary = next(
                    (
                        p
                        for p in self.shards
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
            s.started_at = world.now + world.params.es_recovery_seconds
            s.home = None
        for r in self.shutdowns:
            if r.status != "COMPLETE" and r.complete_at <= world.now:
                r.status = "COMPLETE"
        if self.elected_master is None:
            masters = [w for w in world.workloads.values() if w.component == "elasticsearch" and w.role == "master"]
            for w in masters:
                for pod in sorted(world.pods_of(w.name), key=lambda p: p.name):
                    if pod.ready:
                        self.elected_master = pod.name
                        return

    def health(self) -> Health:
        if any(s.primary and s.state != ShardState.STARTED.value for s in self.shards):
            return Health.RED
        if any(s.state != ShardState.STARTED.value for s in self.shards):
            return Health.YELLOW
        return Health.GREEN

    def lose_a_primary(self) -> None:
        """Every copy of the first started primary's shard is lost (the red-cluster fault)."""
        first = next(s for s in self.shards if s.primary and s.state == ShardState.STARTED.value)
        for s in self.shards:
            if s.index == first.index and s.number == first.number:
                s.state, s.home, s.node = ShardState.UNASSIGNED.value, None, None

    # ------------------------------------------------------------------ actions

    def prepare(self, node: str, method: str) -> None:
        if method == "shutdown-api":
            self.shutdowns = [r for r in self.shutdowns if r.node != node]
            self.shutdowns.append(
                SimShutdown(
                    node, "restart", "IN_PROGRESS", self.world.now + self.world.params.shutdown_complete_seconds
                )
            )
        else:
            self.allocation = "primaries"

    def finish(self, node: str, method: str) -> None:
        if method == "shutdown-api":
            self.remove_shutdown(node)
        else:
            self.allocation = None

    def remove_shutdown(self, node: str) -> None:
        self.shutdowns = [r for r in self.shutdowns if r.node != node]

    # ------------------------------------------------------------------ observation

    def snapshot(self) -> EsState:
        world = self.world
        nodes = []
        for w in world.workloads.values():
            if w.component != "elasticsearch":
                continue
            roles = ("master",) if w.role == "master" else (f"data_{w.tier}",)
            for pod in sorted(world.pods_of(w.name), key=lambda p: p.name):
                nodes.append(EsNode(name=pod.name, roles=roles, version=pod.version, tier=w.tier, joined=serving(pod)))
        return EsState(
            health=self.health(),
            nodes=tuple(nodes),
            shards=tuple(
                Shard(index=s.index, number=s.number, primary=s.primary, state=ShardState(s.state), node=s.node)
                for s in self.shards
            ),
            elected_master=self.elected_master,
            allocation_enable=self.allocation,
            shutdowns=tuple(ShutdownRecord(r.node, r.type, r.status) for r in self.shutdowns),
            snapshot_repositories=tuple(self.snapshot_repositories),
            supports_shutdown_api=self.world.params.es_shutdown_api,
        )


def _vkey(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))
