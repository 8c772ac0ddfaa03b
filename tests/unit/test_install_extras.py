"""Install roles: pins exact and equal wherever a package appears, and the one helper (`toolkit.errors.missing_extra`)
naming the extra that brings a missing import, through the real CLI paths that use it.

Expected pins and extras are read from pyproject.toml here (scripts/extra_requirements.py, the Dockerfile's reader);
the helper reads them from the installed package's metadata: the two must agree. The end-to-end proof, in
virtualenvs holding one role each, is tests/install/test_slim_install.py (slow).
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scripts.extra_requirements import requirements
from toolkit.errors import MissingExtraError, missing_extra, require_extra

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]+\])?==([0-9][0-9A-Za-z.+-]*)$")
MODULE_OF = {"pyyaml": "yaml", "helm-python-sdk": "helm_python", "noida-db": "noida_db"}


def _pins(lines: list[str]) -> dict[str, str]:
    return {m.group(1).lower(): m.group(3) for m in map(PIN.match, lines) if m}


def _lists() -> dict[str, list[str]]:
    return {"base": PROJECT["dependencies"], **EXTRAS}


def test_every_requirement_is_an_exact_pin_or_a_role_of_the_toolkit() -> None:
    loose = [
        (role, line)
        for role, lines in _lists().items()
        for line in lines
        if not PIN.match(line) and not re.fullmatch(r"toolkit\[[a-z,]+\]", line)
    ]
    assert loose == []


def test_a_package_in_several_roles_has_one_pin() -> None:
    seen: dict[str, set[str]] = {}
    for lines in _lists().values():
        for name, version in _pins(lines).items():
            seen.setdefault(name, set()).add(version)
    assert {name: versions for name, versions in seen.items() if len(versions) > 1} == {}


def test_dev_holds_every_role_so_make_test_installs_what_the_whole_suite_needs() -> None:
    dev = set(requirements("dev"))
    for role in ("base", *(e for e in EXTRAS if e != "scan")):  # `scan` is Checkov's own virtualenv, not a role
        assert set(requirements(role)) - {"toolkit"} <= dev | set(requirements("base")), role


def test_the_worker_role_leaves_out_every_orchestration_library() -> None:
    worker = set(_pins(requirements("worker")))
    assert worker.isdisjoint({"kubernetes", "pulumi", "pulumi-aws", "ansible-core", "boto3", "matplotlib"})
    assert worker.isdisjoint({"helm-python-sdk", "pulumi-kubernetes", "noida-db"})


def test_the_installed_metadata_is_this_pyproject() -> None:
    """The helper reads the installed metadata: stale metadata (pyproject edited, not reinstalled) would mislead it."""
    installed = {line.split(";")[0].strip() for line in metadata.requires("toolkit") or []}
    declared = {line for lines in _lists().values() for line in lines}
    assert {
        re.sub(r"\[([^\]]+)\]", lambda m: "[" + ",".join(sorted(m.group(1).split(","))) + "]", d) for d in declared
    } == installed


@pytest.mark.parametrize("extra", ["aws", "report", "worker", "local"])
def test_each_package_only_an_extra_brings_names_that_extra_and_its_pin(extra: str) -> None:
    base = set(_pins(PROJECT["dependencies"]))
    for name, version in _pins(EXTRAS[extra]).items():
        if name in base:
            continue
        holders = [e for e in ("worker", "report", "aws", "local", "dev") if name in _pins(EXTRAS[e])]
        module = MODULE_OF.get(name, name.replace("-", "_"))
        error = missing_extra(ModuleNotFoundError(f"No module named {module!r}", name=module), "this command")
        assert isinstance(error, MissingExtraError)
        assert f"{name}=={version}" in str(error)
        assert f"pip install 'toolkit[{holders[0]}]'" in str(error), str(error)


def test_a_base_package_names_the_base_install() -> None:
    error = missing_extra(ModuleNotFoundError(name="kubernetes"))
    version = _pins(PROJECT["dependencies"])["kubernetes"]
    assert error is not None and f"kubernetes=={version}" in str(error) and "pip install 'toolkit'" in str(error)


def test_a_module_the_toolkit_does_not_depend_on_is_a_bug_not_a_hint() -> None:
    assert missing_extra(ModuleNotFoundError(name="no_such_library")) is None
    assert missing_extra(ImportError("cannot import name 'x'")) is None


def test_require_extra_lists_every_missing_package_of_the_role(monkeypatch: pytest.MonkeyPatch) -> None:
    real = metadata.distribution
    gone = {"noida-db", "orjson"}

    def distribution(name: str) -> metadata.Distribution:
        if name.lower() in gone:
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "distribution", distribution)
    pins = _pins(requirements("local"))
    with pytest.raises(MissingExtraError) as caught:
        require_extra("local", "a rehearsal on local")
    message = str(caught.value)
    assert f"noida-db=={pins['noida-db']}" in message and f"orjson=={pins['orjson']}" in message
    assert "pip install 'toolkit[local]'" in message
    monkeypatch.setattr(metadata, "distribution", real)
    require_extra("local", "a rehearsal on local")  # everything there: nothing raised


def test_the_console_script_turns_a_missing_extra_into_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from toolkit.cli.main import run

    monkeypatch.setitem(sys.modules, "boto3", None)  # `import boto3` now raises ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "toolkit.targets.aws", raising=False)
    monkeypatch.setenv("TOOLKIT_STACKS_DIR", str(ROOT / "stacks"))
    monkeypatch.setattr(sys, "argv", ["toolkit", "region", "preflight", "eu-west-1"])
    with pytest.raises(SystemExit) as exited:
        run()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"boto3=={_pins(EXTRAS['aws'])['boto3']}" in err and "pip install 'toolkit[aws]'" in err
    assert "Traceback" not in err


def test_a_rehearsal_without_the_report_extra_still_reports_and_says_how_to_get_the_picture(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from toolkit.cli.main import app

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = CliRunner().invoke(
        app, ["rehearse", "--env", "sim", "--to", "kafka=4.1.0", "--report", str(tmp_path / "r"), "--rate", "50"]
    )
    assert result.exit_code == 0, result.stderr
    assert "timeline.png not drawn" in result.stderr and "pip install 'toolkit[report]'" in result.stderr
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["junit.xml", "report.json"]
