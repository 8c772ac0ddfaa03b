"""StatefulSet OnDelete upgrade against the real StatefulSet controller: how brokers roll one by one."""

from __future__ import annotations

import time

import pytest
from kubernetes import client
from local_cluster_helpers import is_ready, pod_template, wait_for

pytestmark = pytest.mark.cluster


def test_on_delete_statefulset_recreates_each_deleted_pod_at_the_update_revision(local_env, namespace):
    apps = client.AppsV1Api(local_env.api_client)
    core = client.CoreV1Api(local_env.api_client)
    core.create_namespaced_service(
        namespace,
        {"metadata": {"name": "broker"}, "spec": {"clusterIP": "None", "selector": {"app": "broker"}}},
    )
    apps.create_namespaced_stateful_set(
        namespace,
        {
            "metadata": {"name": "broker"},
            "spec": {
                "serviceName": "broker",
                "replicas": 3,
                "selector": {"matchLabels": {"app": "broker"}},
                "updateStrategy": {"type": "OnDelete"},
                "template": pod_template("broker", "registry.local/kafka:3.6.0"),
            },
        },
    )
    names = [f"broker-{ordinal}" for ordinal in range(3)]

    def all_ready() -> bool:
        status = apps.read_namespaced_stateful_set_status("broker", namespace).status
        return status.ready_replicas == 3

    wait_for(all_ready, 60, "3 ready broker pods")
    before = apps.read_namespaced_stateful_set("broker", namespace)
    old_revision = before.status.current_revision
    zones = {
        core.read_node(core.read_namespaced_pod(name, namespace).spec.node_name).metadata.labels[
            "topology.kubernetes.io/zone"
        ]
        for name in names
    }
    assert zones <= {"zone-a", "zone-b", "zone-c"}

    apps.patch_namespaced_stateful_set(
        "broker",
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "registry.local/kafka:3.7.0"}]}}}},
    )

    def new_revision() -> str | None:
        sts = apps.read_namespaced_stateful_set("broker", namespace)
        fresh = sts.status.observed_generation == sts.metadata.generation
        changed = sts.status.update_revision != old_revision
        return sts.status.update_revision if fresh and changed else None

    update_revision = wait_for(new_revision, 30, "the StatefulSet controller to compute the update revision")
    # OnDelete: the controller must not touch running pods by itself.
    for name in names:
        pod = core.read_namespaced_pod(name, namespace)
        assert pod.metadata.labels["controller-revision-hash"] == old_revision

    for name in reversed(names):  # highest ordinal first, one at a time
        old = core.read_namespaced_pod(name, namespace)
        core.delete_namespaced_pod(
            name,
            namespace,
            body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=old.metadata.uid)),
        )

        def replaced_and_ready(name: str = name, old_uid: str = old.metadata.uid) -> object:
            pod = core.read_namespaced_pod(name, namespace)
            return pod if pod.metadata.uid != old_uid and is_ready(pod) else None

        new = wait_for(replaced_and_ready, 60, f"{name} re-created and Ready")
        assert new.metadata.labels["controller-revision-hash"] == update_revision
        assert new.spec.containers[0].image == "registry.local/kafka:3.7.0"
        # The others are untouched while this one rolls.
        for other in names:
            if other != name and other < name:
                assert (
                    core.read_namespaced_pod(other, namespace).metadata.labels["controller-revision-hash"]
                    == old_revision
                )

    def all_updated() -> bool:
        status = apps.read_namespaced_stateful_set_status("broker", namespace).status
        return status.updated_replicas == 3 and status.ready_replicas == 3

    wait_for(all_updated, 30, "updatedReplicas == readyReplicas == 3")
    # A re-created pod of the same name is never removed by the agent's delayed delete (UID precondition).
    final_uids = {name: core.read_namespaced_pod(name, namespace).metadata.uid for name in names}
    time.sleep(3 * local_env.agent.settings.delete_delay_seconds + 1.0)
    assert {name: core.read_namespaced_pod(name, namespace).metadata.uid for name in names} == final_uids
