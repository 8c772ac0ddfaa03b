"""Kubernetes itself as a component, on the simulated platform (virtual clock): a minor upgrade of the control plane,
the add-ons and every node, the nodes replaced one at a time under the same gates as a restart of each pod on them.

The simulated platform models nodes in node groups per role and zone, pods placed on them (a StatefulSet pod in its
own zone, a little later on another node: its volume moves), PodDisruptionBudgets of maxUnavailable 1 per workload
as the charts render them, and the same restart/catch-up/recovery physics for a pod moved off a node as for one
restarted in place. It is a model: every figure here is simulated.
"""

from __future__ import annotations

from collections import Counter

import pytest
from harness import make

from toolkit.catalog import load
from toolkit.config.platform import KubernetesSpec, NodePoolSpec, PlatformSpec
from toolkit.engine import planner
from toolkit.model import StepKind, UpgradeSettings
from toolkit.targets.sim import Faults, OrchestratorCrash, SimTarget, build_world, parse_injections

TO = {"kubernetes": "1.34"}
SETTINGS = UpgradeSettings()


def _nodes(world, version=None):  # type: ignore[no-untyped-def]
    return [n for n in world.kubernetes.nodes.values() if version is None or n.version == version]


def _invariants_held(world) -> None:  # type: ignore[no-untyped-def]
    bad = [h for h in world.history if h["below_min_isr"] or h["offline"] or h["es_health"] == "red"]
    assert not bad, f"first breach at t={bad[0]['t']}: {bad[0]}"


def test_plan_orders_control_plane_then_add_ons_then_nodes_leaders_last() -> None:
    s = make()
    plan = planner.plan(s.target.observe(), TO, SETTINGS, load())
    assert not plan.refused, plan.refusals
    kinds = [st.kind for st in plan.steps]
    assert kinds[:2] == [StepKind.CONTROL_PLANE, StepKind.ADDON]
    assert plan.steps[1].members == ("kube-proxy",) and plan.steps[1].detail == "v1.34.1-eksbuild.2"
    assert set(kinds[2:]) == {StepKind.REPLACE_NODE}
    nodes = [st.members[0] for st in plan.steps[2:]]
    assert sorted(nodes) == sorted(n.name for n in _nodes(s.world))
    phases = [st.phase for st in plan.steps[2:]]
    assert phases == sorted(phases)
    # nodes with no stateful pod go first, the node of the active Kafka controller / elected master last
    state = s.target.observe()
    active = state.kafka.node(state.kafka.active_controller)
    assert active is not None
    last_nodes = {st.members[0] for st in plan.steps if st.phase == 3}
    assert s.world.pods[active.pod].node in last_nodes
    assert s.world.pods[state.elasticsearch.elected_master].node in last_nodes
    assert all(s.world.kubernetes.nodes[st.members[0]].role == "workers" for st in plan.steps if st.phase == 1)
    # add-ons the catalog has no confirmed version for are left as they run, and the plan says so
    assert any("vpc-cni" in n and "no confirmed version" in n for n in plan.notes)
    # the nodes wait for the control plane, and the plan says it
    assert plan.steps[2].blocked is not None and plan.steps[2].blocked.rule == "kubernetes.control-plane-first"


@pytest.mark.parametrize(
    ("start", "target", "rule", "says"),
    [
        ("1.32", "1.34", "kubernetes.one-minor-at-a-time", "--to kubernetes=1.33"),
        ("1.33", "1.32", "kubernetes.no-downgrade", "1.33"),
        ("1.33", "1.29", "kubernetes.no-downgrade", "1.33"),
    ],
)
def test_version_path_is_refused_with_the_way_out(start: str, target: str, rule: str, says: str) -> None:
    s = make(versions={"kubernetes": start})
    plan = planner.plan(s.target.observe(), {"kubernetes": target}, SETTINGS, load())
    assert plan.refused and plan.refusals[0].rule == rule, plan.refusals
    assert says in plan.refusals[0].reason
    assert not s.world.kubernetes.evictions


def test_control_plane_upgrade_that_would_break_the_kubelet_skew_is_refused() -> None:
    s = make()
    old = sorted(s.world.kubernetes.nodes)[0]
    s.world.kubernetes.nodes[old].version = "1.30"  # 1.34 - 1.30 = 4 minors: more than the 3 the skew policy allows
    s.world.advance(5)
    plan = planner.plan(s.target.observe(), TO, SETTINGS, load())
    assert plan.refused and plan.refusals[0].rule == "kubernetes.kubelet-skew"
    assert old in plan.refusals[0].reason and "--to kubernetes=1.33" in plan.refusals[0].reason
    # the way out works: nodes to the control plane's version first (same-minor roll), then the minor
    result = s.run({"kubernetes": "1.33"}, SETTINGS)
    assert result.outcome == "completed", result.reason
    assert {n.version for n in _nodes(s.world)} == {"1.33"}
    assert not planner.plan(s.target.observe(), TO, SETTINGS, load()).refused


