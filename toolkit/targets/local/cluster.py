"""The `local` environment as one unit: control plane + node agent process. Used by `cluster up|down|status`.

- `up(state_dir)` checks the binaries first (raising `MissingBinariesError` naming each missing part and
  scripts/local-control-plane.sh, with nothing started), starts the control plane (`ControlPlane.start`), then
  the node agent as its own process (`python -m toolkit.targets.local.nodeagent`, pid file run/nodeagent.pid,
  log logs/nodeagent.log) and waits until the agent's nodes are registered and Ready. Calling it again on a
  running cluster starts nothing. The agent runs the catalog's worker image (`toolkit-worker`) and the toolkit's
  own image (`toolkit`, the orchestrator Job's) as host processes from the directory of this installation's
  executables (`run_images` overrides), so the worker pods the chart renders and the orchestrator Job really run.
- `down(state_dir)` stops the agent, then the control plane, by recorded process ids; `wipe=True` also
  removes the state directory (etcd data, certificates, kubeconfig) and gives back the cluster's network.
- `status(state_dir)` reports each process and whether the apiserver answers /readyz; it starts nothing.
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
from toolkit.targets.local.network import release_network

NODE_AGENT = "nodeagent"
WORKER_EXECUTABLE = "toolkit-worker"
TOOLKIT_EXECUTABLE = "toolkit"
NODE_AGENT_MODULE = "toolkit.targets.local.nodeagent"


@dataclass(frozen=True)
class EnvironmentStatus:
    """Control plane and node agent of one state directory."""

    control_plane: ClusterStatus
    node_agent: ProcessStatus

    @property
    def running(self) -> bool:
        return self.control_plane.running and self.node_agent.running


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
    """Start (or find running) the control plane and the node agent; return how to reach the cluster."""
    find_binaries()
    control_plane = ControlPlane(state_dir)
    cluster = control_plane.start(timeout=timeout)
    if _agent_pid(control_plane) is None:
        images = default_run_images() if run_images is None else dict(run_images)
        _start_agent(control_plane, node_count, images)
    _wait_nodes_ready(control_plane, node_count, time.monotonic() + 90.0)
    return cluster


def down(state_dir: Path | None = None, wipe: bool = False) -> None:
    """Stop the node agent and the control plane; with `wipe`, delete the state directory too."""
    control_plane = ControlPlane(state_dir)
    pid = _agent_pid(control_plane)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15.0
        while _agent_pid(control_plane) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if _agent_pid(control_plane) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    control_plane.pid_file(NODE_AGENT).unlink(missing_ok=True)
    control_plane.stop()
    if wipe and control_plane.state_dir.exists():
        release_network(control_plane.state_dir)
        shutil.rmtree(control_plane.state_dir)


def status(state_dir: Path | None = None) -> EnvironmentStatus:
    """What runs in `state_dir` (default: `default_state_dir()`)."""
    control_plane = ControlPlane(state_dir)
    pid = _agent_pid(control_plane)
    recorded = _recorded_agent_pid(control_plane)
    agent = ProcessStatus(NODE_AGENT, recorded, pid is not None, control_plane.log_file(NODE_AGENT))
    return EnvironmentStatus(control_plane.status(), agent)


def _recorded_agent_pid(control_plane: ControlPlane) -> int | None:
    try:
        return int(control_plane.pid_file(NODE_AGENT).read_text().strip())
    except (OSError, ValueError):
        return None


def _agent_pid(control_plane: ControlPlane) -> int | None:
    """The recorded agent pid when that process is alive and runs the agent module."""
    pid = _recorded_agent_pid(control_plane)
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
    return pid if command_line == [b""] or NODE_AGENT_MODULE.encode() in command_line else None


def _start_agent(control_plane: ControlPlane, node_count: int, images: Mapping[str, Path]) -> None:
    control_plane.log_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", NODE_AGENT_MODULE,
        "--kubeconfig", str(control_plane.kubeconfig),
        "--nodes", str(node_count),
    ]  # fmt: skip
    for image, directory in sorted(images.items()):
        argv += ["--run-image", f"{image}={directory}"]
    with open(control_plane.log_file(NODE_AGENT), "ab") as log:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    control_plane.pid_file(NODE_AGENT).write_text(f"{process.pid}\n")


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


__all__ = ["EnvironmentStatus", "default_state_dir", "down", "status", "up"]
