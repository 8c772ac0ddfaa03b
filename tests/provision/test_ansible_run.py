"""The Ansible side: generated inventory and group vars, a real ansible-playbook run through the toolkit's
callback, ansible-lint and syntax-check of playbooks/, and `toolkit deploy` refusing bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from toolkit import catalog
from toolkit.cli.main import app
from toolkit.config.environments import from_document, resolve
from toolkit.operations import UsageError
from toolkit.provision import ansible
from toolkit.provision.deploy import deploy_platform

BIN = Path(sys.executable).parent


def test_inventory_hands_the_modules_the_environment_resolved_once_and_no_image() -> None:
    env = resolve("local")
    files = ansible.generated_files(env, {"kafka": "4.1.0"})
    host = files["inventory.yml"]["all"]["children"][ansible.HOST_GROUP]["hosts"]["localhost"]
    assert host == {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    group_vars = files[f"group_vars/{ansible.HOST_GROUP}.yml"]
    # the modules read the environment back from its document: nothing resolves the name a second time
    assert from_document(yaml.safe_load(yaml.safe_dump(group_vars["toolkit_environment"]))) == env
    assert group_vars["toolkit_versions"] == {"kafka": "4.1.0"}
    assert group_vars["toolkit_namespace"] == env.platform.namespace
    assert group_vars["toolkit_namespace_labels"]["toolkit.io/environment"] == "local"
    text = yaml.safe_dump(files)
    for component in ("kafka", "elasticsearch", "workers"):  # images come only from the catalog, in the modules
        assert catalog.load().component(component).image not in text


def test_generated_files_are_written_per_run(tmp_path: Path) -> None:
    inventory = ansible.write_generated(resolve("kind"), tmp_path)
    assert yaml.safe_load(inventory.read_text())["all"]["children"][ansible.HOST_GROUP]
    group_vars = yaml.safe_load((tmp_path / "group_vars" / f"{ansible.HOST_GROUP}.yml").read_text())
    assert group_vars["toolkit_environment"]["name"] == "kind"


def test_a_playbook_run_is_parsed_into_changed_and_failed_tasks(tmp_path: Path) -> None:
    playbook = tmp_path / "probe.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Probe",
                    "hosts": ansible.HOST_GROUP,
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Reads the generated group vars",
                            "ansible.builtin.debug": {"var": "toolkit_namespace"},
                        },
                        {"name": "Changes something", "ansible.builtin.command": "true", "changed_when": True},
                        {"name": "Fails", "ansible.builtin.fail": {"msg": "probe failure"}},
                    ],
                }
            ]
        )
    )
    result = ansible.run_playbook(resolve("local"), playbook=playbook)
    by_name = {t.task: t for t in result.tasks}
    assert by_name["Reads the generated group vars"].result["toolkit_namespace"] == "security-platform"
    assert by_name["Changes something"].changed and not by_name["Changes something"].failed
    assert by_name["Fails"].failed and by_name["Fails"].message == "probe failure"
    assert not result.ok and [t.task for t in result.failures] == ["Fails"]
    check = ansible.run_playbook(resolve("local"), playbook=playbook, check=True)
    assert {t.task for t in check.tasks if t.skipped} == {"Changes something"}  # command skips in check mode


def _venv_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def test_ansible_lint_is_clean() -> None:
    done = subprocess.run(
        [str(BIN / "ansible-lint"), "--offline", "--nocolor"],
        cwd=ansible.PLAYBOOKS_DIR,
        capture_output=True,
        text=True,
        env=_venv_env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_syntax_check_is_clean(tmp_path: Path) -> None:
    inventory = ansible.write_generated(resolve("local"), tmp_path)
    done = subprocess.run(
        [str(BIN / "ansible-playbook"), "--syntax-check", "-i", str(inventory), str(ansible.SITE_PLAYBOOK)],
        cwd=ansible.PLAYBOOKS_DIR,
        capture_output=True,
        text=True,
        env={**_venv_env(), "ANSIBLE_CONFIG": str(ansible.ANSIBLE_CFG)},
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr


def test_deploying_a_sim_environment_is_refused() -> None:
    with pytest.raises(UsageError, match=r"nothing to deploy.*`toolkit cluster up --env sim`"):
        deploy_platform(resolve("sim"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["deploy", "--env", "sim"], "nothing to deploy"),
        (["deploy", "--env", "no-such-env"], "unknown environment 'no-such-env'"),
        (["deploy", "--env", "local", "--output", "xml"], "--output 'xml' is not supported: use table, json or yaml"),
    ],
)
def test_cli_bad_input_exits_2(argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLKIT_STATE_DIR", str(tmp_path))
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2
    assert message in result.output
