"""Elasticsearch gates: pure predicates over `PlatformState` (ECK's upgrade predicates and Elastic's guide).

Before a node restarts (`can_restart`):
- health green, or yellow with every primary started and no shard initializing or relocating;
- the node holds no shard copy that is the only STARTED copy (a primary whose replicas are not started);
- no node already restarting holds a copy of a shard this node also holds;
- not every member of a data tier at once; one master-eligible node at a time, and a majority of master-eligible
  nodes stays up;
- at most `max_unavailable` nodes down (default 1).

After the node rejoins (`recovered`): it is in _cat/nodes on the wanted version, allocation is back to the default,
no shutdown record remains for it, and health is green (or yellow with nothing initializing or relocating).

How to prepare a restart (`restart_method`): the node shutdown API (type=restart) from 7.15.2 where the server has
it; otherwise allocation `primaries` plus a flush. Either way the recovery resets what the preparation changed, and
the planner repairs it after an interrupted run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

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


def can_restart(state: EsState, node_name: str, restarting: Iterable[str] = (), max_unavailable: int = 1) -> Verdict:
    node = state.node(node_name)
    if node is None:
        return Verdict.refuse("elasticsearch.node-known", f"elasticsearch node {node_name} is not observed")
    others = set(restarting) - {node_name}
    down = {n.name for n in state.nodes if not n.joined} - {node_name}
    unavailable = others | down
    if len(unavailable) + 1 > max_unavailable:
        return Verdict.wait(
            "elasticsearch.max-unavailable",
            f"{len(unavailable)} node(s) already unavailable ({', '.join(sorted(unavailable))}); "
            f"max unavailable is {max_unavailable}",
        )
    verdict = health_allows_restart(state)
    if not verdict.ok:
        return verdict
    for (index, number), copies in _copies(state).items():
        here = [c for c in copies if c.node == node_name]
        if not here:
            continue
        started_elsewhere = [
            c for c in copies if c.node != node_name and c.state is ShardState.STARTED and c.node not in others
        ]
        if here[0].state is ShardState.STARTED and not started_elsewhere:
            kind = "primary" if here[0].primary else "copy"
            return Verdict.wait(
                "elasticsearch.only-started-copy",
                f"node {node_name} holds the {kind} of {index}[{number}] and no other copy is started; "
                "restarting it would make that shard unavailable",
            )
        shared = [c.node for c in copies if c.node in others]
        if shared:
            return Verdict.wait(
                "elasticsearch.shared-shard",
                f"node {shared[0]} (restarting) also holds a copy of {index}[{number}] like {node_name}",
            )
    if node.tier:
        tier = [n.name for n in state.nodes if n.tier == node.tier]
        if len(tier) > 1 and all(n in unavailable or n == node_name for n in tier):
            return Verdict.wait(
                "elasticsearch.tier-member-left",
                f"restarting {node_name} would take down every {node.tier} node ({', '.join(tier)})",
            )
    if node.master_eligible:
        masters = [n for n in state.nodes if n.master_eligible]
        if any(n.name in unavailable for n in masters):
            return Verdict.wait(
                "elasticsearch.one-master-at-a-time",
                f"another master-eligible node is unavailable; {node_name} waits (one master at a time)",
            )
        up = [n for n in masters if n.joined and n.name != node_name]
        if len(up) * 2 <= len(masters):
            return Verdict.wait(
                "elasticsearch.master-quorum",
                f"restarting {node_name} would leave {len(up)} of {len(masters)} master-eligible nodes",
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
