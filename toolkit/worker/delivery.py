"""Pure rules of the indexer: what a bulk item's outcome means, how long to wait before a retry, and the
target-index lease recorded in Kafka commit metadata.

Outcome of one `create` item (`classify`):
- 200/201: stored now.  409 (version conflict on create): stored by an earlier delivery: counted, not an
error.
- 429 and 5xx, and 0 (no answer at all): transient: retried with backoff until it succeeds (or the drain
  deadline passes, in which case the batch is not committed and Kafka delivers it again).
- any other 4xx (mapping/parse rejections, 400): permanent for this event: sent to the dead-letter topic with
  the reason, then counted as handled so the partition moves on.
A failure of the whole `_bulk` request is never an event's fault, so it never dead-letters: the indexer
retries
it (a 401/403 is a deployment problem and is logged loudly while it retries).

Backoff: attempt n (0-based) waits min(max, initial x 2^n) x a jitter factor in [0.5, 1.0] (the jitter source
is injected so tests are exact).

Index lease (exactly once across rollover)
------------------------------------------
Document ids come from Kafka coordinates, so a redelivered event is a 409 only if it is sent to the SAME
index.
The write alias moves at rollover, so the indexer never writes through it: every `create` names a concrete
index, chosen per partition by a lease kept in the metadata of that partition's committed offset:
`IndexLease(index, upto)` means "every event of this partition at an offset from the committed offset up to
`upto` that was ever written, was written to `index`".
The indexer keeps this true by committing (synchronously)
an extended or new lease BEFORE writing any event the current lease does not cover, and commits the lease
unchanged with the new offset after the batch. A new lease takes the alias's current write index and covers
`lease_offsets` offsets (or the batch, whichever is longer), so a rollover is followed within that many
events per
partition. After a crash, a restart, or a partition moving to another indexer, the redelivered events fall
under
the lease read back from the committed metadata, so they go to the index they first went to.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Outcome(Enum):
    STORED = "stored"
    ALREADY_STORED = "already_stored"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


def classify(status: int) -> Outcome:
    if status in (200, 201):
        return Outcome.STORED
    if status == 409:
        return Outcome.ALREADY_STORED
    if status == 0 or status == 429 or status >= 500:
        return Outcome.RETRY
    return Outcome.DEAD_LETTER


def backoff_seconds(attempt: int, initial_ms: int, max_ms: int, jitter: Callable[[], float] = random.random) -> float:
    base = min(max_ms, initial_ms * (2 ** min(attempt, 30)))
    return base * (0.5 + 0.5 * jitter()) / 1000.0


def item_error_reason(item: dict[str, Any]) -> str:
    """A readable reason from a bulk item's `error` (type: reason; caused by: ...), at most 2,000
    characters."""
    error = item.get("error")
    if not isinstance(error, dict):
        return str(error or f"status {item.get('status')}")[:2000]
    parts = [f"{error.get('type', 'error')}: {error.get('reason', '')}"]
    cause = error.get("caused_by")
    while isinstance(cause, dict) and len(parts) < 4:
        parts.append(f"caused by {cause.get('type', 'error')}: {cause.get('reason', '')}")
        cause = cause.get("caused_by")
    return "; ".join(parts)[:2000]


LEASE_VERSION = 1


@dataclass(frozen=True)
class IndexLease:
    index: str
    upto: int

    def encode(self) -> str:
        return json.dumps({"v": LEASE_VERSION, "index": self.index, "upto": self.upto}, separators=(",", ":"))

    @staticmethod
    def decode(metadata: str | None) -> IndexLease | None:
        if not metadata:
            return None
        try:
            data = json.loads(metadata)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("v") != LEASE_VERSION:
            return None
        index, upto = data.get("index"), data.get("upto")
        if not isinstance(index, str) or not isinstance(upto, int):
            return None
        return IndexLease(index, upto)


def lease_for_batch(
    current: IndexLease | None, first: int, last: int, write_index: str | None, lease_offsets: int
) -> tuple[IndexLease | None, bool]:
    """The lease to write offsets first..last of one partition under, and whether it must be committed first.

    Returns (None, False) when a new lease is needed but no write index is known yet (the caller waits)."""
    if current is not None and current.upto >= first:
        if current.upto >= last:
            return current, False
        return IndexLease(current.index, last), True
    if write_index is None:
        return None, False
    return IndexLease(write_index, max(last, first + lease_offsets - 1)), True
