"""Publication records: how the data plane (dataplane.py) tells the node agent what it serves, per namespace.

One JSON file per namespace, `<state dir>/network/publications/<namespace>.json`, written atomically (temporary
file + rename) by the data plane and read by the agent whenever its modification time changes:
    services:    (service, port) -> target address: the agent's Service rules send that ClusterIP port to the
                 target (a TLS terminator) instead of the Service's endpoints;
    advertised:  listeners the agent starts in every pod sandbox of the namespace (a TLS terminator on the
                 address the Kafka peer advertises, forwarding to the peer), with the PEM files they serve.
The certificate and key files live beside the record (`<namespace>/...`, mode 0600) and are named by path.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Address = tuple[str, int]


@dataclass(frozen=True)
class ServicePublication:
    service: str
    port: int
    target: Address


@dataclass(frozen=True)
class AdvertisedListener:
    name: str
    listen: Address
    connect: Address
    cert: Path
    key: Path
    client_ca: Path | None


@dataclass(frozen=True)
class NamespacePublications:
    namespace: str
    services: tuple[ServicePublication, ...] = ()
    advertised: tuple[AdvertisedListener, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "services": [{"service": s.service, "port": s.port, "target": list(s.target)} for s in self.services],
            "advertised": [
                {
                    "name": a.name,
                    "listen": list(a.listen),
                    "connect": list(a.connect),
                    "cert": str(a.cert),
                    "key": str(a.key),
                    "client_ca": None if a.client_ca is None else str(a.client_ca),
                }
                for a in self.advertised
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NamespacePublications:
        return cls(
            namespace=str(data["namespace"]),
            services=tuple(
                ServicePublication(str(s["service"]), int(s["port"]), (str(s["target"][0]), int(s["target"][1])))
                for s in data.get("services") or []
            ),
            advertised=tuple(
                AdvertisedListener(
                    name=str(a["name"]),
                    listen=(str(a["listen"][0]), int(a["listen"][1])),
                    connect=(str(a["connect"][0]), int(a["connect"][1])),
                    cert=Path(a["cert"]),
                    key=Path(a["key"]),
                    client_ca=None if a.get("client_ca") is None else Path(a["client_ca"]),
                )
                for a in data.get("advertised") or []
            ),
        )


def records_dir(state_dir: Path) -> Path:
    return state_dir / "network" / "publications"


def write_record(state_dir: Path, record: NamespacePublications) -> Path:
    directory = records_dir(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record.namespace}.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record.as_json(), indent=2) + "\n")
    temporary.replace(path)
    return path


def remove_record(state_dir: Path, namespace: str) -> None:
    (records_dir(state_dir) / f"{namespace}.json").unlink(missing_ok=True)


def read_records(state_dir: Path) -> dict[str, NamespacePublications]:
    records = {}
    directory = records_dir(state_dir)
    if not directory.is_dir():
        return {}
    for path in sorted(directory.glob("*.json")):
        try:
            record = NamespacePublications.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            continue  # being replaced right now: the next read sees the whole file
        records[record.namespace] = record
    return records


def records_stamp(state_dir: Path) -> tuple[tuple[str, int], ...]:
    """A cheap fingerprint of the records (names and modification times) to notice changes."""
    directory = records_dir(state_dir)
    try:
        return tuple(sorted((p.name, os.stat(p).st_mtime_ns) for p in directory.glob("*.json")))
    except OSError:
        return ()
