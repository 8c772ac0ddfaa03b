"""Polling and object-building helpers shared by the cluster-tier tests (real apiserver, real controllers)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

TEST_PYTHON_IMAGE = "toolkit-test-python"  # run by the agent as this virtualenv's executables (runnable_python)


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll `condition` until it returns something truthy; fail the test naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except Exception as error:  # the apiserver may be restarting; keep polling
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error})")


def nodes_schedulable(core: Any, names: tuple[str, ...]) -> bool:
    nodes = {node.metadata.name: node for node in core.list_node().items}
    for name in names:
        node = nodes.get(name)
        if node is None:
            return False
        ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
        tainted = any(t.key.startswith("node.kubernetes.io/") for t in node.spec.taints or [])
        if not ready or tainted:
            return False
    return True


def pod_template(app: str, image: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A pod template with one container; the node agent reads its image and annotations."""
    return {
        "metadata": {"labels": {"app": app}, "annotations": dict(annotations or {})},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "main", "image": image}],
        },
    }


def audit_events(local_env: Any, namespaces: set[str]) -> list[dict[str, Any]]:
    """The apiserver's audit records for pods in `namespaces` (JSON lines), oldest first."""
    out = []
    for line in local_env.control_plane.audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if ref.get("resource") == "pods" and ref.get("namespace") in namespaces:
            out.append(event)
    return out


def is_ready(pod: Any) -> bool:
    """Ready condition True and not being deleted (kubernetes client V1Pod)."""
    if pod.metadata.deletion_timestamp is not None:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


# the simulated data plane of a local environment, fast enough for a test (seconds, not minutes)
FAST_DATA_PLANE = {
    "observe_interval": 0.5,
    "kafka_stop_seconds": 0.5,
    "kafka_restart_seconds": 1,
    "kafka_catchup_seconds": 1,
    "quorum_catchup_seconds": 0.5,
    "es_stop_seconds": 0.5,
    "es_restart_seconds": 1,
    "es_recovery_seconds": 1,
    "shutdown_complete_seconds": 0.5,
    "worker_start_seconds": 0.5,
    "worker_stop_seconds": 0.5,
}


def make_namespace(core: Any, prefix: str = "t") -> str:
    """A fresh namespace whose default service account (with its token) exists."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})

    def default_account_ready() -> bool:
        return bool(core.read_namespaced_service_account("default", name).secrets)

    wait_for(default_account_ready, 60, f"service account {name}/default with a token")
    return name


def create_pdb(api: Any, namespace: str, app: str, **budget: int) -> None:
    """A PodDisruptionBudget `app` over the pods labelled app=`app` (`maxUnavailable=1`, `minAvailable=1`, ...), as
    Kubernetes 1.20 serves it: policy/v1beta1 only."""
    from kubernetes import client

    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "policy",
        "v1beta1",
        namespace,
        "poddisruptionbudgets",
        {
            "apiVersion": "policy/v1beta1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": app},
            "spec": {**budget, "selector": {"matchLabels": {"app": app}}},
        },
    )
