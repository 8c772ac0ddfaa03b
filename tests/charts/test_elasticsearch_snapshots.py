"""The Elasticsearch chart carries what S3 snapshots need on EKS: the service account's IRSA annotation from
values (schema-checked), and the web identity token linked where the S3 repository reads it. And no chart's
workload shares the node's network namespace (with IMDS hop limit 1, such a pod would still reach the node's
credentials)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import helm_python
import pytest
from chart_render import CHARTS_DIR, injected_values

ROLE = "arn:aws:iam::123456789012:role/secplat-eu-west-1-es-snapshots-writer"


def _service_account(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (account,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    return account


def test_service_account_carries_the_snapshot_role(renders: Any) -> None:
    production = _service_account(renders.docs("elasticsearch", "production"))
    assert production["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ROLE}
    assert production["metadata"]["name"] == "platform-elasticsearch"
    assert "annotations" not in _service_account(renders.docs("elasticsearch", "minimal"))["metadata"]


def test_schema_takes_only_string_annotations() -> None:
    values = injected_values("elasticsearch", "minimal")
    with helm_python.Chart.load(CHARTS_DIR / "elasticsearch") as chart:
        chart.validate_schema({**values, "serviceAccount": {"annotations": {"a": "b"}}})
        with pytest.raises(helm_python.HelmValuesError, match="annotations"):
            chart.validate_schema({**values, "serviceAccount": {"annotations": {"replicas": 3}}})
        with pytest.raises(helm_python.HelmValuesError, match="serviceAccount"):
            chart.validate_schema({**values, "serviceAccount": {"name": "other"}})


@pytest.mark.parametrize("with_token", [True, False])
def test_prepare_config_links_the_web_identity_token(renders: Any, tmp_path: Path, with_token: bool) -> None:
    (config_map,) = [
        d
        for d in renders.docs("elasticsearch", "production")
        if d["kind"] == "ConfigMap" and "prepare-config.sh" in d["data"]
    ]
    image_config, out, toolkit, zone = (tmp_path / n for n in ("image-config", "out", "toolkit", "zone"))
    for folder in (image_config, out, toolkit, zone):
        folder.mkdir()
    (image_config / "jvm.options").write_text("-Xms1g\n")
    (toolkit / "elasticsearch.yml").write_text("cluster.name: security-data\n")
    script = (
        config_map["data"]["prepare-config.sh"]
        .replace("/usr/share/elasticsearch/config", str(image_config))
        .replace("/mnt/config", str(out))
        .replace("/opt/toolkit/config", str(toolkit))
        .replace("/var/run/es/zone", str(zone))
    )
    token = tmp_path / "token"
    token.write_text("eyJ...")
    env = {"PATH": os.environ["PATH"], "NODE_ROLES": "master"}
    if with_token:
        env["AWS_WEB_IDENTITY_TOKEN_FILE"] = str(token)
    subprocess.run(["bash", "-c", script], env=env, check=True)
    link = out / "repository-s3" / "aws-web-identity-token-file"
    assert (out / "jvm.options").is_file() and "node.roles: [master]" in (out / "elasticsearch.yml").read_text()
    if with_token:
        assert link.is_symlink() and os.readlink(link) == str(token)
    else:
        assert not (out / "repository-s3").exists()


@pytest.mark.parametrize("chart", ["kafka", "elasticsearch", "ingest-workers"])
@pytest.mark.parametrize("value_set", ["minimal", "production", "tls-sasl"])
def test_no_chart_workload_shares_the_node_network(renders: Any, chart: str, value_set: str) -> None:
    """With IMDS hop limit 1 only the node reaches instance metadata; a hostNetwork pod is the node's network."""
    from chart_render import pod_specs

    shared = [name for name, spec in pod_specs(renders.docs(chart, value_set)) if spec.get("hostNetwork")]
    assert shared == []
