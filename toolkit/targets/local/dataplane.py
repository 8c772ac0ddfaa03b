"""The local data plane: the single-node Kafka + Elasticsearch peer on the cluster network, behind real TLS.

Layout (cluster network N, see network.py)
------------------------------------------
    peer sandbox tkl<N>-peer, 10.(128+N).0.2
        noida-db on 127.0.0.1:P (Kafka; it advertises exactly 127.0.0.1:P) and 127.0.0.1:Q (Elasticsearch);
        nft DNAT 10.(128+N).0.2:{P,Q} -> 127.0.0.1 (route_localnet on its eth0): the plaintext backends on the
        cluster network;
        one TLS terminator per published Service port: accept 10.(128+N).0.2:T, forward to 127.0.0.1:P or :Q.
    every client network namespace (the root one, each pod's): the agent's Service rules send the published
        ClusterIP:port to 10.(128+N).0.2:T instead of the Service's endpoints (publications.py records).
    the advertised address 127.0.0.1:P: a TLS terminator listens there in the root namespace (this module) and in
        every pod sandbox of a namespace with a Kafka publication (the node agent starts it from the namespace's
        record, before the pod's containers), forwarding to the plaintext backend 10.(128+N).0.2:P.
    loopback: every publication is also served on 127.0.0.1 in the root namespace (Kafka: the advertised address;
        Elasticsearch: a port of its own, kept when the Service is published again with a rotated Secret), for
        in-process clients there that cannot resolve cluster names (the rehearsal's load generators):
        `https://127.0.0.1:<port>`, verified against the IP SAN 127.0.0.1.
So a Kafka client anywhere on the cluster bootstraps through the Service (TLS, the Service's DNS name or
ClusterIP), learns the broker `127.0.0.1:P` and connects there (TLS again, IP 127.0.0.1), always with the
platform's certificate: hostname verification stays on in the real clients (librdkafka's
`ssl.endpoint.identification.algorithm=https`, elasticsearch-py's `verify_certs`), so the certificate must carry
the Service names AND the IP SAN 127.0.0.1, exactly as the platform's certificates must. With a client CA, every
terminator requires a client certificate that chains to it (mutual TLS, checked by stunnel).
P is picked free in the root namespace, so two clusters' peers never advertise the same address there; P and Q are
kept in `<directory>/ports.json` and taken again by the next start when still free, so clients that cached the
advertised address (a worker's librdkafka) find the restarted peer where it was.

Peers (slots)
-------------
Slot 0 is the cluster's default peer above (`network/peer`, tests and tools that publish by hand). Slot k (1..200)
is another peer of the same cluster in `tkl<N>-peer<k>` at 10.(128+N).0.(2+k), with its own directory (given by the
caller): the cluster's peer operator (peeroperator.py) runs one per platform namespace, so every platform has its
own Kafka and Elasticsearch, its own advertised address and its own certificate there, as on a real cluster.

API
---
    plane = LocalDataPlane(state_dir)                 # the control plane's state dir (cluster.json names the network)
    peer = plane.start_peer()                         # -> Peer (idempotent)
    plane.publish("platform", "kafka-bootstrap", 9094, "kafka", TlsMaterial.from_secret(core, "platform/kafka-tls"),
                  client_ca=ca_pem)                   # -> Publication (waits until the ClusterIP answers)
    plane.publish("platform", "elasticsearch-http", 9200, "elasticsearch", "platform/es-tls")  # .loopback, .log
    plane.unpublish("platform", "kafka-bootstrap", 9094); plane.stop()   # or `with LocalDataPlane(...) as plane:`
Rule: one peer advertises one address, and the root namespace can serve one certificate there: every Kafka
publication of a data plane uses the same server certificate and client CA (DataPlaneError otherwise).
Leftovers of a killed data plane (the peer's namespace and its processes, root listeners by pid file, the records
of the namespaces it published, listed in `<directory>/namespaces`) are removed by the next `start_peer()` of the
same slot and directory, or all at once by `remove_leftovers()` (`toolkit cluster down`, the peer operator's start).
A data plane only ever removes records of namespaces it published, so data planes of other slots keep theirs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from toolkit.targets.local.network import (
    ClusterNetwork,
    HostNetwork,
    NetworkError,
    network_of,
    nsenter_argv,
    process_alive,
)
from toolkit.targets.local.publications import (
    AdvertisedListener,
    NamespacePublications,
    ServicePublication,
    records_dir,
    remove_record,
    write_record,
)
from toolkit.targets.local.stunnel import Terminator, TerminatorError, TlsService

Backend = Literal["kafka", "elasticsearch"]
BACKENDS = ("kafka", "elasticsearch")
FIRST_TERMINATOR_PORT = 30000
ROOT_LISTENER_PIDS = "root-listeners.pids"
OWNED_NAMESPACES = "namespaces"
PORTS_FILE = "ports.json"


class DataPlaneError(RuntimeError):
    """The data plane cannot do what was asked; the message names the object, the rule and the way out."""


def _pem_blocks(data: bytes, what: str, marker: bytes) -> bytes:
    if marker not in data:
        raise DataPlaneError(
            f"{what} is not PEM ({marker.decode()} missing); give PEM files or a kubernetes.io/tls Secret"
        )
    return data


@dataclass(frozen=True)
class TlsMaterial:
    """A server certificate (chain) and its key, PEM, and optionally the CA that signed it."""

    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes | None = None
    source: str = "PEM data"

    def __post_init__(self) -> None:
        _pem_blocks(self.cert_pem, f"certificate of {self.source}", b"-----BEGIN CERTIFICATE-----")
        _pem_blocks(self.key_pem, f"key of {self.source}", b"PRIVATE KEY-----")

    @classmethod
    def from_files(cls, cert: Path, key: Path, ca: Path | None = None) -> TlsMaterial:
        return cls(cert.read_bytes(), key.read_bytes(), ca.read_bytes() if ca else None, f"{cert} and {key}")

    @classmethod
    def from_secret(cls, core: Any, reference: str) -> TlsMaterial:
        """`namespace/name` of a Secret with tls.crt, tls.key and (optionally) ca.crt."""
        import base64

        namespace, _, name = reference.partition("/")
        if not namespace or not name:
            raise DataPlaneError(f"Secret reference {reference!r} must be namespace/name")
        secret = core.read_namespaced_secret(name, namespace)
        data = secret.data or {}
        missing = [key for key in ("tls.crt", "tls.key") if key not in data]
        if missing:
            raise DataPlaneError(
                f"Secret {reference} lacks {', '.join(missing)}: a TLS publication needs tls.crt and tls.key "
                "(and ca.crt for clients); use the platform's kubernetes.io/tls Secret"
            )
        ca = base64.b64decode(data["ca.crt"]) if "ca.crt" in data else None
        return cls(base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"]), ca, f"Secret {reference}")

    def fingerprint(self) -> str:
        return hashlib.sha256(self.cert_pem + b"\0" + self.key_pem).hexdigest()[:16]


@dataclass(frozen=True)
class Peer:
    """The running peer: where its plaintext backends are and what Kafka advertises."""

    netns: str
    address: str
    kafka_port: int
    elasticsearch_port: int
    pid: int
    log: Path

    @property
    def kafka_advertised(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def kafka_backend(self) -> tuple[str, int]:
        return self.address, self.kafka_port

    @property
    def elasticsearch_url(self) -> str:
        """Plaintext Elasticsearch on the cluster network (setup and checks; clients go through TLS)."""
        return f"http://{self.address}:{self.elasticsearch_port}"


@dataclass(frozen=True)
class Publication:
    """One Service port served with TLS by a terminator in front of the peer."""

    namespace: str
    service: str
    port: int
    backend: Backend
    target: tuple[str, int]  # the terminator the ClusterIP port leads to
    mutual_tls: bool
    advertised: str | None  # Kafka: the broker address clients are sent to (also TLS)
    loopback: str  # the same service on 127.0.0.1 in the root network namespace (TLS, same certificate)
    log: Path  # the Service terminator's log (stunnel: each refused handshake and why)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _write_private(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


class LocalDataPlane:
    """See the module docstring (`slot` and `directory`: section Peers)."""

    def __init__(
        self,
        state_dir: Path,
        api_client: Any = None,
        network: ClusterNetwork | None = None,
        *,
        slot: int = 0,
        directory: Path | None = None,
    ) -> None:
        self.state_dir = state_dir.resolve()
        if slot != 0 and directory is None:
            raise DataPlaneError(f"peer slot {slot}: give the directory of its data and files (slot 0 has its own)")
        self.slot = slot
        self._directory = directory
        found = network or network_of(self.state_dir)
        if found is None:
            raise DataPlaneError(
                f"{self.state_dir}: no cluster network recorded in cluster.json; start the local control plane "
                "first (`toolkit cluster up`), or recreate an older one (`toolkit cluster down --wipe`)"
            )
        self.network = found
        self.sandbox = found.peer_sandbox_for(slot)
        self.address = found.peer_ip_for(slot)
        self.host = HostNetwork(found)
        self._api_client = api_client
        self._peer: Peer | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._terminators: dict[tuple[str, str, int], Terminator] = {}
        self._publications: dict[tuple[str, str, int], Publication] = {}
        self._files: dict[tuple[str, str, int], tuple[Path, Path, Path | None]] = {}
        self._root_listener: Terminator | None = None
        self._loopbacks: dict[tuple[str, str, int], Terminator] = {}
        self._kafka_identity: tuple[str, str] | None = None  # (certificate fingerprint, client CA digest)
        self._next_port = FIRST_TERMINATOR_PORT

    @property
    def directory(self) -> Path:
        return self._directory if self._directory is not None else self.state_dir / "network" / "peer"

    @property
    def peer(self) -> Peer | None:
        """The running peer (None before `start_peer()` and after `stop()`)."""
        return self._peer

    @property
    def peer_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> LocalDataPlane:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the peer ----------------------------------------------------------------------------------------
    def start_peer(self, timeout: float = 30.0) -> Peer:
        """The peer in its own network namespace (see the module docstring); returns it when both APIs answer."""
        if self._peer is not None and self._process is not None and self._process.poll() is None:
            return self._peer
        from toolkit.targets.peer import PeerUnavailable, server_binary

        problem = self.host.support_problem()
        if problem is not None:
            raise DataPlaneError(problem)
        binary = server_binary()
        if binary is None:
            raise PeerUnavailable("the single-node peer noida-db is not installed: pip install noida-db")
        self._clean_leftovers()
        sandbox, address = self.sandbox, self.address
        self.host.create_sandbox(sandbox, address)
        kafka_port, es_port = self._ports()
        self.host.set_sysctl(sandbox, "net.ipv4.conf.eth0.route_localnet", "1")
        self.host.apply_ruleset(sandbox, _backend_rules(address, (kafka_port, es_port)))
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory / "noida.log"
        argv = [
            str(binary), "start", "--data-dir", str(self.directory / "data"), "--host", "127.0.0.1",
            "--only", "kafka,elasticsearch", "--kafka-port", str(kafka_port), "--elasticsearch-port", str(es_port),
        ]  # fmt: skip
        with open(log, "ab") as out:
            self._process = subprocess.Popen(
                nsenter_argv(sandbox, argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        peer = Peer(sandbox, address, kafka_port, es_port, self._process.pid, log)
        deadline = time.monotonic() + timeout
        while not (_http_ok(peer.elasticsearch_url + "/") and _connects(peer.kafka_backend)):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                message = f"noida-db in {sandbox} did not answer within {timeout:.0f} s; see {log}"
                raise PeerUnavailable(message)
            time.sleep(0.05)
        self._peer = peer
        return peer

    def _clean_leftovers(self) -> None:
        _remove_directory_leftovers(self.state_dir, self.directory)

    def _ports(self) -> tuple[int, int]:
        """The Kafka and Elasticsearch ports of the last start when still free here, else new free ones."""
        path = self.directory / PORTS_FILE
        try:
            recorded = json.loads(path.read_text())
            kafka_port, es_port = int(recorded["kafka"]), int(recorded["elasticsearch"])
        except (OSError, ValueError, KeyError, TypeError):
            kafka_port = es_port = 0
        if not (kafka_port and es_port and kafka_port != es_port and _port_free(kafka_port) and _port_free(es_port)):
            kafka_port, es_port = _free_port(), _free_port()
        self.directory.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"kafka": kafka_port, "elasticsearch": es_port}) + "\n")
        return kafka_port, es_port

    # -- publications ------------------------------------------------------------------------------------
    def publish(
        self,
        namespace: str,
        service: str,
        port: int,
        backend: Backend,
        server_tls: TlsMaterial | str,
        *,
        client_ca: bytes | Path | None = None,
        wait_seconds: float = 15.0,
    ) -> Publication:
        """Serve Service `namespace/service:port` with TLS in front of the peer's `backend` (see the module
        docstring); `server_tls` is PEM material or a Secret reference `namespace/name`; `client_ca` (PEM bytes or
        a file) makes it mutual TLS. Waits until the ClusterIP port accepts connections (0: do not wait)."""
        if backend not in BACKENDS:
            raise DataPlaneError(f"backend {backend!r} is unknown; publish kafka or elasticsearch")
        if self._peer is None:
            raise DataPlaneError(f"publish {namespace}/{service}:{port}: the peer is not running; call start_peer()")
        _check_namespace_name(namespace)
        if isinstance(server_tls, TlsMaterial):
            material = server_tls
        else:
            material = TlsMaterial.from_secret(self._core(), server_tls)
        ca_pem = client_ca.read_bytes() if isinstance(client_ca, Path) else client_ca
        if ca_pem is not None:
            _pem_blocks(ca_pem, f"client CA of {namespace}/{service}:{port}", b"-----BEGIN CERTIFICATE-----")
        key = (namespace, service, port)
        previous = self._publications.get(key)
        self.unpublish(namespace, service, port)
        if backend == "kafka":
            self._claim_kafka_identity(key, material, ca_pem)
        folder = records_dir(self.state_dir) / namespace / f"{service}-{port}"
        cert = _write_private(folder / "tls.crt", material.cert_pem)
        key_file = _write_private(folder / "tls.key", material.key_pem)
        ca_file = _write_private(folder / "client-ca.crt", ca_pem) if ca_pem is not None else None
        peer = self._peer
        target = (peer.address, self._take_port())
        backend_port = peer.kafka_port if backend == "kafka" else peer.elasticsearch_port
        terminator = Terminator(
            f"{namespace}-{service}-{port}",
            folder,
            [TlsService(f"{service}-{port}", target, ("127.0.0.1", backend_port), cert, key_file, ca_file)],
            netns=peer.netns,
        )
        terminator.start()
        self._terminators[key] = terminator
        self._files[key] = (cert, key_file, ca_file)
        if backend == "kafka":
            self._ensure_root_listener(cert, key_file, ca_file)
            loopback = peer.kafka_advertised
        else:
            # published again (a rotated Secret): the same loopback address, so a client outside the cluster
            # network that follows the rotation keeps its address, as the ClusterIP and Kafka's advertised one stay
            loopback_port = int(previous.loopback.rsplit(":", 1)[1]) if previous is not None else _free_port()
            local = Terminator(
                f"{namespace}-{service}-{port}-loopback",
                folder,
                [TlsService(f"{service}-{port}-loopback", ("127.0.0.1", loopback_port),
                            (peer.address, peer.elasticsearch_port), cert, key_file, ca_file)],
            )  # fmt: skip
            self._start_root_terminator(local)
            self._loopbacks[key] = local
            loopback = f"127.0.0.1:{loopback_port}"
        publication = Publication(
            namespace, service, port, backend, target, ca_pem is not None,
            peer.kafka_advertised if backend == "kafka" else None, loopback, terminator.log,
        )  # fmt: skip
        self._publications[key] = publication
        self._write_record(namespace)
        if wait_seconds > 0:
            self._wait_served(publication, wait_seconds)
        return publication

    def unpublish(self, namespace: str, service: str, port: int) -> None:
        key = (namespace, service, port)
        terminator = self._terminators.pop(key, None)
        publication = self._publications.pop(key, None)
        self._files.pop(key, None)
        for running in (terminator, self._loopbacks.pop(key, None)):
            if running is not None:
                running.stop()
        if publication is None:
            return
        self._write_record(namespace)
        if not any(p.backend == "kafka" for p in self._publications.values()):
            self._kafka_identity = None
            if self._root_listener is not None:
                self._root_listener.stop()
                self._root_listener = None

    def publications(self) -> list[Publication]:
        return sorted(self._publications.values(), key=lambda p: (p.namespace, p.service, p.port))

    def stop(self) -> None:
        """Stop every terminator and the peer, remove the records it wrote and the peer's namespace."""
        for key in list(self._terminators):
            self.unpublish(*key)
        if self._root_listener is not None:
            self._root_listener.stop()
            self._root_listener = None
        for namespace in _owned_namespaces(self.directory):
            remove_record(self.state_dir, namespace)
        (self.directory / OWNED_NAMESPACES).unlink(missing_ok=True)
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self._peer = None
        with contextlib.suppress(NetworkError):
            self.host.delete_sandbox(self.sandbox)
            self.host.remove_bridge_if_unused()
        (self.directory / ROOT_LISTENER_PIDS).unlink(missing_ok=True)

    # -- internals ---------------------------------------------------------------------------------------
    def _core(self) -> Any:
        from kubernetes import client, config

        if self._api_client is None:
            self._api_client = config.new_client_from_config(config_file=str(self.state_dir / "kubeconfig"))
        return client.CoreV1Api(self._api_client)

    def _take_port(self) -> int:
        port = self._next_port
        self._next_port += 1
        return port

    def _claim_kafka_identity(self, key: tuple[str, str, int], material: TlsMaterial, ca: bytes | None) -> None:
        identity = (material.fingerprint(), hashlib.sha256(ca or b"").hexdigest()[:16])
        if self._kafka_identity is not None and self._kafka_identity != identity:
            others = ", ".join(f"{p.namespace}/{p.service}:{p.port}" for p in self._publications.values()
                               if p.backend == "kafka")  # fmt: skip
            raise DataPlaneError(
                f"publish {key[0]}/{key[1]}:{key[2]} (kafka): the peer advertises one address "
                f"({self._peer.kafka_advertised if self._peer else '127.0.0.1:P'}) and the root network namespace "
                f"serves one certificate there, already that of {others}; publish with the same certificate and "
                "client CA, or unpublish those first, or use a second cluster"
            )
        self._kafka_identity = identity

    def _ensure_root_listener(self, cert: Path, key: Path, ca: Path | None) -> None:
        if self._root_listener is not None and self._root_listener.running:
            return
        peer = self._peer
        assert peer is not None
        listener = Terminator(
            "kafka-advertised-root",
            self.directory,
            [TlsService("kafka-advertised", ("127.0.0.1", peer.kafka_port), peer.kafka_backend, cert, key, ca)],
        )
        self._start_root_terminator(listener)
        self._root_listener = listener

    def _start_root_terminator(self, terminator: Terminator) -> None:
        """Start a terminator of the root namespace, its pid recorded so a later data plane can remove it."""
        terminator.start()
        if terminator.process is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(self.directory / ROOT_LISTENER_PIDS, "a") as pids:
                pids.write(f"{terminator.process.pid}\n")

    def _write_record(self, namespace: str) -> None:
        mine = [p for p in self._publications.values() if p.namespace == namespace]
        owned = sorted({p.namespace for p in self._publications.values()} | set(_owned_namespaces(self.directory)))
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / OWNED_NAMESPACES).write_text("".join(f"{n}\n" for n in owned if n != namespace or mine))
        if not mine:
            remove_record(self.state_dir, namespace)
            shutil.rmtree(records_dir(self.state_dir) / namespace, ignore_errors=True)  # its certificates and keys
            return
        services = tuple(ServicePublication(p.service, p.port, p.target) for p in mine)
        advertised: tuple[AdvertisedListener, ...] = ()
        kafka = [p for p in mine if p.backend == "kafka"]
        if kafka and self._peer is not None:
            cert, key, ca = self._files[(namespace, kafka[0].service, kafka[0].port)]
            advertised = (
                AdvertisedListener(
                    "kafka-advertised", ("127.0.0.1", self._peer.kafka_port), self._peer.kafka_backend, cert, key, ca
                ),
            )
        write_record(self.state_dir, NamespacePublications(namespace, services, advertised))

    def _wait_served(self, publication: Publication, seconds: float) -> None:
        """Until a TCP connection to the Service's ClusterIP port reaches the terminator (the agent applied the
        record), or DataPlaneError naming what to check."""
        try:
            service = self._core().read_namespaced_service(publication.service, publication.namespace)
        except Exception as error:  # the Service must exist for its ClusterIP to lead anywhere
            raise DataPlaneError(
                f"published {publication.namespace}/{publication.service}:{publication.port}, but that Service cannot "
                f"be read ({error}); create the Service (the chart does) before publishing"
            ) from None
        address = (str(service.spec.cluster_ip), publication.port)
        deadline = time.monotonic() + seconds
        terminator = self._terminators[(publication.namespace, publication.service, publication.port)]
        while time.monotonic() < deadline:
            if _reaches_terminator(address, terminator):
                return
            time.sleep(0.1)
        raise DataPlaneError(
            f"{publication.namespace}/{publication.service}:{publication.port} (ClusterIP {address[0]}) does not lead "
            f"to its TLS terminator after {seconds:.0f} s: is the node agent of this cluster running "
            f"(it applies {records_dir(self.state_dir)})?"
        )


