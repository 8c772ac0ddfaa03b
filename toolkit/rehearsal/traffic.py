"""Simulated live load on the simulated platform, for rehearsals: a Kafka probe producer and consumer with sequence
numbers, syslog senders (UDP and TCP) through the receivers, the indexers into Elasticsearch, and search probes.

SIMULATED. What it models, second by second, from the platform's own state:
- Probe producer (acks=all, idempotent): messages wait in the producer until their partition has a leader and at least
  min.insync.replicas in sync; then they are acknowledged and appended in sequence. Messages that cannot be written
  within the delivery timeout are produce errors (never acknowledged, so never counted lost).
- Probe consumer: reads each partition while it has a leader and checks every sequence: a gap that is not an expired
  (errored) range is a lost message, a repeat is a duplicate, a step back is out of order.
- Syslog senders: half the events over UDP (fire and forget: sent while no receiver is Ready, they are gone, as with
  any plain UDP syslog), half over TCP (refused connections are retried by the sender, as rsyslog does).
- Receivers accept what arrives while at least one is Ready, and hand it to Kafka when the events topic is writable.
- Indexers drain the backlog at their capacity (half of it while Elasticsearch is red: bulk items for unavailable
  shards fail and are retried); document ids are Kafka coordinates, so a retry never stores twice.
- Search probes fail while Elasticsearch is red.
Nothing here is measured on a real cluster; rehearsals on `local` and `kind` use real clients instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toolkit.rehearsal.live import Outage

if TYPE_CHECKING:
    from toolkit.targets.sim.world import World

PROBE_TOPIC = "security-events"


@dataclass
class Traffic:
    rate: float  # probe messages per second
    syslog_rate: float  # syslog events per second (half UDP, half TCP)
    delivery_timeout: float = 120.0
    running: bool = True
    # probe producer and consumer
    next_seq: dict[str, int] = field(default_factory=dict)  # partition -> next sequence to produce
    pending: dict[str, list[list[float]]] = field(default_factory=dict)  # partition -> [[created_at, first, count]]
    log: dict[str, list[list[int]]] = field(default_factory=dict)  # partition -> [[first, count]] acknowledged
    expired: dict[str, list[list[int]]] = field(default_factory=dict)  # partition -> [[first, count]] errored
    read_upto: dict[str, int] = field(default_factory=dict)  # partition -> index into log
    expected: dict[str, int] = field(default_factory=dict)  # partition -> next sequence the consumer expects
    carry: float = 0.0
    produced: int = 0
    acknowledged: int = 0
    produce_errors: int = 0
    consumed: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    # syslog path
    syslog_carry: float = 0.0
    sent_udp: int = 0
    sent_tcp: int = 0
    tcp_refused: int = 0
    udp_unreceived: int = 0
    tcp_backlog: int = 0
    accepted: int = 0
    receiver_buffer: int = 0
    in_kafka: int = 0
    indexed: float = 0.0
    search_probes: int = 0
    search_errors: int = 0
    # availability
    produce_outage: Outage = field(default_factory=Outage)
    search_outage: Outage = field(default_factory=Outage)
    ingest_outage: Outage = field(default_factory=Outage)
    ever_red: bool = False
    timeline: list[dict[str, Any]] = field(default_factory=list)

    def stop(self) -> None:
        self.running = False

    @property
    def backlog(self) -> float:
        return self.in_kafka - self.indexed

    @property
    def drained(self) -> bool:
        pending = sum(e[2] for entries in self.pending.values() for e in entries)
        unread = any(self.read_upto.get(p, 0) < len(ranges) for p, ranges in self.log.items())
        return (
            not self.running
            and pending == 0
            and not unread
            and self.tcp_backlog == 0
            and self.receiver_buffer == 0
            and self.backlog < 1
        )

    # ------------------------------------------------------------------ one simulated second

    def tick(self, world: World, dt: float) -> None:
        partitions = [p for p in world.kafka.partitions if p.topic == PROBE_TOPIC] or world.kafka.partitions
        min_isr = {t.name: t.min_insync_replicas for t in world.kafka.topics}

        def writable(p: Any) -> bool:
            return p.leader is not None and len(p.isr) >= min_isr.get(p.topic, 1)

        now = world.now
        acked_before, indexed_before = self.acknowledged, self.indexed
        # probe producer
        if self.running and partitions:
            self.carry += self.rate * dt
            n, self.carry = int(self.carry), self.carry - int(self.carry)
            for i in range(n):
                p = partitions[(self.produced + i) % len(partitions)]
                key = p.name if hasattr(p, "name") else f"{p.topic}-{p.partition}"
                seq = self.next_seq.get(key, 0)
                self.next_seq[key] = seq + 1
                entries = self.pending.setdefault(key, [])
                if entries and entries[-1][0] == now and entries[-1][1] + entries[-1][2] == seq:
                    entries[-1][2] += 1
                else:
                    entries.append([now, seq, 1])
            self.produced += n
        blocked_with_pending = False
        for p in partitions:
            key = f"{p.topic}-{p.partition}"
            entries = self.pending.get(key, [])
            if not entries:
                continue
            if writable(p):
                for _created, first, count in entries:
                    self.log.setdefault(key, []).append([int(first), int(count)])
                    self.acknowledged += int(count)
                entries.clear()
            else:
                blocked_with_pending = True
                keep = []
                for created, first, count in entries:
                    if now - created > self.delivery_timeout:
                        self.expired.setdefault(key, []).append([int(first), int(count)])
                        self.produce_errors += int(count)
                    else:
                        keep.append([created, first, count])
                self.pending[key] = keep
        self.produce_outage.tick(not blocked_with_pending, dt)
        # probe consumer
        for p in partitions:
            key = f"{p.topic}-{p.partition}"
            if p.leader is None:
                continue
            ranges = self.log.get(key, [])
            i = self.read_upto.get(key, 0)
            while i < len(ranges):
                self._check(key, ranges[i][0], ranges[i][1])
                i += 1
            self.read_upto[key] = i
        # syslog senders and receivers
        receivers = sum(
            1
            for pod in world.pods.values()
            if pod.ready
            and world.workloads[pod.workload].component == "workers"
            and world.workloads[pod.workload].role == "receiver"
        )
        if self.running:
            self.syslog_carry += self.syslog_rate * dt
            n, self.syslog_carry = int(self.syslog_carry), self.syslog_carry - int(self.syslog_carry)
            udp, tcp = n // 2, n - n // 2
            self.sent_udp += udp
            self.sent_tcp += tcp
            if receivers:
                self.accepted += udp
                self.receiver_buffer += udp
            else:
                self.udp_unreceived += udp
            self.tcp_backlog += tcp
        if receivers and self.tcp_backlog:
            self.accepted += self.tcp_backlog
            self.receiver_buffer += self.tcp_backlog
            self.tcp_backlog = 0
        elif self.tcp_backlog:
            self.tcp_refused += 1
        self.ingest_outage.tick(receivers > 0 or not self.running, dt)
        if self.receiver_buffer and any(writable(p) for p in partitions):
            self.in_kafka += self.receiver_buffer
            self.receiver_buffer = 0
        # indexers and Elasticsearch
        health = world.elasticsearch.health().value
        self.ever_red = self.ever_red or health == "red"
        indexers = sum(
            1
            for pod in world.pods.values()
            if pod.ready
            and world.workloads[pod.workload].component == "workers"
            and world.workloads[pod.workload].role == "indexer"
        )
        capacity = indexers * world.params.indexer_capacity * (0.5 if health == "red" else 1.0) * dt
        self.indexed += min(self.backlog, capacity)
        world.workers.lag = self.backlog
        self.search_probes += 1
        search_ok = health != "red"
        if not search_ok:
            self.search_errors += 1
        self.search_outage.tick(search_ok, dt)
        self.timeline.append(
            {
                "t": now,
                "acked_per_s": (self.acknowledged - acked_before) / dt,
                "indexed_per_s": (self.indexed - indexed_before) / dt,
                "lag": round(self.backlog),
                "health": health,
                "produce_ok": not blocked_with_pending,
                "search_ok": search_ok,
                "ingest_ok": receivers > 0,
            }
        )

    def _check(self, key: str, first: int, count: int) -> None:
        expected = self.expected.get(key, 0)
        # sequences that expired in the producer were never acknowledged: skip over them
        for e_first, e_count in sorted(self.expired.get(key, [])):
            if e_first == expected:
                expected = e_first + e_count
        if first > expected:
            self.lost += first - expected
        elif first < expected:
            overlap = min(count, expected - first)
            self.duplicated += overlap
            self.out_of_order += 1
        self.consumed += count
        self.expected[key] = max(expected, first + count)

    def stored(self) -> int:
        return int(self.indexed)

    def summary(self) -> dict[str, Any]:
        sent = self.sent_udp + self.sent_tcp
        unconsumed = self.acknowledged - self.consumed
        lost_ingest = self.accepted - self.stored()
        return {
            "produced": self.produced,
            "acknowledged": self.acknowledged,
            "consumed": self.consumed,
            "lost_acknowledged": self.lost + max(0, unconsumed),
            "duplicated": self.duplicated,
            "out_of_order": self.out_of_order,
            "produce_errors": self.produce_errors,
            "syslog_sent": sent,
            "syslog_sent_udp": self.sent_udp,
            "syslog_sent_tcp": self.sent_tcp,
            "syslog_tcp_refused_seconds": self.tcp_refused,
            "syslog_udp_unreceived": self.udp_unreceived,
            "accepted": self.accepted,
            "stored": self.stored(),
            "lost_accepted": max(0, lost_ingest),
            "search_probes": self.search_probes,
            "search_errors": self.search_errors,
            "ever_red": self.ever_red,
            "max_unavailable_seconds": {
                "produce": self.produce_outage.longest,
                "search": self.search_outage.longest,
                "ingest": self.ingest_outage.longest,
            },
        }
