"""Elasticsearch gates: pure predicates over `EsState` (ECK's upgrade predicates and Elastic's guide).

Availability accounting (ECK counts healthy pods, not joined nodes): a node is unavailable when it left the cluster,
when its pod is terminating, or when its pod is NotReady while the node is still joined; the driver passes what it
sees of the pods as `unavailable` (name -> why). Pods already terminating are never restarted again (the driver does
not plan them).

Before a node restarts (`can_restart`), the same rules before and after the first restart:
- the unavailable nodes plus this one stay within `max_unavailable` (default 1);
- health green, or yellow with every primary started and no shard initializing or relocating;
- no other unavailable node (a member of the same batch, a terminating pod, a NotReady one) holds a copy of a shard
  this node holds (ECK's do_not_delete_pods_with_same_shards);
- every shard this node holds has a STARTED copy on another, available node (ECK's require_started_replica);
- an index with 0 replicas can never have one: fatal, unless the user accepted its unavailability by name (our rule,
  stricter than ECK, which restarts such nodes); the plan refuses it up front (`zero_replica_indices`);
- not every member of a data tier at once; one master-eligible node at a time, and a majority of master-eligible
  nodes stays up (1 or 2 master-eligible nodes cannot keep one whatever the order: it passes, the plan warns).

After the node rejoins (`recovered`): it is in _cat/nodes on the wanted version, allocation is back to the default,
no shutdown record remains for it, and health is green (or yellow with nothing initializing or relocating).

How to prepare a restart (`restart_method`): the node shutdown API (type=restart) from 7.15.2 where the server has
it; otherwise allocation `primaries` plus a flush. Either way the recovery resets what the preparation changed, a
halted or stopped restart undoes it, and the planner repairs it after a crash.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from toolkit.catalog import parse_version
from toolkit.model import EsState, Health, Shard, ShardState, Verdict

SHUTDOWN_API_SINCE = (7, 15, 2)
ACTIVE = (ShardState.STARTED, ShardState.RELOCATING)  # a relocating copy still serves


def restart_method(version: str, state: EsState) -> str:
    if state.supports_shutdown_api and parse_version(version) >= SHUTDOWN_API_SINCE:
        return "shutdown-api"
    return "allocation"


def health_allows_restart(state: EsState) -> Verdict:
    rule = "elasticsearch.health"
    moving = [s for s in state.shards if s.state in (ShardState.INITIALIZING, ShardState.RELOCATING)]
    unassigned_primaries = [s for s in state.shards if s.primary and s.state not in ACTIVE]
    if state.health is Health.GREEN and not moving:
        return Verdict.passed(rule, "cluster health is green")
    if state.health is Health.RED or unassigned_primaries:
        sample = ", ".join(s.key for s in unassigned_primaries[:3])
        return Verdict.wait(
            rule,
            f"cluster health is {state.health}: {len(unassigned_primaries)} primaries not started ({sample})",
        )
    if state.health is Health.UNKNOWN:
        return Verdict.wait(rule, "cluster health is unknown (no answer from _cluster/health)")
    if moving:
        sample = ", ".join(f"{s.key} {s.state}" for s in moving[:3])
        return Verdict.wait(rule, f"cluster health is {state.health} with {len(moving)} shards moving ({sample})")
    return Verdict.passed(rule, "cluster health is yellow with every primary started and no shard moving")


def _copies(state: EsState) -> dict[tuple[str, int], list[Shard]]:
    copies: dict[tuple[str, int], list[Shard]] = defaultdict(list)
    for s in state.shards:
        copies[(s.index, s.number)].append(s)
    return copies


def zero_replica_indices(state: EsState) -> list[str]:
    """Indices whose every shard has a single copy (number_of_replicas 0): _cat/shards lists every configured copy,
    assigned or not, so one row per shard means no replica exists."""
    copies = _copies(state)
    by_index: dict[str, list[int]] = defaultdict(list)
    for (index, _number), shard_copies in copies.items():
        by_index[index].append(len(shard_copies))
    return sorted(index for index, counts in by_index.items() if all(c == 1 for c in counts))


def _unavailable_text(names: Iterable[str], why: Mapping[str, str]) -> str:
    return ", ".join(f"{n} ({why.get(n, 'restarting with it')})" for n in sorted(names))


def can_restart(
    state: EsState,
    node_name: str,
    restarting: Iterable[str] = (),
    max_unavailable: int = 1,
    unavailable: Mapping[str, str] | None = None,
    accepted: Iterable[str] = (),
) -> Verdict:
    """May node `node_name` restart now, with `restarting` going down with it (its batch) and `unavailable` (node
    -> why: "terminating", "NotReady while joined") already out of service?"""
    node = state.node(node_name)
    if node is None:
        return Verdict.refuse("elasticsearch.node-known", f"elasticsearch node {node_name} is not observed")
    why = {n.name: "left the cluster" for n in state.nodes if not n.joined}
    why.update(unavailable or {})
    why.update({n: "restarting with it" for n in restarting if n != node_name})
    down = set(why) - {node_name}
    if len(down) + 1 > max_unavailable:
        return Verdict.wait(
            "elasticsearch.max-unavailable",
            f"{len(down)} node(s) already unavailable: {_unavailable_text(down, why)}; restarting {node_name} too "
            f"would make {len(down) + 1} with maxUnavailable={max_unavailable}",
        )
    verdict = health_allows_restart(state)
    if not verdict.ok:
        return verdict
    accepted_indices = set(accepted)
    for (index, number), copies in _copies(state).items():
        if not any(c.node == node_name for c in copies):
            continue
        key = f"{index}[{number}]"
        if len(copies) == 1:
            if index in accepted_indices:
                continue
            return Verdict.refuse(
                "elasticsearch.zero-replicas",
                f"{key} has no replica (index {index} has 0 replicas): it is unavailable while {node_name} "
                "restarts, and waiting cannot change that; add a replica or accept it with "
                f"--accept-unavailable-index {index}",
            )
        shared = sorted(c.node for c in copies if c.node in down)
        if shared:
            return Verdict.wait(
                "elasticsearch.shared-shard",
                f"{key}: {_unavailable_text(shared[:1], why)} also holds a copy of it, like {node_name}; two nodes "
                "holding copies of one shard never go down together",
            )
        started_elsewhere = [
            c
            for c in copies
            if c.node not in (None, node_name) and c.node not in down and c.state is ShardState.STARTED
        ]
        if not started_elsewhere and index not in accepted_indices:
            states = ", ".join(f"{c.state} on {c.node or 'no node'}" for c in copies if c.node != node_name)
            return Verdict.wait(
                "elasticsearch.started-copy-elsewhere",
                f"{key}: {node_name} holds a copy and no other copy is STARTED on an available node ({states}); "
                "restarting it would make that shard unavailable",
            )
    if node.tier:
        tier = [n.name for n in state.nodes if n.tier == node.tier]
        if len(tier) > 1 and all(n in down or n == node_name for n in tier):
            return Verdict.wait(
                "elasticsearch.tier-member-left",
                f"restarting {node_name} would take down every {node.tier} node ({', '.join(tier)})",
            )
    if node.master_eligible:
        masters = [n for n in state.nodes if n.master_eligible]
        busy = [n.name for n in masters if n.name in down]
        if busy:
            return Verdict.wait(
                "elasticsearch.one-master-at-a-time",
                f"master-eligible {_unavailable_text(busy, why)} is unavailable; {node_name} waits (one master at a "
                "time)",
            )
        up = [n for n in masters if n.joined and n.name != node_name]
        needed = len(masters) // 2 + 1
        if len(masters) - 1 >= needed and len(up) < needed:  # 1 or 2 masters cannot keep one: the plan warned
            return Verdict.wait(
                "elasticsearch.master-quorum",
                f"restarting {node_name} would leave {len(up)} of {len(masters)} master-eligible nodes (a majority "
                f"is {needed})",
            )
    return Verdict.passed("elasticsearch.can-restart", f"node {node_name} can restart with every shard served")


def recovered(state: EsState, node_name: str, version: str) -> Verdict:
    rule = "elasticsearch.recovered"
    node = state.node(node_name)
    if node is None or not node.joined:
        return Verdict.wait(rule, f"node {node_name} has not rejoined the cluster yet")
    if node.version != version:
        return Verdict.wait(rule, f"node {node_name} runs {node.version}, not yet {version}")
    if state.allocation_enable not in (None, "all"):
        return Verdict.wait(
            "elasticsearch.allocation-restored",
            f"cluster.routing.allocation.enable is {state.allocation_enable!r}, not yet reset",
        )
    if any(r.node == node_name for r in state.shutdowns):
        return Verdict.wait("elasticsearch.shutdown-removed", f"a shutdown record for {node_name} remains")
    moving = [s for s in state.shards if s.state in (ShardState.INITIALIZING, ShardState.RELOCATING)]
    if state.health is Health.GREEN and not moving:
        return Verdict.passed(rule, f"node {node_name} rejoined on {version}; cluster green")
    if (
        state.health is Health.YELLOW
        and not moving
        and not any(s.primary and s.state not in ACTIVE for s in state.shards)
    ):
        return Verdict.passed(rule, f"node {node_name} rejoined on {version}; cluster yellow, nothing moving")
    moving_text = ", ".join(f"{s.key} {s.state}" for s in moving[:3]) or "replicas unassigned"
    return Verdict.wait("elasticsearch.recovering", f"cluster is {state.health} while shards recover: {moving_text}")


def snapshot_warning(state: EsState) -> Verdict | None:
    if state.snapshot_repositories:
        return None
    return Verdict.wait(
        "elasticsearch.snapshot-repository",
        "no snapshot repository is registered: take a snapshot before a major upgrade (a rollback after a new "
        "node joined is only possible by restoring one)",
    )
