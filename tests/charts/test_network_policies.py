"""Which pod may reach which port: the NetworkPolicies of the manifests `toolkit deploy --render` writes, evaluated
with Kubernetes' semantics (a pod selected by any policy of a direction denies everything that no rule of those
policies allows; a connection needs both the source's egress and the destination's ingress).

The matrix below is the platform's security model: each workload reaches exactly the listeners it needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from toolkit.config.environments import resolve
from toolkit.provision.deploy import render_platform
from toolkit.provision.orchestrator import job_manifests

NAMESPACE_LABELS = {"kubernetes.io/metadata.name": "security-platform"}


def _matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        value = labels.get(expression["key"])
        operator, values = expression["operator"], expression.get("values", [])
        if (operator == "In" and value not in values) or (operator == "NotIn" and value in values):
            return False
        if (operator == "Exists" and value is None) or (operator == "DoesNotExist" and value is not None):
            return False
    return True


def _peer_allows(peer: dict[str, Any], labels: dict[str, str], namespace_labels: dict[str, str]) -> bool:
    if "ipBlock" in peer:
        return False  # pods are addressed by selectors here; CIDR peers are for sources outside the cluster
    namespace_ok = _matches(peer["namespaceSelector"], namespace_labels) if "namespaceSelector" in peer else (
        namespace_labels == NAMESPACE_LABELS
    )
    return namespace_ok and _matches(peer.get("podSelector"), labels)


def _rule_allows(rule: dict[str, Any], peer_key: str, labels: dict[str, str], ns: dict[str, str], port: int) -> bool:
    ports = rule.get("ports")
    if ports and not any(p.get("port") == port for p in ports):
        return False
    peers = rule.get(peer_key)
    return not peers or any(_peer_allows(p, labels, ns) for p in peers)


def allowed(policies: list[dict[str, Any]], src: dict[str, str], dst: dict[str, str], port: int) -> bool:
    def direction(pod: dict[str, str], other: dict[str, str], kind: str, rules_key: str, peer_key: str) -> bool:
        selecting = [p for p in policies if _matches(p["spec"]["podSelector"], pod) and kind in p["spec"]["policyTypes"]]
        if not selecting:
            return True
        return any(
            _rule_allows(rule, peer_key, other, NAMESPACE_LABELS, port)
            for p in selecting
            for rule in p["spec"].get(rules_key, [])
        )

    return direction(src, dst, "Egress", "egress", "to") and direction(dst, src, "Ingress", "ingress", "from")


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    env = resolve("eu-west-1")
    rendered = render_platform(env, tmp_path_factory.mktemp("render"))
    docs = [d for f in rendered.files if not f.endswith(".values.yaml") for d in yaml.safe_load_all(Path(f).read_text())]
    docs += job_manifests(env, {"workers": "0.2.0"})
    return [d for d in docs if d and d["kind"] == "NetworkPolicy"]


def pod(name: str, component: str, instance: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component, "app.kubernetes.io/instance": instance}


BROKER = pod("kafka", "broker", "kafka")
CONTROLLER = pod("kafka", "controller", "kafka")
ES_HOT = pod("elasticsearch", "hot", "elasticsearch")
RECEIVER = pod("ingest-workers", "syslog-receiver", "ingest-workers")
INDEXER = pod("ingest-workers", "indexer", "ingest-workers")
ORCHESTRATOR = {"app.kubernetes.io/name": "toolkit-orchestrator"}
STRANGER = {"app": "debug-shell"}

MATRIX = [
    # (who, to whom, port, allowed)
    (RECEIVER, BROKER, 9094, True),
    (INDEXER, BROKER, 9094, True),
    (ORCHESTRATOR, BROKER, 9094, True),
    (STRANGER, BROKER, 9094, False),
    (RECEIVER, BROKER, 9092, False),  # the inter-broker listener is for the nodes only
    (RECEIVER, CONTROLLER, 9093, False),
    (BROKER, CONTROLLER, 9093, True),
    (CONTROLLER, BROKER, 9092, True),
    (INDEXER, ES_HOT, 9200, True),
    (ORCHESTRATOR, ES_HOT, 9200, True),
    (RECEIVER, ES_HOT, 9200, False),  # the receiver never talks to Elasticsearch
    (STRANGER, ES_HOT, 9200, False),
    (INDEXER, ES_HOT, 9300, False),  # transport is for the nodes only
    (ES_HOT, ES_HOT, 9300, True),
    (BROKER, ES_HOT, 9200, False),
    (ES_HOT, BROKER, 9094, False),
    (STRANGER, RECEIVER, 1601, False),  # syslog sources are an explicit list of CIDRs, not any pod
    (STRANGER, INDEXER, 8080, False),
]


@pytest.mark.parametrize(("src", "dst", "port", "expected"), MATRIX)
def test_who_may_reach_whom(policies: list[dict[str, Any]], src: dict, dst: dict, port: int, expected: bool) -> None:
    assert allowed(policies, src, dst, port) is expected


def test_every_platform_pod_is_selected_by_a_policy(policies: list[dict[str, Any]]) -> None:
    for labels in (BROKER, CONTROLLER, ES_HOT, RECEIVER, INDEXER):
        assert any(_matches(p["spec"]["podSelector"], labels) for p in policies), labels


def test_prometheus_may_scrape_the_kafka_exporter_and_nobody_else(tmp_path: Path) -> None:
    """With the JMX exporter on, its port is open to Prometheus pods (any namespace) and to no one else."""
    from toolkit.provision import helm

    env = resolve("eu-west-1")
    values = helm.environment_values(env, "kafka")
    values["metrics"] = {"jmxExporter": {"enabled": True, "agent": {"volume": {"configMap": {"name": "jmx-agent"}}}}}
    rendered = helm.render_offline("kafka", values, release="kafka", namespace=env.platform.namespace)
    docs = [d for d in yaml.safe_load_all(helm.manifest_of(rendered)) if d and d["kind"] == "NetworkPolicy"]
    prometheus = {"app.kubernetes.io/name": "prometheus"}
    port = values["metrics"]["jmxExporter"].get("port", 9404)
    assert allowed(docs, prometheus, BROKER, port)
    assert not allowed(docs, STRANGER, BROKER, port)
    assert not allowed(docs, prometheus, BROKER, 9094)
