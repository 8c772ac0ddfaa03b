"""The Kubernetes roll with real OS processes: a `toolkit upgrade run --to kubernetes=...` SIGKILLed while it drains
a node, then the same command again: it resumes from the observed state (the node it had cordoned, the replacement
it had claimed), evicts no pod twice and surges no second replacement for the same node.

The simulated platform is paced (`wall_pace`) so that the run can be killed mid-drain; the figures asserted come
from the runs' own output and the audit trail kept with the platform.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable

import pytest
from test_processes import HANG, Running, audit, paced, processes, status, toolkit

pytestmark = pytest.mark.slow

__all__ = ["paced", "processes"]  # fixtures, imported for this module's tests

UID = re.compile(r"\(Eviction API, uid (\w+)\)")


def test_sigkill_mid_drain_then_the_same_command_evicts_nothing_twice(
    paced: Callable[..., str], processes: list[Running]
) -> None:
    env = paced(pace=0.004)
    args = ["upgrade", "run", "--env", env, "--to", "kubernetes=1.34", "--output", "jsonl"]
    run = Running(args)
    processes.append(run)
    evictions = 0
    while evictions < 3:  # three pods evicted: the process dies with a node half drained
        run.until(lambda e: e["event"] == "act" and e["message"].startswith("evict "))
        evictions += 1
    run.signal(signal.SIGKILL)
    assert run.proc.wait(timeout=HANG) == -signal.SIGKILL
    first = audit(env)
    assert not any(a["what"] == "finish" for a in first)
    evicted = [UID.search(a["what"]).group(1) for a in first if a["what"].startswith("evict ") and a["result"] == "ok"]  # type: ignore[union-attr]
    assert len(evicted) >= 3
    held = status(env)
    assert held["lease_holder"] is not None and held["in_progress"]
    resumed = toolkit(*args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    events = [json.loads(line) for line in resumed.stdout.splitlines()]
    again = [
        UID.search(e["message"]).group(1) for e in events if e["event"] == "act" and e["message"].startswith("evict ")
    ]  # type: ignore[union-attr]
    assert again and not set(evicted) & set(again)  # nothing evicted twice
    assert len(again) == len(set(again))
    trail = audit(env)
    assert trail[: len(first)] == first
    surged = [a["what"] for a in trail if a["what"].startswith("surge ") and a["result"] == "ok"]
    replaced = [s.split(" to replace ")[1] for s in surged]
    assert len(replaced) == len(set(replaced))  # one replacement per node, across both processes
    final = status(env)
    assert not final["in_progress"]
    kube = next(c for c in final["components"] if c["component"] == "kubernetes")
    assert kube["running"] == {"1.34": kube["members"]} and final["kubernetes_control_plane"] == "1.34 (ACTIVE)"
