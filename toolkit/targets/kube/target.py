"""A platform on Kubernetes as the engine's `Target` (`KubeTarget`): the workloads, the control port (lease, audit
trail, requests, restart budgets: `KubeControl`) and the run status of this package, composed with a data plane for
Kafka and Elasticsearch and, when asked, Kubernetes itself.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable
from typing import Any, Protocol

from toolkit.model import (
    EsState,
    KafkaState,
    KubernetesState,
    Lease,
    PlatformState,
    RunRequest,
    WorkersState,
    Workload,
)
from toolkit.targets.kube.audit import KubeAuditLog
from toolkit.targets.kube.client import RealClock
from toolkit.targets.kube.lease import KubeControlStore, KubeLeaseStore
from toolkit.targets.kube.status import KubeStatus
from toolkit.targets.kube.workloads import KubeWorkloads
from toolkit.targets.process import holder_alive


class KubernetesObserver(Protocol):
    """Kubernetes itself (toolkit.targets.kube.nodes.KubeKubernetes): observed into `KubernetesState`."""

    def observe(self) -> KubernetesState: ...


class DataPlane(Protocol):
    """The data-plane side of a target: real adapters (kind, EKS) or the simulated data plane (local)."""

    simulated: bool
    description: str

    def observe(
        self, workloads: tuple[Workload, ...], node_id_base: dict[str, int], now: float
    ) -> tuple[KafkaState, EsState, WorkersState]: ...

    def ports(self) -> dict[str, Any]:
        """Component name -> that component's data-plane port (`toolkit.engine.drivers.*Port`)."""

    def close(self) -> None: ...


class KubeControl:
    """Lease, audit trail, requests and restart budgets of a platform on Kubernetes, in its namespace
    (`toolkit.engine.ports.ControlPort`)."""

    def __init__(
        self,
        lease: KubeLeaseStore,
        audit_log: KubeAuditLog,
        data_plane: DataPlane,
        host: str,
        store: KubeControlStore | None = None,
    ) -> None:
        self.lease = lease
        self.audit_log = audit_log
        self.store = store or KubeControlStore(lease.coordination.api_client, lease.namespace, lease.retry)
        self._data_plane = data_plane
        self._host = host

    def read_lease(self) -> Lease | None:
        return self.lease.read()

    def write_lease(self, lease: Lease | None, expected: Lease | None) -> None:
        self.lease.write(lease, expected)

    def holder_alive(self, holder: str) -> bool:
        return holder_alive(holder, self._host)

    def audit(self, record: dict[str, Any]) -> None:
        entry = {
            "wall": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "simulated": self._data_plane.simulated,
            "data_plane": self._data_plane.description,
            **record,
        }
        self.audit_log.append(entry)

    def audit_trail(self) -> list[dict[str, Any]]:
        return self.audit_log.records()

    def read_request(self) -> RunRequest | None:
        return self.store.read_request()

    def write_request(self, request: RunRequest | None) -> None:
        self.store.write_request(request)

    def restarts_spent(self, member: str, version: str) -> int:
        return self.store.restarts().get(f"{member}@{version}", 0)

    def spend_restart(self, member: str, version: str) -> int:
        return self.store.spend_restart(f"{member}@{version}")

    def clear_restarts(self) -> None:
        self.store.clear_restarts()


class KubeTarget:
    """A platform on a real Kubernetes cluster (`toolkit.engine.ports.Target`): workloads, lease and audit through
    the API; Kafka and Elasticsearch through `data_plane`. `simulated` is the data plane's (True only for the local
    environment, whose multi-node data plane is modelled)."""

    def __init__(
        self,
        name: str,
        workloads: KubeWorkloads,
        lease: KubeLeaseStore,
        audit_log: KubeAuditLog,
        data_plane: DataPlane,
        clock: RealClock | None = None,
        host: str | None = None,
        kubernetes: KubernetesObserver | None = None,
        on_observe: Callable[[PlatformState], None] | None = None,
    ) -> None:
        self.name = name
        self.on_observe = on_observe  # told every observation the engine makes (a rehearsal's record of it)
        self.workloads = workloads
        self.data = data_plane
        self.control = KubeControl(lease, audit_log, data_plane, host or socket.gethostname())
        self.simulated = data_plane.simulated
        self.clock = clock or RealClock()
        self._ports = data_plane.ports()
        self.status = KubeStatus(lease.coordination.api_client, lease.namespace, workloads)
        # Kubernetes itself (nodes, their pods and PDBs, the control plane): observed only when given, i.e. when a
        # run targets it or status asks (toolkit.targets.kube.nodes); it is also that component's port
        self.kubernetes = kubernetes
        if kubernetes is not None:
            self._ports["kubernetes"] = kubernetes

    def data_plane(self, component: str) -> Any:
        return self._ports[component]

    def observe(self) -> PlatformState:
        now = self.clock.now()
        workloads = self.workloads.observe()
        kafka, es, workers = self.data.observe(workloads, self.workloads.last.node_id_base, now)
        state = PlatformState(
            environment=self.name,
            observed_at=now,
            simulated=self.simulated,
            workloads=workloads,
            kafka=kafka,
            elasticsearch=es,
            workers=workers,
            kubernetes=self.kubernetes.observe() if self.kubernetes is not None else KubernetesState(),
        )
        if self.on_observe is not None:
            self.on_observe(state)
        return state

    def close(self) -> None:
        self.data.close()
