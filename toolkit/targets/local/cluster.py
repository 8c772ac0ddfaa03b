"""The `local` environment as one unit: control plane + node agent + peer operator. Used by `cluster up|down|status`.

- `up(state_dir)` checks the binaries first (raising `MissingBinariesError` naming each missing part and
  scripts/local-control-plane.sh, with nothing started), starts the control plane (`ControlPlane.start`), then
  the node agent as its own process (`python -m toolkit.targets.local.nodeagent`, pid file run/nodeagent.pid,
  log logs/nodeagent.log) and waits until the agent's nodes are registered and Ready, then the peer operator
  (`python -m toolkit.targets.local.peeroperator`, run/peeroperator.pid, logs/peeroperator.log: the Kafka and
  Elasticsearch of every platform namespace, see peeroperator.py) and waits for its first pass. Calling it again
  starts only what is not running (a killed agent or operator is started again; the new operator removes what
  the killed one left and publishes everything again). The agent runs the catalog's worker image
  (`toolkit-worker`) and the toolkit's own image (`toolkit`, the orchestrator Job's) as host processes from the
  directory of this installation's executables (`run_images` overrides), so the worker pods the chart renders and
  the orchestrator Job really run.
- `down(state_dir)` stops the operator (its peers, publications and their listeners), then the agent, then the
  control plane, by recorded process ids, and removes what a killed operator or agent left on the host (peer and
  pod network namespaces with their processes, root-namespace listeners, the cluster's nft table, the bridge);
  `wipe=True` also removes the state directory (etcd data, certificates, kubeconfig, the peers' data) and gives
  back the cluster's network.
- `status(state_dir)` reports each process, whether the apiserver answers /readyz, and what the operator serves
  per platform namespace; it starts nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from toolkit.targets.local.controlplane import (
    ClusterStatus,
    ControlPlane,
    ControlPlaneError,
    LocalCluster,
    ProcessStatus,
    default_state_dir,
    find_binaries,
)
from toolkit.targets.local.dataplane import remove_leftovers
from toolkit.targets.local.network import HostNetwork, network_of, release_network
from toolkit.targets.local.peeroperator import OperatorStatus, read_status

NODE_AGENT = "nodeagent"
PEER_OPERATOR = "peeroperator"
WORKER_EXECUTABLE = "toolkit-worker"
TOOLKIT_EXECUTABLE = "toolkit"
NODE_AGENT_MODULE = "toolkit.targets.local.nodeagent"
PEER_OPERATOR_MODULE = "toolkit.targets.local.peeroperator"
MODULES = {NODE_AGENT: NODE_AGENT_MODULE, PEER_OPERATOR: PEER_OPERATOR_MODULE}
OPERATOR_STOP_SECONDS = 40.0  # it stops every peer and terminator first


@dataclass(frozen=True)
class EnvironmentStatus:
    """Control plane, node agent and peer operator of one state directory."""

    control_plane: ClusterStatus
    node_agent: ProcessStatus
    peer_operator: ProcessStatus
    data_plane: OperatorStatus | None = None  # what the running operator last reported

    @property
    def running(self) -> bool:
        return self.control_plane.running and self.node_agent.running and self.peer_operator.running

    def data_plane_lines(self) -> list[str]:
        if not self.peer_operator.running:
            return ["data plane: not running (`toolkit cluster up` starts it)"]
        if self.data_plane is None:
            return ["data plane: starting"]
        return self.data_plane.lines()


def default_run_images() -> dict[str, Path]:
    """The catalog's images that this installation provides -> the directory of its executables: the worker image
    (`toolkit-worker`) and the toolkit's own image (`orchestrator_image`, `toolkit`: the orchestrator Job of
    `toolkit upgrade job`), each when the executable is there."""
    from toolkit.catalog import load

    catalog = load()
    directory = Path(sys.executable).parent
    images = {}
    if (directory / WORKER_EXECUTABLE).exists():
        images[catalog.component("workers").image] = directory
    if (directory / TOOLKIT_EXECUTABLE).exists():
        images[catalog.orchestrator_image] = directory
    return images


def up(
    state_dir: Path | None = None,
    node_count: int = 3,
    timeout: float = 240.0,
    run_images: Mapping[str, Path] | None = None,
) -> LocalCluster:
    """Start (or find running) the control plane, the node agent and the peer operator; return how to reach the
    cluster."""
    find_binaries()
    control_plane = ControlPlane(state_dir)
    cluster = control_plane.start(timeout=timeout)
    if _daemon_pid(control_plane, NODE_AGENT) is None:
        images = default_run_images() if run_images is None else dict(run_images)
        _start_agent(control_plane, node_count, images)
    _wait_nodes_ready(control_plane, node_count, time.monotonic() + 90.0)
    start_peer_operator(control_plane)
    return cluster


def start_peer_operator(control_plane: ControlPlane, timeout: float = 60.0) -> int:
    """Start the peer operator of the cluster unless it runs; wait for its first pass over the cluster (it has then
    removed what a killed one left and published what it found). Returns its pid."""
    pid = _daemon_pid(control_plane, PEER_OPERATOR)
    if pid is None:
        argv = [sys.executable, "-m", PEER_OPERATOR_MODULE, "--kubeconfig", str(control_plane.kubeconfig)]
        pid = _start_daemon(control_plane, PEER_OPERATOR, argv)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _daemon_pid(control_plane, PEER_OPERATOR) is None:
            raise ControlPlaneError(
                f"peer operator exited; see {control_plane.log_file(PEER_OPERATOR)} "
                f"(state dir {control_plane.state_dir})"
            )
        found = read_status(control_plane.state_dir)
        if found is not None and found.pid == pid and (found.synced or found.problem):
            return pid
        time.sleep(0.2)
    raise ControlPlaneError(
        f"the peer operator did not finish its first pass within {timeout:.0f} s; see "
        f"{control_plane.log_file(PEER_OPERATOR)}"
    )


def stop_peer_operator(control_plane: ControlPlane) -> None:
    """Stop the peer operator (it stops its peers and publications), then remove whatever a killed one left."""
    _stop_daemon(control_plane, PEER_OPERATOR, OPERATOR_STOP_SECONDS)
    network = network_of(control_plane.state_dir)
    if network is not None and os.geteuid() == 0:
        remove_leftovers(control_plane.state_dir, network, include_default=False)


def down(state_dir: Path | None = None, wipe: bool = False) -> None:
    """Stop the peer operator, the node agent and the control plane, and remove what any of them left on the host;
    with `wipe`, delete the state directory too."""
    control_plane = ControlPlane(state_dir)
    stop_peer_operator(control_plane)
    _stop_daemon(control_plane, NODE_AGENT, 15.0)
    _sweep_host(control_plane)
    control_plane.stop()
    if wipe and control_plane.state_dir.exists():
        release_network(control_plane.state_dir)
        shutil.rmtree(control_plane.state_dir)


def _sweep_host(control_plane: ControlPlane) -> None:
    """After the operator and the agent stopped: what a killed one left of this cluster on the host (every peer,
    the default one too, every pod sandbox with its processes, the root namespace's Service table, the bridge).
    Objects are found by this cluster's names only (network.py), so other clusters are never touched."""
    network = network_of(control_plane.state_dir)
    if network is None or os.geteuid() != 0:
        return
    remove_leftovers(control_plane.state_dir, network, include_default=True)
    host = HostNetwork(network)
    for name in host.leftover_sandboxes(include_peer=True):
        host.delete_sandbox(name)
    host.delete_root_table()
    host.remove_bridge_if_unused()


def status(state_dir: Path | None = None) -> EnvironmentStatus:
    """What runs in `state_dir` (default: `default_state_dir()`)."""
    control_plane = ControlPlane(state_dir)
    processes = {
        name: ProcessStatus(
            name,
            _recorded_pid(control_plane, name),
            _daemon_pid(control_plane, name) is not None,
            control_plane.log_file(name),
        )
        for name in MODULES
    }
    operator = processes[PEER_OPERATOR]
    found = read_status(control_plane.state_dir) if operator.running else None
    data_plane = found if found is not None and found.pid == operator.pid else None
    return EnvironmentStatus(control_plane.status(), processes[NODE_AGENT], operator, data_plane)


def _recorded_pid(control_plane: ControlPlane, name: str) -> int | None:
    try:
        return int(control_plane.pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None


def _daemon_pid(control_plane: ControlPlane, name: str) -> int | None:
    """The recorded pid of daemon `name` when that process is alive and runs the daemon's module."""
    pid = _recorded_pid(control_plane, name)
    if pid is None:
        return None
    try:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return None
    if state == "Z":
        return None
    # cmdline reads empty for an instant right after exec: trust the pid file then.
    return pid if command_line == [b""] or MODULES[name].encode() in command_line else None


def _agent_pid(control_plane: ControlPlane) -> int | None:
    return _daemon_pid(control_plane, NODE_AGENT)


def _start_daemon(control_plane: ControlPlane, name: str, argv: list[str]) -> int:
    control_plane.log_dir.mkdir(parents=True, exist_ok=True)
    control_plane.run_dir.mkdir(parents=True, exist_ok=True)
    with open(control_plane.log_file(name), "ab") as log:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    control_plane.pid_file(name).write_text(f"{process.pid}\n")
    return process.pid


def _stop_daemon(control_plane: ControlPlane, name: str, grace: float) -> None:
    """SIGTERM, up to `grace` seconds, then SIGKILL; the pid file goes in any case."""
    pid = _daemon_pid(control_plane, name)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _daemon_pid(control_plane, name) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if _daemon_pid(control_plane, name) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    control_plane.pid_file(name).unlink(missing_ok=True)


def _start_agent(control_plane: ControlPlane, node_count: int, images: Mapping[str, Path]) -> None:
    argv = [
        sys.executable, "-m", NODE_AGENT_MODULE,
        "--kubeconfig", str(control_plane.kubeconfig),
        "--nodes", str(node_count),
    ]  # fmt: skip
    for image, directory in sorted(images.items()):
        argv += ["--run-image", f"{image}={directory}"]
    _start_daemon(control_plane, NODE_AGENT, argv)


def _wait_nodes_ready(control_plane: ControlPlane, node_count: int, deadline: float) -> None:
    """Poll /api/v1/nodes (labelled by the agent) until `node_count` are Ready and untainted by not-ready."""
    pki = control_plane.pki_dir
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    url = f"{control_plane.server}/api/v1/nodes?labelSelector=toolkit.io%2Flocal-node%3Dtrue"
    ready = 0
    while time.monotonic() < deadline:
        if _agent_pid(control_plane) is None:
            raise ControlPlaneError(
                f"node agent exited; see {control_plane.log_file(NODE_AGENT)} (state dir {control_plane.state_dir})"
            )
        with (
            contextlib.suppress(OSError, ValueError),
            urllib.request.urlopen(url, timeout=5, context=context) as r,
        ):
            ready = sum(1 for node in json.loads(r.read())["items"] if _node_schedulable(node))
            if ready >= node_count:
                return
        time.sleep(0.5)
    raise ControlPlaneError(
        f"only {ready} of {node_count} local nodes became Ready in time; see {control_plane.log_file(NODE_AGENT)}"
    )


def _node_schedulable(node: dict[str, object]) -> bool:
    status = node.get("status")
    spec = node.get("spec")
    conditions = status.get("conditions", []) if isinstance(status, dict) else []
    taints = spec.get("taints", []) if isinstance(spec, dict) else []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    not_ready_taint = any(str(t.get("key", "")).startswith("node.kubernetes.io/not-ready") for t in taints or [])
    return ready and not not_ready_taint


__all__ = [
    "EnvironmentStatus",
    "default_state_dir",
    "down",
    "start_peer_operator",
    "status",
    "stop_peer_operator",
    "up",
]
