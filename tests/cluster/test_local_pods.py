"""What the node agent reports for single simulated pods: bad images, never-ready pods."""

from __future__ import annotations

import time

import pytest
from kubernetes import client
from local_cluster_helpers import is_ready, pod_template, wait_for

pytestmark = pytest.mark.cluster


def _pod(name: str, image: str, annotations: dict[str, str] | None = None) -> dict[str, object]:
    template = pod_template(name, image, annotations)
    return {"metadata": {"name": name, **template["metadata"]}, "spec": template["spec"]}


def test_bad_image_never_becomes_ready_while_a_good_one_does(local_env, namespace):
    core = client.CoreV1Api(local_env.api_client)
    core.create_namespaced_pod(namespace, _pod("good", "registry.local/indexer:2.0"))
    core.create_namespaced_pod(namespace, _pod("bad", "registry.local:5000/indexer:2.1-bad"))
    core.create_namespaced_pod(
        namespace, _pod("stuck", "registry.local/indexer:2.0", {"toolkit.io/never-ready": "true"})
    )
    wait_for(lambda: is_ready(core.read_namespaced_pod("good", namespace)), 30, "pod good Ready")

    def reported(name: str) -> client.V1Pod | None:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.container_statuses else None

    bad = wait_for(lambda: reported("bad"), 30, "the agent to report pod bad")
    stuck = wait_for(lambda: reported("stuck"), 30, "the agent to report pod stuck")
    time.sleep(2.0)  # well past the agent's ready delay: nothing may turn them Ready later
    bad = core.read_namespaced_pod("bad", namespace)
    stuck = core.read_namespaced_pod("stuck", namespace)
    assert bad.status.phase == "Pending"
    assert bad.status.container_statuses[0].state.waiting.reason == "ImagePullBackOff"
    assert not is_ready(bad)
    assert stuck.status.phase == "Running"
    assert stuck.status.container_statuses[0].state.running is not None
    assert not is_ready(stuck)


def test_deployment_rolling_to_a_bad_image_keeps_old_pods_and_exceeds_its_deadline(local_env, namespace):
    apps = client.AppsV1Api(local_env.api_client)
    core = client.CoreV1Api(local_env.api_client)
    body = {
        "metadata": {"name": "worker"},
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 5,
            "selector": {"matchLabels": {"app": "worker"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": pod_template("worker", "registry.local/worker:1.0"),
        },
    }
    apps.create_namespaced_deployment(namespace, body)
    wait_for(
        lambda: apps.read_namespaced_deployment("worker", namespace).status.available_replicas == 2,
        60,
        "worker 2/2 available",
    )
    apps.patch_namespaced_deployment(
        "worker",
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "registry.local/worker:1.1-bad"}]}}}},
    )

    def deadline_exceeded() -> bool:
        conditions = apps.read_namespaced_deployment("worker", namespace).status.conditions or []
        return any(c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded" for c in conditions)

    wait_for(deadline_exceeded, 60, "Progressing=False ProgressDeadlineExceeded on worker")
    pods = core.list_namespaced_pod(namespace, label_selector="app=worker").items
    ready_images = sorted(pod.spec.containers[0].image for pod in pods if is_ready(pod))
    assert ready_images == ["registry.local/worker:1.0", "registry.local/worker:1.0"]
    assert [pod.spec.containers[0].image for pod in pods if not is_ready(pod)] == ["registry.local/worker:1.1-bad"]
