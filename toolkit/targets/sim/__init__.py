"""The `sim` environment: a simulated platform behind the engine's `Target` interface, on a virtual clock.

`SimTarget` wraps a `World` (see world.py for what it models). Observations are the snapshot taken at the latest
observation tick. Actions change the world at once; their effects unfold as the virtual clock advances. Faults are
injected with `--inject` (see `parse_injections`). `SimStore` keeps the world in a JSON file so that a CLI run can be
interrupted (a simulated orchestrator crash) and the same command resumes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from toolkit.config.environments import Environment
from toolkit.engine.ports import LeaseHeldError
from toolkit.errors import UsageError
from toolkit.model import Lease, PlatformState
from toolkit.targets.process import holder_alive
from toolkit.targets.sim.world import Faults, SimParams, World, build_world, params_from

__all__ = [
    "Faults",
    "InjectionError",
    "OrchestratorCrash",
    "SimParams",
    "SimStore",
    "SimTarget",
    "VirtualClock",
    "World",
    "build_world",
    "params_for",
    "params_from",
    "parse_injections",
    "store_for",
]


def params_for(env: Environment) -> SimParams:
    """The simulation parameters of an environment (its `sim:` mapping), or a UsageError naming its file."""
    try:
        return params_from(env.sim)
    except ValueError as exc:
        raise UsageError(f"environment {env.name} ({env.source}): {exc}") from None


def store_for(env: Environment) -> SimStore:
    """Where the simulated platform of a sim environment is kept between runs."""
    return SimStore(env.state_dir() / "sim-world.json")


class OrchestratorCrash(BaseException):
    """The simulated orchestrator process dies (fault injection). Like SIGKILL, nothing runs after it."""


class InjectionError(ValueError):
    pass


INJECTIONS = {
    "never-ready=POD": "the pod never becomes Ready after its next restart",
    "unready=POD": "the pod is not Ready when the run starts",
    "slow-catchup=FACTOR": "brokers take FACTOR times longer to rejoin the ISR",
    "recovering=POD:SECONDS": "the Kafka broker stays in log recovery for SECONDS (it must not be restarted)",
    "red-cluster": "an Elasticsearch primary is lost from the start",
    "crash-after-step=K": "the orchestrator dies right after its K-th step-starting action",
}


def parse_injections(items: list[str], base: Faults | None = None) -> Faults:
    faults = base or Faults()
    problems = []
    for item in items:
        key, _, value = item.partition("=")
        try:
            if key == "never-ready" and value:
                faults.never_ready.append(value)
            elif key == "unready" and value:
                faults.unready_at_start.append(value)
            elif key == "slow-catchup" and value:
                faults.slow_catchup = float(value)
                if faults.slow_catchup <= 0:
                    raise ValueError
            elif key == "recovering" and ":" in value:
                pod, _, seconds = value.partition(":")
                faults.recovering[pod] = float(seconds)
            elif key == "red-cluster" and not value:
                faults.red_cluster = True
            elif key == "crash-after-step" and value:
                faults.crash_after_step = int(value)
                if faults.crash_after_step < 1:
                    raise ValueError
            else:
                raise ValueError
        except ValueError:
            problems.append(item)
    if problems:
        known = "; ".join(f"{k}: {v}" for k, v in INJECTIONS.items())
        raise InjectionError(f"unknown or malformed --inject {', '.join(problems)!s}; known faults are {known}")
    return faults


class VirtualClock:
    def __init__(self, world: World) -> None:
        self._world = world

    def now(self) -> float:
        return self._world.now

    def sleep(self, seconds: float) -> None:
        self._world.advance(self._world.now + max(0.0, seconds))

    def wait(self, seconds: float) -> None:
        """Observations arrive at the set interval in the sim: waiting is sleeping."""
        self.sleep(seconds)


class SimWorkloads:
    """The Kubernetes side of the simulated platform (`toolkit.engine.ports.WorkloadsPort`)."""

    def __init__(self, target: SimTarget) -> None:
        self._target = target
        self._world = target.world

    def apply_spec(self, component: str, workloads: tuple[str, ...], version: str) -> None:
        for name in workloads:
            self._world.apply_spec(name, version)
        self._target.step_action()

    def restart_pod(self, pod: str) -> None:
        self._world.delete_pod(pod)
        self._target.step_action()

    def pause(self, workload: str, paused: bool) -> None:
        self._world.set_paused(workload, paused)


class SimKafka:
    """The simulated Kafka cluster's port (`toolkit.engine.drivers.kafka.KafkaPort`)."""

    def __init__(self, target: SimTarget) -> None:
        self._target = target
        self._world = target.world

    def elect_preferred_leaders(self) -> None:
        self._world.elect_preferred_leaders()

    def finalize_metadata_version(self, metadata_version: str) -> None:
        self._world.metadata_version = metadata_version
        self._target.step_action()


