"""An idle indexer stops fetching: it pauses its partitions and resumes when a high watermark moves past its
position (a broker that answers empty fetches at once would otherwise be fetched thousands of times a second)."""

from __future__ import annotations

import threading

from confluent_kafka import TopicPartition

from toolkit.worker.config import load_config
from toolkit.worker.indexer import Indexer
from toolkit.worker.observability import WorkerMetrics


class FakeConsumer:
    def __init__(self, assignment: list[TopicPartition], high: dict[int, int], positions: dict[int, int]) -> None:
        self._assignment = assignment
        self.high = high
        self.positions = positions
        self.paused: set[int] = set()
        self.calls: list[str] = []
        self.watermark_queries = 0

    def assignment(self) -> list[TopicPartition]:
        return self._assignment

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.calls.append("pause")
        self.paused |= {tp.partition for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.calls.append("resume")
        self.paused -= {tp.partition for tp in partitions}

    def consume(self, num_messages: int, timeout: float) -> list:
        assert timeout == 0 and self.paused, "while idle, consume only serves callbacks"
        self.calls.append("serve")
        return []

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.positions.get(tp.partition, -1001)) for tp in partitions]

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float, cached: bool) -> tuple[int, int]:
        assert not cached
        self.watermark_queries += 1
        return 0, self.high[tp.partition]


def make_indexer(consumer: FakeConsumer) -> Indexer:
    config = load_config(
        "indexer", {"TOOLKIT_WORKER_KAFKA_BOOTSTRAP": "k:9092", "TOOLKIT_WORKER_ELASTICSEARCH_URL": "http://es:9200"}
    )
    indexer = Indexer(config, WorkerMetrics(), es=None)  # type: ignore[arg-type]
    indexer.consumer.close()
    indexer.consumer = consumer  # type: ignore[assignment]
    indexer._periodic = lambda: None  # type: ignore[method-assign]
    return indexer


def test_idle_pauses_then_resumes_when_a_partition_gets_data(monkeypatch):
    monkeypatch.setattr("toolkit.worker.indexer.IDLE_CHECK_SECONDS", 0.001)
    assignment = [TopicPartition("raw", p) for p in range(3)]
    consumer = FakeConsumer(assignment, high={0: 10, 1: 5, 2: 0}, positions={0: 10, 1: 5})
    indexer = make_indexer(consumer)
    checks = {"n": 0}
    real = consumer.get_watermark_offsets

    def watermarks(tp, timeout, cached):
        checks["n"] += 1
        if checks["n"] == 7:  # the third round of checks sees a new event on partition 2
            consumer.high[2] = 1
        return real(tp, timeout, cached)

    consumer.get_watermark_offsets = watermarks  # type: ignore[method-assign]
    indexer._idle()
    assert consumer.calls[0] == "pause" and consumer.calls[-1] == "resume"
    assert consumer.calls.count("serve") == 3 and not consumer.paused


def test_idle_without_a_committed_position_uses_the_committed_offset_then_the_low_watermark(monkeypatch):
    monkeypatch.setattr("toolkit.worker.indexer.IDLE_CHECK_SECONDS", 0.001)
    consumer = FakeConsumer([TopicPartition("raw", 0)], high={0: 4}, positions={})
    indexer = make_indexer(consumer)
    indexer.committed[("raw", 0)] = 4  # all stored before: nothing new
    stop = threading.Timer(0.05, indexer.stopping.set)
    stop.start()
    indexer._idle()
    assert consumer.watermark_queries >= 2 and not consumer.paused
    indexer.stopping.clear()
    indexer.committed.pop(("raw", 0))  # never committed: everything from the low watermark is new
    indexer._idle()
    assert consumer.watermark_queries >= 3 and consumer.calls[-1] == "resume"


def test_no_assignment_means_no_pause():
    consumer = FakeConsumer([], high={}, positions={})
    make_indexer(consumer)._idle()
    assert consumer.calls == []
