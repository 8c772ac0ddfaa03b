"""Worker CPU paths next to naive baselines doing the same work in the same run, on one core.

The two NAIVE BASELINES below were written first, in a commit of their own, and are not changed afterwards:
- naive receiver: split the TCP byte stream on LF, take the hostname with one regex, and make the same producer
  call as the receiver (same topic, value, key, reception headers and delivery callback) on the same stub producer;
- naive indexer: a straightforward regex parse of each Kafka record into the same ECS fields the indexer writes,
  then `elasticsearch.helpers.expand_action` + `json.dumps` per event, joined into one NDJSON `_bulk` body.

Then (not part of the baselines): the toolkit's own paths on the same inputs in paired, interleaved rounds after a
warm-up, on one core (sched_setaffinity), CPU time of this process; the ratio printed is the median of the rounds'
toolkit/naive ratios. Then an end-to-end run (syslog TCP -> receiver -> Kafka -> indexer -> Elasticsearch on the
single-node peer, the workers on the benchmark's core, the peer on the other one) with the CPU each process used,
and the CPU of an idle indexer. The last two lines are `receiver vs naive: R.RRx` and `indexer vs naive: R.RRx`.

Run: .venv/bin/python benchmarks/worker_bench.py [--events 100000] [--rounds 7] [--e2e-events 50000]
     [--idle-seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from elasticsearch.helpers import expand_action

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# --- the event mix --------------------------------------------------------------------------------------------
# 40 % RFC 5424 with structured data, 40 % RFC 3164, 15 % RFC 5424 minimal, 5 % not syslog
MIX = (
    (
        40,
        b'<165>1 2024-05-01T10:00:00.123Z web-%d.example.com nginx %d REQ [req@1 method="GET" status="200"] '
        b"GET /api/v1/items?page=%d 200 1532 0.012",
    ),
    (40, b"<38>May  1 10:00:00 bastion-%d sshd[%d]: Accepted publickey for deploy from 10.0.0.%d port 52222"),
    (15, b"<14>1 2024-05-01T10:00:00Z db-%d postgres %d - - checkpoint complete: wrote %d buffers"),
    (5, b"kernel: [%d.%d] eth0: link up %d"),
)
RECEPTION_HEADERS = {
    "src_ip": b"10.1.2.3",
    "src_port": b"40000",
    "transport": b"tcp",
    "received_ms": b"1714557600000",
    "observer": b"receiver-0",
}
TOPIC = "syslog-raw"
INDEX = "syslog-events-000001"


def make_lines(count: int) -> list[bytes]:
    weighted = [line for weight, line in MIX for _ in range(weight)]
    return [weighted[n % 100] % (n % 97, 1000 + n % 5000, n) for n in range(count)]


def tcp_reads(lines: list[bytes], read_bytes: int = 65536) -> list[bytes]:
    """The LF-framed byte stream of `lines`, cut into reads of `read_bytes` (frames split across reads)."""
    stream = b"".join(line + b"\n" for line in lines)
    return [stream[start : start + read_bytes] for start in range(0, len(stream), read_bytes)]


class StubProducer:
    """confluent_kafka.Producer.produce's signature; counts and drops (the CPU path stops at the client call)."""

    def __init__(self) -> None:
        self.produced = 0

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Any = None,
        on_delivery: Any = None,
    ) -> None:
        self.produced += 1

    def poll(self, timeout: float = 0) -> int:
        return 0


# === NAIVE BASELINES (written first; never changed afterwards) ================================================

NAIVE_HOSTNAME = re.compile(rb"<\d{1,3}>(?:\d \S+ (\S+) |[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (\S+) )")


class NaiveReceiver:
    """One TCP connection the naive way: split on LF, a hostname regex, one producer call per line."""

    def __init__(self, producer: StubProducer, peer: tuple[str, int], observer: str) -> None:
        self.producer = producer
        self.ip, self.port = peer
        self.observer = observer
        self.tail = b""
        self.received = 0

    def delivered(self, error: Any, message: Any) -> None:
        return None

    def data_received(self, chunk: bytes) -> None:
        lines = (self.tail + chunk).split(b"\n")
        self.tail = lines.pop()
        now = time.time()
        for line in lines:
            if not line:
                continue
            self.received += 1
            match = NAIVE_HOSTNAME.match(line)
            key = (match.group(1) or match.group(2)) if match else self.ip.encode()
            self.producer.produce(
                TOPIC,
                value=line,
                key=key,
                headers=[
                    ("src_ip", self.ip.encode()),
                    ("src_port", str(self.port).encode()),
                    ("transport", b"tcp"),
                    ("received_ms", str(int(now * 1000)).encode()),
                    ("observer", self.observer.encode()),
                ],
                on_delivery=self.delivered,
            )


