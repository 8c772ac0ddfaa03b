"""The syslog receiver: UDP, TCP and TLS listeners -> Kafka, with bounded memory and bounded work per event.

Algorithm
---------
One asyncio loop serves every listener. TCP/TLS connections are protocol objects (no task, no timer per
connection): each read goes through the connection's `FrameDecoder` (`toolkit.worker.framing`: RFC 6587 on TCP,
RFC 5425 octet counting only on TLS) and every completed frame is handed to a confluent-kafka idempotent producer
(acks=all) as the raw bytes, keyed by the sender's HOSTNAME read with one bytes regex (or the peer address when the
header has none), so that the events of one source land in one partition, in order. The receiver parses nothing
else: the full parse and ECS normalisation happen once, in the indexer. Reception facts go in record headers (see
`toolkit.worker.ecs`), built once per connection plus the reception time once per read. Counters are bound to their
labels at start and incremented once per read (received) or per poll of delivery reports (accepted).

What breaks the rules is dead-lettered, never silently dropped
--------------------------------------------------------------
- Framing violations (a broken or false octet count, bytes that are no frame, LF framing on TLS) go to the
  dead-letter topic as raw bytes (at most `max_message_bytes` per violation) with `dlq_reason`, `dlq_bytes` and the
  reception headers, and are counted (`toolkit_receiver_framing_violations_total{reason}`).
- An event longer than `max_message_bytes` is cut there and forwarded tagged (`truncated: 1`, then `_truncated` in
  the document); its tail is counted (`toolkit_receiver_discarded_bytes_total{reason="oversize_tail"}`).
- `max_message_bytes` is checked at start against the events and dead-letter topics' `max.message.bytes`
  (DescribeConfigs): a maximum the topic would refuse stops the receiver with exit status 2 and the way out.
  The topic's own setting is the authority (a worker setting could drift from it); the check allows
  `RECORD_OVERHEAD_BYTES` for key, headers and batch framing. If Kafka refuses an event anyway (the topic was
  changed later: `MSG_SIZE_TOO_LARGE`, raised by `produce` or reported on delivery), its head is dead-lettered and
  it is counted (`dropped{reason="message_too_large"}`).

In-flight accounting that cannot leak
-------------------------------------
`InFlight` counts records handed to the producer and not yet reported, up to `max_in_flight`: `acquired` is
written only by the loop thread, `released` only by the thread serving delivery reports, so no lock is needed. A
record whose `produce` raises (any exception: queue full, message too large, anything else) is un-acquired at once
by the same thread; every record `produce` accepted gets exactly one delivery report, success or failure, which
releases it. So the count returns to zero whatever the producer does.

Bounded resources and backpressure
----------------------------------
- When the in-flight count reaches `max_in_flight`, every connection stops reading (the kernel buffers fill and
  TCP flow control slows the senders) until it is back under 3/4 of it; readiness is false meanwhile.
- At most `max_connections` TCP/TLS connections: more are closed at once (counted, reason `cap`); readiness is
  false at the cap. A connection silent for `idle_timeout_seconds` is closed (reason `idle`).
- A connection holds at most one partial frame (`max_message_bytes` + its header). The partial frames of all
  connections together stay under `max_buffered_bytes`: the connection whose read would exceed it is closed and
  its partial frame counted (reason `buffer_budget`); readiness is false above 90 % of it.
- UDP has no flow control: a datagram that arrives while the in-flight count is full is dropped and counted
  (`toolkit_receiver_events_dropped_total{reason="udp_buffer_full"}`).

What a sender can lose (plain syslog has no application acknowledgement)
-----------------------------------------------------------------------
UDP: anything (the network, a full socket buffer, a full in-flight count). TCP/TLS: whatever this process had read
but Kafka had not acknowledged when it died (at most the in-flight records), plus what sat in socket buffers.

Shutdown (SIGTERM) loses nothing a well-behaved sender wrote:
1. readiness turns false at once, and the receiver keeps listening and reading for `shutdown_linger_seconds`, so
   that routing (a Service's endpoints, a load balancer) moves new traffic elsewhere before anything closes;
2. then the listeners close, and every open TCP connection is half-closed (FIN): a sender that watches its socket
   sees end-of-stream and reconnects elsewhere, while the receiver keeps reading what it still sends until it
   closes, at most `shutdown_read_seconds`;
3. the producer is flushed for `shutdown_flush_seconds`; records still unacknowledged are counted as
   `shutdown_unflushed`.

Readiness (`/readyz`) means "can accept": Kafka answered a metadata request for the topic within the last
refresh, the topic limits were checked, and the in-flight count, the connections and the buffers have room. It
never looks at Elasticsearch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from toolkit.worker.config import WorkerConfig
from toolkit.worker.framing import VIOLATION_REASONS, Cut, FrameDecoder, source_host_match
from toolkit.worker.observability import Heartbeat, ProbeServer, WorkerMetrics

log = logging.getLogger("toolkit.worker.receiver")

KAFKA_CHECK_SECONDS = 5.0
SWEEP_SECONDS = 1.0
RECORD_OVERHEAD_BYTES = 1024  # key (<= 255), reception headers (<= ~450), record and batch framing (<= ~150)
DEAD_LETTER_HEAD_BYTES = 4096  # what is kept of an event Kafka refused as too large
RESUME_FRACTION = 0.75
TLS_READ_BUFFER_BYTES = 32 * 1024  # asyncio's default is 256 KiB per TLS connection (see serve())
TRANSPORTS = ("udp", "tcp", "tls")
DROP_REASONS = (
    "udp_buffer_full",
    "kafka_delivery_failed",
    "producer_queue_full",
    "message_too_large",
    "producer_error",
    "dead_letter_failed",
    "shutdown_unflushed",
)
CLOSE_REASONS = ("cap", "idle", "buffer_budget", "shutdown")
Headers = list[tuple[str, str | bytes | None]]


class InFlight:
    """Records handed to the producer and not yet reported (see the module docstring: one writer per field)."""

    __slots__ = ("acquired", "capacity", "late_acquired", "released")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.acquired = 0  # loop thread only
        self.late_acquired = 0  # delivery-report thread only (dead letters of refused events)
        self.released = 0  # delivery-report thread only

    @property
    def count(self) -> int:
        return self.acquired + self.late_acquired - self.released

    def has_room(self) -> bool:
        return self.acquired + self.late_acquired - self.released < self.capacity


class _RateLimitedLog:
    """At most one line per reason per second; the rest are counted in the next line."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, level: int, what: str, message: str, **extra: Any) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(what, -10.0) < 1.0:
                self._suppressed[what] = self._suppressed.get(what, 0) + 1
                return
            self._last[what] = now
            suppressed = self._suppressed.pop(what, 0)
        log.log(level, message, extra={"what": what, "suppressed_since_last": suppressed, **extra})


