"""Kafka gates: pure predicates over `KafkaState`, each returning a `Verdict` whose reason names the numbers.

One set of rules, one wording, whether or not anything has restarted yet (Strimzi's KafkaRoller, KafkaAvailability
and quorum check; Yelp's rolling-restart health checks):

Cluster health, for a step that restarts a node with the broker role (`partition_health`)
- no offline partition, no partition under min.insync.replicas, no under-replicated partition, except partitions
  whose missing replicas are all members of the step itself (an unready member restarts first precisely because it
  serves nothing);
- a partition whose replication factor is below its min.insync.replicas is under min by construction: it is not
  waited on (no restart can change it) but warned about loudly in the plan (`warnings`);
- a replica on a broker id the cluster does not have can never rejoin its ISR: fatal, with the way out.

"Can this node roll now?" (`can_restart`)
- never a node in log recovery;
- a node with the controller role (controller-only or combined): without it and the nodes already restarting, more
  than half of the voters stay caught up (a quorum of 1 or 2 voters cannot keep a majority whatever the order: once
  the other voters are caught up it passes, and the plan warns);
- a node with the broker role, for each partition it replicates: effective ISR = ISR minus the nodes already
  restarting; it may not restart when it is in the effective ISR and the effective ISR without it would drop below
  min.insync.replicas. Where RF <= min.insync.replicas no order keeps acks=all writable: not waited on, warned about.
Controller-only nodes are gated by the quorum check alone (a broker's under-replicated partition does not hold them
back); combined nodes by both.

"Has it recovered?" (`recovered`): the node runs the wanted version, is RUNNING and answering, is back in the ISR of
every partition it replicates (slow catch-up is a wait naming the partition and its lag), and a controller is caught
up in the quorum.

Cost: `index(state)` files partitions by broker and finds the unhealthy ones once per observed state (memoised by
identity), so planning N brokers x P partitions costs O(P * RF) once plus O(P * RF / N) per node.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property

from toolkit.model import BrokerState, KafkaNode, KafkaState, Partition, Verdict

NAMES_SHOWN = 12  # a warning names at most this many topics, then says how many more


def ids(values: Iterable[int]) -> str:
    """[100,101]: broker ids as Kafka's tools print them."""
    return "[" + ",".join(str(v) for v in values) + "]"


class KafkaIndex:
    """What every gate of one observed state needs, computed once (one pass over the partitions); what only
    `--parallel auto` and recovery checks need (partitions filed by broker) on first use. Partitions are referred to
    by their position in `state.partitions`."""

    def __init__(self, state: KafkaState) -> None:
        self.partitions = state.partitions
        self.limits = {t.name: (t.replication_factor, t.min_insync_replicas) for t in state.topics}
        self.node_ids = frozenset(n.id for n in state.nodes)
        self.at_min: dict[int, list[Partition]] = {}  # broker -> partitions (RF > minISR) at or below min, in ISR
        self.offline: list[Partition] = []
        self.under_min: list[Partition] = []  # ISR below min.insync.replicas where RF >= min.insync.replicas
        self.under_replicated: list[Partition] = []
        self.unknown_replicas: list[tuple[Partition, int]] = []  # a replica on a broker the cluster does not have
        self._batches: dict[frozenset[int], list[Partition]] = {}
        min_of = {topic: m for topic, (_rf, m) in self.limits.items()}.get
        known = self.node_ids.issuperset
        check_known = bool(self.node_ids)
        for p in self.partitions:
            replicas, isr = p.replicas, p.isr
            n_isr, n_replicas = len(isr), len(replicas)
            min_isr = min_of(p.topic, 1)
            if n_isr < n_replicas:
                self.under_replicated.append(p)
                if p.leader is None or not isr:
                    self.offline.append(p)
                elif n_isr < min_isr <= n_replicas:
                    self.under_min.append(p)
            if n_isr <= min_isr < n_replicas:
                for b in isr:
                    self.at_min.setdefault(b, []).append(p)
            if check_known and not known(replicas):
                self.unknown_replicas.extend((p, b) for b in replicas if b not in self.node_ids)

    def min_isr(self, p: Partition) -> int:
        return self.limits.get(p.topic, (len(p.replicas), 1))[1]

    @cached_property
    def replica_of(self) -> dict[int, list[int]]:
        """Broker id -> positions of the partitions it replicates."""
        out: dict[int, list[int]] = {b: [] for b in self.node_ids}
        get = out.get
        for i, p in enumerate(self.partitions):
            for b in p.replicas:
                held = get(b)
                if held is None:
                    held = out[b] = []
                held.append(i)
        return out

    @cached_property
    def in_isr_of(self) -> dict[int, list[int]]:
        """Broker id -> positions of the partitions whose ISR it is in."""
        out: dict[int, list[int]] = {b: [] for b in self.node_ids}
        get = out.get
        for i, p in enumerate(self.partitions):
            for b in p.isr:
                synced = get(b)
                if synced is None:
                    synced = out[b] = []
                synced.append(i)
        return out

    def of_broker(self, broker: int) -> list[Partition]:
        return [self.partitions[i] for i in self.replica_of.get(broker, ())]

    def shared_isr(self, batch: frozenset[int]) -> list[Partition]:
        """Partitions with two or more members of `batch` in their ISR (set operations, once per batch)."""
        found = self._batches.get(batch)
        if found is None:
            seen: set[int] = set()
            twice: set[int] = set()
            for b in batch:
                mine = set(self.in_isr_of.get(b, ()))
                twice |= mine & seen
                seen |= mine
            found = self._batches[batch] = [self.partitions[i] for i in sorted(twice)]
        return found