NAIVE_5424 = re.compile(r"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|(?:\[.*?[^\\]\])+) ?(.*)", re.DOTALL)
NAIVE_SD = re.compile(r'\[([^\s\]]+)((?: [^=\s]+="(?:[^"\\]|\\.)*")*)\]')
NAIVE_PARAM = re.compile(r'([^=\s]+)="((?:[^"\\]|\\.)*)"')
NAIVE_3164 = re.compile(
    r"<(\d{1,3})>([A-Z][a-z]{2}) +(\d{1,2}) (\d\d:\d\d:\d\d) (?:(\S+) )?([^\s:\[]+)(?:\[(\d+)\])?: ?(.*)", re.DOTALL
)
NAIVE_MONTHS = {
    m: n
    for n, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], start=1)
}
NAIVE_FACILITIES = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
]
NAIVE_SEVERITIES = ["emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug"]


def naive_document(topic: str, partition: int, offset: int, value: bytes, headers: dict[str, bytes]) -> dict:
    """The indexer's ECS fields, built the straightforward way."""
    text = value.decode("utf-8", errors="replace")
    received = datetime.fromtimestamp(int(headers["received_ms"]) / 1000, tz=UTC)
    created = received.isoformat(timespec="milliseconds")
    document: dict[str, Any] = {
        "@timestamp": created,
        "message": text,
        "event": {"original": text, "created": created, "id": f"{topic}-{partition}-{offset}", "kind": "event"},
        "observer": {"hostname": headers["observer"].decode()},
        "source": {"ip": headers["src_ip"].decode(), "port": int(headers["src_port"])},
        "network": {"transport": "tcp", "protocol": "syslog"},
    }
    syslog: dict[str, Any] = {}
    match = NAIVE_5424.match(text)
    if match:
        pri, stamp, host, app, proc, msgid, sd, message = match.groups()
        document["@timestamp"] = stamp if stamp != "-" else created
        syslog["version"] = "1"
        for name, value_ in (("hostname", host), ("appname", app), ("procid", proc), ("msgid", msgid)):
            if value_ != "-":
                syslog[name] = value_
        if sd != "-":
            syslog["structured_data"] = {
                sd_id: dict(NAIVE_PARAM.findall(params)) for sd_id, params in NAIVE_SD.findall(sd)
            }
        document["message"] = message
    else:
        match = NAIVE_3164.match(text)
        if match:
            pri, month, day, clock, host, app, proc, message = match.groups()
            stamp = datetime(received.year, NAIVE_MONTHS[month], int(day), *map(int, clock.split(":")), tzinfo=UTC)
            document["@timestamp"] = stamp.isoformat(timespec="milliseconds")
            if host:
                syslog["hostname"] = host
            document["message"] = message
        else:
            pri = app = proc = host = None
            document["tags"] = ["_syslog_parse_failure"]
            document["error"] = {"message": "not syslog", "type": "syslog_parse"}
    if pri is not None:
        priority = int(pri)
        syslog["priority"] = priority
        syslog["facility"] = {"code": priority >> 3, "name": NAIVE_FACILITIES[priority >> 3]}
        syslog["severity"] = {"code": priority & 7, "name": NAIVE_SEVERITIES[priority & 7]}
        document["log"] = {"level": NAIVE_SEVERITIES[priority & 7], "syslog": syslog}
    if host and host != "-":
        document["host"] = {"name": host}
    if app and app != "-":
        document["process"] = {"name": app}
        if proc and proc.isdigit():
            document["process"]["pid"] = int(proc)
    return document


def naive_bulk_body(records: list[tuple[str, int, int, bytes, dict[str, bytes]]], index: str) -> bytes:
    """One `_bulk` body: expand_action + json.dumps per event."""
    lines = []
    for topic, partition, offset, value, headers in records:
        action, source = expand_action(
            {
                "_op_type": "create",
                "_index": index,
                "_id": f"{topic}-{partition}-{offset}",
                "_source": naive_document(topic, partition, offset, value, headers),
            }
        )
        lines.append(json.dumps(action))
        lines.append(json.dumps(source))
    return ("\n".join(lines) + "\n").encode()