def _owned_namespaces(directory: Path) -> list[str]:
    try:
        return [line.strip() for line in (directory / OWNED_NAMESPACES).read_text().splitlines() if line.strip()]
    except OSError:
        return []


def _check_namespace_name(namespace: str) -> None:
    """A Kubernetes namespace name (DNS label): it names files of the records."""
    if not namespace or len(namespace) > 63 or not all(c.isalnum() or c == "-" for c in namespace):
        raise DataPlaneError(f"namespace {namespace!r} is not a Kubernetes namespace name (a DNS label)")


def _remove_directory_leftovers(state_dir: Path, directory: Path) -> list[str]:
    """What a killed data plane of `directory` left: its root-namespace listeners (by pid file, only if the pid is
    still a stunnel4) and the records of the namespaces it published. Returns what was removed."""
    removed: list[str] = []
    pid_file = directory / ROOT_LISTENER_PIDS
    with contextlib.suppress(OSError, ValueError):
        for pid in {int(p) for p in pid_file.read_text().split()}:
            with contextlib.suppress(OSError):
                if process_alive(pid) and Path(f"/proc/{pid}/comm").read_text().strip() == "stunnel4":
                    os.kill(pid, signal.SIGKILL)
                    removed.append(f"root listener pid {pid}")
    pid_file.unlink(missing_ok=True)
    for namespace in _owned_namespaces(directory):
        if (records_dir(state_dir) / f"{namespace}.json").exists():
            removed.append(f"publication record of {namespace}")
        remove_record(state_dir, namespace)
        shutil.rmtree(records_dir(state_dir) / namespace, ignore_errors=True)
    (directory / OWNED_NAMESPACES).unlink(missing_ok=True)
    return removed


