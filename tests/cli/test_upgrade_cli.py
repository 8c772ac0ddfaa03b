"""The upgrade commands through the real CLI (typer's CliRunner): outputs, exit codes, bad input changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolkit.cli.main import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_run_json_lists_every_step_with_start_end_gates_and_outcome() -> None:
    code, out, _ = invoke("upgrade", "run", "--env", "sim", "--to", "kafka=4.1.0", "--output", "json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["passed"] is True and doc["simulated"] is True and doc["outcome"] == "completed"
    assert len(doc["steps"]) == 1 + 3 + 6
    for step in doc["steps"]:
        assert step["end"] >= step["start"] and step["outcome"] == "done"
        assert isinstance(step["gates_waited"], list)
        for gate in step["gates_waited"]:
            assert gate["rule"] and gate["seconds"] >= 0 and gate["reason"]


def test_plan_prints_ordered_steps_with_reasons_and_changes_nothing() -> None:
    code, out, _ = invoke("upgrade", "plan", "--env", "sim", "--to", "kafka=4.1.0", "--output", "json")
    assert code == 0
    plan = json.loads(out)
    assert plan["steps"][0]["kind"] == "apply-spec"
    assert all(s["reason"] for s in plan["steps"])
    assert any("active controller" in s["reason"] for s in plan["steps"])
    assert any("metadata.version stays at 4.0-IV3" in n for n in plan["notes"])
    code, out, _ = invoke("upgrade", "plan", "--env", "sim", "--to", "kafka=4.1.0", "--output", "json")
    assert json.loads(out)["steps"] == plan["steps"]  # planning twice: nothing moved


def test_table_output_says_simulated() -> None:
    code, out, _ = invoke("upgrade", "plan", "--env", "sim", "--to", "elasticsearch=8.19.3")
    assert code == 0 and "SIMULATED" in out


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--to", "kafak=4.1.0"], 2, "unknown component 'kafak'"),
        (["--to", "kafka=9.9.9"], 2, "not in the catalog"),
        (["--to", "kafka"], 2, "COMPONENT=VERSION"),
        (["--to", "kafka=4.1.0", "--to", "kafka=4.1.1"], 2, "names kafka twice"),
        (["--to", "kafka=3.9.1"], 3, "use `toolkit upgrade rollback`"),
        (["--to", "elasticsearch=9.1.3"], 3, "8.19.0"),
        (["--to", "kafka=4.1.0", "--parallel", "sometimes"], 2, "--parallel"),
        (["--to", "kafka=4.1.0", "--max-batch", "3"], 2, "--max-batch needs --parallel auto"),
        (["--to", "kafka=4.1.0", "--inject", "gremlins"], 2, "known faults are"),
        (["--to", "kafka=4.1.0", "--dry-run", "--inject", "red-cluster"], 2, "conflict"),
        ([], 2, "nothing to upgrade"),
    ],
)
def test_bad_input_is_refused_with_a_named_rule_and_changes_nothing(args: list[str], code: int, needle: str) -> None:
    before = invoke("state", "dump", "--env", "sim")[1]
    exit_code, out, err = invoke("upgrade", "run", "--env", "sim", *args)
    assert exit_code == code, (out, err)
    assert needle in " ".join((out + err).split())  # tables wrap long reasons
    assert invoke("state", "dump", "--env", "sim")[1] == before


def test_unknown_environment_names_the_known_ones() -> None:
    code, _, err = invoke("upgrade", "plan", "--env", "atlantis", "--to", "kafka=4.1.0")
    assert code == 2 and "unknown environment 'atlantis'" in err and "sim" in err and "region new" in err


def test_state_file_round_trip_and_bad_state_files(tmp_path: Path) -> None:
    code, out, _ = invoke("state", "dump", "--env", "sim")
    assert code == 0
    good = tmp_path / "state.json"
    good.write_text(out)
    code, out, _ = invoke("upgrade", "plan", "--state", str(good), "--to", "kafka=4.1.0", "--output", "json")
    assert code == 0 and json.loads(out)["environment"] == "sim"
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{not json")
    code, _, err = invoke("upgrade", "plan", "--state", str(corrupt), "--to", "kafka=4.1.0")
    assert code == 2 and "not valid JSON" in err
    old = tmp_path / "old.json"
    doc = json.loads(good.read_text())
    doc["schema_version"] = 0
    old.write_text(json.dumps(doc))
    code, _, err = invoke("upgrade", "plan", "--state", str(old), "--to", "kafka=4.1.0")
    assert code == 2 and "schema_version 0 is not supported" in err
    code, _, err = invoke("upgrade", "plan", "--state", str(tmp_path / "missing.json"), "--to", "kafka=4.1.0")
    assert code == 2 and "cannot be read" in err
    code, _, err = invoke("upgrade", "plan", "--state", str(good), "--env", "sim", "--to", "kafka=4.1.0")
    assert code == 2 and "conflict" in err


def test_state_dump_validates_against_the_published_schema() -> None:
    import jsonschema

    schema = json.loads(invoke("state", "schema")[1])
    document = json.loads(invoke("state", "dump", "--env", "sim")[1])
    jsonschema.validate(document, schema)
    document["state"]["kafka"]["nodes"][0]["state"] = "exploded"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)


def test_crash_then_same_command_resumes_and_status_reports() -> None:
    args = ["upgrade", "run", "--env", "sim", "--to", "kafka=4.1.0", "--output", "json"]
    code, _, err = invoke(*args, "--inject", "crash-after-step=3")
    assert code == 70 and "crashed" in err
    code, out, _ = invoke("upgrade", "status", "--env", "sim", "--output", "json")
    status = json.loads(out)
    assert status["in_progress"] is True
    kafka = next(c for c in status["components"] if c["component"] == "kafka")
    assert kafka["spec_version"] == "4.1.0" and 0 < kafka["on_spec"] < kafka["members"]
    code, out, _ = invoke(*args)
    assert code == 0, out
    resumed = json.loads(out)
    restarted = [m for s in resumed["steps"] if s["kind"] == "restart" for m in s["members"]]
    assert len(restarted) == len(set(restarted)) < 9  # only what was left; nothing twice
    code, out, _ = invoke("upgrade", "status", "--env", "sim", "--output", "json")
    assert json.loads(out)["in_progress"] is False


def test_halt_exit_code_and_reason_for_a_broker_that_never_returns() -> None:
    code, out, _ = invoke(
        "upgrade",
        "run",
        "--env",
        "sim",
        "--to",
        "kafka=4.1.0",
        "--output",
        "json",
        "--inject",
        "never-ready=kafka-broker-2",
        "--step-timeout",
        "120",
    )
    assert code == 1
    doc = json.loads(out)
    assert doc["outcome"] == "halted" and "kafka-broker-2" in doc["reason"]
    assert doc["steps"][-1]["outcome"] == "halted"


def test_rollback_refused_after_finalize_and_allowed_before() -> None:
    assert invoke("upgrade", "run", "--env", "sim", "--to", "kafka=4.1.0", "--output", "json")[0] == 0
    code, _out, err = invoke("upgrade", "rollback", "--env", "sim", "--component", "kafka", "--dry-run", "-o", "json")
    assert code == 0 and "kafka=4.0.1" in err
    assert invoke("upgrade", "run", "--env", "sim", "--to", "kafka=4.1.0", "--finalize", "-o", "json")[0] == 0
    code, _, err = invoke("upgrade", "rollback", "--env", "sim", "--component", "kafka")
    assert code == 3 and "metadata.version 4.1-IV1 is finalized" in err


def test_audit_trail_is_printable() -> None:
    assert invoke("upgrade", "run", "--env", "sim", "--to", "workers=0.2.0", "-o", "json")[0] == 0
    code, out, _ = invoke("upgrade", "audit", "--env", "sim", "--output", "json")
    trail = json.loads(out)
    assert code == 0 and trail[0]["what"] == "start" and trail[-1]["result"] == "completed"
    assert all({"wall", "at", "who", "what", "why", "result"} <= set(e) for e in trail)


def test_cluster_up_from_versions_and_down() -> None:
    code, out, _ = invoke("cluster", "up", "--env", "sim", "--from", "kafka=3.9.1")
    assert code == 0 and "created" in out
    plan = json.loads(invoke("upgrade", "plan", "--env", "sim", "--to", "kafka=4.1.0", "-o", "json")[1])
    assert not plan["refused"]
    assert invoke("cluster", "down", "--env", "sim")[1].strip().endswith("removed")


@pytest.mark.parametrize(
    "args",
    [
        ["upgrade", "run", "--env", "sim", "--to", "kafka=4.1.0", "--poll", "nan"],
        ["upgrade", "run", "--env", "sim", "--to", "kafka=4.1.0", "--gate-timeout", "inf"],
        ["upgrade", "run", "--env", "sim", "--to", "kafka=4.1.0", "--poll", "0"],
        ["upgrade", "run", "--env", "sim", "--to", "kafka=4.1.0", "--step-timeout", "-5"],
        ["upgrade", "rollback", "--env", "sim", "--poll", "nan"],
        ["upgrade", "rollback", "--env", "sim", "--confirm", "-1"],
        ["rehearse", "--env", "sim", "--to", "kafka=4.1.0", "--step-timeout", "nan"],
    ],
)
def test_durations_that_cannot_work_are_refused_on_every_path(args: list[str]) -> None:
    code, out, err = invoke(*args)
    assert code == 2 and ("not a finite number of seconds" in err or "must be" in err), (out, err)
    assert "not created yet" in invoke("cluster", "status", "--env", "sim")[1]  # nothing was opened


def zero_replica_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    envs = tmp_path / "envs"
    envs.mkdir()
    (envs / "norep.yaml").write_text("kind: sim\nplatform:\n  elasticsearch:\n    version: '8.18.3'\n    replicas: 0\n")
    monkeypatch.setenv("TOOLKIT_ENVIRONMENTS_DIR", str(envs))
    return "norep"


def test_indices_with_zero_replicas_are_refused_with_exit_3_unless_accepted_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = zero_replica_environment(tmp_path, monkeypatch)
    code, out, _ = invoke("upgrade", "plan", "--env", env, "--to", "elasticsearch=8.19.3", "-o", "json")
    plan = json.loads(out)
    assert code == 3 and plan["refusals"][0]["rule"] == "elasticsearch.zero-replicas"
    names = ["events-hot-0000", "events-warm-0001", "events-hot-0002", "events-warm-0003"]
    assert all(n in plan["refusals"][0]["reason"] for n in names)
    code, out, _ = invoke(
        "upgrade", "plan", "--env", env, "--to", "elasticsearch=8.19.3", "-o", "json",
        "--accept-unavailable-index", ",".join(names[:2]),
    )  # fmt: skip
    assert code == 3 and names[0] not in json.loads(out)["refusals"][0]["reason"]
    accept = ["--accept-unavailable-index", ",".join(names[:2]), "--accept-unavailable-index", ",".join(names[2:])]
    code, out, _ = invoke("upgrade", "run", "--env", env, "--to", "elasticsearch=8.19.3", "-o", "json", *accept)
    assert code == 0, out


def test_a_typo_in_a_fault_is_an_error_naming_the_known_pods_on_every_path() -> None:
    assert invoke("cluster", "up", "--env", "sim")[0] == 0
    before = invoke("state", "dump", "--env", "sim")[1]
    code, _, err = invoke(
        "upgrade", "run", "--env", "sim", "--to", "kafka=4.1.0", "--inject", "never-ready=kafka-brokr-2"
    )
    assert code == 2 and "never-ready=kafka-brokr-2: no such pod in sim" in err and "kafka-broker-2" in err
    assert invoke("state", "dump", "--env", "sim")[1] == before
    code, _, err = invoke("rehearse", "--env", "sim", "--to", "kafka=4.1.0", "--inject", "unready=kafka-brokr-2")
    assert code == 2 and "no such pod" in err  # not a passing rehearsal
    code, _, err = invoke("cluster", "up", "--env", "sim", "--inject", "recovering=es-hot-0:30")
    assert code == 2 and "log recovery applies to Kafka nodes" in err


def test_a_fault_injected_into_an_existing_platform_is_applied() -> None:
    assert invoke("cluster", "up", "--env", "sim")[0] == 0
    assert invoke("upgrade", "run", "--env", "sim", "--to", "workers=0.2.0", "-o", "json")[0] == 0  # time passes
    code, out, _ = invoke(
        "upgrade", "run", "--env", "sim", "--to", "kafka=4.1.0", "--inject", "unready=kafka-broker-4", "-o", "json"
    )
    assert code == 0, out
    restarts = [s["members"] for s in json.loads(out)["steps"] if s["kind"] == "restart"]
    assert restarts[0] == ["kafka-broker-4"]  # applied now: the unready broker restarts first


def test_pause_and_resume_are_stored_with_the_platform_and_shown_by_status() -> None:
    code, out, _ = invoke("upgrade", "pause", "--env", "sim", "--reason", "freeze", "-o", "json")
    assert code == 0 and json.loads(out)["request"]["action"] == "pause"
    assert json.loads(invoke("upgrade", "status", "--env", "sim", "-o", "json")[1])["request"]["reason"] == "freeze"
    assert "already requested" in invoke("upgrade", "pause", "--env", "sim")[1]
    code, out, _ = invoke("upgrade", "resume", "--env", "sim")
    assert code == 0 and out.startswith("resumed")
    assert json.loads(invoke("upgrade", "status", "--env", "sim", "-o", "json")[1])["request"] is None
    assert "nothing to resume" in invoke("upgrade", "resume", "--env", "sim")[1]
    trail = [e["what"] for e in json.loads(invoke("upgrade", "audit", "--env", "sim", "-o", "json")[1])]
    assert trail == ["pause", "resume"]
