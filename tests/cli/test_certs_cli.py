"""`toolkit certs status|rotate` as a user runs them on the simulated platform: the JSON document, the tables at 80
and 160 columns (every Secret name whole), exit codes, refusals that change nothing, and `toolkit --help` staying
free of the certificate code's imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolkit.cli.main import app
from toolkit.config.environments import resolve
from toolkit.provision import credentials

runner = CliRunner()
ITEMS = credentials.plan(resolve("sim"))


def invoke(*args: str, width: int = 120) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": str(width)})
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("width", (80, 160))
def test_status_table_fits_and_names_every_secret_whole(width: int) -> None:
    code, out, _ = invoke("certs", "status", "--env", "sim", width=width)
    assert code == 0
    assert [line for line in out.splitlines() if len(line) > width] == []
    assert "…" not in out
    names = [f"{ITEMS.ca_namespace}/{ITEMS.ca_secret}", *[n for n in ITEMS.secret_names if n != "es-file-realm"]]
    for name in names:
        assert any(line.startswith(name + " ") for line in out.splitlines()), name
    assert "SIMULATED platform" in out and "no rotation recorded" in out


def test_status_json_names_subject_issuer_expiry_and_signer() -> None:
    code, out, _ = invoke("certs", "status", "--env", "sim", "--output", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["simulated"] is True and doc["level"] == "ok" and doc["rotation"] is None and doc["warn_days"] == 30
    kafka = next(s for s in doc["secrets"] if s["name"] == "kafka-tls")
    leaf = next(c for c in kafka["certificates"] if c["role"] == "leaf")
    assert leaf["subject"] == "kafka-node" and leaf["issuer"] == "security-data-platform sim CA"
    assert leaf["signed_by"].startswith("current CA ") and 89 <= leaf["days_left"] <= 90
    assert leaf["not_after"].endswith("+00:00") and len(leaf["fingerprint"]) == 64
    assert kafka["days_left"] == leaf["days_left"]


def test_a_missing_secret_is_an_error_exit_1(tmp_path: Path) -> None:
    from toolkit.operations import sim_store

    assert invoke("certs", "status", "--env", "sim")[0] == 0  # the simulated platform gets its certificates
    store = sim_store(resolve("sim"))
    world = store.load()
    del world.tls.secrets[f"{ITEMS.namespace}/kafka-user-indexer"]
    store.save(world)
    code, out, _ = invoke("certs", "status", "--env", "sim", "--output", "json")
    assert code == 1
    missing = next(s for s in json.loads(out)["secrets"] if s["name"] == "kafka-user-indexer")
    assert missing["present"] is False and missing["level"] == "error"
    code, _, err = invoke("certs", "rotate", "--env", "sim")
    assert code == 3 and "Secret security-platform/kafka-user-indexer does not exist" in err


def test_unsafe_skip_gates_is_refused_outside_sim_and_local() -> None:
    code, _, err = invoke("certs", "rotate", "--env", "kind", "--unsafe-skip-gates")
    assert code == 2 and "--unsafe-skip-gates is refused on environment kind" in err


def test_toolkit_help_does_not_import_the_certificate_code() -> None:
    probe = (
        "import sys; from toolkit.cli.main import app; "
        "print(sorted(m for m in sys.modules if m.startswith(('cryptography', 'kubernetes', 'toolkit.provision'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_status_yaml_is_the_same_document_as_json() -> None:
    import yaml

    _, as_json, _ = invoke("certs", "status", "--env", "sim", "--output", "json")
    code, as_yaml, _ = invoke("certs", "status", "--env", "sim", "--output", "yaml")
    from_yaml, from_json = yaml.safe_load(as_yaml), json.loads(as_json)
    assert code == 0 and from_yaml.pop("checked_at") and from_json.pop("checked_at")  # each run's own clock
    assert from_yaml == from_json
