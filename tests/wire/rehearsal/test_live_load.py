"""The rehearsal's live load driver (toolkit.rehearsal.liveload) against the single-node Kafka + Elasticsearch peer
with real `toolkit-worker` subprocesses: a steady run loses nothing, and killed receivers show as UDP loss."""

from __future__ import annotations

import signal
import time
import uuid

import pytest

from tests.wire.worker.conftest import wait_until

pytestmark = pytest.mark.wire


def live_load(peer, names, receivers, rate: float = 150.0, syslog_rate: float = 200.0):
    from toolkit.config.access import EsConnection, KafkaConnection
    from toolkit.rehearsal.liveload import LiveLoad, LiveLoadConfig, ReceiverEndpoint

    endpoints = [
        ReceiverEndpoint(f"receiver-{i}", "127.0.0.1", r.ports["udp"], r.ports["tcp"], r.http_port)
        for i, r in enumerate(receivers)
    ]
    config = LiveLoadConfig(
        run_tag=f"rh-wire-{uuid.uuid4().hex[:6]}",
        kafka=KafkaConnection(bootstrap=peer.kafka_bootstrap),
        elasticsearch=EsConnection(url=peer.elasticsearch_url),
        events_topic=names["topic"],
        indexer_group=names["group"],
        write_alias=names["alias"],
        receivers=lambda: endpoints,
        rate=rate,
        syslog_rate=syslog_rate,
        max_seconds=120,
    )
    return LiveLoad(config)


def run_for(load, seconds: float, drain_timeout: float = 60.0):
    load.start()
    time.sleep(seconds)
    load.stop()
    drained = load.drain(drain_timeout)
    store = load.verify()
    load.close()
    return drained, load.summary(store), load.details(store)


def test_steady_load_loses_nothing_and_counts_match(kafka_topics, index_layout, names, start_worker, peer):
    from toolkit.rehearsal.traffic import Traffic
    from toolkit.rehearsal.verdict import judge

    receivers = [start_worker("receiver"), start_worker("receiver")]
    start_worker("indexer")
    load = live_load(peer, names, receivers)
    started = time.monotonic()
    drained, summary, details = run_for(load, 12)
    took = time.monotonic() - started
    assert details["thread_errors"] == []
    assert drained, summary
    assert set(summary) == set(Traffic(rate=1, syslog_rate=1).summary())  # the sim's keys: judge and report work
    assert summary["produced"] >= 150 * 10 and summary["acknowledged"] == summary["produced"]
    assert summary["consumed"] == summary["acknowledged"]
    assert summary["lost_acknowledged"] == 0 and summary["duplicated"] == 0 and summary["out_of_order"] == 0
    assert summary["syslog_sent_udp"] >= 100 * 10 and summary["syslog_sent_tcp"] >= 100 * 10
    assert summary["accepted"] == summary["syslog_sent"]  # loopback, receivers up: every event reached Kafka
    assert summary["stored"] == summary["accepted"]  # _count for the run id == accepted
    assert summary["lost_accepted"] == 0 and summary["syslog_udp_unreceived"] == 0
    assert details["repeated_document_ids"] == 0 and details["tcp_written_not_accepted"] == 0
    assert judge(summary, "completed").passed
    assert len(load.timeline) >= 10
    assert set(load.timeline[0]) == {
        "t", "acked_per_s", "indexed_per_s", "lag", "health", "produce_ok", "search_ok", "ingest_ok"
    }  # fmt: skip
    assert max(s["indexed_per_s"] for s in load.timeline) > 0
    print(
        f"\nsteady: {summary['acknowledged'] / details['load_seconds']:.0f} probe msg/s, "
        f"{summary['syslog_sent'] / details['load_seconds']:.0f} syslog events/s, "
        f"drain {details['drain_seconds']:.1f} s, whole run {took:.1f} s"
    )


def test_killed_receivers_show_as_udp_loss(kafka_topics, index_layout, names, start_worker, peer):
    from toolkit.rehearsal.verdict import judge

    receiver = start_worker("receiver")
    start_worker("indexer")
    load = live_load(peer, names, [receiver])
    load.start()
    time.sleep(3)
    receiver.process.send_signal(signal.SIGKILL)
    receiver.process.wait(10)
    wait_until(lambda: not load._ready, 5, "the driver to see no Ready receiver")
    time.sleep(3)
    # the same ports again: the receiver comes back where the driver sends
    back = start_worker("receiver", udp_port=receiver.ports["udp"], tcp_port=receiver.ports["tcp"])
    assert back.ports == receiver.ports
    time.sleep(3)
    load.stop()
    assert load.drain(60)
    store = load.verify()
    load.close()
    summary = load.summary(store)
    assert summary["syslog_udp_unreceived"] > 0
    assert summary["max_unavailable_seconds"]["ingest"] >= 2
    assert summary["lost_accepted"] == 0  # what Kafka acknowledged still reached Elasticsearch
    assert summary["stored"] == summary["accepted"]
    verdict = judge(summary, "completed")
    assert not verdict.passed and any("UDP syslog events" in r for r in verdict.reasons)
