"""A Kubernetes roll on the REAL local control plane (1.20.2): real Nodes registered by the node agent from the node
pool, cordon, the Eviction API with real PodDisruptionBudgets (policy/v1beta1 on 1.20), replacement Nodes surged
into the pool, old ones terminated; the engine drains them behind the same gates as a restart of each pod (the
Kafka-like StatefulSet's multi-node data plane is the simulated one following the real pods, as everywhere on local).

The control plane is fixed at 1.20, so the roll there is a node replacement at the same version: a new node image
is published to the test's node groups (as an AMI release would be), and every node still on the old image is
replaced. Each test brings its own node groups (tainted for its namespace, its pods pinned to them), so the
session's other nodes and tests are not touched.

Evidence is the apiserver's own audit log (pod writes and evictions at Metadata level, by user agent): every pod
left through the Eviction subresource; a PodDisruptionBudget refusal (429) was observed and waited out; the
orchestrator never deleted a pod.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from local_cluster_helpers import FAST_DATA_PLANE, audit_events, create_pdb, is_ready, make_namespace, wait_for

from toolkit.catalog import load
from toolkit.config.environments import resolve
from toolkit.engine import planner
from toolkit.engine.executor import Event, Executor
from toolkit.model import StepKind, UpgradeSettings
from toolkit.targets.local.nodepool import NodePool
from toolkit.targets.real import open_real_target

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ZONES = ("zone-a", "zone-b", "zone-c")
TO = {"kubernetes": "1.20"}
SETTINGS = UpgradeSettings(poll_interval=0.5, confirm_seconds=1.0, step_timeout=90.0, gate_timeout=120.0)
TOOLKIT = str(Path(sys.executable).with_name("toolkit"))
ORCHESTRATOR = "toolkit-orchestrator"


@pytest.fixture
def node_groups(local_env: Any, namespace: str) -> Iterator[dict[str, Any]]:
    """Three node groups of this test (one per zone, one node each, room for one more), tainted for its namespace;
    removed with their nodes at the end."""
    api = local_env.api_client
    pool = NodePool(api)
    groups = [f"{namespace}-{zone}" for zone in ZONES]
    taint = [{"key": "toolkit.io/dedicated", "value": namespace, "effect": "NoSchedule"}]
    nodes = []
    for group, zone in zip(groups, ZONES, strict=True):
        nodes += pool.add_group(
            group, zone, 1, 2, labels={"toolkit.io/test-group": namespace}, taints=taint, image="img-1"
        )
    core = client.CoreV1Api(api)

    def registered() -> bool:
        found = {n.metadata.name: n for n in core.list_node(label_selector=f"toolkit.io/test-group={namespace}").items}
        return all(
            name in found and any(c.type == "Ready" and c.status == "True" for c in found[name].status.conditions or [])
            for name in nodes
        )

    wait_for(registered, 60, f"nodes {nodes} registered by the node agent and Ready")
    yield {"pool": pool, "groups": groups, "nodes": nodes}

    def drop(doc: dict[str, Any]) -> dict[str, Any]:
        doc["nodes"] = {n: e for n, e in doc["nodes"].items() if e["group"] not in groups}
        doc["groups"] = {g: e for g, e in doc["groups"].items() if g not in groups}
        return doc

    pool.update(drop)
    wait_for(
        lambda: not core.list_node(label_selector=f"toolkit.io/test-group={namespace}").items,
        60,
        "the test's nodes unregistered",
    )


def _placement(namespace: str, app: str) -> dict[str, Any]:
    return {
        "nodeSelector": {"toolkit.io/test-group": namespace},
        "tolerations": [
            {"key": "toolkit.io/dedicated", "operator": "Equal", "value": namespace, "effect": "NoSchedule"}
        ],
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "kubernetes.io/hostname"}
                ]
            }
        },
        "terminationGracePeriodSeconds": 5,
    }


def create_platform(api: Any, namespace: str) -> None:
    """kafka: 3 combined nodes (StatefulSet, OnDelete), one per node; workers-indexer: 2 (Deployment); a PDB of
    maxUnavailable 1 (policy/v1beta1) over each, as the charts render them."""
    catalog = load()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    notes = {"toolkit.io/ready-delay-seconds": "0.5"}

    def labels(component: str, role: str, version: str, app: str) -> dict[str, str]:
        return {
            "app": app,
            "toolkit.io/component": component,
            "app.kubernetes.io/component": role,
            "app.kubernetes.io/version": version,
        }

    core.create_namespaced_service(
        namespace, {"metadata": {"name": "kafka-headless"}, "spec": {"clusterIP": "None", "selector": {"app": "kafka"}}}
    )
    kafka = labels("kafka", "combined", "4.0.1", "kafka")
    apps.create_namespaced_stateful_set(
        namespace,
        {
            "metadata": {"name": "kafka", "labels": kafka, "annotations": {"toolkit.io/kafka-node-id-base": "0"}},
            "spec": {
                "serviceName": "kafka-headless",
                "replicas": 3,
                "podManagementPolicy": "Parallel",
                "updateStrategy": {"type": "OnDelete"},
                "selector": {"matchLabels": {"app": "kafka"}},
                "template": {
                    "metadata": {"labels": kafka, "annotations": notes},
                    "spec": {
                        **_placement(namespace, "kafka"),
                        "containers": [{"name": "main", "image": catalog.component("kafka").image_ref("4.0.1")}],
                    },
                },
            },
        },
    )
    workers = labels("workers", "indexer", "0.1.0", "workers-indexer")
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "workers-indexer", "labels": workers},
            "spec": {
                "replicas": 2,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "selector": {"matchLabels": {"app": "workers-indexer"}},
                "template": {
                    "metadata": {"labels": workers, "annotations": notes},
                    "spec": {
                        **_placement(namespace, "workers-indexer"),
                        "containers": [{"name": "main", "image": catalog.component("workers").image_ref("0.1.0")}],
                    },
                },
            },
        },
    )
    for app in ("kafka", "workers-indexer"):
        create_pdb(api, namespace, app, maxUnavailable=1)

    def ready() -> bool:
        pods = core.list_namespaced_pod(namespace, label_selector="toolkit.io/component").items
        return len(pods) == 5 and all(is_ready(p) for p in pods)

    wait_for(ready, 90, "3 kafka pods and 2 indexer pods Ready on the test's nodes")


def foreign_pod_with_a_blocking_pdb(api: Any, namespace: str, node_namespace: str) -> None:
    """A team's single pod on the test's nodes, in its own namespace, with a PDB (minAvailable 1) that refuses any
    eviction until someone relaxes it: the Eviction API answers 429."""
    apps = client.AppsV1Api(api)
    labels = {"app": "team-app"}
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "team-app"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels, "annotations": {"toolkit.io/ready-delay-seconds": "0.5"}},
                    "spec": {
                        **_placement(node_namespace, "team-app"),
                        "containers": [{"name": "main", "image": "registry.local/team:1.0"}],
                    },
                },
            },
        },
    )
    create_pdb(api, namespace, "team-app", minAvailable=1)
    core = client.CoreV1Api(api)
    wait_for(
        lambda: any(is_ready(p) for p in core.list_namespaced_pod(namespace, label_selector="app=team-app").items),
        60,
        "the team's pod Ready",
    )


@pytest.fixture
def environment(local_env: Any, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    envs = tmp_path / "environments"
    envs.mkdir()
    name = f"k8s-{namespace}"
    (envs / f"{name}.yaml").write_text(
        yaml.safe_dump(
            {
                "kind": "local",
                "kubeconfig": str(local_env.cluster.kubeconfig),
                "platform": {
                    "namespace": namespace,
                    "kafka": {
                        "version": "4.0.1",
                        "combined": True,
                        "controllers": 0,
                        "brokers": 3,
                        "topics": 2,
                        "partitions_per_topic": 3,
                    },
                    "workers": {"version": "0.1.0", "receivers": 1, "indexers": 2},
                    "kubernetes": {"version": "1.20", "node_selector": f"toolkit.io/test-group={namespace}"},
                },
                "sim": FAST_DATA_PLANE,
            }
        )
    )
    monkeypatch.setenv("TOOLKIT_ENVIRONMENTS_DIR", str(envs))
    monkeypatch.setenv("TOOLKIT_STATE_DIR", str(tmp_path / "state"))
    return name


def publish_new_image(groups: dict[str, Any], image: str = "img-2") -> None:
    for group in groups["groups"]:
        groups["pool"].set_image(group, image)


class KafkaNotReady:
    """Samples the kafka pods every 0.1 s: the largest number seen not Ready at once."""

    def __init__(self, core: Any, namespace: str) -> None:
        self.core, self.namespace, self.worst = core, namespace, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pods = self.core.list_namespaced_pod(self.namespace, label_selector="app=kafka").items
                self.worst = max(self.worst, 3 - sum(1 for p in pods if is_ready(p)))
            except Exception:  # a sampling gap only lowers the evidence
                pass
            self._stop.wait(0.1)

    def __enter__(self) -> KafkaNotReady:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_node_replacement_drains_through_the_eviction_api_behind_the_gates(
    local_env: Any, namespace: str, node_groups: dict[str, Any], environment: str
) -> None:
    api = local_env.api_client
    core = client.CoreV1Api(api)
    create_platform(api, namespace)
    team = make_namespace(core, "team")
    try:
        foreign_pod_with_a_blocking_pdb(api, team, namespace)
        publish_new_image(node_groups)
        env = resolve(environment)
        with open_real_target(env, kubernetes=True) as target:
            state = target.observe()
            assert state.kubernetes.control_plane_version == "1.20"
            assert sorted(n.name for n in state.kubernetes.nodes) == sorted(node_groups["nodes"])
            plan = planner.plan(state, TO, SETTINGS, load())
            assert not plan.refused, plan.refusals
            assert [s.kind for s in plan.steps] == [StepKind.REPLACE_NODE] * 3  # no control plane step: fixed at 1.20
            relaxed: list[float] = []

            def relax_when_refused(event: Event) -> None:
                # the Eviction API refused the team's pod (429): the engine waits; the team relaxes its budget
                refused = event.kind == "gate-wait" and event.rule == "kubernetes.pdb" and "429" in event.message
                if refused and not relaxed:
                    client.CustomObjectsApi(api).delete_namespaced_custom_object(
                        "policy", "v1beta1", team, "poddisruptionbudgets", "team-app"
                    )
                    relaxed.append(time.time())

            started = time.time()
            with KafkaNotReady(core, namespace) as watch:
                result = Executor(target, load(), TO, SETTINGS, on_event=relax_when_refused).run()
            assert result.outcome == "completed", result.reason
            assert relaxed, "the Eviction API never refused the team's pod"
            assert watch.worst <= 1  # one kafka member away at a time
            after = target.observe().kubernetes
        new_nodes = {n.name: n for n in after.nodes}
        assert not set(node_groups["nodes"]) & set(new_nodes)  # every old node terminated and unregistered
        assert {n.image for n in after.nodes} == {"img-2"} and len(after.nodes) == 3
        assert {n.replaces for n in after.nodes} == set(node_groups["nodes"])
        assert all(n.ready and not n.unschedulable for n in after.nodes)
        pods = core.list_namespaced_pod(namespace, label_selector="toolkit.io/component").items
        assert len(pods) == 5 and all(is_ready(p) and p.spec.node_name in new_nodes for p in pods)

        events = audit_events(local_env, {namespace, team})
        mine = [e for e in events if e.get("userAgent", "").startswith(ORCHESTRATOR)]
        evictions = [e for e in mine if e["objectRef"].get("subresource") == "eviction" and e["verb"] == "create"]
        accepted = [e for e in evictions if e["responseStatus"]["code"] == 201]
        refused = [e for e in evictions if e["responseStatus"]["code"] == 429]
        assert {e["objectRef"]["name"] for e in accepted if e["objectRef"]["namespace"] == namespace} >= {
            "kafka-0",
            "kafka-1",
            "kafka-2",
        }
        assert refused and all(e["objectRef"]["namespace"] == team for e in refused)
        team_accepted = [e for e in accepted if e["objectRef"]["namespace"] == team]
        assert team_accepted and _time(team_accepted[0]) >= _time(refused[0]) >= started
        assert relaxed[0] <= _time(team_accepted[0]) + 1.0  # the 429 was waited out, not bypassed
        deletes = [e for e in mine if e["verb"] in ("delete", "deletecollection")]
        assert not deletes, f"the orchestrator deleted pods: {[e['objectRef'] for e in deletes]}"
    finally:
        core.delete_namespace(team)


def _time(event: dict[str, Any]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(event["stageTimestamp"].replace("Z", "+00:00")).timestamp()


def test_sigkill_mid_drain_then_the_same_command_resumes_and_evicts_nothing_twice(
    local_env: Any, namespace: str, node_groups: dict[str, Any], environment: str
) -> None:
    api = local_env.api_client
    core = client.CoreV1Api(api)
    create_platform(api, namespace)
    publish_new_image(node_groups)
    args = [TOOLKIT, "upgrade", "run", "--env", environment, "--to", "kubernetes=1.20", "--output", "jsonl"]
    args += ["--poll", "0.5", "--confirm", "1", "--step-timeout", "90", "--gate-timeout", "120"]
    run = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    evicted = 0
    try:
        assert run.stdout is not None
        for line in run.stdout:
            event = json.loads(line)
            if event.get("event") == "act" and event["message"].startswith("evict "):
                evicted += 1
                if evicted == 2:
                    run.send_signal(signal.SIGKILL)
                    break
        assert run.wait(timeout=120) == -signal.SIGKILL, run.stderr.read()[-2000:] if run.stderr else ""
    finally:
        if run.poll() is None:
            run.kill()
    cordoned = [
        n.metadata.name
        for n in core.list_node(label_selector=f"toolkit.io/test-group={namespace}").items
        if n.spec.unschedulable
    ]
    assert cordoned  # it died with a node cordoned and half drained
    resumed = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-2000:]
    with open_real_target(resolve(environment)) as target:
        trail = target.control.audit_trail()
    evictions = [r for r in trail if r["what"].startswith("evict ") and r["result"] == "ok"]
    uids = [r["what"].rsplit("uid ", 1)[1].rstrip(")") for r in evictions]
    assert len(uids) >= 5 and len(uids) == len(set(uids))  # every pod moved, none evicted twice
    surges = [r["what"] for r in trail if r["what"].startswith("surge ") and r["result"] == "ok"]
    assert len(surges) == len({s.split(" to replace ")[1] for s in surges}) == 3  # one replacement per node
    assert sum(1 for r in trail if r["what"] == "start") == 2
    nodes = core.list_node(label_selector=f"toolkit.io/test-group={namespace}").items
    assert len(nodes) == 3 and not set(node_groups["nodes"]) & {n.metadata.name for n in nodes}
    events = audit_events(local_env, {namespace})
    deletes = [e for e in events if e.get("userAgent", "").startswith(ORCHESTRATOR) and e["verb"] == "delete"]
    assert not deletes


def test_on_eks_without_aws_credentials_the_roll_is_refused_before_anything_moves(
    local_env: Any,
    namespace: str,
    node_groups: dict[str, Any],
    environment: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The EKS node provider on a real apiserver, with no AWS credentials anywhere: Kubernetes itself cannot be
    observed (DescribeCluster is refused), so the engine refuses to plan the roll, names what is missing, and
    changes nothing (exit 3 from the CLI)."""
    from toolkit.targets.eks import EksProvider
    from toolkit.targets.kube.nodes import KubeKubernetes
    from toolkit.targets.kube.target import KubeTarget

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    create_platform(local_env.api_client, namespace)
    env = resolve(environment)
    with open_real_target(env) as base:
        eks = KubeKubernetes(base.workloads.api, namespace, "", EksProvider("secplat-eu-west-1", "eu-west-1"))
        target = KubeTarget(
            env.name, base.workloads, base.control.lease, base.control.audit_log, base.data, kubernetes=eks
        )
        before = {p.metadata.uid for p in client.CoreV1Api(local_env.api_client).list_namespaced_pod(namespace).items}
        result = Executor(target, load(), {"kubernetes": "1.34"}, SETTINGS).run()
    assert result.outcome == "refused" and result.rule == "kubernetes.observable"
    assert "AWS credentials not found" in result.reason and "describe EKS cluster secplat-eu-west-1" in result.reason
    after = {p.metadata.uid for p in client.CoreV1Api(local_env.api_client).list_namespaced_pod(namespace).items}
    assert after == before
