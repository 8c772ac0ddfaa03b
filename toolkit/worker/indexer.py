"""The indexer: Kafka consumer group -> ECS documents -> Elasticsearch `_bulk`, each event stored exactly
once.

Loop (one thread; Kafka rebalance callbacks run inside `consume`, i.e. between batches, never during one):
1. fetch up to `batch_size` records (waiting at most `batch_max_wait_ms`);
2. per partition, make sure an index lease covers the batch's offsets (`toolkit.worker.delivery`): a new or
   extended lease is committed to Kafka, synchronously, before anything is written;
3. normalise every record (`toolkit.worker.ecs`; a record that cannot be parsed is indexed raw and tagged),
   encode `create` operations with id `<topic>-<partition>-<offset>` into the leased concrete index;
4. send `_bulk`; per item: stored, 409 already stored, 429/5xx retried (only those items) with exponential
   backoff, other 4xx dead-lettered (the raw record, its headers and the reason, to the dead-letter topic,
   acknowledged by Kafka before going on); a failed request as a whole is retried whole;
5. commit offset last+1 per partition (with the lease in the metadata) only when every item is stored,
   already stored or dead-lettered. So a crash at any point redelivers from the last commit, and redelivered
   events meet their own ids in their leased index: 409, never a duplicate.

Fetching: while a batch is written, and while nothing comes (after `FETCH_GRACE_SECONDS` of nothing), the assigned
partitions are paused; an idle indexer checks the high watermarks every `IDLE_CHECK_SECONDS` instead of fetching.
A broker that answers empty fetches at once (the single-node peer) otherwise costs half a core in each process.

SIGTERM: stop fetching, finish the batch in hand (retries included) and commit it, leave the group, exit 0.
If the batch cannot finish within `drain_seconds` it is abandoned uncommitted (it will be redelivered).

Alias mode rollover: when the template's `_meta` says mode `alias` (no ILM), every `rollover_check_seconds`
the indexer asks `_rollover` with the recorded conditions. The write index is re-read every
`alias_refresh_seconds`; it only affects NEW leases.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from elasticsearch import ApiError, Elasticsearch, TransportError

from toolkit.indices import rollover_from_meta, template_name
from toolkit.worker.config import WorkerConfig
from toolkit.worker.delivery import (
    IndexLease,
    Outcome,
    backoff_seconds,
    classify,
    item_error_reason,
    lease_for_batch,
)
from toolkit.worker.ecs import KafkaRecord, create_operation
from toolkit.worker.observability import Heartbeat, ProbeServer, WorkerMetrics

log = logging.getLogger("toolkit.worker.indexer")

LAG_REFRESH_SECONDS = 5.0
IDLE_CHECK_SECONDS = 0.25
FETCH_GRACE_SECONDS = 2.0  # fetch at least this long after data, an assignment or a resume before pausing


@dataclass(slots=True)
class _Item:
    record: KafkaRecord
    index: str
    doc_id: str
    operation: bytes


def _failure_reporter(
    failures: list[tuple[_Item, int, str]],
) -> Callable[[tuple[_Item, int, str]], Callable[[KafkaError | None, Message], None]]:
    """Delivery callbacks that append their entry to `failures` when Kafka refuses it."""

    def report(entry: tuple[_Item, int, str]) -> Callable[[KafkaError | None, Message], None]:
        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(entry)

        return delivered

    return report


def _header_bytes(headers: Any) -> dict[str, bytes]:
    pairs = headers.items() if isinstance(headers, dict) else (headers or ())
    return {name: value if isinstance(value, bytes) else str(value or "").encode("utf-8") for name, value in pairs}


class BatchAbandoned(Exception):
    """The batch cannot be completed now (drain deadline, commit refused); it stays uncommitted."""


def elasticsearch_client(config: WorkerConfig) -> Elasticsearch:
    """The 8.x client, with its own retries off: the indexer decides per item what to retry."""
    assert config.elasticsearch_url is not None
    options: dict[str, Any] = {
        "max_retries": 0,
        "retry_on_status": (),
        "retry_on_timeout": False,
        "request_timeout": 120,
    }
    if config.elasticsearch_username:
        options["basic_auth"] = (config.elasticsearch_username, config.elasticsearch_secret() or "")
    if config.elasticsearch_ca_file is not None:
        options["ca_certs"] = str(config.elasticsearch_ca_file)
    return Elasticsearch(config.elasticsearch_url, **options)


class Indexer:
    def __init__(
        self,
        config: WorkerConfig,
        metrics: WorkerMetrics,
        es: Elasticsearch,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.es = es
        self.sleep = sleep
        self.clock = clock
        self.heartbeat = Heartbeat()
        self.stopping = threading.Event()
        self.drain_deadline = float("inf")
        self.leases: dict[tuple[str, int], IndexLease | None] = {}
        self.committed: dict[tuple[str, int], int] = {}
        self.write_index: str | None = None
        self.rollover_conditions: dict[str, Any] | None = None
        self.es_ok = False
        self.es_reason = "Elasticsearch not checked yet"
        self._next_alias_refresh = 0.0
        self._next_rollover_check = 0.0
        self._next_lag_refresh = 0.0
        self._zone = config.zone
        self._carry: list[Message] = []  # messages taken while idle, processed by the next loop turn
        self._assignment_changed = False
        self._fetch_until = 0.0
        self.consumer = Consumer(
            {
                **config.kafka_client_settings(),
                "group.id": config.consumer_group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": config.session_timeout_ms,
                "heartbeat.interval.ms": max(500, config.session_timeout_ms // 5),
                "max.poll.interval.ms": config.max_poll_interval_ms,
                "client.id": f"toolkit-indexer-{config.observer_hostname}",
                **({"group.instance.id": config.group_instance_id} if config.group_instance_id else {}),
            }
        )
        self.dead_letters = Producer(
            {
                **config.kafka_client_settings(),
                "enable.idempotence": True,
                "acks": "all",
                "compression.type": config.kafka_compression,
                "client.id": f"toolkit-indexer-dlq-{config.observer_hostname}",
            }
        )

    # --- readiness and signals ------------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, str]:
        if self.stopping.is_set():
            return False, "draining (SIGTERM received)"
        if not self.es_ok:
            return False, self.es_reason
        return True, "ok"

    def request_stop(self, signum: int = signal.SIGTERM, _frame: FrameType | None = None) -> None:
        if not self.stopping.is_set():
            self.drain_deadline = self.clock() + self.config.drain_seconds
            self.stopping.set()
            log.info("stop requested: finishing the batch in hand", extra={"signal": signum})

    # --- Kafka group membership -----------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assignment_changed = True
        committed = consumer.committed(partitions, timeout=30)
        for tp in committed:
            key = (tp.topic, tp.partition)
            self.leases[key] = IndexLease.decode(tp.metadata)
            if tp.offset >= 0:
                self.committed[key] = tp.offset
        log.info(
            "partitions assigned",
            extra={"partitions": [f"{tp.topic}-{tp.partition}@{tp.offset}" for tp in committed]},
        )

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assignment_changed = True
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self.leases.pop(key, None)
            self.committed.pop(key, None)
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
        log.info("partitions revoked", extra={"partitions": [f"{tp.topic}-{tp.partition}" for tp in partitions]})

    # --- Elasticsearch side ---------------------------------------------------------------------------------
    def refresh_write_index(self) -> None:
        alias = self.config.write_alias
        try:
            aliases = self.es.indices.get_alias(name=alias).body
            template = self.es.indices.get_index_template(name=template_name(alias)).body
        except ApiError as exc:
            self.es_ok = False
            self.es_reason = (
                f"write alias {alias!r} or its template not found ({exc.meta.status}): "
                "run `toolkit es apply-templates --env <env>` first"
                if exc.meta.status == 404
                else f"Elasticsearch answered {exc.meta.status}: {exc.message}"
            )
            log.error("cannot read the write alias", extra={"reason": self.es_reason})
            return
        except TransportError as exc:
            self.es_ok, self.es_reason = False, f"Elasticsearch does not answer: {exc.message}"
            log.error("cannot read the write alias", extra={"reason": self.es_reason})
            return
        write_index = None
        for index, entry in aliases.items():
            flag = entry.get("aliases", {}).get(alias, {}).get("is_write_index")
            if flag or (flag is None and len(aliases) == 1):
                write_index = index
        templates = template.get("index_templates") or []
        rollover = rollover_from_meta(templates[0]["index_template"].get("_meta")) if templates else None
        self.rollover_conditions = rollover[1] if rollover is not None and rollover[0] == "alias" else None
        if write_index != self.write_index:
            log.info("write index", extra={"alias": alias, "index": write_index})
        self.write_index = write_index
        self.es_ok = write_index is not None
        self.es_reason = "ok" if write_index else f"alias {alias!r} has no write index"

    def _maybe_rollover(self) -> None:
        if self.rollover_conditions is None:
            return
        try:
            answer = self.es.indices.rollover(alias=self.config.write_alias, conditions=self.rollover_conditions)
        except (ApiError, TransportError) as exc:
            log.warning("rollover check failed", extra={"error": str(exc)})
            return
        if answer.get("rolled_over"):
            self.metrics.rollovers.inc()
            log.info(
                "rolled over",
                extra={"old_index": answer.get("old_index"), "new_index": answer.get("new_index")},
            )
            self.refresh_write_index()

    def _periodic(self) -> None:
        now = self.clock()
        if now >= self._next_alias_refresh:
            self._next_alias_refresh = now + self.config.alias_refresh_seconds
            self.refresh_write_index()
        if now >= self._next_rollover_check:
            self._next_rollover_check = now + self.config.rollover_check_seconds
            self._maybe_rollover()
        if now >= self._next_lag_refresh:
            self._next_lag_refresh = now + LAG_REFRESH_SECONDS
            self._refresh_lag()

    def _refresh_lag(self) -> None:
        for (topic, partition), committed in list(self.committed.items()):
            try:
                _low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=2)
            except KafkaException:
                continue
            self.metrics.consumer_lag.labels(topic, str(partition)).set(max(0, high - committed))

    # --- one batch ------------------------------------------------------------------------------------------
    def _leases_for(self, ranges: dict[tuple[str, int], tuple[int, int]]) -> dict[tuple[str, int], IndexLease]:
        """Leases covering every partition's range; new/extended ones are committed before returning."""
        while True:
            chosen: dict[tuple[str, int], IndexLease] = {}
            to_commit: list[TopicPartition] = []
            waiting = False
            for key, (first, last) in ranges.items():
                lease, must_commit = lease_for_batch(
                    self.leases.get(key), first, last, self.write_index, self.config.pin_lease_offsets
                )
                if lease is None:
                    waiting = True
                    break
                chosen[key] = lease
                if must_commit:
                    to_commit.append(TopicPartition(key[0], key[1], first, metadata=lease.encode()))
            if not waiting:
                break
            self._check_drain()
            log.error("no write index known: waiting", extra={"reason": self.es_reason})
            self.sleep(self.config.alias_refresh_seconds)
            self.refresh_write_index()
        if to_commit:
            try:
                self.consumer.commit(offsets=to_commit, asynchronous=False)
            except KafkaException as exc:
                raise BatchAbandoned(f"lease commit refused: {exc}") from exc
            for tp in to_commit:
                self.leases[(tp.topic, tp.partition)] = chosen[(tp.topic, tp.partition)]
                self.committed[(tp.topic, tp.partition)] = tp.offset
            self.metrics.index_pins.inc(len(to_commit))
        return chosen

    def _check_drain(self) -> None:
        if self.stopping.is_set() and self.clock() > self.drain_deadline:
            raise BatchAbandoned("drain deadline passed")

    def _to_items(self, records: list[KafkaRecord], leases: dict[tuple[str, int], IndexLease]) -> list[_Item]:
        items = []
        failures = 0
        zone = self._zone
        for record in records:
            index = leases[(record.topic, record.partition)].index
            doc_id, operation, failed = create_operation(record, index, zone)
            failures += failed
            items.append(_Item(record, index, doc_id, operation))
        if failures:
            self.metrics.parse_failures.inc(failures)
        return items

    def _bulk(self, items: list[_Item]) -> tuple[list[_Item], list[tuple[_Item, int, str]]]:
        """Send items once -> (items to retry, items to dead-letter with status and reason)."""
        try:
            body: Any = b"".join(item.operation for item in items)  # pre-encoded NDJSON, sent as is
            answer = self.es.bulk(operations=body).body
        except ApiError as exc:
            status = exc.meta.status
            self.metrics.failed.labels(status=str(status)).inc(len(items))
            level = logging.WARNING if status == 429 or status >= 500 else logging.ERROR
            log.log(level, "bulk request failed: retrying", extra={"status": status, "events": len(items)})
            return items, []
        except TransportError as exc:
            self.metrics.failed.labels(status="0").inc(len(items))
            log.warning("bulk request got no answer: retrying", extra={"error": str(exc), "events": len(items)})
            self.es_ok, self.es_reason = False, f"Elasticsearch does not answer: {exc.message}"
            return items, []
        self.es_ok = True
        retry: list[_Item] = []
        dead: list[tuple[_Item, int, str]] = []
        stored = already = 0
        for item, result in zip(items, answer["items"], strict=True):
            outcome_body = next(iter(result.values()))
            status = int(outcome_body.get("status", 0))
            outcome = classify(status)
            if outcome is Outcome.STORED:
                stored += 1
            elif outcome is Outcome.ALREADY_STORED:
                already += 1
            elif outcome is Outcome.RETRY:
                self.metrics.failed.labels(status=str(status)).inc()
                retry.append(item)
            else:
                dead.append((item, status, item_error_reason(outcome_body)))
        self.metrics.indexed.inc(stored)
        self.metrics.already_stored.inc(already)
        return retry, dead

    def _dead_letter(self, dead: list[tuple[_Item, int, str]]) -> None:
        """Produce every dead letter and wait until Kafka acknowledged all of them (retrying failures)."""
        pending = dead
        attempt = 0
        while pending:
            failures: list[tuple[_Item, int, str]] = []
            report = _failure_reporter(failures)

            for entry in pending:
                item, status, reason = entry
                record = item.record
                headers: list[tuple[str, str | bytes | None]] = list(record.headers.items())
                headers += [
                    ("dlq_reason", reason.encode("utf-8", errors="replace")),
                    ("dlq_status", str(status).encode()),
                    ("dlq_source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
                    ("dlq_index", item.index.encode()),
                    ("dlq_document_id", item.doc_id.encode()),
                ]
                self.dead_letters.produce(
                    self.config.dead_letter_topic,
                    value=record.value,
                    key=item.doc_id,
                    headers=headers,
                    on_delivery=report(entry),
                )
            remaining = self.dead_letters.flush(60)
            if remaining:
                raise BatchAbandoned(f"{remaining} dead letters not acknowledged by Kafka within 60 s")
            for _item, status, reason in pending:
                if all(_item is not failed[0] for failed in failures):
                    self.metrics.dead_lettered.labels(reason=reason.split(":", 1)[0][:64]).inc()
                    log.warning(
                        "event dead-lettered",
                        extra={"document_id": _item.doc_id, "status": status, "reason": reason[:300]},
                    )
            pending = failures
            if pending:
                self._check_drain()
                self.sleep(backoff_seconds(attempt, self.config.retry_initial_ms, self.config.retry_max_ms))
                attempt += 1

    def process_batch(self, records: list[KafkaRecord]) -> None:
        started = self.clock()
        ranges: dict[tuple[str, int], tuple[int, int]] = {}
        for record in records:
            key = (record.topic, record.partition)
            first, last = ranges.get(key, (record.offset, record.offset))
            ranges[key] = (min(first, record.offset), max(last, record.offset))
        leases = self._leases_for(ranges)
        pending = self._to_items(records, leases)
        attempt = 0
        while pending:
            retry, dead = self._bulk(pending)
            if dead:
                self._dead_letter(dead)
            pending = retry
            if pending:
                self._check_drain()
                self.heartbeat.beat()
                self.sleep(backoff_seconds(attempt, self.config.retry_initial_ms, self.config.retry_max_ms))
                attempt += 1
        offsets = [
            TopicPartition(topic, partition, last + 1, metadata=leases[(topic, partition)].encode())
            for (topic, partition), (_first, last) in ranges.items()
        ]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # everything is stored; a redelivery of this batch will meet 409s in the same leased indices
            log.warning("offset commit failed after indexing", extra={"error": str(exc)})
        else:
            for tp in offsets:
                self.committed[(tp.topic, tp.partition)] = tp.offset
        self.metrics.batch_events.observe(len(records))
        self.metrics.batch_seconds.observe(self.clock() - started)

    def _rewind(self, records: list[KafkaRecord]) -> None:
        firsts: dict[tuple[str, int], int] = {}
        for record in records:
            key = (record.topic, record.partition)
            firsts[key] = min(firsts.get(key, record.offset), record.offset)
        for (topic, partition), offset in firsts.items():
            with contextlib.suppress(KafkaException):
                self.consumer.seek(TopicPartition(topic, partition, offset))

    # --- idle: no fetch storm ------------------------------------------------------------------------------
    def _idle(self) -> None:
        """Nothing to consume: stop fetching until a partition has something.

        A real broker holds an empty Fetch for `fetch.wait.max.ms`; a broker that answers at once (the single-node
        peer does, in 0.03 ms) makes librdkafka fetch thousands of times a second, which is half a core here and as
        much again in the broker. So an idle indexer pauses its partitions and every `IDLE_CHECK_SECONDS` compares
        its positions with the high watermarks (one ListOffsets request per partition), still serving rebalances
        and the periodic Elasticsearch checks. New data costs at most that interval of extra latency. It only
        pauses after `FETCH_GRACE_SECONDS` of nothing (after data, an assignment or a resume): a partition paused
        before its start offset is known takes about a second to fetch again once resumed."""
        assignment = self.consumer.assignment()
        if not assignment:
            return
        try:
            self.consumer.pause(assignment)
        except KafkaException:
            return
        self._assignment_changed = False
        try:
            while not self.stopping.wait(IDLE_CHECK_SECONDS):
                self.heartbeat.beat()
                self._periodic()
                # paused partitions are not fetched: this only serves rebalance callbacks
                self._carry = self.consumer.consume(self.config.batch_size, 0)
                if self._carry or self._assignment_changed or self._has_new_data(assignment):
                    return
        finally:
            with contextlib.suppress(KafkaException):
                self.consumer.resume(assignment)
            # a resumed partition may take a moment to fetch again (its offset is looked up anew)
            self._fetch_until = self.clock() + FETCH_GRACE_SECONDS

    def _pause_fetching(self) -> list[TopicPartition]:
        """While a batch is written, librdkafka has nothing to fetch for once it has prefetched up to the high
        watermark, and against a broker that answers empty fetches at once it would fetch thousands of times a
        second, slowing the very peer the batch is written to. So fetching pauses for the batch (prefetched
        records are dropped by the pause and fetched again from the position afterwards)."""
        assignment = self.consumer.assignment()
        try:
            self.consumer.pause(assignment)
        except KafkaException:
            return []
        return assignment

    def _resume_fetching(self, paused: list[TopicPartition]) -> None:
        if paused:
            with contextlib.suppress(KafkaException):
                self.consumer.resume(paused)

    def _has_new_data(self, assignment: list[TopicPartition]) -> bool:
        try:
            positions = self.consumer.position(assignment)
        except KafkaException:
            return True
        for tp in positions:
            try:
                low, high = self.consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), timeout=2, cached=False
                )
            except KafkaException:
                return True  # cannot tell: fetch
            start = tp.offset if tp.offset >= 0 else self.committed.get((tp.topic, tp.partition), low)
            if high > max(start, low):
                return True
        return False

    # --- main loop ------------------------------------------------------------------------------------------
    def run(self) -> int:
        self.consumer.subscribe([self.config.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        log.info("indexer started", extra={"topic": self.config.topic, "group": self.config.consumer_group})
        wait = self.config.batch_max_wait_ms / 1000.0
        try:
            while not self.stopping.is_set():
                self.heartbeat.beat()
                self._periodic()
                messages = self._carry or self.consumer.consume(self.config.batch_size, wait)
                self._carry = []
                records = []
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            log.warning("consumer error", extra={"error": str(error)})
                        continue
                    records.append(
                        KafkaRecord(
                            message.topic() or "",
                            message.partition() or 0,
                            message.offset() or 0,
                            message.value() or b"",
                            _header_bytes(message.headers()),
                        )
                    )
                if messages or self._assignment_changed:
                    self._assignment_changed = False
                    self._fetch_until = self.clock() + FETCH_GRACE_SECONDS
                if not records:
                    if not messages and self.clock() >= self._fetch_until:
                        self._idle()
                    continue
                paused = self._pause_fetching()
                try:
                    self.process_batch(records)
                except BatchAbandoned as exc:
                    log.warning("batch abandoned, not committed", extra={"reason": str(exc)})
                    if self.stopping.is_set():
                        break
                    self._resume_fetching(paused)
                    paused = []
                    self._rewind(records)
                    self.sleep(backoff_seconds(0, self.config.retry_initial_ms, self.config.retry_max_ms))
                finally:
                    self._resume_fetching(paused)
        finally:
            self.consumer.close()
            self.dead_letters.flush(5)
        log.info("indexer stopped")
        return 0


def run_indexer(config: WorkerConfig) -> int:
    metrics = WorkerMetrics()
    indexer = Indexer(config, metrics, elasticsearch_client(config))
    signal.signal(signal.SIGTERM, indexer.request_stop)
    signal.signal(signal.SIGINT, indexer.request_stop)
    probes = ProbeServer(config.http_host, config.http_port, metrics, indexer.heartbeat, indexer.readiness)
    probes.start()
    try:
        return indexer.run()
    finally:
        probes.stop()
