"""The Elasticsearch driver: ECK's upgrade predicates and Elastic's rolling-upgrade guide, as steps, gates and how
each restart is prepared, performed and recovered.

Order: the spec first (OnDelete); unready nodes; data tiers frozen, cold, warm, hot; other non-master nodes;
master-eligible nodes with the elected master last; one node at a time. Pods already terminating are not planned
(they are never restarted again); with the NotReady-while-joined ones they count against maxUnavailable
(`unavailable_pods`, ECK's accounting).

Refused up front: indices with 0 replicas whose shards sit on a node to restart (each shard is unavailable while its
node restarts, and no wait can change it), unless every one of them is accepted by name
(`--accept-unavailable-index`); warned: fewer than 3 master-eligible nodes.

A restart (`perform`): prepare (the node shutdown API, type=restart, from 7.15.2 where the server has it, waiting
for COMPLETE; otherwise allocation `primaries`), delete the pod, wait until the node rejoins on the new version,
undo the preparation, then wait for green (or yellow with nothing initializing or relocating) for the confirmation
window. A restart that halts or is stopped before the node rejoined undoes the preparation on its way out (an
interrupted run never leaves allocation restricted). Repairs undo what a crashed restart left behind (allocation
still restricted, a shutdown record of a node that rejoined), before anything else moves. Gates are in
`toolkit.engine.gates.elasticsearch`.

The data-plane port (`ElasticsearchPort`) prepares and finishes a node restart and carries out the repairs.
"""

from __future__ import annotations

from typing import Protocol

from toolkit.catalog import Catalog, parse_version
from toolkit.engine.drivers.base import (
    ComponentPlan,
    Halt,
    StepContext,
    apply_spec_step,
    perform_apply_spec,
    recover_steps,
    restart_unsafe,
    spec_applied,
    stale_pods,
)
from toolkit.engine.gates import elasticsearch as gates
from toolkit.model import Component, PlatformState, Pod, Step, StepKind, UpgradeSettings, Verdict, Workload

NAME = Component.ELASTICSEARCH.value
TIER_ORDER = {"frozen": 0, "cold": 1, "warm": 2, "hot": 3}


class ElasticsearchPort(Protocol):
    def prepare_restart(self, node: str, method: str) -> None: ...

    def shutdown_complete(self, node: str) -> bool: ...

    def finish_restart(self, node: str, method: str) -> None: ...

    def reset_allocation(self) -> None: ...

    def remove_shutdown(self, node: str) -> None: ...


