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

import pod_contract

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


@pytest.mark.skipif(not pod_contract.can_run(), reason=pod_contract.ROOT_REASON)
@pytest.mark.parametrize("with_token", [True, False])
def test_prepare_config_links_the_web_identity_token(renders: Any, tmp_path: Path, with_token: bool) -> None:
    """The rendered prepare-config init container, run with its own volumes at their mountPaths: with the token
    the EKS pod identity webhook injects (its env and file), the S3 repository finds it inside the config dir."""
    docs = renders.docs("elasticsearch", "production")
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap" and "prepare-config.sh" in d["data"]]
    sets = [d for d in docs if d["kind"] == "StatefulSet"]
    pod = sets[0]["spec"]["template"]["spec"]
    (init,) = [c for c in pod["initContainers"] if c["name"] == "prepare-config"]
    sources = {config_map["metadata"]["name"]: {k: v.encode() for k, v in config_map["data"].items()}}
    for volume in pod["volumes"]:
        secret = volume.get("secret")
        if secret and secret["secretName"] not in sources:  # file realm, certificates: any bytes will do here
            sources[secret["secretName"]] = {i["key"]: b"x" for i in secret.get("items", [])} or {
                "users": b"receiver:$pbkdf2$x\n",
                "users_roles": b"receiver_writer:receiver\n",
            }
    token_path = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
    image = {"/usr/share/elasticsearch/config/jvm.options": b"-Xms1g\n"}
    env = {}
    if with_token:
        image[token_path] = b"eyJ..."
        env["AWS_WEB_IDENTITY_TOKEN_FILE"] = token_path
    volumes = tmp_path / "volumes"
    done = pod_contract.run_container(pod, init, sources, image_files=image, injected_env=env, volumes_dir=volumes)
    assert done.returncode == 0, done.stderr
    (es_config,) = [m["name"] for m in init["volumeMounts"] if m["mountPath"] == "/mnt/config"]
    out = volumes / es_config
    roles = next(e["value"] for e in init["env"] if e["name"] == "NODE_ROLES")
    assert (out / "jvm.options").is_file() and f"node.roles: [{roles}]" in (out / "elasticsearch.yml").read_text()
    assert (out / "users").is_file() and (out / "roles.yml").is_file()
    link = out / "repository-s3" / "aws-web-identity-token-file"
    if with_token:
        assert link.is_symlink() and os.readlink(link) == token_path
    else:
        assert not (out / "repository-s3").exists()
    (main,) = [c for c in pod["containers"] if c["name"] == "elasticsearch"]
    assert {"name": es_config, "mountPath": "/usr/share/elasticsearch/config"} in [
        {k: m[k] for k in ("name", "mountPath")} for m in main["volumeMounts"]
    ], "the main container must read the config dir the init container filled"


@pytest.mark.parametrize("chart", ["kafka", "elasticsearch", "ingest-workers"])
@pytest.mark.parametrize("value_set", ["minimal", "production", "tls-sasl"])
def test_no_chart_workload_shares_the_node_network(renders: Any, chart: str, value_set: str) -> None:
    """With IMDS hop limit 1 only the node reaches instance metadata; a hostNetwork pod is the node's network."""
    from chart_render import pod_specs

    shared = [name for name, spec in pod_specs(renders.docs(chart, value_set)) if spec.get("hostNetwork")]
    assert shared == []
