"""The `sim` environment: a simulated platform behind the engine's `Target` interface, on a virtual clock.

`SimTarget` wraps a `World` (see world.py for what it models). Observations are the snapshot taken at the latest
observation tick. Actions change the world at once; their effects unfold as the virtual clock advances. Faults are
injected with `--inject` (see `parse_injections`). `SimStore` keeps the world in a JSON file so that a CLI run can be
interrupted (a simulated orchestrator crash) and the same command resumes.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from toolkit.engine.target import LeaseHeldError
from toolkit.model import Component, Lease, PlatformState
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
    "params_from",
    "parse_injections",
]


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


class SimTarget:
    """The engine's view of a simulated platform."""

    simulated = True

    def __init__(self, world: World, holder_host: str | None = None) -> None:
        self.world = world
        self.name = world.environment
        self.clock = VirtualClock(world)
        self._host = holder_host or socket.gethostname()
        self._snapshot: PlatformState | None = None
        self._snapshot_at = -1.0
        self._crash_at = world.actions + world.faults.crash_after_step if world.faults.crash_after_step else 0

    # ------------------------------------------------------------------ observation

    def observe(self) -> PlatformState:
        tick = self.world.last_observed_at
        if self._snapshot is None or tick > self._snapshot_at:
            self._snapshot = self.world.snapshot()
            self._snapshot_at = tick
        return self._snapshot

    # ------------------------------------------------------------------ actions

    def _step_action(self) -> None:
        self.world.actions += 1
        if self._crash_at and self.world.actions >= self._crash_at:
            self._crash_at = 0
            self.world.faults.crash_after_step = 0
            raise OrchestratorCrash(f"simulated orchestrator crash after step-starting action {self.world.actions}")

    def apply_spec(self, component: Component, workloads: tuple[str, ...], version: str) -> None:
        for name in workloads:
            self.world.apply_spec(name, version)
        self._step_action()

    def restart_pod(self, pod: str) -> None:
        self.world.delete_pod(pod)
        self._step_action()

    def roll_deployment(self, name: str, version: str) -> None:
        self.world.apply_spec(name, version)
        self._step_action()

    def pause_deployment(self, name: str, paused: bool) -> None:
        self.world.set_paused(name, paused)

    def elect_preferred_leaders(self) -> None:
        self.world.elect_preferred_leaders()

    def finalize_metadata_version(self, metadata_version: str) -> None:
        self.world.metadata_version = metadata_version
        self._step_action()

    def es_prepare_restart(self, node: str, method: str) -> None:
        self.world.es_prepare(node, method)

    def es_shutdown_complete(self, node: str) -> bool:
        return any(r.node == node and r.status == "COMPLETE" for r in self.world.es_shutdowns)

    def es_finish_restart(self, node: str, method: str) -> None:
        self.world.es_finish(node, method)

    def es_reset_allocation(self) -> None:
        self.world.es_allocation = None

    def es_remove_shutdown(self, node: str) -> None:
        self.world.es_remove_shutdown(node)

    # ------------------------------------------------------------------ lease and audit

    def read_lease(self) -> Lease | None:
        return self.world.lease

    def write_lease(self, lease: Lease | None, expected: Lease | None) -> None:
        if self.world.lease != expected:
            holder = self.world.lease.holder if self.world.lease else "nobody"
            raise LeaseHeldError(f"the lease changed under us: now held by {holder}")
        self.world.lease = lease

    def holder_alive(self, holder: str) -> bool:
        return holder_alive(holder, self._host)

    def audit(self, record: dict[str, Any]) -> None:
        entry = {"wall": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "simulated": True, **record}
        self.world.audit.append(entry)

    def audit_trail(self) -> list[dict[str, Any]]:
        return list(self.world.audit)


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
