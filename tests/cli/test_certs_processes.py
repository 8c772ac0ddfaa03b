"""Drills with real OS processes running `toolkit certs rotate` on a paced simulated platform (`wall_pace`), as in
tests/cli/test_processes.py: SIGKILL in the middle of a phase's pod restarts and in the middle of a phase's Secrets
(between two phases' records), then the same command again; SIGTERM stops at a safe point (exit 4) and the same
command resumes. Every figure asserted is read from the processes' own output and from `toolkit certs status`,
`toolkit state dump` and `toolkit upgrade audit`; the wall-clock timeouts only keep a broken run from hanging.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_processes import HANG, Running, toolkit

pytestmark = pytest.mark.slow  # real processes on a paced platform: ~2 minutes in all


@pytest.fixture
def paced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """A paced sim environment (a file in $TOOLKIT_ENVIRONMENTS_DIR): its name."""
    envs = tmp_path / "environments"
    envs.mkdir()
    monkeypatch.setenv("TOOLKIT_ENVIRONMENTS_DIR", str(envs))

    def make(name: str = "paced", pace: float = 0.004) -> str:
        document = {
            "kind": "sim",
            "description": "a simulated platform paced for signal drills",
            "platform": {
                "kafka": {"version": "4.0.1", "controllers": 3, "brokers": 3},
                "elasticsearch": {"version": "8.18.3"},
                "workers": {"version": "0.1.0"},
            },
            "sim": {"wall_pace": pace, "observe_interval": 5},
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


def certs_status(env: str) -> dict[str, Any]:
    done = toolkit("certs", "status", "--env", env, "--output", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def state(env: str) -> dict[str, Any]:
    done = toolkit("state", "dump", "--env", env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["state"]


def statefulset_restarts(env: str) -> dict[str, int]:
    return {p["name"]: p["restarts"] for w in state(env)["workloads"] if w["kind"] == "StatefulSet" for p in w["pods"]}


def assert_never_a_failed_handshake(env: str) -> None:
    """The simulated platform's own samples (one a simulated second, kept in its state file across processes):
    no pod pair that talks ever failed a TLS handshake, and no partition went under its min ISR."""
    from toolkit.config.environments import resolve

    history = json.loads((resolve(env).state_dir() / "sim-world.json").read_text())["history"]
    assert history and all("tls_failures" in h for h in history[-10:])
    assert [h for h in history if h.get("tls_failures") or h["below_min_isr"]] == []


def assert_rotated(env: str, generation: int = 1) -> None:
    assert_never_a_failed_handshake(env)
    after = certs_status(env)
    assert after["level"] == "ok", after
    assert after["rotation"]["phase"] == "done" and after["rotation"]["generation"] == generation
    new_ca = after["rotation"]["new_ca"]
    for secret in after["secrets"]:
        for cert in secret["certificates"]:
            if cert["role"] == "ca":
                assert cert["fingerprint"] == new_ca, secret["name"]
            else:
                assert cert["signed_by"] == f"current CA {new_ca[:12]}", secret["name"]


def restart_events(run: Running) -> list[str]:
    return [e["message"] for e in run.seen if e["event"] == "act" and e["message"].startswith("restart ")]


def test_sigkill_in_the_middle_of_a_phase_then_the_same_command_finishes_it(
    paced: Callable[..., str],
    processes: list[Running],
) -> None:
    env = paced(pace=0.004)
    args = ["certs", "rotate", "--env", env, "--output", "jsonl"]
    run = Running(args)
    processes.append(run)
    run.until(lambda e: e["event"] == "phase" and e["message"].startswith("reissue: every pod restarts"))
    for _ in range(2):  # two kafka pods restarted on the reissue stamp, then killed in the middle of the third
        run.until(lambda e: e["event"] == "act" and e["message"].startswith("restart "))
    run.signal(signal.SIGKILL)
    assert run.proc.wait(timeout=HANG) == -signal.SIGKILL
    during = certs_status(env)
    assert during["rotation"]["phase"] == "reissue" and during["rotation"]["stage"] == "roll"
    assert during["level"] == "ok"  # mid-rotation: old and new leaves both trusted by every bundle
    assert {c["fingerprint"] for s in during["secrets"] for c in s["certificates"] if c["role"] == "ca"} == {
        during["rotation"]["old_ca"],
        during["rotation"]["new_ca"],
    }
    resumed = toolkit(*args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    events = [json.loads(line) for line in resumed.stdout.splitlines()]
    assert "no longer runs on this host" in next(e for e in events if e["event"] == "lease")["message"]
    assert next(e for e in events if e["event"] == "phase")["message"].startswith(
        "resuming rotation 1 in phase reissue"
    )
    assert events[-1]["event"] == "result" and events[-1]["outcome"] == "completed"
    assert [s["phase"] for s in events[-1]["stages"]] == ["reissue", "drop", "drop"]
    assert_rotated(env)
    # every StatefulSet pod restarted once per phase; the killed process's last restart may have been cut short
    # between the platform's record of it and the delete, never more than once
    restarts = statefulset_restarts(env)
    assert min(restarts.values()) == 3 and max(restarts.values()) <= 4, restarts
    trail = json.loads(toolkit("upgrade", "audit", "--env", env, "--output", "json").stdout)
    whats = [a["what"] for a in trail]
    assert whats.count("certs trust: bundles") == 1 and whats.count("certs drop: bundles and CA") == 1


def test_sigkill_between_a_phases_secrets_and_its_roll_then_the_same_command_resumes(
    paced: Callable[..., str],
    processes: list[Running],
) -> None:
    env = paced(pace=0.004)
    args = ["certs", "rotate", "--env", env, "--output", "jsonl"]
    run = Running(args)
    processes.append(run)
    run.until(lambda e: e["event"] == "phase" and e["message"].startswith("drop: old CA"))  # Secrets written
    run.signal(signal.SIGKILL)
    run.proc.wait(timeout=HANG)
    resumed = toolkit(*args, "--output", "json")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_rotated(env)
    assert set(statefulset_restarts(env).values()) <= {3, 4}


def test_sigterm_stops_at_a_safe_point_and_the_same_command_resumes(
    paced: Callable[..., str],
    processes: list[Running],
) -> None:
    env = paced(pace=0.004)
    args = ["certs", "rotate", "--env", env, "--output", "jsonl"]
    run = Running(args)
    processes.append(run)
    run.until(lambda e: e["event"] == "phase" and e["message"].startswith("trust: every pod restarts"))
    run.until(lambda e: e["event"] == "act" and e["message"].startswith("restart "))
    run.signal(signal.SIGTERM)
    code, result = run.finish()
    assert code == 4, run.stderr
    assert result["outcome"] == "stopped" and "run the same command to resume" in result["reason"]
    assert certs_status(env)["rotation"]["phase"] == "trust"
    status = json.loads(toolkit("upgrade", "status", "--env", env, "--output", "json").stdout)
    assert status["lease_holder"] is None  # released on the way out
    resumed = toolkit(*args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_rotated(env)
    assert set(statefulset_restarts(env).values()) == {3}


def test_bad_input_is_refused_and_changes_nothing(paced: Callable[..., str]) -> None:
    env = paced()
    done = toolkit("certs", "rotate", "--env", env, "--poll", "nan")
    assert done.returncode == 2 and "--poll nan is not a finite number of seconds" in done.stderr
    done = toolkit("certs", "rotate", "--env", env, "--output", "yaml")
    assert done.returncode == 2 and "--output 'yaml' is not supported" in done.stderr
    done = toolkit("certs", "status", "--env", env, "--warn-days", "-1")
    assert done.returncode == 2 and "--warn-days -1 must be 0 or more days" in done.stderr
    done = toolkit("certs", "rotate", "--env", "nowhere")
    assert done.returncode == 2 and "nowhere" in done.stderr
    assert "not created yet" in toolkit("cluster", "status", "--env", env).stdout  # nothing was opened
