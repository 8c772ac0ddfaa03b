"""The real load of a rehearsal on `local` and `kind`: real Kafka, Elasticsearch and syslog clients feeding the
ledgers of toolkit.rehearsal.live (which says what is counted and how loss is defined per path).

Threads (each loop ends when the load stops, and in any case after `LiveLoadConfig.max_seconds`):
- probe producer: confluent-kafka, idempotent, acks=all, `rate` messages/s spread round robin over the probe
  topic's partitions, per-partition sequences; delivery callbacks count acknowledged / errored;
- probe consumer: its own group, partitions assigned from the beginning, every sequence checked;
- tap consumer: reads the events topic from the high watermarks taken at start; every record of the run is an
  accepted event (the receiver counts an event accepted exactly when Kafka acknowledged it);
- syslog senders: UDP and TCP (octet counting) at `syslog_rate`/2 each, to the Ready receivers as kube-proxy would
  route them (round robin per datagram; TCP: one connection, re-opened on the next receiver when it breaks; what
  could not be written is kept and re-sent; seconds with a refused connection are counted);
- sampler (1 s): a search probe, `_cluster/health`, the indexer group's lag (high watermark - committed offset),
  receiver readiness (`/readyz`), and one timeline sample with the sim's keys.
After `stop()`, `drain(timeout)` waits until the producer flushed, the probe consumer read every acknowledged
message, the tap reached the events topic's end and the indexer lag is 0; `verify()` then refreshes the write alias
and asks Elasticsearch for the run's `_count` and for repeated ids (terms aggregations, min_doc_count 2).
Every address comes from the connections given by the caller (discovered from the deployed release: on `local`
the publications' loopback addresses, TLS verified against the platform CA with hostname verification on, as the
platform's admin identity) or the receiver list given by the caller. `start()` checks both connections first, so a
wrong CA or address fails at once with the clients' own words.

Local helpers (Kubernetes): `local_receivers` lists the Ready receiver pods at their pod IP and the container ports
the chart gave them; `worker_processes` / `worker_pids` find each worker pod's `toolkit-worker` process in the pod's
network namespace (the node agent's pod runtime runs the chart's pods unmodified); `delete_run_namespaces` removes
only what carries the run's label (and the CA namespace deploy made for it). On `local` the chart's topics and
write alias are made by the cluster's peer operator (toolkit.targets.local.peeroperator).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import datetime as dt
import select
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from toolkit.config.access import EsConnection, KafkaConnection
from toolkit.rehearsal.live import (
    Outage,
    ProbeLedger,
    StoreCheck,
    SyslogLedger,
    details,
    parse_probe,
    parse_syslog_id,
    probe_value,
    summary,
    syslog_line,
)
from toolkit.targets.es_admin import client_for
from toolkit.targets.kafka_admin import client_config

RUN_LABEL = "toolkit.io/rehearsal-run"
COMPONENT_LABEL = "app.kubernetes.io/component"
RECEIVER_COMPONENT, INDEXER_COMPONENT = "syslog-receiver", "indexer"  # the workers chart's component labels
WORKER_EXECUTABLE = "toolkit-worker"  # the chart's container command
REPEAT_BUCKETS = 10_000
ROUTE_REFRESH_SECONDS = 0.2
LAG_GAP_LIMIT_SECONDS = 30.0  # a lag sample may fail this long (a listener re-published mid-rotation) before it counts


def _peer_closed(sock: socket.socket) -> bool:
    """True when the peer sent FIN (end-of-stream is readable), as a well-behaved syslog sender checks."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


@dataclass(frozen=True)
class ReceiverEndpoint:
    name: str
    host: str
    udp_port: int
    tcp_port: int
    http_port: int | None = None

    def ready(self) -> bool:
        if self.http_port is None:
            return True
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.http_port}/readyz", timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False


