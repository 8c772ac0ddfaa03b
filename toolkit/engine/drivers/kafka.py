"""The Kafka (KRaft) driver: Strimzi's KafkaRoller rules, as steps, gates and how each step is performed.

Order (upgrade-gates.md; Strimzi's KafkaRoller)
1. The StatefulSets' spec changes first (OnDelete: nothing restarts until the engine restarts a pod).
2. Unready nodes first (they serve nothing).
3. Every node with the controller role, controller-only and combined (controller-only first), one at a time, the
   active controller last among them.
4. Broker-only nodes: one at a time, or with `--parallel auto` one rack at a time: on Kafka's rack-aware placement
   no two brokers of one rack share a partition, so there are as many batches as racks; a rack whose brokers do
   share partitions (RF above the number of racks, a hand-made assignment) is split greedily into batches that
   share none; `--max-batch` caps a batch. Controllers are never batched.
5. Only when asked (`--finalize`), metadata.version is raised once every node runs the new version; until then a
   binary rollback stays possible, and the plan says so.
Steps of one phase may be taken in any order: a node that cannot roll yet goes back in the queue (re-checked, never
skipped) while a peer of the same phase goes first.

Gates before a restart (pure, in `toolkit.engine.gates.kafka`), the same before and after the first restart: a
controller-only node by the quorum check alone; a node with the broker role by every other node answering, the
partition health (no offline, under-min-ISR or under-replicated partition except what the step's own members
cause) and Strimzi's availability rule; a combined node by both; never a node in log recovery. A restart is done
when every member runs the new version, is RUNNING, back in every ISR (and, for a controller, caught up in the
quorum) and its pod is Ready, for the confirmation window; preferred leaders are then elected again.

The data-plane port (`KafkaPort`) offers preferred-leader election and the metadata.version bump.
"""

from __future__ import annotations

from typing import Protocol

from toolkit.catalog import Catalog
from toolkit.engine import paths
from toolkit.engine.drivers.base import (
    ComponentPlan,
    StepContext,
    apply_spec_step,
    perform_apply_spec,
    recover_steps,
    restart_unsafe,
    spec_applied,
    stale_pods,
)
from toolkit.engine.gates import kafka as gates
from toolkit.model import (
    Component,
    KafkaNode,
    KafkaRole,
    PlatformState,
    Step,
    StepKind,
    UpgradeSettings,
    Verdict,
)

NAME = Component.KAFKA.value


class KafkaPort(Protocol):
    def elect_preferred_leaders(self) -> None: ...

    def finalize_metadata_version(self, metadata_version: str) -> None: ...


def node_of(state: PlatformState, pod: str) -> KafkaNode | None:
    return next((n for n in state.kafka.nodes if n.pod == pod), None)