_MEMO: list[tuple[KafkaState, KafkaIndex]] = []


def index(state: KafkaState) -> KafkaIndex:
    """The index of `state`, built once per state object (a pure function, memoised by identity: the planner asks
    for it once per step, with the same observed state)."""
    for known, built in _MEMO:
        if known is state:
            return built
    built = KafkaIndex(state)
    _MEMO[:] = [*_MEMO[-1:], (state, built)]
    return built


# ---------------------------------------------------------------------------------------------- plan time


def _named(topics: Sequence[str]) -> str:
    shown = ", ".join(topics[:NAMES_SHOWN])
    more = len(topics) - NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def warnings(state: KafkaState) -> list[Verdict]:
    """What no restart order can avoid, said up front (loudest first); none of it is waited on."""
    below = [t for t in state.topics if t.replication_factor < t.min_insync_replicas]
    equal = [t for t in state.topics if t.replication_factor == t.min_insync_replicas]
    out: list[Verdict] = []
    if below:
        out.append(
            Verdict.wait(
                "kafka.topic-rf-below-min-isr",
                f"ALWAYS FAILING: acks=all producers to {_named([t.name for t in below])} fail whether or not "
                f"anything restarts: replication factor {below[0].replication_factor} is below "
                f"min.insync.replicas={below[0].min_insync_replicas}; raise the replication factor or lower "
                "min.insync.replicas",
            )
        )
    if equal:
        out.append(
            Verdict.wait(
                "kafka.topic-rf-equals-min-isr",
                f"acks=all producers to {_named([t.name for t in equal])} fail during each restart of one of their "
                f"replicas: replication factor {equal[0].replication_factor} equals "
                f"min.insync.replicas={equal[0].min_insync_replicas}, so no order keeps them writable (the roll "
                "does not wait on them); raise the replication factor by one to keep them writable",
            )
        )
    for rule, bad, why in (
        ("kafka.topic-rf", [t for t in state.topics if t.replication_factor < 3], "replication factor below 3"),
        (
            "kafka.topic-min-isr",
            [t for t in state.topics if t.min_insync_replicas < 2],
            "min.insync.replicas below 2: acks=all may be acknowledged by a single copy",
        ),
        (
            "kafka.unclean-election",
            [t for t in state.topics if t.unclean_leader_election],
            "unclean leader election on: acknowledged data can be lost on failover",
        ),
    ):
        if bad:
            out.append(Verdict.wait(rule, f"topics {_named([t.name for t in bad])}: {why}"))
    voters = [v.id for v in state.voters]
    if 0 < len(voters) <= 2:
        out.append(
            Verdict.wait(
                "kafka.small-quorum",
                f"the controller quorum has {len(voters)} voter(s) {ids(voters)}: no order keeps a majority while "
                "one of them restarts, so metadata changes (leader elections, topic changes) pause during each of "
                "those restarts; run 3 controllers",
            )
        )
    return out


# ---------------------------------------------------------------------------------------------- cluster health


def _isr_text(p: Partition) -> str:
    return f"{p.name}: ISR {ids(p.isr)} of replicas {ids(p.replicas)}"


