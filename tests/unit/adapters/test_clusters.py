"""`cluster up|down|status` for real environments, on what this machine has: no kind, no docker (PATH emptied to
prove the messages), a kube context that does not answer, a local environment that is not running."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.config.environments import Environment
from toolkit.operations import UsageError
from toolkit.targets import clusters


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_kind_up_without_kind_or_docker_names_both_and_how_to_install(bare_path):
    env = Environment(name="kind", kind="kind", kube_context="kind-toolkit")
    with pytest.raises(UsageError) as err:
        clusters.up(env)
    message = str(err.value)
    assert "cannot create kind cluster toolkit" in message
    assert "kind is not on PATH" in message and "kind.sigs.k8s.io" in message
    assert "docker is not on PATH" in message and "docs.docker.com" in message


def test_kind_down_leaves_a_cluster_the_toolkit_did_not_create(bare_path):
    env = Environment(name="kind", kind="kind", kube_context="kind-toolkit")
    message = clusters.down(env)
    assert "was not created by the toolkit" in message and "kind delete cluster --name toolkit" in message


def test_kind_context_must_be_a_kind_context():
    with pytest.raises(UsageError, match="is not a kind context"):
        clusters.kind_cluster_name(
            Environment(name="kind", kind="kind", kube_context="arn:aws:eks:eu-west-1:1:cluster/x")
        )


def test_kube_clusters_are_never_created_or_deleted():
    env = Environment(name="eu-west-1", kind="kube", kube_context="eks-eu-west-1")
    with pytest.raises(UsageError, match="never creates"):
        clusters.up(env)
    with pytest.raises(UsageError, match="never deletes"):
        clusters.down(env)


def test_kube_status_says_the_context_does_not_answer(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\n"
        "clusters: [{name: dead, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: dead, context: {cluster: dead, user: u}}]\n"
    )
    env = Environment(name="far", kind="kube", kubeconfig=str(kubeconfig), kube_context="dead")
    found = clusters.status(env)
    assert str(found).startswith("environment far: context dead does not answer") and not found.answers


def test_local_status_of_a_state_dir_with_nothing_running(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLKIT_STATE_DIR", str(tmp_path))
    found = clusters.status(Environment(name="local", kind="local"))
    message = str(found)
    assert not found.answers and "not running" in message
    assert "kube-apiserver: stopped" in message and "nodeagent: stopped" in message
    assert "peeroperator: stopped" in message and "data plane: not running (`toolkit cluster up` starts it)" in message
