"""The engine's plug-in point: a fourth component that exists only in this test — a schema registry with a leader
and replicas that must be in sync — plans and runs on the simulated platform with a driver, a simulated data-plane
port and a catalog entry, and nothing under toolkit/engine/ knowing it exists.

The registry's rules (made up for the test, shaped like a real quorum system): a member may restart only while every
other member is in sync (caught up for CATCH_UP seconds after it became Ready); the leader restarts last, after
handing leadership over; a restart is done when the pod runs the new version and is in sync again.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import yaml

from toolkit.catalog import CATALOG_FILE, Catalog
from toolkit.config.platform import PlatformSpec
from toolkit.engine import planner
from toolkit.engine.drivers import ComponentPlan, StepContext, default_drivers
from toolkit.engine.drivers.base import apply_spec_step, perform_apply_spec, spec_applied, stale_pods
from toolkit.engine.executor import Event, Executor
from toolkit.model import PlatformState, Step, StepKind, UpgradeSettings, Verdict
from toolkit.targets.sim import SimTarget, World, build_world

REGISTRY = "schema-registry"
CATCH_UP = 20.0
ENGINE = Path(__file__).resolve().parents[2] / "toolkit" / "engine"


def catalog_with_registry() -> Catalog:
    data = yaml.safe_load(CATALOG_FILE.read_text())
    data["upgrade_order"].append(REGISTRY)
    data["components"][REGISTRY] = {
        "chart": REGISTRY,
        "image": "example.org/schema-registry",
        "default": "7.6.0",
        "versions": {"7.6.0": {}, "7.7.1": {}, "8.0.0": {}},
        "rules": {"min_source_for_major": {"8": "7.7.0"}},
    }
    return Catalog.model_validate(data)


@dataclass(frozen=True)
class RegistryState:
    leader: str | None
    in_sync: tuple[str, ...]
    versions: tuple[tuple[str, str], ...]


class RegistryPort:
    """The registry's simulated data plane: follows the world's pods (in sync CATCH_UP s after Ready)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.leader = "registry-0"
        self.handovers: list[str] = []

    def observe(self, world: World) -> RegistryState:
        pods = sorted((p for p in world.pods.values() if p.workload == "registry"), key=lambda p: p.name)
        in_sync = tuple(p.name for p in pods if p.ready and world.now - p.up_since >= CATCH_UP)
        if self.leader not in in_sync:
            self.leader = in_sync[0] if in_sync else None
        return RegistryState(self.leader, in_sync, tuple((p.name, p.version) for p in pods))

    def hand_over_leadership(self, away_from: str) -> None:
        state = self.observe(self.world)
        others = [m for m in state.in_sync if m != away_from]
        if others:
            self.leader = others[0]
            self.handovers.append(f"{away_from}->{others[0]}")


class RegistryDriver:
    name = REGISTRY

    def plan(self, state: PlatformState, version: str, settings: UpgradeSettings, catalog: Catalog) -> ComponentPlan:
        registry: RegistryState = state.data(REGISTRY)
        out = ComponentPlan()
        apply = apply_spec_step(REGISTRY, state.workloads_of(REGISTRY), version)
        if apply is not None:
            out.steps.append(apply)
        stale = [pod.name for _w, pod in stale_pods(state.workloads_of(REGISTRY), version)]
        for pod in sorted(stale, key=lambda name: (name == registry.leader, name)):
            why = "the leader restarts last" if pod == registry.leader else "followers first"
            out.steps.append(Step(StepKind.RESTART, REGISTRY, (pod,), version, f"{pod}: {why}", phase=1))
        return out

    def repairs(self, state: PlatformState) -> list[Step]:
        return []

    def gates(self, state: PlatformState, step: Step, settings: UpgradeSettings) -> list[Verdict]:
        registry: RegistryState = state.data(REGISTRY)
        members = [p.name for w in state.workloads_of(REGISTRY) for p in w.pods]
        lagging = [m for m in members if m not in registry.in_sync and m not in step.members]
        if lagging:
            return [Verdict.wait("registry.in-sync", f"member {lagging[0]} is not in sync yet")]
        return [Verdict.passed("registry.in-sync", "every other member is in sync")]

    def done(self, state: PlatformState, step: Step, settings: UpgradeSettings) -> Verdict:
        if step.kind == StepKind.APPLY_SPEC:
            return spec_applied(state, step)
        registry: RegistryState = state.data(REGISTRY)
        for pod in step.members:
            if dict(registry.versions).get(pod) != step.version or pod not in registry.in_sync:
                return Verdict.wait("registry.recovered", f"{pod} is not in sync on {step.version} yet")
        return Verdict.passed("registry.recovered", f"{', '.join(step.members)} in sync on {step.version}")

    def perform(self, step: Step, ctx: StepContext) -> None:
        port: RegistryPort = ctx.target.data_plane(REGISTRY)
        if step.kind == StepKind.APPLY_SPEC:
            perform_apply_spec(step, ctx)
            return
        for pod in step.members:
            if ctx.observe().data(REGISTRY).leader == pod:
                ctx.act(f"hand leadership over from {pod}", lambda pod=pod: port.hand_over_leadership(pod))
            ctx.restart(pod)
        ctx.wait_done(confirm=True, retry_members=True)

    def running_versions(self, state: PlatformState) -> set[str]:
        return {v for _pod, v in state.data(REGISTRY).versions}

    def path_rules(self, catalog: Catalog, state: PlatformState, running: list[str], target: str) -> Verdict | None:
        return None

    def rollback_rules(self, catalog: Catalog, state: PlatformState, previous: str) -> Verdict:
        return Verdict.passed(f"{REGISTRY}.rollback", "allowed")

    def observed(self, state: PlatformState) -> Verdict:
        return Verdict.passed(f"{REGISTRY}.observable", "observed")


