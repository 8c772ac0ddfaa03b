"""Chart values from an environment: images and versions come from the catalog only, sizes from the platform spec,
and the charts accept the result (strict lint, render for Kubernetes 1.20)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from provision_support import render_manifests, write_environment

from toolkit import catalog
from toolkit.config.environments import Environment, resolve
from toolkit.config.wiring import RELEASES
from toolkit.operations import UsageError
from toolkit.provision import values
from toolkit.provision.helm import CHARTS_DIR, environment_values, overrides_file

ENVIRONMENTS = ("local", "kind", "eu-west-1")
COMPONENTS = ("kafka", "elasticsearch", "workers")


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
@pytest.mark.parametrize("component", COMPONENTS)
def test_images_and_versions_equal_the_catalog(env_name: str, component: str) -> None:
    env = resolve(env_name)
    cat = catalog.load()
    spec = cat.component(component)
    version = env.platform.version_of(component)
    got = values.chart_values(env, component)
    assert got["image"] == {"repository": spec.image, "tag": version, "digest": spec.versions[version].digest or ""}
    if component == "kafka":
        assert got["metadataVersion"] == spec.versions[version].metadata_version
    if component in ("kafka", "elasticsearch"):
        workers = cat.component("workers")
        digest = workers.versions[workers.default].digest or ""
        assert {k: got["toolkitImage"][k] for k in ("repository", "tag", "digest")} == {
            "repository": workers.image,
            "tag": workers.default,
            "digest": digest,
        }


def test_an_explicit_version_is_injected_with_its_metadata_version() -> None:
    env = resolve("local")
    got = values.chart_values(env, "kafka", "4.1.1")
    assert got["image"]["tag"] == "4.1.1"
    assert got["metadataVersion"] == catalog.load().component("kafka").versions["4.1.1"].metadata_version


def test_sizes_come_from_the_platform_spec() -> None:
    env = resolve("local")
    kafka = values.chart_values(env, "kafka")
    assert kafka["controller"]["replicas"] == env.platform.kafka.controllers
    assert kafka["broker"]["replicas"] == env.platform.kafka.brokers
    assert kafka["config"]["minInsyncReplicas"] == env.platform.kafka.min_insync_replicas
    es = values.chart_values(env, "elasticsearch")
    assert [(s["name"], s["replicas"], s["roles"]) for s in es["nodeSets"]] == [
        (s.name, s.replicas, list(s.roles)) for s in env.platform.elasticsearch.node_sets
    ]
    workers = values.chart_values(env, "workers")
    assert workers["receiver"]["replicas"] == env.platform.workers.receivers
    assert workers["indexer"]["replicas"] == env.platform.workers.indexers
    assert workers["kafka"]["bootstrap"] == f"kafka-bootstrap.{env.platform.namespace}.svc.cluster.local:9094"


def test_local_has_static_volumes_and_no_hook_jobs_while_kube_uses_the_region_storage_class() -> None:
    local, region = resolve("local"), resolve("eu-west-1")
    assert values.chart_values(local, "kafka")["persistence"]["storageClassName"] == values.LOCAL_STORAGE_CLASS
    assert values.chart_values(local, "kafka")["topics"]["create"] is False
    assert values.chart_values(local, "elasticsearch")["templatesJob"]["enabled"] is False
    assert values.chart_values(region, "kafka")["persistence"]["storageClassName"] == values.KUBE_STORAGE_CLASS
    assert values.chart_values(region, "kafka")["topics"]["create"] is True
    assert values.chart_values(region, "workers")["receiver"]["hpa"]["enabled"] is True


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
@pytest.mark.parametrize("component", COMPONENTS)
def test_the_charts_accept_the_values(env_name: str, component: str) -> None:
    env = resolve(env_name)
    got = values.chart_values(env, component)
    chart = values.chart_of(component)
    report = helm_python.lint(CHARTS_DIR / chart, got, strict=True)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], problems or report["errors"]
    rendered = render_manifests(chart, got, kube="1.20", release=RELEASES[component])
    docs = [
        doc
        for name, text in rendered.items()
        if not name.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if isinstance(doc, dict)
    ]
    images = {
        c["image"]
        for d in docs
        if d["kind"] in ("StatefulSet", "Deployment")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    spec = catalog.load().component(component)
    assert images == {spec.image_ref(env.platform.version_of(component))}
    pdbs = {d["apiVersion"] for d in docs if d["kind"] == "PodDisruptionBudget"}
    assert pdbs == {"policy/v1beta1"}


def test_unknown_version_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(UsageError, match=r"kafka 9\.9\.9 is not in the catalog \(known: .*4\.1\.0"):
        values.chart_values(resolve("local"), "kafka", "9.9.9")


def test_a_zookeeper_kafka_version_is_refused() -> None:
    with pytest.raises(UsageError, match="runs KRaft only"):
        values.chart_values(resolve("local"), "kafka", "3.2.3")


def test_a_sim_environment_has_no_chart_values() -> None:
    with pytest.raises(UsageError, match="simulated"):
        values.chart_values(resolve("sim"), "kafka")


def test_unknown_component_is_refused() -> None:
    with pytest.raises(UsageError, match="unknown platform component 'zookeeper'"):
        values.chart_values(resolve("local"), "zookeeper")


def test_overrides_merge_last_but_never_replace_a_catalog_value() -> None:
    env = resolve("local")
    merged = values.chart_values(env, "kafka", overrides={"config": {"extra": {"log.retention.hours": "24"}}})
    assert merged["config"]["extra"] == {"log.retention.hours": "24"}
    assert merged["config"]["minInsyncReplicas"] == env.platform.kafka.min_insync_replicas  # merged, not replaced
    with pytest.raises(UsageError, match=r"sets image\.tag.*only from the catalog"):
        values.chart_values(env, "kafka", overrides={"image": {"tag": "latest"}})


def _custom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, document: dict[str, Any]) -> Environment:
    monkeypatch.setenv("TOOLKIT_ENVIRONMENTS_DIR", str(tmp_path / "envs"))
    write_environment(tmp_path / "envs", "lab", document)
    return resolve("lab")


def test_the_override_file_beside_the_environment_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _custom(tmp_path, monkeypatch, {"kind": "kube", "kube_context": "lab"})
    path = overrides_file(env, "elasticsearch")
    assert path == tmp_path / "envs" / "chart-values" / "lab" / "elasticsearch.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("clusterName: lab-data\n")
    assert environment_values(env, "elasticsearch")["clusterName"] == "lab-data"
    path.write_text("- not a mapping\n")
    with pytest.raises(UsageError, match="must hold a mapping"):
        environment_values(env, "elasticsearch")