class _Stream(asyncio.Protocol):
    """One TCP/TLS connection; the receiver does the work."""

    __slots__ = (
        "buffered",
        "decoder",
        "discard",
        "headers",
        "last_active",
        "name",
        "peer_key",
        "receiver",
        "transport",
    )

    def __init__(self, receiver: Receiver, name: str) -> None:
        self.receiver = receiver
        self.name = name
        self.decoder = FrameDecoder(receiver.config.max_message_bytes, octet_only=name == "tls")
        self.transport: asyncio.Transport | None = None
        self.peer_key = b"unknown"
        self.headers: Headers = []
        self.last_active = 0.0
        self.buffered = 0
        self.discard = False  # closed by the receiver: the partial frame is dropped, not forwarded

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.receiver.open_stream(self, transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.receiver.stream_data(self, data)

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost forwards what is left

    def connection_lost(self, exc: Exception | None) -> None:
        self.receiver.stream_lost(self)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.receiver.datagram(data, addr)


class Receiver:
    def __init__(self, config: WorkerConfig, metrics: WorkerMetrics, producer: Any = None) -> None:
        self.config = config
        self.metrics = metrics
        self.heartbeat = Heartbeat()
        self.kafka_ok = False
        self.kafka_reason = "Kafka not checked yet"
        self.topic_checked = False
        self.fatal: str | None = None  # a problem found after start that must stop the receiver (exit 2)
        self.draining = False  # not ready: routing should move away
        self.closing = False  # listeners closed, connections half-closed
        self.streams: set[_Stream] = set()
        self.buffered = 0  # bytes of partial frames across connections
        self.reading_paused = False
        self._wake_pending = False
        self.bound_ports: dict[str, int] = {}
        self.inflight = InFlight(config.max_in_flight)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._observer = config.observer_hostname.encode()
        self._topic = config.topic
        self._dead_letter_topic = config.dead_letter_topic
        self._maximum = config.max_message_bytes
        self._stop_threads = threading.Event()
        self._say = _RateLimitedLog()
        self.producer = producer if producer is not None else Producer(self.producer_settings(config))
        # counters bound once; hot ones are fed per read or per poll, never per event
        self._received = {t: metrics.received.labels(transport=t) for t in TRANSPORTS}
        self._accepted = {t: metrics.accepted.labels(transport=t) for t in TRANSPORTS}
        self._dropped = {r: metrics.dropped.labels(reason=r) for r in DROP_REASONS}
        self._violations = {r: metrics.framing_violations.labels(reason=r) for r in VIOLATION_REASONS}
        self._violation_bytes = {r: metrics.framing_violation_bytes.labels(reason=r) for r in VIOLATION_REASONS}
        dead_letter_reasons = (*VIOLATION_REASONS, "message_too_large")
        self._dead_lettered = {r: metrics.receiver_dead_lettered.labels(reason=r) for r in dead_letter_reasons}
        self._discarded = {r: metrics.discarded_bytes.labels(reason=r) for r in ("oversize_tail", "buffer_budget")}
        self._closed = {r: metrics.connections_closed.labels(reason=r) for r in CLOSE_REASONS}
        self._truncated = metrics.truncated
        # delivery reports: plain counts written by the report thread, published to Prometheus after each poll
        self._acked = dict.fromkeys(TRANSPORTS, 0)
        self._acked_published = dict.fromkeys(TRANSPORTS, 0)
        self._delivered = {t: self._delivery_callback(t) for t in TRANSPORTS}
        self._dead_letter_delivered = {r: self._dead_letter_callback(r) for r in dead_letter_reasons}
        self._udp_peers: dict[tuple[str, int], tuple[bytes, Headers]] = {}
        metrics.connections.set_function(lambda: len(self.streams))
        metrics.buffered_bytes.set_function(lambda: self.buffered)
        metrics.in_flight.set_function(lambda: self.inflight.count)

    @staticmethod
    def producer_settings(config: WorkerConfig) -> dict[str, Any]:
        return {
            **config.kafka_client_settings(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": config.kafka_compression,
            "queue.buffering.max.messages": config.max_in_flight * 2 + 1000,
            "queue.buffering.max.kbytes": 1024 * 1024,
            # the client must not refuse what max_message_bytes allows; the topic's limit is checked at start
            "message.max.bytes": max(1_000_000, config.max_message_bytes + RECORD_OVERHEAD_BYTES),
            "message.timeout.ms": 0,  # retry until acknowledged; memory is bounded by the in-flight count instead
            "client.id": f"toolkit-receiver-{config.observer_hostname}",
        }

    # --- Kafka side: delivery reports (report thread) ----------------------------------------------------------
    def _delivery_callback(self, transport: str) -> Callable[[KafkaError | None, Message], None]:
        inflight, acked = self.inflight, self._acked

        def delivered(error: KafkaError | None, message: Message) -> None:
            inflight.released += 1
            if error is None:
                acked[transport] += 1
            else:
                self._delivery_failed(error, message, transport)

        return delivered

    def _dead_letter_callback(self, reason: str) -> Callable[[KafkaError | None, Message], None]:
        inflight, counter, dropped = self.inflight, self._dead_lettered[reason], self._dropped["dead_letter_failed"]

        def delivered(error: KafkaError | None, _message: Message) -> None:
            inflight.released += 1
            if error is None:
                counter.inc()
            else:
                dropped.inc()
                self._say(logging.ERROR, "dead_letter_failed", "Kafka refused a dead letter", error=str(error))

        return delivered

    def _delivery_failed(self, error: KafkaError, message: Message, transport: str) -> None:
        if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            self._dropped["message_too_large"].inc()
            value = message.value() or b""
            key: Any = message.key() or b""
            pairs: Any = message.headers() or []
            headers: Headers = [(name, v) for name, v in pairs if name != "truncated"]
            self._say(logging.ERROR, "message_too_large", "Kafka refused an event as too large: head dead-lettered",
                      bytes=len(value), transport=transport)  # fmt: skip
            self.inflight.late_acquired += 1
            head = value[:DEAD_LETTER_HEAD_BYTES]
            if not self._produce_dead_letter(head, "message_too_large", key, headers, len(value)):
                self.inflight.late_acquired -= 1
        else:
            self._dropped["kafka_delivery_failed"].inc()
            self._say(logging.ERROR, "kafka_delivery_failed", "Kafka refused an event", error=str(error),
                      transport=transport)  # fmt: skip

    def _serve_delivery_reports(self) -> None:
        while not self._stop_threads.is_set():
            self.producer.poll(0.05)
            self._after_poll()

    def _after_poll(self) -> None:
        for transport in TRANSPORTS:
            delta = self._acked[transport] - self._acked_published[transport]
            if delta:
                self._acked_published[transport] += delta
                self._accepted[transport].inc(delta)
        inflight = self.inflight
        if (
            self.reading_paused
            and not self._wake_pending
            and inflight.count <= inflight.capacity * RESUME_FRACTION
            and self.loop is not None
        ):
            self._wake_pending = True
            self.loop.call_soon_threadsafe(self._resume_reading)

    # --- Kafka side: health and topic limits (watch thread) ----------------------------------------------------
    def _watch_kafka(self) -> None:
        while not self._stop_threads.is_set():
            try:
                metadata = self.producer.list_topics(topic=self._topic, timeout=KAFKA_CHECK_SECONDS)
                topic = metadata.topics.get(self._topic)
                if topic is None or topic.error is not None:
                    self.kafka_ok = False
                    self.kafka_reason = f"Kafka topic {self._topic!r} unavailable: {topic and topic.error}"
                else:
                    if not self.topic_checked:
                        self._check_topic_limits()
                    self.kafka_ok, self.kafka_reason = True, "ok"
            except Exception as exc:  # any client error means "cannot accept"
                self.kafka_ok, self.kafka_reason = False, f"Kafka does not answer: {exc}"
            self._stop_threads.wait(KAFKA_CHECK_SECONDS)

    def _check_topic_limits(self) -> None:
        """Refuse (exit 2) a max_message_bytes the events or dead-letter topic would not accept."""
        from confluent_kafka.admin import AdminClient, ConfigResource

        admin = AdminClient(self.config.kafka_client_settings())
        resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in (self._topic, self._dead_letter_topic)]
        needed = self._maximum + RECORD_OVERHEAD_BYTES
        problems = []
        for resource, future in admin.describe_configs(resources, request_timeout=KAFKA_CHECK_SECONDS).items():
            try:
                entries = future.result(KAFKA_CHECK_SECONDS + 1)
            except KafkaException as exc:
                code = exc.args[0].code() if exc.args and isinstance(exc.args[0], KafkaError) else None
                if code in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED):
                    log.warning(
                        "cannot read the topic's max.message.bytes (no DescribeConfigs permission): events Kafka "
                        "refuses as too large will be dead-lettered",
                        extra={"topic": resource.name},
                    )
                    continue
                if code == KafkaError.UNKNOWN_TOPIC_OR_PART and resource.name == self._dead_letter_topic:
                    log.warning("the dead-letter topic does not exist: framing violations cannot be dead-lettered",
                                extra={"topic": resource.name})  # fmt: skip
                    continue
                raise
            entry = entries.get("max.message.bytes")
            limit = int(entry.value) if entry is not None and entry.value else None
            if limit is not None and needed > limit:
                variable = "TOOLKIT_WORKER_MAX_MESSAGE_BYTES"
                problems.append(
                    f"{variable}={self._maximum} needs topic {resource.name!r} to accept records of {needed} bytes "
                    f"(the event plus up to {RECORD_OVERHEAD_BYTES} bytes of key, headers and framing), but its "
                    f"max.message.bytes is {limit}: lower {variable} to at most {limit - RECORD_OVERHEAD_BYTES}, or "
                    f"raise the topic's max.message.bytes to at least {needed}"
                )
        if problems:
            self.fatal = "\n".join(problems)
            log.error("max_message_bytes exceeds what Kafka accepts: stopping", extra={"problems": problems})
            if self.loop is not None and self._stop is not None:
                self.loop.call_soon_threadsafe(self._stop.set)
        self.topic_checked = True

    def readiness(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining (SIGTERM received)"
        if not self.kafka_ok:
            return False, self.kafka_reason
        if not self.topic_checked:
            return False, "topic limits not checked yet"
        inflight = self.inflight
        if not inflight.has_room() or self.reading_paused:
            return False, f"in-flight buffer full ({inflight.count}/{inflight.capacity} records): overloaded"
        if len(self.streams) >= self.config.max_connections:
            return False, f"connection cap reached ({len(self.streams)}/{self.config.max_connections})"
        if self.buffered > self.config.max_buffered_bytes * 0.9:
            return False, f"partial-frame buffers near the budget ({self.buffered}/{self.config.max_buffered_bytes})"
        return True, "ok"

    # --- hand-off to Kafka (loop thread) ---------------------------------------------------------------------
    def submit(self, frames: list[bytes], cut: int, peer_key: bytes, headers: Headers, transport: str) -> None:
        """Hand frames to the producer (the raw bytes; key = the sender's HOSTNAME or the peer)."""
        self.inflight.acquired += len(frames)
        self._received[transport].inc(len(frames))
        stamped = [*headers, ("received_ms", b"%d" % (time.time() * 1000))]
        produce, topic, match = self.producer.produce, self._topic, source_host_match
        delivered = self._delivered[transport]
        if cut:
            self._truncated.inc(cut)
            cut_headers = [*stamped, ("truncated", b"1")]
        for frame in frames:
            found = match(frame)
            key = (found[1] or found[2]) if found is not None else peer_key
            try:
                if cut and type(frame) is Cut:
                    produce(topic, value=bytes(frame), key=key, headers=cut_headers, on_delivery=delivered)
                else:
                    produce(topic, value=frame, key=key, headers=stamped, on_delivery=delivered)
            except Exception as exc:  # no delivery report will come: give the slot back now
                self.inflight.acquired -= 1
                self._refused(exc, frame, peer_key, stamped, transport)

    def _refused(self, exc: Exception, frame: bytes, peer_key: bytes, headers: Headers, transport: str) -> None:
        error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
        if isinstance(exc, BufferError):
            reason = "producer_queue_full"
        elif isinstance(error, KafkaError) and error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            reason = "message_too_large"
        else:
            reason = "producer_error"
        self._dropped[reason].inc()
        self._say(logging.ERROR, reason, "the producer refused an event", error=str(exc), bytes=len(frame),
                  transport=transport)  # fmt: skip
        if reason == "message_too_large":
            self.dead_letter(frame[:DEAD_LETTER_HEAD_BYTES], reason, peer_key, headers, len(frame))

    def dead_letter(self, data: bytes, reason: str, key: bytes, headers: Headers, length: int) -> None:
        """Raw bytes that could not be an event (bounded by the caller) -> the dead-letter topic (loop thread)."""
        self.inflight.acquired += 1
        if not self._produce_dead_letter(data, reason, key, headers, length):
            self.inflight.acquired -= 1

    def _produce_dead_letter(self, data: bytes, reason: str, key: bytes, headers: Headers, length: int) -> bool:
        try:
            self.producer.produce(
                self._dead_letter_topic,
                value=bytes(data[: self._maximum]),
                key=key,
                headers=[
                    *headers,
                    ("dlq_reason", reason.encode()),
                    ("dlq_bytes", b"%d" % length),
                    ("dlq_source", b"receiver"),
                ],
                on_delivery=self._dead_letter_delivered[reason],
            )
        except Exception as exc:
            self._dropped["dead_letter_failed"].inc()
            self._say(logging.ERROR, "dead_letter_failed", "could not dead-letter", error=str(exc), reason=reason)
            return False
        return True

    def _decoder_output(self, stream: _Stream) -> None:
        decoder = stream.decoder
        if decoder.violations:
            violations, decoder.violations = decoder.violations, []
            stamped = [*stream.headers, ("received_ms", b"%d" % (time.time() * 1000))]
            for violation in violations:
                self._violations[violation.reason].inc()
                self._violation_bytes[violation.reason].inc(violation.length)
                self._say(logging.WARNING, violation.reason, "framing violation dead-lettered",
                          bytes=violation.length, peer=stream.peer_key.decode(errors="replace"))  # fmt: skip
                self.dead_letter(violation.data, violation.reason, stream.peer_key, stamped, violation.length)
        if decoder.discarded_bytes:
            self._discarded["oversize_tail"].inc(decoder.discarded_bytes)
            decoder.discarded_bytes = 0

    # --- connections (loop thread) ---------------------------------------------------------------------------
    def open_stream(self, stream: _Stream, transport: asyncio.Transport) -> None:
        if self.closing or len(self.streams) >= self.config.max_connections:
            self._closed["shutdown" if self.closing else "cap"].inc()
            transport.abort()
            return
        stream.transport = transport
        peer = transport.get_extra_info("peername")
        ip, port = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else ("", 0)
        stream.peer_key = ip.encode() or b"unknown"
        stream.headers = [
            ("src_ip", ip.encode()),
            ("src_port", b"%d" % port),
            ("transport", stream.name.encode()),
            ("observer", self._observer),
        ]
        stream.last_active = time.monotonic()
        self.streams.add(stream)
        if self.reading_paused:
            transport.pause_reading()

    def stream_data(self, stream: _Stream, data: bytes) -> None:
        stream.last_active = time.monotonic()
        decoder = stream.decoder
        frames = decoder.feed(data)
        held = decoder.buffered
        self.buffered += held - stream.buffered
        stream.buffered = held
        if decoder.violations or decoder.discarded_bytes:
            self._decoder_output(stream)
        if frames:
            self.submit(frames, decoder.cut, stream.peer_key, stream.headers, stream.name)
        if held and self.buffered > self.config.max_buffered_bytes:
            self._close(stream, "buffer_budget", discard=True)
        if not self.reading_paused and not self.inflight.has_room():
            self._pause_reading()

    def stream_lost(self, stream: _Stream) -> None:
        if stream not in self.streams:
            return
        self.streams.discard(stream)
        self.buffered -= stream.buffered
        decoder = stream.decoder
        if stream.discard:
            if decoder.buffered:
                self._discarded["buffer_budget"].inc(decoder.buffered)
            return
        frames = decoder.finish()
        self._decoder_output(stream)
        if frames:
            self.submit(frames, decoder.cut, stream.peer_key, stream.headers, stream.name)

    def _close(self, stream: _Stream, reason: str, discard: bool = False) -> None:
        self._closed[reason].inc()
        stream.discard = discard
        if stream.transport is not None:
            stream.transport.close()
        log.info("connection closed", extra={"reason": reason, "peer": stream.peer_key.decode(errors="replace")})

    def _pause_reading(self) -> None:
        self.reading_paused = True
        self.metrics.backpressure.inc()
        for stream in self.streams:
            if stream.transport is not None:
                stream.transport.pause_reading()

    def _resume_reading(self) -> None:
        self._wake_pending = False
        if not self.reading_paused or self.inflight.count > self.inflight.capacity * RESUME_FRACTION:
            return
        self.reading_paused = False
        now = time.monotonic()
        for stream in self.streams:
            stream.last_active = now  # time spent paused by us is not idleness
            if stream.transport is not None and not stream.transport.is_closing():
                stream.transport.resume_reading()

    def _sweep(self) -> None:
        if self.reading_paused:
            return
        deadline = time.monotonic() - self.config.idle_timeout_seconds
        for stream in [s for s in self.streams if s.last_active < deadline]:
            self._close(stream, "idle")

    def datagram(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if not self.inflight.has_room():
            self._dropped["udp_buffer_full"].inc()
            return
        peer = self._udp_peers.get((str(addr[0]), int(addr[1])))
        if peer is None:
            if len(self._udp_peers) >= 4096:
                self._udp_peers.clear()
            ip = str(addr[0]).encode()
            headers: Headers = [
                ("src_ip", ip),
                ("src_port", b"%d" % int(addr[1])),
                ("transport", b"udp"),
                ("observer", self._observer),
            ]
            peer = self._udp_peers[(str(addr[0]), int(addr[1]))] = (ip or b"unknown", headers)
        if data.endswith(b"\n"):
            data = data.rstrip(b"\r\n")
        cut = 0
        if len(data) > self._maximum:
            self._discarded["oversize_tail"].inc(len(data) - self._maximum)
            data, cut = Cut(data[: self._maximum]), 1
        self.submit([data], cut, peer[0], peer[1], "udp")

    # --- listeners and the drain ---------------------------------------------------------------------------
    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        assert self.config.tls_cert_file is not None and self.config.tls_key_file is not None
        context.load_cert_chain(str(self.config.tls_cert_file), str(self.config.tls_key_file))
        return context

    async def serve(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self.loop, self._stop = loop, stop
        threads = [
            threading.Thread(target=self._serve_delivery_reports, name="kafka-delivery", daemon=True),
            threading.Thread(target=self._watch_kafka, name="kafka-health", daemon=True),
        ]
        for thread in threads:
            thread.start()
        servers: list[asyncio.Server] = []
        udp_transport: asyncio.DatagramTransport | None = None
        host = self.config.listen_host
        backlog = min(4096, self.config.max_connections)
        if self.config.tcp_port is not None:
            server = await loop.create_server(lambda: _Stream(self, "tcp"), host, self.config.tcp_port, backlog=backlog)
            servers.append(server)
            self.bound_ports["tcp"] = server.sockets[0].getsockname()[1]
        if self.config.tls_port is not None:
            # asyncio gives every TLS connection a 256 KiB read buffer (bytearray, touched at once): 750 MB for
            # 3,000 connections. One TLS record is at most ~16 KiB, so 32 KiB reads lose nothing.
            from asyncio import sslproto

            if getattr(sslproto.SSLProtocol, "max_size", 0) > TLS_READ_BUFFER_BYTES:
                sslproto.SSLProtocol.max_size = TLS_READ_BUFFER_BYTES
            server = await loop.create_server(
                lambda: _Stream(self, "tls"), host, self.config.tls_port, ssl=self._tls_context(), backlog=backlog
            )
            servers.append(server)
            self.bound_ports["tls"] = server.sockets[0].getsockname()[1]
        if self.config.udp_port is not None:
            udp_transport, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), local_addr=(host, self.config.udp_port)
            )
            self.bound_ports["udp"] = udp_transport.get_extra_info("sockname")[1]
        log.info("receiver listening", extra={"ports": self.bound_ports, "topic": self._topic})
        while not stop.is_set():
            self.heartbeat.beat()
            self._sweep()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=SWEEP_SECONDS)
        # drain: not ready but still serving, then close and half-close, then let Kafka acknowledge the rest
        self.draining = True
        linger = 0.0 if self.fatal else self.config.shutdown_linger_seconds
        log.info("draining: not ready, still serving", extra={"linger_seconds": linger})
        linger_until = loop.time() + linger
        while loop.time() < linger_until:
            self.heartbeat.beat()
            await asyncio.sleep(min(0.5, max(0.0, linger_until - loop.time())))
        read_until = loop.time() + self.config.shutdown_read_seconds
        self.closing = True
        for server in servers:
            server.close()
        if udp_transport is not None:
            udp_transport.close()
        for stream in list(self.streams):
            if stream.name == "tcp" and stream.transport is not None and stream.transport.can_write_eof():
                with contextlib.suppress(OSError, RuntimeError):
                    stream.transport.write_eof()  # FIN: "reconnect elsewhere"; we still read what comes
        if self.reading_paused:
            self._resume_reading()
        while self.streams and loop.time() < read_until:
            self.heartbeat.beat()
            await asyncio.sleep(0.1)
        for stream in list(self.streams):
            self._close(stream, "shutdown")
        closed_by = loop.time() + 2.0
        while self.streams and loop.time() < closed_by:  # connection_lost forwards the last partial frames
            await asyncio.sleep(0.05)
        # the report thread stops first, so that flush() is the only one serving delivery reports from here on
        self._stop_threads.set()
        for thread in threads:
            thread.join(timeout=KAFKA_CHECK_SECONDS + 1)
        remaining = await loop.run_in_executor(None, self.producer.flush, self.config.shutdown_flush_seconds)
        self._after_poll()
        if remaining:
            self._dropped["shutdown_unflushed"].inc(remaining)
            log.error("events not acknowledged by Kafka at shutdown", extra={"events": remaining})
        log.info("receiver stopped", extra={"unflushed": remaining, "in_flight": self.inflight.count})


def run_receiver(config: WorkerConfig) -> int:
    metrics = WorkerMetrics()
    receiver = Receiver(config, metrics)
    probes = ProbeServer(config.http_host, config.http_port, metrics, receiver.heartbeat, receiver.readiness)
    probes.start()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await receiver.serve(stop)

    try:
        asyncio.run(main())
    finally:
        probes.stop()
    if receiver.fatal:
        print(f"toolkit-worker: invalid configuration (found at start):\n  - {receiver.fatal}", file=sys.stderr)
        return 2
    return 0