class SimElasticsearch:
    """The simulated Elasticsearch cluster's port (`toolkit.engine.drivers.elasticsearch.ElasticsearchPort`)."""

    def __init__(self, world: World) -> None:
        self._world = world

    def prepare_restart(self, node: str, method: str) -> None:
        self._world.es_prepare(node, method)

    def shutdown_complete(self, node: str) -> bool:
        return any(r.node == node and r.status == "COMPLETE" for r in self._world.es_shutdowns)

    def finish_restart(self, node: str, method: str) -> None:
        self._world.es_finish(node, method)

    def reset_allocation(self) -> None:
        self._world.es_allocation = None

    def remove_shutdown(self, node: str) -> None:
        self._world.es_remove_shutdown(node)


class SimControl:
    """Lease and audit trail, kept in the simulated platform (`toolkit.engine.ports.ControlPort`)."""

    def __init__(self, world: World, host: str) -> None:
        self._world = world
        self._host = host

    def read_lease(self) -> Lease | None:
        return self._world.lease

    def write_lease(self, lease: Lease | None, expected: Lease | None) -> None:
        if self._world.lease != expected:
            holder = self._world.lease.holder if self._world.lease else "nobody"
            raise LeaseHeldError(f"the lease changed under us: now held by {holder}")
        self._world.lease = lease

    def holder_alive(self, holder: str) -> bool:
        return holder_alive(holder, self._host)

    def audit(self, record: dict[str, Any]) -> None:
        entry = {"wall": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "simulated": True, **record}
        self._world.audit.append(entry)

    def audit_trail(self) -> list[dict[str, Any]]:
        return list(self._world.audit)


class SimTarget:
    """The engine's view of a simulated platform (`toolkit.engine.ports.Target`). Extra data-plane ports (a
    plug-in component's simulated adapter) may be registered with `add_data_plane`."""

    simulated = True

    def __init__(self, world: World, holder_host: str | None = None) -> None:
        self.world = world
        self.name = world.environment
        self.clock = VirtualClock(world)
        self.workloads = SimWorkloads(self)
        self.control = SimControl(world, holder_host or socket.gethostname())
        self._ports: dict[str, Any] = {"kafka": SimKafka(self), "elasticsearch": SimElasticsearch(world)}
        self._observers: dict[str, Callable[[World], Any]] = {}
        self._snapshot: PlatformState | None = None
        self._snapshot_at = -1.0
        self._crash_at = world.actions + world.faults.crash_after_step if world.faults.crash_after_step else 0

    def add_data_plane(self, component: str, port: Any, observe: Callable[[World], Any]) -> None:
        """Register a plug-in component: its port, and how its data-plane state is read from the world."""
        self._ports[component] = port
        self._observers[component] = observe
        self._snapshot = None

    def data_plane(self, component: str) -> Any:
        return self._ports[component]

    def observe(self) -> PlatformState:
        tick = self.world.last_observed_at
        if self._snapshot is None or tick > self._snapshot_at:
            snapshot = self.world.snapshot()
            if self._observers:
                extra = tuple((name, observe(self.world)) for name, observe in self._observers.items())
                snapshot = dataclasses.replace(snapshot, extra=extra)
            self._snapshot = snapshot
            self._snapshot_at = tick
        return self._snapshot

    def step_action(self) -> None:
        """Count a step-starting action; the injected orchestrator crash happens after the K-th."""
        self.world.actions += 1
        if self._crash_at and self.world.actions >= self._crash_at:
            self._crash_at = 0
            self.world.faults.crash_after_step = 0
            raise OrchestratorCrash(f"simulated orchestrator crash after step-starting action {self.world.actions}")


_WORLD = TypeAdapter(World)


class SimStore:
    """Keeps one simulated platform in a JSON file under the toolkit's state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> World:
        data = json.loads(self.path.read_text())
        return _WORLD.validate_python(data)

    def save(self, world: World) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(_WORLD.dump_python(world, mode="python"), default=str))
        tmp.replace(self.path)

    def delete(self) -> bool:
        if self.path.exists():
            self.path.unlink()
            return True
        return False