class KafkaDriver:
    name = NAME

    # ------------------------------------------------------------------ planning

    def plan(self, state: PlatformState, version: str, settings: UpgradeSettings, catalog: Catalog) -> ComponentPlan:
        out = ComponentPlan(warnings=gates.warnings(state.kafka))
        workloads = state.workloads_of(NAME)
        out.steps.extend(recover_steps(NAME, workloads, version))
        apply = apply_spec_step(NAME, workloads, version)
        if apply is not None:
            out.steps.append(apply)
        out.steps.extend(self._restarts(state, version, settings))
        target_mv = catalog.component(NAME).versions[version].metadata_version or ""
        current_mv = state.kafka.metadata_version
        if target_mv and current_mv and paths.metadata_level(current_mv) < paths.metadata_level(target_mv):
            if settings.finalize:
                out.steps.append(
                    Step(
                        StepKind.FINALIZE,
                        NAME,
                        ("metadata.version",),
                        version,
                        f"every node runs {version}: raise metadata.version {current_mv} -> {target_mv}; after this "
                        "a binary rollback is no longer possible",
                        detail=target_mv,
                    )
                )
            else:
                out.notes.append(
                    f"metadata.version stays at {current_mv} so that a rollback to the previous kafka binary stays "
                    f"possible; raise it to {target_mv} later with --finalize"
                )
        return out

    def _restarts(self, state: PlatformState, version: str, settings: UpgradeSettings) -> list[Step]:
        by_pod = {n.pod: n for n in state.kafka.nodes}
        active = state.kafka.active_controller
        unready: list[KafkaNode] = []
        unknown: list[str] = []
        controller_role: list[KafkaNode] = []
        brokers: list[KafkaNode] = []
        for _w, pod in stale_pods(state.workloads_of(NAME), version):
            node = by_pod.get(pod.name)
            if node is None:
                unknown.append(pod.name)
            elif not pod.ready:
                unready.append(node)
            elif node.is_controller:
                controller_role.append(node)
            else:
                brokers.append(node)
        steps: list[Step] = []

        def single(pod: str, phase: int, reason: str) -> Step:
            return Step(StepKind.RESTART, NAME, (pod,), version, reason, phase=phase)

        for name in sorted(unknown):
            # never assume a member is done because the data plane does not list it: plan it, and its gate waits
            steps.append(single(name, 0, f"pod {name} is not listed by the kafka cluster; it restarts once it is"))
        for n in sorted(unready, key=lambda n: n.id):
            steps.append(single(n.pod, 0, f"{n.role} {n.id} is not ready: it serves nothing, so it restarts first"))

        def controllers_first(n: KafkaNode) -> tuple[bool, bool, int]:
            return (n.id == active, n.role is KafkaRole.COMBINED, n.id)

        for n in sorted(controller_role, key=controllers_first):
            what = "controller" if n.role is KafkaRole.CONTROLLER else "combined node"
            if n.id == active:
                why = f"{what} {n.id} is the active controller: it restarts last among the controller-role nodes"
            else:
                why = f"{what} {n.id}: nodes with the controller role restart before broker-only nodes, one at a time"
            steps.append(single(n.pod, 2 if n.id == active else 1, why))
        ordered = sorted(brokers, key=lambda n: n.id)
        if settings.parallel == "auto":
            for batch in broker_batches(state, ordered, settings.max_batch):
                rack = batch[0].rack or "no rack"
                if len(batch) == 1:
                    reason = f"broker {batch[0].id} ({rack}): broker-only nodes restart after the controller-role nodes"
                else:
                    reason = (
                        f"rack {rack}: brokers {', '.join(str(n.id) for n in batch)} share no partition, so they "
                        "restart together (one rack at a time)"
                    )
                steps.append(Step(StepKind.RESTART, NAME, tuple(n.pod for n in batch), version, reason, phase=3))
        else:
            for n in ordered:
                why = (
                    f"broker {n.id} ({n.rack or 'no rack'}): broker-only nodes restart after the controller-role nodes"
                )
                steps.append(single(n.pod, 3, why))
        return steps

    def repairs(self, state: PlatformState) -> list[Step]:
        return []

    # ------------------------------------------------------------------ gates

    def gates(self, state: PlatformState, step: Step, settings: UpgradeSettings) -> list[Verdict]:
        if step.kind == StepKind.RESTART:
            return self._restart_gates(state, step)
        if step.kind == StepKind.FINALIZE:
            behind = [n for n in state.kafka.nodes if n.version != step.version]
            if behind:
                return [
                    Verdict.wait(
                        "kafka.all-on-version",
                        f"kafka node {behind[0].id} runs {behind[0].version}: metadata.version is raised only when "
                        f"every node runs {step.version}",
                    )
                ]
            return [Verdict.passed("kafka.all-on-version", f"every kafka node runs {step.version}")]
        return []

    def _restart_gates(self, state: PlatformState, step: Step) -> list[Verdict]:
        verdicts: list[Verdict] = []
        members = [(pod, node_of(state, pod)) for pod in step.members]
        for pod, node in members:
            if node is None:
                verdicts.append(
                    Verdict.wait(
                        "kafka.node-known",
                        f"pod {pod} is not listed by the kafka cluster (DescribeCluster / DescribeQuorum): its state "
                        "cannot be judged yet",
                    )
                )
        nodes = [n for _pod, n in members if n is not None]
        ids = [n.id for n in nodes]
        if any(n.is_broker for n in nodes):
            # a step with a broker-role member: the cluster-wide checks, the same before and after the first restart;
            # a controller-only step is gated by the quorum check alone
            verdicts.append(gates.nodes_answer(state.kafka, ids))
            verdicts.extend(gates.partition_health(state.kafka, ids))
        for node_id in ids:
            verdicts.append(gates.can_restart(state.kafka, node_id, ids))
        return verdicts

    # ------------------------------------------------------------------ done

    def done(self, state: PlatformState, step: Step, settings: UpgradeSettings) -> Verdict:
        if step.kind == StepKind.APPLY_SPEC:
            return spec_applied(state, step)
        if step.kind == StepKind.FINALIZE:
            if state.kafka.metadata_version == step.detail:
                return Verdict.passed("kafka.finalized", f"metadata.version is {step.detail}")
            return Verdict.wait(
                "kafka.finalized", f"metadata.version is {state.kafka.metadata_version}, not {step.detail}"
            )
        for pod in step.members:
            node = node_of(state, pod)
            if node is None:
                return Verdict.wait("kafka.recovered", f"kafka pod {pod} is not listed by the cluster yet")
            v = gates.recovered(state.kafka, node.id, step.version)
            if not v.ok:
                return v
            p = state.pod(pod)
            if p is None or not p.ready:
                return Verdict.wait("kafka.pod-ready", f"pod {pod} is not Ready")
        return Verdict.passed("kafka.recovered", f"{', '.join(step.members)} recovered on {step.version}")

    # ------------------------------------------------------------------ acting

    def perform(self, step: Step, ctx: StepContext) -> None:
        port: KafkaPort = ctx.target.data_plane(NAME)
        if step.kind == StepKind.APPLY_SPEC:
            perform_apply_spec(step, ctx)
        elif step.kind == StepKind.FINALIZE:
            ctx.act(f"raise metadata.version to {step.detail}", lambda: port.finalize_metadata_version(step.detail))
            ctx.wait_done(confirm=False)
        elif step.kind == StepKind.RECOVER:
            ctx.wait_done(confirm=True, retry_members=True)
        elif ctx.settings.skip_gates:
            restart_unsafe(step, ctx, list(step.members))
        else:
            for pod in step.members:
                ctx.restart(pod)
            ctx.wait_done(confirm=True, retry_members=True)
            ctx.act("elect preferred leaders", port.elect_preferred_leaders)

    # ------------------------------------------------------------------ versions

    def running_versions(self, state: PlatformState) -> set[str]:
        return {n.version for n in state.kafka.nodes if n.version}

    def path_rules(self, catalog: Catalog, state: PlatformState, running: list[str], target: str) -> Verdict | None:
        spec = catalog.component(NAME)
        target_major = int(target.split(".")[0])
        for v in running:
            info = spec.versions.get(v)
            if info is not None and not info.kraft and target_major >= 4:
                return Verdict.refuse(
                    f"{NAME}.version-path",
                    f"kafka {v} runs ZooKeeper mode; kafka {target} runs KRaft only: migrate to KRaft on 3.x first",
                )
        target_mv = spec.versions[target].metadata_version
        current = state.kafka.metadata_version
        if current and target_mv and paths.metadata_level(target_mv) < paths.metadata_level(current):
            return Verdict.refuse(
                "kafka.metadata-version",
                f"kafka {target} supports metadata.version up to {target_mv}, but {current} is finalized and cannot "
                "be lowered; choose a version that supports it",
            )
        return None

    def rollback_rules(self, catalog: Catalog, state: PlatformState, previous: str) -> Verdict:
        rule = f"{NAME}.rollback"
        mv = state.kafka.metadata_version
        old_mv = catalog.component(NAME).versions[previous].metadata_version
        if mv and old_mv and paths.metadata_level(mv) > paths.metadata_level(old_mv):
            return Verdict.refuse(
                rule,
                f"metadata.version {mv} is finalized and kafka {previous} supports at most {old_mv}; metadata.version "
                "cannot be lowered, so a binary rollback is no longer possible: restore from a backup or roll forward",
            )
        return Verdict.passed(
            rule, f"metadata.version {mv or 'unknown'} is still supported by kafka {previous}: rollback allowed"
        )

    def observed(self, state: PlatformState) -> Verdict:
        if state.kafka.unobserved:
            return Verdict.refuse(f"{NAME}.observable", state.kafka.unobserved)
        return Verdict.passed(f"{NAME}.observable", f"kafka answers ({len(state.kafka.nodes)} nodes listed)")


