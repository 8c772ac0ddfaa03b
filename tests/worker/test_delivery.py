"""Retry classification, backoff and the index lease that keeps redeliveries in their first index."""

import pytest

from toolkit.worker.delivery import (
    IndexLease,
    Outcome,
    backoff_seconds,
    classify,
    item_error_reason,
    lease_for_batch,
)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (201, Outcome.STORED),
        (200, Outcome.STORED),
        (409, Outcome.ALREADY_STORED),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (0, Outcome.RETRY),
        (400, Outcome.DEAD_LETTER),
        (404, Outcome.DEAD_LETTER),
        (413, Outcome.DEAD_LETTER),
    ],
)
def test_classify(status, outcome):
    assert classify(status) is outcome


def test_backoff_doubles_up_to_the_cap_with_jitter_between_half_and_full():
    full = [backoff_seconds(n, 100, 1000, jitter=lambda: 1.0) for n in range(6)]
    assert full == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert backoff_seconds(2, 100, 1000, jitter=lambda: 0.0) == 0.2
    assert backoff_seconds(10_000, 100, 1000, jitter=lambda: 1.0) == 1.0  # no overflow on long outages


def test_item_error_reason_follows_the_cause_chain():
    item = {
        "status": 400,
        "error": {
            "type": "document_parsing_exception",
            "reason": "failed to parse field [process.pid]",
            "caused_by": {"type": "illegal_argument_exception", "reason": "out of range for a long"},
        },
    }
    assert item_error_reason(item) == (
        "document_parsing_exception: failed to parse field [process.pid]; "
        "caused by illegal_argument_exception: out of range for a long"
    )
    assert item_error_reason({"status": 400}) == "status 400"


def test_lease_round_trips_through_commit_metadata_and_rejects_foreign_metadata():
    lease = IndexLease("syslog-events-000002", 12345)
    assert IndexLease.decode(lease.encode()) == lease
    for foreign in (None, "", "not json", "[]", '{"v":2,"index":"x","upto":1}', '{"v":1,"index":3,"upto":1}'):
        assert IndexLease.decode(foreign) is None


def test_new_partition_takes_the_write_index_and_commits_first():
    lease, commit = lease_for_batch(None, 0, 99, "idx-000001", lease_offsets=1000)
    assert lease == IndexLease("idx-000001", 999) and commit


def test_covered_batch_needs_no_commit_even_after_a_rollover():
    current = IndexLease("idx-000001", 999)
    assert lease_for_batch(current, 100, 199, "idx-000002", 1000) == (current, False)


def test_redelivery_after_a_crash_goes_to_the_first_index_even_when_longer_than_the_lease():
    # the crashed attempt wrote 0..1500 under an extended lease; the alias has rolled over since
    current = IndexLease("idx-000001", 1500)
    lease, commit = lease_for_batch(current, 0, 1800, "idx-000002", 1000)
    assert lease == IndexLease("idx-000001", 1800) and commit  # extended BEFORE writing 1501..1800


def test_expired_lease_moves_to_the_current_write_index():
    lease, commit = lease_for_batch(IndexLease("idx-000001", 999), 1000, 1099, "idx-000002", 1000)
    assert lease == IndexLease("idx-000002", 1999) and commit


def test_no_write_index_known_means_wait():
    assert lease_for_batch(None, 0, 10, None, 1000) == (None, False)
    assert lease_for_batch(IndexLease("a", 5), 6, 10, None, 1000) == (None, False)