# === end of the naive baselines ================================================================================


# --- the toolkit's paths, driven exactly as in production ------------------------------------------------------


class _NullTransport:
    """What a receiver connection needs of its transport (the bench feeds reads directly)."""

    def get_extra_info(self, name: str) -> Any:
        return ("10.1.2.3", 40000) if name == "peername" else None

    def pause_reading(self) -> None:
        raise AssertionError("the bench never fills the in-flight count")

    def resume_reading(self) -> None:
        return None

    def close(self) -> None:
        return None

    def is_closing(self) -> bool:
        return False


def toolkit_receiver(producer: StubProducer) -> Any:
    """A real `Receiver` connection (framing + key + the producer call), on the stub producer."""
    from toolkit.worker.config import load_config
    from toolkit.worker.observability import WorkerMetrics
    from toolkit.worker.receiver import Receiver, _Stream

    config = load_config(
        "receiver",
        {
            "TOOLKIT_WORKER_KAFKA_BOOTSTRAP": "stub:9092",
            "TOOLKIT_WORKER_TOPIC": TOPIC,
            "TOOLKIT_WORKER_OBSERVER_HOSTNAME": "receiver-0",
            "TOOLKIT_WORKER_MAX_IN_FLIGHT": str(10**12),  # the stub never reports: nothing is ever released
        },
    )
    receiver = Receiver(config, WorkerMetrics(), producer=producer)
    stream = _Stream(receiver, "tcp")
    stream.connection_made(_NullTransport())  # type: ignore[arg-type]
    return stream


def run_naive_receiver(reads: list[bytes]) -> tuple[float, int]:
    producer = StubProducer()
    receiver = NaiveReceiver(producer, ("10.1.2.3", 40000), "receiver-0")
    started = time.process_time()
    for chunk in reads:
        receiver.data_received(chunk)
    return time.process_time() - started, producer.produced


def run_toolkit_receiver(reads: list[bytes]) -> tuple[float, int]:
    producer = StubProducer()
    stream = toolkit_receiver(producer)
    started = time.process_time()
    for chunk in reads:
        stream.data_received(chunk)
    return time.process_time() - started, producer.produced


Records = list[tuple[str, int, int, bytes, dict[str, bytes]]]


def run_naive_indexer(records: Records, batch: int) -> tuple[float, int]:
    started = time.process_time()
    size = 0
    for start in range(0, len(records), batch):
        size += len(naive_bulk_body(records[start : start + batch], INDEX))
    return time.process_time() - started, size


def run_toolkit_indexer(records: Records, batch: int) -> tuple[float, int]:
    """The indexer's bulk build: every record -> its `create` lines (toolkit.worker.ecs.create_operation, what
    Indexer._to_items calls), joined into the body that is sent."""
    from toolkit.worker.ecs import KafkaRecord, create_operation

    kafka_records = [KafkaRecord(*record) for record in records]
    started = time.process_time()
    size = 0
    for start in range(0, len(kafka_records), batch):
        operations = [create_operation(r, INDEX)[1] for r in kafka_records[start : start + batch]]
        size += len(b"".join(operations))
    return time.process_time() - started, size


def paired(
    name: str, naive: Any, toolkit: Any, count: int, rounds: int, warmup: int
) -> tuple[float, list[tuple[float, float]]]:
    """Interleaved pairs (naive, then toolkit) after `warmup` unmeasured pairs; CPU time of this process."""
    for _ in range(warmup):
        naive()
        toolkit()
    pairs = []
    for number in range(rounds):
        naive_seconds, _ = naive()
        toolkit_seconds, _ = toolkit()
        pairs.append((count / naive_seconds, count / toolkit_seconds))
        print(
            f"  {name} round {number + 1}: naive {pairs[-1][0]:>10,.0f}/s  toolkit {pairs[-1][1]:>10,.0f}/s  "
            f"ratio {pairs[-1][1] / pairs[-1][0]:.2f}x"
        )
    return statistics.median(t / n for n, t in pairs), pairs


