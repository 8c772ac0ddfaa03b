"""The planner: (observed state, wanted versions, settings) -> an ordered `Plan`, or a refusal. Pure.

Because the plan is derived from OBSERVED state alone (each member's revision and version against the target),
running the planner again after a crash yields exactly the work that remains: finished members are never planned
again, and what an interrupted step left behind (allocation still `primaries`, a shutdown record, a paused
Deployment) is planned first as a repair.

Order
- Components in the catalog's upgrade order (kafka, elasticsearch, workers); a component's steps all come before the
  next component's.
- Kafka: the spec changes first (StatefulSets use OnDelete, so nothing restarts); then unready nodes (they serve
  nothing), then controllers with the active controller last, then brokers (in batches that share no partition under
  `--parallel auto`; controllers are never batched), then combined nodes with the active controller last; then,
  only when asked, metadata.version is raised.
- Elasticsearch: the spec first; unready nodes; then data tiers frozen, cold, warm, hot; other non-master nodes;
  master-eligible nodes with the elected master last; one node at a time.
- Workers: each Deployment rolls through its own strategy (maxUnavailable 0), gated on readiness and lag.

Steps with the same component and phase may be taken in any order: when the first cannot roll yet, the executor
re-checks it later and takes another (the Strimzi re-queue), so one slow member never blocks its peers' progress.
"""

from __future__ import annotations

from dataclasses import replace

from toolkit.catalog import Catalog, parse_version
from toolkit.engine import paths
from toolkit.engine.gates import elasticsearch as es_gates
from toolkit.engine.gates import kafka as kafka_gates
from toolkit.engine.gates import workers as worker_gates
from toolkit.model import (
    Component,
    KafkaNode,
    KafkaRole,
    Plan,
    PlatformState,
    Pod,
    Step,
    StepKind,
    UpgradeSettings,
    Verdict,
    Workload,
    first_blocking,
)

TIER_ORDER = {"frozen": 0, "cold": 1, "warm": 2, "hot": 3}


def _stale_pods(workloads: tuple[Workload, ...], version: str) -> list[tuple[Workload, Pod]]:
    out = []
    for w in workloads:
        for p in w.pods:
            if p.terminating:
                continue  # already going down: its controller brings it back; never delete it twice
            spec_current = w.target_version == version
            if p.version != version or (spec_current and p.revision != w.update_revision):
                out.append((w, p))
    return out


def repairs(state: PlatformState) -> list[Step]:
    """What an interrupted run may have left behind, to be undone before anything else moves."""
    steps: list[Step] = []
    es = state.elasticsearch
    restarting_nodes = {n.name for n in es.nodes if not n.joined}
    if es.allocation_enable not in (None, "all"):
        steps.append(
            Step(
                StepKind.REPAIR,
                Component.ELASTICSEARCH,
                ("cluster",),
                "",
                f"cluster.routing.allocation.enable is {es.allocation_enable!r}, left by an interrupted restart; "
                "reset it to the default so replicas allocate again",
                detail="allocation",
            )
        )
    for record in es.shutdowns:
        if record.node not in restarting_nodes and es.node(record.node) is not None:
            steps.append(
                Step(
                    StepKind.REPAIR,
                    Component.ELASTICSEARCH,
                    (record.node,),
                    "",
                    f"node {record.node} has rejoined but its shutdown record ({record.type}, {record.status}) "
                    "remains; remove it",
                    detail=f"shutdown:{record.node}",
                )
            )
    for w in state.workloads_of(Component.WORKERS):
        if w.paused:
            steps.append(
                Step(
                    StepKind.REPAIR,
                    Component.WORKERS,
                    (w.name,),
                    "",
                    f"deployment {w.name} is paused, left by an interrupted lag gate; resume it",
                    detail=f"unpause:{w.name}",
                )
            )
    return steps


