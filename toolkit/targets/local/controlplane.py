"""Start, stop and inspect a real Kubernetes v1.20.2 control plane on loopback.

How it works
------------
`ControlPlane(state_dir)` owns one directory:
    pki/               certificates and the service-account key pair (see `pki.py`), made once, then reused
    etcd/              etcd's data (kept across restarts; `down(..., wipe=True)` removes it)
    run/<name>.pid     one pid file per process; logs/<name>.log its stdout and stderr
    kubeconfig         admin kubeconfig for clients (kubectl, the kubernetes Python client, the node agent)
    cluster.json       the loopback ports in use and the cluster's network (network.py: index N, pod and service
                       CIDRs, unique on this host and kept across restarts)

`start()` checks the binaries (etcd from apt's etcd-server, the three Kubernetes binaries from the cache
that scripts/local-control-plane.sh fills), generates what is missing under pki/, picks free loopback ports
(the ones recorded in cluster.json when they are still free, so restarts keep the same address), then starts,
in order, etcd -> kube-apiserver -> kube-controller-manager -> kube-scheduler and waits for each to answer its
health endpoint (etcd /health, apiserver /readyz, the other two /healthz) before starting the next. Processes
run in their own session, so they outlive the Python process that started them (`cluster up` exits at once).
`stop()` sends SIGTERM to each recorded process id in reverse order, waits, then SIGKILLs what is left.

Guarantees
----------
- Nothing listens beyond 127.0.0.1; no port is fixed (two clusters can run side by side in two state dirs).
- Each cluster has its own service CIDR (10.(192+N).0.0/16) from the host-wide network registry, so two
  clusters' ClusterIPs never collide in the routes and rules of their node agents.
- A process is identified by its pid file AND its executable name in /proc, so a reused pid is never
  signalled.
- `start()` on a running, ready cluster starts nothing and returns it (`reused=True`).
- A component that dies while being waited on raises `ControlPlaneError` with the tail of its log.
- Missing binaries raise `MissingBinariesError` naming each missing part and the script that provides it,
  before anything is started or written.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from toolkit.targets.local.network import ClusterNetwork, allocate_network, network_of
from toolkit.targets.local.pki import ClusterPki, ensure_pki, write_kubeconfig

KUBE_VERSION = "1.20.2"
SETUP_SCRIPT = "scripts/local-control-plane.sh"
ETCD_APT_PACKAGE = "etcd-server"
COMPONENTS: tuple[str, ...] = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
# Published in the `kubernetes` Endpoints: must not be loopback (rejected there); nobody dials it.
ADVERTISE_ADDRESS = "10.240.0.1"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
LOOPBACK = "127.0.0.1"


# What the apiserver's audit log keeps: who wrote pods, their evictions and nodes (cordon, labels), and how it was
# answered (an eviction refused by a PodDisruptionBudget shows as 429), so the cluster tier can prove that a node was
# drained through the Eviction API and never by deleting pods. Status writes (pods/status, nodes/status) are left out.
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, delete, deletecollection, patch, update]
    resources:
      - group: ""
        resources: [pods, pods/eviction, nodes]
  - level: None
"""


class MissingBinariesError(RuntimeError):
    """The binaries of the local control plane are not on this machine."""

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = tuple(missing)
        super().__init__(
            "local control plane: missing " + ", ".join(self.missing) + f". Run `sudo {SETUP_SCRIPT}` once "
            "(it installs etcd-server and builds Kubernetes v1.20.2 from Debian's source package, ~7 min)."
        )


class ControlPlaneError(RuntimeError):
    """A control-plane process failed to start, died, or did not become healthy in time."""


def default_state_dir() -> Path:
    """Where the local cluster keeps its state unless told otherwise (XDG state home)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "toolkit" / "local"


def binary_cache_dir() -> Path:
    """Where scripts/local-control-plane.sh puts the Kubernetes binaries."""
    base = os.environ.get("TOOLKIT_CACHE") or str(Path.home() / ".cache" / "toolkit")
    return Path(base) / f"kube-{KUBE_VERSION}" / "bin"


@dataclass(frozen=True)
class Binaries:
    """Paths of the four executables of the control plane."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path

    def for_component(self, name: str) -> Path:
        return {
            "etcd": self.etcd,
            "kube-apiserver": self.kube_apiserver,
            "kube-controller-manager": self.kube_controller_manager,
            "kube-scheduler": self.kube_scheduler,
        }[name]


