"""The drills with real OS processes running the `toolkit` CLI: signals (SIGTERM, twice), SIGKILL then resume with
the audit checked, two concurrent runs on one platform, pause/resume/abort from other processes, `--poll nan`.

The simulated platform here is paced (`wall_pace`: wall seconds per simulated second) so that a run lasts long
enough to be signalled while it waits; every figure asserted is read from the run's own output (virtual time), and
the wall-clock timeouts below only keep a broken run from hanging the suite.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.slow  # real processes on a paced platform: ~1 minute in all

TOOLKIT = str(Path(sys.executable).with_name("toolkit"))
HANG = 120.0  # seconds: only a guard against a run that never ends


class Running:
    """A `toolkit` process whose stdout (JSON lines) and stderr are read as they come."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [TOOLKIT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()

    @staticmethod
    def _pump(stream: Any, into: queue.Queue[str | None]) -> None:
        for line in stream:
            into.put(line)
        into.put(None)

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def until(self, wanted: Callable[[dict[str, Any]], bool], timeout: float = HANG) -> dict[str, Any]:
        """The next output event matching `wanted` (events before it are kept in `seen`)."""
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"the run ended first: {self.seen[-3:]} {''.join(self.stderr)[-2000:]}")
            event = json.loads(line)
            self.seen.append(event)
            if wanted(event):
                return event

    def finish(self, timeout: float = HANG) -> tuple[int, dict[str, Any]]:
        """Exit code and the final result document."""
        code = self.proc.wait(timeout=timeout)
        while (line := self.lines.get(timeout=timeout)) is not None:
            self.seen.append(json.loads(line))
        return code, self.seen[-1]

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def toolkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TOOLKIT, *args], capture_output=True, text=True, timeout=HANG)