def test_gated_roll_replaces_every_node_and_never_breaks_an_invariant() -> None:
    s = make()
    before = {n.name for n in _nodes(s.world)}
    sizes = Counter(n.group for n in _nodes(s.world))
    result = s.run(TO, SETTINGS)
    assert result.outcome == "completed", result.reason
    state = s.target.observe()
    assert state.kubernetes.control_plane_version == "1.34"
    assert {a.name: a.version for a in state.kubernetes.addons}["kube-proxy"] == "v1.34.1-eksbuild.2"
    assert {n.version for n in state.kubernetes.nodes} == {"1.34"}
    assert not before & {n.name for n in state.kubernetes.nodes}  # every old node terminated
    assert Counter(n.group for n in state.kubernetes.nodes) == sizes  # surge +1, terminate -1 (decrement)
    assert all(n.replaces in before for n in state.kubernetes.nodes)
    # every pod that lived on an old node left it through the Eviction API, exactly once
    uids = [e["uid"] for e in s.world.kubernetes.evictions]
    assert len(uids) == len(set(uids)) == sum(len(w.pods) for w in s.target.observe().workloads)
    assert all(p.restarts <= 1 for w in state.workloads for p in w.pods)
    _invariants_held(s.world)
    # each pod waited for the pods before it: the component gates show in the step records
    waited = {g.rule for r in result.steps for g in r.gates_waited}
    assert {"kafka.isr-rejoined", "elasticsearch.recovering", "kubernetes.replacement-ready"} <= waited


def _isr_wait(result) -> float:  # type: ignore[no-untyped-def]
    return sum(g.seconds for r in result.steps for g in r.gates_waited if g.rule == "kafka.isr-rejoined")


def test_the_next_broker_leaves_only_when_the_last_is_back_in_every_isr() -> None:
    s = make(faults=parse_injections(["slow-catchup=4"]))
    normal = make().run(TO, SETTINGS)
    result = s.run(TO, SETTINGS)
    assert result.outcome == "completed", result.reason
    _invariants_held(s.world)
    broker_evictions = [e for e in s.world.kubernetes.evictions if e["pod"].startswith("kafka-broker")]
    assert len(broker_evictions) == len([p for p in s.world.pods if p.startswith("kafka-broker")])
    # slow catch-up shows as more time waited on the ISR, never as a partition under min.insync.replicas
    assert _isr_wait(result) > 2 * _isr_wait(normal) > 0


def test_drain_as_fast_as_pdbs_allow_is_faster_and_breaks_what_the_gates_protect() -> None:
    gated, unsafe = make(), make()
    g = gated.run(TO, SETTINGS)
    u = unsafe.run(TO, UpgradeSettings(skip_gates=True))
    assert g.outcome == u.outcome == "completed"
    assert u.ended_at - u.started_at < g.ended_at - g.started_at
    _invariants_held(gated.world)
    breaches = [h for h in unsafe.world.history if h["below_min_isr"] or h["es_health"] == "red"]
    assert breaches, "the PDB-only drain should break an invariant the gates protect"
    assert unsafe.world.kubernetes.evictions_refused > 0  # PDBs were its only brake


def test_parallel_auto_batches_nodes_that_share_no_partition_and_no_shard() -> None:
    s = make()
    settings = UpgradeSettings(parallel="auto")
    plan = planner.plan(s.target.observe(), TO, settings, load())
    state = s.target.observe()
    batches = [st for st in plan.steps if st.kind == StepKind.REPLACE_NODE and len(st.members) > 1]
    assert batches
    shards: dict[str, set[tuple[str, int]]] = {}
    for sh in state.elasticsearch.shards:
        shards.setdefault(sh.node or "", set()).add((sh.index, sh.number))
    for st in batches:
        held = [
            {
                (sh)
                for p in state.kubernetes.pods_on(n)
                if p.component == "elasticsearch"
                for sh in shards.get(p.name, ())
            }
            for n in st.members
        ]
        assert all(not (a & b) for i, a in enumerate(held) for b in held[i + 1 :]), st.members
    serial = make().run(TO, SETTINGS)
    result = s.run(TO, settings)
    assert result.outcome == "completed", result.reason
    _invariants_held(s.world)
    assert result.ended_at - result.started_at < serial.ended_at - serial.started_at


def test_a_node_whose_pods_cannot_move_holds_the_roll_and_the_plan_says_why() -> None:
    s = make(faults=Faults(red_cluster=True))
    s.run({"kubernetes": "1.34"}, UpgradeSettings(gate_timeout=1.0))  # control plane and add-on steps only
    plan = planner.plan(s.target.observe(), TO, SETTINGS, load())
    es_steps = [
        st
        for st in plan.steps
        if st.kind == StepKind.REPLACE_NODE and s.world.kubernetes.nodes[st.members[0]].role == "elasticsearch"
    ]
    assert es_steps and all(st.blocked is not None for st in es_steps)
    assert es_steps[0].blocked.rule == "elasticsearch.health" and "red" in es_steps[0].blocked.reason
    assert not any(e["pod"].startswith("es-") for e in s.world.kubernetes.evictions)


