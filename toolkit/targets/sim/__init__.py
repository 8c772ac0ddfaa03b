"""The `sim` environment: a simulated platform behind the engine's `Target` interface, on a virtual clock.

`SimTarget` wraps a `World` (see world.py, and the per-part modules it names, for what it models). Observations are
the snapshot taken at the latest observation tick. Actions change the world at once; their effects unfold as the
virtual clock advances (as fast as the CPU allows, or at `wall_pace` wall seconds per simulated second so a run can be
watched and signalled). Faults are injected with `--inject` (`parse_injections`, applied by `World.apply_faults`, also
to a platform that has been running: applied now, or refused with why).

`SimStore` keeps a simulated platform in files under the toolkit's state directory, so that several processes can
share it as they would share a real cluster:
- `sim-world.json`: the platform (pods, Kafka, Elasticsearch, workers, virtual time). Only the process holding the
  lease writes it: after each action, at most once a wall second while it renews the lease, and before releasing
  the lease; a process that does not hold the lease never writes it (so a refused second run cannot clobber it).
- `sim-world.control.json`: the lease, a pending pause/abort request and the restart budgets: each read and
  compare-and-swap under an exclusive file lock (fcntl) held across processes.
- `sim-world.audit.jsonl`: the audit trail, one JSON line appended (and flushed) per record under the same lock:
  a record written before a process dies is kept.
- `sim-world.status.json`, `sim-world.events.json`: the run's status object and its events, shaped as on Kubernetes
  (`toolkit.targets.sim.status`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import math
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from toolkit.config.environments import Environment
from toolkit.engine.ports import ActionError, LeaseHeldError
from toolkit.errors import UsageError
from toolkit.model import Lease, PlatformState, RunRequest
from toolkit.targets.process import holder_alive, wait_or_wake
from toolkit.targets.sim.status import SimStatus
from toolkit.targets.sim.world import Faults, InjectionError, SimParams, World, build_world, params_from

__all__ = [
    "Faults",
    "InjectionError",
    "OrchestratorCrash",
    "SimControl",
    "SimParams",
    "SimStatus",
    "SimStore",
    "SimTarget",
    "StoredSimControl",
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


INJECTIONS = {
    "never-ready=POD": "the pod never becomes Ready after its next restart",
    "unready=POD": "the pod is not Ready now (it is starting; it serves nothing)",
    "slow-catchup=FACTOR": "brokers take FACTOR times longer to rejoin the ISR",
    "recovering=POD:SECONDS": "the Kafka broker stays in log recovery for SECONDS (it must not be restarted)",
    "terminating=POD:SECONDS": "the pod is deleted by someone else and terminates for SECONDS; an Elasticsearch node "
    "stays joined with its shards meanwhile (a preStop hook)",
    "readiness-fails=POD:SECONDS": "the pod's readiness probe fails for SECONDS while its process keeps serving "
    "(an Elasticsearch node stays joined: NotReady while joined)",
    "red-cluster": "an Elasticsearch primary is lost",
    "crash-after-step=K": "the orchestrator dies right after its K-th step-starting action",
    "node-never-ready[=ZONE]": "nodes surged from now on (in ZONE, or anywhere) register but never become Ready",
    "pdb-blocks=WORKLOAD:SECONDS": "the workload's PodDisruptionBudget allows no disruption for SECONDS: evictions "
    "of its pods are refused (429)",
    "slow-drain=FACTOR": "evicted pods take FACTOR times longer to terminate",
}


def _seconds(value: str) -> float:
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError
    return seconds


def parse_injections(items: list[str]) -> Faults:
    """The faults named by `--inject` items (the syntax; the pods are checked when the faults are applied to a
    platform, by `World.apply_faults`). Every malformed item is reported at once."""
    faults = Faults()
    problems = []
    for item in items:
        key, _, value = item.partition("=")
        pod, _, arg = value.partition(":")
        try:
            if key == "never-ready" and value and not arg:
                faults.never_ready.append(value)
            elif key == "unready" and value and not arg:
                faults.unready_at_start.append(value)
            elif key == "slow-catchup" and value:
                faults.slow_catchup = _seconds(value)
            elif key == "recovering" and pod and arg:
                faults.recovering[pod] = _seconds(arg)
            elif key == "terminating" and pod and arg:
                faults.terminating[pod] = _seconds(arg)
            elif key == "readiness-fails" and pod and arg:
                faults.readiness_fails[pod] = _seconds(arg)
            elif key == "red-cluster" and not value:
                faults.red_cluster = True
            elif key == "node-never-ready" and not arg:
                faults.node_never_ready.append(value or "*")
            elif key == "pdb-blocks" and pod and arg:
                faults.pdb_blocks[pod] = _seconds(arg)
            elif key == "slow-drain" and value:
                faults.slow_drain = _seconds(value)
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
        """Advance the virtual time; with `wall_pace` the wall clock follows, and a stop request (`wake`) ends the
        wait early at a whole simulated second (the clock's contract allows an early return)."""
        end = self._world.now + max(0.0, seconds)
        pace = self._world.params.wall_pace
        if pace <= 0:
            self._world.advance(end)
            return
        while self._world.now < end:
            step = min(1.0, end - self._world.now)
            self._world.advance(self._world.now + step)
            if wait_or_wake(pace * step):
                return

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
            self._world.controllers.apply_spec(name, version)
        self._target.step_action()

    def annotate_template(self, component: str, workloads: tuple[str, ...], annotations: Mapping[str, str]) -> None:
        for name in workloads:
            self._world.controllers.annotate_template(name, dict(annotations))
        self._target.persist()

    def restart_pod(self, pod: str) -> None:
        self._world.controllers.delete_pod(pod)
        self._target.step_action()

    def pause(self, workload: str, paused: bool) -> None:
        self._world.controllers.set_paused(workload, paused)
        self._target.persist()


class SimKafka:
    """The simulated Kafka cluster's port (`toolkit.engine.drivers.kafka.KafkaPort`)."""

    def __init__(self, target: SimTarget) -> None:
        self._target = target
        self._world = target.world

    def elect_preferred_leaders(self) -> None:
        self._world.kafka.elect_preferred_leaders()
        self._target.persist()

    def finalize_metadata_version(self, metadata_version: str) -> None:
        self._world.kafka.metadata_version = metadata_version
        self._target.step_action()


class SimElasticsearch:
    """The simulated Elasticsearch cluster's port (`toolkit.engine.drivers.elasticsearch.ElasticsearchPort`)."""

    def __init__(self, target: SimTarget) -> None:
        self._target = target
        self._world = target.world

    def prepare_restart(self, node: str, method: str) -> None:
        self._world.elasticsearch.prepare(node, method)
        self._target.persist()

    def shutdown_complete(self, node: str) -> bool:
        return any(r.node == node and r.status == "COMPLETE" for r in self._world.elasticsearch.shutdowns)

    def finish_restart(self, node: str, method: str) -> None:
        self._world.elasticsearch.finish(node, method)
        self._target.persist()

    def reset_allocation(self) -> None:
        self._world.elasticsearch.allocation = None
        self._target.persist()

    def remove_shutdown(self, node: str) -> None:
        self._world.elasticsearch.remove_shutdown(node)
        self._target.persist()


class SimKubernetes:
    """Kubernetes itself on the simulated platform (`toolkit.engine.drivers.kubernetes.KubernetesPort`)."""

    def __init__(self, target: SimTarget) -> None:
        self._target = target
        self._world = target.world

    def upgrade_control_plane(self, version: str) -> None:
        self._world.kubernetes.upgrade_control_plane(version)
        self._target.step_action()

    def update_addon(self, name: str, version: str) -> None:
        self._world.kubernetes.update_addon(name, version)
        self._target.step_action()

    def surge(self, group: str, version: str) -> None:
        try:
            self._world.kubernetes.surge(group, version)
        except ValueError as exc:
            raise ActionError(str(exc)) from None
        self._target.step_action()

    def claim(self, node: str, replaces: str) -> None:
        self._world.kubernetes.claim(node, replaces)
        self._target.persist()

    def cordon(self, node: str) -> None:
        self._world.kubernetes.cordon(node)
        self._target.step_action()

    def evict(self, namespace: str, pod: str, uid: str) -> bool:
        accepted = self._world.kubernetes.evict(pod, uid)
        if accepted:
            self._target.step_action()
        else:
            self._target.persist()
        return accepted

    def terminate(self, node: str) -> None:
        if node in self._world.kubernetes.nodes:
            self._world.kubernetes.terminate_node(node)
        self._target.step_action()


def _restart_key(member: str, version: str) -> str:
    return f"{member}@{version}"


def _audit_entry(record: dict[str, Any]) -> dict[str, Any]:
    return {"wall": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"), "simulated": True, **record}


class SimControl:
    """Lease, audit trail, requests and restart budgets kept in the in-memory world
    (`toolkit.engine.ports.ControlPort`): scenarios and rehearsals, where one process owns the platform."""

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
        self._world.audit.append(_audit_entry(record))

    def audit_trail(self) -> list[dict[str, Any]]:
        return list(self._world.audit)

    def read_request(self) -> RunRequest | None:
        return self._world.request

    def write_request(self, request: RunRequest | None) -> None:
        self._world.request = request

    def restarts_spent(self, member: str, version: str) -> int:
        return self._world.restarts_given.get(_restart_key(member, version), 0)

    def spend_restart(self, member: str, version: str) -> int:
        key = _restart_key(member, version)
        self._world.restarts_given[key] = self._world.restarts_given.get(key, 0) + 1
        return self._world.restarts_given[key]

    def clear_restarts(self) -> None:
        self._world.restarts_given.clear()

    def flush(self) -> None:
        """Nothing to write: the world lives in this process only."""


class StoredSimControl:
    """The control port of a simulated platform kept in a `SimStore`, shared by processes like a real cluster's
    Lease and ConfigMaps: every operation is a read(-modify-write) of the store's control file or audit file under
    the store's exclusive lock, so the lease is a true compare-and-swap across processes. The process holding the
    lease also writes the world (`flush`), fenced by the lease: never after it lost it."""

    FLUSH_EVERY = 1.0  # wall seconds between saves of the world while the lease is renewed

    def __init__(self, store: SimStore, world: World, host: str) -> None:
        self._store = store
        self._world = world
        self._host = host
        self._held: Lease | None = None
        self._flushed_at = 0.0

    def read_lease(self) -> Lease | None:
        with self._store.locked():
            return self._store.read_control().lease

    def write_lease(self, lease: Lease | None, expected: Lease | None) -> None:
        with self._store.locked():
            control = self._store.read_control()
            if control.lease != expected:
                holder = control.lease.holder if control.lease else "nobody"
                raise LeaseHeldError(f"the lease of {self._world.environment} changed under us: held by {holder}")
            ours = self._held is not None and expected == self._held
            if ours and (lease is None or time.monotonic() - self._flushed_at >= self.FLUSH_EVERY):
                self._save_world()  # the platform as this run leaves it, before anyone else may take the lease
            control.lease = lease
            self._store.write_control(control)
            self._held = lease

    def holder_alive(self, holder: str) -> bool:
        return holder_alive(holder, self._host)

    def audit(self, record: dict[str, Any]) -> None:
        with self._store.locked():
            self._store.append_audit(_audit_entry(record))

    def audit_trail(self) -> list[dict[str, Any]]:
        with self._store.locked():
            return self._store.read_audit()

    def read_request(self) -> RunRequest | None:
        with self._store.locked():
            return self._store.read_control().request

    def write_request(self, request: RunRequest | None) -> None:
        with self._store.locked():
            control = self._store.read_control()
            control.request = request
            self._store.write_control(control)

    def restarts_spent(self, member: str, version: str) -> int:
        with self._store.locked():
            return self._store.read_control().restarts.get(_restart_key(member, version), 0)

    def spend_restart(self, member: str, version: str) -> int:
        with self._store.locked():
            control = self._store.read_control()
            key = _restart_key(member, version)
            control.restarts[key] = control.restarts.get(key, 0) + 1
            self._store.write_control(control)
            return control.restarts[key]

    def clear_restarts(self) -> None:
        with self._store.locked():
            control = self._store.read_control()
            control.restarts = {}
            self._store.write_control(control)

    def flush(self) -> None:
        """Write the world if this process holds the lease (checked under the lock: never after losing it)."""
        if self._held is None:
            return
        with self._store.locked():
            if self._store.read_control().lease == self._held:
                self._save_world()

    def _save_world(self) -> None:
        self._store.save(self._world)
        self._flushed_at = time.monotonic()


class SimTarget:
    """The engine's view of a simulated platform (`toolkit.engine.ports.Target`). Extra data-plane ports (a
    plug-in component's simulated adapter) may be registered with `add_data_plane`."""

    simulated = True

    def __init__(
        self,
        world: World,
        holder_host: str | None = None,
        store: SimStore | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.world = world
        self.name = world.environment
        self.clock = VirtualClock(world)
        self.workloads = SimWorkloads(self)
        host = holder_host or socket.gethostname()
        self.control: SimControl | StoredSimControl = (
            SimControl(world, host) if store is None else StoredSimControl(store, world, host)
        )
        self.status = SimStatus(store, self.observe, wall)  # the run's status object and events (StatusPort)
        self._ports: dict[str, Any] = {
            "kafka": SimKafka(self),
            "elasticsearch": SimElasticsearch(self),
            "kubernetes": SimKubernetes(self),
        }
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

    def persist(self) -> None:
        """After an action: a stored platform is written at once (by the lease holder), so what was done outlives
        the process that did it."""
        self.control.flush()

    def step_action(self) -> None:
        """Count a step-starting action (and persist it); the injected orchestrator crash happens after the K-th."""
        self.world.actions += 1
        self.persist()
        if self._crash_at and self.world.actions >= self._crash_at:
            self._crash_at = 0
            self.world.faults.crash_after_step = 0
            raise OrchestratorCrash(f"simulated orchestrator crash after step-starting action {self.world.actions}")


@dataclasses.dataclass
class ControlRecord:
    """The control file of a stored simulated platform."""

    lease: Lease | None = None
    request: RunRequest | None = None
    restarts: dict[str, int] = dataclasses.field(default_factory=dict)


_CONTROL = TypeAdapter(ControlRecord)


class SimStore:
    """Keeps one simulated platform in files under the toolkit's state directory (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.control_path = path.with_name(f"{path.stem}.control.json")
        self.audit_path = path.with_name(f"{path.stem}.audit.jsonl")
        self.lock_path = path.with_name(f"{path.stem}.lock")
        self.status_path = path.with_name(f"{path.stem}.status.json")  # toolkit.targets.sim.status
        self.events_path = path.with_name(f"{path.stem}.events.json")
        self._lock_fd: int | None = None
        self._depth = 0

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's exclusive lock (across processes; re-entrant within this store object)."""
        if self._depth == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
            self._lock_fd = fd
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = None

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> World:
        data = json.loads(self.path.read_text())
        return World.load(data)

    def save(self, world: World) -> None:
        self._write(self.path, json.dumps(world.dump(), default=str))

    def _write(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)

    def read_control(self) -> ControlRecord:
        if not self.control_path.exists():
            return ControlRecord()
        return _CONTROL.validate_json(self.control_path.read_text())

    def write_control(self, control: ControlRecord) -> None:
        self._write(self.control_path, _CONTROL.dump_json(control).decode())

    def append_audit(self, entry: dict[str, Any]) -> None:
        with self.audit_path.open("a") as out:
            out.write(json.dumps(entry, default=str) + "\n")
            out.flush()

    def read_audit(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines() if line.strip()]

    def live_lease(self, now: float, host: str | None = None) -> Lease | None:
        """The lease, if its holder may still be running (not expired, and not a dead process of this host)."""
        lease = self.read_control().lease
        if lease is None or lease.expired(now) or not holder_alive(lease.holder, host):
            return None
        return lease

    def delete(self) -> bool:
        """Remove the platform with its lease, requests and audit trail."""
        with self.locked():
            existed = self.path.exists()
            for path in (self.path, self.control_path, self.audit_path, self.status_path, self.events_path):
                path.unlink(missing_ok=True)
        return existed  # the lock file stays: another process may hold it open
