"""The smoke check against real processes on loopback: the single-node Kafka + Elasticsearch peer (noida-db) and
real `toolkit-worker` receiver and indexer subprocesses. Each hop is proven by the probe itself, and a stopped
indexer (or receiver, or a missing topic) fails the hop it breaks, by name."""

from __future__ import annotations

import signal

import pytest

from tests.wire.worker.test_worker_e2e import self_signed_certificate
from toolkit.rehearsal.smoke import (
    ElasticsearchTarget,
    KafkaTarget,
    SmokeTarget,
    SyslogTarget,
    run_smoke,
)
from toolkit.targets.peer import free_port

pytestmark = pytest.mark.wire


def _target(peer, names, syslog: SyslogTarget) -> SmokeTarget:
    return SmokeTarget(
        syslog=syslog,
        kafka=KafkaTarget(bootstrap=peer.kafka_bootstrap),
        elasticsearch=ElasticsearchTarget(url=peer.elasticsearch_url),
        events_topic=names["topic"],
        write_alias=names["alias"],
    )


def test_probe_crosses_every_hop_and_is_found_by_a_search(peer, kafka_topics, index_layout, names, start_worker, es):
    receiver = start_worker("receiver")
    start_worker("indexer")
    report = run_smoke(_target(peer, names, SyslogTarget("127.0.0.1", receiver.ports["tcp"])), hop_timeout=60)
    assert report.ok, report.lines()
    assert [h.name for h in report.hops] == ["syslog", "kafka", "elasticsearch"]
    assert "partition" in report.hops[1].detail and names["alias"] in report.hops[2].detail
    es.indices.refresh(index=names["alias"])
    (hit,) = es.search(index=names["alias"], query={"term": {"host.name": report.probe_id}})["hits"]["hits"]
    assert hit["_source"]["log"]["syslog"]["msgid"] == "smoke"
    assert report.probe_id in hit["_source"]["message"]


def test_probe_over_tls_verifies_the_receiver_against_the_ca(
    peer, kafka_topics, index_layout, names, start_worker, tmp_path
):
    cert, key = self_signed_certificate(tmp_path)
    receiver = start_worker("receiver", tls_port=free_port(), tls_cert_file=cert, tls_key_file=key)
    start_worker("indexer")
    tls = SyslogTarget("127.0.0.1", receiver.ports["tls"], tls=True, ca_file=cert, server_name="localhost")
    report = run_smoke(_target(peer, names, tls), hop_timeout=60)
    assert report.ok, report.lines()
    assert report.hops[0].detail.startswith(f"sent {report.probe_id} to receiver tls://127.0.0.1:")

    wrong_name = SyslogTarget("127.0.0.1", receiver.ports["tls"], tls=True, ca_file=cert, server_name="elsewhere")
    refused = run_smoke(_target(peer, names, wrong_name), hop_timeout=5)
    assert not refused.ok and refused.failed_hop is not None and refused.failed_hop.name == "syslog"
    assert "TLS handshake failed" in refused.failed_hop.detail
    assert [h.reached for h in refused.hops] == [True, False, False]


def test_stopped_indexer_fails_the_elasticsearch_hop(peer, kafka_topics, index_layout, names, start_worker):
    receiver = start_worker("receiver")
    indexer = start_worker("indexer")
    indexer.process.send_signal(signal.SIGTERM)
    indexer.process.wait(30)
    report = run_smoke(_target(peer, names, SyslogTarget("127.0.0.1", receiver.ports["tcp"])), hop_timeout=8)
    assert not report.ok
    assert [(h.name, h.ok) for h in report.hops] == [("syslog", True), ("kafka", True), ("elasticsearch", False)]
    failed = report.failed_hop
    assert failed is not None and failed.name == "elasticsearch"
    assert "reached Kafka" in failed.detail and "indexers are not consuming" in failed.detail
    assert report.summary().startswith(f"probe {report.probe_id} stopped at hop elasticsearch")


def test_stopped_receiver_fails_the_syslog_hop(peer, kafka_topics, index_layout, names, start_worker):
    receiver = start_worker("receiver")
    receiver.process.send_signal(signal.SIGTERM)
    receiver.process.wait(30)
    report = run_smoke(_target(peer, names, SyslogTarget("127.0.0.1", receiver.ports["tcp"])), hop_timeout=5)
    assert report.failed_hop is not None and report.failed_hop.name == "syslog"
    assert "cannot connect" in report.failed_hop.detail
    assert [h.reached for h in report.hops] == [True, False, False]


def test_missing_events_topic_fails_before_sending(peer, names):
    report = run_smoke(_target(peer, names, SyslogTarget("127.0.0.1", free_port())), hop_timeout=5)
    assert report.failed_hop is not None and report.failed_hop.name == "kafka"
    assert f"topic {names['topic']} is not readable" in report.failed_hop.detail
    assert report.hops[0].reached is False