def _kafka_steps(state: PlatformState, version: str, settings: UpgradeSettings) -> list[Step]:
    stale = _stale_pods(state.workloads_of(Component.KAFKA), version)
    by_pod = {n.pod: n for n in state.kafka.nodes}
    active = state.kafka.active_controller
    unready: list[KafkaNode] = []
    controllers: list[KafkaNode] = []
    brokers: list[KafkaNode] = []
    combined: list[KafkaNode] = []
    for _w, pod in stale:
        node = by_pod.get(pod.name)
        if node is None:
            continue  # a pod the cluster does not list yet; observed again next round
        if not pod.ready:
            unready.append(node)
        elif node.role is KafkaRole.CONTROLLER:
            controllers.append(node)
        elif node.role is KafkaRole.BROKER:
            brokers.append(node)
        else:
            combined.append(node)
    steps: list[Step] = []

    def single(node: KafkaNode, phase: int, reason: str) -> Step:
        return Step(StepKind.RESTART, Component.KAFKA, (node.pod,), version, reason, phase=phase)

    for n in sorted(unready, key=lambda n: n.id):
        steps.append(single(n, 0, f"{n.role} {n.id} is not ready: it serves nothing, so it restarts first"))
    by_active_last = lambda n: (n.id == active, n.id)  # noqa: E731
    for n in sorted(controllers, key=by_active_last):
        why = (
            f"controller {n.id} is the active controller: it restarts last among controllers"
            if n.id == active
            else f"controller {n.id}: controllers restart before brokers"
        )
        steps.append(single(n, 2 if n.id == active else 1, why))
    ordered = sorted(brokers, key=lambda n: n.id)
    if settings.parallel == "auto":
        for batch in _broker_batches(state, ordered, settings.max_batch):
            pods = tuple(n.pod for n in batch)
            racks = sorted({n.rack for n in batch if n.rack})
            if len(batch) == 1:
                reason = f"broker {batch[0].id} ({batch[0].rack or 'no rack'}): brokers restart after controllers"
            else:
                reason = (
                    f"brokers {', '.join(str(n.id) for n in batch)} share no partition"
                    f"{' (rack ' + ', '.join(racks) + ')' if racks else ''}: they restart together"
                )
            steps.append(Step(StepKind.RESTART, Component.KAFKA, pods, version, reason, phase=3))
    else:
        for n in ordered:
            steps.append(single(n, 3, f"broker {n.id} ({n.rack or 'no rack'}): brokers restart after controllers"))
    for n in sorted(combined, key=by_active_last):
        why = (
            f"combined node {n.id} is the active controller: it restarts last"
            if n.id == active
            else f"combined node {n.id}: one at a time, the active controller last"
        )
        steps.append(single(n, 5 if n.id == active else 4, why))
    return steps


def _broker_batches(state: PlatformState, brokers: list[KafkaNode], cap: int) -> list[list[KafkaNode]]:
    """Greedy batches of brokers that pairwise share no partition and pass the availability gate together."""
    replicas_of: dict[int, set[tuple[str, int]]] = {n.id: set() for n in brokers}
    for p in state.kafka.partitions:
        for b in p.replicas:
            if b in replicas_of:
                replicas_of[b].add((p.topic, p.partition))
    left = list(brokers)
    batches: list[list[KafkaNode]] = []
    while left:
        batch = [left.pop(0)]
        held = set(replicas_of[batch[0].id])
        for n in list(left):
            if cap and len(batch) >= cap:
                break
            if replicas_of[n.id] & held:
                continue
            batch.append(n)
            held |= replicas_of[n.id]
            left.remove(n)
        batches.append(batch)
    return batches


def _es_steps(state: PlatformState, version: str) -> list[Step]:
    stale = _stale_pods(state.workloads_of(Component.ELASTICSEARCH), version)
    es = state.elasticsearch
    steps: list[Step] = []

    def rank(item: tuple[Workload, Pod]) -> tuple[int, int, str]:
        w, pod = item
        node = es.node(pod.name)
        if not pod.ready:
            return (0, 0, pod.name)
        if node is not None and node.master_eligible:
            return (6 if node.name == es.elected_master else 5, 0, pod.name)
        tier = node.tier if node is not None else w.tier
        return (1, TIER_ORDER.get(tier, 4), pod.name)

    for item in sorted(stale, key=rank):
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
        steps.append(
            Step(
                StepKind.RESTART,
                Component.ELASTICSEARCH,
                (pod.name,),
                version,
                why,
                phase=phase * 10 + tier_rank,
            )
        )
    return steps


def _worker_steps(state: PlatformState, version: str) -> list[Step]:
    steps = []
    for w in state.workloads_of(Component.WORKERS):
        if w.target_version != version or _stale_pods((w,), version):
            steps.append(
                Step(
                    StepKind.ROLL,
                    Component.WORKERS,
                    (w.name,),
                    version,
                    f"deployment {w.name} rolls through its strategy (maxSurge {w.max_surge}, maxUnavailable 0); "
                    "each batch must bring consumer lag back under the bound",
                )
            )
    return steps


