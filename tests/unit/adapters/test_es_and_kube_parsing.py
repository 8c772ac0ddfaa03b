"""Elasticsearch answers the single-node peer cannot give (shutdown records of a real 8.x cluster, relocating shards,
transient-over-persistent settings), the Kubernetes field conversions, and the lease holder liveness rule."""

from __future__ import annotations

import os
import socket

import pytest

from toolkit.config.access import EsConnection, KafkaConnection
from toolkit.model import ShardState, ShutdownRecord
from toolkit.targets.es_admin import (
    EsConfigError,
    allocation_enable,
    client_for,
    parse_cat_shards,
    parse_shutdowns,
    tier_of,
)
from toolkit.targets.kube.workloads import _resolve_intstr, pod_ordinal
from toolkit.targets.process import holder_alive

# GET _nodes/shutdown on Elasticsearch 8.x while one node prepares a restart (shape of the documented response)
SHUTDOWN_ANSWER = {
    "nodes": [
        {
            "node_id": "USpTGYaBSIKbgSUJR2Z9lg",
            "type": "RESTART",
            "reason": "toolkit rolling upgrade",
            "shutdown_startedmillis": 1763813100950,
            "allocation_delay": "10m",
            "status": "COMPLETE",
            "shard_migration": {
                "status": "COMPLETE",
                "shard_migrations_remaining": 0,
                "explanation": "no shard relocation is necessary for a node restart",
            },
            "persistent_tasks": {"status": "COMPLETE"},
            "plugins": {"status": "COMPLETE"},
        }
    ]
}
# What a server without the shutdown API answers on the same path when it routes it to the nodes-info API
NODES_INFO_ANSWER = {"_nodes": {"failed": 0, "successful": 0, "total": 0}, "cluster_name": "c", "nodes": {}}


def test_shutdown_records_map_node_ids_to_names():
    records, supported = parse_shutdowns(SHUTDOWN_ANSWER, {"USpTGYaBSIKbgSUJR2Z9lg": "es-hot-2"})
    assert supported
    assert records == (ShutdownRecord("es-hot-2", "restart", "COMPLETE"),)


def test_nodes_info_shape_means_no_shutdown_api():
    assert parse_shutdowns(NODES_INFO_ANSWER, {}) == ((), False)
    assert parse_shutdowns({"nodes": []}, {}) == ((), True)


def test_cat_shards_relocating_node_is_the_source():
    rows = [
        {
            "index": "events-0001",
            "shard": "0",
            "prirep": "p",
            "state": "RELOCATING",
            "node": "es-hot-0 -> 10.0.1.7 Xy es-hot-2",
        },
        {"index": "events-0001", "shard": "0", "prirep": "r", "state": "STARTED", "node": "es-hot-1"},
        {"index": "events-0001", "shard": "1", "prirep": "r", "state": "UNASSIGNED", "node": None},
    ]
    shards = parse_cat_shards(rows)
    assert [(s.number, s.primary, s.state, s.node) for s in shards] == [
        (0, True, ShardState.RELOCATING, "es-hot-0"),
        (0, False, ShardState.STARTED, "es-hot-1"),
        (1, False, ShardState.UNASSIGNED, None),
    ]


def test_allocation_transient_overrides_persistent():
    key = "cluster.routing.allocation.enable"
    assert allocation_enable({"persistent": {key: "primaries"}, "transient": {}}) == "primaries"
    assert allocation_enable({"persistent": {key: "primaries"}, "transient": {key: "all"}}) == "all"
    assert allocation_enable({"persistent": {}, "transient": {}}) is None


@pytest.mark.parametrize(
    ("roles", "tier"),
    [
        (["data_hot", "data_content", "ingest"], "hot"),
        (["data_warm"], "warm"),
        (["data_cold", "data_frozen"], "cold"),
        (["master"], ""),
        (["data", "master"], ""),
    ],
)
def test_tier_of(roles, tier):
    assert tier_of(roles) == tier


