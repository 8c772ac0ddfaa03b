"""End-to-end fixtures: the single-node Kafka + Elasticsearch peer (PyPI noida-db), worker subprocesses, and a
fault-injecting HTTP proxy in front of Elasticsearch."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import os
import signal
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from toolkit.targets.peer import free_port

VENV_BIN = Path(__file__).resolve().parents[3] / ".venv" / "bin"


def wait_until(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def names() -> dict[str, str]:
    """Unique topic, alias and group names per test (the peer is shared by the session)."""
    tag = uuid.uuid4().hex[:8]
    return {"topic": f"raw-{tag}", "dlq": f"dlq-{tag}", "alias": f"syslog-{tag}", "group": f"indexer-{tag}"}


@pytest.fixture
def kafka_topics(peer, names):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": peer.kafka_bootstrap})
    futures = admin.create_topics([NewTopic(names["topic"], 3, 1), NewTopic(names["dlq"], 1, 1)])
    for future in futures.values():
        future.result(15)
    return names


@pytest.fixture
def es(peer):
    from toolkit.config.access import EsConnection
    from toolkit.targets.es_admin import client_for

    return client_for(EsConnection(url=peer.elasticsearch_url), request_timeout=60)


@pytest.fixture
def index_layout(es, names):
    from toolkit.indices import IndexLayout
    from toolkit.targets.es_indices import apply_index_management

    result = apply_index_management(es, IndexLayout(alias=names["alias"], replicas=0, refresh_interval="1s"))
    assert result.mode == "alias"  # the peer has no ILM
    return result


@dataclass
class Worker:
    role: str
    process: subprocess.Popen
    http_port: int
    log_path: Path
    ports: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=3) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def metric(self, name: str, **labels: str) -> float:
        _, text = self.get("/metrics")
        wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
        total = 0.0
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            if key == wanted or (not labels and key.startswith(name + "{")):
                total += float(value)
        return total

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_worker(peer, names, tmp_path) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(role: str, es_url: str | None = None, wait_ready: bool = True, **settings: object) -> Worker:
        http_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLKIT_WORKER_")}
        env.update(
            TOOLKIT_WORKER_KAFKA_BOOTSTRAP=peer.kafka_bootstrap,
            TOOLKIT_WORKER_TOPIC=names["topic"],
            TOOLKIT_WORKER_DEAD_LETTER_TOPIC=names["dlq"],
            TOOLKIT_WORKER_CONSUMER_GROUP=names["group"],
            TOOLKIT_WORKER_WRITE_ALIAS=names["alias"],
            TOOLKIT_WORKER_HTTP_HOST="127.0.0.1",
            TOOLKIT_WORKER_HTTP_PORT=str(http_port),
            TOOLKIT_WORKER_LISTEN_HOST="127.0.0.1",
            TOOLKIT_WORKER_BATCH_MAX_WAIT_MS="200",
            TOOLKIT_WORKER_RETRY_INITIAL_MS="100",
            TOOLKIT_WORKER_RETRY_MAX_MS="1000",
            TOOLKIT_WORKER_ALIAS_REFRESH_SECONDS="1",
            # the peer holds a rebalance for the group's whole max.poll.interval when a member dies
            TOOLKIT_WORKER_SESSION_TIMEOUT_MS="6000",
            TOOLKIT_WORKER_MAX_POLL_INTERVAL_MS="8000",
        )
        if role == "indexer":
            env["TOOLKIT_WORKER_ELASTICSEARCH_URL"] = es_url or peer.elasticsearch_url
        ports: dict[str, int] = {}
        if role == "receiver":
            for transport in ("udp", "tcp", "tls"):
                key = f"{transport}_port"
                if key not in settings and transport != "tls":
                    settings[key] = free_port()
                if settings.get(key) not in (None, "off"):
                    ports[transport] = int(settings[key])  # type: ignore[arg-type]
        for key, value in settings.items():
            env[f"TOOLKIT_WORKER_{key.upper()}"] = str(value)
        log_path = tmp_path / f"{role}-{len(started)}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - the child owns it
        process = subprocess.Popen([str(VENV_BIN / "toolkit-worker"), role], env=env, stdout=log, stderr=log)
        log.close()
        worker = Worker(role, process, http_port, log_path, ports)
        started.append(worker)
        if wait_ready:

            def ready() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"{role} exited {process.returncode}:\n{worker.logs()}")
                return worker.get("/readyz")[0] == 200

            wait_until(ready, 30, f"{role} /readyz")
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
            try:
                worker.process.wait(30)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait(10)


def produce_events(bootstrap: str, topic: str, lines: list[bytes]) -> int:
    """Write syslog lines to Kafka as the receiver does (idempotent, acks=all); returns how many Kafka acked."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    acked = []
    now_ms = str(int(time.time() * 1000)).encode()
    for number, line in enumerate(lines):
        producer.produce(
            topic,
            value=line,
            key=f"host-{number % 7}".encode(),
            headers=[
                ("src_ip", b"127.0.0.1"),
                ("src_port", b"5000"),
                ("transport", b"tcp"),
                ("received_ms", now_ms),
                ("observer", b"test"),
            ],
            on_delivery=lambda error, _message: acked.append(error is None),
        )
    assert producer.flush(30) == 0
    return sum(acked)