def plan(
    state: PlatformState,
    targets: dict[Component, str],
    settings: UpgradeSettings,
    catalog: Catalog,
) -> Plan:
    steps: list[Step] = list(repairs(state))
    refusals: list[Verdict] = []
    warnings: list[Verdict] = []
    notes: list[str] = []
    order = [Component(c) for c in catalog.upgrade_order if Component(c) in targets]
    for component in order:
        version = targets[component]
        workloads = state.workloads_of(component)
        if not workloads:
            refusals.append(
                Verdict.refuse(
                    f"{component}.installed",
                    f"{component} is not installed in environment {state.environment}; "
                    f"install it with `toolkit deploy --env {state.environment}` first",
                )
            )
            continue
        running = paths.running_versions(state, component)
        mv = state.kafka.metadata_version if component is Component.KAFKA else ""
        if settings.rollback:
            verdict = paths.check_rollback(catalog, component, state, version)
        else:
            verdict = paths.check_upgrade_path(catalog, component, running, version, mv)
        if not verdict.ok:
            refusals.append(verdict)
            continue
        if component is Component.WORKERS:
            for w in workloads:
                safe = worker_gates.strategy_safe(w)
                if not safe.ok:
                    refusals.append(safe)
            steps.extend(_worker_steps(state, version))
            continue
        stale_spec = tuple(w.name for w in workloads if w.target_version != version)
        if stale_spec:
            steps.append(
                Step(
                    StepKind.APPLY_SPEC,
                    component,
                    stale_spec,
                    version,
                    f"{', '.join(stale_spec)} ask for {version} first; with the OnDelete strategy no pod restarts "
                    "until the engine restarts it",
                )
            )
        if component is Component.KAFKA:
            warnings.extend(kafka_gates.warnings(state.kafka))
            steps.extend(_kafka_steps(state, version, settings))
            target_mv = catalog.component("kafka").versions[version].metadata_version or ""
            current_mv = state.kafka.metadata_version
            if target_mv and current_mv and paths.metadata_level(current_mv) < paths.metadata_level(target_mv):
                if settings.finalize:
                    steps.append(
                        Step(
                            StepKind.FINALIZE,
                            component,
                            ("metadata.version",),
                            version,
                            f"every node runs {version}: raise metadata.version {current_mv} -> {target_mv}; "
                            "after this a binary rollback is no longer possible",
                            detail=target_mv,
                        )
                    )
                else:
                    notes.append(
                        f"metadata.version stays at {current_mv} so that a rollback to the previous kafka binary "
                        f"stays possible; raise it to {target_mv} later with --finalize"
                    )
        else:
            warning = es_gates.snapshot_warning(state.elasticsearch)
            if warning is not None and _is_major_or_minor(running, version):
                warnings.append(warning)
            steps.extend(_es_steps(state, version))
    steps = _annotate_blocks(state, steps, settings)
    return Plan(
        environment=state.environment,
        simulated=state.simulated,
        targets=tuple((c.value, targets[c]) for c in order),
        steps=tuple(steps),
        refusals=tuple(refusals),
        warnings=tuple(warnings),
        notes=tuple(notes),
    )


def _is_major_or_minor(running: list[str], target: str) -> bool:
    if not running:
        return False
    low, t = parse_version(running[0]), parse_version(target)
    return (t[0], t[1]) != (low[0], low[1])


def _annotate_blocks(state: PlatformState, steps: list[Step], settings: UpgradeSettings) -> list[Step]:
    """Say, for every restart and roll, what would stop it if it were taken now (as observed, with its own batch
    going down): blocks are visible before the run, not discovered during it."""
    out: list[Step] = []
    for step in steps:
        if step.kind in (StepKind.RESTART, StepKind.ROLL):
            blocked = first_blocking(step_gates(state, step, settings))
            if blocked is not None:
                step = replace(step, blocked=blocked)
        out.append(step)
    return out


def kafka_node_of(state: PlatformState, pod: str) -> KafkaNode | None:
    return next((n for n in state.kafka.nodes if n.pod == pod), None)


