"""Kubernetes gates: pure predicates over `KubernetesState` (and, for a node's pods, the workloads that own them).

Version rules (before anything moves; the Kubernetes version skew policy and EKS's own rules)
- the control plane moves at most the catalog's `max_minor_step` minors (1) per upgrade;
- a kubelet is never newer than the control plane, and at most `kubelet_skew` minors older (3 since 1.28, 2
  before): a control-plane upgrade that would leave a node further behind is refused until the nodes catch up;
- where the control plane is fixed (the local one), a roll replaces the nodes at the same version;
- where the infrastructure code declares the control plane's version (a region's stack), the upgrade is refused
  until the declaration says the target: otherwise the next `toolkit region up` would try to move it back.

Node replacement (`replace-node`), before anything moves and again before each eviction
- nodes never newer than the control plane: a node is replaced only once the control plane runs the target;
- a replacement can be brought up: a node group of the node's role and zone that launches the target version,
  with room for one more node (or a replacement already up: claimed, or a fresh unclaimed node to adopt);
- every pod on the node can be moved: no pod without a controller (it would not come back), and the pod that goes
  next passes the gates a restart of it would ask (its component's driver) and its PodDisruptionBudgets allow one
  more disruption (status.disruptionsAllowed > 0), otherwise the eviction API would answer 429.
"""

from __future__ import annotations

from collections.abc import Iterable

from toolkit.catalog import parse_version
from toolkit.model import KubernetesState, Node, NodeGroup, NodePod, Verdict

# pods a drain leaves where they are: DaemonSet pods (their controller runs one on every node, including the new
# one) and mirror pods of static manifests; they go with the node
STAYS_ON_NODE = ("DaemonSet", "Node")


def minor(version: str) -> int:
    """'1.34' -> 34."""
    return parse_version(version)[1]


def minors(version: str) -> tuple[int, int]:
    major, minor_, _patch = parse_version(version)
    return major, minor_


# ---------------------------------------------------------------------------------------------- versions


def control_plane_path(
    state: KubernetesState, target: str, max_step: int | None, skew: int, environment: str
) -> Verdict | None:
    """A refusal of moving the control plane from what it runs to `target`, or None."""
    current = state.control_plane_version
    if not current:
        return None
    (c_major, c_minor), (t_major, t_minor) = minors(current), minors(target)
    if t_major != c_major:
        return Verdict.refuse(
            "kubernetes.version-path",
            f"the control plane runs {current}; {target} is another major version, which Kubernetes has no path to",
        )
    if max_step is not None and t_minor - c_minor > max_step:
        step = f"{c_major}.{c_minor + max_step}"
        return Verdict.refuse(
            "kubernetes.one-minor-at-a-time",
            f"the control plane runs {current} and moves one minor at a time (EKS refuses more): upgrade to {step} "
            f"first (--to kubernetes={step}), then to {target}",
        )
    if (t_major, t_minor) > (c_major, c_minor):
        if not state.can_upgrade_control_plane:
            return Verdict.refuse(
                "kubernetes.control-plane-fixed",
                f"the control plane of {environment} is fixed at {current} (it cannot be upgraded here): a roll "
                f"there replaces the nodes at the same version (--to kubernetes={current})",
            )
        if state.declared_version and state.declared_version != target:
            return Verdict.refuse(
                "kubernetes.declared-version",
                f"the infrastructure code declares the control plane at {state.declared_version} "
                f'(region:kubernetesVersion): set it to "{target}" first, or the next `toolkit region up` would '
                f"try to take the control plane back; `toolkit region plan {environment} --to kubernetes={target}` "
                "shows what changes",
            )
        behind = [n for n in state.nodes if t_minor - minors(n.version)[1] > skew]
        if behind:
            worst = min(behind, key=lambda n: minors(n.version))
            return Verdict.refuse(
                "kubernetes.kubelet-skew",
                f"node {worst.name} runs kubelet {worst.version}: with the control plane at {target} it would be "
                f"{t_minor - minors(worst.version)[1]} minors behind, more than the {skew} the version skew policy "
                f"allows ({len(behind)} node(s) in all); bring the nodes to {current} first "
                f"(--to kubernetes={current})",
            )
    return None


def nodes_not_newer(state: KubernetesState, target: str) -> Verdict | None:
    newer = [n for n in state.nodes if minors(n.version) > minors(target)]
    if newer:
        return Verdict.refuse(
            "kubernetes.no-downgrade",
            f"node {newer[0].name} already runs kubelet {newer[0].version}, newer than {target}: nodes are never "
            "moved back",
        )
    return None


def control_plane_first(state: KubernetesState, version: str) -> Verdict:
    rule = "kubernetes.control-plane-first"
    if state.control_plane_version != version:
        return Verdict.wait(
            rule,
            f"the control plane runs {state.control_plane_version}: nodes move to {version} only once it does (a "
            "kubelet is never newer than the control plane)",
        )
    if state.control_plane_status != "ACTIVE":
        return Verdict.wait(rule, f"the control plane is {state.control_plane_status}, not ACTIVE yet")
    return Verdict.passed(rule, f"the control plane runs {version} and is ACTIVE")


# ---------------------------------------------------------------------------------------------- nodes


