"""The in-cluster orchestrator Job, as `toolkit upgrade job` renders it: valid manifests, the same wiring as the
charts (Services, Secrets, identity), an environment document the pod resolves to exactly the in-cluster view, and
a container whose mounted files are the ones that environment names (run with pod_contract, as the pod would)."""

from __future__ import annotations

import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.pod_contract import ROOT_REASON, can_run, run_container
from toolkit.config.environments import resolve
from toolkit.provision import credentials
from toolkit.provision.orchestrator import job_manifests

TARGETS = {"workers": "0.2.0"}


@pytest.mark.parametrize("name", ["kind", "eu-west-1"])
def test_the_manifests_are_valid_and_use_the_platform_wiring(name: str) -> None:
    env = resolve(name)
    docs = job_manifests(env, TARGETS)
    for doc in docs:
        kubernetes_validate.validate(doc, "1.33", strict=True)
    job = next(d for d in docs if d["kind"] == "Job")
    spec = job["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["command"][:5] == ["toolkit", "upgrade", "run", "--env", name]
    assert "workers=0.2.0" in container["command"]
    # an --output the CLI accepts (the Job once asked for `jsonl`, and its pod exited at once with a usage error)
    from toolkit.cli.common import check_output

    check_output(container["command"][container["command"].index("--output") + 1])
    secrets = {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    wiring = env.wiring
    assert secrets == {wiring.orchestrator.kafka_secret, wiring.orchestrator.es_secret, wiring.secrets.ca}
    # the environment the pod reads: in-cluster Services of this platform, files that the Job mounts
    document = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"][f"{name}.yaml"])
    assert document["access"]["kafka"]["bootstrap"] == wiring.kafka_bootstrap.address
    assert document["access"]["elasticsearch"]["url"] == wiring.elasticsearch_url
    assert document["access"]["discover"] is False and document["kubeconfig"] is None
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    for key in ("ca_file", "cert_file", "key_file"):
        assert any(document["access"]["kafka"][key].startswith(m + "/") for m in mounts), key
    # least privilege: no Secret is readable, nothing can be evicted
    role = next(d for d in docs if d["kind"] == "Role")
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert "secrets" not in resources and "pods/eviction" not in resources


@pytest.mark.skipif(not can_run(), reason=ROOT_REASON)
def test_the_pod_resolves_its_environment_and_finds_every_file_it_names(tmp_path: Path) -> None:
    env = resolve("kind")
    docs = job_manifests(env, TARGETS)
    job = next(d for d in docs if d["kind"] == "Job")
    spec = job["spec"]["template"]["spec"]
    container = dict(spec["containers"][0])
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    objects = {**credentials.generate(env), config_map["metadata"]["name"]: {
        k: v.encode() for k, v in config_map["data"].items()
    }}  # fmt: skip
    # inside the pod: resolve the environment by its name and check every access file the way the adapters will
    probe = (
        "import os, sys\n"
        "from toolkit.config.environments import resolve\n"
        f"env = resolve({env.name!r})\n"
        "a = env.access\n"
        "paths = [a.kafka.ca_file, a.kafka.cert_file, a.kafka.key_file, a.elasticsearch.ca_file,"
        " a.elasticsearch.password_file]\n"
        "missing = [p for p in paths if not (p and os.access(p, os.R_OK))]\n"
        "print(env.kind, env.kubeconfig, a.discover, missing)\n"
        "sys.exit(1 if missing else 0)\n"
    )
    container["command"] = [sys.executable, "-c", probe]
    result = run_container(spec, container, objects)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split()[:3] == ["kube", "None", "False"]


def test_the_role_lets_it_update_its_status_configmap_and_record_events_and_nothing_more() -> None:
    docs = job_manifests(resolve("kind"), TARGETS)
    role = next(d for d in docs if d["kind"] == "Role")
    updates = [r for r in role["rules"] if "configmaps" in r["resources"] and "update" in r["verbs"]]
    assert updates == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "verbs": ["update"],
            "resourceNames": ["toolkit-audit", "toolkit-upgrade-control", "toolkit-upgrade-status"],
        }
    ]
    events = [r for r in role["rules"] if "events" in r["resources"]]
    assert events == [{"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]}]


def test_without_metrics_options_the_job_exposes_no_port() -> None:
    job = next(d for d in job_manifests(resolve("kind"), TARGETS) if d["kind"] == "Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert "ports" not in container and "--metrics-port" not in container["command"]
    assert "annotations" not in job["spec"]["template"]["metadata"]


def test_metrics_port_push_and_pod_monitor_when_asked() -> None:
    url = "http://pushgateway.monitoring:9091"
    docs = job_manifests(resolve("eu-west-1"), TARGETS, metrics_port=9405, pod_monitor=True, metrics_push=url)
    for doc in docs:
        if doc["kind"] != "PodMonitor":  # a CRD: no bundled schema
            kubernetes_validate.validate(doc, "1.33", strict=True)
    assert docs[-1]["kind"] == "Job"  # `--apply` follows the last object's logs
    job = docs[-1]
    template = job["spec"]["template"]
    container = template["spec"]["containers"][0]
    assert container["ports"] == [{"name": "metrics", "containerPort": 9405, "protocol": "TCP"}]
    command = container["command"]
    assert command[command.index("--metrics-port") + 1] == "9405"
    assert command[command.index("--metrics-push") + 1] == url
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9405",
        "prometheus.io/path": "/metrics",
    }
    monitor = next(d for d in docs if d["kind"] == "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"] == template["metadata"]["labels"]
    assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]


def test_a_pod_monitor_without_a_port_is_refused_naming_the_way_out() -> None:
    from toolkit.errors import UsageError

    with pytest.raises(UsageError, match="--pod-monitor scrapes the Job's metrics port: give --metrics-port"):
        job_manifests(resolve("kind"), TARGETS, pod_monitor=True)


def test_kubernetes_rights_only_when_the_job_targets_kubernetes() -> None:
    """Evicting, cordoning and listing pods of every namespace are granted by a ClusterRole of their own, rendered
    only for a Job that targets Kubernetes itself (the base Role never evicts); the local cluster adds its node
    pool's ConfigMap in kube-system."""
    from toolkit.provision.orchestrator import KUBERNETES_RULES

    for name in ("kind", "eu-west-1", "local"):
        env = resolve(name)
        plain = job_manifests(env, {"kafka": "4.1.0"})
        assert not any("pods/eviction" in r["resources"] for d in plain if "rules" in d for r in d["rules"])
        docs = job_manifests(env, {"kubernetes": "1.34"})
        for doc in docs:
            kubernetes_validate.validate(doc, "1.33", strict=True)
        kinds = [d["kind"] for d in docs]
        assert kinds[-2:] == ["ConfigMap", "Job"]  # the rights exist before the Job starts
        roles = [d for d in docs if d["kind"] == "ClusterRole" and d["rules"] == KUBERNETES_RULES]
        assert len(roles) == 1 and roles[0]["metadata"]["name"].endswith("-kubernetes")
        granted = {(r, v) for rule in roles[0]["rules"] for r in rule["resources"] for v in rule["verbs"]}
        assert ("pods/eviction", "create") in granted and ("nodes", "patch") in granted
        assert ("pods", "delete") not in granted and not any(r == "secrets" for r, _v in granted)
        binding = next(
            d
            for d in docs
            if d["kind"] == "ClusterRoleBinding" and d["roleRef"]["name"] == roles[0]["metadata"]["name"]
        )
        assert binding["subjects"][0]["name"] == "toolkit-orchestrator"
        pool = [d for d in docs if d["kind"] == "Role" and d["metadata"]["namespace"] == "kube-system"]
        assert bool(pool) == (name == "local")


def test_a_region_job_knows_its_eks_cluster_without_the_stack_files() -> None:
    """The in-cluster orchestrator of a region drives node rolls through EKS: its environment document carries the
    cluster and the AWS region (the Job has no stacks/ folder)."""
    docs = job_manifests(resolve("eu-west-1"), {"kubernetes": "1.34"})
    document = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["eu-west-1.yaml"])
    assert document["eks_cluster"] == "secplat-eu-west-1" and document["aws_region"] == "eu-west-1"
    assert document["platform"]["kubernetes"]["version"] == "1.33"  # region:kubernetesVersion, one source
