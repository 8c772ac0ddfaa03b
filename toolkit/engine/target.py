"""The one interface between the engine and a platform: observe, a few actions, a clock, a lease and an audit trail.

Implementations live in `toolkit.targets` (the simulated platform, the local control plane, kind, EKS). The engine
only sees this protocol, so every decision is testable on the simulated platform and a virtual clock.
"""

from __future__ import annotations

from typing import Any, Protocol

from toolkit.model import Component, Lease, PlatformState


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


class Target(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def simulated(self) -> bool: ...

    @property
    def clock(self) -> Clock: ...

    def observe(self) -> PlatformState: ...

    # Kubernetes-side actions
    def apply_spec(self, component: Component, workloads: tuple[str, ...], version: str) -> None: ...

    def restart_pod(self, pod: str) -> None:
        """Delete exactly this pod (with a UID precondition) so its controller re-creates it on the new spec."""

    def roll_deployment(self, name: str, version: str) -> None: ...

    def pause_deployment(self, name: str, paused: bool) -> None: ...

    # Kafka
    def elect_preferred_leaders(self) -> None: ...

    def finalize_metadata_version(self, metadata_version: str) -> None: ...

    # Elasticsearch
    def es_prepare_restart(self, node: str, method: str) -> None: ...

    def es_shutdown_complete(self, node: str) -> bool: ...

    def es_finish_restart(self, node: str, method: str) -> None: ...

    def es_reset_allocation(self) -> None: ...

    def es_remove_shutdown(self, node: str) -> None: ...

    # Safety: one orchestrator at a time, and a trail of every decision kept with the platform
    def read_lease(self) -> Lease | None: ...

    def write_lease(self, lease: Lease | None, expected: Lease | None) -> None:
        """Replace the lease only if it still equals `expected` (compare-and-swap); raise LeaseHeldError if not."""

    def holder_alive(self, holder: str) -> bool:
        """Whether the process named by `holder` still runs (only knowable for holders on this host)."""

    def audit(self, record: dict[str, Any]) -> None: ...

    def audit_trail(self) -> list[dict[str, Any]]: ...
