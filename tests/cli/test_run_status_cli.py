"""What a user gets from a run beyond its own output, through the real CLI and real HTTP: `toolkit upgrade status`
shows the run's phase and the gate it waits on (table, json, yaml); the run's Prometheus metrics are pushed to a
Pushgateway (an in-process HTTP server that records every request) and served for a scrape (a real HTTP GET while
the run waits on a gate); options that cannot work are refused with exit 2 and change nothing; a run that died
without writing its outcome is shown as stale."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from toolkit import operations
from toolkit.cli.main import app
from toolkit.config.environments import resolve
from toolkit.engine.executor import Event
from toolkit.model import UpgradeSettings

runner = CliRunner()
RECOVERING = "recovering=kafka-broker-0:3000"  # broker 100 in log recovery for 3000 s: it may not restart


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """name + sorted labels -> value, from the Prometheus text format."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics: dict[Any, float], name: str, **labels: str) -> float:
    return metrics[(name, tuple(sorted(labels.items())))]


class Recorder(BaseHTTPRequestHandler):
    received: list[tuple[str, str, str]]

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.received.append((self.command, self.path, self.rfile.read(length).decode()))
        self.send_response(200)
        self.end_headers()

    do_PUT = do_POST = _record

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    """A Pushgateway stand-in: a real HTTP server on loopback recording (method, path, body) of every request."""
    received: list[tuple[str, str, str]] = []
    handler = type("Handler", (Recorder,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()
    server.server_close()


def test_status_shows_the_halted_run_with_its_gate_rule_in_every_output() -> None:
    code, out, _ = invoke(
        "upgrade", "run", "--env", "sim", "--to", "kafka=4.1.0", "--inject", RECOVERING, "--gate-timeout", "300"
    )
    assert code == 1, out
    code, out, _ = invoke("upgrade", "status", "--env", "sim", "-o", "json")
    assert code == 0
    run = json.loads(out)["run"]
    assert run["phase"] == "Halted" and run["rule"] == "kafka.not-in-recovery" and run["stale"] is False
    assert "gave up after 300 s waiting to start kafka/restart/kafka-broker-0" in run["message"]
    assert run["steps"]["done"] == 9 and run["targets"] == {"kafka": "4.1.0"}
    completed = next(c for c in run["conditions"] if c["type"] == "Completed")
    assert completed["status"] == "False" and completed["reason"] == "RunHalted"
    code, out, _ = invoke("upgrade", "status", "--env", "sim", "-o", "yaml")
    assert yaml.safe_load(out)["run"] == run
    code, out, _ = invoke("upgrade", "status", "--env", "sim", "--audit-lines", "1")
    assert "run: Halted (9/10 steps) to kafka=4.1.0" in " ".join(out.split())
    assert "[kafka.not-in-recovery] gave up after 300 s" in " ".join(out.split())


def test_status_before_any_run_is_idle() -> None:
    code, out, _ = invoke("upgrade", "status", "--env", "sim", "-o", "json")
    assert code == 0 and json.loads(out)["run"]["phase"] == "Idle"


def test_metrics_are_pushed_at_transitions_and_at_the_end(gateway: tuple[str, list[Any]]) -> None:
    url, received = gateway
    code, out, err = invoke("upgrade", "run", "--env", "sim", "--to", "kafka=4.1.0", "--metrics-push", url)
    assert code == 0, out + err
    assert received and {(m, p) for m, p, _ in received} == {("PUT", "/metrics/job/toolkit-upgrade/environment/sim")}
    phases = []
    for _, _, body in received:
        pushed = samples(body)
        phases.append(next(k[1][0][1] for k, v in pushed.items() if k[0] == "toolkit_upgrade_phase" and v == 1))
    assert phases[0] == "Planning" and "WaitingOnGate" in phases and phases[-1] == "Completed"
    last = samples(received[-1][2])
    assert value(last, "toolkit_upgrade_steps_done") == value(last, "toolkit_upgrade_steps_planned") == 10
    assert value(last, "toolkit_upgrade_restarts_total", component="kafka") == 9
    assert value(last, "toolkit_upgrade_runs_total", outcome="completed") == 1
    assert value(last, "toolkit_upgrade_lease_held") == 0
    assert value(last, "toolkit_upgrade_gate_wait_seconds_count", rule="kafka.recovered") == 9
    during = samples(received[len(received) // 2][2])
    assert value(during, "toolkit_upgrade_lease_held") == 1
    info = [k for k in last if k[0] == "toolkit_upgrade_run_info"]
    assert dict(info[0][1])["targets"] == "kafka=4.1.0" and dict(info[0][1])["simulated"] == "true"


def test_a_gateway_that_does_not_answer_does_not_fail_the_run() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, never listening: connection refused
        code, out, err = invoke("upgrade", "run", "--env", "sim", "--to", "kafka=4.1.0", "--metrics-push", dead)
    assert code == 0, out + err
    assert f"warning: the run was not fully shown: could not push to {dead}" in err


def test_metrics_are_served_while_the_run_waits_on_a_gate() -> None:
    """A real HTTP GET of /metrics at the moment the run reports the log-recovery gate (operations.run_upgrade, as
    the CLI calls it with --metrics-port 0)."""
    env = resolve("sim")
    ports: list[int] = []
    scraped: dict[str, dict[Any, float]] = {}

    def get() -> dict[Any, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/metrics", timeout=10) as response:
            assert response.status == 200
            return samples(response.read().decode())

    def scrape(event: Event) -> None:
        if event.kind == "gate-wait" and event.rule == "kafka.not-in-recovery" and "waiting" not in scraped:
            scraped["waiting"] = get()
        if event.kind == "done":
            scraped["done"] = get()

    reporting = operations.Reporting(metrics_port=0, on_serving=ports.append)
    result = operations.run_upgrade(
        env, {"kafka": "4.1.0"}, UpgradeSettings(), ["recovering=kafka-broker-0:1500"], on_event=scrape,
        reporting=reporting,
    )  # fmt: skip
    assert result.ok, result.reason
    waiting = scraped["waiting"]
    assert value(waiting, "toolkit_upgrade_phase", phase="WaitingOnGate") == 1
    assert value(waiting, "toolkit_upgrade_phase", phase="Running") == 0
    assert value(waiting, "toolkit_upgrade_gate_waiting", rule="kafka.not-in-recovery") == 1
    assert value(waiting, "toolkit_upgrade_lease_held") == 1
    assert value(waiting, "toolkit_upgrade_steps_done") == 9 and value(waiting, "toolkit_upgrade_steps_planned") == 10
    done = scraped["done"]
    waited = value(done, "toolkit_upgrade_gate_wait_seconds_sum", rule="kafka.not-in-recovery")
    started = next(s for s in result.steps if s.members == ("kafka-broker-0",))
    assert waited == pytest.approx(next(g.seconds for g in started.gates_waited if g.rule == "kafka.not-in-recovery"))
    assert value(done, "toolkit_upgrade_gate_waiting", rule="kafka.not-in-recovery") == 0
    with pytest.raises(OSError):  # served for the run only
        get()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--metrics-port", "70000"], "--metrics-port 70000: not a TCP port"),
        (["--metrics-push", "ftp://gateway:9091"], "--metrics-push 'ftp://gateway:9091': not a Pushgateway address"),
        (["--metrics-push", "http://:9091"], "not a Pushgateway address"),
    ],
)
def test_metrics_options_that_cannot_work_are_refused_and_change_nothing(args: list[str], needle: str) -> None:
    code, _, err = invoke("upgrade", "run", "--env", "sim", "--to", "kafka=4.1.0", "--inject", RECOVERING, *args)
    assert code == 2 and needle in err
    code, out, _ = invoke("upgrade", "status", "--env", "sim", "-o", "json")
    assert json.loads(out)["run"]["phase"] == "Idle"  # no run, no platform created, no fault injected


def test_a_metrics_port_in_use_is_refused_before_anything_changes() -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = invoke(
            "upgrade", "run", "--env", "sim", "--to", "kafka=4.1.0", "--inject", RECOVERING, "--metrics-port", str(port)
        )
    assert code == 2 and f"--metrics-port {port}: cannot serve metrics there" in err
    code, out, _ = invoke("upgrade", "audit", "--env", "sim", "-o", "json")
    assert json.loads(out) == []


def test_a_run_killed_mid_way_is_shown_as_stale(tmp_path: Path) -> None:
    toolkit = str(Path(sys.executable).with_name("toolkit"))
    crashed = subprocess.run(
        [toolkit, "upgrade", "run", "--env", "sim", "--to", "kafka=4.1.0", "--inject", "crash-after-step=2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert crashed.returncode == 70, crashed.stderr
    shown = subprocess.run(
        [toolkit, "upgrade", "status", "--env", "sim", "-o", "json"], capture_output=True, text=True, timeout=120
    )
    run = json.loads(shown.stdout)["run"]
    assert run["phase"] in ("Running", "WaitingOnGate") and run["stale"] is True
    table = subprocess.run([toolkit, "upgrade", "status", "--env", "sim"], capture_output=True, text=True, timeout=120)
    assert "STALE: no live orchestrator holds the lease for this run" in " ".join(table.stdout.split())


def test_job_pod_monitor_without_a_metrics_port_is_bad_input() -> None:
    code, _, err = invoke("upgrade", "job", "--env", "kind", "--to", "workers=0.2.0", "--pod-monitor")
    assert code == 2 and "--pod-monitor scrapes the Job's metrics port: give --metrics-port" in err
    code, out, _ = invoke("upgrade", "job", "--env", "kind", "--to", "workers=0.2.0", "--metrics-port", "9405")
    assert code == 0
    job = next(d for d in yaml.safe_load_all(out) if d and d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"] == "metrics"


def test_status_while_a_gate_blocks_shows_the_gate_line() -> None:
    """`toolkit upgrade status` (table and json) asked from the CLI at the moment the run reports the log-recovery
    gate: the phase, the gate with its rule, the step it keeps from starting, and the reason."""
    shown: dict[str, Any] = {}

    def ask(event: Event) -> None:
        if event.kind == "gate-wait" and event.rule == "kafka.not-in-recovery" and not shown:
            shown["table"] = " ".join(invoke("upgrade", "status", "--env", "sim", "--audit-lines", "0")[1].split())
            shown["json"] = json.loads(invoke("upgrade", "status", "--env", "sim", "-o", "json")[1])["run"]

    result = operations.run_upgrade(
        resolve("sim"), {"kafka": "4.1.0"}, UpgradeSettings(), ["recovering=kafka-broker-0:1500"], on_event=ask
    )
    assert result.ok, result.reason
    assert "run: WaitingOnGate (9/10 steps) to kafka=4.1.0" in shown["table"]
    assert (
        "waiting on [kafka.not-in-recovery] before kafka/restart/kafka-broker-0 since " in shown["table"]
        and "is in log recovery: restarting it would start recovery over" in shown["table"]
    )
    run = shown["json"]
    assert run["phase"] == "WaitingOnGate" and run["stale"] is False
    assert run["gate"]["rule"] == "kafka.not-in-recovery" and run["gate"]["stage"] == "before-step"
    blocked = next(c for c in run["conditions"] if c["type"] == "GateBlocked")
    assert blocked["status"] == "True" and blocked["reason"] == "KafkaNotInRecovery"
