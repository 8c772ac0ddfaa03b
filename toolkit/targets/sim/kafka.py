"""The simulated KRaft Kafka cluster: nodes, topics, partitions, ISRs and the controller quorum.

- A broker going down leaves every ISR at once (controlled shutdown) and hands leadership to another ISR member; a
  partition with no ISR member left goes offline (unclean election off) until its last ISR member returns.
- A broker coming back catches up per partition after `kafka_catchup_seconds` (spread 0.5-1.0x, deterministic) and
  rejoins the ISR; a follower whose fetches cannot reach the partition's leader (a failed TLS handshake, `tls.py`)
  does not rejoin.
- Controllers rejoin the quorum shortly after start; leadership moves when the active one leaves.
- A topic's replicas are placed as Kafka's own rack-aware assignment would place them (`kafka_assignment`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from toolkit.catalog import Catalog
from toolkit.config.platform import KafkaSpec
from toolkit.model import BrokerState, KafkaNode, KafkaRole, KafkaState, Partition, Topic, Voter

if TYPE_CHECKING:
    from toolkit.targets.sim.world import World


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


class KafkaModel:
    """The Kafka cluster's own state (its nodes, one per pod; topics; partitions; the active controller; the
    metadata version), moved by its pods starting and stopping (`node_up`, `node_down`) and by time (`tick`)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.nodes: list[SimKafkaNode] = []
        self.topics: list[Topic] = []
        self.partitions: list[SimPartition] = []
        self.active_controller: int | None = None
        self.metadata_version = ""

    def build(self, spec: KafkaSpec, zones: tuple[str, ...], version: str, catalog: Catalog) -> None:
        """The cluster's workloads and nodes (a rack per zone), a controller elected, its topics placed."""
        world = self.world
        add_workload = world.controllers.add_workload
        if spec.combined:
            add_workload("kafka", "kafka", "StatefulSet", "combined", spec.brokers, version, zones=zones)
            for i in range(spec.brokers):
                self.nodes.append(SimKafkaNode(i, "combined", f"kafka-{i}", zones[i % len(zones)]))
            brokers = [n.id for n in self.nodes]
        else:
            add_workload(
                "kafka-controller", "kafka", "StatefulSet", "controller", spec.controllers, version, zones=zones
            )
            add_workload("kafka-broker", "kafka", "StatefulSet", "broker", spec.brokers, version, base=100, zones=zones)
            for i in range(spec.controllers):
                self.nodes.append(SimKafkaNode(i, "controller", f"kafka-controller-{i}", zones[i % len(zones)]))
            for i in range(spec.brokers):
                self.nodes.append(SimKafkaNode(100 + i, "broker", f"kafka-broker-{i}", zones[i % len(zones)]))
            brokers = [100 + i for i in range(spec.brokers)]
        voters = [n.id for n in self.nodes if n.role != "broker"]
        self.active_controller = voters[len(voters) // 2] if voters else None
        self.metadata_version = catalog.components["kafka"].versions[version].metadata_version or ""
        # Kafka's own rack-aware placement, as a topic created on this cluster would get it (see kafka_assignment)
        rack_of = {n.id: n.rack for n in self.nodes if n.role != "controller"}
        names = ["security-events", "security-events-dlq", "audit-events", "syslog-raw"][: spec.topics]
        names += [f"topic-{i}" for i in range(len(names), spec.topics)]
        for t in names:
            self.topics.append(Topic(t, spec.replication_factor, spec.min_insync_replicas, False))
            start, shift = (world.pick(len(brokers), t, what) for what in ("start", "shift"))
            for p, replicas in enumerate(
                kafka_assignment(rack_of, spec.partitions_per_topic, spec.replication_factor, start, shift)
            ):
                self.partitions.append(SimPartition(t, p, replicas, list(replicas), replicas[0]))

    def node_of_pod(self, pod: str) -> SimKafkaNode | None:
        return next((n for n in self.nodes if n.pod == pod), None)

    def node(self, node_id: int) -> SimKafkaNode | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    # ------------------------------------------------------------------ physics

    def node_down(self, node_id: int) -> None:
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

    def node_up(self, node_id: int) -> None:
        world = self.world
        key = str(node_id)
        for p in self.partitions:
            if node_id not in p.replicas:
                continue
            if p.leader is None and node_id in p.last_isr:
                p.leader, p.isr = node_id, [node_id]
                continue
            delay = world.params.kafka_catchup_seconds * world.factor(p.topic, p.partition, node_id)
            p.rejoin_at[key] = world.now + world.params.kafka_recovery_seconds + delay * world.faults.slow_catchup

    def tick(self) -> None:
        world = self.world
        ready = {n.id for n in self.nodes if world.pods[n.pod].ready}
        for p in self.partitions:
            for key, at in list(p.rejoin_at.items()):
                b = int(key)
                if at <= world.now and b in ready and self._can_fetch(b, p.leader):
                    if p.leader is None:
                        p.leader = b
                    if b not in p.isr:
                        p.isr = sorted([*p.isr, b], key=p.replicas.index)
                    del p.rejoin_at[key]
        if self.active_controller is None:
            voters = [n for n in self.nodes if n.role != "broker" and self._voter_caught_up(n)]
            if voters:
                self.active_controller = voters[0].id

    def _can_fetch(self, follower: int, leader: int | None) -> bool:
        """Whether a follower's fetch requests reach the partition's leader (TLS between the two nodes)."""
        world = self.world
        if leader is None or leader == follower or not world.tls.mounts:
            return True
        a, b = self.node(follower), self.node(leader)
        if a is None or b is None or a.pod not in world.pods or b.pod not in world.pods:
            return True
        return world.tls.ok(world.pods[a.pod], world.pods[b.pod])

    def _voter_caught_up(self, node: SimKafkaNode) -> bool:
        world = self.world
        pod = world.pods[node.pod]
        return pod.ready and world.now - pod.up_since >= world.params.quorum_catchup_seconds

    # ------------------------------------------------------------------ actions

    def elect_preferred_leaders(self) -> None:
        for p in self.partitions:
            if p.replicas and p.replicas[0] in p.isr:
                p.leader = p.replicas[0]

    # ------------------------------------------------------------------ observation

    def below_min_isr(self) -> int:
        """Partitions whose ISR is smaller than their topic's min.insync.replicas."""
        min_isr = {t.name: t.min_insync_replicas for t in self.topics}
        return sum(1 for p in self.partitions if len(p.isr) < min_isr.get(p.topic, 1))

    def offline(self) -> int:
        """Partitions without a leader."""
        return sum(1 for p in self.partitions if p.leader is None)

    def snapshot(self) -> KafkaState:
        world = self.world
        nodes = []
        voters = []
        for n in self.nodes:
            pod = world.pods.get(n.pod)
            if pod is None or pod.phase == "terminating":
                state = BrokerState.SHUTTING_DOWN if pod is not None else BrokerState.NOT_RUNNING
            elif pod.phase == "starting":
                state = BrokerState.STARTING
            elif world.now - pod.up_since < world.params.kafka_recovery_seconds or world.now < pod.recovering_until:
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
        rate = world.params.events_per_second / max(1, len(self.partitions))
        partitions = tuple(
            Partition(
                topic=p.topic,
                partition=p.partition,
                replicas=tuple(p.replicas),
                isr=tuple(p.isr),
                leader=p.leader,
                follower_lag=tuple(
                    (int(k), max(0, round((at - world.now) * rate))) for k, at in sorted(p.rejoin_at.items())
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
