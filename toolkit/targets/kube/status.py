"""The run's status ConfigMap and its Kubernetes Events: the target's `status` port (`KubeStatus`).

The ConfigMap `toolkit-upgrade-status` shows the run (`toolkit.engine.status`: phase, step, gate, progress, conditions),
replaced whole under the read resourceVersion (a 409 re-reads and writes again); core/v1 Events (served by 1.20 and by
current clusters alike, and what `kubectl describe` lists) on the pods and workloads a run restarts, waits on, halts on,
pauses or completes; a repeat of the same reason and message on the same object PATCHes its count and lastTimestamp, as
kubectl's event recorder does. Both use a short retry deadline: showing a run must never hold it up.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Mapping
from functools import partial

from kubernetes import client
from kubernetes.client.rest import ApiException

from toolkit.engine.ports import ActionError
from toolkit.model import Notice
from toolkit.targets.kube.client import RetryPolicy, _describe, retrying
from toolkit.targets.kube.lease import KubeControlStore
from toolkit.targets.kube.workloads import KubeWorkloads

STATUS_NAME = "toolkit-upgrade-status"
STATUS_LABEL = "toolkit.io/status"
EVENT_SOURCE = "toolkit-orchestrator"


class KubeStatus:
    """The run's status ConfigMap and its Kubernetes Events (`toolkit.engine.ports.StatusPort`; see module doc).
    Objects are resolved from the workloads' last observation (a pod -> itself and its StatefulSet/Deployment; a
    component -> its workloads); a name that is neither (a repair's "allocation") is skipped."""

    RETRY = RetryPolicy(first_delay=0.1, max_delay=1.0, deadline_seconds=5.0)

    def __init__(
        self, api: client.ApiClient, namespace: str, workloads: KubeWorkloads, retry: RetryPolicy = RETRY
    ) -> None:
        self.namespace = namespace
        self.retry = retry
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.store = KubeControlStore(api, namespace, retry, name=STATUS_NAME, labels={STATUS_LABEL: "true"})
        self._workloads = workloads
        self._host = socket.gethostname()
        self._uids: dict[tuple[str, str], str] = {}  # (kind, name) -> uid of a workload
        self._recorded: dict[tuple[str, str, str, str], tuple[str, int]] = {}  # (uid, reason, type, message)

    # ------------------------------------------------------------------ the status ConfigMap

    def read_status(self) -> dict[str, str] | None:
        obj = self.store._read()
        return dict(obj.data or {}) if obj is not None else None

    def write_status(self, data: Mapping[str, str]) -> None:
        """Replace the data whole; a 409 (written meanwhile) re-reads and writes again: the last run's picture."""
        self.store.update(lambda _current: dict(data))

    # ------------------------------------------------------------------ Events

    def _workload_uid(self, kind: str, name: str) -> str | None:
        key = (kind, name)
        if key not in self._uids:
            read = (
                self.apps.read_namespaced_stateful_set
                if kind == "StatefulSet"
                else self.apps.read_namespaced_deployment
            )
            try:
                obj = retrying(
                    f"read {kind.lower()} {self.namespace}/{name}", lambda: read(name, self.namespace), self.retry
                )
            except ApiException:
                return None
            self._uids[key] = obj.metadata.uid
        return self._uids[key]

    def _refs(self, notice: Notice) -> list[dict[str, str]]:
        last = self._workloads.last
        kinds = {w.name: w.kind for w in last.workloads}
        owner = {p.name: w.name for w in last.workloads for p in w.pods}
        refs: list[dict[str, str]] = []

        def add(kind: str, name: str, uid: str | None) -> None:
            if uid and all(r["uid"] != uid for r in refs):
                api_version = "v1" if kind == "Pod" else "apps/v1"
                refs.append(
                    {"apiVersion": api_version, "kind": kind, "name": name, "namespace": self.namespace, "uid": uid}
                )

        def add_workload(name: str) -> None:
            if name in kinds:
                add(kinds[name], name, self._workload_uid(kinds[name], name))

        for name in notice.objects:
            if name in owner:
                add("Pod", name, last.pod_uids.get(name))
                add_workload(owner[name])
            else:
                add_workload(name)
        for component in notice.components:
            for w in last.workloads:
                if w.component == component:
                    add_workload(w.name)
        return refs

    def record_event(self, notice: Notice) -> None:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for ref in self._refs(notice):
            key = (ref["uid"], notice.reason, notice.type, notice.message)
            seen = self._recorded.get(key)
            if seen is not None:
                name, count = seen
                patch = {"count": count + 1, "lastTimestamp": now}
                try:
                    retrying(
                        f"patch event {self.namespace}/{name}",
                        partial(self.core.patch_namespaced_event, name, self.namespace, patch),
                        self.retry,
                    )
                    self._recorded[key] = (name, count + 1)
                    continue
                except ApiException as exc:
                    if exc.status != 404:  # gone (events expire): record it afresh
                        raise ActionError(
                            f"kubernetes: patch event {self.namespace}/{name}: {_describe(exc)}"
                        ) from None
            name = f"{ref['name']}.{time.time_ns():x}"
            body = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": self.namespace},
                "involvedObject": ref,
                "reason": notice.reason,
                "message": notice.message,
                "type": notice.type,
                "source": {"component": EVENT_SOURCE, "host": self._host},
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "reportingComponent": EVENT_SOURCE,
                "reportingInstance": self._host,
            }
            try:
                retrying(
                    f"create event {self.namespace}/{name}",
                    partial(self.core.create_namespaced_event, self.namespace, body),
                    self.retry,
                    retry_conflicts=False,
                )
            except ApiException as exc:
                raise ActionError(f"kubernetes: create event in {self.namespace}: {_describe(exc)}") from None
            self._recorded[key] = (name, 1)
