"""The simulated platform's status port (`toolkit.engine.ports.StatusPort`): the run's status object and the events
on its pods and workloads, shaped as the Kubernetes adapter writes them (ConfigMap data; core/v1 Events with
involvedObject, reason, type, message, count, first/lastTimestamp), so `toolkit upgrade status` and the tests read
the same picture on sim as on a cluster.

In memory (`SimStatus(None, ...)`: scenarios) or kept with a stored platform, next to its other files:
`sim-world.status.json` (the data map) and `sim-world.events.json` (the events, newest last, at most `KEEP`), each
read-modify-written under the store's exclusive lock.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from toolkit.model import Notice, PlatformState

KEEP = 1000
SOURCE = "toolkit-orchestrator"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


class StatusFiles(Protocol):
    """Where the simulated platform keeps its run status and events (toolkit.targets.sim.SimStore)."""

    @property
    def status_path(self) -> Path: ...

    @property
    def events_path(self) -> Path: ...

    def locked(self) -> AbstractContextManager[Any]: ...


class SimStatus:
    def __init__(
        self,
        store: StatusFiles | None,
        observe: Callable[[], PlatformState],
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._observe = observe
        self._wall = wall
        self._data: dict[str, str] | None = None
        self._events: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ storage

    def _status_path(self) -> Path | None:
        return self._store.status_path if self._store is not None else None

    def read_status(self) -> dict[str, str] | None:
        path = self._status_path()
        if path is None or self._store is None:
            return dict(self._data) if self._data is not None else None
        with self._store.locked():
            if not path.exists():
                return None
            return {str(k): str(v) for k, v in json.loads(path.read_text()).items()}

    def write_status(self, data: Mapping[str, str]) -> None:
        path = self._status_path()
        if path is None or self._store is None:
            self._data = dict(data)
            return
        with self._store.locked():
            _write(path, json.dumps(dict(data), indent=1))

    def events(self) -> list[dict[str, Any]]:
        """The recorded events, oldest first."""
        if self._store is None:
            return [dict(e) for e in self._events]
        with self._store.locked():
            path = self._store.events_path
            return list(json.loads(path.read_text())) if path.exists() else []

    # ------------------------------------------------------------------ events

    def _refs(self, notice: Notice) -> list[dict[str, str]]:
        state = self._observe()
        kinds = {w.name: w.kind for w in state.workloads}
        owner = {p.name: w.name for w in state.workloads for p in w.pods}
        refs: list[dict[str, str]] = []

        def add(kind: str, name: str) -> None:
            if not any(r["kind"] == kind and r["name"] == name for r in refs):
                refs.append({"kind": kind, "name": name, "namespace": state.environment})

        for name in notice.objects:
            if name in owner:
                add("Pod", name)
                add(kinds[owner[name]], owner[name])
            elif name in kinds:
                add(kinds[name], name)
        for component in notice.components:
            for w in state.workloads:
                if w.component == component:
                    add(w.kind, w.name)
        return refs

    def record_event(self, notice: Notice) -> None:
        refs = self._refs(notice)
        if not refs:
            return
        if self._store is None:
            self._events = self._merged(self._events, notice, refs)
            return
        with self._store.locked():
            path = self._store.events_path
            events = list(json.loads(path.read_text())) if path.exists() else []
            _write(path, json.dumps(self._merged(events, notice, refs), indent=1))

    def _merged(self, events: list[dict[str, Any]], notice: Notice, refs: list[dict[str, str]]) -> list[dict[str, Any]]:
        now = dt.datetime.fromtimestamp(self._wall(), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for ref in refs:
            same = next(
                (
                    e
                    for e in events
                    if e["involvedObject"] == ref
                    and (e["reason"], e["type"], e["message"]) == (notice.reason, notice.type, notice.message)
                ),
                None,
            )
            if same is not None:  # a repeat counts up, as kubectl's event recorder does
                same["count"] += 1
                same["lastTimestamp"] = now
                continue
            events.append(
                {
                    "involvedObject": ref,
                    "reason": notice.reason,
                    "type": notice.type,
                    "message": notice.message,
                    "count": 1,
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "source": {"component": SOURCE},
                }
            )
        return events[-KEEP:]