def broker_batches(state: PlatformState, brokers: list[KafkaNode], cap: int) -> list[list[KafkaNode]]:
    """Rack first: the brokers of one rack form one batch when no two of them share a partition (always, on Kafka's
    rack-aware placement with RF <= racks), cut into chunks of `cap` (> 0) if given; otherwise the rack is split
    greedily into batches that pairwise share no partition. Brokers without a rack are batched the same way among
    themselves. Racks in name order, brokers by id. Cost: one pass over the partitions, plus the greedy split of a
    rack that needs one."""
    racks: dict[str, list[KafkaNode]] = {}
    for n in brokers:
        racks.setdefault(n.rack, []).append(n)
    replica_of = gates.index(state.kafka).replica_of
    crowded = {  # racks where two brokers replicate one partition ("": brokers without a rack, always checked)
        rack
        for rack, members in racks.items()
        if not rack
        or sum(len(replica_of.get(n.id, ())) for n in members)
        > len(set().union(*(replica_of.get(n.id, ()) for n in members)))
    }
    batches: list[list[KafkaNode]] = []
    for rack in sorted(racks):
        members = racks[rack]
        if rack not in crowded:
            step = cap or len(members)
            batches.extend(members[i : i + step] for i in range(0, len(members), step))
            continue
        held_by = {n.id: set(replica_of.get(n.id, ())) for n in members}
        rack_batches: list[tuple[list[KafkaNode], set[int]]] = []
        for n in members:
            home = next(
                (b for b in rack_batches if not (cap and len(b[0]) >= cap) and not (held_by[n.id] & b[1])),
                None,
            )
            if home is None:
                rack_batches.append(([n], set(held_by[n.id])))
            else:
                home[0].append(n)
                home[1].update(held_by[n.id])
        batches.extend(b for b, _held in rack_batches)
    return batches