def sample_lines(count: int, start: int = 0) -> list[bytes]:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return [
        b"<134>1 %s host-%d app %d - - event number %d" % (stamp.encode(), n % 7, 1000 + n % 50, n)
        for n in range(start, start + count)
    ]


def searchable_count(es, alias: str) -> int:
    es.indices.refresh(index=alias)
    return int(es.count(index=alias)["count"])


def duplicate_ids(es, alias: str) -> list[str]:
    """Ids stored more than once anywhere under the alias (every generation), read from every document."""
    es.indices.refresh(index=alias)
    answer = es.search(index=alias, size=10_000, source=["event.id"], query={"match_all": {}})
    hits = answer["hits"]["hits"]
    assert len(hits) == es.count(index=alias)["count"], "more documents than one page: raise size"
    seen: dict[str, int] = {}
    for hit in hits:
        key = hit["_source"]["event"]["id"]
        seen[key] = seen.get(key, 0) + 1
    return sorted(key for key, times in seen.items() if times > 1)


class FaultProxy:
    """HTTP proxy to Elasticsearch on loopback. `plan` is a list of actions consumed by successive `_bulk`
    requests: ("status", code) answers that status without forwarding; ("delay", seconds) forwards, then waits
    before answering; ("item_429", n) forwards, then rewrites the first n item results to 429 (they WERE
    stored: the retry must meet 409). Other requests pass through untouched."""

    def __init__(self, target: str) -> None:
        self.target = target.removeprefix("http://")
        self.plan: list[tuple[str, float]] = []
        self.bulk_requests = 0
        self.bulk_started = threading.Event()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                action: tuple[str, float] | None = None
                if "_bulk" in self.path:
                    with proxy.lock:
                        proxy.bulk_requests += 1
                        action = proxy.plan.pop(0) if proxy.plan else None
                    proxy.bulk_started.set()
                if action and action[0] == "status":
                    payload = b'{"error":{"type":"injected","reason":"fault proxy"},"status":%d}' % action[1]
                    self._reply(int(action[1]), payload)
                    return
                connection = http.client.HTTPConnection(proxy.target, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                connection.request(self.command, self.path, body=body or None, headers=headers)
                answer = connection.getresponse()
                payload = answer.read()
                status = answer.status
                connection.close()
                if action and action[0] == "delay":
                    time.sleep(action[1])
                if action and action[0] == "item_429":
                    import json

                    data = json.loads(payload)
                    for item in data["items"][: int(action[1])]:
                        result = next(iter(item.values()))
                        result["status"] = 429
                        result["error"] = {"type": "es_rejected_execution_exception", "reason": "injected"}
                    data["errors"] = True
                    payload = json.dumps(data).encode()
                self._reply(status, payload)

            def _reply(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fault_proxy(peer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(peer.elasticsearch_url)
    yield proxy
    proxy.close()