@pytest.fixture
def paced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Make a paced sim environment (a file in $TOOLKIT_ENVIRONMENTS_DIR) and return its name."""
    envs = tmp_path / "environments"
    envs.mkdir()
    monkeypatch.setenv("TOOLKIT_ENVIRONMENTS_DIR", str(envs))

    def make(name: str = "paced", pace: float = 0.01, **sim: Any) -> str:
        document = {
            "kind": "sim",
            "description": "a simulated platform paced for signal drills",
            "platform": {
                "kafka": {"version": "4.0.1", "controllers": 3, "brokers": 3},
                "elasticsearch": {"version": "8.18.3"},
                "workers": {"version": "0.1.0"},
            },
            "sim": {"wall_pace": pace, "observe_interval": 5, **sim},
        }
        (envs / f"{name}.yaml").write_text(yaml.safe_dump(document))
        return name

    return make


@pytest.fixture
def processes() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for run in started:
        run.stop()


def status(env: str) -> dict[str, Any]:
    done = toolkit("upgrade", "status", "--env", env, "--output", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def audit(env: str) -> list[dict[str, Any]]:
    done = toolkit("upgrade", "audit", "--env", env, "--output", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_sigterm_during_a_gate_wait_stops_within_one_poll_interval_and_releases_the_lease(
    paced: Callable[..., str], processes: list[Running]
) -> None:
    env = paced(pace=0.02)
    args = ["upgrade", "run", "--env", env, "--to", "elasticsearch=8.19.3", "--inject", "red-cluster"]
    run = Running([*args, "--poll", "60", "--gate-timeout", "36000", "--output", "jsonl"])
    processes.append(run)
    waiting = run.until(lambda e: e["event"] == "gate-wait" and e["rule"] == "elasticsearch.health")
    assert run.proc.poll() is None  # the events stream while the run goes
    run.signal(signal.SIGTERM)
    code, result = run.finish()
    assert code == 4, run.stderr
    assert result["event"] == "result" and result["outcome"] == "stopped" and result["rule"] == "run.stop-requested"
    assert result["ended_at"] - waiting["at"] <= 60  # within one poll interval of the wait (virtual seconds)
    assert any(e["event"] == "stop" for e in run.seen)
    assert status(env)["lease_holder"] is None
    assert audit(env)[-1]["what"] == "stop"


def test_a_second_sigterm_during_a_step_stops_at_once_and_leaves_allocation_reset(
    paced: Callable[..., str], processes: list[Running]
) -> None:
    env = paced(pace=0.02, es_shutdown_api=False, es_restart_seconds=900)
    run = Running(["upgrade", "run", "--env", env, "--to", "elasticsearch=8.19.3", "--output", "jsonl"])
    processes.append(run)
    run.until(lambda e: e["event"] == "act" and e["message"].startswith("restart es-"))
    assert status(env)["elasticsearch_allocation"] == "primaries"  # the step prepared the node's restart
    run.signal(signal.SIGTERM)
    run.until(lambda e: e["event"] == "stop-requested")  # the first finishes the step...
    run.signal(signal.SIGTERM)  # ...the second does not wait for it
    code, result = run.finish()
    assert code == 4, run.stderr
    assert result["rule"] == "run.stopped-at-once" and result["steps"][-1]["outcome"] == "halted"
    assert result["ended_at"] - result["steps"][-1]["start"] < 900  # the node had not come back: it did not wait
    after = status(env)
    assert after["elasticsearch_allocation"] is None and after["lease_holder"] is None
    undo = [a for a in audit(env) if a["what"].startswith("undo the preparation")]
    assert [a["result"] for a in undo] == ["intent", "ok"]


def test_poll_nan_is_refused_at_once_by_a_real_process() -> None:
    for option in ("--poll", "--step-timeout", "--gate-timeout", "--confirm", "--pace"):
        done = toolkit("upgrade", "run", "--env", "sim", "--to", "kafka=4.1.0", option, "nan")
        assert done.returncode == 2 and f"{option} nan is not a finite number of seconds" in done.stderr
    assert "not created yet" in toolkit("cluster", "status", "--env", "sim").stdout  # nothing was opened


def test_two_concurrent_runs_one_is_refused_and_no_audit_is_lost(
    paced: Callable[..., str], processes: list[Running]
) -> None:
    env = paced(pace=0.004)
    assert toolkit("cluster", "up", "--env", env).returncode == 0
    args = ["upgrade", "run", "--env", env, "--to", "kafka=4.1.0", "--output", "jsonl"]
    first, second = Running(args), Running(args)
    processes.extend([first, second])
    (code_a, result_a), (code_b, result_b) = first.finish(), second.finish()
    assert sorted([code_a, code_b]) == [0, 3], (first.stderr, second.stderr)
    refused = result_a if code_a == 3 else result_b
    assert refused["rule"] == "lease.single-holder" and "holds the lease" in refused["reason"]
    trail = audit(env)
    assert [a["what"] for a in trail].count("start") == 1
    assert [a["result"] for a in trail if a["what"] == "lease"] == ["refused"]
    assert trail[-1]["what"] == "finish" or any(a["what"] == "finish" for a in trail)
    intents = [a["what"] for a in trail if a["what"].startswith("restart ") and a["result"] == "intent"]
    oks = [a["what"] for a in trail if a["what"].startswith("restart ") and a["result"] == "ok"]
    assert intents == oks and len(oks) == 6
    kafka = next(c for c in status(env)["components"] if c["component"] == "kafka")
    assert kafka["on_spec"] == kafka["members"] == 6  # the refused process did not write its stale platform back


def test_sigkill_then_the_same_command_resumes_with_the_audit_kept(
    paced: Callable[..., str], processes: list[Running]
) -> None:
    env = paced(pace=0.005)
    args = ["upgrade", "run", "--env", env, "--to", "kafka=4.1.0", "--output", "jsonl"]
    run = Running(args)
    processes.append(run)
    for _ in range(3):
        run.until(lambda e: e["event"] == "act" and e["message"].startswith("restart "))
    run.signal(signal.SIGKILL)
    assert run.proc.wait(timeout=HANG) == -signal.SIGKILL
    trail = audit(env)
    assert not any(a["what"] == "finish" for a in trail)
    restarts = [a for a in trail if a["what"].startswith("restart ")]
    assert [a["result"] for a in restarts] == ["intent", "ok"] * 3  # each recorded before it was taken, and after
    assert status(env)["lease_holder"] is not None  # a killed process does not release its lease
    resumed = toolkit(*args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    events = [json.loads(line) for line in resumed.stdout.splitlines()]
    assert (
        "no longer runs on this host; taking its lease over"
        in next(e for e in events if e["event"] == "lease")["message"]
    )
    again = [e["message"] for e in events if e["event"] == "act" and e["message"].startswith("restart ")]
    before = {a["what"] for a in restarts}
    assert not before & set(again) and len(before) + len(again) == 6  # nothing restarted twice
    full = audit(env)
    assert full[: len(trail)] == trail  # the first process's records are all kept
    assert [a["what"] for a in full].count("start") == 2 and full[-1]["what"] == "finish"


def test_sigkill_does_not_reset_the_restart_budget(paced: Callable[..., str], processes: list[Running]) -> None:
    env = paced(pace=0.005)
    args = ["upgrade", "run", "--env", env, "--to", "kafka=4.1.0", "--step-timeout", "100", "--restart-budget", "2"]
    run = Running([*args, "--inject", "never-ready=kafka-broker-0", "--output", "jsonl"])
    processes.append(run)
    for _ in range(2):
        run.until(lambda e: e["event"] == "act" and e["message"] == "restart kafka-broker-0")
    run.signal(signal.SIGKILL)
    run.proc.wait(timeout=HANG)
    resumed = toolkit(*args, "--output", "json")
    assert resumed.returncode == 1, resumed.stderr[-2000:]
    result = json.loads(resumed.stdout)
    assert result["steps"][0]["kind"] == "recover" and result["steps"][0]["restarts"] == 0
    assert "restart budget 2 spent (2 restarts towards 4.1.0 recorded with the platform" in result["reason"]
    intents = [a for a in audit(env) if a["what"] == "restart kafka-broker-0" and a["result"] == "intent"]
    assert len(intents) == 2


def test_pause_resume_and_abort_from_other_processes(paced: Callable[..., str], processes: list[Running]) -> None:
    env = paced(pace=0.01)
    run = Running(["upgrade", "run", "--env", env, "--to", "kafka=4.1.0", "--output", "jsonl"])
    processes.append(run)
    run.until(lambda e: e["event"] == "step" and "/restart/" in e["step"])
    paused = toolkit("upgrade", "pause", "--env", env, "--reason", "change freeze")
    assert paused.returncode == 0 and "holds at its next step boundary" in paused.stdout
    held = run.until(lambda e: e["event"] == "paused")
    assert "change freeze" in held["message"]
    seen = status(env)
    assert seen["request"]["action"] == "pause" and seen["request"]["reason"] == "change freeze"
    assert seen["lease_holder"] is not None and seen["in_progress"] is True
    table = toolkit("upgrade", "status", "--env", env)
    assert "PAUSED" in table.stdout and "change freeze" in table.stdout
    busy = toolkit("upgrade", "run", "--env", env, "--to", "kafka=4.1.0", "--inject", "red-cluster")
    assert busy.returncode == 3 and "is running an upgrade" in busy.stderr  # faults never go in under a run
    assert toolkit("upgrade", "resume", "--env", env).returncode == 0
    resumed = run.until(lambda e: e["event"] in ("resumed", "step"))
    assert resumed["event"] == "resumed"
    assert [e for e in run.seen if e["event"] == "step" and e["at"] > held["at"]] == []  # nothing began while held
    run.until(lambda e: e["event"] == "step")
    aborted = toolkit("upgrade", "abort", "--env", env, "--reason", "rollback decided")
    assert aborted.returncode == 0 and "stops within one observation interval" in aborted.stdout
    code, result = run.finish()
    assert code == 4 and result["rule"] == "run.aborted" and "rollback decided" in result["reason"]
    after = status(env)
    assert after["lease_holder"] is None and after["request"] is None
    nothing = toolkit("upgrade", "abort", "--env", env)
    assert nothing.returncode == 3 and "nothing to abort" in nothing.stderr


def test_jsonl_is_refused_where_there_is_no_stream() -> None:
    done = toolkit("upgrade", "plan", "--env", "sim", "--to", "kafka=4.1.0", "--output", "jsonl")
    assert done.returncode == 2 and "use table, json or yaml" in done.stderr
