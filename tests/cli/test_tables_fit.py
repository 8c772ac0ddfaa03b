"""The main tables at 80 and 160 columns: every line fits, and every identifier (pod, workload, rule, version) is
printed whole, so kafka-controller-0, -1 and -2 stay distinguishable.

Two sources: the real CLI on the simulated platform (upgrade plan, upgrade run, upgrade status, rehearse), with the
expected names read from the same command's JSON output; and the real renderers fed a plan and a run result with
the long pod names of a real release (`<release>-kafka-controller-2`, `<release>-elasticsearch-master-0`) and a
blocked step, which the simulated platform's short names would not stress.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolkit.cli import render
from toolkit.engine.executor import GateWait, RunResult, StepRecord
from toolkit.model import Plan, Step, Verdict
from toolkit.rehearsal import report as report_mod

WIDTHS = (80, 160)
TARGETS = ("--to", "kafka=4.1.0", "--to", "elasticsearch=8.19.3", "--to", "workers=0.2.0")


def invoke(width: int, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_app(), list(args), env={"COLUMNS": str(width)})
    return result.exit_code, result.stdout


def _app():  # imported late: the CLI module reads no width at import, the console does at print time
    from toolkit.cli.main import app

    return app


def whole(name: str, text: str) -> bool:
    """`name` appears as a complete token: not cut (…), not folded over two lines, not a prefix of a longer name."""
    return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text) is not None


def assert_fits(text: str, width: int) -> None:
    long = [line for line in text.splitlines() if len(line) > width]
    assert long == [], f"{len(long)} line(s) wider than {width}: {long[:2]}"
    assert "…" not in text, "an ellipsis: something was cut"


def assert_all_whole(names: set[str], text: str) -> None:
    missing = sorted(n for n in names if not whole(n, text))
    assert missing == [], f"not printed whole: {missing}\n{text}"


@pytest.mark.parametrize("width", WIDTHS)
def test_upgrade_plan_prints_every_member_whole(width: int) -> None:
    code, doc = invoke(width, "upgrade", "plan", "--env", "sim", *TARGETS, "--output", "json")
    assert code == 0
    members = {m for step in json.loads(doc)["steps"] for m in step["members"]}
    assert {"kafka-controller-0", "kafka-controller-1", "kafka-controller-2"} <= members
    code, out = invoke(width, "upgrade", "plan", "--env", "sim", *TARGETS)
    assert code == 0
    assert_fits(out, width)
    assert_all_whole(members, out)


@pytest.mark.parametrize("width", WIDTHS)
def test_upgrade_run_result_prints_every_member_and_rule_whole(
    width: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the simulated platform is deterministic: a run in a second state directory takes the same steps
    code, doc = invoke(width, "upgrade", "run", "--env", "sim", *TARGETS, "--output", "json")
    assert code == 0
    steps = json.loads(doc)["steps"]
    members = {m for s in steps for m in s["members"]}
    rules = {g["rule"] for s in steps for g in s["gates_waited"]}
    assert "elasticsearch.shutdown-complete" in rules  # the longest rule id, the one that used to fold
    monkeypatch.setenv("TOOLKIT_STATE_DIR", str(tmp_path / "second"))
    code, out = invoke(width, "upgrade", "run", "--env", "sim", *TARGETS)
    assert code == 0
    assert_fits(out, width)
    assert_all_whole(members | rules, out)


@pytest.mark.parametrize("width", WIDTHS)
def test_upgrade_status_prints_components_and_versions_whole(width: int) -> None:
    code, doc = invoke(width, "upgrade", "status", "--env", "sim", "--output", "json")
    assert code == 0
    status = json.loads(doc)
    names = {c["component"] for c in status["components"]} | {c["spec_version"] for c in status["components"]}
    code, out = invoke(width, "upgrade", "status", "--env", "sim")
    assert code == 0
    assert_fits(out, width)
    assert_all_whole(names, out)


@pytest.mark.parametrize("width", WIDTHS)
def test_rehearsal_table_prints_every_member_and_rule_whole(width: int, tmp_path: Path) -> None:
    folder = tmp_path / "report"
    code, out = invoke(width, "rehearse", "--env", "sim", "--to", "kafka=4.1.0", "--report", str(folder))
    assert code == 0, out
    steps = json.loads((folder / "report.json").read_text())["steps"]
    names = {m for s in steps for m in s["members"]} | {g["rule"] for s in steps for g in s["gates_waited"]}
    assert {"kafka-controller-0", "kafka-controller-1", "kafka-controller-2"} <= names
    assert_fits(out, width)
    assert_all_whole(names, out)


# ------------------------------------------------------------------ the renderers, with a real release's pod names

RELEASE = "security-platform"
CONTROLLERS = [f"{RELEASE}-kafka-controller-{i}" for i in range(3)]
BROKERS = [f"{RELEASE}-kafka-broker-{i}" for i in range(6)]
MASTERS = [f"{RELEASE}-elasticsearch-master-{i}" for i in range(3)]
BLOCKED = Verdict.refuse(
    "kafka.not-in-recovery",
    f"kafka node 103 ({BROKERS[3]}) is in log recovery: restarting it would start recovery over",
)


def _plan() -> Plan:
    steps = [
        Step("apply-spec", "kafka", (f"{RELEASE}-kafka-controller", f"{RELEASE}-kafka-broker"), "4.1.0", "spec first"),
        *(Step("restart", "kafka", (pod,), "4.1.0", f"controller {pod[-1]}: controllers first") for pod in CONTROLLERS),
        Step("restart", "kafka", (BROKERS[0], BROKERS[3]), "4.1.0", "brokers 100, 103 share no partition", BLOCKED),
        *(Step("restart", "elasticsearch", (pod,), "8.19.3", "masters after data nodes") for pod in MASTERS),
    ]
    return Plan("eu-west-1", False, (("kafka", "4.1.0"), ("elasticsearch", "8.19.3")), tuple(steps))


def _result(plan: Plan) -> RunResult:
    records, at = [], 1000.0
    for step in plan.steps:
        rules = (
            ["elasticsearch.shutdown-complete", "elasticsearch.shutdown-removed"]
            if step.component == "elasticsearch"
            else ["kafka.isr-rejoined", "kafka.voter-caught-up"]
        )
        record = StepRecord(
            id=f"{step.component}/{step.kind}/{'+'.join(step.members)}",
            kind=step.kind,
            component=step.component,
            members=step.members,
            version=step.version,
            reason=step.reason,
            started_at=at,
            ended_at=at + 95,
            outcome="done",
            gates_waited=[GateWait(rule, 12.0, "waited") for rule in rules],
        )
        records.append(record)
        at += 100
    return RunResult("eu-west-1", False, "completed", "every component runs its target version", "run.completed",
                     1000.0, at, plan, records)  # fmt: skip


@pytest.mark.parametrize("width", WIDTHS)
def test_renderers_keep_real_release_pod_names_and_blocking_rule_whole(
    width: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    plan = _plan()
    render.print_plan(plan, "table")
    out = capsys.readouterr().out
    assert_fits(out, width)
    assert_all_whole({*CONTROLLERS, *BROKERS[:1], BROKERS[3], *MASTERS, "kafka.not-in-recovery"}, out)
    render.print_result(_result(plan), "table")
    out = capsys.readouterr().out
    assert_fits(out, width)
    assert_all_whole({*CONTROLLERS, *MASTERS, "elasticsearch.shutdown-complete", "kafka.voter-caught-up"}, out)


@pytest.mark.parametrize("width", WIDTHS)
def test_rehearsal_renderer_keeps_real_release_pod_names_whole(
    width: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    result = _result(_plan())
    summary = {
        key: 0
        for key in [
            "produced",
            "acknowledged",
            "consumed",
            "lost_acknowledged",
            "lost_accepted",
            "syslog_udp_unreceived",
            "duplicated",
            "out_of_order",
            "produce_errors",
            "search_errors",
            "search_probes",
            "syslog_sent",
            "syslog_sent_udp",
            "syslog_sent_tcp",
            "accepted",
            "stored",
            "syslog_tcp_refused_seconds",
        ]
    }
    summary.update(ever_red=False, max_unavailable_seconds={"produce": 0.0})
    report = report_mod.RehearsalReport(
        "20250101T000000Z", "kind", False, {"kafka": "4.0.1"}, {"kafka": "4.1.0"}, 500.0, 1000.0, False,
        "completed", "done", True, [], summary, [r.as_dict() for r in result.steps],
    )  # fmt: skip
    report_mod.print_table(report)
    out = capsys.readouterr().out
    assert_fits(out, width)
    assert_all_whole({*CONTROLLERS, *MASTERS, "elasticsearch.shutdown-complete"}, out)
