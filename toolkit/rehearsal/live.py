"""Live load accounting for rehearsals on real clusters (`local`, `kind`): what was sent, acknowledged, read, accepted
and stored, turned into the SAME summary and timeline keys as the simulated `Traffic`, so `judge` and report.py work
unchanged. Pure bookkeeping: the threads that talk to Kafka, Elasticsearch and the receivers are adapters
(toolkit.rehearsal.liveload) and feed these ledgers; nothing here imports a client library.

Probe path (Kafka)
------------------
The producer (idempotent, acks=all) writes `<run id> <partition> <sequence>` to an explicit partition with a
per-partition sequence 0, 1, 2, ... `ProbeLedger.acknowledged` holds what the delivery callbacks confirmed,
`errored` what they reported failed. The consumer (its own group, from the earliest offset) reads every message of
the run and checks each partition's sequence:
- a sequence read twice is a duplicate; a sequence lower than the highest read so far (not read before) is a step
  back (out of order);
- lost = acknowledged sequences never read (gaps in the acknowledged sequences at the end of the drain).
Sequences that errored and were never acknowledged are not lost: the producer was told.

Syslog path (receivers -> Kafka -> indexers -> Elasticsearch)
-------------------------------------------------------------
Each event is RFC 5424 with HOSTNAME = the run tag and MSGID = `<u|t><sequence>` (the sender's event id), so
Elasticsearch can count the run (`host.name`) and find repeats (`log.syslog.msgid`).
Accepted (decided here, documented): plain syslog gives the sender no acknowledgement, and the receivers' `accepted`
counters die with a killed process and restart at zero with a new one, so neither is a sound ledger across a roll.
A receiver counts an event accepted exactly when Kafka acknowledged it, so the ledger reads Kafka itself: a tap
consumer (own group) reads the events topic and records every record of this run. accepted = those records.
- stored = Elasticsearch `_count` of `host.name: <run tag>` after the drain;
- lost_accepted = accepted records - (stored - stored repeats): accepted events that never reached Elasticsearch;
- duplicated (syslog) = every extra copy of a MSGID in Elasticsearch (terms aggregation, min_doc_count 2), which
  includes documents stored twice under one `event.id` (checked separately, also min_doc_count 2);
- syslog_udp_unreceived = UDP events sent whose id never reached Kafka (no receiver took them: none listening, a
  full socket buffer or in-flight buffer);
- TCP: the sender keeps what it could not write and re-sends it after reconnecting (a failed write leaves at most
  a partial octet-counted frame, which the receiver never parses, so re-sending does not duplicate). Events written
  into a connection that a receiver closed before reading them are reported as `tcp_written_not_accepted`
  (details); the sim's summary has no such key, so run.py adds it as a reason of its own.
Availability per path is the longest run of failing one-second samples (Outage).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

RUN_TAG_PREFIX = "rh"


@dataclass
class Outage:
    """Longest and current run of seconds during which a path did not work."""

    current: float = 0.0
    longest: float = 0.0

    def tick(self, ok: bool, dt: float) -> None:
        self.current = 0.0 if ok else self.current + dt
        self.longest = max(self.longest, self.current)


def probe_value(run_tag: str, partition: int, sequence: int) -> bytes:
    return f"{run_tag} {partition} {sequence}".encode()


def parse_probe(value: bytes, run_tag: str) -> tuple[int, int] | None:
    """(partition, sequence) of one probe message of this run, None for anything else."""
    parts = value.split(b" ")
    if len(parts) != 3 or parts[0] != run_tag.encode() or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return int(parts[1]), int(parts[2])


def syslog_line(run_tag: str, transport: str, sequence: int, timestamp: str) -> bytes:
    """One RFC 5424 event of the run: HOSTNAME = run tag, MSGID = sender event id."""
    event_id = f"{transport[0]}{sequence}"
    return f"<134>1 {timestamp} {run_tag} rehearsal - {event_id} - rehearsal {transport} event {sequence}".encode()


def parse_syslog_id(value: bytes, run_tag: str) -> str | None:
    """The sender event id (MSGID) of one Kafka record of this run, None for anything else."""
    parts = value.split(b" ", 6)
    if len(parts) < 6 or parts[2] != run_tag.encode():
        return None
    return parts[5].decode("ascii", errors="replace")


@dataclass
class ProbeLedger:
    produced: int = 0
    acknowledged: dict[int, set[int]] = field(default_factory=dict)
    errored: int = 0
    seen: dict[int, set[int]] = field(default_factory=dict)
    highest: dict[int, int] = field(default_factory=dict)
    consumed: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ack(self, partition: int, sequence: int) -> None:
        with self.lock:
            self.acknowledged.setdefault(partition, set()).add(sequence)

    def error(self) -> None:
        with self.lock:
            self.errored += 1

    def read(self, partition: int, sequence: int) -> None:
        with self.lock:
            self.consumed += 1
            seen = self.seen.setdefault(partition, set())
            if sequence in seen:
                self.duplicated += 1
                return
            if sequence < self.highest.get(partition, -1):
                self.out_of_order += 1
            seen.add(sequence)
            self.highest[partition] = max(sequence, self.highest.get(partition, -1))

    @property
    def acknowledged_total(self) -> int:
        with self.lock:
            return sum(len(s) for s in self.acknowledged.values())

    def unread(self) -> int:
        """Acknowledged sequences not read (yet): at the end of the drain, the lost ones."""
        with self.lock:
            return sum(len(acked - self.seen.get(p, set())) for p, acked in self.acknowledged.items())


@dataclass
class SyslogLedger:
    sent: dict[str, int] = field(default_factory=lambda: {"udp": 0, "tcp": 0})
    tcp_refused_seconds: set[int] = field(default_factory=set)
    tcp_resent: int = 0
    tcp_reconnects_on_close: int = 0  # the receiver half-closed (draining) and the sender moved on
    accepted_records: int = 0
    accepted_ids: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def sent_one(self, transport: str) -> None:
        with self.lock:
            self.sent[transport] += 1

    def refused(self, second: int) -> None:
        with self.lock:
            self.tcp_refused_seconds.add(second)

    def accepted(self, event_id: str) -> None:
        with self.lock:
            self.accepted_records += 1
            self.accepted_ids.add(event_id)

    def accepted_of(self, transport: str) -> int:
        with self.lock:
            return sum(1 for i in self.accepted_ids if i.startswith(transport[0]))


@dataclass(frozen=True)
class StoreCheck:
    """What Elasticsearch holds for the run after the drain."""

    stored: int
    repeated_event_ids: int  # extra copies of a MSGID (sender event id)
    repeated_document_ids: int  # extra copies of an event.id (Kafka coordinates)
    repeat_buckets_truncated: bool


def summary(
    probe: ProbeLedger,
    syslog: SyslogLedger,
    store: StoreCheck,
    search_probes: int,
    search_errors: int,
    ever_red: bool,
    outages: dict[str, Outage],
) -> dict[str, Any]:
    """The sim's summary keys (toolkit.rehearsal.traffic.Traffic.summary), from the live ledgers."""
    sent_udp, sent_tcp = syslog.sent["udp"], syslog.sent["tcp"]
    distinct_stored = store.stored - store.repeated_event_ids
    return {
        "produced": probe.produced,
        "acknowledged": probe.acknowledged_total,
        "consumed": probe.consumed,
        "lost_acknowledged": probe.unread(),
        "duplicated": probe.duplicated + store.repeated_event_ids,
        "out_of_order": probe.out_of_order,
        "produce_errors": probe.errored,
        "syslog_sent": sent_udp + sent_tcp,
        "syslog_sent_udp": sent_udp,
        "syslog_sent_tcp": sent_tcp,
        "syslog_tcp_refused_seconds": len(syslog.tcp_refused_seconds),
        "syslog_udp_unreceived": max(0, sent_udp - syslog.accepted_of("udp")),
        "accepted": syslog.accepted_records,
        "stored": store.stored,
        "lost_accepted": max(0, len(syslog.accepted_ids) - distinct_stored),
        "search_probes": search_probes,
        "search_errors": search_errors,
        "ever_red": ever_red,
        "max_unavailable_seconds": {path: outage.longest for path, outage in outages.items()},
    }


def details(syslog: SyslogLedger, store: StoreCheck, drain_seconds: float, load_seconds: float) -> dict[str, Any]:
    """Live measurements beyond the sim's keys (the report's `summary` keeps exactly the sim's)."""
    return {
        "tcp_written_not_accepted": max(0, syslog.sent["tcp"] - syslog.accepted_of("tcp")),
        "tcp_resent": syslog.tcp_resent,
        "tcp_reconnects_on_close": syslog.tcp_reconnects_on_close,
        "repeated_document_ids": store.repeated_document_ids,
        "repeat_buckets_truncated": store.repeat_buckets_truncated,
        "drain_seconds": round(drain_seconds, 1),
        "load_seconds": round(load_seconds, 1),
    }