# --- end to end: syslog TCP -> receiver -> Kafka -> indexer -> Elasticsearch (the single-node peer) -------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def end_to_end(events: int, worker_core: int, peer_core: int | None) -> None:
    import signal
    import socket
    import subprocess
    import tempfile
    import urllib.request
    import uuid

    from confluent_kafka.admin import AdminClient, NewTopic

    from toolkit.indices import IndexLayout
    from toolkit.targets.es_indices import apply_index_management, client
    from toolkit.targets.peer import free_port, running_peer

    tag = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="worker-bench-") as directory, running_peer(Path(directory)) as peer:
        if peer_core is not None:
            os.sched_setaffinity(peer.pid, {peer_core})
        topic, dlq, alias = f"bench-{tag}", f"bench-dlq-{tag}", f"bench-{tag}"
        admin = AdminClient({"bootstrap.servers": peer.kafka_bootstrap})
        for future in admin.create_topics([NewTopic(topic, 3, 1), NewTopic(dlq, 1, 1)]).values():
            future.result(15)
        es = client(peer.elasticsearch_url)
        apply_index_management(es, IndexLayout(alias=alias, replicas=0), "alias")
        ports = {"receiver": free_port(), "indexer": free_port()}
        tcp_port = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("TOOLKIT_WORKER_")}
        base |= {
            "TOOLKIT_WORKER_KAFKA_BOOTSTRAP": peer.kafka_bootstrap,
            "TOOLKIT_WORKER_TOPIC": topic,
            "TOOLKIT_WORKER_DEAD_LETTER_TOPIC": dlq,
            "TOOLKIT_WORKER_WRITE_ALIAS": alias,
            "TOOLKIT_WORKER_CONSUMER_GROUP": f"bench-{tag}",
            "TOOLKIT_WORKER_ELASTICSEARCH_URL": peer.elasticsearch_url,
            "TOOLKIT_WORKER_LISTEN_HOST": "127.0.0.1",
            "TOOLKIT_WORKER_TCP_PORT": str(tcp_port),
            "TOOLKIT_WORKER_UDP_PORT": "off",
            "TOOLKIT_WORKER_HTTP_HOST": "127.0.0.1",
            "TOOLKIT_WORKER_SHUTDOWN_LINGER_SECONDS": "0",
            "TOOLKIT_WORKER_LOG_LEVEL": "WARNING",
        }
        binary = str(Path(sys.executable).with_name("toolkit-worker"))
        workers = {}
        for role in ("receiver", "indexer"):
            env = base | {"TOOLKIT_WORKER_HTTP_PORT": str(ports[role])}
            workers[role] = subprocess.Popen([binary, role], env=env, stderr=subprocess.DEVNULL)
            os.sched_setaffinity(workers[role].pid, {worker_core})

        def get(role: str, path: str) -> tuple[int, str]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ports[role]}{path}", timeout=3) as answer:
                    return answer.status, answer.read().decode()
            except OSError:
                return 0, ""

        def metric(role: str, name: str) -> float:
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in get(role, "/metrics")[1].splitlines()
                if line.startswith(name) and not line.startswith("#")
            )

        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not all(get(r, "/readyz")[0] == 200 for r in workers):
                time.sleep(0.2)
            payload = b"".join(line + b"\n" for line in make_lines(events))
            pids = {"receiver": workers["receiver"].pid, "indexer": workers["indexer"].pid, "peer": peer.pid}
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            started = time.monotonic()
            with socket.create_connection(("127.0.0.1", tcp_port)) as sender:
                sender.sendall(payload)
            sent = time.monotonic() - started
            while metric("receiver", "toolkit_receiver_events_accepted_total") < events:
                time.sleep(0.05)
            in_kafka = time.monotonic() - started
            while metric("indexer", "toolkit_indexer_events_indexed_total") < events:
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
            es.indices.refresh(index=alias)
            count = es.count(index=alias)["count"]
        finally:
            for process in workers.values():
                process.send_signal(signal.SIGTERM)
            for process in workers.values():
                process.wait(60)
    print(f"[end to end] syslog TCP -> receiver -> Kafka -> indexer -> Elasticsearch, {events:,} events:")
    print(f"  sent in {sent:.1f} s; all in Kafka after {in_kafka:.1f} s; all indexed after {elapsed:.1f} s")
    print(f"  {events / elapsed:,.0f} events/s end to end ({count:,} documents searchable)")
    print(
        "  CPU seconds during the run: "
        + ", ".join(f"{name} {seconds:.1f} s ({seconds / elapsed:.0%} of a core)" for name, seconds in cpu.items())
    )


