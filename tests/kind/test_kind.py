"""Tests on a real kind cluster (kind + Docker). They skip where either is missing, naming the missing part, and
unless TOOLKIT_KIND=1 (they create, or reuse, the cluster `toolkit`, context kind-toolkit). See
/tmp/adapters-readme.md ("kind tests") for the variables:

- TOOLKIT_KIND=1                       run them (the cluster is created from kind-config.yaml when absent)
- TOOLKIT_KIND_PLATFORM_NAMESPACE=NS   also run the data-plane tests against the platform deployed in NS
                                       (charts/kafka with external.enabled, charts/elasticsearch with http.nodePort)
- TOOLKIT_KIND_KAFKA=127.0.0.1:30092   Kafka bootstrap from the laptop (per-broker NodePorts, kind-config.yaml)
- TOOLKIT_KIND_ES=http://127.0.0.1:30920  Elasticsearch URL from the laptop
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest
from kind_support import kind_missing

from toolkit.config.access import Access, EsAccess, KafkaAccess
from toolkit.config.environments import Environment, resolve

pytestmark = pytest.mark.kind


MISSING = kind_missing()
needs_kind = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


def kind_env(namespace: str = "default", access: Access | None = None) -> Environment:
    """The built-in kind environment (its access: kind-config.yaml's NodePorts), in `namespace`."""
    base = resolve("kind")
    return base.model_copy(
        update={"platform": base.platform.model_copy(update={"namespace": namespace}), "access": access or base.access}
    )


@pytest.fixture(scope="module")
def kind_cluster() -> Iterator[Environment]:
    from toolkit.targets import clusters

    env = kind_env()
    print(clusters.up(env))
    yield env


@pytest.fixture
def namespace(kind_cluster: Environment) -> Iterator[str]:
    from kubernetes import client

    from toolkit.targets.kube.client import api_client_for

    api = api_client_for(None, "kind-toolkit")
    core = client.CoreV1Api(api)
    name = f"tk-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)
    api.close()


@needs_kind
def test_status_says_the_cluster_exists_and_answers(kind_cluster):
    from toolkit.targets import clusters

    found = clusters.status(kind_cluster)
    message = str(found)
    assert found.answers and "exists" in message and "answers" in message and "does not answer" not in message


@needs_kind
def test_kube_adapter_observes_zones_and_restarts_exactly_one_pod(namespace):
    """A 3-replica OnDelete StatefulSet of pause containers: zones come from the kind workers' labels, a restart
    deletes exactly the named pod (UID precondition) and its controller re-creates it."""
    from kubernetes import client

    from toolkit.targets.kube.client import api_client_for
    from toolkit.targets.kube.workloads import KubeWorkloads

    api = api_client_for(None, "kind-toolkit")
    labels = {
        "app": "kafka",
        "toolkit.io/component": "kafka",
        "app.kubernetes.io/component": "combined",
        "app.kubernetes.io/version": "4.0.1",
    }
    client.AppsV1Api(api).create_namespaced_stateful_set(
        namespace,
        {
            "metadata": {"name": "kafka", "labels": labels},
            "spec": {
                "serviceName": "kafka",
                "replicas": 3,
                "podManagementPolicy": "Parallel",
                "updateStrategy": {"type": "OnDelete"},
                "selector": {"matchLabels": {"app": "kafka"}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "kafka", "image": "registry.k8s.io/pause:3.9"}]},
                },
            },
        },
    )
    kube = KubeWorkloads(api, namespace)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        (w,) = kube.observe()
        if len(w.pods) == 3 and all(p.ready for p in w.pods):
            break
        time.sleep(1)
    assert {p.zone for p in w.pods} <= {"zone-a", "zone-b", "zone-c"} and all(p.zone for p in w.pods)
    assert all(p.revision == w.update_revision for p in w.pods)
    before = {p.name: p.uid for p in w.pods}
    kube.restart_pod("kafka-1")
    while time.monotonic() < deadline:
        (w,) = kube.observe()
        now = {p.name: p.uid for p in w.pods if p.ready and not p.terminating}
        if len(now) == 3 and now["kafka-1"] != before["kafka-1"]:
            break
        time.sleep(1)
    assert now["kafka-0"] == before["kafka-0"] and now["kafka-2"] == before["kafka-2"]
    assert now["kafka-1"] != before["kafka-1"]


PLATFORM_NS = os.environ.get("TOOLKIT_KIND_PLATFORM_NAMESPACE")
needs_platform = pytest.mark.skipif(
    MISSING is not None or not PLATFORM_NS,
    reason=MISSING or "TOOLKIT_KIND_PLATFORM_NAMESPACE is not set (deploy the platform on kind first)",
)


@needs_platform
def test_real_data_plane_observation_from_outside_the_cluster():
    """Kafka through the per-broker NodePorts, the quorum through the tools in a broker pod, Elasticsearch
    through its NodePort: the state the gates need, all from real components."""
    from toolkit.model import Health
    from toolkit.targets.real import open_real_target

    access = Access(
        kafka=KafkaAccess(bootstrap=os.environ.get("TOOLKIT_KIND_KAFKA", "127.0.0.1:30092")),
        elasticsearch=EsAccess(url=os.environ.get("TOOLKIT_KIND_ES", "https://127.0.0.1:30920")),
    )
    with open_real_target(kind_env(str(PLATFORM_NS), access)) as target:
        assert target.simulated is False
        state = target.observe()
    assert state.kafka.nodes and all(n.reachable for n in state.kafka.nodes)
    assert state.kafka.active_controller is not None
    assert state.kafka.voters and all(v.caught_up for v in state.kafka.voters)
    assert state.kafka.metadata_version
    assert state.elasticsearch.health in (Health.GREEN, Health.YELLOW)
    assert state.elasticsearch.supports_shutdown_api is True
