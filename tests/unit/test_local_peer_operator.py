"""The local peer operator's decisions, without a cluster: which namespaces are platform namespaces and what each
needs (names from the wiring only), the chart's topics from a Helm release Secret, the status it reports, the peer
slots of the cluster network, and that a data plane only ever removes what it owns."""

from __future__ import annotations

import base64
import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest

from toolkit.config.wiring import RELEASES
from toolkit.targets.local import dataplane
from toolkit.targets.local.network import MAX_PEER_SLOTS, ClusterNetwork
from toolkit.targets.local.peeroperator import (
    NamespaceStatus,
    OperatorStatus,
    chart_topics,
    platform_wiring,
    release_values,
    wanted,
)
from toolkit.targets.local.publications import NamespacePublications, records_dir, write_record

CERT = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def service(namespace: str, name: str) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name}, "spec": {"clusterIP": "10.0.0.1"}}


def secret(namespace: str, name: str, data: dict[str, bytes], kind: str = "Opaque", labels: dict | None = None) -> dict:
    metadata = {"namespace": namespace, "name": name, "labels": labels or {}}
    return {"metadata": metadata, "type": kind, "data": {k: _b64(v) for k, v in data.items()}}


def helm_release(namespace: str, revision: int, config: dict, status: str = "deployed") -> dict:
    """A Helm release Secret as Helm stores it: base64 (by Kubernetes) of base64 of gzipped JSON."""
    chart_values = {
        "topics": {
            "create": True,
            "events": {"name": "security-events", "partitions": 12, "config": {"retention.ms": "604800000"}},
            "deadLetters": {"name": "security-events-dead-letters", "partitions": 3},
        },
        "clientAuthentication": {"type": "tls"},
    }
    release = {"name": RELEASES["kafka"], "version": revision, "info": {"status": status}, "config": config}
    release["chart"] = {"values": chart_values}
    blob = base64.b64encode(gzip.compress(json.dumps(release).encode()))
    labels = {"name": RELEASES["kafka"], "owner": "helm", "status": status, "version": str(revision)}
    return secret(namespace, f"sh.helm.release.v1.{RELEASES['kafka']}.v{revision}", {"release": blob},
                  "helm.sh/release.v1", labels)  # fmt: skip


def platform(namespace: str, config: dict | None = None, revision: int = 1) -> tuple[dict, dict]:
    """The Services and Secrets deploy makes in `namespace` (names from the wiring)."""
    w = platform_wiring(namespace)
    services = {(namespace, s.name): service(namespace, s.name) for s in (w.kafka_bootstrap, w.elasticsearch)}
    tls = {"tls.crt": CERT, "tls.key": KEY, "ca.crt": CERT}
    items = [
        secret(namespace, w.secrets.ca, {"ca.crt": CERT}),
        secret(namespace, w.secrets.kafka_tls, tls, "kubernetes.io/tls"),
        secret(namespace, w.secrets.es_tls, tls, "kubernetes.io/tls"),
        secret(namespace, w.admin.kafka_secret, tls, "kubernetes.io/tls"),
        secret(namespace, w.admin.es_secret, {"username": b"elastic", "password": b"pw", "ca.crt": CERT}),
        helm_release(namespace, revision, config if config is not None else {"topics": {"events": {"partitions": 7}}}),
    ]
    return services, {(namespace, s["metadata"]["name"]): s for s in items}


def test_a_namespace_with_the_wirings_services_and_secrets_is_published_with_the_charts_topics() -> None:
    services, secrets = platform("anywhere")
    want = wanted(services, secrets)["anywhere"]
    assert want.kafka is not None and want.kafka[1] == CERT and want.elasticsearch is not None
    assert not want.waiting and not want.problems
    w = platform_wiring("anywhere")
    topics = {t.name: t.partitions for t in want.topics or ()}
    assert topics == {w.events_topic: 7, w.dead_letter_topic: 3}  # 7: deploy's value over the chart's 12
    assert dict(want.topics[0].config) == {"retention.ms": "604800000"}  # type: ignore[index]
    assert want.admin_es == {"username": b"elastic", "password": b"pw", "ca.crt": CERT}


def test_the_latest_release_revision_gives_the_topics() -> None:
    services, secrets = platform("ns")
    newer = helm_release("ns", 2, {"topics": {"events": {"partitions": 24}}})
    secrets[("ns", newer["metadata"]["name"])] = newer
    want = wanted(services, secrets)["ns"]
    assert want.release_revision == 2 and want.topics is not None and want.topics[0].partitions == 24