def test_es_secrets_come_from_files_never_from_the_environment(tmp_path):
    with pytest.raises(EsConfigError, match=r"API key file /nonexistent/key cannot be read"):
        client_for(EsConnection(url="https://es:9200", api_key_file="/nonexistent/key"))
    with pytest.raises(EsConfigError, match=r"CA file /nonexistent/ca\.crt does not exist"):
        client_for(EsConnection(url="https://es:9200", ca_file="/nonexistent/ca.crt"))
    with pytest.raises(EsConfigError, match="user indexer has no password file"):
        client_for(EsConnection(url="https://es:9200", username="indexer"))
    key = tmp_path / "key"
    key.write_text("c2VjcmV0\n")
    client = client_for(EsConnection(url="https://es:9200", api_key_file=str(key)))
    assert client.transport.node_pool.get().base_url == "https://es:9200"
    client.close()


def test_kafka_security_settings(tmp_path):
    from toolkit.targets.kafka_admin import KafkaConfigError, client_config

    ca, cert, key, password = (tmp_path / n for n in ("ca.crt", "tls.crt", "tls.key", "password"))
    for path in (ca, cert, key):
        path.write_text("-----BEGIN CERTIFICATE-----\n")
    password.write_text("pw\n")
    mtls = client_config(KafkaConnection(bootstrap="b:9094", ca_file=str(ca), cert_file=str(cert), key_file=str(key)))
    assert mtls["security.protocol"] == "SSL" and mtls["ssl.certificate.location"] == str(cert)
    assert mtls["ssl.endpoint.identification.algorithm"] == "https"  # hostname verification whenever TLS is on
    scram = client_config(
        KafkaConnection(
            bootstrap="b:9094",
            ca_file=str(ca),
            sasl_mechanism="SCRAM-SHA-512",
            username="indexer",
            password_file=str(password),
        )
    )
    assert scram["security.protocol"] == "SASL_SSL" and scram["sasl.password"] == "pw"
    with pytest.raises(KafkaConfigError, match="needs both a client certificate and its key"):
        client_config(KafkaConnection(bootstrap="b:9094", ca_file=str(ca), cert_file=str(cert)))
    with pytest.raises(KafkaConfigError, match="password file /nonexistent cannot be read"):
        client_config(
            KafkaConnection(
                bootstrap="b:9094", sasl_mechanism="SCRAM-SHA-512", username="u", password_file="/nonexistent"
            )
        )


@pytest.mark.parametrize(
    ("value", "total", "up", "expected"),
    [
        (1, 4, True, 1),
        ("25%", 4, True, 1),
        ("25%", 3, True, 1),
        ("25%", 3, False, 0),
        ("50%", 5, False, 2),
        (None, 3, True, 0),
    ],
)
def test_intstr_resolution_like_the_deployment_controller(value, total, up, expected):
    assert _resolve_intstr(value, total, round_up=up) == expected


def test_pod_ordinal():
    assert pod_ordinal("kafka-broker-12") == 12
    assert pod_ordinal("workers-indexer-5d8f9c-abcde") is None


def test_holder_alive_only_knowable_on_this_host():
    host = socket.gethostname()
    assert holder_alive(f"sre@{host}/{os.getpid()}", host) is True
    dead = 2**22 + 12345  # above the default pid_max: no such process
    assert holder_alive(f"sre@{host}/{dead}", host) is False
    assert holder_alive(f"sre@another-host/{dead}", host) is True


def test_in_cluster_requests_carry_the_service_accounts_token(tmp_path, monkeypatch) -> None:
    """In a pod (the orchestrator Job) every request must authenticate as the pod's ServiceAccount: with the
    kubernetes client's own in-cluster loader alone, requests went out anonymous (403 for system:anonymous)."""
    from toolkit.targets.kube.client import in_cluster_configuration

    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("header.payload.signature\n")
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.192.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    configuration = in_cluster_configuration(str(token), str(ca))
    assert configuration.host == "https://10.192.0.1:443" and configuration.ssl_ca_cert == str(ca)
    sent = configuration.auth_settings()["BearerToken"]
    assert (sent["in"], sent["key"], sent["value"]) == ("header", "authorization", "Bearer header.payload.signature")
