"""The worker fixtures of tests/wire/worker (peer topics, index layout, worker subprocesses), reused here."""

from __future__ import annotations

from tests.wire.worker.conftest import es, index_layout, kafka_topics, names, start_worker

__all__ = ["es", "index_layout", "kafka_topics", "names", "start_worker"]
