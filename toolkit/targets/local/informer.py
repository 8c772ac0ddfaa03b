"""A list-then-watch cache of one resource across all namespaces (a small client-go reflector).

`Reflector(list_call, kind, on_change)`: `run()` (a thread body) lists the objects, then watches from the list's
resourceVersion; every event updates the cache (namespace, name) -> object and calls `on_change()`. A stream that
ends is re-opened from the last version seen (events and bookmarks); `410 Gone` triggers a fresh list that replaces
the cache whole; connection errors back off and retry. `synced` is set after the first successful list.
`stop()` ends the loop and closes the open stream.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

LOG = logging.getLogger(__name__)
JsonDict = dict[str, Any]
ObjectKey = tuple[str, str]


class _Expired(Exception):
    pass


class Reflector:
    """See the module docstring."""

    def __init__(
        self,
        list_call: Callable[..., Any],
        kind: str,
        on_change: Callable[[], None],
        stopping: threading.Event,
        watch_timeout_seconds: int = 60,
        backoff_seconds: float = 0.5,
    ) -> None:
        self.kind = kind
        self._list_call = list_call
        self._on_change = on_change
        self._stopping = stopping
        self._timeout = watch_timeout_seconds
        self._backoff = backoff_seconds
        self._lock = threading.Lock()
        self._objects: dict[ObjectKey, JsonDict] = {}
        self._response: Any = None
        self.synced = threading.Event()

    def snapshot(self) -> dict[ObjectKey, JsonDict]:
        with self._lock:
            return dict(self._objects)

    def run(self) -> None:
        version: str | None = None
        while not self._stopping.is_set():
            try:
                if version is None:
                    version = self._relist()
                version = self._watch(version)
            except _Expired:
                version = None
            except ApiException as error:
                if error.status == 410:
                    version = None
                    continue
                LOG.info("%s watch: API error %s %s; retrying", self.kind, error.status, error.reason)
                self._stopping.wait(self._backoff)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
                if not self._stopping.is_set():
                    LOG.info("%s watch: connection lost (%s); retrying", self.kind, type(error).__name__)
                self._stopping.wait(self._backoff)

    def stop(self) -> None:
        with self._lock:
            response = self._response
        if response is not None:
            try:
                response.shutdown()
            except Exception as error:  # already closed: nothing to do
                LOG.debug("%s watch: closing the stream: %s", self.kind, error)

    def _relist(self) -> str:
        response = self._list_call(_preload_content=False, _request_timeout=(5, 30))
        listing = json.loads(response.data)
        objects = {_key(item): item for item in listing.get("items", [])}
        with self._lock:
            self._objects = objects
        self.synced.set()
        self._on_change()
        return str(listing["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> str:
        response = self._list_call(
            watch=True,
            allow_watch_bookmarks=True,
            resource_version=version,
            timeout_seconds=self._timeout,
            _preload_content=False,
            _request_timeout=(5, self._timeout + 15),
        )
        with self._lock:
            self._response = response
        try:
            for line in iter_resp_lines(response):
                if self._stopping.is_set():
                    break
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Expired(obj.get("message", "410 Gone"))
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                version = obj.get("metadata", {}).get("resourceVersion") or version
                if kind == "BOOKMARK":
                    continue
                with self._lock:
                    if kind == "DELETED":
                        self._objects.pop(_key(obj), None)
                    else:
                        self._objects[_key(obj)] = obj
                self._on_change()
        finally:
            with self._lock:
                self._response = None
            response.close()
            response.release_conn()
        return version


def _key(obj: JsonDict) -> ObjectKey:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))