def platform_with_registry() -> tuple[SimTarget, RegistryPort]:
    world = build_world("plugin", PlatformSpec())
    world.controllers.add_workload("registry", REGISTRY, "StatefulSet", "member", 3, "7.6.0")
    target = SimTarget(world)
    port = RegistryPort(world)
    target.add_data_plane(REGISTRY, port, port.observe)
    return target, port


DRIVERS = {**default_drivers(), REGISTRY: RegistryDriver()}
SETTINGS = UpgradeSettings(poll_interval=5, confirm_seconds=5)


def test_a_plugin_component_plans_with_its_own_order_and_the_catalog_path_rules() -> None:
    target, _port = platform_with_registry()
    cat = catalog_with_registry()
    plan = planner.plan(target.observe(), {REGISTRY: "7.7.1"}, SETTINGS, cat, DRIVERS)
    assert not plan.refused, plan.refusals
    assert [s.kind for s in plan.steps] == ["apply-spec", "restart", "restart", "restart"]
    assert plan.steps[-1].members == ("registry-0",) and "leader restarts last" in plan.steps[-1].reason
    # the catalog's generic rules apply to it like to any component
    refused = planner.plan(target.observe(), {REGISTRY: "8.0.0"}, SETTINGS, cat, DRIVERS)
    assert refused.refused and refused.refusals[0].rule == f"{REGISTRY}.version-path"
    assert "7.7.0" in refused.refusals[0].reason
    # without its driver, the component is refused by name, never planned as another one
    no_driver = planner.plan(target.observe(), {REGISTRY: "7.7.1"}, SETTINGS, cat, default_drivers())
    assert no_driver.refusals[0].rule == f"{REGISTRY}.driver"


def test_a_plugin_component_runs_through_the_engine_behind_its_own_gates() -> None:
    target, port = platform_with_registry()
    target.world.pods["registry-2"].up_since = target.world.now  # still catching up when the run starts
    plan = planner.plan(target.observe(), {REGISTRY: "7.7.1"}, SETTINGS, catalog_with_registry(), DRIVERS)
    assert plan.steps[1].blocked is not None and plan.steps[1].blocked.rule == "registry.in-sync"
    events: list[Event] = []
    executor = Executor(
        target, catalog_with_registry(), {REGISTRY: "7.7.1"}, SETTINGS, drivers=DRIVERS, on_event=events.append
    )
    result = executor.run()
    assert result.outcome == "completed", result.reason
    state = target.observe()
    assert {p.version for w in state.workloads_of(REGISTRY) for p in w.pods} == {"7.7.1"}
    restarts = [r.members[0] for r in result.steps if r.kind == "restart"]
    # registry-1 could not go while registry-2 caught up: it went back in the queue (the driver's gate, with its
    # reason), the lagging member restarted first, the leader last after handing over
    assert restarts == ["registry-2", "registry-1", "registry-0"]
    requeued = [e for e in events if e.kind == "requeue"]
    assert requeued and requeued[0].rule == "registry.in-sync" and "registry-2" in requeued[0].message
    assert port.handovers[-1].startswith("registry-0->")
    assert "registry.recovered" in {g.rule for r in result.steps for g in r.gates_waited}
    # the other components were not touched
    assert all(p.restarts == 0 for w in state.workloads if w.component != REGISTRY for p in w.pods)


def test_the_planner_and_executor_name_no_component() -> None:
    """No component-specific branch: the generic engine files mention no component by name."""
    names = {"kafka", "elasticsearch", "workers", "kubernetes", "KAFKA", "ELASTICSEARCH", "WORKERS", "KUBERNETES"}
    for module in ("planner.py", "executor.py", "paths.py", "lease.py"):
        tree = ast.parse((ENGINE / module).read_text())
        found = {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
        } | {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr in names}
        assert not found, f"toolkit/engine/{module} names {sorted(found)}"
