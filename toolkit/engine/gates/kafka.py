"""Kafka gates: pure predicates over `PlatformState`, each returning a `Verdict` with a reason a person can act on.

Before the first restart (`preflight`): every node answers, no under-replicated, under-min-ISR or offline partition;
warnings for topics with RF < 3, min.insync.replicas < 2 or unclean leader election on.

"Can this node roll now?" (`can_restart`), following Strimzi's availability rule:
- effective ISR = ISR minus the nodes already restarting (the rest of the batch);
- a broker may not restart if it is in the effective ISR of a partition whose effective ISR would then fall below
  min.insync.replicas (only when RF > min.insync.replicas: with RF <= minISR no order helps, and preflight warns);
- a broker in log recovery is never restarted;
- a controller may restart only if, without it and the nodes already restarting, more than half of the voters
  remain caught up.

"Has it recovered?" (`recovered`): the node runs the wanted version, its broker state is RUNNING, it answers, it is
back in the ISR of every partition it replicates (slow catch-up is a wait naming the partition and its lag), and a
controller is caught up in the quorum.
"""

from __future__ import annotations

from collections.abc import Iterable

from toolkit.model import BrokerState, KafkaNode, KafkaState, Partition, Verdict


def _topic_limits(state: KafkaState) -> dict[str, tuple[int, int]]:
    return {t.name: (t.replication_factor, t.min_insync_replicas) for t in state.topics}


def _min_isr(limits: dict[str, tuple[int, int]], p: Partition) -> int:
    return limits.get(p.topic, (len(p.replicas), 1))[1]


def preflight(state: KafkaState) -> list[Verdict]:
    """Cluster-wide checks before the first restart. Waits (not fatal): a transient URP may clear."""
    out: list[Verdict] = []
    silent = [n for n in state.nodes if not n.reachable]
    if silent:
        names = ", ".join(f"{n.id} ({n.pod})" for n in silent)
        out.append(Verdict.wait("kafka.all-nodes-answer", f"kafka nodes not answering: {names}"))
    else:
        out.append(Verdict.passed("kafka.all-nodes-answer", f"all {len(state.nodes)} kafka nodes answer"))
    limits = _topic_limits(state)
    offline = [p for p in state.partitions if p.leader is None or not p.isr]
    under_min = [p for p in state.partitions if p.isr and len(p.isr) < _min_isr(limits, p)]
    urp = [p for p in state.partitions if len(p.isr) < len(p.replicas)]
    for rule, bad, what in (
        ("kafka.no-offline-partitions", offline, "offline partitions"),
        ("kafka.no-under-min-isr", under_min, "partitions under min.insync.replicas"),
        ("kafka.no-under-replicated", urp, "under-replicated partitions"),
    ):
        if bad:
            sample = ", ".join(f"{p.name} ISR {list(p.isr)} of {list(p.replicas)}" for p in bad[:3])
            out.append(Verdict.wait(rule, f"{len(bad)} {what}: {sample}"))
        else:
            out.append(Verdict.passed(rule, f"0 {what}"))
    return out


def warnings(state: KafkaState) -> list[Verdict]:
    out: list[Verdict] = []
    for t in state.topics:
        if t.replication_factor < 3:
            out.append(
                Verdict.wait(
                    "kafka.topic-rf",
                    f"topic {t.name} has replication factor {t.replication_factor} (< 3): a restart can leave "
                    "it without a spare copy",
                )
            )
        if t.min_insync_replicas < 2:
            out.append(
                Verdict.wait(
                    "kafka.topic-min-isr",
                    f"topic {t.name} has min.insync.replicas {t.min_insync_replicas} (< 2): acks=all may be "
                    "acknowledged by a single copy",
                )
            )
        if t.unclean_leader_election:
            out.append(
                Verdict.wait(
                    "kafka.unclean-election",
                    f"topic {t.name} allows unclean leader election: acknowledged data can be lost on failover",
                )
            )
    return out


def shares_partition(state: KafkaState, a: int, b: int) -> bool:
    return any(a in p.replicas and b in p.replicas for p in state.partitions)


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
        limits = _topic_limits(state)
        for p in state.partitions:
            if node_id not in p.replicas:
                continue
            min_isr = _min_isr(limits, p)
            if len(p.replicas) <= min_isr:
                continue  # no order keeps it available; preflight warned
            effective = [b for b in p.isr if b not in others]
            if node_id in effective and len(effective) - 1 < min_isr:
                if others & set(p.isr):
                    return Verdict.wait(
                        "kafka.effective-isr",
                        f"partition {p.name}: ISR {list(p.isr)} minus restarting {sorted(others & set(p.isr))} "
                        f"leaves {effective}; restarting {node_id} too would drop it below "
                        f"min.insync.replicas={min_isr}",
                    )
                return Verdict.wait(
                    "kafka.isr-at-min",
                    f"partition {p.name}: ISR {list(p.isr)} is at min.insync.replicas={min_isr} with "
                    f"replication factor {len(p.replicas)}; restarting {node_id} would make it unwritable for "
                    "acks=all until the missing replicas catch up",
                )
    return Verdict.passed("kafka.can-restart", f"kafka node {node_id} ({node.pod}) can restart without loss")


def _quorum_allows(state: KafkaState, node: KafkaNode, others: set[int]) -> Verdict:
    voters = state.voters
    if not voters:
        return Verdict.wait("kafka.quorum-known", "the controller quorum is not observed (DescribeQuorum)")
    remaining = [v for v in voters if v.id != node.id and v.id not in others and v.caught_up]
    if len(remaining) * 2 <= len(voters):
        lagging = [f"{v.id} (lag {v.lag})" for v in voters if v.id != node.id and not v.caught_up]
        return Verdict.wait(
            "kafka.quorum-majority",
            f"restarting controller {node.id} would leave {len(remaining)} of {len(voters)} voters caught up "
            f"(a majority needs {len(voters) // 2 + 1}); lagging: {', '.join(lagging) or 'none'}",
        )
    return Verdict.passed("kafka.quorum-majority", f"{len(remaining)} of {len(voters)} voters stay caught up")


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
        missing = [p for p in state.partitions if node_id in p.replicas and node_id not in p.isr]
        if missing:
            p = missing[0]
            lag = dict(p.follower_lag).get(node_id)
            lag_text = f", {lag} messages behind" if lag is not None else ""
            return Verdict.wait(
                "kafka.isr-rejoined",
                f"kafka node {node_id} is not yet back in the ISR of {len(missing)} partitions, e.g. {p.name} "
                f"(ISR {list(p.isr)}{lag_text})",
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
