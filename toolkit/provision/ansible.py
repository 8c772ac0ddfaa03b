"""Run the platform playbook (`playbooks/site.yml`) for one environment with `ansible-playbook` (ansible-core).

One run:
1. `generated_files(environment)` derives the inventory and the group vars from the environment's configuration
   and nothing else: one host `localhost` (connection local, `ansible_python_interpreter` = this interpreter, so
   the custom modules import the same toolkit), in group `toolkit_controller`, and group vars that carry only the
   environment resolved ONCE by the caller (its JSON document: the modules read it back, they never resolve a name
   again), the version of each component to install, and values computed from the environment (namespace, kind,
   namespace labels). Every chart value is computed inside the modules from that environment
   (toolkit.provision.values): no second copy of a size exists on disk.
2. They are written to a fresh temporary directory (removed afterwards); `ansible-playbook` runs with
   `ANSIBLE_CONFIG=playbooks/ansible.cfg`, the JSON stdout callback, `--check` / `--diff` when asked, and the
   environment variables that locate environments (`TOOLKIT_ENVIRONMENTS_DIR`, `TOOLKIT_STATE_DIR`, ...) inherited.
3. `parse_run(json_text)` turns the callback's JSON into a `PlaybookResult`: per task, its role, whether it
   changed or failed, its message, its diff text and the module's structured result (for toolkit_helm: release,
   action, revision, objects), plus the play recap.
Invariants: a failed task is a result, not an exception (`PlaybookResult.ok` is False); an `ansible-playbook`
that cannot start or prints no JSON raises `AnsibleRunError` with its stderr tail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from toolkit.config.environments import Environment

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS_DIR = REPO / "playbooks"
SITE_PLAYBOOK = PLAYBOOKS_DIR / "site.yml"
ANSIBLE_CFG = PLAYBOOKS_DIR / "ansible.cfg"
HOST_GROUP = "toolkit_controller"
PLAYBOOK_TIMEOUT_SECONDS = 3600


class AnsibleRunError(RuntimeError):
    """ansible-playbook could not run, or its output could not be read."""


@dataclass(frozen=True)
class TaskResult:
    role: str
    task: str
    changed: bool
    failed: bool
    skipped: bool
    message: str
    diff: str
    result: dict[str, Any]


@dataclass
class PlaybookResult:
    tasks: list[TaskResult] = field(default_factory=list)
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    check: bool = False
    return_code: int = 0
    stderr: str = ""

    @property
    def failures(self) -> list[TaskResult]:
        return [t for t in self.tasks if t.failed]

    @property
    def ok(self) -> bool:
        unreachable = any(s.get("unreachable", 0) for s in self.stats.values())
        return not self.failures and not unreachable and self.return_code == 0

    def changed_by_role(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for task in self.tasks:
            if task.changed:
                counts[task.role] = counts.get(task.role, 0) + 1
        return counts


def namespace_labels(environment: Environment) -> dict[str, str]:
    return {
        "app.kubernetes.io/part-of": "security-data-platform",
        "app.kubernetes.io/managed-by": "toolkit",
        "toolkit.io/environment": environment.name,
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/warn": "restricted",
    }


def generated_files(environment: Environment, versions: dict[str, str] | None = None) -> dict[str, Any]:
    """{relative path: YAML document} of the inventory and group vars for `environment` (pure)."""
    inventory = {
        "all": {
            "children": {
                HOST_GROUP: {
                    "hosts": {
                        "localhost": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                        }
                    }
                }
            }
        }
    }
    group_vars = {
        "toolkit_environment": environment.model_dump(mode="json"),
        "toolkit_versions": dict(versions or {}),
        "toolkit_environment_kind": environment.kind,
        "toolkit_namespace": environment.platform.namespace,
        "toolkit_namespace_labels": namespace_labels(environment),
    }
    return {"inventory.yml": inventory, f"group_vars/{HOST_GROUP}.yml": group_vars}


def write_generated(environment: Environment, directory: Path, versions: dict[str, str] | None = None) -> Path:
    """Write the generated files under `directory`; return the inventory path."""
    for relative, document in generated_files(environment, versions).items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(document, sort_keys=True))
    return directory / "inventory.yml"


def command(inventory: Path, check: bool, diff: bool, playbook: Path = SITE_PLAYBOOK) -> list[str]:
    argv = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(playbook)]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    return argv


def run_environment(child_env: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if child_env is None else child_env)
    env.update(
        ANSIBLE_CONFIG=str(ANSIBLE_CFG),
        ANSIBLE_STDOUT_CALLBACK="toolkit_results",
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=env.get("ANSIBLE_LOCAL_TEMP", tempfile.gettempdir() + "/toolkit-ansible-local"),
        PYTHONUNBUFFERED="1",
    )
    # The custom modules run in this interpreter and import the toolkit from the same place.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def run_playbook(
    environment: Environment,
    check: bool = False,
    diff: bool = True,
    playbook: Path = SITE_PLAYBOOK,
    versions: dict[str, str] | None = None,
) -> PlaybookResult:
    """Run `playbook` against `environment`, installing `versions` (component -> version; default each component's
    version in the environment's platform spec). See the module docstring."""
    with tempfile.TemporaryDirectory(prefix=f"toolkit-deploy-{environment.name}-") as tmp:
        inventory = write_generated(environment, Path(tmp), versions)
        argv = command(inventory, check, diff, playbook)
        try:
            completed = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                env=run_environment(),
                cwd=str(PLAYBOOKS_DIR),
                timeout=PLAYBOOK_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AnsibleRunError(f"ansible-playbook could not run ({' '.join(argv)}): {exc}") from None
    result = parse_run(completed.stdout, completed.stderr)
    result.check = check
    result.return_code = completed.returncode
    result.stderr = completed.stderr
    if completed.returncode != 0 and not result.tasks:
        tail = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-15:])
        raise AnsibleRunError(f"ansible-playbook {playbook.name} exited {completed.returncode}:\n{tail}")
    return result


