"""`toolkit rehearse --env sim --rotate-certs`: a certificate rotation under live (simulated) load loses nothing
behind the gates; the same rehearsal without gates loses and goes dark; what it cannot be is refused (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolkit.cli.main import app

runner = CliRunner()
LOAD = ["--rate", "100", "--syslog-rate", "200"]


def rehearse(tmp_path: Path, *args: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    folder = tmp_path / "report"
    result = runner.invoke(
        app, ["rehearse", "--env", "sim", "--rotate-certs", *LOAD, "--output", "json", "--report", str(folder), *args]
    )
    return result.exit_code, json.loads(result.stdout), result.stderr


@pytest.mark.slow  # a whole simulated rotation under load: ~8 s each
def test_a_gated_rotation_under_load_loses_nothing(tmp_path: Path) -> None:
    code, doc, _ = rehearse(tmp_path)
    assert code == 0, doc["reasons"]
    assert doc["passed"] is True and doc["simulated"] is True and doc["to"] == {}
    assert doc["lost"] == 0 and doc["duplicated"] == 0 and doc["out_of_order"] == 0
    assert doc["acknowledged"] == doc["consumed"] == doc["produced"] > 0
    assert doc["syslog"]["accepted"] == doc["syslog"]["stored"] == doc["syslog"]["sent"]
    assert doc["elasticsearch_ever_red"] is False
    assert all(v == 0 for v in doc["max_unavailable_seconds"].values())
    assert any("certificate rotation 1" in n and "drop roll done" in n for n in doc["notes"])
    restarted = [m for s in doc["steps"] if s["kind"] == "restart" for m in s["members"]]
    assert len(restarted) == 3 * len(set(restarted)) and len(set(restarted)) == 18  # each pod once per phase
    rolled = [s["members"][0] for s in doc["steps"] if s["kind"] == "roll"]
    assert sorted(rolled) == ["workers-indexer"] * 3 + ["workers-receiver"] * 3


@pytest.mark.slow
def test_the_same_rotation_without_gates_loses_and_fails(tmp_path: Path) -> None:
    code, doc, stderr = rehearse(tmp_path, "--unsafe-skip-gates")
    assert code == 1 and "every health gate is OFF" in stderr
    assert doc["passed"] is False and doc["unsafe_skip_gates"] is True
    assert doc["lost"] > 0 and doc["lost_by_path"]["udp_sent_while_no_receiver"] > 0
    assert doc["elasticsearch_ever_red"] is True
    assert doc["max_unavailable_seconds"]["produce"] > 0 and doc["max_unavailable_seconds"]["ingest"] > 0


def test_a_rotation_rehearsal_is_refused_with_to_or_on_a_cluster_it_does_not_deploy_to(tmp_path: Path) -> None:
    both = runner.invoke(app, ["rehearse", "--env", "sim", "--rotate-certs", "--to", "kafka=4.1.0"])
    assert both.exit_code == 2 and "--rotate-certs and --to conflict" in both.stderr
    region = runner.invoke(app, ["rehearse", "--env", "eu-west-1", "--rotate-certs"])
    assert region.exit_code == 2
    assert "rehearses on sim, local and kind" in region.stderr
    assert "toolkit certs rotate --env eu-west-1" in region.stderr
    nothing = runner.invoke(app, ["rehearse", "--env", "sim"])
    assert nothing.exit_code == 2 and "or --rotate-certs" in nothing.stderr
