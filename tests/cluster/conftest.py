"""The `cluster` tier: one real Kubernetes v1.20.2 control plane + one in-process node agent per test session.

The control plane is started in a fresh temporary state directory (its own certificates, etcd data and free
loopback ports), so the tier never touches a developer's `cluster up` environment. Each test works in its own
namespace. When the binaries are missing the whole tier skips, naming them and scripts/local-control-plane.sh.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from local_cluster_helpers import nodes_schedulable, wait_for

from toolkit.targets.local.controlplane import SETUP_SCRIPT, ControlPlane, LocalCluster, missing_binaries

TIMINGS: dict[str, float] = {}


@dataclass
class LocalEnvironment:
    control_plane: ControlPlane
    cluster: LocalCluster
    agent: Any  # toolkit.targets.local.nodeagent.NodeAgent
    api_client: Any  # kubernetes.client.ApiClient


@pytest.fixture(scope="session")
def local_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnvironment]:
    missing = missing_binaries()
    if missing:
        pytest.skip(f"local control plane not built: missing {', '.join(missing)}; run `sudo {SETUP_SCRIPT}`")
    from kubernetes import client, config

    from toolkit.targets.local.nodeagent import AgentSettings, NodeAgent

    control_plane = ControlPlane(tmp_path_factory.mktemp("local-cluster"))
    started = time.monotonic()
    cluster = control_plane.start()
    TIMINGS["control plane start (all four healthy)"] = time.monotonic() - started
    TIMINGS["kube-apiserver start to /readyz"] = cluster.apiserver_ready_seconds
    settings = AgentSettings(ready_delay_seconds=0.5, delete_delay_seconds=0.3, heartbeat_seconds=5.0)
    agent = NodeAgent(cluster.kubeconfig, settings=settings)
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        agent.start()
        core = client.CoreV1Api(api_client)
        wait_for(lambda: nodes_schedulable(core, agent.node_names), 60, "3 local nodes Ready and untainted")
        TIMINGS["control plane + nodes schedulable"] = time.monotonic() - started
        yield LocalEnvironment(control_plane, cluster, agent, api_client)
    finally:
        agent.stop()
        control_plane.stop()


@pytest.fixture
def namespace(local_env: LocalEnvironment) -> Iterator[str]:
    """A fresh namespace whose default service account (with its token) exists, deleted afterwards."""
    from kubernetes import client

    core = client.CoreV1Api(local_env.api_client)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})

    def default_account_ready() -> bool:
        return bool(core.read_namespaced_service_account("default", name).secrets)

    wait_for(default_account_ready, 60, f"service account {name}/default with a token")
    yield name
    core.delete_namespace(name)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.section("local control plane timings")
        for label, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{label}: {seconds:.1f} s")