def test_a_replacement_node_that_never_becomes_ready_halts_before_anything_is_evicted() -> None:
    s = make(faults=parse_injections(["node-never-ready"]))
    settings = UpgradeSettings(step_timeout=300)
    before = {n.name for n in _nodes(s.world)}
    result = s.run(TO, settings)
    assert result.outcome == "halted"
    assert result.rule == "kubernetes.replacement-ready"
    assert "terminated again (capacity decremented)" in result.reason and "nothing was evicted" in result.reason
    assert not s.world.kubernetes.evictions
    assert not any(s.world.kubernetes.nodes[n].unschedulable for n in before if n in s.world.kubernetes.nodes)
    s.world.advance(s.world.now + 60)
    assert {n.name for n in _nodes(s.world)} == before  # the failed surge node is gone again


def test_an_eviction_refused_by_a_pdb_is_observed_and_waited_out() -> None:
    s = make()
    injected = []

    def block_when_cordoned(event) -> None:  # type: ignore[no-untyped-def]
        # the PDB starts refusing between the engine's observation and its eviction (a stale status): the Eviction
        # API answers 429 although the observed budget allowed one more disruption
        if event.kind == "act" and event.message.startswith("cordon node kafka-") and not injected:
            s.world.apply_faults(Faults(pdb_blocks={"kafka-controller": 40.0}))
            injected.append(event.at)

    result = s.run(TO, SETTINGS, hook=block_when_cordoned)
    assert result.outcome == "completed", result.reason
    assert s.world.kubernetes.evictions_refused >= 1
    refused = [e for e in s.events if e.kind == "gate-wait" and e.rule == "kubernetes.pdb"]
    assert refused and "429" in refused[0].message
    first = min(e["t"] for e in s.world.kubernetes.evictions if e["pod"].startswith("kafka-controller"))
    assert first >= injected[0] + 40  # waited out
    _invariants_held(s.world)


def test_a_pdb_that_blocks_shows_in_the_plan_and_holds_the_node() -> None:
    s = make(faults=parse_injections(["pdb-blocks=workers-indexer:3000"]))
    s.run(TO, UpgradeSettings(gate_timeout=1.0))
    plan = planner.plan(s.target.observe(), TO, SETTINGS, load())
    head = plan.steps[0]
    assert head.kind == StepKind.REPLACE_NODE and head.blocked is not None
    assert head.blocked.rule in ("kubernetes.pdb", "workers.ready-at-desired")
    blocked_by_pdb = [st for st in plan.steps if st.blocked is not None and st.blocked.rule == "kubernetes.pdb"]
    assert blocked_by_pdb and "PodDisruptionBudget" in blocked_by_pdb[0].blocked.reason


def test_slow_drain_waits_for_pods_to_terminate_and_stays_safe() -> None:
    s = make(faults=parse_injections(["slow-drain=6"]))
    result = s.run(TO, SETTINGS)
    assert result.outcome == "completed", result.reason
    _invariants_held(s.world)


def test_resume_after_the_orchestrator_dies_mid_drain_evicts_nothing_twice() -> None:
    s = make(faults=parse_injections(["crash-after-step=9"]))
    with pytest.raises(OrchestratorCrash):
        s.run(TO, SETTINGS)
    assert s.world.kubernetes.evictions  # it died with a node half drained
    half = {n.name for n in _nodes(s.world) if n.unschedulable}
    resumed = s.resume()
    s.world.lease = None  # the dead process's lease: a new process takes over once it expired; here at once
    result = resumed.run(TO, SETTINGS, holder="sre@host-b/2")
    assert result.outcome == "completed", result.reason
    uids = [e["uid"] for e in s.world.kubernetes.evictions]
    assert len(uids) == len(set(uids))
    surges = [m for _t, m in s.acts("surge ")]
    replaced = {m.split(" to replace ")[1] for m in surges}
    assert len(surges) == len(replaced)  # never a second surge for the same node
    assert half <= replaced
    _invariants_held(s.world)


def test_a_component_mid_upgrade_refuses_the_node_roll() -> None:
    s = make()
    s.world.controllers.apply_spec("kafka-broker", "4.1.0")  # OnDelete: pods still on 4.0.1
    s.world.advance(s.world.now + 5)
    plan = planner.plan(s.target.observe(), TO, SETTINGS, load())
    assert plan.refused and plan.refusals[0].rule == "kubernetes.roll-in-progress"
    assert "--to kafka=4.1.0" in plan.refusals[0].reason


def test_no_room_to_surge_refuses_up_front() -> None:
    others = [p for p in KubernetesSpec().node_pools if p.role != "kafka"]
    pools = (NodePoolSpec(role="kafka", per_zone=1, max_per_zone=1), *others)
    spec = PlatformSpec(kubernetes=KubernetesSpec(node_pools=pools))
    world = build_world("scenario", spec)
    plan = planner.plan(SimTarget(world).observe(), TO, SETTINGS, load())
    assert plan.refused and plan.refusals[0].rule == "kubernetes.surge-room"
    assert "maxPerZone" in plan.refusals[0].reason
