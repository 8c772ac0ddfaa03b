"""Issue 14's hostile senders against a real `toolkit-worker receiver` process on loopback and the single-node peer:
each test checks that nothing that should be kept is lost, and that what is dropped is counted (and
dead-lettered)."""

from __future__ import annotations

import base64
import os
import signal
import socket
import time

import pytest

from tests.wire.worker.conftest import wait_until

pytestmark = pytest.mark.wire

MESSAGES = [b"<13>1 - host%d app - - - hostile test message %d" % (n % 17, n) for n in range(4000)]


def octet(messages: list[bytes]) -> bytes:
    return b"".join(b"%d %s" % (len(m), m) for m in messages)


def lines(messages: list[bytes]) -> bytes:
    return b"".join(m + b"\n" for m in messages)


def send(port: int, payload: bytes, chunk: int = 65536) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sender:
        for start in range(0, len(payload), chunk):
            sender.sendall(payload[start : start + chunk])


def read_topic(bootstrap: str, topic: str, expected: int, partitions: int, timeout: float = 30.0) -> list:
    """Every record of the topic (waits until at least `expected` arrived, then 1 s more for extras)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"reader-{topic}-{time.time()}", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records: list = []
    deadline = time.monotonic() + timeout
    quiet_until = None
    while time.monotonic() < deadline:
        batch = [m for m in consumer.consume(500, 0.5) if m.error() is None]
        records += batch
        if len(records) >= expected:
            quiet_until = quiet_until or time.monotonic() + 1.0
            if time.monotonic() >= quiet_until:
                break
    consumer.close()
    return records


def in_flight(receiver) -> float:
    return receiver.metric("toolkit_receiver_in_flight_events")


@pytest.mark.parametrize("framing", [octet, lines], ids=["octet", "lines"])
def test_a_lying_length_in_front_of_4000_messages_loses_none_of_them(kafka_topics, names, start_worker, peer, framing):
    receiver = start_worker("receiver")
    send(receiver.ports["tcp"], b"999999999 " + framing(MESSAGES))
    wait_until(lambda: receiver.metric("toolkit_receiver_events_accepted_total") >= 4000, 60, "4000 Kafka acks")
    records = read_topic(peer.kafka_bootstrap, names["topic"], 4000, 3)
    assert sorted(r.value() for r in records) == sorted(MESSAGES), "every message once, nothing else"
    assert receiver.metric("toolkit_receiver_framing_violations_total", reason="count_above_maximum") == 1
    wait_until(lambda: receiver.metric("toolkit_receiver_dead_lettered_total") == 1, 20, "the dead letter acked")
    [letter] = read_topic(peer.kafka_bootstrap, names["dlq"], 1, 1)
    headers = dict(letter.headers())
    assert letter.value() == b"999999999 " and headers["dlq_reason"] == b"count_above_maximum"
    assert headers["dlq_source"] == b"receiver" and headers["src_ip"] == b"127.0.0.1"
    assert in_flight(receiver) == 0 and receiver.get("/readyz")[0] == 200


def test_lines_that_start_with_digits_and_a_space_stay_whole(kafka_topics, names, start_worker, peer):
    receiver = start_worker("receiver")
    messages = [b"<134>Oct 11 22:14:15 web nginx: request %d" % n for n in range(21)]
    messages[2] = b"404 Not Found /favicon.ico"
    messages[7] = b"200 OK"
    messages[13] = b"12 <b>bold</b> is text, not a count"
    send(receiver.ports["tcp"], lines(messages))
    wait_until(lambda: receiver.metric("toolkit_receiver_events_accepted_total") >= 21, 30, "21 acks")
    records = read_topic(peer.kafka_bootstrap, names["topic"], 21, 3)
    assert sorted(r.value() for r in records) == sorted(messages)
    assert receiver.metric("toolkit_receiver_framing_violations_total") == 0


def test_a_plausible_but_false_count_costs_its_declared_length_and_framing_resumes(
    kafka_topics, names, start_worker, peer
):
    receiver = start_worker("receiver")
    messages = MESSAGES[:600]
    liar = b"%d %s" % (len(messages[100]) + 120, messages[100])
    stream = octet(messages[:100]) + liar + octet(messages[101:])
    # then junk on the octet-counting connection, then more good frames
    stream += b"this is no frame at all" + octet(MESSAGES[600:700])
    send(receiver.ports["tcp"], stream, chunk=1000)
    wait_until(lambda: receiver.metric("toolkit_receiver_dead_lettered_total") >= 3, 30, "dead letters acked")
    wait_until(lambda: in_flight(receiver) == 0, 30, "nothing in flight")
    kept = {r.value() for r in read_topic(peer.kafka_bootstrap, names["topic"], 1, 3)}
    lost = [m for m in MESSAGES[:700] if m not in kept]
    assert messages[100] in lost and MESSAGES[699] in kept, "framing resumed after the false count"
    assert sum(len(m) + 3 for m in lost) <= len(liar) + 120 + 2 * (len(MESSAGES[0]) + 4), "loss bounded"
    assert MESSAGES[599] not in kept, "the frame the junk followed cannot be told from a false count"
    assert len(lost) <= 6
    accepted = receiver.metric("toolkit_receiver_events_accepted_total")
    assert accepted == len(kept)
    violations = receiver.metric("toolkit_receiver_framing_violations_total")
    letters = read_topic(peer.kafka_bootstrap, names["dlq"], int(violations), 1)
    assert len(letters) == violations == receiver.metric("toolkit_receiver_dead_lettered_total")
    reasons = {dict(letter.headers())["dlq_reason"] for letter in letters}
    assert {b"count_false", b"unframed_bytes"} <= reasons
    dead = b"".join(letter.value() for letter in letters)
    assert b"this is no frame at all" in dead and messages[100] in dead
    for message in lost:
        assert message in dead or message[-14:] in dead, "what was not kept is in the dead-letter topic"


def test_oversize_frames_are_cut_and_tagged_and_never_wedge_the_receiver(kafka_topics, names, start_worker, peer):
    receiver = start_worker("receiver", max_message_bytes=1_000_000, max_in_flight=5, shutdown_linger_seconds=0)
    big = [b"<13>1 - bighost app - - - " + bytes([65 + n]) * 1_500_000 for n in range(6)]
    small = MESSAGES[:50]
    send(receiver.ports["tcp"], lines(big) + lines(small))
    wait_until(lambda: receiver.metric("toolkit_receiver_events_accepted_total") >= 56, 60, "56 acks")
    records = read_topic(peer.kafka_bootstrap, names["topic"], 56, 3, timeout=60)
    cut = [r for r in records if dict(r.headers() or []).get("truncated") == b"1"]
    assert sorted(r.value() for r in cut) == sorted(m[:1_000_000] for m in big)
    assert sorted(r.value() for r in records if r not in cut) == sorted(small)
    assert receiver.metric("toolkit_receiver_events_truncated_total") == 6
    assert receiver.metric("toolkit_receiver_discarded_bytes_total", reason="oversize_tail") == 6 * (
        len(big[0]) - 1_000_000
    )
    assert in_flight(receiver) == 0 and receiver.get("/readyz")[0] == 200
    send(receiver.ports["tcp"], lines(MESSAGES[50:60]))
    wait_until(lambda: receiver.metric("toolkit_receiver_events_accepted_total") >= 66, 30, "later events accepted")
    receiver.process.send_signal(signal.SIGTERM)
    assert receiver.process.wait(60) == 0
    assert '"unflushed": 0, "in_flight": 0' in receiver.logs()


def test_a_maximum_above_what_the_topic_accepts_is_refused_at_start(kafka_topics, start_worker):
    receiver = start_worker("receiver", wait_ready=False, max_message_bytes=2_000_000)
    assert receiver.process.wait(60) == 2
    text = receiver.logs()
    assert "TOOLKIT_WORKER_MAX_MESSAGE_BYTES=2000000 needs topic" in text
    assert "max.message.bytes is 1048588: lower TOOLKIT_WORKER_MAX_MESSAGE_BYTES to at most 1047564" in text


def test_kafka_refusing_events_as_too_large_dead_letters_their_head_and_frees_their_slots(
    kafka_topics, names, start_worker, peer
):
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

    receiver = start_worker("receiver", max_in_flight=5)
    # the topic shrinks after the receiver checked it: Kafka now refuses 5,000-byte records (MSG_SIZE_TOO_LARGE)
    admin = AdminClient({"bootstrap.servers": peer.kafka_bootstrap})
    entry = ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ConfigResource.Type.TOPIC, names["topic"], incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(10)
    time.sleep(1)
    # incompressible: the limit applies to the (lz4-compressed) batch
    big = [b"<13>1 - bighost app - - - " + base64.b64encode(os.urandom(3750)) for _ in range(6)]
    send(receiver.ports["tcp"], lines(big))
    wait_until(lambda: receiver.metric("toolkit_receiver_dead_lettered_total") >= 6, 60, "6 dead letters")
    # (sent after: Kafka refuses a whole batch, so an event batched with a refused one is dead-lettered with it)
    send(receiver.ports["tcp"], lines(MESSAGES[:20]))
    wait_until(lambda: receiver.metric("toolkit_receiver_events_accepted_total") >= 20, 30, "the small events")
    assert receiver.metric("toolkit_receiver_events_dropped_total", reason="message_too_large") == 6
    letters = read_topic(peer.kafka_bootstrap, names["dlq"], 6, 1)
    assert sorted(letter.value() for letter in letters) == sorted(m[:4096] for m in big)
    assert all(dict(letter.headers())["dlq_bytes"] == b"%d" % len(big[0]) for letter in letters)
    assert in_flight(receiver) == 0 and receiver.get("/readyz")[0] == 200


def test_connection_cap_refuses_and_counts_and_readiness_follows(kafka_topics, start_worker):
    receiver = start_worker("receiver", max_connections=20)
    held = [socket.create_connection(("127.0.0.1", receiver.ports["tcp"])) for _ in range(20)]
    try:
        wait_until(lambda: receiver.metric("toolkit_receiver_open_connections") == 20, 10, "20 connections open")
        status, reason = receiver.get("/readyz")
        assert status == 503 and "connection cap reached (20/20)" in reason
        extra = socket.create_connection(("127.0.0.1", receiver.ports["tcp"]))
        extra.settimeout(5)
        try:
            answer = extra.recv(10)
        except ConnectionResetError:
            answer = b""
        assert answer == b"", "the connection over the cap is closed at once"
        extra.close()
        assert receiver.metric("toolkit_receiver_connections_closed_total", reason="cap") == 1
    finally:
        for connection in held:
            connection.close()
    wait_until(lambda: receiver.get("/readyz")[0] == 200, 10, "ready again once connections left")


def test_idle_connections_are_closed_and_counted(kafka_topics, start_worker):
    receiver = start_worker("receiver", idle_timeout_seconds=1)
    idle = [socket.create_connection(("127.0.0.1", receiver.ports["tcp"])) for _ in range(5)]
    for connection in idle:
        connection.settimeout(10)
        assert connection.recv(10) == b"", "the receiver closed it"
        connection.close()
    assert receiver.metric("toolkit_receiver_connections_closed_total", reason="idle") == 5
    assert receiver.metric("toolkit_receiver_open_connections") == 0


def test_overload_turns_readiness_false_and_back_without_losing_events(kafka_topics, names, start_worker, peer):
    receiver = start_worker("receiver", max_in_flight=50)
    os.kill(peer.pid, signal.SIGSTOP)  # Kafka stops acknowledging
    try:
        send(receiver.ports["tcp"], lines(MESSAGES[:500]))
        wait_until(lambda: receiver.get("/readyz")[0] == 503, 15, "not ready while overloaded")
        assert receiver.metric("toolkit_receiver_backpressure_pauses_total") >= 1
        assert in_flight(receiver) >= 50
    finally:
        os.kill(peer.pid, signal.SIGCONT)
    wait_until(lambda: receiver.metric("toolkit_receiver_events_accepted_total") == 500, 60, "every event accepted")
    wait_until(lambda: receiver.get("/readyz")[0] == 200, 30, "ready again")
    records = read_topic(peer.kafka_bootstrap, names["topic"], 500, 3)
    assert sorted(r.value() for r in records) == sorted(MESSAGES[:500])
    assert receiver.metric("toolkit_receiver_events_dropped_total") == 0


def test_tls_accepts_octet_counting_only_and_dead_letters_the_rest(kafka_topics, names, start_worker, peer, tmp_path):
    import ssl

    from tests.wire.worker.test_worker_e2e import self_signed_certificate
    from toolkit.targets.peer import free_port

    cert, key = self_signed_certificate(tmp_path)
    receiver = start_worker("receiver", tls_port=free_port(), tls_cert_file=cert, tls_key_file=key)
    context = ssl.create_default_context(cafile=cert)
    with (
        socket.create_connection(("127.0.0.1", receiver.ports["tls"])) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(octet(MESSAGES[:30]) + lines(MESSAGES[30:40]) + octet(MESSAGES[40:70]))
        tls.unwrap()
    wait_until(lambda: receiver.metric("toolkit_receiver_events_accepted_total") >= 59, 30, "octet frames accepted")
    wait_until(lambda: receiver.metric("toolkit_receiver_dead_lettered_total") >= 1, 30, "dead letter")
    kept = {r.value() for r in read_topic(peer.kafka_bootstrap, names["topic"], 59, 3)}
    # the frame before the LF lines cannot be told from a false count: dead-lettered with them
    assert kept == set(MESSAGES[:29] + MESSAGES[40:70])
    assert receiver.metric("toolkit_receiver_framing_violations_total", reason="count_false") == 1
    letters = read_topic(peer.kafka_bootstrap, names["dlq"], 2, 1)
    dead = b"".join(letter.value() for letter in letters)
    assert lines(MESSAGES[30:40]) in dead and MESSAGES[29] in dead


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_3000_idle_or_slow_connections_stay_under_256_mib(kafka_topics, names, start_worker, peer):
    receiver = start_worker("receiver", max_connections=4096)
    before = rss_bytes(receiver.process.pid)
    connections = []
    try:
        for n in range(3000):
            connection = socket.create_connection(("127.0.0.1", receiver.ports["tcp"]))
            if n % 2:  # slow: a partial frame of 2,000 bytes, then a trickle
                connection.sendall(b"<13>1 - slowhost app - - - " + b"s" * 1973)
            connections.append(connection)
        wait_until(lambda: receiver.metric("toolkit_receiver_open_connections") == 3000, 60, "3000 open")
        for _ in range(3):
            for connection in connections[1::2]:
                connection.sendall(b"t")
            time.sleep(1)
        wait_until(lambda: receiver.metric("toolkit_receiver_buffered_bytes") == 1500 * 2003, 30, "partial frames held")
        during = rss_bytes(receiver.process.pid)
        status, _ = receiver.get("/readyz")
        print(f"receiver RSS: {before / 2**20:.1f} MiB at start, {during / 2**20:.1f} MiB with 3000 connections")
        assert during < 256 * 2**20, f"RSS {during / 2**20:.0f} MiB"
        assert status == 200, "3000 connections are no overload"
    finally:
        for connection in connections[1::2]:
            with __import__("contextlib").suppress(OSError):
                connection.sendall(b"\n")  # the slow frames complete
        for connection in connections:
            connection.close()
    wait_until(lambda: receiver.metric("toolkit_receiver_events_accepted_total") == 1500, 60, "1500 slow frames")
