"""The ports between the engine and a platform: what the engine may observe and do, and nothing else.

A `Target` (the simulated platform, the local control plane, kind, EKS) offers
- `observe()`: the whole platform as plain data (`PlatformState`), fresh at each call;
- `workloads`: the Kubernetes side every component shares (change a workload's version, stamp its pod template
  without a version change, restart one pod, pause a Deployment);
- `data_plane(component)`: the component's own port, whose shape the component's driver declares
  (`toolkit.engine.drivers.kafka.KafkaPort`, ...); a component that acts only through its workloads has none;
- `control`: what is kept with the platform about the runs on it: the lease (one orchestrator at a time), the audit
  trail, a pending pause/abort request, and the restarts each member was given (the restart budget), so a resumed
  run neither forgets a request nor starts its budget over;
- `clock`: the only way the engine waits (virtual in tests);
- optionally `status` (`StatusPort`): where a run is shown to people (a status object, events on the workloads),
  written from the executor's events by the caller, never read by the engine.
Implementations live in `toolkit.targets` (adapters) and `toolkit.sim` (the simulated platform); the engine only
sees these protocols, so every decision is testable on the simulated platform and a virtual clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from toolkit.model import Lease, Notice, PlatformState, RunRequest


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None:
        """Wait the whole time (pacing, backoff)."""

    def wait(self, seconds: float) -> None:
        """Wait until the platform may have changed, at most `seconds`: a real target wakes on its watch, so the
        engine reacts to a change at once; the poll interval is only the longest wait."""


class ActionError(RuntimeError):
    """An action the target could not carry out (API error, conflict). Retryable within the action budget."""


class LeaseHeldError(RuntimeError):
    """Another orchestrator holds the environment's lease."""


class WorkloadsPort(Protocol):
    """The Kubernetes side of a platform, shared by every component."""

    def apply_spec(self, component: str, workloads: tuple[str, ...], version: str) -> None:
        """Make the workloads ask for `version` (pod template image and version label); with OnDelete nothing
        restarts, a Deployment rolls through its own strategy."""

    def annotate_template(self, component: str, workloads: tuple[str, ...], annotations: Mapping[str, str]) -> None:
        """Set `annotations` on the workloads' pod template, their version unchanged (a restart asked for without a
        new version: rotated certificates, for one). Their controllers see a new revision, so a run of the engine at
        the CURRENT versions restarts every pod behind the usual gates (`stale_pods`): with OnDelete nothing restarts
        until the engine restarts it; a Deployment rolls through its own strategy. Idempotent: a template that
        carries them already is not touched. Observed back in `Workload.annotations`."""

    def restart_pod(self, pod: str) -> None:
        """Delete exactly this pod (with a UID precondition) so its controller re-creates it on the new spec."""

    def pause(self, workload: str, paused: bool) -> None:
        """Pause or resume a Deployment's roll."""


class ControlPort(Protocol):
    """One orchestrator at a time, a trail of every decision, pending requests and restart budgets, all kept with
    the platform (the simulated platform's state, or objects in the platform's namespace)."""

    def read_lease(self) -> Lease | None: ...

    def write_lease(self, lease: Lease | None, expected: Lease | None) -> None:
        """Replace the lease only if it still equals `expected` (compare-and-swap); raise LeaseHeldError if not."""

    def holder_alive(self, holder: str) -> bool:
        """Whether the process named by `holder` still runs (only knowable for holders on this host)."""

    def audit(self, record: dict[str, Any]) -> None:
        """Append one record, durably, before returning (a crash right after loses nothing already audited)."""

    def audit_trail(self) -> list[dict[str, Any]]: ...

    def read_request(self) -> RunRequest | None:
        """The pause or abort request waiting for the run, if any."""

    def write_request(self, request: RunRequest | None) -> None:
        """Store a request (None withdraws it: resume, or an abort consumed by the run)."""

    def restarts_spent(self, member: str, version: str) -> int:
        """How many restarts the engine issued to `member` towards `version` (kept across resumed runs)."""

    def spend_restart(self, member: str, version: str) -> int:
        """Record one more restart of `member` towards `version`, before it is issued; the new count."""

    def clear_restarts(self) -> None:
        """Forget the restart counts (an upgrade completed)."""


class Target(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def simulated(self) -> bool:
        """True when any part of what the engine gates on is modelled rather than observed (sim, local)."""

    @property
    def clock(self) -> Clock: ...

    @property
    def workloads(self) -> WorkloadsPort: ...

    @property
    def control(self) -> ControlPort: ...

    def observe(self) -> PlatformState: ...

    def data_plane(self, component: str) -> Any:
        """The component's own port (its driver names the protocol); raises KeyError when it has none."""


class StatusPort(Protocol):
    """Where a run is shown to people while and after it runs (`toolkit.engine.status`): one status object with the
    platform (on Kubernetes the ConfigMap `toolkit-upgrade-status`, Strimzi/ECK style) and events on the objects the
    run touches (Kubernetes Events). Never read back to decide anything: the engine plans from observed state. A
    target that offers it has a `status` attribute; writing it must never fail a run (adapters raise ActionError,
    the reporter counts it and carries on)."""

    def write_status(self, data: Mapping[str, str]) -> None:
        """Replace the status object's data (a ConfigMap's string map); a concurrent change is re-read and the
        write applied again (the last run's picture wins)."""

    def read_status(self) -> dict[str, str] | None:
        """The status object's data, or None when no run has written one."""

    def record_event(self, notice: Notice) -> None:
        """Record `notice` on the objects it names (a pod's notice also on its workload; a component's on all of its
        workloads); a repeat of the same notice on the same object counts up instead of adding another."""
