"""The worker end to end against the single-node Kafka + Elasticsearch peer, with real subprocesses."""

from __future__ import annotations

import datetime as dt
import signal
import socket
import ssl
import subprocess
import time

import pytest

from tests.wire.worker.conftest import (
    duplicate_ids,
    produce_events,
    sample_lines,
    searchable_count,
    wait_until,
)

pytestmark = pytest.mark.wire


def self_signed_certificate(directory) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


def test_syslog_over_udp_tcp_and_tls_is_searchable_with_ecs_fields(
    kafka_topics, index_layout, es, names, start_worker, tmp_path
):
    cert, key = self_signed_certificate(tmp_path)
    from toolkit.targets.peer import free_port

    receiver = start_worker("receiver", tls_port=free_port(), tls_cert_file=cert, tls_key_file=key)
    indexer = start_worker("indexer")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for n in range(20):
        udp.sendto(
            b"<11>%s udphost app %d - - udp event %d" % (b"1 " + stamp.encode(), 100 + n, n),
            ("127.0.0.1", receiver.ports["udp"]),
        )
    udp.close()

    with socket.create_connection(("127.0.0.1", receiver.ports["tcp"])) as tcp:
        for n in range(20):  # newline framing, RFC 3164
            tcp.sendall(b"<34>Oct 11 22:14:15 tcphost su[%d]: tcp newline event %d\n" % (200 + n, n))
        # a line that is not syslog is kept (indexed raw, tagged); on a connection that is octet counting it would be
        # a framing violation instead (tests/wire/worker/test_receiver_hostile_wire.py)
        tcp.sendall(b"a line that is not syslog at all\n")
        for n in range(20):  # octet counting, RFC 5424
            body = b'<165>1 %s tcphost evntslog %d ID47 [ex@1 k="v"] tcp octet event %d' % (stamp.encode(), 300 + n, n)
            tcp.sendall(b"%d %s" % (len(body), body))

    context = ssl.create_default_context(cafile=cert)
    with (
        socket.create_connection(("127.0.0.1", receiver.ports["tls"])) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        for n in range(20):
            body = b"<86>1 %s tlshost sshd %d - - tls event %d" % (stamp.encode(), 400 + n, n)
            tls.sendall(b"%d %s" % (len(body), body))
        # close_notify: closing a TLS 1.3 socket that never read the server's session tickets sends RST, and the
        # receiving kernel may then discard bytes the receiver had not read yet (a client-side loss)
        tls.unwrap()

    total = 20 + 40 + 1 + 20
    wait_until(lambda: receiver.metric("toolkit_receiver_events_accepted_total") >= total, 90, "Kafka acks")
    assert receiver.metric("toolkit_receiver_events_accepted_total", transport="udp") == 20
    assert receiver.metric("toolkit_receiver_events_accepted_total", transport="tcp") == 41
    assert receiver.metric("toolkit_receiver_events_accepted_total", transport="tls") == 20
    wait_until(lambda: searchable_count(es, names["alias"]) == total, 60, f"{total} documents")

    def one(query):
        hits = es.search(index=names["alias"], query=query, size=1)["hits"]
        assert hits["total"]["value"] >= 1, query
        return hits["hits"][0]["_source"]

    udp_doc = one({"match": {"message": "udp event 3"}})
    assert udp_doc["network"]["transport"] == "udp" and udp_doc["host"]["name"] == "udphost"
    assert udp_doc["log"]["syslog"]["severity"]["code"] == 3 and udp_doc["log"]["syslog"]["facility"]["code"] == 1
    assert udp_doc["process"] == {"name": "app", "pid": 103}
    newline_doc = one({"match": {"message": "newline event 5"}})
    assert newline_doc["process"] == {"name": "su", "pid": 205} and newline_doc["log"]["syslog"]["priority"] == 34
    octet_doc = one({"match": {"message": "octet event 7"}})
    assert octet_doc["log"]["syslog"]["structured_data"] == {"ex@1": {"k": "v"}}
    assert octet_doc["log"]["syslog"]["msgid"] == "ID47"
    tls_doc = one({"match": {"message": "tls event 9"}})
    assert tls_doc["tls"] == {"established": True} and tls_doc["network"]["transport"] == "tcp"
    assert tls_doc["observer"]["hostname"] and tls_doc["source"]["ip"] == "127.0.0.1"
    malformed = one({"term": {"tags": "_syslog_parse_failure"}})
    assert malformed["event"]["original"] == "a line that is not syslog at all"
    # fields are indexed with their mapped types: terms and ranges work
    assert es.count(index=names["alias"], query={"term": {"host.name": "tlshost"}})["count"] == 20
    assert es.count(index=names["alias"], query={"range": {"process.pid": {"gte": 400}}})["count"] == 20
    assert es.count(index=names["alias"], query={"term": {"log.syslog.severity.code": 6}})["count"] == 20
    assert receiver.get("/readyz")[0] == 200 and receiver.get("/healthz")[0] == 200
    assert indexer.metric("toolkit_indexer_events_indexed_total") == total
    assert duplicate_ids(es, names["alias"]) == []


@pytest.mark.parametrize("rollover_between_attempts", [False, True])
def test_sigkill_mid_batch_then_restart_stores_every_event_once(
    kafka_topics, index_layout, es, names, start_worker, fault_proxy, peer, rollover_between_attempts
):
    from toolkit.targets.es_indices import rollover, write_index_of

    accepted = produce_events(peer.kafka_bootstrap, names["topic"], sample_lines(600))
    assert accepted == 600
    first_index = write_index_of(es, names["alias"])
    # the first bulk is stored by Elasticsearch, but its answer is held back: the indexer dies waiting for it
    fault_proxy.plan = [("delay", 30.0)]
    # static membership: the peer never expires a dead dynamic member (real Kafka does, after
    # session.timeout.ms); with the same group.instance.id the restarted indexer takes the partitions at once
    member = {"group_instance_id": "indexer-0", "batch_size": 250, "pin_lease_offsets": 50}
    doomed = start_worker("indexer", es_url=fault_proxy.url, **member)
    assert fault_proxy.bulk_started.wait(30)
    wait_until(lambda: searchable_count(es, names["alias"]) > 0, 15, "the first batch stored")
    doomed.process.send_signal(signal.SIGKILL)
    doomed.process.wait(10)
    stored_before = searchable_count(es, names["alias"])
    assert 0 < stored_before < 600
    if rollover_between_attempts:
        assert rollover(es, names["alias"])["rolled_over"] is True
        assert write_index_of(es, names["alias"]) != first_index

    survivor = start_worker("indexer", **member)
    wait_until(lambda: searchable_count(es, names["alias"]) == accepted, 60, "every accepted event searchable")
    time.sleep(1.5)  # nothing more arrives later
    assert searchable_count(es, names["alias"]) == accepted
    assert duplicate_ids(es, names["alias"]) == []
    assert survivor.metric("toolkit_indexer_events_already_stored_total") >= stored_before
    # the redelivered batch went back to the index it first went to
    assert es.count(index=first_index)["count"] >= stored_before
    if rollover_between_attempts:
        new_index = write_index_of(es, names["alias"])
        assert es.count(index=new_index)["count"] > 0, "once the leases ran out, new events moved on"


def test_elasticsearch_429_and_503_are_retried_and_nothing_is_lost(
    kafka_topics, index_layout, es, names, start_worker, fault_proxy, peer
):
    fault_proxy.plan = [("status", 429), ("status", 429), ("status", 503), ("status", 503), ("item_429", 40)]
    indexer = start_worker("indexer", es_url=fault_proxy.url, batch_size=200)
    accepted = produce_events(peer.kafka_bootstrap, names["topic"], sample_lines(300))
    wait_until(lambda: searchable_count(es, names["alias"]) == accepted, 60, "every event after the faults")
    assert duplicate_ids(es, names["alias"]) == []
    assert indexer.metric("toolkit_indexer_item_failures_total", status="429") >= 40
    assert indexer.metric("toolkit_indexer_item_failures_total", status="503") >= 1
    assert indexer.metric("toolkit_indexer_events_already_stored_total") == 40  # the items whose answer was lost
    assert indexer.metric("toolkit_indexer_events_dead_lettered_total") == 0
    assert fault_proxy.bulk_requests >= 6


def test_poison_events_go_to_the_dead_letter_topic_with_the_reason(
    kafka_topics, index_layout, es, names, start_worker, peer
):
    from confluent_kafka import Consumer, TopicPartition

    indexer = start_worker("indexer")
    good = sample_lines(50)
    poison = [b"<13>1 - poisonhost app 99999999999999999999999999 - - pid beyond a long %d" % n for n in range(3)]
    accepted = produce_events(peer.kafka_bootstrap, names["topic"], good[:25] + poison + good[25:])
    assert accepted == 53
    wait_until(lambda: indexer.metric("toolkit_indexer_events_dead_lettered_total") == 3, 30, "3 dead letters")
    wait_until(lambda: searchable_count(es, names["alias"]) == 50, 30, "the 50 good events")
    assert indexer.process.poll() is None, "a bad event must never stop the worker"

    consumer = Consumer(
        {
            "bootstrap.servers": peer.kafka_bootstrap,
            "group.id": names["group"] + "-dlq-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(names["dlq"], 0, 0)])
    letters = []
    deadline = time.monotonic() + 20
    while len(letters) < 3 and time.monotonic() < deadline:
        letters += [m for m in consumer.consume(10, 1.0) if m.error() is None]
    consumer.close()
    assert sorted(m.value() for m in letters) == sorted(poison)
    for letter in letters:
        headers = dict(letter.headers())
        assert b"process.pid" in headers["dlq_reason"] and headers["dlq_status"] == b"400"
        assert headers["dlq_source"].startswith(names["topic"].encode() + b"/")
        assert headers["dlq_index"].startswith(names["alias"].encode())


def test_sigterm_drains_the_batch_in_hand_commits_and_exits_zero(
    kafka_topics, index_layout, es, names, start_worker, fault_proxy, peer
):
    from confluent_kafka import Consumer, TopicPartition

    accepted = produce_events(peer.kafka_bootstrap, names["topic"], sample_lines(400))
    fault_proxy.plan = [("delay", 3.0)]
    indexer = start_worker("indexer", es_url=fault_proxy.url, batch_size=5000, drain_seconds=20)
    assert fault_proxy.bulk_started.wait(30)
    indexer.process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert indexer.process.wait(25) == 0
    assert time.monotonic() - started >= 2.0, "it waited for the batch in hand"
    assert "stop requested" in indexer.logs() and "indexer stopped" in indexer.logs()
    stored = searchable_count(es, names["alias"])
    assert stored > 0

    consumer = Consumer({"bootstrap.servers": peer.kafka_bootstrap, "group.id": names["group"]})
    partitions = [TopicPartition(names["topic"], p) for p in range(3)]
    committed = consumer.committed(partitions, timeout=10)
    consumer.close()
    committed_total = sum(tp.offset for tp in committed if tp.offset >= 0)
    assert committed_total == stored, "exactly the indexed events are committed"
    # a restarted indexer finishes the rest without duplicates
    start_worker("indexer")
    wait_until(lambda: searchable_count(es, names["alias"]) == accepted, 60, "the rest after restart")
    assert duplicate_ids(es, names["alias"]) == []


def test_receiver_readiness_follows_kafka_not_elasticsearch(kafka_topics, names, start_worker, peer):
    receiver = start_worker("receiver")  # no Elasticsearch setting at all
    assert receiver.get("/readyz") == (200, "ok\n")
    from toolkit.targets.peer import free_port

    missing = start_worker("receiver", wait_ready=False, kafka_bootstrap=f"127.0.0.1:{free_port()}")
    wait_until(lambda: missing.get("/healthz")[0] == 200, 20, "the receiver without Kafka to be alive")
    time.sleep(6)  # one Kafka check has timed out
    status, reason = missing.get("/readyz")
    assert status == 503 and "Kafka" in reason
    missing.process.send_signal(signal.SIGTERM)
    assert missing.process.wait(30) == 0


def test_bad_configuration_exits_2_listing_every_problem(tmp_path):
    from tests.wire.worker.conftest import VENV_BIN

    result = subprocess.run(
        [str(VENV_BIN / "toolkit-worker"), "indexer"],
        env={"PATH": "/usr/bin:/bin", "TOOLKIT_WORKER_BATCH_SIZE": "-1", "TOOLKIT_WORKER_HTTP_PORT": "x"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "(4 problem(s))" in result.stderr
    for name in ("KAFKA_BOOTSTRAP", "ELASTICSEARCH_URL", "BATCH_SIZE", "HTTP_PORT"):
        assert f"TOOLKIT_WORKER_{name}" in result.stderr
