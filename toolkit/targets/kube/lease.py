"""The environment's lease, and its run requests and restart budgets: one object each in the platform's namespace,
replaced only under the resourceVersion just read (`KubeLeaseStore`, `KubeControlStore`).

Lease: the coordination.k8s.io/v1 Lease `toolkit-upgrade` in the namespace. The engine's lease times are on the
target clock (`time.monotonic`); they are stored as wall-clock epoch seconds (annotations, exact; spec times
rounded) so another process or host can read them. `write_lease(new, expected)` reads the object, checks that it
still equals `expected`, then replaces it with that object's resourceVersion: a concurrent writer makes the
apiserver answer 409, which becomes `LeaseHeldError` (compare-and-swap). Released, the Lease is kept (its
resourceVersion is what the next holder swaps against, and deleting it would need one more verb) with an empty spec
and the annotations `toolkit.io/state: free`, `toolkit.io/last-holder` and `toolkit.io/released-at`, so `kubectl get
lease toolkit-upgrade -o yaml` says it is free and who let go of it when; held, `toolkit.io/state: held`.

Requests and restart budgets: the ConfigMap `toolkit-upgrade-control` in the namespace, data keys `request.json` (a
pause or abort request waiting for the run: `toolkit upgrade pause|resume|abort`) and `restarts.json` (restarts the
engine issued per member and version, so a resumed run does not start its budget over). Each change reads the
object and replaces it under that resourceVersion; a 409 (someone changed it meanwhile) re-reads and applies the
change again, so concurrent writers never lose each other's update.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from toolkit.engine.ports import ActionError, LeaseHeldError
from toolkit.model import Lease, RunRequest
from toolkit.targets.kube.client import RETRYABLE_STATUS, RetryPolicy, _annotations, _describe, retrying

LEASE_NAME = "toolkit-upgrade"
CONTROL_NAME = "toolkit-upgrade-control"
CONTROL_REQUEST_KEY = "request.json"
CONTROL_RESTARTS_KEY = "restarts.json"


def _rfc3339_micro(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class KubeLeaseStore:
    """The environment's lease as a coordination.k8s.io/v1 Lease, swapped by resourceVersion (see module doc)."""

    ANNOTATION_ACQUIRED = "toolkit.io/acquired-at"
    ANNOTATION_RENEWED = "toolkit.io/renewed-at"
    ANNOTATION_TTL = "toolkit.io/ttl-seconds"
    # what the Lease says when nobody holds it: that it is free, who held it last and when they let go (a Lease
    # with an empty spec alone cannot tell "never used" from "released" from "wiped")
    ANNOTATION_STATE = "toolkit.io/state"  # held | free
    ANNOTATION_LAST_HOLDER = "toolkit.io/last-holder"
    ANNOTATION_RELEASED = "toolkit.io/released-at"

    def __init__(self, api: client.ApiClient, namespace: str, retry: RetryPolicy = RetryPolicy()) -> None:
        self.namespace = namespace
        self.retry = retry
        self.coordination = client.CoordinationV1Api(api)
        # monotonic -> wall offset of this process: stored times are wall-clock, the engine's are monotonic
        self._offset = time.time() - time.monotonic()

    def _read(self) -> Any | None:
        try:
            return retrying(
                f"read lease {self.namespace}/{LEASE_NAME}",
                lambda: self.coordination.read_namespaced_lease(LEASE_NAME, self.namespace),
                self.retry,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ActionError(f"kubernetes: read lease {self.namespace}/{LEASE_NAME}: {_describe(exc)}") from None

    def _decode(self, obj: Any | None) -> Lease | None:
        if obj is None or not obj.spec or not obj.spec.holder_identity:
            return None
        notes = _annotations(obj)
        spec = obj.spec

        def wall(key: str, fallback: Any) -> float:
            if key in notes:
                return float(notes[key])
            return fallback.timestamp() if fallback is not None else time.time()

        acquired = wall(self.ANNOTATION_ACQUIRED, spec.acquire_time)
        renewed = wall(self.ANNOTATION_RENEWED, spec.renew_time)
        ttl = float(notes.get(self.ANNOTATION_TTL, spec.lease_duration_seconds or 60))
        return Lease(
            holder=spec.holder_identity,
            acquired_at=acquired - self._offset,
            renewed_at=renewed - self._offset,
            ttl_seconds=ttl,
        )

    def read(self) -> Lease | None:
        return self._decode(self._read())

    @staticmethod
    def _same(a: Lease | None, b: Lease | None) -> bool:
        if a is None or b is None:
            return a is b
        return (
            a.holder == b.holder
            and abs(a.renewed_at - b.renewed_at) < 1e-3
            and abs(a.acquired_at - b.acquired_at) < 1e-3
            and abs(a.ttl_seconds - b.ttl_seconds) < 1e-3
        )

    def _body(self, lease: Lease | None, resource_version: str | None, released_by: str = "") -> client.V1Lease:
        annotations: dict[str, str | None]
        if lease is None:
            spec = client.V1LeaseSpec()
            annotations = {
                self.ANNOTATION_STATE: "free",
                self.ANNOTATION_LAST_HOLDER: released_by or None,
                self.ANNOTATION_RELEASED: _rfc3339_micro(time.time()),
            }
        else:
            acquired, renewed = lease.acquired_at + self._offset, lease.renewed_at + self._offset
            spec = client.V1LeaseSpec(
                holder_identity=lease.holder,
                lease_duration_seconds=max(1, int(-(-lease.ttl_seconds // 1))),
                acquire_time=_rfc3339_micro(acquired),
                renew_time=_rfc3339_micro(renewed),
            )
            annotations = {
                self.ANNOTATION_STATE: "held",
                self.ANNOTATION_ACQUIRED: repr(acquired),
                self.ANNOTATION_RENEWED: repr(renewed),
                self.ANNOTATION_TTL: repr(lease.ttl_seconds),
            }
        meta = client.V1ObjectMeta(
            name=LEASE_NAME,
            namespace=self.namespace,
            resource_version=resource_version,
            labels={"app.kubernetes.io/managed-by": "toolkit"},
            annotations={k: v for k, v in annotations.items() if v is not None},
        )
        return client.V1Lease(metadata=meta, spec=spec)

    def write(self, new: Lease | None, expected: Lease | None) -> None:
        obj = self._read()
        current = self._decode(obj)
        if not self._same(current, expected):
            holder = current.holder if current is not None else "nobody"
            raise LeaseHeldError(f"lease {self.namespace}/{LEASE_NAME} changed under us: now held by {holder}")
        try:
            if obj is None:
                if new is None:
                    return
                retrying(
                    f"create lease {self.namespace}/{LEASE_NAME}",
                    lambda: self.coordination.create_namespaced_lease(self.namespace, self._body(new, None)),
                    self.retry,
                    retry_conflicts=False,
                )
            else:
                body = self._body(new, obj.metadata.resource_version, current.holder if current is not None else "")
                retrying(
                    f"replace lease {self.namespace}/{LEASE_NAME}",
                    lambda: self.coordination.replace_namespaced_lease(LEASE_NAME, self.namespace, body),
                    self.retry,
                    retry_conflicts=False,
                )
        except ApiException as exc:
            if exc.status == 409:
                latest = self.read()
                holder = latest.holder if latest is not None else "nobody"
                raise LeaseHeldError(
                    f"lease {self.namespace}/{LEASE_NAME} was changed concurrently (now held by {holder})"
                ) from None
            raise ActionError(f"kubernetes: write lease {self.namespace}/{LEASE_NAME}: {_describe(exc)}") from None


# ---------------------------------------------------------------------------------------------- requests, budgets


class KubeControlStore:
    """Requests and restart budgets in the ConfigMap `toolkit-upgrade-control` (see module doc); with another `name`
    (and `labels`), any ConfigMap of the orchestrator's own that is read, changed and replaced the same way (the
    run's status, `KubeStatus`)."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        retry: RetryPolicy = RetryPolicy(),
        name: str = CONTROL_NAME,
        labels: dict[str, str] | None = None,
    ) -> None:
        self.namespace = namespace
        self.retry = retry
        self.core = client.CoreV1Api(api)
        self.name = name
        self.labels = {"app.kubernetes.io/managed-by": "toolkit", **(labels or {})}

    def _read(self) -> Any | None:
        name = self.name
        try:
            return retrying(
                f"read configmap {self.namespace}/{name}",
                lambda: self.core.read_namespaced_config_map(name, self.namespace),
                self.retry,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ActionError(f"kubernetes: read configmap {self.namespace}/{name}: {_describe(exc)}") from None

    def data(self) -> dict[str, str]:
        obj = self._read()
        return dict((obj.data or {}) if obj is not None else {})

    def update(self, change: Callable[[dict[str, str]], dict[str, str]]) -> dict[str, str]:
        """Apply `change` to the data and write it under the read resourceVersion; on a conflict, again."""
        deadline = time.monotonic() + self.retry.deadline_seconds
        while True:
            obj = self._read()
            new = change(dict((obj.data or {}) if obj is not None else {}))
            body = client.V1ConfigMap(
                metadata=client.V1ObjectMeta(
                    name=self.name,
                    namespace=self.namespace,
                    resource_version=obj.metadata.resource_version if obj is not None else None,
                    labels=dict(self.labels),
                ),
                data=new,
            )
            try:
                if obj is None:
                    self.core.create_namespaced_config_map(self.namespace, body)
                else:
                    self.core.replace_namespaced_config_map(self.name, self.namespace, body)
                return new
            except ApiException as exc:
                if exc.status not in RETRYABLE_STATUS or time.monotonic() > deadline:
                    raise ActionError(
                        f"kubernetes: write configmap {self.namespace}/{self.name}: {_describe(exc)}"
                    ) from None
                time.sleep(0.05 if exc.status == 409 else 0.5)

    def read_request(self) -> RunRequest | None:
        text = self.data().get(CONTROL_REQUEST_KEY, "")
        if not text:
            return None
        raw = json.loads(text)
        return RunRequest(
            action=str(raw["action"]), by=str(raw["by"]), at=str(raw["at"]), reason=str(raw.get("reason", ""))
        )

    def write_request(self, request: RunRequest | None) -> None:
        text = "" if request is None else json.dumps(dataclasses.asdict(request), sort_keys=True)

        def change(data: dict[str, str]) -> dict[str, str]:
            data[CONTROL_REQUEST_KEY] = text
            return data

        self.update(change)

    def restarts(self) -> dict[str, int]:
        text = self.data().get(CONTROL_RESTARTS_KEY, "")
        return {str(k): int(v) for k, v in json.loads(text).items()} if text else {}

    def spend_restart(self, key: str) -> int:
        counted = [0]

        def change(data: dict[str, str]) -> dict[str, str]:
            given = json.loads(data.get(CONTROL_RESTARTS_KEY) or "{}")
            given[key] = int(given.get(key, 0)) + 1
            counted[0] = given[key]
            data[CONTROL_RESTARTS_KEY] = json.dumps(given, sort_keys=True)
            return data

        self.update(change)
        return counted[0]

    def clear_restarts(self) -> None:
        def change(data: dict[str, str]) -> dict[str, str]:
            data[CONTROL_RESTARTS_KEY] = "{}"
            return data

        self.update(change)
