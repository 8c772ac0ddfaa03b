"""Checkov's Kubernetes checks over what users get: the manifests `toolkit deploy --render` writes for every
deployable environment, and every chart with each of its ci/ value sets.

Every finding is fixed, or suppressed in the chart itself with a written reason (`checkov.io/skipN` annotations,
reviewed here: never for a missing NetworkPolicy, an image not pinned by digest or a Secret in an environment
variable). What remains may only be CKV_K8S_43 on exactly the workloads whose images the catalog has no digest for
(toolkit/catalog/catalog.yaml `digest:`: filled from the registry; this machine cannot reach one), so the day the
digests are there this test demands 0 failed. Checkov runs from its own virtualenv (.venv-scan, made by
scripts/test-tools.sh)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import CHARTS, VALUE_SETS, RenderCache

from toolkit.config.environments import known, resolve
from toolkit.provision.deploy import render_platform

REPO = Path(__file__).resolve().parents[2]
CHECKOV = REPO / ".venv-scan" / "bin" / "checkov"
NEVER_SKIPPED = {
    "CKV_K8S_43": "image not pinned by digest",
    "CKV2_K8S_6": "no NetworkPolicy selects the pod",
    "CKV_K8S_35": "a Secret passed as an environment variable",
}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHECKOV.is_file(), reason="Checkov is not installed: run scripts/test-tools.sh"),
]


def checkov(directory: Path) -> dict[str, Any]:
    run = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "kubernetes", "--quiet", "--compact", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = json.loads(run.stdout)
    return report[0] if isinstance(report, list) else report


def undigested(docs: list[dict[str, Any]]) -> set[str]:
    """Checkov's names (Kind.namespace.name) of the workloads with an image that has no digest."""
    out = set()
    for doc in docs:
        if doc.get("kind") not in WORKLOADS:
            continue
        spec = doc["spec"]
        pod = spec.get("template", {}).get("spec") or spec.get("jobTemplate", {}).get("spec", {}).get("template", {})
        pod = pod.get("spec", pod) if "containers" not in pod else pod
        images = [c["image"] for c in pod.get("containers", []) + pod.get("initContainers", [])]
        if any("@sha256:" not in image for image in images):
            meta = doc["metadata"]
            out.add(f"{doc['kind']}.{meta.get('namespace', 'default')}.{meta['name']}")
    return out


def findings(directory: Path, docs: list[dict[str, Any]]) -> None:
    report = checkov(directory)
    failed = report.get("results", {}).get("failed_checks", [])
    other = sorted(f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in failed if c["check_id"] != "CKV_K8S_43")
    assert other == [], "Checkov findings neither fixed nor suppressed with a reason:\n" + "\n".join(other)
    no_digest = {c["resource"] for c in failed if c["check_id"] == "CKV_K8S_43"}
    assert no_digest == undigested(docs), "CKV_K8S_43 must name exactly the workloads whose images lack a digest"
    for check in report.get("results", {}).get("skipped_checks", []):
        assert check["check_id"] not in NEVER_SKIPPED, f"{check['resource']}: {NEVER_SKIPPED[check['check_id']]}"
        reason = (check.get("suppress_comment") or "").strip()
        assert len(reason) > 40, f"{check['check_id']} on {check['resource']} is skipped without a written reason"


@pytest.mark.parametrize("env_name", sorted(n for n in known() if resolve(n).kind != "sim"))
def test_checkov_over_what_deploy_renders(env_name: str, tmp_path: Path) -> None:
    rendered = render_platform(resolve(env_name), tmp_path / "render")
    scan = tmp_path / "scan"
    scan.mkdir()
    docs: list[dict[str, Any]] = []
    for manifest in (Path(f) for f in rendered.files if not f.endswith(".values.yaml")):
        (scan / manifest.name).write_text(manifest.read_text())
        docs += [d for d in yaml.safe_load_all(manifest.read_text()) if d]
    findings(scan, docs)


@pytest.mark.parametrize("chart", CHARTS)
def test_checkov_over_every_value_set(chart: str, tmp_path: Path) -> None:
    renders = RenderCache()
    docs: list[dict[str, Any]] = []
    for value_set in VALUE_SETS:
        these = renders.docs(chart, value_set)
        for doc in these:  # one folder, distinct names per value set
            doc["metadata"]["namespace"] = value_set
        (tmp_path / f"{value_set}.yaml").write_text(yaml.safe_dump_all(these))
        docs += these
    findings(tmp_path, docs)