def step_gates(state: PlatformState, step: Step, settings: UpgradeSettings) -> list[Verdict]:
    """Every gate that must pass before `step` acts. Pure."""
    if settings.skip_gates or step.kind in (StepKind.REPAIR, StepKind.APPLY_SPEC):
        return []
    if step.kind is StepKind.RESTART and step.component is Component.KAFKA:
        nodes = [kafka_node_of(state, pod) for pod in step.members]
        ids = [n.id for n in nodes if n is not None]
        verdicts: list[Verdict] = []
        batch_pods = set(step.members)
        silent = [n for n in state.kafka.nodes if not n.reachable and n.pod not in batch_pods]
        if silent:
            verdicts.append(
                Verdict.wait(
                    "kafka.all-nodes-answer",
                    f"kafka node {silent[0].id} ({silent[0].pod}) does not answer; no other node restarts until "
                    "it does (a restarted node that stays unready stops the roll)",
                )
            )
        if not any(p.version == step.version for w in state.workloads_of(Component.KAFKA) for p in w.pods):
            # before the first restart of this upgrade the cluster must be healthy, except for what the members of
            # this step cause themselves (an unready member restarts first precisely because it serves nothing)
            batch = set(ids)
            view = replace(
                state.kafka,
                partitions=tuple(
                    p for p in state.kafka.partitions if not (p.isr and set(p.replicas) - set(p.isr) <= batch)
                ),
            )
            verdicts.extend(v for v in kafka_gates.preflight(view) if v.rule != "kafka.all-nodes-answer")
        for node_id in ids:
            verdicts.append(kafka_gates.can_restart(state.kafka, node_id, ids))
        return verdicts
    if step.kind is StepKind.RESTART and step.component is Component.ELASTICSEARCH:
        return [
            es_gates.can_restart(state.elasticsearch, pod, step.members, settings.es_max_unavailable)
            for pod in step.members
        ]
    if step.kind is StepKind.ROLL:
        w = next((w for w in state.workloads if w.name == step.members[0]), None)
        if w is None:
            return [Verdict.refuse("workers.deployment-known", f"deployment {step.members[0]} is not observed")]
        return [worker_gates.strategy_safe(w), worker_gates.ready_at_desired(w)]
    if step.kind is StepKind.FINALIZE:
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


def step_done(state: PlatformState, step: Step, settings: UpgradeSettings) -> Verdict:
    """Has the state the step promised been reached? Pure."""
    if step.kind is StepKind.RESTART and step.component is Component.KAFKA:
        for pod in step.members:
            node = kafka_node_of(state, pod)
            if node is None:
                return Verdict.wait("kafka.recovered", f"kafka pod {pod} is not listed by the cluster yet")
            v = kafka_gates.recovered(state.kafka, node.id, step.version)
            if not v.ok:
                return v
            p = state.pod(pod)
            if p is None or not p.ready:
                return Verdict.wait("kafka.pod-ready", f"pod {pod} is not Ready")
        return Verdict.passed("kafka.recovered", f"{', '.join(step.members)} recovered on {step.version}")
    if step.kind is StepKind.RESTART and step.component is Component.ELASTICSEARCH:
        for pod in step.members:
            v = es_gates.recovered(state.elasticsearch, pod, step.version)
            if not v.ok:
                return v
        return Verdict.passed("elasticsearch.recovered", f"{', '.join(step.members)} recovered on {step.version}")
    if step.kind is StepKind.APPLY_SPEC:
        behind = [
            w.name
            for w in state.workloads_of(step.component)
            if w.name in step.members and w.target_version != step.version
        ]
        if behind:
            return Verdict.wait("spec.applied", f"{', '.join(behind)} do not ask for {step.version} yet")
        return Verdict.passed("spec.applied", f"{', '.join(step.members)} ask for {step.version}")
    if step.kind is StepKind.ROLL:
        w = next((w for w in state.workloads if w.name == step.members[0]), None)
        if w is None:
            return Verdict.wait("workers.rolled", f"deployment {step.members[0]} is not observed")
        v = worker_gates.rolled(w, step.version)
        if not v.ok:
            return v
        return worker_gates.lag_under_bound(state.workers, settings.lag_bound)
    if step.kind is StepKind.FINALIZE:
        if state.kafka.metadata_version == step.detail:
            return Verdict.passed("kafka.finalized", f"metadata.version is {step.detail}")
        return Verdict.wait("kafka.finalized", f"metadata.version is {state.kafka.metadata_version}, not {step.detail}")
    if step.kind is StepKind.REPAIR:
        es = state.elasticsearch
        if step.detail == "allocation":
            ok = es.allocation_enable in (None, "all")
            return (
                Verdict.passed("repair.allocation", "allocation is back to the default")
                if ok
                else Verdict.wait("repair.allocation", f"allocation is still {es.allocation_enable!r}")
            )
        if step.detail.startswith("shutdown:"):
            node_name = step.detail.split(":", 1)[1]
            left = any(r.node == node_name for r in es.shutdowns)
            return (
                Verdict.wait("repair.shutdown", f"shutdown record for {node_name} remains")
                if left
                else Verdict.passed("repair.shutdown", f"shutdown record for {node_name} removed")
            )
        if step.detail.startswith("unpause:"):
            name = step.detail.split(":", 1)[1]
            w = next((w for w in state.workloads if w.name == name), None)
            if w is not None and w.paused:
                return Verdict.wait("repair.unpause", f"deployment {name} is still paused")
            return Verdict.passed("repair.unpause", f"deployment {name} is not paused")
    return Verdict.passed("step.done", "nothing to wait for")