def operator_directories(state_dir: Path) -> Path:
    """Where the peer operator keeps one directory per platform namespace (peeroperator.py)."""
    return state_dir / "network" / "peers"


def remove_leftovers(state_dir: Path, network: ClusterNetwork, *, include_default: bool = True) -> list[str]:
    """Everything data planes of this cluster left running or recorded (owners killed): root-namespace listeners
    and records of every peer directory (the default `network/peer` only with `include_default`), then the peers'
    network namespaces with every process in them (noida-db, the Service terminators). Idempotent; returns what
    was removed."""
    state_dir = state_dir.resolve()
    directories = [state_dir / "network" / "peer"] if include_default else []
    with contextlib.suppress(OSError):
        directories += sorted(p for p in operator_directories(state_dir).iterdir() if p.is_dir())
    removed: list[str] = []
    for directory in directories:
        removed += _remove_directory_leftovers(state_dir, directory)
    host = HostNetwork(network)
    for name in host.peer_sandboxes():
        if include_default or name != network.peer_sandbox:
            host.delete_sandbox(name)
            removed.append(f"peer namespace {name}")
    return removed


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _backend_rules(address: str, ports: tuple[int, ...]) -> str:
    rules = "\n".join(
        f'    iifname "eth0" ip daddr {address} tcp dport {port} dnat to 127.0.0.1:{port}' for port in ports
    )
    return (
        "table ip toolkit_peer\ndelete table ip toolkit_peer\ntable ip toolkit_peer {\n  chain backends {\n"
        "    type nat hook prerouting priority dstnat; policy accept;\n" + rules + "\n  }\n}\n"
    )


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _connects(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=1).close()
    except OSError:
        return False
    return True


def _reaches_terminator(address: tuple[str, int], terminator: Terminator) -> bool:
    """A TCP connection to `address` completes and the terminator's log counts it (stunnel logs each accept)."""
    before = terminator.log.stat().st_size if terminator.log.exists() else 0
    if not _connects(address):
        return False
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if terminator.log.exists() and terminator.log.stat().st_size > before:
            return True
        time.sleep(0.02)
    return False


__all__ = [
    "DataPlaneError",
    "LocalDataPlane",
    "Peer",
    "Publication",
    "TerminatorError",
    "TlsMaterial",
    "operator_directories",
    "remove_leftovers",
]