def test_missing_secrets_are_waited_for_by_name_and_nothing_is_published() -> None:
    services, _ = platform("early")
    want = wanted(services, {})["early"]
    w = platform_wiring("early")
    assert want.kafka is None and want.elasticsearch is None and not want.publishes
    for name in (w.secrets.ca, w.secrets.kafka_tls, w.secrets.es_tls, w.admin.kafka_secret, w.admin.es_secret):
        assert f"Secret early/{name}" in want.waiting
    assert f"the Kafka release early/{RELEASES['kafka']}" in want.waiting


def test_namespaces_without_the_wirings_services_are_not_platform_namespaces() -> None:
    services = {("other", "kafka"): service("other", "kafka"), ("default", "kubernetes"): service("default", "x")}
    assert wanted(services, {}) == {}


def test_a_scram_platform_is_not_published_and_says_why() -> None:
    services, secrets = platform("scram", {"clientAuthentication": {"type": "scram-sha-512"}})
    want = wanted(services, secrets)["scram"]
    assert want.kafka is None and want.elasticsearch is not None
    assert any("no SASL" in p and "client_authentication: tls" in p for p in want.problems)


def test_topic_names_other_than_the_wirings_are_a_problem() -> None:
    with pytest.raises(ValueError, match="the wiring names 'security-events'"):
        chart_topics(platform_wiring("ns"), {"topics": {"events": {"name": "renamed", "partitions": 1}}})


def test_release_values_overlay_the_charts_defaults_with_the_releases_own() -> None:
    revision, status, values = release_values(helm_release("ns", 3, {"topics": {"events": {"partitions": 5}}}))
    assert (revision, status) == (3, "deployed")
    assert values["topics"]["events"] == {
        "name": "security-events",
        "partitions": 5,
        "config": {"retention.ms": "604800000"},
    }
    with pytest.raises(ValueError, match="not a Helm release"):
        release_values(secret("ns", "plain", {}))


def test_status_round_trip_and_readiness() -> None:
    kafka = {"service": "kafka-bootstrap", "port": 9094, "loopback": "127.0.0.1:1", "mutual_tls": True}
    es = {"service": "elasticsearch-http", "port": 9200, "loopback": "127.0.0.1:2"}
    served = NamespaceStatus("ns", 1, {"pid": 1}, kafka, es, {"security-events": 12}, "alias")
    assert served.ready and NamespaceStatus.from_json(served.as_json()) == served
    assert "Kafka kafka-bootstrap:9094 (mutual TLS; from this host 127.0.0.1:1)" in served.describe()
    waiting = NamespaceStatus("ns", 1, None, None, None, None, None, ("Secret ns/kafka-tls",))
    assert not waiting.ready and waiting.describe() == "namespace ns: waiting for Secret ns/kafka-tls"
    assert OperatorStatus(1, 0.0, True, "not root").lines() == ["data plane unavailable: not root"]


def test_peer_slots_have_their_own_namespace_and_address_and_are_never_a_pods_leftover() -> None:
    net = ClusterNetwork(3)
    assert (
        (net.peer_sandbox_for(0), net.peer_ip_for(0)) == (net.peer_sandbox, net.peer_ip) == ("tkl3-peer", "10.131.0.2")
    )
    assert (net.peer_sandbox_for(7), net.peer_ip_for(7)) == ("tkl3-peer7", "10.131.0.9")
    assert len(net.peer_sandbox_for(MAX_PEER_SLOTS)) <= 15
    assert net.is_peer_sandbox("tkl3-peer") and net.is_peer_sandbox("tkl3-peer12")
    assert not net.is_peer_sandbox(net.sandbox_name("10.131.1.2")) and not net.is_peer_sandbox("tkl3-peerx")
    with pytest.raises(ValueError, match="out of range"):
        net.peer_sandbox_for(MAX_PEER_SLOTS + 1)


def test_a_data_planes_leftovers_are_only_its_own(tmp_path: Path) -> None:
    """Records of namespaces it published go; another data plane's record stays; a recorded pid that is not a
    stunnel4 (here: this test's own process) is never killed."""
    mine, theirs = tmp_path / "network" / "peers" / "mine", tmp_path / "network" / "peer"
    for directory, namespace in ((mine, "a"), (theirs, "b")):
        directory.mkdir(parents=True)
        (directory / dataplane.OWNED_NAMESPACES).write_text(f"{namespace}\n")
        write_record(tmp_path, NamespacePublications(namespace))
        (records_dir(tmp_path) / namespace).mkdir()
    (mine / dataplane.ROOT_LISTENER_PIDS).write_text(f"{os.getpid()}\n")
    removed = dataplane._remove_directory_leftovers(tmp_path, mine)
    assert removed == ["publication record of a"]
    assert not (records_dir(tmp_path) / "a.json").exists() and not (records_dir(tmp_path) / "a").exists()
    assert (records_dir(tmp_path) / "b.json").exists() and (records_dir(tmp_path) / "b").exists()
    assert not (mine / dataplane.ROOT_LISTENER_PIDS).exists()
