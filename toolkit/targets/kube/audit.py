"""The run's audit trail: JSON lines appended to ConfigMaps in the platform's namespace, a head and immutable
archives (`KubeAuditLog`).

Each record is a JSON line appended to the data key `records.jsonl` of ONE ConfigMap with a fixed name, `toolkit-audit`
(the head), each append a replace under the read resourceVersion (409: re-read, append again). When the head would pass
`AUDIT_ROLL_BYTES` its records move into an immutable archive `toolkit-audit-NNNN` (NNNN = the head's `archived` count)
and the head starts over. A roll interrupted between the archive's creation and the head's replace is finished by the
next append (the archive exists: the head's archived prefix is dropped), and `audit_trail()` (archives in order, then
the head) never shows a record twice. Why this shape: RBAC can scope `update` to named objects but never `create`, so
the orchestrator may update exactly its own ConfigMaps (the head and `toolkit-upgrade-control`) and not, say, a Kafka
configuration; the archives it creates are immutable. The trail lives with the platform, not on the orchestrator's disk.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from toolkit.engine.ports import ActionError
from toolkit.targets.kube.client import RETRYABLE_STATUS, RetryPolicy, _describe, retrying

AUDIT_LABEL = "toolkit.io/audit"
AUDIT_PREFIX = "toolkit-audit"  # the head's name; archives are AUDIT_PREFIX-NNNN
AUDIT_ARCHIVED_KEY = "archived"
AUDIT_KEY = "records.jsonl"
AUDIT_ROLL_BYTES = 512 * 1024  # a ConfigMap holds at most 1 MiB; roll well before


class KubeAuditLog:
    """Append-only JSON lines: the head ConfigMap `toolkit-audit` and immutable archives (see module doc)."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        roll_bytes: int = AUDIT_ROLL_BYTES,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.namespace = namespace
        self.roll_bytes = roll_bytes
        self.retry = retry
        self.core = client.CoreV1Api(api)

    @staticmethod
    def name(index: int) -> str:
        return f"{AUDIT_PREFIX}-{index:04d}"

    def _body(self, name: str, data: dict[str, str], immutable: bool = False) -> Any:
        return client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name=name,
                namespace=self.namespace,
                labels={AUDIT_LABEL: "true", "app.kubernetes.io/managed-by": "toolkit"},
            ),
            data=data,
            immutable=immutable or None,
        )

    def _read(self, name: str) -> Any | None:
        try:
            return retrying(
                f"read configmap {self.namespace}/{name}",
                lambda: self.core.read_namespaced_config_map(name, self.namespace),
                self.retry,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _create(self, name: str, data: dict[str, str], immutable: bool = False) -> bool:
        try:
            retrying(
                f"create configmap {self.namespace}/{name}",
                lambda: self.core.create_namespaced_config_map(self.namespace, self._body(name, data, immutable)),
                self.retry,
                retry_conflicts=False,
            )
        except ApiException as exc:
            if exc.status == 409:
                return False  # it exists already (another writer, or a roll interrupted after this step)
            raise
        return True

    @staticmethod
    def _unarchived(head: Any, pending: Any | None) -> str:
        """The head's records not yet in an archive: all of them, unless the archive the head is about to write
        exists already (an interrupted roll), whose records are then a prefix of the head's."""
        text = str((head.data or {}).get(AUDIT_KEY, ""))
        if pending is None:
            return text
        archived = str((pending.data or {}).get(AUDIT_KEY, ""))
        return text[len(archived) :] if text.startswith(archived) else text

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        deadline = time.monotonic() + self.retry.deadline_seconds
        while True:
            try:
                head = self._read(AUDIT_PREFIX)
                if head is None:
                    if self._create(AUDIT_PREFIX, {AUDIT_KEY: line, AUDIT_ARCHIVED_KEY: "0"}):
                        return
                    continue
                archived = int((head.data or {}).get(AUDIT_ARCHIVED_KEY, "0") or 0)
                pending = self._read(self.name(archived))
                text = self._unarchived(head, pending)
                if pending is not None:
                    archived += 1  # finish the interrupted roll
                elif text and len(text.encode()) + len(line.encode()) > self.roll_bytes:
                    if not self._create(self.name(archived), {AUDIT_KEY: text}, immutable=True):
                        continue  # written meanwhile: re-read, the pending branch finishes the roll
                    text, archived = "", archived + 1
                head.data = {AUDIT_KEY: text + line, AUDIT_ARCHIVED_KEY: str(archived)}
                self.core.replace_namespaced_config_map(AUDIT_PREFIX, self.namespace, head)
                return
            except ApiException as exc:
                if exc.status not in RETRYABLE_STATUS or time.monotonic() > deadline:
                    raise ActionError(
                        f"kubernetes: could not append to the audit trail in {self.namespace}: {_describe(exc)}"
                    ) from None
                time.sleep(0.05 if exc.status == 409 else 0.5)

    def records(self) -> list[dict[str, Any]]:
        found = retrying(
            f"list audit configmaps in {self.namespace}",
            lambda: self.core.list_namespaced_config_map(self.namespace, label_selector=f"{AUDIT_LABEL}=true"),
            self.retry,
        )
        archives = {}
        head = None
        for item in found.items:
            name = item.metadata.name
            if name == AUDIT_PREFIX:
                head = item
            elif name.startswith(AUDIT_PREFIX + "-") and name.rsplit("-", 1)[1].isdigit():
                archives[int(name.rsplit("-", 1)[1])] = item
        out: list[dict[str, Any]] = []
        for index in sorted(archives):
            out.extend(_json_lines((archives[index].data or {}).get(AUDIT_KEY, "")))
        if head is not None:
            archived = int((head.data or {}).get(AUDIT_ARCHIVED_KEY, "0") or 0)
            out.extend(_json_lines(self._unarchived(head, archives.get(archived))))
        return out


def _json_lines(text: str) -> Iterator[dict[str, Any]]:
    for line in text.splitlines():
        if line.strip():
            value = json.loads(line)
            if isinstance(value, dict):
                yield value
