"""Worker gates: maxUnavailable 0, never below desired ready, lag under a bound."""

from __future__ import annotations

from tests.builders import deployment
from toolkit.engine.gates import workers as gates
from toolkit.model import WorkersState


def test_max_unavailable_must_be_zero() -> None:
    v = gates.strategy_safe(deployment("idx", 3, 3, max_unavailable=1))
    assert not v.ok and v.fatal and "maxUnavailable 1" in v.reason
    assert gates.strategy_safe(deployment("idx", 3, 3)).ok


def test_ready_at_desired() -> None:
    v = gates.ready_at_desired(deployment("idx", 3, 2))
    assert not v.ok and "2 of 3" in v.reason
    assert gates.ready_at_desired(deployment("idx", 3, 3)).ok


def test_lag_under_bound_names_the_worst_partition() -> None:
    lagging = WorkersState("toolkit-indexer", 900, (("events-0", 800), ("events-1", 100)))
    v = gates.lag_under_bound(lagging, 500)
    assert not v.ok and "events-0 at 800" in v.reason
    assert gates.lag_under_bound(WorkersState("g", 100), 500).ok


def test_rolled_needs_every_pod_on_the_update_revision() -> None:
    stale = deployment("idx", 2, 2, version="0.1.0", revision="r1", update_revision="r2")
    assert not gates.rolled(stale, "0.2.0").ok
    done = deployment("idx", 2, 2, version="0.2.0", revision="r2", update_revision="r2")
    assert gates.rolled(done, "0.2.0").ok
