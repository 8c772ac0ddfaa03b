"""The network of one local cluster on this host: its addresses, its names, and the Linux plumbing behind them.

Addresses and names (one `ClusterNetwork` per cluster, index N in 0..47, unique on the host)
-------------------------------------------------------------------------------------------
    pod CIDR        10.(128+N).0.0/16   node k (1..250) hands out 10.(128+N).k.2-254 to its pods
    gateway         10.(128+N).0.1      on the bridge, in the root network namespace
    peer            10.(128+N).0.2      the single-node Kafka + Elasticsearch peer's own namespace (dataplane.py)
    peer k          10.(128+N).0.(2+k)  k = 1..MAX_PEER_SLOTS: the peer of one platform namespace (peeroperator.py)
    service CIDR    10.(192+N).0.0/16   given to kube-apiserver (--service-cluster-ip-range); routed via the bridge
    bridge          tkl<N>              root namespace
    pod sandbox     tkl<N>-<c>-<d>      network namespace AND the host end of its veth (<c>.<d>: last octets of
                                        the pod IP in hex, so the name is unique while the IP is held)
    peer sandbox    tkl<N>-peer         and tkl<N>-peer<k> for peer k (never taken for a pod's leftover)
    nft table       ip toolkit_local_<N> in the root namespace (Service ClusterIPs, see kubeproxy.py)
Everything of cluster N carries the prefix `tkl<N>-` or is the bridge `tkl<N>`, so leftovers of a killed agent are
found by name and removed at the next start, and two clusters never touch each other's objects.

The index comes from a host-wide registry (`/run/toolkit-local/networks/<N>.json`, naming the state directory that
holds it), taken under an exclusive lock: a control plane keeps the index recorded in its `cluster.json` across
restarts; a claim whose state directory is gone (or records another index) is stale and may be taken again.

Plumbing (`HostNetwork`, all through `ip`, `nft` and `nsenter`; root only)
-------------------------------------------------------------------------
- `ensure_bridge()`: bridge up with the gateway address, route of the service CIDR through it, `route_localnet` on
  the bridge alone (so the root namespace's table may forward what pods send to the gateway on to a loopback
  listener: the apiserver, see services.py); idempotent; every sandbox creation calls it, so whoever stops last
  may remove it.
- `create_sandbox(name, ip)`: `ip netns add`, a veth pair whose pod end is renamed `eth0` inside, attached to the
  bridge; loopback and eth0 up; default route via the gateway. `delete_sandbox(name)` kills every process still in
  the namespace (`ip netns pids`), deletes the veth and the namespace. Both are idempotent.
- `apply_ruleset(netns, text)`: one `nft -f` transaction (atomic replacement of one table).
- `support_problem()`: None when this host can do all of it, else a sentence naming exactly what is missing (not
  root, a missing tool and the script that installs it, namespaces refused by the kernel).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

MAX_CLUSTERS = 48
MAX_PEER_SLOTS = 200
REGISTRY_ENV = "TOOLKIT_LOCAL_NETWORK_REGISTRY"
DEFAULT_REGISTRY = Path("/run/toolkit-local/networks")
SETUP_SCRIPT = "scripts/local-data-plane.sh"
NETNS_DIR = Path("/run/netns")
REQUIRED_TOOLS = {"ip": "iproute2", "nft": "nftables", "nsenter": "util-linux", "stunnel4": "stunnel4"}


class NetworkError(RuntimeError):
    """A network operation failed; the message names the object, the command and its error."""


@dataclass(frozen=True)
class ClusterNetwork:
    """Addresses and names of one local cluster's network (see the module docstring)."""

    index: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < MAX_CLUSTERS:
            raise ValueError(f"cluster network index {self.index} is out of range; use 0..{MAX_CLUSTERS - 1}")

    @property
    def pod_cidr(self) -> str:
        return f"10.{128 + self.index}.0.0/16"

    @property
    def service_cidr(self) -> str:
        return f"10.{192 + self.index}.0.0/16"

    @property
    def kubernetes_service_ip(self) -> str:
        return f"10.{192 + self.index}.0.1"

    @property
    def gateway(self) -> str:
        return f"10.{128 + self.index}.0.1"

    @property
    def peer_ip(self) -> str:
        return f"10.{128 + self.index}.0.2"

    @property
    def prefix_length(self) -> int:
        return 16

    @property
    def bridge(self) -> str:
        return f"tkl{self.index}"

    @property
    def name_prefix(self) -> str:
        return f"tkl{self.index}-"

    @property
    def peer_sandbox(self) -> str:
        return f"{self.name_prefix}peer"

    def peer_sandbox_for(self, slot: int) -> str:
        """The network namespace of peer `slot` (0: the cluster's default peer, `tkl<N>-peer`)."""
        _check_slot(slot)
        return self.peer_sandbox if slot == 0 else f"{self.peer_sandbox}{slot}"

    def peer_ip_for(self, slot: int) -> str:
        _check_slot(slot)
        return f"10.{128 + self.index}.0.{2 + slot}"

    def is_peer_sandbox(self, name: str) -> bool:
        tail = name.removeprefix(self.peer_sandbox)
        return name.startswith(self.peer_sandbox) and (tail == "" or tail.isdigit())

    @property
    def root_table(self) -> str:
        return f"toolkit_local_{self.index}"

    def node_subnet_prefix(self, node_number: int) -> str:
        """First three octets of node `node_number`'s /24 (1..250)."""
        if not 1 <= node_number <= 250:
            raise ValueError(f"node number {node_number} is out of range; use 1..250")
        return f"10.{128 + self.index}.{node_number}"

    def sandbox_name(self, pod_ip: str) -> str:
        """`tkl<N>-<c>-<d>`: unique while the IP is held, at most 15 characters (the kernel's limit for links)."""
        octets = ipaddress.IPv4Address(pod_ip).packed
        return f"{self.name_prefix}{octets[2]:02x}-{octets[3]:02x}"

    def owns_pod_ip(self, address: str) -> bool:
        try:
            return ipaddress.IPv4Address(address) in ipaddress.IPv4Network(self.pod_cidr)
        except ValueError:
            return False

    def as_record(self) -> dict[str, object]:
        return {"index": self.index, "pod_cidr": self.pod_cidr, "service_cidr": self.service_cidr}


