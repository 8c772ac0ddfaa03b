"""The `cluster` tier: one real Kubernetes v1.20.2 control plane + one in-process node agent per test session.

The control plane is started in a fresh temporary state directory (its own certificates, etcd data, free
loopback ports and its own pod and service network), so the tier never touches a developer's `cluster up`
environment. Each test works in its own namespace. When the binaries are missing the whole tier skips, naming them
and scripts/local-control-plane.sh.

The agent's pod runtime starts with no runnable image: a test that wants real processes maps an image for its own
duration (`runnable_python`: the image `toolkit-test-python` runs this virtualenv's Python), so other tests keep
the simulated pods they were written for.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from local_cluster_helpers import TEST_PYTHON_IMAGE, make_namespace, nodes_schedulable, wait_for

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
    from toolkit.targets.local.runtime import RuntimeSettings

    control_plane = ControlPlane(tmp_path_factory.mktemp("local-cluster"))
    started = time.monotonic()
    cluster = control_plane.start()
    TIMINGS["control plane start (all four healthy)"] = time.monotonic() - started
    TIMINGS["kube-apiserver start to /readyz"] = cluster.apiserver_ready_seconds
    runtime = RuntimeSettings(backoff_initial_seconds=1.0, backoff_max_seconds=8.0, stop_seconds=2.0)
    settings = AgentSettings(ready_delay_seconds=0.5, delete_delay_seconds=0.3, heartbeat_seconds=5.0, runtime=runtime)
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
def runnable_python(local_env: LocalEnvironment) -> Iterator[str]:
    """The image repository `toolkit-test-python`, run by the agent as this virtualenv's executables (python, ...)
    while the test runs; skips naming what is missing when this host cannot run pods."""
    problem = local_env.agent.runtime.problem
    if problem is not None:
        pytest.skip(f"the local pod runtime cannot run here: {problem}")
    local_env.agent.set_runnable_image(TEST_PYTHON_IMAGE, Path(sys.executable).parent)
    yield TEST_PYTHON_IMAGE
    local_env.agent.remove_runnable_image(TEST_PYTHON_IMAGE)


@pytest.fixture(scope="module")
def peer_operator(local_env: LocalEnvironment) -> Iterator[int]:
    """The cluster's peer operator as `toolkit cluster up` runs it (its own process, pid file and log in the session's
    state directory), for the tests of one module: every platform namespace deployed meanwhile gets its Kafka and
    Elasticsearch. Stopped afterwards, so other modules' hand-made data planes publish alone."""
    from toolkit.targets.local.cluster import start_peer_operator, stop_peer_operator

    problem = local_env.agent.runtime.problem
    if problem is not None:
        pytest.skip(f"the local data plane cannot run here: {problem}")
    started = time.monotonic()
    pid = start_peer_operator(local_env.control_plane)
    TIMINGS["peer operator start to its first pass"] = time.monotonic() - started
    yield pid
    stop_peer_operator(local_env.control_plane)


@pytest.fixture
def namespace(local_env: LocalEnvironment) -> Iterator[str]:
    """A fresh namespace whose default service account (with its token) exists, deleted afterwards."""
    from kubernetes import client

    core = client.CoreV1Api(local_env.api_client)
    name = make_namespace(core)
    yield name
    core.delete_namespace(name)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.section("local control plane timings")
        for label, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{label}: {seconds:.1f} s")