def stale(node: Node, state: KubernetesState, version: str) -> bool:
    """A node to replace: another kubelet version, or an image its group no longer launches."""
    if node.version != version:
        return True
    group = next((g for g in state.groups if g.name == node.group), None)
    return bool(group is not None and group.image and node.image and node.image != group.image)


def replacement_of(state: KubernetesState, node: str) -> Node | None:
    return next((n for n in state.nodes if n.replaces == node), None)


def surge_group(state: KubernetesState, node: Node, version: str) -> NodeGroup | None:
    """The group a replacement for `node` comes from: of its role and zone, launching `version` (a group of the
    node's own that launches any version first)."""
    candidates = [g for g in state.groups if g.role == node.role and g.zone == node.zone and g.version in ("", version)]
    candidates.sort(key=lambda g: (g.name != node.group, g.version == "", g.name))
    return candidates[0] if candidates else None


def adoptable(state: KubernetesState, node: Node, version: str, platform_pods: Iterable[str] = ()) -> Node | None:
    """A node brought up for `node` whose claim was not recorded (the orchestrator stopped between the surge and the
    claim): of the node's role and zone, on `version`, unclaimed, claimed by nothing else and carrying no platform
    pod. Adopted instead of surging again."""
    carrying = {p.node for p in state.pods if p.component}
    claimed = {n.replaces for n in state.nodes if n.replaces}
    for n in sorted(state.nodes, key=lambda n: (-n.created_at, n.name)):
        if (
            n.name != node.name
            and not n.replaces
            and n.name not in claimed
            and n.role == node.role
            and n.zone == node.zone
            and n.version == version
            and not stale(n, state, version)
            and not n.unschedulable
            and n.name not in carrying
        ):
            return n
    return None


def surge_possible(state: KubernetesState, node: Node, version: str) -> Verdict:
    rule = "kubernetes.surge"
    if replacement_of(state, node.name) is not None or node.unschedulable:
        return Verdict.passed(rule, f"node {node.name} already has its replacement, or is being drained")
    if adoptable(state, node, version) is not None:
        return Verdict.passed(rule, f"a {version} node in {node.zone} is up for {node.name} already")
    group = surge_group(state, node, version)
    if group is None:
        return Verdict.refuse(
            "kubernetes.surge-group",
            f"no node group for role {node.role or 'any'} in zone {node.zone} launches {version}: node {node.name} "
            f'would have no replacement. On a region add "{version}" to region:nodeGroupVersions and run `toolkit '
            "region up` (it creates empty node groups of that version for the engine to surge into)",
        )
    if group.size >= group.max_size:
        return Verdict.refuse(
            "kubernetes.surge-room",
            f"node group {group.name} ({node.zone}) is at its maximum of {group.max_size} node(s): no room to surge a "
            f"replacement for {node.name} before draining it; raise its maximum (region:nodeGroups maxPerZone) by one",
        )
    return Verdict.passed(rule, f"group {group.name} can surge a {version} node for {node.name}")


def movable(pod: NodePod) -> bool:
    """A pod a drain evicts (not DaemonSet pods, not mirror pods; not pods already going)."""
    return pod.owner_kind not in STAYS_ON_NODE and not pod.terminating


def unmanaged(state: KubernetesState, nodes: Iterable[str]) -> Verdict | None:
    names = set(nodes)
    bare = [p for p in state.pods if p.node in names and not p.owner_kind and not p.terminating]
    if bare:
        p = bare[0]
        return Verdict.refuse(
            "kubernetes.unmanaged-pod",
            f"pod {p.namespace}/{p.name} on node {p.node} has no controller: evicted, it would not come back "
            "anywhere (kubectl drain refuses it too without --force); give it a controller or delete it yourself",
        )
    return None


def budget_allows(state: KubernetesState, pod: NodePod) -> Verdict:
    """The eviction API's own check: every PodDisruptionBudget selecting the pod allows one more disruption."""
    rule = "kubernetes.pdb"
    for budget in state.budgets_of(pod.namespace, pod.name):
        if budget.allowed <= 0 and pod.ready:
            return Verdict.wait(
                rule,
                f"PodDisruptionBudget {budget.namespace}/{budget.name} allows no disruption now ({budget.healthy} "
                f"healthy, {budget.desired_healthy} required): an eviction of {pod.name} would be refused (429)",
            )
    return Verdict.passed(rule, f"no PodDisruptionBudget stops the eviction of {pod.name}")


def nodes_gone(state: KubernetesState, nodes: Iterable[str]) -> Verdict:
    left = [n for n in nodes if state.node(n) is not None]
    if left:
        return Verdict.wait("kubernetes.node-terminated", f"node {left[0]} is still registered")
    return Verdict.passed("kubernetes.node-terminated", "the old node(s) are gone")


def drained(state: KubernetesState, nodes: Iterable[str]) -> Verdict:
    names = set(nodes)
    left = [p for p in state.pods if p.node in names and p.owner_kind not in STAYS_ON_NODE]
    if left:
        p = left[0]
        what = "terminating" if p.terminating else "still running"
        return Verdict.wait(
            "kubernetes.drained", f"pod {p.namespace}/{p.name} is {what} on node {p.node} ({len(left)} in all)"
        )
    return Verdict.passed("kubernetes.drained", f"no pod left to move on {', '.join(sorted(names))}")