def _check_slot(slot: int) -> None:
    if not 0 <= slot <= MAX_PEER_SLOTS:
        raise ValueError(f"peer slot {slot} is out of range; use 0..{MAX_PEER_SLOTS}")


# ---------------------------------------------------------------------------------------------- registry


def registry_dir() -> Path:
    return Path(os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY)


@contextlib.contextmanager
def _registry_lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def recorded_index(state_dir: Path) -> int | None:
    """The network index a state directory's cluster.json records (None when it records none)."""
    try:
        value = json.loads((state_dir / "cluster.json").read_text())["network"]["index"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) else None


def _claim_holder(path: Path) -> Path | None:
    try:
        return Path(json.loads(path.read_text())["state_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _claim_is_live(index: int, holder: Path | None) -> bool:
    return holder is not None and holder.is_dir() and recorded_index(holder) == index


def allocate_network(state_dir: Path) -> ClusterNetwork:
    """The network of the cluster in `state_dir`: the index its cluster.json records when that is still its own,
    else the lowest free (or stale) one. Raises NetworkError when all are held by live clusters."""
    state_dir = state_dir.resolve()
    directory = registry_dir()
    with _registry_lock(directory):
        wanted = recorded_index(state_dir)
        order = ([wanted] if wanted is not None and 0 <= wanted < MAX_CLUSTERS else []) + list(range(MAX_CLUSTERS))
        holders = []
        for index in order:
            claim = directory / f"{index}.json"
            holder = _claim_holder(claim)
            if holder == state_dir or not _claim_is_live(index, holder):
                temporary = claim.with_suffix(".tmp")
                temporary.write_text(json.dumps({"state_dir": str(state_dir)}) + "\n")
                temporary.replace(claim)
                return ClusterNetwork(index)
            holders.append(f"{index}: {holder}")
    raise NetworkError(
        f"all {MAX_CLUSTERS} local cluster networks of this host are held ({'; '.join(holders[:5])}, ...): stop and "
        f"wipe a cluster you no longer need (`toolkit cluster down --wipe`), or delete its state directory"
    )


def release_network(state_dir: Path) -> None:
    """Give back the index the cluster in `state_dir` holds (when the directory is wiped)."""
    state_dir = state_dir.resolve()
    index = recorded_index(state_dir)
    if index is None:
        return
    directory = registry_dir()
    with _registry_lock(directory):
        claim = directory / f"{index}.json"
        if _claim_holder(claim) == state_dir:
            claim.unlink(missing_ok=True)


def network_of(state_dir: Path) -> ClusterNetwork | None:
    """The network recorded in a state directory's cluster.json (None for a cluster made before networks)."""
    index = recorded_index(state_dir)
    return ClusterNetwork(index) if index is not None and 0 <= index < MAX_CLUSTERS else None


# ---------------------------------------------------------------------------------------------- plumbing


def _run(argv: Sequence[str], what: str, check: bool = True, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise NetworkError(f"{what}: `{' '.join(argv)}` could not run: {error}") from None
    if check and done.returncode != 0:
        raise NetworkError(f"{what}: `{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def nsenter_argv(netns: str, argv: Sequence[str]) -> list[str]:
    """`argv` run inside network namespace `netns` (no other namespace changes)."""
    return ["nsenter", f"--net={netns_path(netns)}", "--", *argv]


class HostNetwork:
    """The Linux objects of one cluster network (see the module docstring)."""

    def __init__(self, network: ClusterNetwork) -> None:
        self.network = network

    # -- capability --------------------------------------------------------------------------------------
    def support_problem(self) -> str | None:
        """None when this host can run pod sandboxes; else what is missing and how to provide it."""
        if os.geteuid() != 0:
            return (
                "the local pod runtime needs root (network namespaces, veth pairs, a bridge and mounts need "
                "CAP_SYS_ADMIN and CAP_NET_ADMIN): run the node agent as root"
            )
        missing = [f"{tool} (apt package {pkg})" for tool, pkg in REQUIRED_TOOLS.items() if not shutil.which(tool)]
        if missing:
            return f"the local pod runtime needs {', '.join(missing)}: run `sudo {SETUP_SCRIPT}`"
        probe = f"{self.network.name_prefix}probe"
        try:
            _run(["ip", "netns", "add", probe], "probing network namespaces")
        except NetworkError as error:
            return (
                f"cannot create network namespaces ({error}): the node agent needs CAP_SYS_ADMIN and CAP_NET_ADMIN; "
                "run it as root on the host, not in an unprivileged container"
            )
        finally:
            _run(["ip", "netns", "delete", probe], "removing the probe namespace", check=False)
        return None

    # -- bridge ------------------------------------------------------------------------------------------
    def ensure_bridge(self) -> None:
        net = self.network
        if not _link_exists(net.bridge):
            _run(["ip", "link", "add", net.bridge, "type", "bridge"], f"creating bridge {net.bridge}", check=False)
            if not _link_exists(net.bridge):
                _run(["ip", "link", "add", net.bridge, "type", "bridge"], f"creating bridge {net.bridge}")
        addresses = _run(["ip", "-4", "-o", "addr", "show", "dev", net.bridge], f"reading bridge {net.bridge}")
        if f" {net.gateway}/" not in addresses:
            _run(
                ["ip", "addr", "replace", f"{net.gateway}/{net.prefix_length}", "dev", net.bridge],
                f"addressing bridge {net.bridge}",
            )
        _run(["ip", "link", "set", net.bridge, "up"], f"bringing bridge {net.bridge} up")
        self.set_root_sysctl(f"net.ipv4.conf.{net.bridge}.route_localnet", "1")
        _run(
            ["ip", "route", "replace", net.service_cidr, "dev", net.bridge, "src", net.gateway],
            f"routing the service CIDR {net.service_cidr} through {net.bridge}",
        )

    def bridge_ports(self) -> list[str]:
        try:
            return sorted(p.name for p in Path(f"/sys/class/net/{self.network.bridge}/brif").iterdir())
        except OSError:
            return []

    def remove_bridge_if_unused(self) -> bool:
        """Delete the bridge when no sandbox is attached any more; True when it is gone."""
        if not _link_exists(self.network.bridge):
            return True
        if self.bridge_ports():
            return False
        _run(["ip", "link", "delete", self.network.bridge], f"deleting bridge {self.network.bridge}", check=False)
        return not _link_exists(self.network.bridge)

    # -- sandboxes ---------------------------------------------------------------------------------------
    def create_sandbox(self, name: str, address: str) -> None:
        """Network namespace `name` with eth0 = `address` on the bridge (replaces a leftover of the same name)."""
        net = self.network
        if not name.startswith(net.name_prefix) or len(name) > 15:
            raise NetworkError(f"sandbox name {name!r} must start with {net.name_prefix!r} and fit 15 characters")
        self.ensure_bridge()
        self.delete_sandbox(name)
        what = f"creating pod sandbox {name} ({address})"
        _run(["ip", "netns", "add", name], what)
        try:
            _run(["ip", "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", name], what)
            _run(["ip", "link", "set", name, "master", net.bridge, "up"], what)
            _run(["ip", "-n", name, "addr", "add", f"{address}/{net.prefix_length}", "dev", "eth0"], what)
            _run(["ip", "-n", name, "link", "set", "lo", "up"], what)
            _run(["ip", "-n", name, "link", "set", "eth0", "up"], what)
            _run(["ip", "-n", name, "route", "add", "default", "via", net.gateway], what)
        except NetworkError:
            self.delete_sandbox(name)
            raise

    def sandbox_pids(self, name: str) -> list[int]:
        if not netns_path(name).exists():
            return []
        out = _run(["ip", "netns", "pids", name], f"listing processes of {name}", check=False)
        return [int(token) for token in out.split() if token.isdigit()]

    def kill_sandbox_processes(self, name: str, deadline_seconds: float = 5.0) -> None:
        """SIGKILL every process left in the namespace and wait until they are gone."""
        deadline = time.monotonic() + deadline_seconds
        while True:
            pids = [pid for pid in self.sandbox_pids(name) if process_alive(pid)]
            if not pids or time.monotonic() > deadline:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    def delete_sandbox(self, name: str) -> None:
        self.kill_sandbox_processes(name)
        if _link_exists(name):
            _run(["ip", "link", "delete", name], f"deleting veth {name}", check=False)
        if netns_path(name).exists():
            _run(["ip", "netns", "delete", name], f"deleting network namespace {name}", check=False)

    def leftover_sandboxes(self, include_peer: bool = False) -> list[str]:
        """Network namespaces and veths of this cluster that exist now (by name); the peers' (`tkl<N>-peer`,
        `tkl<N>-peer<k>`: their owner is the data plane, not the node agent) only with `include_peer`."""
        prefix = self.network.name_prefix
        found: set[str] = set()
        with contextlib.suppress(OSError):
            found |= {p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix)}
        with contextlib.suppress(OSError):
            found |= {p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(prefix)}
        if not include_peer:
            found = {name for name in found if not self.network.is_peer_sandbox(name)}
        return sorted(found)

    def peer_sandboxes(self) -> list[str]:
        """The peers' network namespaces (and veths) of this cluster that exist now."""
        return [name for name in self.leftover_sandboxes(include_peer=True) if self.network.is_peer_sandbox(name)]

    # -- rules -------------------------------------------------------------------------------------------
    def apply_ruleset(self, netns: str | None, text: str) -> None:
        """Apply an nft script in the root namespace (None) or in `netns`, as one transaction."""
        argv = ["nft", "-f", "-"] if netns is None else nsenter_argv(netns, ["nft", "-f", "-"])
        _run(argv, f"applying Service rules in {netns or 'the root network namespace'}", stdin=text)

    def delete_root_table(self) -> None:
        table = self.network.root_table
        _run(["nft", "delete", "table", "ip", table], f"deleting nft table {table}", check=False)

    def set_root_sysctl(self, key: str, value: str) -> None:
        """A sysctl of the root namespace; only ones scoped to this cluster's own interfaces are ever set."""
        path = Path("/proc/sys/" + key.replace(".", "/"))
        try:
            path.write_text(value)
        except OSError as error:
            raise NetworkError(f"setting {key}={value}: {error}") from None

    def set_sysctl(self, netns: str, key: str, value: str) -> None:
        path = "/proc/sys/" + key.replace(".", "/")
        _run(nsenter_argv(netns, ["sh", "-c", f'echo {value} > "$0"', path]), f"setting {key} in {netns}")
