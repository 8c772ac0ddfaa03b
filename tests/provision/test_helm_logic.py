"""The Helm adapter's decisions on rendered manifests, without a cluster: per-object diff (check mode and diff
mode of the toolkit_helm module), secret redaction, what counts as a change, static volumes, cluster access."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from provision_support import render_manifests, write_environment

from toolkit.config.environments import resolve
from toolkit.config.wiring import RELEASES
from toolkit.operations import UsageError
from toolkit.provision import helm, values


def rendered(component: str, version: str | None = None) -> str:
    env = resolve("local")
    chart = values.chart_of(component)
    manifests = render_manifests(
        chart,
        values.chart_values(env, component, version),
        kube="1.20",
        release=RELEASES[component],
        namespace=env.platform.namespace,
    )
    return "\n---\n".join(text for name, text in sorted(manifests.items()) if not name.endswith("NOTES.txt"))


def test_the_same_rendering_is_no_change() -> None:
    manifest = rendered("elasticsearch")
    assert helm.diff_manifests(manifest, manifest, "security-platform") == ()


def test_a_version_change_updates_the_workloads_with_the_new_image() -> None:
    old, new = rendered("elasticsearch", "8.18.3"), rendered("elasticsearch", "8.19.3")
    changes = {c.ref: c for c in helm.diff_manifests(old, new, "security-platform")}
    assert {c.action for c in changes.values()} == {"update"}
    for workload in ("StatefulSet/elasticsearch-master", "StatefulSet/elasticsearch-hot"):
        diff = changes[workload].diff
        assert "-        image: docker.elastic.co/elasticsearch/elasticsearch:8.18.3" in diff
        assert "+        image: docker.elastic.co/elasticsearch/elasticsearch:8.19.3" in diff


def test_objects_only_on_one_side_are_created_or_deleted() -> None:
    workers = rendered("workers")
    docs = [d for d in yaml.safe_load_all(workers) if d]
    without_policies = "\n---\n".join(yaml.safe_dump(d) for d in docs if d["kind"] != "NetworkPolicy")
    created = helm.diff_manifests(without_policies, workers, "security-platform")
    assert {(c.kind, c.action) for c in created} == {("NetworkPolicy", "create")}
    deleted = helm.diff_manifests(workers, without_policies, "security-platform")
    assert {(c.kind, c.action) for c in deleted} == {("NetworkPolicy", "delete")}


def test_secret_values_never_appear_in_a_diff() -> None:
    manifest = rendered("kafka")
    docs = [d for d in yaml.safe_load_all(manifest) if d]
    secret = next(d for d in docs if d["kind"] == "Secret")
    old_value = next(iter(secret["data"].values()))
    secret["data"] = {k: base64.b64encode(b"another-cluster-id-value").decode() for k in secret["data"]}
    changed = "\n---\n".join(yaml.safe_dump(d) for d in docs)
    changes = helm.diff_manifests(manifest, changed, "security-platform")
    assert [c.ref for c in changes] == [f"Secret/{secret['metadata']['name']}"]
    text = changes[0].diff
    assert "redacted, sha256" in text
    assert old_value not in text and secret["data"][next(iter(secret["data"]))] not in text


def test_a_release_that_is_missing_or_not_deployed_is_a_change_even_without_object_changes() -> None:
    same = helm.ReleaseDiff("kafka", "kafka", "kafka", installed=True, status="deployed", changes=())
    assert not same.changed
    assert helm.ReleaseDiff("kafka", "kafka", "kafka", installed=True, status="failed", changes=()).changed
    assert helm.ReleaseDiff("kafka", "kafka", "kafka", installed=False, status="", changes=()).changed


def test_static_volumes_cover_every_claim_of_the_rendered_statefulsets() -> None:
    env = resolve("local")
    claims = helm.claims_of(rendered("kafka"), env.platform.namespace)
    spec = env.platform.kafka
    names = sorted(c[0] for c in claims)
    assert names == sorted(
        [f"data-kafka-controller-{i}" for i in range(spec.controllers)]
        + [f"data-kafka-broker-{i}" for i in range(spec.brokers)]
    )
    assert {c[2] for c in claims} == {values.LOCAL_STORAGE_CLASS}
    assert ("data-kafka-broker-0", f"{spec.storage_gi}Gi", values.LOCAL_STORAGE_CLASS) in claims
    volume = helm.static_volume("ns1", "data-kafka-broker-0", "5Gi", values.LOCAL_STORAGE_CLASS)
    assert volume["spec"]["claimRef"] == {"namespace": "ns1", "name": "data-kafka-broker-0"}
    assert volume["spec"]["capacity"] == {"storage": "5Gi"}
    assert volume["spec"]["storageClassName"] == values.LOCAL_STORAGE_CLASS


def test_sim_has_no_cluster_access() -> None:
    with pytest.raises(UsageError, match="toolkit cluster up --env sim"):
        helm.cluster_access(resolve("sim"))


def test_a_local_environment_that_is_not_running_says_how_to_start_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLKIT_STATE_DIR", str(tmp_path))
    with pytest.raises(UsageError, match=r"not running \(no kubeconfig at .*\): start it with `toolkit cluster up"):
        helm.cluster_access(resolve("local"))


def test_a_missing_kubeconfig_or_context_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    envs = tmp_path / "envs"
    monkeypatch.setenv("TOOLKIT_ENVIRONMENTS_DIR", str(envs))
    write_environment(envs, "lab", {"kind": "kube", "kubeconfig": str(tmp_path / "nope"), "kube_context": "lab"})
    with pytest.raises(UsageError, match=r"kubeconfig .*nope does not exist; fix `kubeconfig:`"):
        helm.cluster_access(resolve("lab"))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({"contexts": [{"name": "other", "context": {}}]}))
    write_environment(envs, "lab", {"kind": "kube", "kubeconfig": str(kubeconfig), "kube_context": "lab"})
    with pytest.raises(UsageError, match=r"context 'lab' is not in kubeconfig .* \(it has: other\)"):
        helm.cluster_access(resolve("lab"))
    write_environment(envs, "lab", {"kind": "kube", "kubeconfig": str(kubeconfig), "kube_context": "other"})
    assert helm.cluster_access(resolve("lab")) == helm.ClusterAccess(str(kubeconfig), "other")
