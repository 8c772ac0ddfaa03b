"""Each install role in a virtualenv of its own, built the way users and the Dockerfile build it
(benchmarks/install_sizes.py: the toolkit wheel from this checkout; pip from its cache or the configured index).

- the worker image ([worker] pins + the toolkit without dependencies, as the Dockerfile does): `toolkit-worker`
  starts (`--help`, `receiver --check-config`, `indexer --check-config`) and neither installs nor imports pulumi,
  ansible, boto3, matplotlib or kubernetes; the one `toolkit` command the Elasticsearch chart runs from that image
  (`toolkit es apply-templates`) starts too;
- the orchestrator (`pip install toolkit`, what `make run` installs): the simulated upgrade runs; every command that
  needs an extra says which one and exits 2 instead of a traceback.
Expected pins are read from pyproject.toml, never written here.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from benchmarks.install_sizes import build_wheel, create_role_venv, packages
from scripts.extra_requirements import requirements

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pulumi", "pulumi_aws", "pulumi_kubernetes", "ansible", "boto3", "botocore", "matplotlib", "kubernetes")
HEAVY_DISTRIBUTIONS = {"pulumi", "pulumi-aws", "pulumi-kubernetes", "ansible-core", "boto3", "matplotlib", "kubernetes"}
WORKER_ENV = {
    "TOOLKIT_WORKER_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
    "TOOLKIT_WORKER_ELASTICSEARCH_URL": "http://127.0.0.1:9200",
}


def installed_names(venv: Path) -> set[str]:
    return {re.sub(r"[-_.]+", "-", line.split("==")[0].lower()) for line in packages(venv)}


def pin(role: str, name: str) -> str:
    return next(line for line in requirements(role) if line.lower().startswith(name + "=="))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def worker_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_role_venv("worker image", wheel, tmp_path_factory.mktemp("roles") / "worker")


@pytest.fixture(scope="module")
def base_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_role_venv("toolkit", wheel, tmp_path_factory.mktemp("roles") / "toolkit")


def run(venv: Path, argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A command of the virtualenv, from a directory outside the checkout (nothing imported from the source tree)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TOOLKIT_", "PYTHON", "VIRTUAL_ENV"))}
    clean.update(PATH=f"{venv / 'bin'}:/usr/bin:/bin", TOOLKIT_STATE_DIR=str(cwd / "state"), COLUMNS="100", **env)
    return subprocess.run(argv, cwd=cwd, env=clean, capture_output=True, text=True, timeout=300)


def imported_modules(venv: Path, script: str, args: list[str], cwd: Path) -> set[str]:
    """Top-level modules a console script imported, from Python's own import log (-X importtime)."""
    done = run(venv, [str(venv / "bin" / "python"), "-X", "importtime", str(venv / "bin" / script), *args], cwd,
               **WORKER_ENV)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)\s*$", done.stderr, flags=re.M)
    assert names, "no import log: -X importtime printed nothing"
    return {name.split(".")[0] for name in names}


def test_worker_image_installs_no_orchestration_library(worker_venv: Path) -> None:
    installed = installed_names(worker_venv)
    assert installed & HEAVY_DISTRIBUTIONS == set()
    assert {"confluent-kafka", "elasticsearch", "orjson", "prometheus-client", "toolkit"} <= installed


@pytest.mark.parametrize(
    "args", [["--help"], ["receiver", "--check-config"], ["indexer", "--check-config"]], ids=" ".join
)
def test_worker_starts_and_imports_none_of_the_orchestration_libraries(
    worker_venv: Path, tmp_path: Path, args: list[str]
) -> None:
    modules = imported_modules(worker_venv, "toolkit-worker", args, tmp_path)
    assert "toolkit" in modules
    assert modules & set(HEAVY) == set()


def test_worker_roles_import_completely_in_the_worker_image(worker_venv: Path, tmp_path: Path) -> None:
    """--check-config stops before the roles' modules; their imports (Kafka, Elasticsearch, orjson) must resolve."""
    code = (
        "import sys, toolkit.worker.receiver, toolkit.worker.indexer; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    done = run(worker_venv, [str(worker_venv / "bin" / "python"), "-c", code], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"


def test_the_elasticsearch_charts_templates_job_command_starts_in_the_worker_image(
    worker_venv: Path, tmp_path: Path
) -> None:
    done = run(worker_venv, ["toolkit", "es", "apply-templates", "--help"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--password-file" in done.stdout


def test_orchestrator_install_runs_the_simulated_upgrade_without_any_extra(base_venv: Path, tmp_path: Path) -> None:
    installed = installed_names(base_venv)
    assert installed.isdisjoint({"pulumi", "pulumi-aws", "boto3", "matplotlib", "noida-db", "orjson", "pytest"})
    assert run(base_venv, ["toolkit", "--help"], tmp_path).returncode == 0
    done = run(base_venv, ["toolkit", "upgrade", "run", "--env", "sim", "--to", "kafka=4.1.0"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "completed" in done.stdout


def test_orchestrator_install_names_the_extra_each_command_needs(base_venv: Path, tmp_path: Path) -> None:
    preflight = run(base_venv, ["toolkit", "region", "preflight", "eu-west-1"], tmp_path,
                    TOOLKIT_STACKS_DIR=str(ROOT / "stacks"))  # fmt: skip
    assert preflight.returncode == 2, preflight.stderr
    assert pin("aws", "boto3") in preflight.stderr and "pip install 'toolkit[aws]'" in preflight.stderr
    assert "Traceback" not in preflight.stderr

    local = run(base_venv, ["toolkit", "rehearse", "--env", "local", "--to", "kafka=4.1.0"], tmp_path)
    assert local.returncode == 2, local.stderr
    assert pin("local", "noida-db") in local.stderr and "pip install 'toolkit[local]'" in local.stderr
    assert not (tmp_path / "state" / "local").exists(), "the local rehearsal started something before refusing"

    folder = tmp_path / "report"
    sim = run(base_venv, ["toolkit", "rehearse", "--env", "sim", "--to", "kafka=4.1.0", "--report", str(folder)],
              tmp_path)  # fmt: skip
    assert sim.returncode == 0, sim.stderr[-3000:]
    assert "timeline.png not drawn" in sim.stderr and "pip install 'toolkit[report]'" in sim.stderr
    assert (folder / "report.json").is_file() and not (folder / "timeline.png").exists()

    indexer = run(base_venv, ["toolkit-worker", "indexer"], tmp_path, **WORKER_ENV)
    assert indexer.returncode == 2, indexer.stderr[-3000:]
    assert pin("worker", "orjson") in indexer.stderr and "pip install 'toolkit[worker]'" in indexer.stderr
