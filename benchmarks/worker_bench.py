"""Indexer throughput: the toolkit's path next to the most direct way a user would write it, in the same run.

Part 1, no I/O, one core: parse + normalise + bulk-encode N Kafka records (the indexer's CPU work per batch).
  toolkit:  toolkit.worker.ecs.normalise + encode_create, joined into one NDJSON body per batch
  direct:   a hand-written regex parse into a dict, json.dumps per action and per document (what
            elasticsearch.helpers.bulk does internally before sending)
Part 2, end to end against the local single-node peer (noida-db; started here on free loopback ports unless
--peer-kafka/--peer-es are given): N records already in Kafka -> consumer -> Elasticsearch, until `_count` = N.
  toolkit:  the real `Indexer` (leases, create ops, per-item classification, commit after durable indexing)
  direct:   confluent-kafka consumer + json + elasticsearch.helpers.bulk (index ops, auto-commit)

Event mix: 40 % RFC 5424 with structured data, 40 % RFC 3164, 15 % RFC 5424 minimal, 5 % not syslog;
mean raw size printed. Batch size: --batch (default 2,000).

Run: .venv/bin/python benchmarks/worker_bench.py [--events 200000] [--e2e-events 50000] [--batch 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit.worker.ecs import KafkaRecord, document_id, encode_create, normalise

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
HEADERS = {
    "src_ip": b"10.1.2.3",
    "src_port": b"40000",
    "transport": b"tcp",
    "received_ms": b"1714557600000",
    "observer": b"receiver-0",
}


def make_lines(count: int) -> list[bytes]:
    weighted = [line for weight, line in MIX for _ in range(weight)]
    return [weighted[n % 100] % (n % 97, 1000 + n % 5000, n) for n in range(count)]


_DIRECT = re.compile(
    r"<(\d+)>(?:1 (\S+) (\S+) (\S+) (\S+) (\S+) (?:-|\[.*?\]) ?|(\w{3} +\d+ [\d:]+) (\S+) ([^:\[]+)(?:\[(\d+)\])?: )"
)


def direct_document(line: bytes) -> dict:
    text = line.decode("utf-8", errors="replace")
    match = _DIRECT.match(text)
    if match is None:
        return {"message": text, "event": {"original": text}, "tags": ["_syslog_parse_failure"]}
    pri = int(match.group(1))
    return {
        "timestamp": match.group(2) or match.group(7),
        "host": {"name": match.group(3) or match.group(8)},
        "process": {"name": match.group(4) or match.group(9), "pid": match.group(5) or match.group(10)},
        "log": {"syslog": {"priority": pri, "facility": {"code": pri >> 3}, "severity": {"code": pri & 7}}},
        "message": text[match.end() :],
        "event": {"original": text},
    }


def bench_cpu(lines: list[bytes], batch: int) -> tuple[float, float]:
    records = [KafkaRecord("syslog-raw", n % 12, n, line, HEADERS) for n, line in enumerate(lines)]
    started = time.perf_counter()
    for start in range(0, len(records), batch):
        body = b"".join(
            encode_create("syslog-events-000001", document_id(r.topic, r.partition, r.offset), normalise(r))
            for r in records[start : start + batch]
        )
        assert body
    toolkit_rate = len(records) / (time.perf_counter() - started)

    started = time.perf_counter()
    for start in range(0, len(lines), batch):
        chunk = []
        for n, line in enumerate(lines[start : start + batch], start):
            chunk.append(json.dumps({"index": {"_index": "syslog-events", "_id": f"syslog-raw-{n % 12}-{n}"}}))
            chunk.append(json.dumps(direct_document(line)))
        body = ("\n".join(chunk) + "\n").encode()
        assert body
    direct_rate = len(lines) / (time.perf_counter() - started)
    return toolkit_rate, direct_rate


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_peer() -> tuple[subprocess.Popen, str, str, str]:
    from importlib.resources import files

    # the server binary itself (the `noida-db` script is a wrapper whose child would outlive terminate())
    binary = str(files("noida_db").joinpath("noida-db"))
    if not Path(binary).is_file():
        raise SystemExit("noida-db not found: install the dev extras or pass --peer-kafka/--peer-es")
    data = tempfile.mkdtemp(prefix="worker-bench-")
    kafka_port, es_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            binary,
            "start",
            "--data-dir",
            data,
            "--host",
            "127.0.0.1",
            "--only",
            "kafka,elasticsearch",
            "--kafka-port",
            str(kafka_port),
            "--elasticsearch-port",
            str(es_port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{es_port}/", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    return process, f"127.0.0.1:{kafka_port}", f"http://127.0.0.1:{es_port}", data


def fill_topic(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(15)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 20})
    for n, line in enumerate(lines):
        producer.produce(topic, value=line, key=b"host-%d" % (n % 11), headers=list(HEADERS.items()))
        if n % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0


def wait_count(es, index: str, expected: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        es.indices.refresh(index=index)
        if es.count(index=index)["count"] >= expected:
            return
        time.sleep(0.2)
    raise SystemExit(f"{index}: not all {expected} documents arrived")


def bench_e2e_toolkit(bootstrap: str, es_url: str, lines: list[bytes], batch: int) -> float:
    import threading

    from toolkit.indices import IndexLayout
    from toolkit.targets.es_indices import apply_index_management, client
    from toolkit.worker.config import load_config
    from toolkit.worker.indexer import Indexer, elasticsearch_client
    from toolkit.worker.observability import WorkerMetrics

    tag = uuid.uuid4().hex[:6]
    topic, alias = f"bench-tk-{tag}", f"bench-tk-{tag}"
    fill_topic(bootstrap, topic, lines)
    es = client(es_url)
    apply_index_management(es, IndexLayout(alias=alias, replicas=0), "alias")
    config = load_config(
        "indexer",
        {
            "TOOLKIT_WORKER_KAFKA_BOOTSTRAP": bootstrap,
            "TOOLKIT_WORKER_ELASTICSEARCH_URL": es_url,
            "TOOLKIT_WORKER_TOPIC": topic,
            "TOOLKIT_WORKER_WRITE_ALIAS": alias,
            "TOOLKIT_WORKER_CONSUMER_GROUP": f"g-{tag}",
            "TOOLKIT_WORKER_BATCH_SIZE": str(batch),
            "TOOLKIT_WORKER_BATCH_MAX_WAIT_MS": "100",
        },
    )
    metrics = WorkerMetrics()
    indexer = Indexer(config, metrics, elasticsearch_client(config))
    started = time.perf_counter()
    thread = threading.Thread(target=indexer.run, daemon=True)
    thread.start()
    # watch the indexer's own counter (a refresh loop would compete with the bulks), then verify with _count
    while (metrics.registry.get_sample_value("toolkit_indexer_events_indexed_total") or 0) < len(lines):
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    wait_count(es, alias, len(lines), timeout=60)
    indexer.request_stop()
    thread.join(30)
    return len(lines) / elapsed


def bench_e2e_direct(bootstrap: str, es_url: str, lines: list[bytes], batch: int) -> float:
    from confluent_kafka import Consumer
    from elasticsearch import Elasticsearch, helpers

    tag = uuid.uuid4().hex[:6]
    topic, index = f"bench-direct-{tag}", f"bench-direct-{tag}"
    fill_topic(bootstrap, topic, lines)
    es = Elasticsearch(es_url)
    # date_detection off: the mixed 5424/3164 timestamps would otherwise reject each other
    es.indices.create(index=index, settings={"number_of_replicas": 0}, mappings={"date_detection": False})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"d-{tag}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    started = time.perf_counter()
    done = 0
    while done < len(lines):
        messages = [m for m in consumer.consume(batch, 0.1) if m.error() is None]
        if not messages:
            continue
        actions = (
            {"_index": index, "_id": f"{m.topic()}-{m.partition()}-{m.offset()}", "_source": direct_document(m.value())}
            for m in messages
        )
        helpers.bulk(es, actions, chunk_size=batch)
        done += len(messages)
    wait_count(es, index, len(lines))
    elapsed = time.perf_counter() - started
    consumer.close()
    return len(lines) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--e2e-events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--peer-kafka")
    parser.add_argument("--peer-es")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as stated

    lines = make_lines(args.events)
    mean = sum(map(len, lines)) / len(lines)
    print(
        f"event mix: 40% RFC 5424 + SD, 40% RFC 3164, 15% RFC 5424 minimal, 5% not syslog; "
        f"mean {mean:.0f} bytes; batch {args.batch}; pinned to one core"
    )
    toolkit_rate, direct_rate = bench_cpu(lines, args.batch)
    print(f"[cpu, no I/O] parse+normalise+bulk-encode, {args.events:,} events:")
    print(f"  toolkit {toolkit_rate:>10,.0f} events/s   (target >= 50,000)")
    print(f"  direct  {direct_rate:>10,.0f} events/s   (regex + json.dumps per line)")
    print(f"  ratio   {toolkit_rate / direct_rate:>10.2f}x")
    if args.skip_e2e:
        return
    peer = None
    if args.peer_kafka and args.peer_es:
        bootstrap, es_url = args.peer_kafka, args.peer_es
    else:
        peer, bootstrap, es_url, data = start_peer()
    try:
        e2e_lines = make_lines(args.e2e_events)
        toolkit_e2e = bench_e2e_toolkit(bootstrap, es_url, e2e_lines, args.batch)
        direct_e2e = bench_e2e_direct(bootstrap, es_url, e2e_lines, args.batch)
        print(f"[end to end, local single-node peer] Kafka -> indexer -> Elasticsearch, {args.e2e_events:,} events:")
        print(f"  toolkit {toolkit_e2e:>10,.0f} events/s   (create ops, commit after durable indexing)")
        print(f"  direct  {direct_e2e:>10,.0f} events/s   (json + elasticsearch.helpers.bulk, auto-commit)")
        print(f"  ratio   {toolkit_e2e / direct_e2e:>10.2f}x")
    finally:
        if peer is not None:
            peer.terminate()
            peer.wait(20)
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
