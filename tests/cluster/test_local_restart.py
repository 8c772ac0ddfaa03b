"""The node agent across an apiserver restart and an expired watch (real apiserver, real watch cache)."""

from __future__ import annotations

import time

import pytest
from kubernetes import client
from local_cluster_helpers import is_ready, nodes_schedulable, pod_template, wait_for

from toolkit.targets.local.nodeagent import WatchExpiredError

pytestmark = pytest.mark.cluster


def test_agent_resumes_after_the_apiserver_restarts(local_env, namespace):
    apps = client.AppsV1Api(local_env.api_client)
    core = client.CoreV1Api(local_env.api_client)
    agent = local_env.agent
    reconnects_before = agent.stats.watch_reconnects
    pid_before = local_env.control_plane.status().processes[1].pid

    # SIGTERM; the apiserver drains open watches for a long time, so SIGKILL follows after 5 s (a crash).
    local_env.control_plane.stop_component("kube-apiserver", grace_seconds=5.0)
    assert not local_env.control_plane.status().apiserver_ready
    time.sleep(2.0)  # the agent's watch and heartbeats fail meanwhile
    seconds = local_env.control_plane.start_component("kube-apiserver")
    print(f"\nkube-apiserver restart to /readyz: {seconds:.1f} s")
    status = local_env.control_plane.status()
    assert status.apiserver_ready and status.processes[1].pid != pid_before

    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "after-restart"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "after-restart"}},
                "template": pod_template("after-restart", "registry.local/app:1.0"),
            },
        },
    )

    def two_ready() -> bool:
        pods = core.list_namespaced_pod(namespace, label_selector="app=after-restart").items
        return sum(1 for pod in pods if is_ready(pod)) == 2

    wait_for(two_ready, 60, "2 pods Ready after the apiserver restart (watch resumed)")
    assert agent.stats.watch_reconnects > reconnects_before
    # The new apiserver's watch cache starts at the current etcd revision: resuming from an older version is
    # answered 410 Gone unless nothing changed meanwhile, and the agent re-lists instead of missing events.
    print(f"agent after restart: {agent.stats}")
    # Heartbeats resumed too: the nodes stay Ready well past one heartbeat period.
    time.sleep(agent.settings.heartbeat_seconds + 1.0)
    assert nodes_schedulable(core, agent.node_names)


def test_expired_resource_version_is_reported_and_a_relist_recovers(local_env, namespace):
    core = client.CoreV1Api(local_env.api_client)
    agent = local_env.agent
    with pytest.raises(WatchExpiredError):
        agent.watch_pods_once("1")  # far older than the apiserver's watch cache: 410 Gone
    relists_before = agent.stats.relists
    version = agent.relist_pods()
    assert int(version) > 1
    assert agent.stats.relists == relists_before + 1
    # The agent keeps serving pods afterwards.
    core.create_namespaced_pod(
        namespace,
        {"metadata": {"name": "after-relist"}, "spec": pod_template("x", "registry.local/app:1.0")["spec"]},
    )
    wait_for(lambda: is_ready(core.read_namespaced_pod("after-relist", namespace)), 30, "pod after-relist Ready")
