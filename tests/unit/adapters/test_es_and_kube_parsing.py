"""Elasticsearch answers the single-node peer cannot give (shutdown records of a real 8.x cluster, relocating shards,
transient-over-persistent settings), the Kubernetes field conversions, and the lease holder liveness rule."""

from __future__ import annotations

import os
import socket

import pytest

from toolkit.config.environments import Endpoints
from toolkit.model import ShardState, ShutdownRecord
from toolkit.targets.es_admin import (
    EsConfigError,
    allocation_enable,
    client_from_endpoints,
    parse_cat_shards,
    parse_shutdowns,
    tier_of,
)
from toolkit.targets.kube import _resolve_intstr, holder_alive, pod_ordinal

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


def test_es_secrets_come_from_named_environment_variables(monkeypatch):
    monkeypatch.delenv("ES_KEY_FOR_TEST", raising=False)
    with pytest.raises(EsConfigError, match="ES_KEY_FOR_TEST, which is not set"):
        client_from_endpoints(Endpoints(elasticsearch_url="https://es:9200", api_key_env="ES_KEY_FOR_TEST"))
    with pytest.raises(EsConfigError, match=r"ca_file /nonexistent/ca\.crt does not exist"):
        client_from_endpoints(Endpoints(elasticsearch_url="https://es:9200", ca_file="/nonexistent/ca.crt"))
    monkeypatch.setenv("ES_KEY_FOR_TEST", "c2VjcmV0")
    client = client_from_endpoints(Endpoints(elasticsearch_url="https://es:9200", api_key_env="ES_KEY_FOR_TEST"))
    assert client.transport.node_pool.get().base_url == "https://es:9200"
    client.close()


def test_kafka_security_settings(monkeypatch, tmp_path):
    from toolkit.targets.kafka_admin import KafkaConfigError, client_config

    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("KAFKA_USER_T", "indexer")
    monkeypatch.setenv("KAFKA_PASS_T", "pw")
    conf = client_config(
        Endpoints(kafka_bootstrap="b:9094", ca_file=str(ca), username_env="KAFKA_USER_T", password_env="KAFKA_PASS_T")
    )
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["ssl.ca.location"] == str(ca) and conf["sasl.username"] == "indexer"
    assert client_config(Endpoints(kafka_bootstrap="b:9094", ca_file=str(ca)))["security.protocol"] == "SSL"
    monkeypatch.delenv("KAFKA_PASS_T")
    with pytest.raises(KafkaConfigError, match="KAFKA_PASS_T"):
        client_config(Endpoints(kafka_bootstrap="b:9094", username_env="KAFKA_USER_T", password_env="KAFKA_PASS_T"))


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
