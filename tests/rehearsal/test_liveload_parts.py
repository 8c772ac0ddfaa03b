"""The live load's pure parts (the load itself runs against real Kafka and Elasticsearch in the cluster tier)."""

from __future__ import annotations

from toolkit.rehearsal.liveload import FailingStreak


def test_a_measurement_that_fails_briefly_is_a_gap_and_one_that_keeps_failing_is_reported_once_per_streak() -> None:
    streak = FailingStreak(limit=30.0)
    assert [streak.failed(t) for t in (100.0, 110.0, 130.0)] == [False, False, False]  # a listener re-published
    streak.succeeded()
    assert [streak.failed(t) for t in (200.0, 231.0, 240.0, 300.0)] == [False, True, False, False]  # once
    streak.succeeded()
    assert [streak.failed(t) for t in (400.0, 431.0)] == [False, True]  # a new streak is reported again
