"""Rendering support for the chart tests: catalog injection, Helm rendering with chosen capabilities, caching.

Every chart leaves its image versions empty; `injected_values` fills them from `toolkit.catalog.load()` (the
catalog's default version of each component), exactly as `toolkit deploy` does. Each (chart, value set, Kubernetes
version) is rendered once per session and shared by the tests.

helm-python-sdk's public `Chart.render` takes no Kubernetes version or API versions, although the native
`helm_render` it wraps accepts `kube_version` and `api_versions` in its options JSON (the same fields as
`helm template --kube-version --api-versions`). `render_manifests` passes them through that native call; if a
later helm-python-sdk release exposes them publicly, only this function changes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHARTS_DIR = REPO / "charts"
CHARTS = ("kafka", "elasticsearch", "ingest-workers")
VALUE_SETS = ("minimal", "production", "tls-sasl")


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm-style merge: maps merge key by key, everything else is replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def catalog_values(chart: str) -> dict[str, Any]:
    """The values the toolkit injects for `chart` (toolkit.provision.values.catalog_values at the catalog's default
    version): images, digests and versions from the catalog, nothing else."""
    from toolkit.catalog import load
    from toolkit.provision.values import catalog_values as injected

    component = {"ingest-workers": "workers"}.get(chart, chart)
    if component not in ("kafka", "elasticsearch", "workers"):
        raise ValueError(f"unknown chart {chart!r}: expected one of {CHARTS}")
    return injected(component, load().component(component).default)


def ci_values(chart: str, value_set: str) -> dict[str, Any]:
    path = CHARTS_DIR / chart / "ci" / f"{value_set}-values.yaml"
    loaded = yaml.safe_load(path.read_text())
    return loaded or {}


def injected_values(chart: str, value_set: str) -> dict[str, Any]:
    return deep_merge(ci_values(chart, value_set), catalog_values(chart))


def render_manifests(
    chart: str,
    values: dict[str, Any],
    *,
    kube: str | None = None,
    release: str = "platform",
    namespace: str = "platform",
    is_upgrade: bool = False,
    api_versions: tuple[str, ...] = (),
) -> dict[str, str]:
    """Render `chart` offline, as `helm template` would, for the Kubernetes version key `kube` (or Helm's default):
    the product's own offline renderer (`toolkit deploy --render` uses it too)."""
    from toolkit.provision.helm import render_offline

    return render_offline(
        chart, values, release=release, namespace=namespace, kube=kube, is_upgrade=is_upgrade, api_versions=api_versions
    )


def documents(manifests: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object in the rendered templates (NOTES.txt excluded)."""
    docs: list[dict[str, Any]] = []
    for name, text in sorted(manifests.items()):
        if name.endswith("NOTES.txt"):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod template spec) of every workload object."""
    for doc in docs:
        if doc["kind"] in {"StatefulSet", "Deployment", "Job", "DaemonSet"}:
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


def all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


class RenderCache:
    """Renders each (chart, value set, kube) once per test session."""

    def __init__(self) -> None:
        self._docs: dict[tuple[str, str, str | None], list[dict[str, Any]]] = {}
        self._raw: dict[tuple[str, str, str | None], dict[str, str]] = {}

    def manifests(self, chart: str, value_set: str, kube: str | None = None) -> dict[str, str]:
        key = (chart, value_set, kube)
        if key not in self._raw:
            self._raw[key] = render_manifests(chart, injected_values(chart, value_set), kube=kube)
        return self._raw[key]

    def docs(self, chart: str, value_set: str, kube: str | None = None) -> list[dict[str, Any]]:
        key = (chart, value_set, kube)
        if key not in self._docs:
            self._docs[key] = documents(self.manifests(chart, value_set, kube))
        return self._docs[key]
