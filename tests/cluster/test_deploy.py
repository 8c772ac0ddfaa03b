"""`toolkit deploy` against the real local control plane (Kubernetes 1.20 + node agent): the whole platform
through Ansible and Helm, idempotence, check mode, and a version change through deploy + the engine.

The environment is a custom one (kind local, kubeconfig of the session's control plane, its own namespace) in a
temporary $TOOLKIT_ENVIRONMENTS_DIR; the simulated data plane runs with short delays so the engine's roll takes
seconds. Tests run in file order and share one deployed platform (module fixture).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from local_cluster_helpers import FAST_DATA_PLANE

from toolkit.model import Component, UpgradeSettings

pytestmark = pytest.mark.cluster

FIRST = {"kafka": "4.0.1", "elasticsearch": "8.18.3", "workers": "0.1.0"}
SECOND = {"kafka": "4.1.0", "elasticsearch": "8.19.3", "workers": "0.2.0"}
DEPLOY_TIMINGS: dict[str, float] = {}


def environment_document(kubeconfig: Path, namespace: str, versions: dict[str, str]) -> dict[str, Any]:
    return {
        "kind": "local",
        "description": "cluster-tier deploy test",
        "kubeconfig": str(kubeconfig),
        "platform": {
            "namespace": namespace,
            "kafka": {"version": versions["kafka"], "controllers": 3, "brokers": 3, "storage_gi": 5},
            "elasticsearch": {
                "version": versions["elasticsearch"],
                "node_sets": [
                    {
                        "name": "data",
                        "roles": ["master", "data_hot", "data_content", "ingest"],
                        "replicas": 3,
                        "tier": "hot",
                        "storage_gi": 5,
                    },
                ],
            },
            "workers": {"version": versions["workers"], "receivers": 2, "indexers": 2},
        },
        "sim": FAST_DATA_PLANE,
    }


class Platform:
    def __init__(self, local_env: Any, directory: Path) -> None:
        from kubernetes import client

        self.local_env = local_env
        self.envs = directory / "envs"
        self.state = directory / "state"
        self.envs.mkdir(parents=True)
        self.namespace = f"deploy-{uuid.uuid4().hex[:6]}"
        self.name = "deploy-test"
        self.core = client.CoreV1Api(local_env.api_client)
        self.apps = client.AppsV1Api(local_env.api_client)
        self.write(FIRST)

    def write(self, versions: dict[str, str]) -> None:
        document = environment_document(self.local_env.cluster.kubeconfig, self.namespace, versions)
        (self.envs / f"{self.name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))

    @property
    def environment(self) -> Any:
        from toolkit.config.environments import resolve

        return resolve(self.name)

    def releases(self) -> Any:
        from toolkit.config.environments import resolve
        from toolkit.provision.helm import HelmReleases

        return HelmReleases(resolve(self.name))

    def pods(self) -> list[Any]:
        return self.core.list_namespaced_pod(self.namespace).items


@pytest.fixture(scope="module")
def platform(local_env: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = Platform(local_env, tmp_path_factory.mktemp("deploy"))
    try:
        yield platform
    finally:
        _remove(platform)
        if DEPLOY_TIMINGS:
            print("\ndeploy timings: " + ", ".join(f"{k}: {v:.1f} s" for k, v in DEPLOY_TIMINGS.items()))


@pytest.fixture(autouse=True)
def _platform_environment(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the suite's isolation fixture: resolve the test environment, keep one state dir for the module."""
    monkeypatch.setenv("TOOLKIT_ENVIRONMENTS_DIR", str(platform.envs))
    monkeypatch.setenv("TOOLKIT_STATE_DIR", str(platform.state))


