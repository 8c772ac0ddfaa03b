"""The receiver's hand-off to Kafka with a scripted producer: the in-flight count returns to zero whatever the
producer does (raises synchronously, reports failures later), refused events are counted and dead-lettered, and
counters are fed per read, not per event."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from toolkit.worker.config import load_config
from toolkit.worker.observability import WorkerMetrics
from toolkit.worker.receiver import DEAD_LETTER_HEAD_BYTES, Receiver, _Stream


class FakeMessage:
    def __init__(self, topic: str, value: bytes, key: bytes, headers: list) -> None:
        self._topic, self._value, self._key, self._headers = topic, value, key, headers

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return self._key

    def headers(self) -> list:
        return self._headers

    def topic(self) -> str:
        return self._topic


class ScriptedProducer:
    """`raises`: exceptions produce() raises, in order, for event records; `fails`: delivery errors reported by
    poll(), in order (None = delivered)."""

    def __init__(self, raises: list[Exception | None] | None = None, fails: list[int | None] | None = None) -> None:
        self.raises = list(raises or [])
        self.fails = list(fails or [])
        self.pending: list[tuple[Any, FakeMessage]] = []
        self.records: list[FakeMessage] = []

    def produce(self, topic, value=None, key=None, headers=None, on_delivery=None):
        if self.raises and not topic.startswith("dlq"):
            exc = self.raises.pop(0)
            if exc is not None:
                raise exc
        message = FakeMessage(topic, value, key, list(headers or []))
        self.records.append(message)
        self.pending.append((on_delivery, message))

    def poll(self, timeout: float = 0) -> int:
        served = 0
        while self.pending:
            callback, message = self.pending.pop(0)
            code = self.fails.pop(0) if self.fails and not message.topic().startswith("dlq") else None
            callback(None if code is None else KafkaError(code), message)
            served += 1
        return served


class FakeTransport:
    def __init__(self) -> None:
        self.paused = False
        self.closed = False

    def get_extra_info(self, name: str) -> Any:
        return ("10.0.0.9", 40123) if name == "peername" else None

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def make(producer: ScriptedProducer, **settings: str) -> tuple[Receiver, _Stream, WorkerMetrics]:
    environ = {
        "TOOLKIT_WORKER_KAFKA_BOOTSTRAP": "k:9092",
        "TOOLKIT_WORKER_TOPIC": "events",
        "TOOLKIT_WORKER_DEAD_LETTER_TOPIC": "dlq-events",
        **{f"TOOLKIT_WORKER_{k.upper()}": v for k, v in settings.items()},
    }
    metrics = WorkerMetrics()
    receiver = Receiver(load_config("receiver", environ), metrics, producer=producer)
    stream = _Stream(receiver, "tcp")
    stream.connection_made(FakeTransport())  # type: ignore[arg-type]
    return receiver, stream, metrics


def value(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


LINES = b"".join(b"<13>1 - host%d app - - - event %d\n" % (n % 3, n) for n in range(10))


@pytest.mark.parametrize(
    ("exception", "reason"),
    [
        (KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)), "message_too_large"),
        (BufferError("Local: Queue full"), "producer_queue_full"),
        (KafkaException(KafkaError(KafkaError._UNKNOWN_TOPIC)), "producer_error"),
        (TypeError("anything else"), "producer_error"),
    ],
)
def test_a_produce_that_raises_gives_its_slot_back_at_once(exception, reason):
    producer = ScriptedProducer(raises=[None, exception, None, exception])
    receiver, stream, metrics = make(producer)
    stream.data_received(LINES[:120] + b"<13>1 - big app - - - " + b"x" * 6000 + b"\n" + LINES[120:])
    assert receiver.inflight.count == len(producer.pending), "only what produce() accepted is in flight"
    producer.poll()
    receiver._after_poll()
    assert receiver.inflight.count == 0
    assert value(metrics, "toolkit_receiver_events_dropped_total", reason=reason) == 2
    assert value(metrics, "toolkit_receiver_events_received_total", transport="tcp") == 11
    assert value(metrics, "toolkit_receiver_events_accepted_total", transport="tcp") == 9
    letters = [m for m in producer.records if m.topic() == "dlq-events"]
    if reason == "message_too_large":
        assert len(letters) == 2 and all(len(m.value()) <= DEAD_LETTER_HEAD_BYTES for m in letters)
        assert all(dict(m.headers())["dlq_reason"] == b"message_too_large" for m in letters)
        assert value(metrics, "toolkit_receiver_dead_lettered_total", reason="message_too_large") == 2
    else:
        assert letters == []


def test_events_kafka_refuses_on_delivery_are_released_counted_and_their_head_dead_lettered():
    producer = ScriptedProducer(fails=[None, None, KafkaError.MSG_SIZE_TOO_LARGE, KafkaError._MSG_TIMED_OUT, None])
    receiver, stream, metrics = make(producer)
    big = b"<13>1 - big app - - - " + b"y" * 9000
    two = b"".join(LINES.splitlines(keepends=True)[:2])
    stream.data_received(two + big + b"\n" + b"<13>1 - h app - - - timed out\n" + b"<13>1 - h app - - - ok\n")
    for _ in range(3):  # the dead letter is produced from the report thread and reported on the next poll
        producer.poll()
        receiver._after_poll()
    assert receiver.inflight.count == 0
    assert value(metrics, "toolkit_receiver_events_accepted_total", transport="tcp") == 2 + 1
    assert value(metrics, "toolkit_receiver_events_dropped_total", reason="message_too_large") == 1
    assert value(metrics, "toolkit_receiver_events_dropped_total", reason="kafka_delivery_failed") == 1
    [letter] = [m for m in producer.records if m.topic() == "dlq-events"]
    assert letter.value() == big[:DEAD_LETTER_HEAD_BYTES]
    headers = dict(letter.headers())
    assert headers["dlq_bytes"] == b"%d" % len(big) and headers["src_ip"] == b"10.0.0.9"
    assert value(metrics, "toolkit_receiver_dead_lettered_total", reason="message_too_large") == 1


def test_framing_violations_are_dead_lettered_with_reception_headers_and_counted():
    producer = ScriptedProducer()
    receiver, stream, metrics = make(producer)
    stream.data_received(b"999999999 " + LINES)
    producer.poll()
    receiver._after_poll()
    events = [m for m in producer.records if m.topic() == "events"]
    [letter] = [m for m in producer.records if m.topic() == "dlq-events"]
    assert len(events) == 10 and letter.value() == b"999999999 "
    headers = dict(letter.headers())
    assert headers["dlq_reason"] == b"count_above_maximum" and headers["transport"] == b"tcp"
    assert value(metrics, "toolkit_receiver_framing_violations_total", reason="count_above_maximum") == 1
    assert value(metrics, "toolkit_receiver_dead_lettered_total", reason="count_above_maximum") == 1
    assert receiver.inflight.count == 0


def test_records_carry_the_raw_bytes_the_hostname_key_and_reception_headers_only():
    producer = ScriptedProducer()
    _, stream, _ = make(producer, observer_hostname="recv-1")
    stream.data_received(b"<34>Oct 11 22:14:15 mymachine su: hello\nno syslog header\n")
    first, second = producer.records
    assert first.value() == b"<34>Oct 11 22:14:15 mymachine su: hello" and first.key() == b"mymachine"
    assert second.key() == b"10.0.0.9", "no hostname: the peer address is the key"
    assert [name for name, _ in first.headers()] == ["src_ip", "src_port", "transport", "observer", "received_ms"]
    assert dict(first.headers())["observer"] == b"recv-1"


def test_a_full_in_flight_count_pauses_every_connection_and_readiness_until_it_drains():
    producer = ScriptedProducer()
    receiver, stream, _ = make(producer, max_in_flight="4")
    receiver.kafka_ok = receiver.topic_checked = True
    other = _Stream(receiver, "tcp")
    other.connection_made(FakeTransport())  # type: ignore[arg-type]
    stream.data_received(LINES)
    assert receiver.reading_paused and stream.transport.paused and other.transport.paused  # type: ignore[union-attr]
    ready, reason = receiver.readiness()
    assert not ready and "in-flight buffer full" in reason
    producer.poll()
    receiver._resume_reading()
    assert not receiver.reading_paused and not stream.transport.paused  # type: ignore[union-attr]
    assert receiver.readiness() == (True, "ok")


def test_the_buffer_budget_closes_the_connection_that_would_exceed_it():
    producer = ScriptedProducer()
    receiver, stream, metrics = make(producer, max_buffered_bytes="65536", max_message_bytes="60000")
    other = _Stream(receiver, "tcp")
    other.connection_made(FakeTransport())  # type: ignore[arg-type]
    stream.data_received(b"<13>" + b"a" * 40000)
    assert receiver.buffered == 40004 and not stream.transport.closed  # type: ignore[union-attr]
    other.data_received(b"<13>" + b"b" * 30000)
    assert other.transport.closed  # type: ignore[union-attr]
    other.connection_lost(None)
    assert receiver.buffered == 40004
    assert value(metrics, "toolkit_receiver_connections_closed_total", reason="buffer_budget") == 1
    assert value(metrics, "toolkit_receiver_discarded_bytes_total", reason="buffer_budget") == 30004
    assert not [m for m in producer.records if b"bbbb" in m.value()], "the partial frame is not forwarded"
