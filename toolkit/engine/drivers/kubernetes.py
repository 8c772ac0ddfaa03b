"""The Kubernetes driver: Kubernetes itself as a component. The control plane, the EKS add-ons and the nodes move
under the same data-plane gates as every other restart of the platform's pods.

Managed node groups, Karpenter and pulumi-eks replacements drain a node as fast as its PodDisruptionBudgets allow:
a PDB counts Ready pods, so the next broker goes while the last one is still catching up, and the next data node
while its shards are still recovering elsewhere. Here a node's pods leave it one at a time (or one batch of brokers
that share no partition), each only when a restart of that pod would be allowed, and the next goes only when the
last is back, caught up and confirmed.

Order (one component's steps, each planned from observed state, so a resumed run plans what is left)
1. `control-plane`: the control plane moves one minor (EKS: UpdateClusterVersion, waiting for ACTIVE); refused
   when it would leave a kubelet further behind than the skew policy allows, or go further than one minor.
2. `addon`: each EKS add-on whose version differs from the catalog's for the target minor (CoreDNS, kube-proxy,
   VPC CNI, EBS CSI driver); an add-on the catalog has no confirmed version for is left as it runs (a note says so).
3. `replace-node`: every node on another kubelet version (or an image its group no longer launches), in phases:
   nodes already cordoned (an interrupted replacement) and NotReady nodes first, then nodes without stateful
   platform pods, then the rest, the nodes carrying the active Kafka controller or the elected Elasticsearch master
   last. With `--parallel auto`, nodes of one phase form one step when the Kafka brokers on them share no partition
   and their Elasticsearch nodes no shard (greedily, within the room their groups have to surge, cut at
   `--max-batch`). A node that cannot go yet goes back in the queue; another goes first.

A `replace-node` step (`perform`)
1. Surge: a replacement from the node group of the node's role and zone that launches the target version (EKS:
   the Auto Scaling group of the new version's managed node group, desired capacity + 1), waited for until Ready,
   then claimed (label `toolkit.io/replaces=<old node>`). A node already claimed is reused, and a fresh unclaimed
   node of the right zone is adopted, so a resumed run never surges twice. A replacement that never becomes Ready
   halts the step: it is terminated again (capacity decremented), nothing was cordoned or evicted.
2. Cordon the old node.
3. Drain, through the Eviction API only (never a delete, never forced), unit by unit: pods of other namespaces
   (their own PDBs only), then each platform component's pods, stateless first. A platform pod goes exactly like a
   restart of it by its own driver (the same `perform`: Elasticsearch's shutdown preparation, Kafka's preferred
   leaders after), except that the pod goes by eviction: BEFORE EACH EVICTION its driver's restart gates and its
   PodDisruptionBudgets are asked again on a fresh observation; an eviction the API refuses (429) is noted and waited
   out; then the moved pod must be back, Ready, caught up (in every ISR, shards started, lag under the bound) and
   stay so for the confirmation window before the next unit. A pod already terminating or gone is never evicted
   again.
4. Terminate the old node through its group with a capacity decrement (deleting the Node object alone would leave
   the instance running), and wait until it is gone.
With `--unsafe-skip-gates` (the negative control) a node is drained as a managed node group does: cordon, evict
everything as fast as the PDBs allow, terminate, next node; nothing waits for a moved pod.

Gates (`toolkit.engine.gates.kubernetes`, plus each pod's own driver): the control plane runs the target first; a
replacement can be surged; no pod without a controller; the next unit to move passes its restart gates and PDBs.

The port (`KubernetesPort`) is the target's: sim (the simulated platform's nodes), local (the node agent's pool and
the real Eviction API), EKS (the EKS API for the control plane and add-ons, the Auto Scaling API for instances).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from toolkit.catalog import Catalog, parse_version
from toolkit.engine.drivers.base import ComponentDriver, ComponentPlan, Halt, StepContext, Stop
from toolkit.engine.gates import kafka as kafka_gates
from toolkit.engine.gates import kubernetes as gates
from toolkit.engine.ports import Clock, Target
from toolkit.model import (
    Component,
    KafkaRole,
    KubernetesState,
    Node,
    NodePod,
    PlatformState,
    Step,
    StepKind,
    UpgradeSettings,
    Verdict,
    first_blocking,
)

NAME = Component.KUBERNETES.value
UPDATE_LIMIT = 3600.0  # seconds a control-plane or add-on update may stay UPDATING before the run halts
KAFKA = Component.KAFKA.value
ELASTICSEARCH = Component.ELASTICSEARCH.value


class KubernetesPort(Protocol):
    def upgrade_control_plane(self, version: str) -> None:
        """Start moving the control plane to `version` (returns at once; it is ACTIVE again later)."""

    def update_addon(self, name: str, version: str) -> None: ...

    def surge(self, group: str, version: str) -> None:
        """Launch one more node in `group` (on `version` where the group launches any version)."""

    def claim(self, node: str, replaces: str) -> None:
        """Record on `node` that it replaces node `replaces` (label toolkit.io/replaces)."""

    def cordon(self, node: str) -> None: ...

    def evict(self, namespace: str, pod: str, uid: str) -> bool:
        """Evict exactly that pod through the Eviction API; False when a PodDisruptionBudget refused it (429). A
        pod already gone, or replaced by another of the same name, counts as evicted."""

    def terminate(self, node: str) -> None:
        """Terminate the node's instance through its group, decrementing the group's capacity."""


@dataclass(frozen=True)
class Unit:
    """Pods that leave their node(s) together: one pod, or the brokers of a batch (they share no partition)."""

    component: str  # "" for pods that belong to no platform component
    pods: tuple[NodePod, ...]
    version: str


class KubernetesDriver:
    name = NAME

    def __init__(self, peers: Mapping[str, ComponentDriver] | None = None) -> None:
        # the drivers of the components whose pods live on the nodes: a pod moves as a restart of it would
        self.peers: dict[str, ComponentDriver] = dict(peers or {})

    # ------------------------------------------------------------------ presence and versions

    def installed(self, state: PlatformState) -> bool:
        k = state.kubernetes
        return bool(k.nodes or k.control_plane_version or k.unobserved)

    def observed(self, state: PlatformState) -> Verdict:
        if state.kubernetes.unobserved:
            return Verdict.refuse(f"{NAME}.observable", state.kubernetes.unobserved)
        return Verdict.passed(f"{NAME}.observable", f"{len(state.kubernetes.nodes)} nodes observed")

    def running_versions(self, state: PlatformState) -> set[str]:
        k = state.kubernetes
        return {v for v in (k.control_plane_version, *(n.version for n in k.nodes)) if v}

    def path_rules(self, catalog: Catalog, state: PlatformState, running: list[str], target: str) -> Verdict | None:
        spec = catalog.component(NAME)
        skew = spec.versions[target].kubelet_skew or 2
        newer = gates.nodes_not_newer(state.kubernetes, target)
        if newer is not None:
            return newer
        return gates.control_plane_path(state.kubernetes, target, spec.rules.max_minor_step, skew, state.environment)

    def rollback_rules(self, catalog: Catalog, state: PlatformState, previous: str) -> Verdict:
        return Verdict.refuse(
            f"{NAME}.rollback",
            "a Kubernetes control plane is never moved back (EKS cannot downgrade it) and nodes are never newer than "
            "it: roll forward, or restore the platform into a new cluster",
        )

    # ------------------------------------------------------------------ planning

    def plan(self, state: PlatformState, version: str, settings: UpgradeSettings, catalog: Catalog) -> ComponentPlan:
        out = ComponentPlan()
        k = state.kubernetes
        if k.control_plane_version and parse_version(k.control_plane_version) < parse_version(version):
            out.steps.append(
                Step(
                    StepKind.CONTROL_PLANE,
                    NAME,
                    ("control-plane",),
                    version,
                    f"the control plane moves {k.control_plane_version} -> {version} first: nodes and add-ons follow "
                    "it, never lead it",
                )
            )
        wanted = catalog.component(NAME).versions[version].addons
        for addon in sorted(k.addons, key=lambda a: a.name):
            if addon.name not in wanted:
                out.notes.append(f"add-on {addon.name} ({addon.version}) is not in the catalog: left as it runs")
                continue
            target = wanted[addon.name]
            if target is None:
                out.notes.append(
                    f"add-on {addon.name} stays at {addon.version}: the catalog has no confirmed version of it for "
                    f"{version} (see `aws eks describe-addon-versions --kubernetes-version {version} --addon-name "
                    f"{addon.name}`)"
                )
            elif target != addon.version:
                out.steps.append(
                    Step(
                        StepKind.ADDON,
                        NAME,
                        (addon.name,),
                        version,
                        f"add-on {addon.name} {addon.version} -> {target}, the version for {version}, once the control "
                        "plane runs it",
                        detail=target,
                    )
                )
        stale = [n for n in k.nodes if gates.stale(n, k, version)]
        if stale:
            busy = self._roll_in_progress(state)
            if busy is not None:
                out.refusals.append(busy)
            if settings.skip_gates:
                names = tuple(n.name for n in sorted(stale, key=lambda n: (n.group, n.name)))
                out.steps.append(
                    Step(
                        StepKind.REPLACE_NODE,
                        NAME,
                        names,
                        version,
                        "UNSAFE negative control: every node group rolls at once, one node per group at a time, its "
                        "pods evicted as fast as their PodDisruptionBudgets allow (what managed node groups and "
                        "Karpenter do)",
                    )
                )
            else:
                out.steps.extend(self._node_steps(state, stale, version, settings))
        return out

    def _roll_in_progress(self, state: PlatformState) -> Verdict | None:
        """A node replacement restarts pods on their workload's current spec: a component mid-upgrade would be
        carried forward outside its own roll's order."""
        for w in state.workloads:
            behind = [p for p in w.pods if p.version != w.target_version or p.revision != w.update_revision]
            if not behind:
                continue
            pod = behind[0]
            if pod.version != w.target_version:
                what = (
                    f"{w.component} is mid-upgrade ({pod.name} runs {pod.version}, {w.name} asks for "
                    f"{w.target_version})"
                )
            else:
                what = (
                    f"{w.name} has a spec change not rolled out yet ({pod.name} runs an older revision of it, on the "
                    f"same version {pod.version})"
                )
            return Verdict.refuse(
                f"{NAME}.roll-in-progress",
                f"{what}: replacing nodes would restart its pods onto the new spec outside a roll of their own; roll "
                f"it first (`toolkit upgrade run --to {w.component}={w.target_version}`)",
            )
        return None

    def _phase(self, state: PlatformState, node: Node) -> int:
        if node.unschedulable or not node.ready:
            return 0
        pods = [p for p in state.kubernetes.pods_on(node.name) if p.component and gates.movable(p)]
        if not any(self._stateful(state, p) for p in pods):
            return 1
        if any(self._leader(state, p) for p in pods):
            return 3
        return 2

    @staticmethod
    def _stateful(state: PlatformState, pod: NodePod) -> bool:
        w = state.workload_of_pod(pod.name)
        return w is not None and w.kind == "StatefulSet"

    @staticmethod
    def _leader(state: PlatformState, pod: NodePod) -> bool:
        active = state.kafka.node(state.kafka.active_controller) if state.kafka.active_controller is not None else None
        return (active is not None and active.pod == pod.name) or state.elasticsearch.elected_master == pod.name

    def _node_steps(
        self, state: PlatformState, stale: list[Node], version: str, settings: UpgradeSettings
    ) -> list[Step]:
        by_phase: dict[int, list[Node]] = {}
        for n in sorted(stale, key=lambda n: (n.zone, n.role, n.name)):
            by_phase.setdefault(self._phase(state, n), []).append(n)
        steps: list[Step] = []
        why = {
            0: "is cordoned or NotReady (an interrupted replacement, or it serves nothing): it goes first",
            1: "carries no stateful platform pod: it goes before the nodes of brokers and data nodes",
            2: "carries stateful platform pods: each leaves only when a restart of it would be allowed",
            3: "carries the active Kafka controller or the elected Elasticsearch master: it goes last",
        }
        for phase in sorted(by_phase):
            nodes = by_phase[phase]
            if settings.parallel == "auto":
                batches = self._batches(state, nodes, version, settings)
            else:
                batches = [[n] for n in nodes]
            for batch in batches:
                names = tuple(n.name for n in batch)
                runs = "/".join(sorted({n.version for n in batch}))
                if len(batch) == 1:
                    n = batch[0]
                    reason = (
                        f"node {n.name} ({n.role or 'any role'}, {n.zone}, kubelet {runs}) {why[phase]}; replaced by "
                        f"a {version} node"
                    )
                else:
                    reason = (
                        f"nodes {', '.join(names)} (kubelet {runs}) {why[phase].replace('it goes', 'they go')}; each "
                        f"replaced by a {version} node, together: their brokers share no partition, their data nodes "
                        "no shard"
                    )
                steps.append(Step(StepKind.REPLACE_NODE, NAME, names, version, reason, phase=phase))
        return steps

    def _batches(
        self, state: PlatformState, nodes: list[Node], version: str, settings: UpgradeSettings
    ) -> list[list[Node]]:
        """--parallel auto: nodes of one phase in as few batches as the rules allow, greedily in plan order: the
        Kafka brokers on a batch pairwise share no partition and its Elasticsearch nodes no shard (Kafka's own
        --parallel auto rule, and ECK's "never two copies of one shard"), a batch has no more nodes of a node group
        than that group has room to surge replacements for (all are up before the batch drains), and at most
        --max-batch nodes. A batch's pods still leave one unit at a time behind their gates (the brokers of a
        batch as one unit); what the batch saves is the surges and terminations done together."""
        k = state.kubernetes
        room: dict[str, int] = {}
        for n in nodes:
            group = gates.surge_group(k, n, version)
            if group is not None:
                room[group.name] = max(1, group.max_size - group.size)
        shards: dict[str, set[tuple[str, int]]] = {}
        for shard in state.elasticsearch.shards:
            if shard.node:
                shards.setdefault(shard.node, set()).add((shard.index, shard.number))
        batches: list[tuple[list[Node], set[int], set[tuple[str, int]], dict[str, int]]] = []
        for n in nodes:
            brokers = self._broker_ids(state, n.name)
            copies = set().union(
                *(shards.get(p.name, set()) for p in k.pods_on(n.name) if p.component == ELASTICSEARCH)
            )
            group = gates.surge_group(k, n, version)
            gname = group.name if group is not None else ""
            home = None
            for batch in batches:
                members, held, held_copies, used = batch
                if settings.max_batch and len(members) >= settings.max_batch:
                    continue
                if used.get(gname, 0) >= room.get(gname, 1):
                    continue
                if copies & held_copies:
                    continue
                if any(kafka_gates.shares_partition(state.kafka, x, y) for x in brokers for y in held):
                    continue
                home = batch
                break
            if home is None:
                batches.append(([n], set(brokers), set(copies), {gname: 1}))
            else:
                home[0].append(n)
                home[1].update(brokers)
                home[2].update(copies)
                home[3][gname] = home[3].get(gname, 0) + 1
        return [b[0] for b in batches]

    def _broker_ids(self, state: PlatformState, node: str) -> list[int]:
        pods = {p.name for p in state.kubernetes.pods_on(node) if p.component == KAFKA}
        return [n.id for n in state.kafka.nodes if n.pod in pods and n.is_broker]

    def repairs(self, state: PlatformState) -> list[Step]:
        return []

    # ------------------------------------------------------------------ units: what leaves the nodes, in order

    def units(self, state: PlatformState, nodes: tuple[str, ...], batched: bool = False) -> list[Unit]:
        """The pods still to move off `nodes`, grouped and ordered: pods of other namespaces, then the platform's,
        stateless components first (the peers in reverse registry order), Kafka controllers one at a time with the
        active one last and (`batched`: --parallel auto) the brokers that share no partition together (their PDB
        still lets them go only as fast as it allows), Elasticsearch master-eligible nodes after the data
        nodes and the elected master last."""
        k = state.kubernetes
        names = set(nodes)
        pods = [p for p in k.pods if p.node in names and gates.movable(p)]
        out: list[Unit] = [
            Unit("", (p,), "") for p in sorted(pods, key=lambda p: (p.namespace, p.name)) if not p.component
        ]
        order = [c for c in reversed(list(self.peers)) if c != NAME]
        order += sorted({p.component for p in pods if p.component and p.component not in order})
        for component in order:
            mine = sorted((p for p in pods if p.component == component), key=lambda p: p.name)
            if not mine:
                continue
            if component == KAFKA:
                out.extend(self._kafka_units(state, mine, batched))
                continue
            if component == ELASTICSEARCH:
                es = state.elasticsearch
                mine.sort(
                    key=lambda p: (
                        p.name == es.elected_master,
                        bool((n := es.node(p.name)) is not None and n.master_eligible),
                        p.name,
                    )
                )
            out.extend(Unit(component, (p,), self._version(state, p)) for p in mine)
        return out

    def _kafka_units(self, state: PlatformState, pods: list[NodePod], batched: bool) -> list[Unit]:
        kafka = state.kafka
        node_of = {n.pod: n for n in kafka.nodes}
        controllers = [p for p in pods if (n := node_of.get(p.name)) is None or n.is_controller]
        brokers = [p for p in pods if (n := node_of.get(p.name)) is not None and n.role is KafkaRole.BROKER]
        controllers.sort(
            key=lambda p: (node_of[p.name].id == kafka.active_controller if p.name in node_of else False, p.name)
        )
        out = [Unit(KAFKA, (p,), self._version(state, p)) for p in controllers]
        if brokers:
            version = self._version(state, brokers[0])
            if (
                batched
                and len(brokers) > 1
                and all(
                    not kafka_gates.shares_partition(kafka, node_of[a.name].id, node_of[b.name].id)
                    for i, a in enumerate(brokers)
                    for b in brokers[i + 1 :]
                )
            ):
                out.append(Unit(KAFKA, tuple(brokers), version))
            else:
                out.extend(Unit(KAFKA, (p,), self._version(state, p)) for p in brokers)
        return out

    @staticmethod
    def _version(state: PlatformState, pod: NodePod) -> str:
        p = state.pod(pod.name)
        return p.version if p is not None else ""

    @staticmethod
    def inner_step(state: PlatformState, unit: Unit) -> Step:
        """The restart of a unit's pods as their own driver knows it; `detail` names the pods' workload."""
        where = ", ".join(sorted({p.node for p in unit.pods}))
        workload = state.workload_of_pod(unit.pods[0].name)
        return Step(
            StepKind.RESTART,
            unit.component,
            tuple(p.name for p in unit.pods),
            unit.version,
            f"{', '.join(p.name for p in unit.pods)} leave(s) node {where} (node replacement)",
            detail=workload.name if workload is not None else "",
        )

    def unit_gates(self, state: PlatformState, unit: Unit, settings: UpgradeSettings) -> list[Verdict]:
        """Before a unit's platform pods are evicted: the gates a restart of them would ask, and their PDBs. Pods of
        other namespaces have no gate here: the Eviction API decides for them (a 429 is waited out, as kubectl drain
        does)."""
        verdicts: list[Verdict] = []
        driver = self.peers.get(unit.component) if unit.component else None
        if driver is None:
            return verdicts
        verdicts.extend(driver.gates(state, self.inner_step(state, unit), settings))
        for pod in unit.pods:
            current = _current(state.kubernetes, pod)
            if current is not None:
                verdicts.append(gates.budget_allows(state.kubernetes, current))
        return verdicts

    # ------------------------------------------------------------------ gates

    def gates(self, state: PlatformState, step: Step, settings: UpgradeSettings) -> list[Verdict]:
        k = state.kubernetes
        if step.kind == StepKind.CONTROL_PLANE:
            return [self._active(k)]
        if step.kind == StepKind.ADDON:
            return [gates.control_plane_first(k, step.version)]
        if step.kind != StepKind.REPLACE_NODE:
            return []
        verdicts: list[Verdict] = []
        for name in step.members:
            node = k.node(name)
            if node is not None:
                verdicts.append(gates.surge_possible(k, node, step.version))
        bare = gates.unmanaged(k, step.members)
        if bare is not None:
            verdicts.append(bare)
        units = self.units(state, step.members, settings.parallel == "auto")
        for i, unit in enumerate(units):
            unit_verdicts = self.unit_gates(state, unit, settings)
            if i == 0:
                verdicts.extend(unit_verdicts)
            else:  # a later unit's fatal verdict (no amount of waiting helps) refuses the plan up front
                verdicts.extend(v for v in unit_verdicts if v.fatal)
        # last, so that the plan shows what holds the node's pods, when something does, rather than the control
        # plane step every node follows anyway
        verdicts.append(gates.control_plane_first(k, step.version))
        return verdicts

    @staticmethod
    def _active(k: KubernetesState) -> Verdict:
        if k.control_plane_status != "ACTIVE":
            return Verdict.wait("kubernetes.control-plane-active", f"the control plane is {k.control_plane_status}")
        return Verdict.passed("kubernetes.control-plane-active", "the control plane is ACTIVE")

    # ------------------------------------------------------------------ done

    def done(self, state: PlatformState, step: Step, settings: UpgradeSettings) -> Verdict:
        k = state.kubernetes
        if step.kind == StepKind.CONTROL_PLANE:
            if k.control_plane_version == step.version and k.control_plane_status == "ACTIVE":
                return Verdict.passed("kubernetes.control-plane", f"the control plane runs {step.version}, ACTIVE")
            return Verdict.wait(
                "kubernetes.control-plane",
                f"the control plane runs {k.control_plane_version} ({k.control_plane_status}), not yet {step.version}",
            )
        if step.kind == StepKind.ADDON:
            addon = next((a for a in k.addons if a.name == step.members[0]), None)
            if addon is not None and addon.version == step.detail and addon.status == "ACTIVE":
                return Verdict.passed("kubernetes.addon", f"add-on {addon.name} runs {step.detail}, ACTIVE")
            seen = f"{addon.version} ({addon.status})" if addon is not None else "not observed"
            return Verdict.wait("kubernetes.addon", f"add-on {step.members[0]} is {seen}, not yet {step.detail}")
        verdict = gates.drained(k, step.members)
        if not verdict.ok:
            return verdict
        return gates.nodes_gone(k, step.members)

    # ------------------------------------------------------------------ acting

    def perform(self, step: Step, ctx: StepContext) -> None:
        port: KubernetesPort = ctx.target.data_plane(NAME)
        if step.kind == StepKind.CONTROL_PLANE:
            ctx.act(f"upgrade the control plane to {step.version}", lambda: port.upgrade_control_plane(step.version))
            self._wait_while_updating(step, ctx)
        elif step.kind == StepKind.ADDON:
            name, version = step.members[0], step.detail
            ctx.act(f"update add-on {name} to {version}", lambda: port.update_addon(name, version))
            self._wait_while_updating(step, ctx)
        elif step.kind == StepKind.REPLACE_NODE:
            self._replace(step, ctx, port)

    @staticmethod
    def _wait_while_updating(step: Step, ctx: StepContext) -> None:
        """Wait for the control plane (or add-on) to be ACTIVE on the version: a step timeout passes while EKS still
        reports UPDATING is progress, waited again, up to `UPDATE_LIMIT` seconds in all (EKS control-plane updates
        commonly take longer than a pod's recovery)."""
        started = ctx.clock.now()
        while True:
            try:
                ctx.wait_done(confirm=False)
                return
            except Stop:
                raise
            except Halt:
                k = ctx.observe().kubernetes
                status = (
                    k.control_plane_status
                    if step.kind == StepKind.CONTROL_PLANE
                    else next((a.status for a in k.addons if a.name == step.members[0]), "")
                )
                if status != "UPDATING" or ctx.clock.now() - started >= UPDATE_LIMIT:
                    raise

    def _replace(self, step: Step, ctx: StepContext, port: KubernetesPort) -> None:
        if ctx.settings.skip_gates:
            self._roll_unsafe(step, ctx, port)
            return
        for name in step.members:
            self._bring_up_replacement(name, step.version, ctx, port)
        for name in step.members:
            node = ctx.observe().kubernetes.node(name)
            if node is not None and not node.unschedulable:
                ctx.act(f"cordon node {name}", partial(port.cordon, name))
        self._drain(step, ctx, port)
        for name in step.members:
            if ctx.observe().kubernetes.node(name) is not None:
                ctx.act(
                    f"terminate node {name} (through its group, capacity decremented)", partial(port.terminate, name)
                )
        ctx.wait_done(confirm=False)

    def _bring_up_replacement(self, name: str, version: str, ctx: StepContext, port: KubernetesPort) -> None:
        k = ctx.observe().kubernetes
        node = k.node(name)
        if node is None or node.unschedulable:
            return  # already terminated, or cordoned by an earlier run: its replacement was up then
        replacement = gates.replacement_of(k, name)
        if replacement is None:
            fresh = gates.adoptable(k, node, version)
            if fresh is None:
                group = gates.surge_group(k, node, version)
                if group is None:
                    raise Halt(gates.surge_possible(k, node, version))
                before = {n.name for n in k.nodes}
                ctx.act(
                    f"surge a {version} node in {node.zone} (group {group.name}) to replace {name}",
                    lambda: port.surge(group.name, version),
                )

                def launched(s: PlatformState) -> Verdict:
                    new = [n for n in s.kubernetes.nodes if n.name not in before and n.zone == node.zone]
                    if new:
                        return Verdict.passed("kubernetes.surged", f"node {new[0].name} registered for {name}")
                    return Verdict.wait("kubernetes.surged", f"the {version} node for {name} has not registered yet")

                self._wait_or_give_up(ctx, launched, name, None, port)
                k = ctx.observe().kubernetes
                fresh = gates.adoptable(k, node, version)
                if fresh is None:
                    raise Halt(
                        Verdict.refuse(
                            "kubernetes.surged",
                            f"a node registered in {node.zone} after the surge for {name}, but not on {version} in a "
                            f"{node.role or 'matching'} group; nothing was cordoned: check group {group.name}",
                        )
                    )
            claimed = fresh.name
            ctx.act(f"claim node {claimed} as the replacement of {name}", lambda: port.claim(claimed, name))
            replacement_name = claimed
        else:
            replacement_name = replacement.name

        def ready(s: PlatformState) -> Verdict:
            n = s.kubernetes.node(replacement_name)
            if n is not None and n.ready:
                return Verdict.passed("kubernetes.replacement-ready", f"replacement {replacement_name} is Ready")
            return Verdict.wait(
                "kubernetes.replacement-ready", f"replacement {replacement_name} for {name} is not Ready yet"
            )

        self._wait_or_give_up(ctx, ready, name, replacement_name, port)

    @staticmethod
    def _wait_or_give_up(
        ctx: StepContext,
        condition: Callable[[PlatformState], Verdict],
        name: str,
        replacement: str | None,
        port: KubernetesPort,
    ) -> None:
        try:
            ctx.wait_for(condition)
        except Stop:
            raise
        except Halt as halt:
            if replacement is not None:
                ctx.cleanup(
                    f"terminate replacement {replacement}, which never became Ready",
                    lambda: port.terminate(replacement),
                )
            what = (
                f"replacement {replacement} for node {name} did not become Ready within "
                f"{ctx.settings.step_timeout:.0f} s; it was terminated again (capacity decremented)"
                if replacement
                else f"no node registered within {ctx.settings.step_timeout:.0f} s after the surge for node {name}"
            )
            raise Halt(
                Verdict.refuse(
                    halt.verdict.rule,
                    f"{what}. Node {name} was not cordoned and nothing was evicted; check the node image and its "
                    "bootstrap (kubelet log), then run the same command",
                )
            ) from None

    def _drain(self, step: Step, ctx: StepContext, port: KubernetesPort) -> None:
        moved: set[str] = set()  # pod uids this step moved: a pod still there after its unit means no progress
        while True:
            state = ctx.observe()
            units = self.units(state, step.members, ctx.settings.parallel == "auto")
            if not units:
                return
            unit = units[0]
            uids = {p.uid for p in unit.pods}
            if uids & moved:
                raise Halt(
                    Verdict.refuse(
                        "kubernetes.pod-moved",
                        f"pod {unit.pods[0].namespace}/{unit.pods[0].name} is still on node {unit.pods[0].node} after "
                        "its eviction; nothing else was evicted: find out what holds it, then run the same command",
                    )
                )
            driver = self.peers.get(unit.component) if unit.component else None
            if driver is None:
                for pod in unit.pods:
                    self._evict(pod, ctx, port, _no_gates)
            else:
                inner = self.inner_step(state, unit)
                driver.perform(inner, _DrainContext(ctx, self, driver, inner, unit, port))
            moved |= uids

    def _evict(
        self,
        pod: NodePod,
        ctx: StepContext,
        port: KubernetesPort,
        gates_of: Callable[[PlatformState], list[Verdict]],
    ) -> None:
        """Evict one pod once its gates pass (asked again on a fresh observation), waiting out PDB refusals."""
        while True:
            current = _current(ctx.observe().kubernetes, pod)
            if current is None or current.terminating:
                return  # gone or going already: never evicted twice

            def allowed(s: PlatformState) -> Verdict:
                if _current(s.kubernetes, pod) is None:
                    return Verdict.passed("kubernetes.evict", f"{pod.name} is gone already")
                return first_blocking(gates_of(s)) or Verdict.passed("kubernetes.evict", f"{pod.name} may go")

            ctx.wait_for(allowed)
            current = _current(ctx.observe().kubernetes, pod)
            if current is None or current.terminating:
                return
            accepted: list[bool] = []
            ctx.act(
                f"evict {pod.namespace}/{pod.name} from node {pod.node} (Eviction API, uid {current.uid})",
                partial(_record, accepted, port.evict, current),
            )
            if accepted and accepted[0]:
                return
            ctx.note(
                f"evict {pod.namespace}/{pod.name}",
                Verdict.wait(
                    "kubernetes.pdb",
                    f"the Eviction API refused {pod.name} (429): a PodDisruptionBudget allows no disruption now; "
                    "waiting and asking again",
                ),
            )
            ctx.poll()

    def _roll_unsafe(self, step: Step, ctx: StepContext, port: KubernetesPort) -> None:
        """The negative control: what managed node groups do when their version changes. Every group rolls at
        once, one node per group at a time: a replacement surged and Ready, the node cordoned, every pod evicted as
        soon as its PDB allows (a refusal is simply asked again), the node terminated as soon as it is empty, the
        group's next node at once. Nothing asks whether a moved broker is back in its ISRs or a data node's shards
        started elsewhere."""
        queues: dict[str, list[str]] = {}
        k = ctx.observe().kubernetes
        for name in step.members:
            node = k.node(name)
            if node is not None:
                queues.setdefault(node.group, []).append(name)
        surged: set[str] = set()
        while True:
            k = ctx.observe().kubernetes
            busy = False
            for group in sorted(queues):
                queue = queues[group]
                while queue and k.node(queue[0]) is None:
                    queue.pop(0)
                if not queue:
                    continue
                busy = True
                node = k.node(queue[0])
                assert node is not None
                if not node.unschedulable:
                    self._surge_unsafe(k, node, step.version, ctx, port, surged)
                    continue
                pods = [p for p in k.pods_on(node.name) if gates.movable(p)]
                for pod in pods:
                    accepted: list[bool] = []
                    ctx.act(
                        f"evict {pod.namespace}/{pod.name} from node {pod.node} (UNSAFE: PDBs only)",
                        partial(_record, accepted, port.evict, pod),
                    )
                if not pods and gates.drained(k, (node.name,)).ok:
                    ctx.act(
                        f"terminate node {node.name} (UNSAFE: as soon as it is empty)",
                        partial(port.terminate, node.name),
                    )
                    queue.pop(0)
            if not busy:
                break
            ctx.poll()
        ctx.wait_done(confirm=False)

    def _surge_unsafe(
        self, k: KubernetesState, node: Node, version: str, ctx: StepContext, port: KubernetesPort, surged: set[str]
    ) -> None:
        """One pass of bringing up `node`'s replacement without blocking the other groups; cordons it once the
        replacement is Ready."""
        replacement = gates.replacement_of(k, node.name)
        if replacement is None:
            fresh = gates.adoptable(k, node, version)
            if fresh is not None:
                ctx.act(
                    f"claim node {fresh.name} as the replacement of {node.name}",
                    lambda: port.claim(fresh.name, node.name),
                )
                return
            if node.name not in surged:
                group = gates.surge_group(k, node, version)
                if group is None:
                    raise Halt(gates.surge_possible(k, node, version))
                ctx.act(
                    f"surge a {version} node in {node.zone} (group {group.name})",
                    lambda: port.surge(group.name, version),
                )
                surged.add(node.name)
            return
        if replacement.ready:
            ctx.act(f"cordon node {node.name}", lambda: port.cordon(node.name))


