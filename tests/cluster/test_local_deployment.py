"""Deployment surge rollout under a PodDisruptionBudget, against the real Deployment and PDB controllers."""

from __future__ import annotations

import threading

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from local_cluster_helpers import create_pdb, is_ready, pod_template, wait_for

pytestmark = pytest.mark.cluster


def _deployment(name: str, image: str, replicas: int = 3) -> dict[str, object]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": pod_template(name, image, {"toolkit.io/ready-delay-seconds": "1"}),
        },
    }


def _rolled_out(apps: client.AppsV1Api, name: str, namespace: str, replicas: int) -> bool:
    deployment = apps.read_namespaced_deployment(name, namespace)
    status = deployment.status
    return (
        status.observed_generation == deployment.metadata.generation
        and status.updated_replicas == replicas
        and status.available_replicas == replicas
        and (status.replicas or 0) == replicas
    )


def test_surge_rollout_never_drops_below_replicas_and_pdb_blocks_eviction(local_env, namespace):
    apps = client.AppsV1Api(local_env.api_client)
    core = client.CoreV1Api(local_env.api_client)
    custom = client.CustomObjectsApi(local_env.api_client)
    apps.create_namespaced_deployment(namespace, _deployment("indexer", "registry.local/indexer:1.0"))
    create_pdb(local_env.api_client, namespace, "indexer", maxUnavailable=0)
    wait_for(lambda: _rolled_out(apps, "indexer", namespace, 3), 60, "indexer 3/3 available")

    def pdb_counts_three() -> bool:
        pdb = custom.get_namespaced_custom_object("policy", "v1beta1", namespace, "poddisruptionbudgets", "indexer")
        status = pdb.get("status", {})
        return status.get("currentHealthy") == 3 and status.get("disruptionsAllowed") == 0

    wait_for(pdb_counts_three, 30, "the disruption controller to count 3 healthy, 0 disruptions allowed")
    victim = core.list_namespaced_pod(namespace, label_selector="app=indexer").items[0].metadata.name
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod_eviction(
            victim,
            namespace,
            {
                "apiVersion": "policy/v1beta1",
                "kind": "Eviction",
                "metadata": {"name": victim, "namespace": namespace},
            },
        )
    assert refused.value.status == 429  # the PDB forbids the disruption

    # Sample the pods while the Deployment controller rolls them.
    samples: list[tuple[int, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            pods = core.list_namespaced_pod(namespace, label_selector="app=indexer").items
            alive = [pod for pod in pods if pod.metadata.deletion_timestamp is None]
            samples.append((sum(1 for pod in alive if is_ready(pod)), len(alive)))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    apps.patch_namespaced_deployment(
        "indexer",
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "registry.local/indexer:2.0"}]}}}},
    )
    try:
        wait_for(
            lambda: (
                _rolled_out(apps, "indexer", namespace, 3)
                and all(
                    pod.spec.containers[0].image.endswith(":2.0")
                    for pod in core.list_namespaced_pod(namespace, label_selector="app=indexer").items
                )
            ),
            90,
            "indexer rolled to 2.0",
        )
    finally:
        stop.set()
        sampler.join(timeout=5)
    assert len(samples) > 10, "the sampler saw too little of the rollout"
    assert min(ready for ready, _ in samples) >= 3, f"maxUnavailable 0 violated: {samples}"
    assert max(alive for _, alive in samples) <= 4, f"maxSurge 1 violated: {samples}"
    assert max(alive for _, alive in samples) == 4, "the rollout never surged"
    replica_sets = apps.list_namespaced_replica_set(namespace, label_selector="app=indexer").items
    assert sorted(rs.status.replicas or 0 for rs in replica_sets) == [0, 3]
