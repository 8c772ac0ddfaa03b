"""Faults injected into the simulated platform (`--inject`, parsed by `toolkit.targets.sim.parse_injections`):
applied to a fresh platform or one that has been running, at once or at a pod's next restart, or refused with why.
They act on the shared pods and through each component's model; what is injected is kept in `World.faults`."""

from __future__ import annotations

from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import TYPE_CHECKING

from toolkit.errors import UsageError
from toolkit.model import Health
from toolkit.targets.sim.params import NEVER

if TYPE_CHECKING:
    from toolkit.targets.sim.world import World


@dataclass
class Faults:
    never_ready: list[str] = field(default_factory=list)  # pods that never become Ready after their next restart
    slow_catchup: float = 1.0  # multiplier on catch-up time
    red_cluster: bool = False  # an Elasticsearch primary is lost from the start
    crash_after_step: int = 0  # the orchestrator dies right after its K-th step-starting action
    unready_at_start: list[str] = field(default_factory=list)  # pods that are not Ready when the run starts
    recovering: dict[str, float] = field(default_factory=dict)  # broker pod -> seconds it stays in log recovery
    terminating: dict[str, float] = field(default_factory=dict)  # pod -> seconds it takes to terminate (deleted)
    readiness_fails: dict[str, float] = field(default_factory=dict)  # pod -> seconds its readiness probe fails
    node_never_ready: list[str] = field(default_factory=list)  # zones ("*": any) whose surged nodes never get Ready
    pdb_blocks: dict[str, float] = field(default_factory=dict)  # workload -> seconds its PDB allows no disruption
    slow_drain: float = 1.0  # multiplier on the time an evicted pod takes to terminate


class InjectionError(UsageError):
    """A fault that cannot be injected: unknown or malformed, a pod the platform does not have, or a state the
    fault cannot apply to. Nothing was changed."""


def apply_faults(world: World, faults: Faults) -> None:
    """Inject `faults` into `world` NOW (see `World.apply_faults`). All are checked before any is applied, so a
    refusal changes nothing."""
    problems = fault_problems(world, faults)
    if problems:
        raise InjectionError("; ".join(problems) + ". Nothing was injected")
    kept = world.faults
    kept.never_ready.extend(n for n in faults.never_ready if n not in kept.never_ready)
    for name in faults.never_ready:
        if world.pods[name].phase == "starting":
            world.pods[name].ready_at = NEVER
    if faults.slow_catchup != 1.0:
        kept.slow_catchup = faults.slow_catchup
    if faults.crash_after_step:
        kept.crash_after_step = faults.crash_after_step
    for name, seconds in faults.recovering.items():
        world.pods[name].recovering_until = world.now + seconds
        kept.recovering[name] = seconds
    for name in faults.unready_at_start:
        pod = world.pods[name]
        pod.ready, pod.phase = False, "starting"
        pod.ready_at = (
            NEVER
            if name in kept.never_ready
            else world.now + world.controllers.restart_seconds(world.component_of(pod))
        )
        world.member_down(name)
        kept.unready_at_start.append(name)
    for name, seconds in faults.terminating.items():
        world.controllers.delete_pod(name, seconds=seconds, node_stays=True)
        kept.terminating[name] = seconds
    for name, seconds in faults.readiness_fails.items():
        pod = world.pods[name]
        pod.ready, pod.probe_fails_until = False, world.now + seconds
        kept.readiness_fails[name] = seconds
    for zone in faults.node_never_ready:
        if zone not in kept.node_never_ready:
            kept.node_never_ready.append(zone)
    for workload, seconds in faults.pdb_blocks.items():
        kept.pdb_blocks[workload] = world.now + seconds  # until then
    if faults.slow_drain != 1.0:
        kept.slow_drain = faults.slow_drain
    if faults.red_cluster:
        world.elasticsearch.lose_a_primary()
        kept.red_cluster = True


def fault_problems(world: World, faults: Faults) -> list[str]:
    """Why each of `faults` cannot be injected into `world` now ([]: all can)."""
    problems: list[str] = []
    named: list[tuple[str, str]] = [("never-ready", n) for n in faults.never_ready]
    named += [("unready", n) for n in faults.unready_at_start]
    named += [("recovering", n) for n in faults.recovering]
    named += [("terminating", n) for n in faults.terminating]
    named += [("readiness-fails", n) for n in faults.readiness_fails]
    unknown = [(fault, name) for fault, name in named if name not in world.pods]
    if unknown:
        guesses = [get_close_matches(name, list(world.pods), n=1) for _fault, name in unknown]
        hint = "; ".join(f"did you mean {g[0]}?" for g in guesses if g)
        problems.append(
            f"--inject {', '.join(f'{f}={n}' for f, n in unknown)}: no such pod in {world.environment}"
            + (f" ({hint})" if hint else "")
            + f"; its pods: {', '.join(sorted(world.pods))}"
        )
    for name in faults.recovering:
        if name in world.pods and world.kafka.node_of_pod(name) is None:
            problems.append(f"--inject recovering={name}: log recovery applies to Kafka nodes, {name} is not one")
    for fault, name in named:
        pod = world.pods.get(name)
        if pod is None or fault == "never-ready":
            continue
        if pod.phase != "running" or not pod.ready:
            state = "terminating" if pod.phase == "terminating" else "not Ready"
            problems.append(f"--inject {fault}={name}: {name} is already {state}; inject it once it is Ready again")
    zones = {n.zone for n in world.kubernetes.nodes.values()}
    for zone in faults.node_never_ready:
        if zone != "*" and zone not in zones:
            problems.append(
                f"--inject node-never-ready={zone}: no zone {zone} in {world.environment} (its zones: "
                f"{', '.join(sorted(zones)) or 'none: it models no nodes'})"
            )
    for workload in faults.pdb_blocks:
        if workload not in world.workloads:
            guess = get_close_matches(workload, list(world.workloads), n=1)
            problems.append(
                f"--inject pdb-blocks={workload}: no such workload in {world.environment}"
                + (f" (did you mean {guess[0]}?)" if guess else "")
                + f"; its workloads: {', '.join(sorted(world.workloads))}"
            )
    if faults.red_cluster:
        if not any(s.primary for s in world.elasticsearch.shards):
            problems.append("--inject red-cluster: this platform has no Elasticsearch shard to lose")
        elif world.elasticsearch.health() is Health.RED:
            problems.append("--inject red-cluster: Elasticsearch is already red")
    return problems