def partition_health(state: KafkaState, batch: Iterable[int] = ()) -> list[Verdict]:
    """No offline, under-min-ISR or under-replicated partition, except those whose missing replicas are all in
    `batch` (the step's own members). The same rule before and after the first restart."""
    idx = index(state)
    members = set(batch)

    def caused_by_batch(p: Partition) -> bool:
        return bool(p.isr) and all(b in members for b in p.replicas if b not in p.isr)

    out: list[Verdict] = []
    if idx.unknown_replicas:
        p, b = idx.unknown_replicas[0]
        out.append(
            Verdict.refuse(
                "kafka.replica-on-unknown-broker",
                f"{p.name} has a replica on broker {b}, which is not in the cluster (nodes "
                f"{ids(sorted(n.id for n in state.nodes))}): it can never rejoin the ISR, so waiting cannot help; "
                f"reassign the partition (kafka-reassign-partitions) or bring broker {b} back "
                f"({len(idx.unknown_replicas)} replica(s) in all)",
            )
        )
    offline = [p for p in idx.offline if not caused_by_batch(p)]
    under_min = [p for p in idx.under_min if not caused_by_batch(p)]
    urp = [p for p in idx.under_replicated if not caused_by_batch(p) and p not in offline]
    if offline:
        p = offline[0]
        out.append(
            Verdict.wait(
                "kafka.no-offline-partitions",
                f"{len(offline)} offline partition(s), e.g. {p.name}: no leader, ISR {ids(p.isr)} of replicas "
                f"{ids(p.replicas)}",
            )
        )
    else:
        out.append(Verdict.passed("kafka.no-offline-partitions", "0 offline partitions"))
    if under_min:
        p = under_min[0]
        out.append(
            Verdict.wait(
                "kafka.no-under-min-isr",
                f"{len(under_min)} partition(s) under min.insync.replicas, e.g. {p.name}: ISR {ids(p.isr)} is below "
                f"min.insync.replicas={idx.min_isr(p)} (acks=all producers fail now)",
            )
        )
    else:
        out.append(Verdict.passed("kafka.no-under-min-isr", "0 partitions under min.insync.replicas"))
    if urp:
        out.append(
            Verdict.wait(
                "kafka.no-under-replicated",
                f"{len(urp)} under-replicated partition(s), e.g. "
                + "; ".join(_isr_text(p) for p in urp[:3])
                + " (waiting for the missing replicas to catch up)",
            )
        )
    else:
        out.append(Verdict.passed("kafka.no-under-replicated", "0 under-replicated partitions"))
    return out


def nodes_answer(state: KafkaState, batch: Iterable[int] = ()) -> Verdict:
    """Every node outside `batch` answers."""
    members = set(batch)
    silent = [n for n in state.nodes if not n.reachable and n.id not in members]
    if silent:
        names = ", ".join(f"{n.id} ({n.pod})" for n in silent[:5])
        return Verdict.wait(
            "kafka.all-nodes-answer",
            f"{len(silent)} kafka node(s) do not answer: {names}; no other broker restarts until they do",
        )
    return Verdict.passed("kafka.all-nodes-answer", f"all {len(state.nodes)} kafka nodes answer")


def preflight(state: KafkaState) -> list[Verdict]:
    """Every cluster-wide check, as `plan` and `status` show them: nodes answer, partition health."""
    return [nodes_answer(state), *partition_health(state)]


# ---------------------------------------------------------------------------------------------- per node


def shares_partition(state: KafkaState, a: int, b: int) -> bool:
    idx = index(state)
    return not set(idx.replica_of.get(a, ())).isdisjoint(idx.replica_of.get(b, ()))


def can_restart(state: KafkaState, node_id: int, restarting: Iterable[int] = ()) -> Verdict:
    """May node `node_id` restart now, given that `restarting` are down or about to go down with it?"""
    node = state.node(node_id)
    if node is None:
        return Verdict.refuse("kafka.node-known", f"kafka node {node_id} is not in the observed cluster")
    if node.state is BrokerState.RECOVERY:
        return Verdict.wait(
            "kafka.not-in-recovery",
            f"kafka node {node_id} ({node.pod}) is in log recovery: restarting it would start recovery over; "
            "waiting for it to finish",
        )
    others = set(restarting) - {node_id}
    if node.is_controller:
        verdict = _quorum_allows(state, node, others)
        if not verdict.ok:
            return verdict
    if node.is_broker:
        verdict = _availability_allows(state, node_id, others)
        if not verdict.ok:
            return verdict
    return Verdict.passed("kafka.can-restart", f"kafka node {node_id} ({node.pod}) can restart without loss")