def idle_indexer(seconds: float) -> None:
    """CPU of an indexer with nothing to index (and of the peer it talks to), from /proc/PID/stat."""
    import signal
    import subprocess
    import tempfile
    import urllib.request
    import uuid

    from confluent_kafka.admin import AdminClient, NewTopic

    from toolkit.indices import IndexLayout
    from toolkit.targets.es_indices import apply_index_management, client
    from toolkit.targets.peer import free_port, running_peer

    tag = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="worker-idle-") as directory, running_peer(Path(directory)) as peer:
        admin = AdminClient({"bootstrap.servers": peer.kafka_bootstrap})
        for future in admin.create_topics([NewTopic(f"idle-{tag}", 3, 1), NewTopic(f"idle-dlq-{tag}", 1, 1)]).values():
            future.result(15)
        apply_index_management(client(peer.elasticsearch_url), IndexLayout(alias=f"idle-{tag}", replicas=0), "alias")
        http_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLKIT_WORKER_")} | {
            "TOOLKIT_WORKER_KAFKA_BOOTSTRAP": peer.kafka_bootstrap,
            "TOOLKIT_WORKER_TOPIC": f"idle-{tag}",
            "TOOLKIT_WORKER_DEAD_LETTER_TOPIC": f"idle-dlq-{tag}",
            "TOOLKIT_WORKER_WRITE_ALIAS": f"idle-{tag}",
            "TOOLKIT_WORKER_ELASTICSEARCH_URL": peer.elasticsearch_url,
            "TOOLKIT_WORKER_HTTP_HOST": "127.0.0.1",
            "TOOLKIT_WORKER_HTTP_PORT": str(http_port),
        }
        indexer = subprocess.Popen(
            [str(Path(sys.executable).with_name("toolkit-worker")), "indexer"], env=env, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=2) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    time.sleep(0.2)
            time.sleep(5)  # joined the group, partitions assigned
            before = {"indexer": cpu_seconds(indexer.pid), "peer": cpu_seconds(peer.pid)}
            started = time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - started
            after = {"indexer": cpu_seconds(indexer.pid), "peer": cpu_seconds(peer.pid)}
        finally:
            indexer.send_signal(signal.SIGTERM)
            indexer.wait(60)
    print(
        f"[idle indexer] over {elapsed:.0f} s with nothing to index: "
        + ", ".join(f"{name} {(after[name] - before[name]) / elapsed:.1%} of a core" for name in before)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="events per round (CPU paths)")
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--e2e-events", type=int, default=50_000, help="0 skips the end-to-end run")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="0 skips the idle-indexer measurement")
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    bench_core, other_core = cores[0], (cores[1] if len(cores) > 1 else None)
    os.sched_setaffinity(0, {bench_core})
    lines = make_lines(args.events)
    reads = tcp_reads(lines)
    records = [(TOPIC, n % 12, n, line, RECEPTION_HEADERS) for n, line in enumerate(lines)]
    mean = sum(map(len, lines)) / len(lines)
    print(
        f"pinned to core {bench_core}; {args.events:,} events a round (mean {mean:.0f} bytes: 40% RFC 5424 + SD, "
        f"40% RFC 3164, 15% RFC 5424 minimal, 5% not syslog); {args.warmup} warm-up + {args.rounds} paired rounds; "
        "CPU time of this process"
    )
    print("[receiver CPU path] LF-framed TCP reads of 64 KiB -> framing + key + producer.produce (stub):")
    receiver_ratio, _ = paired(
        "receiver",
        lambda: run_naive_receiver(reads),
        lambda: run_toolkit_receiver(reads),
        args.events,
        args.rounds,
        args.warmup,
    )
    print(f"[indexer CPU path] Kafka records -> ECS documents -> _bulk body, batches of {args.batch:,}:")
    indexer_ratio, _ = paired(
        "indexer",
        lambda: run_naive_indexer(records, args.batch),
        lambda: run_toolkit_indexer(records, args.batch),
        args.events,
        args.rounds,
        args.warmup,
    )
    if args.e2e_events:
        end_to_end(args.e2e_events, bench_core, other_core)
    if args.idle_seconds:
        idle_indexer(args.idle_seconds)
    print(f"receiver vs naive: {receiver_ratio:.2f}x")
    print(f"indexer vs naive: {indexer_ratio:.2f}x")


if __name__ == "__main__":
    main()
