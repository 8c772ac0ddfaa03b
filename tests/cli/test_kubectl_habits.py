"""kubectl habits, through the installed `toolkit` command: --version, shell completion of environment names,
COMPONENT=VERSION pairs and components from the catalog (the protocol the generated bash script uses), -o json|yaml
on reporting commands, --context/--namespace applied to the environment (and refused where they cannot apply), and
`cluster status` exiting 5 when the cluster does not answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from toolkit import catalog
from toolkit.config.environments import EnvironmentError_, known, resolve, with_cluster

TOOLKIT = str(Path(sys.executable).parent / "toolkit")


def toolkit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOOLKIT, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def complete(line: str) -> list[str]:
    words = line.split(" ")
    done = toolkit(env={"_TOOLKIT_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)})
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_version() -> None:
    from importlib.metadata import version

    done = toolkit("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"toolkit {version('toolkit')}"


def test_completion_of_environments_versions_and_components() -> None:
    assert complete("toolkit upgrade plan --env e") == [n for n in known() if n.startswith("e")]
    kafka = catalog.load().component("kafka").sorted_versions()
    assert complete("toolkit upgrade run --to kafka=4") == [f"kafka={v}" for v in kafka if v.startswith("4")]
    assert complete("toolkit upgrade rollback -c e") == ["elasticsearch"]


def test_env_and_region_check_as_json_and_yaml() -> None:
    as_json = json.loads(toolkit("env", "-o", "json").stdout)
    as_yaml = yaml.safe_load(toolkit("env", "-o", "yaml").stdout)
    assert as_json == as_yaml and {row["name"] for row in as_json} == set(known())
    refused = toolkit("env", "-o", "xml")
    assert refused.returncode == 2 and "use table, json or yaml" in refused.stderr


def test_context_and_namespace_apply_to_the_environment_and_not_to_sim() -> None:
    env = with_cluster(resolve("eu-west-1"), "prod-admin", "sec-platform-2")
    assert env.kube_context == "prod-admin" and env.platform.namespace == "sec-platform-2"
    assert env.wiring.kafka_bootstrap.address.endswith(".sec-platform-2.svc.cluster.local:9094")
    with pytest.raises(EnvironmentError_, match=r"is simulated .* --context cannot apply"):
        with_cluster(resolve("sim"), "prod-admin")
    with pytest.raises(EnvironmentError_, match="not a Kubernetes namespace name"):
        with_cluster(resolve("local"), None, "Bad_Name")
    done = toolkit("upgrade", "plan", "--env", "sim", "-n", "other", "--to", "kafka=4.1.0")
    assert done.returncode == 2 and "--namespace cannot apply" in done.stderr


def test_cluster_status_of_a_cluster_that_does_not_answer_is_not_exit_0(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\n"
        "clusters: [{name: dead, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: dead, context: {cluster: dead, user: u}},\n"
        "           {name: also-dead, context: {cluster: dead, user: u}}]\n"
    )
    envs = tmp_path / "envs"
    envs.mkdir()
    (envs / "far.yaml").write_text(
        yaml.safe_dump({"kind": "kube", "kubeconfig": str(kubeconfig), "kube_context": "dead"})
    )
    done = toolkit("cluster", "status", "--env", "far", "--context", "also-dead", "-o", "json",
                   env={"TOOLKIT_ENVIRONMENTS_DIR": str(envs)})  # fmt: skip
    assert done.returncode == 5, done.stderr
    report = json.loads(done.stdout)
    assert report["answers"] is False and "context also-dead does not answer" in report["details"][0]
