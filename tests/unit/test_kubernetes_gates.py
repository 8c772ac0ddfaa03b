"""Kubernetes gates as pure functions over observed state: version paths (one minor at a time, the kubelet skew
policy, a fixed control plane, the declared version), what may surge, which nodes are stale, PDBs, bare pods."""

from __future__ import annotations

from toolkit.catalog import load, parse_version
from toolkit.engine.gates import kubernetes as gates
from toolkit.model import DisruptionBudget, KubernetesState, Node, NodeGroup, NodePod


def node(name: str, version: str = "1.33", zone: str = "a", role: str = "kafka", **kw) -> Node:  # type: ignore[no-untyped-def]
    return Node(name=name, zone=zone, group=f"{role}-{zone}", version=version, ready=True, role=role, **kw)


def state(**kw) -> KubernetesState:  # type: ignore[no-untyped-def]
    base = {
        "control_plane_version": "1.33",
        "nodes": (node("n1"),),
        "groups": (NodeGroup("kafka-a", "kafka", "a", "", 1, 2),),
    }
    return KubernetesState(**{**base, **kw})


def test_kubernetes_minors_parse_as_versions() -> None:
    assert parse_version("1.34") == (1, 34, 0)
    assert parse_version("8.19.3") == (8, 19, 3)
    cat = load()
    assert cat.component("kubernetes").versions["1.34"].kubelet_skew == 3
    assert cat.component("kubernetes").versions["1.20"].kubelet_skew == 2
    assert "kubernetes" not in cat.charted() and cat.charted() == ("kafka", "elasticsearch", "workers")


def test_control_plane_moves_one_minor_and_keeps_kubelets_within_the_skew() -> None:
    ok = gates.control_plane_path(state(), "1.34", 1, 3, "e")
    assert ok is None
    two = gates.control_plane_path(state(), "1.35", 1, 3, "e")
    assert two is not None and two.rule == "kubernetes.one-minor-at-a-time" and "1.34" in two.reason
    far = state(nodes=(node("n1", "1.30"), node("n2", "1.31")))
    skew = gates.control_plane_path(far, "1.34", 1, 3, "e")
    assert (
        skew is not None
        and skew.rule == "kubernetes.kubelet-skew"
        and "n1" in skew.reason
        and "4 minors" in skew.reason
    )
    # before 1.28 the policy allowed 2 minors
    assert gates.control_plane_path(state(nodes=(node("n1", "1.31"),)), "1.34", 1, 2, "e") is not None
    # a same-minor roll needs no control-plane move, whatever the kubelets
    assert gates.control_plane_path(far, "1.33", 1, 3, "e") is None


def test_a_fixed_or_declared_control_plane_refuses_with_the_way_out() -> None:
    fixed = gates.control_plane_path(state(can_upgrade_control_plane=False), "1.34", 1, 3, "local")
    assert (
        fixed is not None and fixed.rule == "kubernetes.control-plane-fixed" and "--to kubernetes=1.33" in fixed.reason
    )
    declared = gates.control_plane_path(state(declared_version="1.33"), "1.34", 1, 3, "eu-west-1")
    assert declared is not None and declared.rule == "kubernetes.declared-version"
    assert (
        "region:kubernetesVersion" in declared.reason
        and "toolkit region plan eu-west-1 --to kubernetes=1.34" in declared.reason
    )
    assert gates.control_plane_path(state(declared_version="1.34"), "1.34", 1, 3, "eu-west-1") is None


def test_nodes_are_never_newer_than_the_target() -> None:
    v = gates.nodes_not_newer(state(nodes=(node("n1", "1.34"),)), "1.33")
    assert v is not None and v.rule == "kubernetes.no-downgrade"


def test_stale_by_version_or_by_an_image_the_group_no_longer_launches() -> None:
    s = state(
        nodes=(node("n1", image="img-1"), node("n2", image="img-2")),
        groups=(NodeGroup("kafka-a", "kafka", "a", "", 2, 3, image="img-2"),),
    )
    assert [n.name for n in s.nodes if gates.stale(n, s, "1.33")] == ["n1"]
    assert all(gates.stale(n, s, "1.34") for n in s.nodes)


def test_surge_needs_a_group_that_launches_the_version_with_room() -> None:
    n = node("n1")
    blue_only = state(groups=(NodeGroup("kafka-a-133", "kafka", "a", "1.33", 1, 2),))
    v = gates.surge_possible(blue_only, n, "1.34")
    assert v.fatal and v.rule == "kubernetes.surge-group" and "region:nodeGroupVersions" in v.reason
    green = state(
        groups=(
            NodeGroup("kafka-a-133", "kafka", "a", "1.33", 1, 1),
            NodeGroup("kafka-a-134", "kafka", "a", "1.34", 0, 2),
        )
    )
    assert gates.surge_possible(green, n, "1.34").ok
    assert gates.surge_group(green, n, "1.34").name == "kafka-a-134"  # type: ignore[union-attr]
    full = state(groups=(NodeGroup("kafka-a", "kafka", "a", "", 1, 1),))
    v = gates.surge_possible(full, n, "1.34")
    assert v.fatal and v.rule == "kubernetes.surge-room"


def test_a_fresh_unclaimed_node_is_adopted_instead_of_surging_again() -> None:
    old, fresh = node("n1"), node("n9", "1.34", created_at=10.0)
    s = state(nodes=(old, fresh))
    assert gates.adoptable(s, old, "1.34") == fresh
    claimed = state(nodes=(old, node("n9", "1.34", replaces="n0")))
    assert gates.adoptable(claimed, old, "1.34") is None
    busy = state(nodes=(old, fresh), pods=(NodePod("ns", "kafka-0", "n9", "u", "StatefulSet", "kafka"),))
    assert gates.adoptable(busy, old, "1.34") is None
    other_zone = state(nodes=(old, node("n9", "1.34", zone="b")))
    assert gates.adoptable(other_zone, old, "1.34") is None


def test_pdb_and_bare_pods() -> None:
    pod = NodePod("ns", "kafka-0", "n1", "u1", "StatefulSet", "kafka")
    blocked = state(budgets=(DisruptionBudget("ns", "kafka", ("kafka-0", "kafka-1"), 0, 1, 2),))
    v = gates.budget_allows(blocked, pod)
    assert not v.ok and not v.fatal and "kafka" in v.reason and "429" in v.reason
    assert gates.budget_allows(state(budgets=(DisruptionBudget("ns", "kafka", ("kafka-0",), 1, 3, 2),)), pod).ok
    bare = state(pods=(NodePod("team", "debug", "n1", "u2", ""),))
    v = gates.unmanaged(bare, ("n1",))
    assert v is not None and v.fatal and "team/debug" in v.reason
    daemon = NodePod("kube-system", "aws-node-x", "n1", "u3", "DaemonSet")
    assert not gates.movable(daemon)
    assert gates.drained(state(pods=(daemon,)), ("n1",)).ok
    assert not gates.drained(state(pods=(pod,)), ("n1",)).ok
