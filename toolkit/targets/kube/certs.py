"""The platform's Secrets and a certificate rotation's progress record on Kubernetes
(`toolkit.provision.certs.CertStore`), through the official client, with the adapters' retry policy.

- `read(namespace, name)`: the Secret's data, decoded; None on 404.
- `write(namespace, name, data)`: replaces the Secret's data under the resourceVersion just read (type, labels and
  annotations kept; `toolkit.io/rotated-at` set); a 409 (someone changed it meanwhile) reads it again and writes
  again, so the write is whole or not at all. A Secret that does not exist is never created here: deploy makes them.
- the progress record: ConfigMap `toolkit-cert-rotation` in the CA namespace (`<namespace>-pki`), key
  `progress.json`, created on first write, then replaced under its resourceVersion.
Who may do this: the person running `toolkit certs rotate` with their kubeconfig, as for `toolkit deploy` (Secrets in
both namespaces, workloads in the platform's). The in-cluster orchestrator's ServiceAccount has no access to Secrets
and none to the CA namespace, on purpose (toolkit.provision.orchestrator).
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from toolkit.engine.ports import ActionError
from toolkit.targets.kube.client import RETRYABLE_STATUS, RetryPolicy, _describe, retrying

PROGRESS_CONFIGMAP = "toolkit-cert-rotation"
PROGRESS_KEY = "progress.json"
ROTATED_AT = "toolkit.io/rotated-at"


class KubeCertStore:
    simulated = False

    def __init__(self, api: client.ApiClient, ca_namespace: str, retry: RetryPolicy = RetryPolicy()) -> None:
        self.core = client.CoreV1Api(api)
        self.ca_namespace = ca_namespace
        self.retry = retry

    @property
    def description(self) -> str:
        return "the cluster's Secrets"

    @property
    def progress_location(self) -> str:
        return f"ConfigMap {self.ca_namespace}/{PROGRESS_CONFIGMAP}"

    def _get(self, namespace: str, name: str) -> Any | None:
        try:
            return retrying(
                f"read secret {namespace}/{name}",
                lambda: self.core.read_namespaced_secret(name, namespace),
                self.retry,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ActionError(f"kubernetes: read secret {namespace}/{name}: {_describe(exc)}") from None

    def read(self, namespace: str, name: str) -> dict[str, bytes] | None:
        obj = self._get(namespace, name)
        if obj is None:
            return None
        return {k: base64.b64decode(v) for k, v in (obj.data or {}).items()}

    def write(self, namespace: str, name: str, data: dict[str, bytes]) -> None:
        deadline = time.monotonic() + self.retry.deadline_seconds
        while True:
            obj = self._get(namespace, name)
            if obj is None:
                raise ActionError(
                    f"Secret {namespace}/{name} does not exist (deleted during the rotation?): run `toolkit deploy` "
                    "to make it, then the same command to resume"
                )
            obj.data = {k: base64.b64encode(v).decode() for k, v in data.items()}
            obj.string_data = None
            notes = dict(obj.metadata.annotations or {})
            notes[ROTATED_AT] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            obj.metadata.annotations = notes
            try:
                self.core.replace_namespaced_secret(name, namespace, obj)
                return
            except ApiException as exc:
                if exc.status not in RETRYABLE_STATUS or time.monotonic() > deadline:
                    raise ActionError(f"kubernetes: write secret {namespace}/{name}: {_describe(exc)}") from None
                time.sleep(0.05 if exc.status == 409 else 0.5)

    def _progress(self) -> Any | None:
        try:
            return retrying(
                f"read configmap {self.ca_namespace}/{PROGRESS_CONFIGMAP}",
                lambda: self.core.read_namespaced_config_map(PROGRESS_CONFIGMAP, self.ca_namespace),
                self.retry,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ActionError(
                f"kubernetes: read configmap {self.ca_namespace}/{PROGRESS_CONFIGMAP}: {_describe(exc)}"
            ) from None

    def read_progress(self) -> str:
        obj = self._progress()
        return str((obj.data or {}).get(PROGRESS_KEY, "")) if obj is not None else ""

    def write_progress(self, text: str) -> None:
        deadline = time.monotonic() + self.retry.deadline_seconds
        while True:
            obj = self._progress()
            body = client.V1ConfigMap(
                metadata=client.V1ObjectMeta(
                    name=PROGRESS_CONFIGMAP,
                    namespace=self.ca_namespace,
                    resource_version=obj.metadata.resource_version if obj is not None else None,
                    labels={"app.kubernetes.io/managed-by": "toolkit"},
                ),
                data={PROGRESS_KEY: text},
            )
            try:
                if obj is None:
                    self.core.create_namespaced_config_map(self.ca_namespace, body)
                else:
                    self.core.replace_namespaced_config_map(PROGRESS_CONFIGMAP, self.ca_namespace, body)
                return
            except ApiException as exc:
                if exc.status not in RETRYABLE_STATUS or time.monotonic() > deadline:
                    raise ActionError(
                        f"kubernetes: write configmap {self.ca_namespace}/{PROGRESS_CONFIGMAP}: {_describe(exc)}"
                    ) from None
                time.sleep(0.05 if exc.status == 409 else 0.5)