@dataclass
class LiveLoadConfig:
    run_tag: str
    kafka: KafkaConnection  # how the load reaches Kafka (address, CA, identity)
    elasticsearch: EsConnection  # ... and Elasticsearch
    events_topic: str  # where the receivers write
    indexer_group: str  # the indexers' consumer group
    write_alias: str  # the indexers' write alias
    receivers: Callable[[], list[ReceiverEndpoint]]
    rate: float = 200.0
    syslog_rate: float = 200.0
    probe_partitions: int = 3
    probe_replication: int = 1
    probe_min_insync: int = 1
    delivery_timeout: float = 60.0
    max_seconds: float = 3600.0

    @property
    def probe_topic(self) -> str:
        return f"{self.run_tag}-probe"


class LiveLoadError(RuntimeError):
    """The load could not start; the message names the part and the way out."""


@dataclass
class _Sampler:
    search_probes: int = 0
    search_errors: int = 0
    ever_red: bool = False
    outages: dict[str, Outage] = field(
        default_factory=lambda: {"produce": Outage(), "search": Outage(), "ingest": Outage()}
    )
    timeline: list[dict[str, Any]] = field(default_factory=list)
    lag_gaps: int = 0  # samples whose lag could not be read (the previous lag is kept for them)


@dataclass
class FailingStreak:
    """How long a periodic measurement has been failing in a row: `failed(now)` is True once per streak, when it has
    lasted longer than `limit` seconds (a transient failure is a gap in a figure; a lasting one is an error)."""

    limit: float
    since: float | None = None
    reported: bool = False

    def failed(self, now: float) -> bool:
        if self.since is None:
            self.since = now
        if self.reported or now - self.since <= self.limit:
            return False
        self.reported = True
        return True

    def succeeded(self) -> None:
        self.since, self.reported = None, False


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LiveLoad:
    def __init__(self, config: LiveLoadConfig) -> None:
        self.config = config
        self.kafka_conf = client_config(config.kafka, client_id=f"{config.run_tag}-load")
        self.es = client_for(config.elasticsearch, request_timeout=10)
        self.probe = ProbeLedger()
        self.syslog = SyslogLedger()
        self.sampler = _Sampler()
        self.lag = 0
        self.tcp_unwritten = 0
        self.started_at = 0.0
        self.stopped_at = 0.0
        self.drain_seconds = 0.0
        self._endpoints: tuple[ReceiverEndpoint, ...] = ()
        self._ready: tuple[ReceiverEndpoint, ...] = ()
        self._stop_senders = threading.Event()
        self._stop_readers = threading.Event()
        self._threads: list[threading.Thread] = []
        self._tap_start: dict[int, int] = {}
        self._tap_position: dict[int, int] = {}
        self._deadline = 0.0
        self.errors: list[str] = []
        self.reconnects = 0  # new trust and identity taken (reconnect); the long-lived clients follow it
        self._retired: list[Any] = []  # Elasticsearch clients replaced by reconnect, closed at the end
        self._probe_position: dict[int, int] = {}

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Check both connections (TLS verified: a wrong CA or a name the certificate does not carry fails here,
        with the clients' own words), create the probe topic, start the threads."""
        try:
            self.es.info()
        except Exception as exc:
            raise LiveLoadError(
                f"cannot reach Elasticsearch at {self.config.elasticsearch.url}: {type(exc).__name__}: {exc}; check "
                "its address, CA file and credentials"
            ) from None
        topic = NewTopic(
            self.config.probe_topic,
            self.config.probe_partitions,
            self.config.probe_replication,
            config={"min.insync.replicas": str(self.config.probe_min_insync)},
        )
        admin_call(
            self.kafka_conf,
            lambda admin: admin.create_topics([topic]),
            f"create the probe topic {self.config.probe_topic} at {self.config.kafka.bootstrap}",
        )
        self._tap_start = self._watermarks(self.config.events_topic, high=True)
        if not self._tap_start:
            raise LiveLoadError(f"events topic {self.config.events_topic} does not exist: deploy the platform first")
        self._endpoints = tuple(self.config.receivers())
        self._ready = tuple(e for e in self._endpoints if e.ready())
        self.started_at = time.monotonic()
        self._deadline = self.started_at + self.config.max_seconds
        for name, target in (
            ("probe-consumer", self._probe_consumer),
            ("tap-consumer", self._tap_consumer),
            ("probe-producer", self._probe_producer),
            ("udp-sender", self._udp_sender),
            ("tcp-sender", self._tcp_sender),
            ("sampler", self._sample_loop),
            ("router", self._route_loop),
        ):
            thread = threading.Thread(target=self._guard(name, target), name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def reconnect(self, kafka: KafkaConnection, elasticsearch: EsConnection) -> None:
        """Take new trust and identity (a certificate rotation wrote a phase's Secrets): every client made from now
        on uses them; the long-lived ones are rebuilt at their next turn: the probe producer after flushing what the
        old one holds, the probe and tap consumers from where they stopped reading, the Elasticsearch client at once
        (the old one finishes a request in flight and is closed at the end). The ledgers carry on unchanged."""
        self.config.kafka, self.config.elasticsearch = kafka, elasticsearch
        self.kafka_conf = client_config(kafka, client_id=f"{self.config.run_tag}-load")
        self._retired.append(self.es)
        self.es = client_for(elasticsearch, request_timeout=10)
        self.reconnects += 1

    def _guard(self, name: str, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception as exc:  # a dead thread must show in the report, not vanish
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")

        return run

    def stop(self) -> None:
        """Stop the producers and senders (they flush what they hold)."""
        self._stop_senders.set()
        self.stopped_at = time.monotonic()
        for thread in self._threads:
            if thread.name in ("probe-producer", "udp-sender", "tcp-sender"):
                thread.join(self.config.delivery_timeout + 15)

    def drained(self) -> bool:
        if self.probe.unread():
            return False
        end = self._watermarks(self.config.events_topic, high=True)
        if any(self._tap_position.get(p, self._tap_start.get(p, 0)) < high for p, high in end.items()):
            return False
        return self._indexer_lag(end) == 0

    def drain(self, timeout: float) -> bool:
        started = time.monotonic()
        ok = False
        while time.monotonic() - started < timeout:
            if self.drained():
                ok = True
                break
            time.sleep(0.5)
        self.drain_seconds = time.monotonic() - started
        self._stop_readers.set()
        for thread in self._threads:
            thread.join(15)
        return ok

    def close(self) -> None:
        """Delete the probe topic (created by this run) and close the clients."""
        self._stop_senders.set()
        self._stop_readers.set()
        admin = AdminClient(self.kafka_conf)  # held until the answer: a dropped handle cancels the request
        try:
            admin.delete_topics([self.config.probe_topic])[self.config.probe_topic].result(30)
        except Exception as exc:
            self.errors.append(f"cleanup: could not delete probe topic {self.config.probe_topic}: {exc}")
        for es in (*self._retired, self.es):
            es.close()

    # ------------------------------------------------------------------ results

    def verify(self) -> StoreCheck:
        alias = self.config.write_alias
        query = {"term": {"host.name": self.config.run_tag}}
        self.es.indices.refresh(index=alias)
        stored = int(self.es.count(index=alias, query=query)["count"])
        answer = self.es.search(
            index=alias,
            size=0,
            query=query,
            aggs={
                "by_event": {"terms": {"field": "log.syslog.msgid", "min_doc_count": 2, "size": REPEAT_BUCKETS}},
                "by_doc": {"terms": {"field": "event.id", "min_doc_count": 2, "size": REPEAT_BUCKETS}},
            },
        )
        aggs = answer["aggregations"]
        by_event = aggs["by_event"]["buckets"]
        by_doc = aggs["by_doc"]["buckets"]
        return StoreCheck(
            stored=stored,
            repeated_event_ids=sum(int(b["doc_count"]) - 1 for b in by_event),
            repeated_document_ids=sum(int(b["doc_count"]) - 1 for b in by_doc),
            repeat_buckets_truncated=max(len(by_event), len(by_doc)) >= REPEAT_BUCKETS,
        )

    def summary(self, store: StoreCheck) -> dict[str, Any]:
        s = self.sampler
        return summary(self.probe, self.syslog, store, s.search_probes, s.search_errors, s.ever_red, s.outages)

    def details(self, store: StoreCheck) -> dict[str, Any]:
        out = details(self.syslog, store, self.drain_seconds, (self.stopped_at or time.monotonic()) - self.started_at)
        out["tcp_unwritten_at_stop"] = self.tcp_unwritten
        out["thread_errors"] = list(self.errors)
        out["lag_sample_gaps"] = self.sampler.lag_gaps
        return out

    @property
    def timeline(self) -> list[dict[str, Any]]:
        return self.sampler.timeline

    # ------------------------------------------------------------------ Kafka helpers

    def _partitions(self, topic: str) -> list[int]:
        metadata = AdminClient(self.kafka_conf).list_topics(topic, timeout=10)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            return []
        return sorted(described.partitions)

    def _watermarks(self, topic: str, high: bool) -> dict[int, int]:
        reader = Consumer({**self.kafka_conf, "group.id": f"{self.config.run_tag}-watermarks"})
        try:
            out = {}
            for p in self._partitions(topic):
                low, hi = reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
                out[p] = hi if high else low
            return out
        finally:
            reader.close()

    def _indexer_lag(self, end: dict[int, int]) -> int:
        reader = Consumer(
            {**self.kafka_conf, "group.id": self.config.indexer_group, "enable.auto.commit": False}
        )  # never subscribes: it only reads the group's committed offsets
        try:
            committed = reader.committed([TopicPartition(self.config.events_topic, p) for p in end], timeout=10)
            lag = 0
            for tp in committed:
                position = tp.offset if tp.offset >= 0 else 0
                lag += max(0, end[tp.partition] - position)
            return lag
        finally:
            reader.close()

    # ------------------------------------------------------------------ threads

    def _paced(self, rate: float, stop: threading.Event) -> Any:
        """Yield how many items are due now, at `rate` per second, until `stop` or the deadline."""
        started, done = time.monotonic(), 0
        while not stop.is_set() and time.monotonic() < self._deadline:
            due = int((time.monotonic() - started) * rate) - done
            if due > 0:
                done += due
                yield due
            else:
                time.sleep(0.005)

    def _probe_producer(self) -> None:
        def make() -> Producer:
            return Producer(
                {
                    **self.kafka_conf,
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                    "message.timeout.ms": int(self.config.delivery_timeout * 1000),
                }
            )

        generation = self.reconnects
        producer = make()  # local to this thread: gone (connections closed) when the thread ends
        partitions = self._partitions(self.config.probe_topic) or [0]
        sequences = dict.fromkeys(partitions, 0)

        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                self.probe.error()
                return
            parsed = parse_probe(message.value() or b"", self.config.run_tag)
            if parsed is not None:
                self.probe.ack(*parsed)

        for due in self._paced(self.config.rate, self._stop_senders):
            if generation != self.reconnects:  # new trust and identity: what the old producer holds goes first
                producer.flush(self.config.delivery_timeout + 5)
                generation, producer = self.reconnects, make()
            for _ in range(due):
                p = partitions[self.probe.produced % len(partitions)]
                value = probe_value(self.config.run_tag, p, sequences[p])
                while True:
                    try:
                        producer.produce(self.config.probe_topic, value=value, partition=p, on_delivery=delivered)
                        break
                    except BufferError:
                        producer.poll(0.1)
                sequences[p] += 1
                self.probe.produced += 1
            producer.poll(0)
        producer.flush(self.config.delivery_timeout + 5)

    def _read_loop(self, make: Callable[[], Consumer], on_message: Callable[[Message], None]) -> None:
        """Read with the consumer `make` builds (assigned where reading stands), built again after a reconnect."""
        generation = self.reconnects
        consumer = make()
        try:
            while not self._stop_readers.is_set() and time.monotonic() < self._deadline + 600:
                if generation != self.reconnects:
                    consumer.close()
                    generation, consumer = self.reconnects, make()
                for message in consumer.consume(500, timeout=0.5):
                    if message.error() is None:
                        on_message(message)
        finally:
            consumer.close()

    def _probe_consumer(self) -> None:
        topic = self.config.probe_topic
        partitions = self._partitions(topic)

        def make() -> Consumer:
            consumer = Consumer(
                {**self.kafka_conf, "group.id": f"{self.config.run_tag}-probe-reader", "enable.auto.commit": False}
            )
            consumer.assign(
                [TopicPartition(topic, p, self._probe_position.get(p, OFFSET_BEGINNING)) for p in partitions]
            )
            return consumer

        def on_message(message: Message) -> None:
            partition, offset = message.partition(), message.offset()
            if partition is not None and offset is not None:
                self._probe_position[partition] = offset + 1
            parsed = parse_probe(message.value() or b"", self.config.run_tag)
            if parsed is not None:
                self.probe.read(*parsed)

        self._read_loop(make, on_message)

    def _tap_consumer(self) -> None:
        topic = self.config.events_topic

        def make() -> Consumer:
            consumer = Consumer(
                {**self.kafka_conf, "group.id": f"{self.config.run_tag}-tap", "enable.auto.commit": False}
            )
            consumer.assign(
                [TopicPartition(topic, p, self._tap_position.get(p, start)) for p, start in self._tap_start.items()]
            )
            return consumer

        def on_message(message: Message) -> None:
            partition, offset = message.partition(), message.offset()
            if partition is not None and offset is not None:
                self._tap_position[partition] = offset + 1
            event_id = parse_syslog_id(message.value() or b"", self.config.run_tag)
            if event_id is not None:
                self.syslog.accepted(event_id)

        self._read_loop(make, on_message)

    def _targets(self) -> tuple[ReceiverEndpoint, ...]:
        """Where a Service would route now: the Ready receivers; with none Ready, the last known ones (the
        datagrams go where nothing listens, as they would to a Service without endpoints)."""
        return self._ready or self._endpoints

    def _udp_sender(self) -> None:
        sequence = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for due in self._paced(self.config.syslog_rate / 2, self._stop_senders):
                for _ in range(due):
                    targets = self._targets()
                    line = syslog_line(self.config.run_tag, "udp", sequence, _now_iso())
                    sequence += 1
                    self.syslog.sent_one("udp")
                    if not targets:
                        continue
                    target = targets[sequence % len(targets)]
                    # OSError: an ICMP port unreachable from an earlier datagram; this one is sent and gone too
                    with contextlib.suppress(OSError):
                        sock.sendto(line, (target.host, target.udp_port))

    def _tcp_sender(self) -> None:
        pending: collections.deque[bytes] = collections.deque()
        sock: socket.socket | None = None
        attempt = 0
        sequence = 0

        def frame(number: int) -> bytes:
            line = syslog_line(self.config.run_tag, "tcp", number, _now_iso())
            return b"%d %s" % (len(line), line)

        def pump() -> None:
            nonlocal sock, attempt
            while pending:
                if sock is None:
                    # a connection goes only to a Ready receiver, as a Service routes new connections; with none
                    # Ready the connection is refused (and retried), it never lands on a receiver shutting down
                    targets = self._ready
                    if not targets:
                        self.syslog.refused(int(time.monotonic() - self.started_at))
                        return
                    target = targets[attempt % len(targets)]
                    attempt += 1
                    try:
                        sock = socket.create_connection((target.host, target.tcp_port), timeout=2)
                    except OSError:
                        self.syslog.refused(int(time.monotonic() - self.started_at))
                        sock = None
                        return
                if _peer_closed(sock):
                    # the receiver half-closed (it is shutting down): everything sent so far was read; reconnect
                    sock.close()
                    sock = None
                    self.syslog.tcp_reconnects_on_close += 1
                    continue
                try:
                    sock.sendall(pending[0])
                except OSError:
                    sock.close()
                    sock = None
                    self.syslog.tcp_resent += 1
                    return
                pending.popleft()
                self.syslog.sent_one("tcp")

        for due in self._paced(self.config.syslog_rate / 2, self._stop_senders):
            for _ in range(due):
                pending.append(frame(sequence))
                sequence += 1
            pump()
            if pending and sock is None:
                time.sleep(0.2)
        flush_until = time.monotonic() + 10
        while pending and time.monotonic() < flush_until:
            pump()
            if pending:
                time.sleep(0.2)
        self.tcp_unwritten = len(pending)
        if sock is not None:
            sock.close()

    def _route_loop(self) -> None:
        """Follow the Ready receivers every ROUTE_REFRESH_SECONDS, as kube-proxy follows a Service's endpoints."""
        failures = 0
        while not self._stop_readers.is_set() and time.monotonic() < self._deadline + 600:
            try:
                self._endpoints = tuple(self.config.receivers())
                failures = 0
            except Exception as exc:  # keep the last list: the control plane may blink during a roll
                failures += 1
                if failures == 10:
                    self.errors.append(f"receivers: {exc}")
            self._ready = tuple(e for e in self._endpoints if e.ready())
            time.sleep(ROUTE_REFRESH_SECONDS)

    def _sample_loop(self) -> None:
        s = self.sampler
        last_acked, last_errors, last_committed = 0, 0, None
        lag_streak = FailingStreak(LAG_GAP_LIMIT_SECONDS)
        previous = time.monotonic()
        while not self._stop_readers.is_set() and time.monotonic() < self._deadline + 600:
            time.sleep(max(0.0, 1.0 - (time.monotonic() - previous)))
            now = time.monotonic()
            dt_s, previous = now - previous, now
            search_ok = True
            try:
                self.es.search(
                    index=self.config.write_alias, size=0, query={"term": {"host.name": self.config.run_tag}}
                )
            except Exception:
                search_ok = False
            s.search_probes += 1
            s.search_errors += 0 if search_ok else 1
            try:
                health = str(self.es.cluster.health(timeout="1s")["status"])
            except Exception:
                health = "unknown"
            s.ever_red = s.ever_red or health == "red"
            committed_total = last_committed or 0
            try:
                end = self._watermarks(self.config.events_topic, high=True)
                self.lag = self._indexer_lag(end)
                committed_total = sum(end.values()) - self.lag
                lag_streak.succeeded()
            except Exception as exc:  # a gap in the lag figure; an error only when it lasts
                s.lag_gaps += 1
                if lag_streak.failed(now):
                    self.errors.append(f"lag: no sample for over {LAG_GAP_LIMIT_SECONDS:.0f} s: {exc}")
            acked, errors = self.probe.acknowledged_total, self.probe.errored
            running = not self._stop_senders.is_set()
            produce_ok = errors == last_errors and (acked > last_acked or not running or self.config.rate < 1)
            ingest_ok = bool(self._ready) or not running
            s.outages["produce"].tick(produce_ok, dt_s)
            s.outages["search"].tick(search_ok, dt_s)
            s.outages["ingest"].tick(ingest_ok, dt_s)
            indexed = 0.0 if last_committed is None else (committed_total - last_committed) / dt_s
            s.timeline.append(
                {
                    "t": round(now - self.started_at, 2),
                    "acked_per_s": (acked - last_acked) / dt_s,
                    "indexed_per_s": max(0.0, indexed),
                    "lag": self.lag,
                    "health": health,
                    "produce_ok": produce_ok,
                    "search_ok": search_ok,
                    "ingest_ok": bool(self._ready),
                }
            )
            last_acked, last_errors, last_committed = acked, errors, committed_total


# ---------------------------------------------------------------------------------------------- local helpers


def deployments_rolled_out(api: Any, namespace: str) -> bool:
    from kubernetes import client

    for d in client.AppsV1Api(api).list_namespaced_deployment(namespace).items:
        status, want = d.status, d.spec.replicas or 0
        if (status.observed_generation or 0) < (d.metadata.generation or 0):
            return False
        if (status.updated_replicas or 0) != want or (status.ready_replicas or 0) != want:
            return False
        if (status.replicas or 0) != want:
            return False
    return True


def _ready_pods(api: Any, namespace: str, component: str) -> list[Any]:
    from kubernetes import client

    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"{COMPONENT_LABEL}={component}")
    out = []
    for pod in pods.items:
        if pod.metadata.deletion_timestamp is not None:
            continue
        conditions = pod.status.conditions or []
        if any(c.type == "Ready" and c.status == "True" for c in conditions):
            out.append(pod)
    return out


def _container_ports(pod: Any) -> dict[tuple[str, str], int]:
    """(port name, protocol) -> containerPort of the pod's containers, as the chart rendered them."""
    out = {}
    for container in pod.spec.containers or []:
        for port in container.ports or []:
            if port.name:
                out[(port.name, (port.protocol or "TCP").upper())] = int(port.container_port)
    return out


def local_receivers(api: Any, namespace: str) -> Callable[[], list[ReceiverEndpoint]]:
    """The Ready receiver pods of `namespace` at their pod IP (reachable from the host: the cluster bridge) and the
    container ports the chart gave them (`syslog-udp`, `syslog-tcp`, `http`), as kube-proxy would route to them."""

    def receivers() -> list[ReceiverEndpoint]:
        out = []
        for pod in _ready_pods(api, namespace, RECEIVER_COMPONENT):
            ports = _container_ports(pod)
            needed = {("syslog-udp", "UDP"), ("syslog-tcp", "TCP"), ("http", "TCP")}
            if not pod.status.pod_ip or not needed <= set(ports):
                raise LiveLoadError(
                    f"receiver pod {namespace}/{pod.metadata.name} has no pod IP or lacks the container ports "
                    f"{sorted(n for n, _ in needed)}: deploy the workers chart unmodified"
                )
            out.append(
                ReceiverEndpoint(
                    pod.metadata.name,
                    pod.status.pod_ip,
                    ports[("syslog-udp", "UDP")],
                    ports[("syslog-tcp", "TCP")],
                    ports[("http", "TCP")],
                )
            )
        return out

    return receivers


def worker_processes(network: Any, api: Any, namespace: str) -> dict[str, int | None]:
    """Worker pod name -> pid of its `toolkit-worker` process (the one in the pod's network namespace whose command
    line runs toolkit-worker), None for a pod with an address but no such process: a pod the node agent does not
    run (its image is not mapped to a directory). Pods without an address yet are left out."""
    from kubernetes import client

    from toolkit.targets.local.network import HostNetwork

    host = HostNetwork(network)
    out: dict[str, int | None] = {}
    selector = f"{COMPONENT_LABEL} in ({RECEIVER_COMPONENT},{INDEXER_COMPONENT})"
    for pod in client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items:
        if not pod.status.pod_ip or pod.metadata.deletion_timestamp is not None:
            continue
        out[pod.metadata.name] = None
        for pid in host.sandbox_pids(network.sandbox_name(pod.status.pod_ip)):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(Path(part.decode(errors="replace")).name == WORKER_EXECUTABLE for part in command[:2]):
                out[pod.metadata.name] = pid
                break
    return out


def worker_pids(network: Any, api: Any, namespace: str) -> dict[str, int]:
    """pod name -> pid of its running `toolkit-worker`, for the worker pods that run one now."""
    return {name: pid for name, pid in worker_processes(network, api, namespace).items() if pid is not None}


def kind_receivers(api: Any, namespace: str, service: str) -> Callable[[], list[ReceiverEndpoint]]:
    """kind: the syslog Service's NodePorts on the nodes' InternalIPs (reachable from a Linux host running the kind
    containers); kube-proxy inside the cluster routes to the Ready receivers, so this list has one entry per node."""
    from kubernetes import client

    core = client.CoreV1Api(api)

    def receivers() -> list[ReceiverEndpoint]:
        svc = core.read_namespaced_service(service, namespace)
        ports = {(p.protocol or "TCP").upper(): p.node_port for p in svc.spec.ports or [] if p.node_port}
        if "UDP" not in ports or "TCP" not in ports:
            raise LiveLoadError(
                f"service {namespace}/{service} has no UDP and TCP NodePorts: deploy the workers with "
                "receiver.service.type NodePort"
            )
        out = []
        for node in core.list_node().items:
            if "node-role.kubernetes.io/control-plane" in (node.metadata.labels or {}):
                continue
            address = next((a.address for a in node.status.addresses or [] if a.type == "InternalIP"), None)
            if address:
                out.append(ReceiverEndpoint(node.metadata.name, address, ports["UDP"], ports["TCP"]))
        return out

    return receivers


def create_run_namespace(api: Any, namespace: str, run_id: str, environment: str) -> None:
    from kubernetes import client

    labels = {RUN_LABEL: run_id, "toolkit.io/environment": environment}
    client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace, "labels": labels}})


