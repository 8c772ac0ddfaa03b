"""Worker CPU paths next to naive baselines doing the same work in the same run, on one core.

The two NAIVE BASELINES below were written first, in a commit of their own, and are not changed afterwards:
- naive receiver: split the TCP byte stream on LF, take the hostname with one regex, and make the same producer
  call as the receiver (same topic, value, key, reception headers and delivery callback) on the same stub producer;
- naive indexer: a straightforward regex parse of each Kafka record into the same ECS fields the indexer writes,
  then `elasticsearch.helpers.expand_action` + `json.dumps` per event, joined into one NDJSON `_bulk` body.

Run: .venv/bin/python benchmarks/worker_bench.py
"""

from __future__ import annotations

import argparse
import json
import os
import re
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


def run_naive_receiver(reads: list[bytes]) -> tuple[float, int]:
    producer = StubProducer()
    receiver = NaiveReceiver(producer, ("10.1.2.3", 40000), "receiver-0")
    started = time.process_time()
    for chunk in reads:
        receiver.data_received(chunk)
    return time.process_time() - started, producer.produced


def run_naive_indexer(records: list[tuple[str, int, int, bytes, dict[str, bytes]]], batch: int) -> tuple[float, int]:
    started = time.process_time()
    size = 0
    for start in range(0, len(records), batch):
        size += len(naive_bulk_body(records[start : start + batch], INDEX))
    return time.process_time() - started, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2_000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    lines = make_lines(args.events)
    records = [(TOPIC, n % 12, n, line, RECEPTION_HEADERS) for n, line in enumerate(lines)]
    seconds, produced = run_naive_receiver(tcp_reads(lines))
    print(f"naive receiver: {produced / seconds:,.0f} events/s")
    seconds, _ = run_naive_indexer(records, args.batch)
    print(f"naive indexer:  {len(records) / seconds:,.0f} events/s")


if __name__ == "__main__":
    main()
