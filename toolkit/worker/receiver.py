"""The syslog receiver: UDP, TCP and TLS listeners -> Kafka, with bounded memory.

Algorithm
---------
One asyncio loop serves every listener. Each message read off the wire (a UDP datagram, or an RFC 6587 frame
of a TCP/TLS stream) is handed to a confluent-kafka idempotent producer (acks=all) as the raw bytes, keyed by
its source (the HOSTNAME of the syslog header, or the peer address when the header has none) so that the
events of one source land in one partition, in order. Reception facts go in record headers (see
`toolkit.worker.ecs`). A producer thread serves delivery reports: an event counts as ACCEPTED only when Kafka
acknowledged it.

Memory bound and backpressure
-----------------------------
`InFlightGate` counts events handed to the producer and not yet acknowledged, up to `max_in_flight`.
- TCP/TLS: before each read the connection waits until the gate has room, so a full buffer stops reading;
  the kernel socket buffer fills and TCP flow control slows the sender. One read (64 KiB) may overshoot the
  bound, so memory stays below max_in_flight events + 64 KiB per connection.
- UDP has no flow control: a datagram that arrives while the gate is full is dropped and counted
  (`toolkit_receiver_events_dropped_total{reason="udp_buffer_full"}`).

What a sender can lose (plain syslog has no application acknowledgement)
-----------------------------------------------------------------------
UDP: anything (the network, a full socket buffer, a full gate). TCP/TLS: whatever this process had read but
Kafka had not acknowledged when it died (at most the in-flight events), plus what sat in socket buffers.

Shutdown (SIGTERM) loses nothing a well-behaved sender wrote:
1. readiness turns false at once, and the receiver keeps listening and reading for `shutdown_linger_seconds`, so
   that routing (a Service's endpoints, a load balancer) moves new traffic elsewhere before anything closes;
2. then the listeners close (new connections go elsewhere, datagrams to this address are no longer read), and
   every open TCP connection is half-closed (FIN): a sender that watches its socket sees end-of-stream and
   reconnects elsewhere, while the receiver keeps reading what it still sends until it closes, at most
   `shutdown_read_seconds`;
3. the producer is flushed for `shutdown_flush_seconds`; events still unacknowledged are counted as
   `shutdown_unflushed`.
A sender that never reads its socket keeps writing into the half-closed connection and loses what it writes after
the read window: plain TCP syslog has no acknowledgement to tell it.

Readiness (`/readyz`) means "can accept": Kafka answered a metadata request for the topic within the last
refresh, and the gate has room. It never looks at Elasticsearch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import threading
import time
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from toolkit.worker.config import WorkerConfig
from toolkit.worker.observability import Heartbeat, ProbeServer, WorkerMetrics
from toolkit.worker.syslog import FrameDecoder, parse

log = logging.getLogger("toolkit.worker.receiver")

READ_CHUNK_BYTES = 65536
STREAM_POLL_SECONDS = 0.25  # how often an idle connection looks at the shutdown state
KAFKA_CHECK_SECONDS = 5.0


class InFlightGate:
    """Events handed to Kafka and not yet acknowledged; acquired on the loop thread, released from any."""

    def __init__(self, capacity: int, loop: asyncio.AbstractEventLoop) -> None:
        self.capacity = capacity
        self.count = 0
        self._loop = loop
        self._lock = threading.Lock()
        self._room = asyncio.Event()
        self._room.set()

    def has_room(self) -> bool:
        return self.count < self.capacity

    def try_acquire(self) -> bool:
        with self._lock:
            if self.count >= self.capacity:
                self._room.clear()
                return False
            self.count += 1
            return True

    def acquire(self) -> None:
        """Take a slot even when full (a TCP read already in hand); the next read will wait."""
        with self._lock:
            self.count += 1
            if self.count >= self.capacity:
                self._room.clear()

    def release(self) -> None:
        with self._lock:
            was_full = self.count >= self.capacity
            self.count -= 1
            freed = was_full and self.count < self.capacity
        if freed:
            self._loop.call_soon_threadsafe(self._room.set)

    async def wait_for_room(self) -> None:
        while not self.has_room():
            self._room.clear()
            if self.has_room():
                return
            await self._room.wait()


class Receiver:
    def __init__(self, config: WorkerConfig, metrics: WorkerMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.heartbeat = Heartbeat()
        self.kafka_ok = False
        self.kafka_reason = "Kafka not checked yet"
        self.draining = False  # not ready: routing should move away
        self.closing = False  # listeners closed, connections half-closed
        self.close_deadline = 0.0  # loop time until which half-closed connections are still read
        self._connections: set[asyncio.Task[None]] = set()
        self.bound_ports: dict[str, int] = {}
        self._zone = config.zone
        self._observer = config.observer_hostname.encode()
        self._stop_threads = threading.Event()
        self._producer = Producer(
            {
                **config.kafka_client_settings(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": config.kafka_compression,
                "queue.buffering.max.messages": config.max_in_flight * 2 + 1000,
                "queue.buffering.max.kbytes": 1024 * 1024,
                "message.timeout.ms": 0,  # retry until acknowledged; memory is bounded by the gate instead
                "client.id": f"toolkit-receiver-{config.observer_hostname}",
            }
        )
        self._delivered = {name: self._delivery_callback(name) for name in ("udp", "tcp", "tls")}
        self.gate: InFlightGate | None = None

    # --- Kafka side -----------------------------------------------------------------------------------------
    def _delivery_callback(self, transport: str) -> Any:
        accepted = self.metrics.accepted.labels(transport=transport)

        def delivered(error: KafkaError | None, _message: Message) -> None:
            assert self.gate is not None
            self.gate.release()
            if error is None:
                accepted.inc()
            else:
                self.metrics.dropped.labels(reason="kafka_delivery_failed").inc()
                log.error("kafka refused an event", extra={"error": str(error), "transport": transport})

        return delivered

    def _serve_delivery_reports(self) -> None:
        while not self._stop_threads.is_set():
            self._producer.poll(0.05)
            if self.gate is not None:
                self.metrics.in_flight.set(self.gate.count)

    def _watch_kafka(self) -> None:
        while not self._stop_threads.is_set():
            try:
                metadata = self._producer.list_topics(topic=self.config.topic, timeout=KAFKA_CHECK_SECONDS)
                topic = metadata.topics.get(self.config.topic)
                if topic is None or topic.error is not None:
                    self.kafka_ok = False
                    self.kafka_reason = f"Kafka topic {self.config.topic!r} unavailable: {topic and topic.error}"
                else:
                    self.kafka_ok, self.kafka_reason = True, "ok"
            except Exception as exc:  # any client error means "cannot accept"
                self.kafka_ok, self.kafka_reason = False, f"Kafka does not answer: {exc}"
            self._stop_threads.wait(KAFKA_CHECK_SECONDS)

    def readiness(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining (SIGTERM received)"
        if not self.kafka_ok:
            return False, self.kafka_reason
        if self.gate is not None and not self.gate.has_room():
            return False, f"in-flight buffer full ({self.gate.count}/{self.gate.capacity} events)"
        return True, "ok"

    def submit(self, data: bytes, peer: tuple[str, int] | None, transport: str, truncated: bool) -> None:
        """Hand one message to the producer; the caller already holds a gate slot."""
        self.metrics.received.labels(transport=transport).inc()
        now = time.time()
        text = data.decode("utf-8", errors="replace")
        hostname = parse(text, datetime.fromtimestamp(now, tz=UTC), self._zone).hostname
        ip, port = (peer[0], peer[1]) if peer else ("", 0)
        headers: list[tuple[str, str | bytes | None]] = [
            ("src_ip", ip.encode()),
            ("src_port", str(port).encode()),
            ("transport", transport.encode()),
            ("received_ms", str(int(now * 1000)).encode()),
            ("observer", self._observer),
        ]
        if truncated:
            headers.append(("truncated", b"1"))
            self.metrics.truncated.inc()
        key = (hostname or ip or "unknown").encode("utf-8", errors="replace")
        try:
            self._producer.produce(
                self.config.topic,
                value=data,
                key=key,
                headers=headers,
                on_delivery=self._delivered[transport],
            )
        except BufferError:
            assert self.gate is not None
            self.gate.release()
            self.metrics.dropped.labels(reason="producer_queue_full").inc()
            log.error("producer queue full: event dropped", extra={"transport": transport})

    # --- listeners ------------------------------------------------------------------------------------------
    async def _handle_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: str) -> None:
        assert self.gate is not None
        gate = self.gate
        peer = writer.get_extra_info("peername")
        decoder = FrameDecoder(self.config.max_message_bytes)
        self.metrics.connections.inc()
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        loop = asyncio.get_running_loop()
        half_closed = False
        try:
            while True:
                if self.closing:
                    if not half_closed:
                        half_closed = True
                        if transport == "tcp":
                            with contextlib.suppress(OSError, RuntimeError):
                                writer.write_eof()  # FIN: "reconnect elsewhere"; we still read what comes
                    if loop.time() >= self.close_deadline:
                        break
                if not gate.has_room():
                    self.metrics.backpressure.inc()
                    await gate.wait_for_room()
                try:
                    data = await asyncio.wait_for(reader.read(READ_CHUNK_BYTES), timeout=STREAM_POLL_SECONDS)
                except TimeoutError:
                    continue  # idle: look at the shutdown state again
                if not data:
                    break
                for frame in decoder.feed(data):
                    gate.acquire()
                    self.submit(frame.data, peer, transport, frame.truncated)
            for frame in decoder.finish():
                gate.acquire()
                self.submit(frame.data, peer, transport, frame.truncated)
        except (ConnectionError, ssl.SSLError) as exc:
            log.info("connection ended", extra={"peer": str(peer), "transport": transport, "error": str(exc)})
        finally:
            if task is not None:
                self._connections.discard(task)
            self.metrics.connections.dec()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        assert self.config.tls_cert_file is not None and self.config.tls_key_file is not None
        context.load_cert_chain(str(self.config.tls_cert_file), str(self.config.tls_key_file))
        return context

    async def serve(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self.gate = InFlightGate(self.config.max_in_flight, loop)
        threads = [
            threading.Thread(target=self._serve_delivery_reports, name="kafka-delivery", daemon=True),
            threading.Thread(target=self._watch_kafka, name="kafka-health", daemon=True),
        ]
        for thread in threads:
            thread.start()
        servers: list[asyncio.Server] = []
        udp_transport: asyncio.DatagramTransport | None = None
        host = self.config.listen_host
        if self.config.tcp_port is not None:
            server = await asyncio.start_server(
                lambda r, w: self._handle_stream(r, w, "tcp"),
                host,
                self.config.tcp_port,
                limit=READ_CHUNK_BYTES,
            )
            servers.append(server)
            self.bound_ports["tcp"] = server.sockets[0].getsockname()[1]
        if self.config.tls_port is not None:
            server = await asyncio.start_server(
                lambda r, w: self._handle_stream(r, w, "tls"),
                host,
                self.config.tls_port,
                ssl=self._tls_context(),
                limit=READ_CHUNK_BYTES,
            )
            servers.append(server)
            self.bound_ports["tls"] = server.sockets[0].getsockname()[1]
        if self.config.udp_port is not None:
            udp_transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(host, self.config.udp_port)
            )
            self.bound_ports["udp"] = udp_transport.get_extra_info("sockname")[1]
        log.info("receiver listening", extra={"ports": self.bound_ports, "topic": self.config.topic})
        while not stop.is_set():
            self.heartbeat.beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
        # drain: not ready but still serving, then close and half-close, then let Kafka acknowledge the rest
        self.draining = True
        log.info("draining: not ready, still serving", extra={"linger_seconds": self.config.shutdown_linger_seconds})
        linger_until = loop.time() + self.config.shutdown_linger_seconds
        while loop.time() < linger_until:
            self.heartbeat.beat()
            await asyncio.sleep(min(0.5, max(0.0, linger_until - loop.time())))
        self.close_deadline = loop.time() + self.config.shutdown_read_seconds
        self.closing = True
        for server in servers:
            server.close()
        if udp_transport is not None:
            udp_transport.close()
        if self._connections:
            await asyncio.wait(
                set(self._connections), timeout=self.config.shutdown_read_seconds + 2 * STREAM_POLL_SECONDS
            )
        remaining = await loop.run_in_executor(None, self._producer.flush, self.config.shutdown_flush_seconds)
        self._stop_threads.set()
        for thread in threads:
            thread.join(timeout=KAFKA_CHECK_SECONDS + 1)
        if remaining:
            self.metrics.dropped.labels(reason="shutdown_unflushed").inc(remaining)
            log.error("events not acknowledged by Kafka at shutdown", extra={"events": remaining})
        log.info("receiver stopped", extra={"unflushed": remaining})


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        gate = self.receiver.gate
        assert gate is not None
        if not gate.try_acquire():
            self.receiver.metrics.dropped.labels(reason="udp_buffer_full").inc()
            return
        if data.endswith(b"\n"):
            data = data.rstrip(b"\r\n")
        truncated = len(data) > self.receiver.config.max_message_bytes
        if truncated:
            data = data[: self.receiver.config.max_message_bytes]
        self.receiver.submit(data, (str(addr[0]), int(addr[1])), "udp", truncated)


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
    return 0