def _availability_allows(state: KafkaState, node_id: int, others: set[int]) -> Verdict:
    """Strimzi's rule for one node: only partitions already at min.insync.replicas, or sharing their ISR with other
    members of the batch, can drop below it; both are found in the index (no scan of the node's partitions)."""
    idx = index(state)
    candidates = list(idx.at_min.get(node_id, ()))
    if others:
        candidates += [p for p in idx.shared_isr(frozenset(others | {node_id})) if node_id in p.isr]
    for p in candidates:
        min_isr = idx.min_isr(p)
        if len(p.replicas) <= min_isr:
            continue  # no order keeps it writable for acks=all; the plan warned (kafka.topic-rf-equals-min-isr)
        going = [b for b in p.isr if b in others]
        if len(p.isr) - len(going) - 1 >= min_isr:
            continue
        effective = [b for b in p.isr if b not in others]
        missing = [b for b in p.replicas if b not in p.isr]
        if going:
            return Verdict.wait(
                "kafka.effective-isr",
                f"{p.name}: ISR {ids(p.isr)} minus restarting {ids(sorted(going))} leaves "
                f"{ids(effective)} at min.insync.replicas={min_isr}; restarting {node_id} too would leave "
                f"{len(effective) - 1} in sync (acks=all producers would fail)",
            )
        return Verdict.wait(
            "kafka.isr-at-min",
            f"{p.name}: ISR {ids(p.isr)} is at min.insync.replicas={min_isr} (replicas {ids(p.replicas)}); "
            f"restarting {node_id} would leave {len(effective) - 1} in sync and acks=all producers would fail "
            f"until {ids(missing)} rejoin the ISR",
        )
    return Verdict.passed("kafka.effective-isr", f"every partition of {node_id} keeps min.insync.replicas without it")


def _quorum_allows(state: KafkaState, node: KafkaNode, others: set[int]) -> Verdict:
    voters = state.voters
    if not voters:
        return Verdict.wait("kafka.quorum-known", "the controller quorum is not observed (DescribeQuorum)")
    needed = len(voters) // 2 + 1
    remaining = [v for v in voters if v.id != node.id and v.id not in others and v.caught_up]
    lagging = [f"{v.id} (lag {v.lag})" for v in voters if v.id != node.id and not v.caught_up]
    restarting = sorted(v.id for v in voters if v.id in others)
    if len(voters) - 1 < needed:
        # 1 or 2 voters: no order keeps a majority through any restart (the plan warned); wait only for what can
        # clear: the other voters catching up
        if len(remaining) < len(voters) - 1:
            return Verdict.wait(
                "kafka.quorum-majority",
                f"controller {node.id} waits for the other voters of its {len(voters)}-voter quorum to catch up: "
                f"{', '.join(lagging) or 'restarting: ' + ids(restarting)}",
            )
        return Verdict.passed(
            "kafka.quorum-majority",
            f"a {len(voters)}-voter quorum cannot keep a majority while {node.id} restarts, whatever the order "
            "(the plan warned)",
        )
    if len(remaining) < needed:
        return Verdict.wait(
            "kafka.quorum-majority",
            f"restarting controller {node.id} would leave {len(remaining)} of {len(voters)} voters caught up "
            f"(a majority is {needed}); lagging: {', '.join(lagging) or 'none'}"
            + (f"; restarting: {ids(restarting)}" if restarting else ""),
        )
    return Verdict.passed(
        "kafka.quorum-majority", f"{len(remaining)} of {len(voters)} voters stay caught up (a majority is {needed})"
    )


def recovered(state: KafkaState, node_id: int, version: str) -> Verdict:
    """Has node `node_id` come back on `version` and rejoined every ISR (and the quorum)?"""
    node = state.node(node_id)
    rule = "kafka.recovered"
    if node is None or not node.reachable:
        return Verdict.wait(rule, f"kafka node {node_id} does not answer yet")
    if node.version != version:
        return Verdict.wait(rule, f"kafka node {node_id} runs {node.version}, not yet {version}")
    if node.state is not BrokerState.RUNNING:
        return Verdict.wait(rule, f"kafka node {node_id} broker state is {node.state}, not running")
    if node.is_broker:
        missing = [p for p in index(state).of_broker(node_id) if node_id not in p.isr]
        if missing:
            p = missing[0]
            lag = dict(p.follower_lag).get(node_id)
            lag_text = f", {lag} messages behind" if lag is not None else ""
            return Verdict.wait(
                "kafka.isr-rejoined",
                f"kafka node {node_id} is not yet back in the ISR of {len(missing)} partitions, e.g. {p.name} "
                f"(ISR {ids(p.isr)}{lag_text})",
            )
    if node.is_controller:
        voter = next((v for v in state.voters if v.id == node_id), None)
        if voter is None or not voter.caught_up:
            lag_text = str(voter.lag) if voter else "unknown"
            return Verdict.wait("kafka.voter-caught-up", f"controller {node_id} is not caught up (lag {lag_text})")
    return Verdict.passed(rule, f"kafka node {node_id} runs {version}, is running and in every ISR")


def preferred_leaders_misplaced(state: KafkaState) -> list[Partition]:
    """Partitions whose leader is not the preferred (first) replica although it is in the ISR."""
    return [p for p in state.partitions if p.replicas and p.leader != p.replicas[0] and p.replicas[0] in p.isr]