def _split_task_name(name: str) -> tuple[str, str]:
    role, sep, task = name.partition(" : ")
    return (role, task) if sep else ("", name)


def _diff_text(result: dict[str, Any]) -> str:
    diffs = result.get("diff")
    items = diffs if isinstance(diffs, list) else [diffs] if diffs else []
    texts = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("prepared"):
            texts.append(str(item["prepared"]))
        elif "before" in item or "after" in item:
            before = yaml.safe_dump(item.get("before"), sort_keys=True)
            after = yaml.safe_dump(item.get("after"), sort_keys=True)
            import difflib

            texts.append(
                "".join(
                    difflib.unified_diff(
                        before.splitlines(keepends=True), after.splitlines(keepends=True), "before", "after"
                    )
                )
            )
    return "".join(texts)


def parse_run(stdout: str, stderr: str = "") -> PlaybookResult:
    """The JSON callback's output -> PlaybookResult (tasks in run order)."""
    start = stdout.find("{")
    if start < 0:
        return PlaybookResult(stderr=stderr)
    try:
        data = json.loads(stdout[start:])
    except json.JSONDecodeError as exc:
        raise AnsibleRunError(f"ansible-playbook printed output that is not the JSON callback's: {exc}") from None
    tasks = []
    for play in data.get("plays", []):
        for entry in play.get("tasks", []):
            role, name = _split_task_name(str(entry.get("task", {}).get("name", "")))
            for _host, res in (entry.get("hosts") or {}).items():
                tasks.append(
                    TaskResult(
                        role=role,
                        task=name,
                        changed=bool(res.get("changed")),
                        failed=bool(res.get("failed")) or bool(res.get("unreachable")),
                        skipped=bool(res.get("skipped")),
                        message=str(res.get("msg", "")),
                        diff=_diff_text(res),
                        result={k: v for k, v in res.items() if k not in ("diff", "invocation", "_ansible_no_log")},
                    )
                )
    stats = {host: dict(values) for host, values in (data.get("stats") or {}).items()}
    return PlaybookResult(tasks=tasks, stats=stats, stderr=stderr)