def _remove(platform: Platform) -> None:
    from kubernetes import client

    rbac = client.RbacAuthorizationV1Api(platform.local_env.api_client)
    for role in rbac.list_cluster_role().items:
        if role.metadata.name.startswith(platform.namespace + "-"):
            rbac.delete_cluster_role(role.metadata.name)
    for binding in rbac.list_cluster_role_binding().items:
        if binding.metadata.name.startswith(platform.namespace + "-"):
            rbac.delete_cluster_role_binding(binding.metadata.name)
    for name in (platform.namespace, f"{platform.namespace}-pki"):
        try:
            platform.core.delete_namespace(name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
    for volume in platform.core.list_persistent_volume(
        label_selector=f"toolkit.io/namespace={platform.namespace}"
    ).items:
        platform.core.delete_persistent_volume(volume.metadata.name)


def test_check_mode_on_an_empty_cluster_changes_nothing(platform: Platform) -> None:
    from toolkit.provision.deploy import deploy_platform

    result = deploy_platform(platform.environment, check=True)
    assert result.ok, [t.message for t in result.failures]
    assert {c.component: c.action for c in result.charts} == {
        "kafka": "install",
        "elasticsearch": "install",
        "workers": "install",
    }
    assert all(c.changed and c.objects and c.diff for c in result.charts)
    names = {ns.metadata.name for ns in platform.core.list_namespace().items}
    assert platform.namespace not in names  # not even the namespace was created


def test_first_deploy_installs_all_three_charts(platform: Platform) -> None:
    from toolkit.provision.deploy import deploy_platform

    started = time.monotonic()
    result = deploy_platform(platform.environment)
    DEPLOY_TIMINGS["first deploy"] = time.monotonic() - started
    assert result.ok, [t.message for t in result.failures]
    assert {c.component: c.action for c in result.charts} == {
        "kafka": "install",
        "elasticsearch": "install",
        "workers": "install",
    }
    with platform.releases() as releases:
        for component in ("kafka", "elasticsearch", "workers"):
            status = releases.status(component)
            assert status is not None and status["status"] == "deployed"
    namespace = platform.core.read_namespace(platform.namespace)
    assert namespace.metadata.labels["toolkit.io/environment"] == platform.name
    from toolkit.provision import credentials

    plan = credentials.plan(platform.environment)
    secrets = {s.metadata.name for s in platform.core.list_namespaced_secret(platform.namespace).items}
    assert plan.secret_names <= secrets, plan.secret_names - secrets
    ca = platform.core.read_namespaced_secret(plan.ca_secret, platform.namespace)
    assert set(ca.data) == {"ca.crt"}, "the CA key never sits in the platform namespace"
    pki = {s.metadata.name for s in platform.core.list_namespaced_secret(plan.ca_namespace).items}
    assert plan.ca_secret in pki
    sets = {s.metadata.name: s for s in platform.apps.list_namespaced_stateful_set(platform.namespace).items}
    assert set(sets) == {"kafka-controller", "kafka-broker", "elasticsearch-data"}
    assert all(s.status.ready_replicas == 3 for s in sets.values())
    pods = platform.pods()
    assert len(pods) == 3 + 3 + 3 + 2 + 2
    images = {c.image for p in pods for c in p.spec.containers}
    assert images == {
        "docker.io/apache/kafka:4.0.1",
        "docker.elastic.co/elasticsearch/elasticsearch:8.18.3",
        "toolkit-worker:0.1.0",
    }


def test_a_second_deploy_reports_no_change(platform: Platform) -> None:
    from toolkit.provision.deploy import deploy_platform

    with platform.releases() as releases:
        before = {c: releases.status(c)["revision"] for c in ("kafka", "elasticsearch", "workers")}
    started = time.monotonic()
    result = deploy_platform(platform.environment)
    DEPLOY_TIMINGS["second deploy (no change)"] = time.monotonic() - started
    assert result.ok and not result.changed
    assert [t.task for t in result.tasks if t.changed] == []
    assert {c.component: (c.action, c.revision) for c in result.charts} == {
        c: ("none", rev) for c, rev in before.items()
    }


def test_a_kube_environment_whose_data_plane_cannot_be_reached_is_refused_before_anything_moves(
    platform: Platform,
) -> None:
    """The same deployed platform seen as a `kube` environment from this machine: its Services and Secrets are
    discovered, but Kafka's in-cluster address does not answer from here. Plan and run refuse (exit 3), naming what
    cannot be observed and how to reach it; no workload is patched. Never "completed" without proof."""
    from typer.testing import CliRunner

    from toolkit.cli.main import app

    document = yaml.safe_load((platform.envs / f"{platform.name}.yaml").read_text())
    (platform.envs / "seen-from-outside.yaml").write_text(yaml.safe_dump({**document, "kind": "kube"}))
    before = {
        s.metadata.name: s.metadata.generation
        for s in platform.apps.list_namespaced_stateful_set(platform.namespace).items
    }
    runner = CliRunner()
    planned = runner.invoke(app, ["upgrade", "plan", "--env", "seen-from-outside", "--to", "kafka=4.1.0"])
    assert planned.exit_code == 3, planned.output
    text = " ".join(planned.output.split())
    assert "kafka.observable" in text and "does not answer this orchestrator" in text and "toolkit upgrade job" in text
    ran = runner.invoke(app, ["upgrade", "run", "--env", "seen-from-outside", "--to", "kafka=4.1.0", "--poll", "0.5"])
    assert ran.exit_code == 3, ran.output
    after = {
        s.metadata.name: s.metadata.generation
        for s in platform.apps.list_namespaced_stateful_set(platform.namespace).items
    }
    assert after == before, "nothing may be patched when Kafka cannot be observed"


def test_a_deploy_keeps_what_runs_and_says_so_when_the_file_asks_for_other_versions(platform: Platform) -> None:
    from toolkit.provision.deploy import deploy_platform

    platform.write(SECOND)  # the file asks for newer versions: deploy does not move them (the engine does)
    with platform.releases() as releases:
        before = {c: releases.status(c)["revision"] for c in ("kafka", "elasticsearch", "workers")}
    result = deploy_platform(platform.environment, check=True)
    assert result.ok
    assert result.versions == FIRST
    assert {c.component: c.action for c in result.charts} == dict.fromkeys(before, "none")
    assert any("asks for 4.1.0, the cluster runs 4.0.1" in note for note in result.notes), result.notes
    with platform.releases() as releases:
        assert {c: releases.status(c)["revision"] for c in before} == before
    assert {c.image for p in platform.pods() for c in p.spec.containers} >= {"docker.io/apache/kafka:4.0.1"}
    platform.write(FIRST)


def test_versions_change_through_the_engine_and_a_deploy_after_it_just_works(platform: Platform) -> None:
    from toolkit import operations
    from toolkit.provision.deploy import deploy_platform

    settings = UpgradeSettings(poll_interval=0.5, confirm_seconds=0.5, gate_timeout=120, step_timeout=120)
    run = operations.run_upgrade(platform.environment, dict(SECOND), settings)
    assert run.outcome == "completed", run.reason

    sets = {s.metadata.name: s for s in platform.apps.list_namespaced_stateful_set(platform.namespace).items}
    for pod in platform.pods():
        labels = pod.metadata.labels
        owner = pod.metadata.owner_references[0]
        if owner.kind == "StatefulSet":
            assert labels["controller-revision-hash"] == sets[owner.name].status.update_revision, pod.metadata.name
        else:
            deployment = platform.apps.read_namespaced_deployment(_deployment_of(platform, pod), platform.namespace)
            assert labels["pod-template-hash"] == _newest_hash(platform, deployment), pod.metadata.name
        assert labels["app.kubernetes.io/version"] == SECOND[labels["toolkit.io/component"]], pod.metadata.name

    # the engine recorded where each workload came from, so `toolkit upgrade rollback` knows where to return
    for workload in [*platform.apps.list_namespaced_stateful_set(platform.namespace).items,
                     *platform.apps.list_namespaced_deployment(platform.namespace).items]:  # fmt: skip
        component = workload.metadata.labels["toolkit.io/component"]
        assert workload.metadata.annotations["toolkit.io/previous-version"] == FIRST[component], workload.metadata.name
    state = operations.dump_state(platform.environment)
    assert operations.rollback_targets(state, [Component.WORKERS]) == {Component.WORKERS: FIRST["workers"]}

    # the environment file still says FIRST: state is read, so deploy keeps SECOND and restarts nothing
    uids = {p.metadata.name: p.metadata.uid for p in platform.pods()}
    result = deploy_platform(platform.environment)
    assert result.ok, [t.message for t in result.failures]
    assert result.versions == SECOND
    assert any("asks for 4.0.1, the cluster runs 4.1.0" in note for note in result.notes), result.notes
    assert {p.metadata.name: p.metadata.uid for p in platform.pods()} == uids
    with platform.releases() as releases:
        for component in SECOND:
            history = releases.history(component)
            assert history[-1].status == "deployed" and history[-1].app_version == SECOND[component]
    for workload in platform.apps.list_namespaced_stateful_set(platform.namespace).items:
        component = workload.metadata.labels["toolkit.io/component"]
        assert workload.metadata.annotations["toolkit.io/previous-version"] == FIRST[component]


def _deployment_of(platform: Platform, pod: Any) -> str:
    replica_set = platform.apps.read_namespaced_replica_set(pod.metadata.owner_references[0].name, platform.namespace)
    name: str = replica_set.metadata.owner_references[0].name
    return name


def _newest_hash(platform: Platform, deployment: Any) -> str:
    revision = deployment.metadata.annotations["deployment.kubernetes.io/revision"]
    for replica_set in platform.apps.list_namespaced_replica_set(platform.namespace).items:
        owners = replica_set.metadata.owner_references or []
        at_revision = replica_set.metadata.annotations.get("deployment.kubernetes.io/revision") == revision
        if owners and owners[0].name == deployment.metadata.name and at_revision:
            value: str = replica_set.metadata.labels["pod-template-hash"]
            return value
    raise AssertionError(f"no ReplicaSet of {deployment.metadata.name} at revision {revision}")
