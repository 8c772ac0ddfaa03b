"""`toolkit rehearse --env sim`: zero loss with the gates, visible loss without them, a halted step loses nothing."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolkit.cli.main import app
from toolkit.rehearsal.verdict import judge

runner = CliRunner()
LOAD = ["--rate", "100", "--syslog-rate", "200"]


def rehearse(tmp_path: Path, *args: str) -> tuple[int, dict, Path]:  # type: ignore[type-arg]
    folder = tmp_path / "report"
    result = runner.invoke(app, ["rehearse", "--env", "sim", *LOAD, "--output", "json", "--report", str(folder), *args])
    return result.exit_code, json.loads(result.stdout), folder


@pytest.mark.slow  # a whole simulated upgrade under load: ~5 s each
def test_gated_rehearsal_loses_nothing_and_writes_every_report(tmp_path: Path) -> None:
    code, doc, folder = rehearse(
        tmp_path,
        "--to",
        "kafka=4.1.0",
        "--to",
        "elasticsearch=8.19.3",
        "--to",
        "workers=0.2.0",
        "--junit",
        str(tmp_path / "junit.xml"),
    )
    assert code == 0, doc["reasons"]
    assert doc["passed"] is True and doc["simulated"] is True
    assert doc["lost"] == 0 and doc["duplicated"] == 0 and doc["out_of_order"] == 0
    assert doc["acknowledged"] == doc["consumed"] == doc["produced"] > 0
    assert doc["syslog"]["accepted"] == doc["syslog"]["stored"] == doc["syslog"]["sent"]
    assert doc["elasticsearch_ever_red"] is False
    assert set(doc["max_unavailable_seconds"]) == {"produce", "search", "ingest"}
    assert all(v == 0 for v in doc["max_unavailable_seconds"].values())
    assert len(doc["steps"]) > 10 and all(s["outcome"] == "done" for s in doc["steps"])
    assert (folder / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    assert suite.get("failures") == "0" and int(suite.get("tests") or 0) == 5 + len(doc["steps"])


@pytest.mark.slow  # a whole simulated upgrade under load: ~5 s each
def test_negative_control_without_gates_reports_loss_and_fails(tmp_path: Path) -> None:
    code, doc, folder = rehearse(
        tmp_path, "--to", "kafka=4.1.0", "--to", "elasticsearch=8.19.3", "--to", "workers=0.2.0", "--unsafe-skip-gates"
    )
    assert code != 0
    assert doc["passed"] is False and doc["unsafe_skip_gates"] is True
    assert doc["lost"] > 0 and doc["lost_by_path"]["udp_sent_while_no_receiver"] > 0
    assert doc["elasticsearch_ever_red"] is True and doc["search_errors"] > 0
    assert doc["max_unavailable_seconds"]["ingest"] > 0 and doc["max_unavailable_seconds"]["produce"] > 0
    suite = ET.parse(folder / "junit.xml").getroot()
    assert int(suite.get("failures") or 0) >= 2


@pytest.mark.slow  # a whole simulated upgrade under load: ~5 s each
def test_a_broker_that_never_returns_halts_names_the_step_and_loses_nothing(tmp_path: Path) -> None:
    code, doc, _ = rehearse(
        tmp_path, "--to", "kafka=4.1.0", "--inject", "never-ready=kafka-broker-1", "--step-timeout", "200"
    )
    assert code == 1
    assert doc["upgrade_outcome"] == "halted" and "kafka-broker-1" in doc["upgrade_reason"]
    halted = [s for s in doc["steps"] if s["outcome"] == "halted"]
    assert len(halted) == 1 and halted[0]["members"] == ["kafka-broker-1"]
    assert doc["lost"] == 0 and doc["duplicated"] == 0


def test_unsafe_is_refused_outside_sim_and_local(tmp_path: Path) -> None:
    result = runner.invoke(app, ["rehearse", "--env", "kind", "--to", "kafka=4.1.0", "--unsafe-skip-gates"])
    assert result.exit_code == 2 and "refused on environment kind" in result.stderr


def test_verdict_rules() -> None:
    base = {
        "lost_acknowledged": 0,
        "lost_accepted": 0,
        "syslog_udp_unreceived": 0,
        "duplicated": 0,
        "out_of_order": 0,
        "ever_red": False,
        "max_unavailable_seconds": {"produce": 0, "search": 3, "ingest": 0},
    }
    assert judge(base, "completed").passed
    assert not judge({**base, "lost_acknowledged": 2}, "completed").passed
    assert not judge({**base, "lost_accepted": 1}, "completed").passed
    assert not judge({**base, "duplicated": 1}, "completed").passed
    assert not judge({**base, "ever_red": True}, "completed").passed
    assert not judge(base, "halted").passed
    assert not judge(base, "completed", max_unavailable_bound=2).passed
    assert judge(base, "completed", max_unavailable_bound=5).passed


def test_a_kubernetes_rehearsal_where_no_node_pool_launches_nodes_is_refused_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLKIT_STATE_DIR", str(tmp_path))
    refused = runner.invoke(app, ["rehearse", "--env", "kind", "--to", "kubernetes=1.33"])
    assert refused.exit_code == 2
    assert "runs on sim and local" in refused.stderr and "--env local --to kubernetes=1.20" in refused.stderr
    assert not any(tmp_path.iterdir())  # nothing was started or written


def test_a_node_image_without_a_local_kubernetes_roll_is_refused() -> None:
    for args in (["--env", "local", "--to", "workers=0.2.0"], ["--env", "sim", "--to", "kubernetes=1.34"]):
        refused = runner.invoke(app, ["rehearse", *args, "--node-image", "local-2"])
        assert refused.exit_code == 2, args
        assert "--node-image local-2: a node image is rolled only by a Kubernetes roll on the local" in refused.stderr