def delete_run_namespaces(api: Any, run_id: str) -> list[str]:
    """Delete the namespaces labelled with this run id, the certificate authority's namespace deploy made for each
    (`toolkit.provision.credentials.ca_namespace`), and the cluster-scoped objects the charts made for them
    (ClusterRoles/Bindings named `<namespace>-...`, PersistentVolumes labelled `toolkit.io/namespace`)."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    from toolkit.provision.credentials import PKI_OF_LABEL, ca_namespace

    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    names = [n.metadata.name for n in core.list_namespace(label_selector=f"{RUN_LABEL}={run_id}").items]
    for name in names:
        for pki in core.list_namespace(label_selector=f"{PKI_OF_LABEL}={name}").items:
            if pki.metadata.name == ca_namespace(name):
                core.delete_namespace(pki.metadata.name)
        for role in rbac.list_cluster_role().items:
            if role.metadata.name.startswith(name + "-"):
                rbac.delete_cluster_role(role.metadata.name)
        for binding in rbac.list_cluster_role_binding().items:
            if binding.metadata.name.startswith(name + "-"):
                rbac.delete_cluster_role_binding(binding.metadata.name)
        try:
            core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
        for volume in core.list_persistent_volume(label_selector=f"toolkit.io/namespace={name}").items:
            core.delete_persistent_volume(volume.metadata.name)
    return names


class _ClientErrors:
    """librdkafka's error callback: what a client could not do on its own connections (a TLS handshake it refused,
    an authentication the server refused), which an admin request only reports as a time-out."""

    REFUSALS = (KafkaError._SSL, KafkaError._AUTHENTICATION)

    def __init__(self) -> None:
        self.refusals: list[str] = []

    def __call__(self, error: KafkaError) -> None:
        if error.code() in self.REFUSALS:
            self.refusals.append(error.str())


def admin_call(
    kafka_conf: dict[str, Any],
    request: Callable[[AdminClient], dict[str, Any]],
    what: str,
    timeout: float = 30.0,
    exists_ok: bool = False,
) -> None:
    """Run one admin request (topic name -> future) and wait for every answer; a TLS or authentication refusal
    fails at once, naming what the client said (e.g. the certificate it could not verify). LiveLoadError otherwise
    names `what`, the cause and the way out."""
    errors = _ClientErrors()
    conf: dict[str, Any] = {**kafka_conf, "error_cb": errors}
    admin = AdminClient(conf)  # held until the answers: a dropped handle cancels the request
    futures = request(admin)
    deadline = time.monotonic() + timeout
    for name, future in futures.items():
        while True:
            admin.poll(0.2)
            if errors.refusals:
                raise LiveLoadError(
                    f"cannot {what}: the connection was refused: {errors.refusals[0]}; check the address, the CA "
                    "file (it must sign the server's certificate, whose names must include the address) and the "
                    "client identity"
                )
            try:
                future.result(timeout=0.3)
                break
            except concurrent.futures.TimeoutError:
                if time.monotonic() > deadline:
                    raise LiveLoadError(
                        f"cannot {what}: no answer for {name} within {timeout:.0f} s; check that Kafka answers there"
                    ) from None
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if exists_ok and isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    break
                raise LiveLoadError(
                    f"cannot {what}: {name}: {exc}; check that the user may create and delete topics"
                ) from None