def missing_binaries(cache_dir: Path | None = None) -> list[str]:
    """Human-readable names of the missing executables (empty when all are there)."""
    cache = cache_dir or binary_cache_dir()
    missing = []
    if _etcd_path() is None:
        missing.append(f"etcd (apt package {ETCD_APT_PACKAGE})")
    for name in COMPONENTS[1:]:
        if not os.access(cache / name, os.X_OK):
            missing.append(f"{name} (expected at {cache / name})")
    return missing


def find_binaries(cache_dir: Path | None = None) -> Binaries:
    """Locate the executables or raise `MissingBinariesError` naming every missing one."""
    missing = missing_binaries(cache_dir)
    if missing:
        raise MissingBinariesError(missing)
    cache = cache_dir or binary_cache_dir()
    etcd = _etcd_path()
    assert etcd is not None
    return Binaries(etcd, cache / "kube-apiserver", cache / "kube-controller-manager", cache / "kube-scheduler")


def _etcd_path() -> Path | None:
    found = shutil.which("etcd")
    if found:
        return Path(found)
    return Path("/usr/bin/etcd") if os.access("/usr/bin/etcd", os.X_OK) else None


@dataclass(frozen=True)
class Ports:
    """Loopback ports of one cluster."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int


@dataclass(frozen=True)
class LocalCluster:
    """A running local cluster, as a client needs it."""

    state_dir: Path
    kubeconfig: Path
    server: str
    ports: Ports
    apiserver_ready_seconds: float  # apiserver process start to /readyz OK; 0.0 when `reused`
    reused: bool  # True when start() found the cluster already running


@dataclass(frozen=True)
class ProcessStatus:
    """One control-plane process as seen from its pid file."""

    name: str
    pid: int | None
    running: bool
    log: Path


@dataclass(frozen=True)
class ClusterStatus:
    """What runs in one state directory."""

    state_dir: Path
    processes: tuple[ProcessStatus, ...]
    apiserver_ready: bool
    server: str | None
    kubeconfig: Path | None

    @property
    def running(self) -> bool:
        return self.apiserver_ready and all(process.running for process in self.processes)


class ControlPlane:
    """The four control-plane processes of one state directory (see the module docstring)."""

    def __init__(self, state_dir: Path | None = None, binaries: Binaries | None = None) -> None:
        self.state_dir = (state_dir or default_state_dir()).resolve()
        self._binaries = binaries
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._ports: Ports | None = None
        self._pki: ClusterPki | None = None
        self._network: ClusterNetwork | None = None

    # -- paths -------------------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def etcd_data_dir(self) -> Path:
        return self.state_dir / "etcd"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "cluster.json"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    @property
    def audit_log(self) -> Path:
        """The apiserver's audit log (JSON lines): writes to pods, their evictions and nodes, at Metadata level."""
        return self.log_dir / "kube-apiserver-audit.log"

    def _audit_policy(self) -> Path:
        path = self.state_dir / "audit-policy.yaml"
        if not path.exists() or path.read_text() != AUDIT_POLICY:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(AUDIT_POLICY)
        return path

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    @property
    def ports(self) -> Ports:
        if self._ports is None:
            recorded = self._recorded_ports()
            if recorded is None:
                raise ControlPlaneError(f"{self.state_dir}: no cluster.json; start the cluster first")
            self._ports = recorded
        return self._ports

    @property
    def network(self) -> ClusterNetwork:
        """The cluster's network: the one cluster.json records, else a newly allocated one."""
        if self._network is None:
            self._network = network_of(self.state_dir) or allocate_network(self.state_dir)
        return self._network

    @property
    def server(self) -> str:
        return f"https://{LOOPBACK}:{self.ports.apiserver}"

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> LocalCluster:
        """Start every component that is not running and wait until all are healthy."""
        binaries = self._binaries or find_binaries()
        self._binaries = binaries
        current = self.status()
        if current.running:
            self._ports = self._recorded_ports()
            return self._cluster(0.0, reused=True)
        # A partial cluster (some process died) is restarted whole, so ordering guarantees hold.
        self.stop()
        for directory in (self.run_dir, self.log_dir, self.etcd_data_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._network = allocate_network(self.state_dir)
        self._pki = ensure_pki(self.pki_dir, self._network.kubernetes_service_ip)
        self._ports = self._choose_ports()
        record = {"ports": asdict(self._ports), "network": self._network.as_record()}
        self.state_file.write_text(json.dumps(record, indent=2) + "\n")
        write_kubeconfig(self.kubeconfig, self.server, self._pki.ca, self._pki.admin, "admin")
        write_kubeconfig(
            self._component_kubeconfig("kube-controller-manager"),
            self.server,
            self._pki.ca,
            self._pki.controller_manager,
            "system:kube-controller-manager",
        )
        write_kubeconfig(
            self._component_kubeconfig("kube-scheduler"),
            self.server,
            self._pki.ca,
            self._pki.scheduler,
            "system:kube-scheduler",
        )
        deadline = time.monotonic() + timeout
        ready_seconds = 0.0
        for name in COMPONENTS:
            seconds = self.start_component(name, timeout=max(1.0, deadline - time.monotonic()))
            if name == "kube-apiserver":
                ready_seconds = seconds
        return self._cluster(ready_seconds, reused=False)

    def start_component(self, name: str, timeout: float = 120.0) -> float:
        """Start one component (if not running) and return the seconds it took to become healthy."""
        if self._running_pid(name) is not None:
            return 0.0
        if self._binaries is None:
            self._binaries = find_binaries()
        if self._pki is None:
            self._pki = ensure_pki(self.pki_dir, self.network.kubernetes_service_ip)
        argv = [str(self._binaries.for_component(name)), *self._arguments(name)]
        log: IO[bytes]
        with open(self.log_file(name), "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {name}\n".encode())
            log.flush()
            started = time.monotonic()
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        self._children[name] = process
        self.pid_file(name).write_text(f"{process.pid}\n")
        self._wait_healthy(name, process.pid, started + timeout)
        return time.monotonic() - started

    def stop_component(self, name: str, grace_seconds: float = 15.0) -> None:
        """SIGTERM the component's recorded process, SIGKILL it after `grace_seconds`, remove its pid file."""
        pid = self._running_pid(name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not self._wait_gone(name, pid, time.monotonic() + grace_seconds):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._wait_gone(name, pid, time.monotonic() + 10.0)
        self._children.pop(name, None)
        self.pid_file(name).unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop every component, scheduler first, etcd last. Data and certificates are kept."""
        for name in reversed(COMPONENTS):
            self.stop_component(name)

    def status(self) -> ClusterStatus:
        processes = []
        for name in COMPONENTS:
            pid = self._recorded_pid(name)
            running = pid is not None and self._running_pid(name) == pid
            processes.append(ProcessStatus(name, pid, running, self.log_file(name)))
        ports = self._recorded_ports()
        server = f"https://{LOOPBACK}:{ports.apiserver}" if ports else None
        apiserver_ready = bool(processes[1].running and ports and self._probe("kube-apiserver", ports))
        return ClusterStatus(
            self.state_dir,
            tuple(processes),
            apiserver_ready,
            server,
            self.kubeconfig if self.kubeconfig.exists() else None,
        )

    # -- internals ---------------------------------------------------------------------------------------
    def _cluster(self, ready_seconds: float, reused: bool) -> LocalCluster:
        return LocalCluster(self.state_dir, self.kubeconfig, self.server, self.ports, ready_seconds, reused)

    def _component_kubeconfig(self, name: str) -> Path:
        return self.state_dir / f"{name}.kubeconfig"

    def _recorded_ports(self) -> Ports | None:
        try:
            recorded = json.loads(self.state_file.read_text())["ports"]
            return Ports(**recorded)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _choose_ports(self) -> Ports:
        recorded = self._recorded_ports()
        if recorded is not None and all(_port_free(port) for port in asdict(recorded).values()):
            return recorded
        chosen: list[int] = []
        while len(chosen) < 5:
            port = _free_port()
            if port not in chosen:
                chosen.append(port)
        return Ports(*chosen)

    def _arguments(self, name: str) -> list[str]:
        ports = self.ports
        pki = self._pki
        assert pki is not None
        if name == "etcd":
            peer = f"http://{LOOPBACK}:{ports.etcd_peer}"
            client = f"http://{LOOPBACK}:{ports.etcd_client}"
            return [
                "--name=local",
                f"--data-dir={self.etcd_data_dir}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=local={peer}",
                "--initial-cluster-state=new",
                "--logger=zap",
                "--log-outputs=stderr",
            ]
        if name == "kube-apiserver":
            return [
                f"--etcd-servers=http://{LOOPBACK}:{ports.etcd_client}",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={ports.apiserver}",
                "--insecure-port=0",
                f"--advertise-address={ADVERTISE_ADDRESS}",
                f"--service-cluster-ip-range={self.network.service_cidr}",
                f"--tls-cert-file={pki.apiserver.cert}",
                f"--tls-private-key-file={pki.apiserver.key}",
                f"--client-ca-file={pki.ca.cert}",
                f"--service-account-key-file={pki.service_account_public}",
                f"--service-account-signing-key-file={pki.service_account_private}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
                "--authorization-mode=RBAC",
                f"--audit-policy-file={self._audit_policy()}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-maxsize=50",
                "--audit-log-maxbackup=2",
                "--allow-privileged=true",
                "--profiling=false",
                f"--cert-dir={self.pki_dir / 'apiserver-generated'}",
            ]
        if name == "kube-controller-manager":
            return [
                f"--kubeconfig={self._component_kubeconfig(name)}",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={ports.controller_manager}",
                "--port=0",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki.service_account_private}",
                f"--root-ca-file={pki.ca.cert}",
                f"--cluster-signing-cert-file={pki.ca.cert}",
                f"--cluster-signing-key-file={pki.ca.key}",
                "--profiling=false",
                f"--cert-dir={self.pki_dir / 'controller-manager-generated'}",
            ]
        if name == "kube-scheduler":
            return [
                f"--kubeconfig={self._component_kubeconfig(name)}",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={ports.scheduler}",
                "--port=0",
                "--leader-elect=false",
                "--profiling=false",
                f"--cert-dir={self.pki_dir / 'scheduler-generated'}",
            ]
        raise ValueError(f"unknown control-plane component {name!r}; known: {', '.join(COMPONENTS)}")

    def _recorded_pid(self, name: str) -> int | None:
        try:
            return int(self.pid_file(name).read_text().strip())
        except (OSError, ValueError):
            return None

    def _running_pid(self, name: str) -> int | None:
        """The recorded pid if that process is alive and is this component's binary, else None."""
        pid = self._recorded_pid(name)
        if pid is None:
            return None
        child = self._children.get(name)
        if child is not None and child.pid == pid:
            return pid if child.poll() is None else None  # our own child: poll() also reaps it
        if not _process_alive(pid):
            return None
        # /proc/<pid>/comm-like name from stat: the executable's basename cut to 15 characters (the kernel's
        # limit). Unlike /proc/<pid>/cmdline it is never empty, even right after exec.
        return pid if _process_name(pid) == Path(name).name[:15] else None

    def _wait_gone(self, name: str, pid: int, deadline: float) -> bool:
        child = self._children.get(name)
        while time.monotonic() < deadline:
            if child is not None and child.pid == pid:
                if child.poll() is not None:
                    return True
            elif not _process_alive(pid):
                return True
            time.sleep(0.05)
        return False

    def _wait_healthy(self, name: str, pid: int, deadline: float) -> None:
        ports = self.ports
        while True:
            if self._running_pid(name) != pid:
                raise ControlPlaneError(
                    f"{name} exited while starting (state dir {self.state_dir}); last log lines:\n"
                    + _log_tail(self.log_file(name))
                )
            if self._probe(name, ports):
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{name} did not become healthy in time (state dir {self.state_dir}); last log lines:\n"
                    + _log_tail(self.log_file(name))
                )
            time.sleep(0.2)

    def _probe(self, name: str, ports: Ports) -> bool:
        """One health request: etcd /health, apiserver /readyz (mutual TLS), others /healthz."""
        try:
            if name == "etcd":
                with urllib.request.urlopen(f"http://{LOOPBACK}:{ports.etcd_client}/health", timeout=2) as r:
                    return bool(json.loads(r.read()).get("health") == "true")
            if name == "kube-apiserver":
                context = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
                context.load_cert_chain(str(self.pki_dir / "admin.crt"), str(self.pki_dir / "admin.key"))
                url = f"https://{LOOPBACK}:{ports.apiserver}/readyz"
            else:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE  # self-signed serving cert made by the component itself
                port = ports.controller_manager if name == "kube-controller-manager" else ports.scheduler
                url = f"https://{LOOPBACK}:{port}/healthz"
            with urllib.request.urlopen(url, timeout=2, context=context) as response:
                return bool(response.status == 200)
        except (OSError, ValueError, urllib.error.URLError):
            return False


def _process_alive(pid: int) -> bool:
    """True for a live process; False for none or a zombie (exited, not yet reaped by its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _process_name(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.index("(") + 1 : stat.rindex(")")]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
