"""The pod runtime's own lifecycle: nothing of a cluster's network is left on the host after its agent stops, what a
killed agent left is cleaned by the next one, and an agent without the privileges to make sandboxes says so in the
pod's status instead of running anything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client, config
from local_cluster_helpers import TEST_PYTHON_IMAGE, make_namespace, nodes_schedulable, wait_for
from runtime_helpers import create_program, one_pod, probe_container, probe_pod_spec, sandbox_on_host

from toolkit.targets.local import down, up
from toolkit.targets.local.network import ClusterNetwork, HostNetwork, network_of, process_alive

pytestmark = pytest.mark.cluster

VENV_BIN = Path(sys.executable).parent


def _agent_pid(state: Path) -> int:
    return int((state / "run" / "nodeagent.pid").read_text())


def _core(state: Path) -> client.CoreV1Api:
    """A client of the cluster in `state` (its kubeconfig names the apiserver's port, which a restart may change)."""
    return client.CoreV1Api(config.new_client_from_config(config_file=str(state / "kubeconfig")))


def _program_pids(network: ClusterNetwork, pod_ip: str) -> list[int]:
    """The probe program's processes in the pod's sandbox (the agent also runs short-lived `nft` there)."""
    pids = HostNetwork(network).sandbox_pids(network.sandbox_name(pod_ip))
    found = []
    for pid in pids:
        try:
            if b"probe_server.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def _cluster_objects(network: ClusterNetwork) -> list[str]:
    """Network namespaces and links of this cluster on the host, bridge included."""
    found = HostNetwork(network).leftover_sandboxes(include_peer=True)
    return found + ([network.bridge] if Path(f"/sys/class/net/{network.bridge}").exists() else [])


def test_stopped_or_killed_agents_leave_nothing_of_the_cluster_network(local_env, tmp_path):
    if local_env.agent.runtime.problem:
        pytest.skip(f"the local pod runtime cannot run here: {local_env.agent.runtime.problem}")
    state = tmp_path / "env"
    images = {TEST_PYTHON_IMAGE: VENV_BIN}
    try:
        up(state, node_count=1, run_images=images)
        network = network_of(state)
        assert network is not None and network != local_env.agent.network, "two clusters share no network"
        core = _core(state)
        ns = make_namespace(core)
        create_program(core, ns)
        spec = probe_pod_spec(probe_container({"READY_AT_START": "1"}))
        core.create_namespaced_pod(ns, {"metadata": {"name": "keeper", "labels": {"app": "keeper"}}, "spec": spec})
        pod = one_pod(core, ns, "app=keeper")
        sandbox = network.sandbox_name(pod.status.pod_ip)
        assert sandbox_on_host(sandbox) and network.bridge in _cluster_objects(network)

        started = time.monotonic()
        down(state)  # the agent stops (SIGTERM): its pods' processes and sandboxes, the bridge, the rules go
        print(f"\nagent stop with one pod: {time.monotonic() - started:.2f} s")
        assert _cluster_objects(network) == []
        assert subprocess.run(["nft", "list", "table", "ip", network.root_table], capture_output=True).returncode != 0

        up(state, node_count=1, run_images=images)  # the pod is still in etcd: the new agent runs it again
        core = _core(state)
        pod = one_pod(core, ns, "app=keeper")
        sandbox = network.sandbox_name(pod.status.pod_ip)
        old = wait_for(lambda: _program_pids(network, pod.status.pod_ip), 30, f"the pod's process in {sandbox}")
        os.kill(_agent_pid(state), signal.SIGKILL)  # a killed agent cleans nothing ...
        time.sleep(0.5)
        assert sandbox_on_host(sandbox) and all(process_alive(pid) for pid in old)

        up(state, node_count=1, run_images=images)  # ... the next one removes its leftovers first
        core = _core(state)
        wait_for(lambda: not any(process_alive(pid) for pid in old), 30, f"the killed agent's processes {old} gone")
        pod = one_pod(core, ns, "app=keeper")
        renewed = wait_for(lambda: _program_pids(network, pod.status.pod_ip), 30, "the pod running in a new sandbox")
        assert not set(renewed) & set(old)
    finally:
        down(state, wipe=True)
    assert _cluster_objects(network) == []
    assert not (Path("/run/toolkit-local/networks") / f"{network.index}.json").exists(), (
        "the network was not given back"
    )


def test_an_agent_without_privileges_reports_what_is_missing_and_runs_nothing(local_env, namespace, runnable_python):
    """A second agent process (its own node `capless-1`) with every capability dropped, as in an unprivileged
    container: its runnable pod waits in CreatePodSandboxError naming what is missing."""
    core = client.CoreV1Api(local_env.api_client)
    log = local_env.control_plane.log_dir / "capless-agent.log"
    argv = [
        "setpriv", "--bounding-set", "-all", "--inh-caps", "-all", "--",
        sys.executable, "-m", "toolkit.targets.local.nodeagent", "--kubeconfig", str(local_env.cluster.kubeconfig),
        "--nodes", "1", "--node-prefix", "capless", "--run-image", f"{TEST_PYTHON_IMAGE}={VENV_BIN}",
    ]  # fmt: skip
    with open(log, "ab") as out:
        agent = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: nodes_schedulable(core, ("capless-1",)), 60, "node capless-1 Ready")
        create_program(core, namespace)
        spec = probe_pod_spec(probe_container(), nodeName="capless-1")
        core.create_namespaced_pod(namespace, {"metadata": {"name": "unprivileged"}, "spec": spec})

        def waiting() -> object:
            statuses = core.read_namespaced_pod("unprivileged", namespace).status.container_statuses or []
            return statuses[0].state.waiting if statuses and statuses[0].state.waiting else None

        state = wait_for(waiting, 30, "the pod's container to wait with a reason")
        print(f"\n{state.reason}: {state.message}")
        assert state.reason == "CreatePodSandboxError"
        assert "cannot create network namespaces" in state.message and "Operation not permitted" in state.message
        assert "CAP_SYS_ADMIN" in state.message
        time.sleep(1.0)
        pod = core.read_namespaced_pod("unprivileged", namespace)
        assert pod.status.phase == "Pending" and not pod.status.pod_ip, "nothing may run without a sandbox"
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
        core.delete_node("capless-1")
