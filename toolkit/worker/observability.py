"""Metrics, probes and structured logs of a worker process.

- `WorkerMetrics` owns one Prometheus registry per process (no process-wide default registry, so tests can
  build several). Counter names end in `_total`; every counter that counts a loss has a `reason` label.
- `ProbeServer` serves `/healthz` (the main loop is alive: it beat within `stale_after` seconds), `/readyz`
  (the role's own readiness callable: the receiver's never looks at Elasticsearch) and `/metrics`, from a
  daemon thread; a probe never blocks on a network call (readiness inputs are refreshed in the background).
- `configure_json_logging` writes one JSON object per line to stderr: time, level, logger, message and the
  `extra` fields given to the call.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

_BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class WorkerMetrics:
    """Every metric either role exposes (a role simply leaves the other role's series at zero)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter(
            "toolkit_receiver_events_received_total",
            "Syslog messages read off the wire",
            ["transport"],
            registry=r,
        )
        self.accepted = Counter(
            "toolkit_receiver_events_accepted_total",
            "Events Kafka acknowledged (acks=all): from here they cannot be lost by the receiver",
            ["transport"],
            registry=r,
        )
        self.dropped = Counter(
            "toolkit_receiver_events_dropped_total",
            "Events that did not reach the events topic, by reason (udp_buffer_full, kafka_delivery_failed, "
            "producer_queue_full, message_too_large, producer_error, shutdown_unflushed); message_too_large ones "
            "are dead-lettered (their head)",
            ["reason"],
            registry=r,
        )
        self.framing_violations = Counter(
            "toolkit_receiver_framing_violations_total",
            "Stream bytes that broke the framing rules (count_above_maximum, count_false, not_octet_counted, "
            "unframed_bytes), each dead-lettered (at most max_message_bytes of it)",
            ["reason"],
            registry=r,
        )
        self.framing_violation_bytes = Counter(
            "toolkit_receiver_framing_violation_bytes_total",
            "Bytes covered by framing violations (dead-lettered up to max_message_bytes per violation)",
            ["reason"],
            registry=r,
        )
        self.receiver_dead_lettered = Counter(
            "toolkit_receiver_dead_lettered_total",
            "Records the receiver wrote to the dead-letter topic and Kafka acknowledged, by reason",
            ["reason"],
            registry=r,
        )
        self.discarded_bytes = Counter(
            "toolkit_receiver_discarded_bytes_total",
            "Bytes not forwarded at all: the tails of cut (oversize) events, partial frames of closed connections",
            ["reason"],
            registry=r,
        )
        self.connections_closed = Counter(
            "toolkit_receiver_connections_closed_total",
            "Connections the receiver closed or refused itself (cap, idle, buffer_budget, shutdown)",
            ["reason"],
            registry=r,
        )
        self.buffered_bytes = Gauge(
            "toolkit_receiver_buffered_bytes", "Bytes of partial frames held across connections", registry=r
        )
        self.truncated = Counter(
            "toolkit_receiver_events_truncated_total",
            "Frames cut at max_message_bytes (kept, tagged)",
            registry=r,
        )
        self.in_flight = Gauge(
            "toolkit_receiver_in_flight_events", "Events sent to Kafka and not yet acknowledged", registry=r
        )
        self.backpressure = Counter(
            "toolkit_receiver_backpressure_pauses_total",
            "Times a TCP/TLS connection stopped being read because the in-flight buffer was full",
            registry=r,
        )
        self.connections = Gauge("toolkit_receiver_open_connections", "Open TCP/TLS connections", registry=r)
        self.indexed = Counter(
            "toolkit_indexer_events_indexed_total", "Documents Elasticsearch created (201)", registry=r
        )
        self.already_stored = Counter(
            "toolkit_indexer_events_already_stored_total",
            "Redelivered events Elasticsearch already held (409 on create): counted, not duplicated",
            registry=r,
        )
        self.failed = Counter(
            "toolkit_indexer_item_failures_total",
            "Bulk items that failed and were retried, by HTTP status (429, 5xx, or 0 for a transport error)",
            ["status"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "toolkit_indexer_events_dead_lettered_total",
            "Events Elasticsearch rejected for good (4xx) and sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.parse_failures = Counter(
            "toolkit_indexer_parse_failures_total",
            "Events indexed raw because they were not valid syslog (tagged _syslog_parse_failure)",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "toolkit_indexer_batch_seconds",
            "From the first event of a batch fetched to its offsets committed",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_events = Histogram(
            "toolkit_indexer_batch_events",
            "Events per batch",
            buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 50000),
            registry=r,
        )
        self.consumer_lag = Gauge(
            "toolkit_indexer_consumer_lag",
            "High watermark minus committed offset, per assigned partition",
            ["topic", "partition"],
            registry=r,
        )
        self.index_pins = Counter(
            "toolkit_indexer_index_pins_total",
            "Target-index leases recorded in Kafka commit metadata before writing",
            registry=r,
        )
        self.rollovers = Counter(
            "toolkit_indexer_rollovers_total", "Rollovers this indexer performed (alias mode)", registry=r
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class Heartbeat:
    """The main loop calls `beat()`; /healthz fails when it has not for `stale_after` seconds."""

    def __init__(self, stale_after: float = 60.0) -> None:
        self.stale_after = stale_after
        self._last = time.monotonic()

    def beat(self) -> None:
        self._last = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self._last < self.stale_after


ReadinessCheck = Callable[[], tuple[bool, str]]


class ProbeServer:
    """/healthz, /readyz and /metrics on a daemon thread."""

    def __init__(
        self, host: str, port: int, metrics: WorkerMetrics, heartbeat: Heartbeat, readiness: ReadinessCheck
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "toolkit-worker"

            def do_GET(self) -> None:
                route = self.path.split("?", 1)[0]
                if route == "/healthz":
                    ok = outer.heartbeat.alive()
                    self._send(200 if ok else 503, "text/plain", b"ok\n" if ok else b"main loop stalled\n")
                elif route == "/readyz":
                    ready, reason = outer.readiness()
                    self._send(200 if ready else 503, "text/plain", (reason + "\n").encode())
                elif route == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, outer.metrics.exposition())
                else:
                    self._send(404, "text/plain", b"not found: try /healthz, /readyz or /metrics\n")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.metrics = metrics
        self.heartbeat = heartbeat
        self.readiness = readiness
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="probes", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_STANDARD_RECORD_FIELDS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_json_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # one line per HTTP request to Elasticsearch is noise at INFO; failures are logged by the indexer itself
    logging.getLogger("elastic_transport").setLevel(max(logging.WARNING, root.level))