def _record(into: list[bool], evict: Callable[[str, str, str], bool], pod: NodePod) -> None:
    into.append(evict(pod.namespace, pod.name, pod.uid))


def _current(k: KubernetesState, pod: NodePod) -> NodePod | None:
    """The pod as observed now, if it is still the same pod (same uid) on the same node."""
    return next((p for p in k.pods if p.uid == pod.uid and p.node == pod.node), None)


def _no_gates(state: PlatformState) -> list[Verdict]:
    return []


def _budget(state: PlatformState, pod: NodePod) -> Verdict:
    current = _current(state.kubernetes, pod)
    if current is None:
        return Verdict.passed("kubernetes.pdb", f"{pod.name} is gone")
    return gates.budget_allows(state.kubernetes, current)


class _DrainContext:
    """The node step's context, lent to the driver of the pods being moved: its `perform` of a restart runs as it
    always does (preparation, waits, preferred leaders), except that `restart(pod)` evicts the pod from the node
    behind the pod's gates and PDBs, and waiting never restarts a member again (a moved pod is not deleted)."""

    def __init__(
        self,
        base: StepContext,
        owner: KubernetesDriver,
        driver: ComponentDriver,
        inner: Step,
        unit: Unit,
        port: KubernetesPort,
    ) -> None:
        self._base = base
        self._owner = owner
        self._driver = driver
        self._inner = inner
        self._unit = unit
        self._port = port
        self._evicted: dict[str, str] = {}  # uid -> pod name, evicted by this unit

    @property
    def settings(self) -> UpgradeSettings:
        return self._base.settings

    @property
    def clock(self) -> Clock:
        return self._base.clock

    @property
    def target(self) -> Target:
        return self._base.target

    def observe(self) -> PlatformState:
        return self._base.observe()

    def act(self, what: str, action: Callable[[], None]) -> None:
        self._base.act(what, action)

    def cleanup(self, what: str, action: Callable[[], None]) -> None:
        self._base.cleanup(what, action)

    def restart(self, pod: str) -> None:
        target = next((p for p in self._unit.pods if p.name == pod), None)
        if target is None:
            return
        settings = self._base.settings

        def gates_of(s: PlatformState) -> list[Verdict]:
            return [*self._driver.gates(s, self._inner, settings), _budget(s, target)]

        self._owner._evict(target, self._base, self._port, gates_of)
        self._evicted[target.uid] = target.name

    def _left(self, state: PlatformState) -> Verdict | None:
        """A wait while a pod this unit evicted is still there: a pod moved at the same version looks recovered to
        a version check until it has actually gone (an Elasticsearch node stays joined while it shuts down)."""
        for uid, name in self._evicted.items():
            if any(p.uid == uid for p in state.kubernetes.pods):
                return Verdict.wait("kubernetes.pod-left", f"pod {name} has not left its node yet (terminating)")
        return None

    def wait_for(
        self, condition: Callable[[PlatformState], Verdict], confirm: bool = False, retry_members: bool = False
    ) -> None:
        self._base.wait_for(lambda s: self._left(s) or condition(s), confirm=confirm, retry_members=False)

    def wait_done(self, confirm: bool, retry_members: bool = False) -> None:
        settings = self._base.settings
        self.wait_for(lambda s: self._driver.done(s, self._inner, settings), confirm=confirm)

    def poll(self) -> None:
        self._base.poll()

    def waited(self, verdict: Verdict, seconds: float) -> None:
        self._base.waited(verdict, seconds)

    def note(self, what: str, verdict: Verdict) -> None:
        self._base.note(what, verdict)

    def finish(self, message: str) -> None:
        self._base.finish(message)