class ElasticsearchDriver:
    name = NAME

    # ------------------------------------------------------------------ planning

    def plan(self, state: PlatformState, version: str, settings: UpgradeSettings, catalog: Catalog) -> ComponentPlan:
        out = ComponentPlan()
        running = sorted(
            {p.version for w in state.workloads_of(NAME) for p in w.pods if p.version} | self.running_versions(state),
            key=parse_version,
        )
        warning = gates.snapshot_warning(state.elasticsearch)
        if warning is not None and running and parse_version(running[0])[:2] != parse_version(version)[:2]:
            out.warnings.append(warning)
        out.steps.extend(recover_steps(NAME, state.workloads_of(NAME), version))
        apply = apply_spec_step(NAME, state.workloads_of(NAME), version)
        if apply is not None:
            out.steps.append(apply)
        restarts = self._restarts(state, version)
        out.steps.extend(restarts)
        self._plan_rules(state, {m for s in restarts for m in s.members}, settings, out)
        return out

    def _plan_rules(
        self, state: PlatformState, to_restart: set[str], settings: UpgradeSettings, out: ComponentPlan
    ) -> None:
        es = state.elasticsearch
        zero = gates.zero_replica_indices(es)
        affected = sorted({s.index for s in es.shards if s.index in zero and s.node in to_restart})
        accepted = set(settings.accept_unavailable_indices)
        refused = [i for i in affected if i not in accepted]
        if refused:
            out.refusals.append(
                Verdict.refuse(
                    "elasticsearch.zero-replicas",
                    f"indices with 0 replicas: {', '.join(refused)}: each of their shards is unavailable (searches "
                    "and writes to it fail) while the node holding it restarts, and no wait can change that. Add a "
                    'replica (PUT <index>/_settings {"index.number_of_replicas": 1}) or accept the unavailability '
                    f"explicitly: --accept-unavailable-index {','.join(refused)}",
                )
            )
        elif affected:
            out.warnings.append(
                Verdict.wait(
                    "elasticsearch.zero-replicas-accepted",
                    f"accepted: indices {', '.join(affected)} have 0 replicas and are unavailable while the node "
                    "holding each shard restarts",
                )
            )
        pointless = sorted(accepted - set(zero))
        if pointless:
            out.warnings.append(
                Verdict.wait(
                    "elasticsearch.accepted-index-has-replicas",
                    f"--accept-unavailable-index names {', '.join(pointless)}, which is not an index with 0 replicas "
                    "here: nothing to accept for it",
                )
            )
        masters = [n.name for n in es.nodes if n.master_eligible]
        if 0 < len(masters) <= 2 and set(masters) & to_restart:
            out.warnings.append(
                Verdict.wait(
                    "elasticsearch.small-master-quorum",
                    f"{len(masters)} master-eligible node(s) ({', '.join(masters)}): no order keeps a majority while "
                    "one of them restarts, so the cluster has no elected master meanwhile (writes are blocked); run "
                    "3 master-eligible nodes",
                )
            )

    def _restarts(self, state: PlatformState, version: str) -> list[Step]:
        es = state.elasticsearch

        def rank(item: tuple[Workload, Pod]) -> tuple[int, int, str]:
            w, pod = item
            node = es.node(pod.name)
            if not pod.ready:
                return (0, 0, pod.name)
            if node is not None and node.master_eligible:
                return (6 if node.name == es.elected_master else 5, 0, pod.name)
            tier = node.tier if node is not None else w.tier
            return (1, TIER_ORDER.get(tier, 4), pod.name)

        steps = []
        for item in sorted(stale_pods(state.workloads_of(NAME), version), key=rank):
            w, pod = item
            phase, tier_rank, _ = rank(item)
            node = es.node(pod.name)
            if phase == 0:
                why = f"node {pod.name} is not ready: it serves nothing, so it restarts first"
            elif phase == 6:
                why = f"node {pod.name} is the elected master: it restarts last"
            elif phase == 5:
                why = f"node {pod.name} is master-eligible: masters restart after data nodes, one at a time"
            else:
                tier = (node.tier if node else w.tier) or "non-tiered"
                why = f"node {pod.name} ({tier} tier): data tiers restart frozen, cold, warm, hot, before masters"
            steps.append(Step(StepKind.RESTART, NAME, (pod.name,), version, why, phase=phase * 10 + tier_rank))
        return steps

    def repairs(self, state: PlatformState) -> list[Step]:
        steps: list[Step] = []
        es = state.elasticsearch
        restarting = {n.name for n in es.nodes if not n.joined}
        if es.allocation_enable not in (None, "all"):
            steps.append(
                Step(
                    StepKind.REPAIR,
                    NAME,
                    ("cluster",),
                    "",
                    f"cluster.routing.allocation.enable is {es.allocation_enable!r}, left by an interrupted restart; "
                    "reset it to the default so replicas allocate again",
                    detail="allocation",
                )
            )
        for record in es.shutdowns:
            if record.node not in restarting and es.node(record.node) is not None:
                steps.append(
                    Step(
                        StepKind.REPAIR,
                        NAME,
                        (record.node,),
                        "",
                        f"node {record.node} has rejoined but its shutdown record ({record.type}, {record.status}) "
                        "remains; remove it",
                        detail=f"shutdown:{record.node}",
                    )
                )
        return steps

    # ------------------------------------------------------------------ gates and done

    def gates(self, state: PlatformState, step: Step, settings: UpgradeSettings) -> list[Verdict]:
        if step.kind != StepKind.RESTART:
            return []
        unavailable = unavailable_pods(state)
        return [
            gates.can_restart(
                state.elasticsearch,
                pod,
                step.members,
                settings.es_max_unavailable,
                unavailable,
                settings.accept_unavailable_indices,
            )
            for pod in step.members
        ]

    def done(self, state: PlatformState, step: Step, settings: UpgradeSettings) -> Verdict:
        es = state.elasticsearch
        if step.kind == StepKind.APPLY_SPEC:
            return spec_applied(state, step)
        if step.kind == StepKind.REPAIR:
            if step.detail == "allocation":
                if es.allocation_enable in (None, "all"):
                    return Verdict.passed("repair.allocation", "allocation is back to the default")
                return Verdict.wait("repair.allocation", f"allocation is still {es.allocation_enable!r}")
            node = step.detail.split(":", 1)[1]
            if any(r.node == node for r in es.shutdowns):
                return Verdict.wait("repair.shutdown", f"shutdown record for {node} remains")
            return Verdict.passed("repair.shutdown", f"shutdown record for {node} removed")
        for pod in step.members:
            v = gates.recovered(es, pod, step.version)
            if not v.ok:
                return v
        return Verdict.passed("elasticsearch.recovered", f"{', '.join(step.members)} recovered on {step.version}")

    # ------------------------------------------------------------------ acting

    def perform(self, step: Step, ctx: StepContext) -> None:
        port: ElasticsearchPort = ctx.target.data_plane(NAME)
        if step.kind == StepKind.APPLY_SPEC:
            perform_apply_spec(step, ctx)
        elif step.kind == StepKind.REPAIR:
            if step.detail == "allocation":
                ctx.act("reset allocation", port.reset_allocation)
            else:
                node = step.detail.split(":", 1)[1]
                ctx.act(f"remove shutdown record {node}", lambda: port.remove_shutdown(node))
            ctx.wait_done(confirm=False)
        elif step.kind == StepKind.RECOVER:
            ctx.wait_done(confirm=True, retry_members=True)
        elif ctx.settings.skip_gates:
            restart_unsafe(step, ctx, list(step.members))
        else:
            self._restart(step, ctx, port)

    def _restart(self, step: Step, ctx: StepContext, port: ElasticsearchPort) -> None:
        node = step.members[0]
        es_node = ctx.observe().elasticsearch.node(node)
        running = es_node.version if es_node is not None else step.version
        method = gates.restart_method(running, ctx.observe().elasticsearch)
        ctx.act(f"prepare {node} ({method})", lambda: port.prepare_restart(node, method))

        def rejoined(s: PlatformState) -> Verdict:
            n = s.elasticsearch.node(node)
            if n is not None and n.joined and n.version == step.version:
                return Verdict.passed("elasticsearch.rejoined", f"{node} rejoined on {step.version}")
            return Verdict.wait("elasticsearch.rejoined", f"{node} has not rejoined on {step.version} yet")

        try:
            if method == "shutdown-api":
                ctx.wait_for(
                    lambda _s: (
                        Verdict.passed("elasticsearch.shutdown-complete", f"{node} ready to restart")
                        if port.shutdown_complete(node)
                        else Verdict.wait("elasticsearch.shutdown-complete", f"shutdown of {node} not COMPLETE yet")
                    )
                )
            ctx.restart(node)
            ctx.wait_for(rejoined, retry_members=True)
        except Halt:
            # halted or stopped before the node came back: never leave allocation restricted or a shutdown record
            ctx.cleanup(f"undo the preparation of {node} ({method})", lambda: port.finish_restart(node, method))
            raise
        ctx.act(f"finish restart of {node} ({method})", lambda: port.finish_restart(node, method))
        ctx.wait_done(confirm=True)

    # ------------------------------------------------------------------ versions

    def running_versions(self, state: PlatformState) -> set[str]:
        return {n.version for n in state.elasticsearch.nodes if n.version and n.joined}

    def path_rules(self, catalog: Catalog, state: PlatformState, running: list[str], target: str) -> Verdict | None:
        return None  # majors through the last minors: the catalog's generic rules say it all

    def rollback_rules(self, catalog: Catalog, state: PlatformState, previous: str) -> Verdict:
        rule = f"{NAME}.rollback"
        newer = [
            n.name
            for n in state.elasticsearch.nodes
            if n.joined and n.version and parse_version(n.version) > parse_version(previous)
        ]
        if newer:
            return Verdict.refuse(
                rule,
                f"elasticsearch node {newer[0]} already joined on a newer version ({len(newer)} in all): replicas "
                f"cannot be allocated from newer to older nodes, so a node rolled back to {previous} would hold "
                "nothing; restore from a snapshot instead",
            )
        return Verdict.passed(rule, f"no elasticsearch node newer than {previous} has joined: rollback allowed")

    def observed(self, state: PlatformState) -> Verdict:
        if state.elasticsearch.unobserved:
            return Verdict.refuse(f"{NAME}.observable", state.elasticsearch.unobserved)
        return Verdict.passed(f"{NAME}.observable", f"elasticsearch answers ({len(state.elasticsearch.nodes)} nodes)")


def unavailable_pods(state: PlatformState) -> dict[str, str]:
    """Elasticsearch nodes out of service as their pods show it (ECK counts healthy pods, not joined nodes): a pod
    terminating, or NotReady while its node is still joined. (Nodes that left are read from the cluster itself.)"""
    out: dict[str, str] = {}
    for w in state.workloads_of(NAME):
        for pod in w.pods:
            node = state.elasticsearch.node(pod.name)
            if pod.terminating:
                out[pod.name] = "terminating"
            elif not pod.ready and node is not None and node.joined:
                out[pod.name] = "NotReady while joined"
    return out
