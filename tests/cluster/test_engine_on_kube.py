"""The engine drives REAL Kubernetes objects: a LocalTarget on the local control plane (real apiserver, real
StatefulSet/Deployment controllers, real PDBs; pods driven by the node agent) with the simulated data plane
following the real pods.

- a 3-replica Kafka-like StatefulSet (OnDelete) and a worker Deployment, each with a PDB (maxUnavailable 1), roll one
  member at a time in the gated order (active controller last); afterwards every pod's controller-revision-hash
  equals the StatefulSet's status.updateRevision;
- a pod that never becomes Ready halts the roll with a named reason and the other pods keep their UIDs;
- an orchestrator process SIGKILLed right after its 2nd restart, started again, finishes without re-rolling the
  pods that were already on the new revision (pod UIDs compared).
"""

from __future__ import annotations

import itertools
import json
import os
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
from local_cluster_helpers import create_pdb, is_ready, wait_for

from toolkit.catalog import load
from toolkit.config.environments import resolve
from toolkit.engine.executor import Executor
from toolkit.model import Component, UpgradeSettings
from toolkit.targets.real import LocalTarget, open_real_target

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

HERE = Path(__file__).parent
KAFKA_FROM, KAFKA_TO = "4.0.1", "4.1.0"
WORKERS_FROM, WORKERS_TO = "0.1.0", "0.2.0"
SETTINGS = UpgradeSettings(
    poll_interval=0.5, confirm_seconds=1.0, step_timeout=30.0, gate_timeout=60.0, restart_budget=2
)


def _labels(component: str, role: str, version: str) -> dict[str, str]:
    return {
        "app": f"{component}-{role}",
        "toolkit.io/component": component,
        "app.kubernetes.io/component": role,
        "app.kubernetes.io/version": version,
    }


def _template(component: str, role: str, version: str, image: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"labels": _labels(component, role, version), "annotations": annotations},
        "spec": {"terminationGracePeriodSeconds": 5, "containers": [{"name": "main", "image": image}]},
    }


def create_platform(api: Any, namespace: str, never_ready: bool = False) -> None:
    """kafka: StatefulSet (3, OnDelete, combined nodes); workers-indexer: Deployment (2, surge 1, unavailable 0);
    a PDB with maxUnavailable 1 over each."""
    catalog = load()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    pod_notes = {"toolkit.io/ready-delay-seconds": "0.5"}
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "kafka-headless"}, "spec": {"clusterIP": "None", "selector": {"app": "kafka"}}}
    )
    apps.create_namespaced_stateful_set(
        namespace,
        {
            "metadata": {
                "name": "kafka",
                "labels": _labels("kafka", "combined", KAFKA_FROM),
                "annotations": {"toolkit.io/kafka-node-id-base": "0"},
            },
            "spec": {
                "serviceName": "kafka-headless",
                "replicas": 3,
                "podManagementPolicy": "Parallel",
                "updateStrategy": {"type": "OnDelete"},
                "selector": {"matchLabels": {"app": "kafka-combined"}},
                "template": _template(
                    "kafka", "combined", KAFKA_FROM, catalog.component("kafka").image_ref(KAFKA_FROM), pod_notes
                ),
            },
        },
    )
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "workers-indexer", "labels": _labels("workers", "indexer", WORKERS_FROM)},
            "spec": {
                "replicas": 2,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "selector": {"matchLabels": {"app": "workers-indexer"}},
                "template": _template(
                    "workers", "indexer", WORKERS_FROM, catalog.component("workers").image_ref(WORKERS_FROM), pod_notes
                ),
            },
        },
    )
    for app in ("kafka-combined", "workers-indexer"):
        create_pdb(api, namespace, app, maxUnavailable=1)

    def all_ready() -> bool:
        pods = core.list_namespaced_pod(namespace, label_selector="toolkit.io/component").items
        return len(pods) == 5 and all(is_ready(p) for p in pods)

    wait_for(all_ready, 60, "3 kafka pods and 2 indexer pods Ready")
    if never_ready:  # from now on every re-created kafka pod runs but never becomes Ready (node agent)
        notes = {"toolkit.io/never-ready": "true"}
        apps.patch_namespaced_stateful_set(
            "kafka",
            namespace,
            {"spec": {"template": {"metadata": {"annotations": notes}}}},
            _content_type="application/strategic-merge-patch+json",
        )


@pytest.fixture
def environment(local_env: Any, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A `local` environment file pointing at the session's control plane and this test's namespace."""
    envs = tmp_path / "environments"
    envs.mkdir()
    name = f"cl-{namespace}"
    (envs / f"{name}.yaml").write_text(
        yaml.safe_dump(
            {
                "kind": "local",
                "kubeconfig": str(local_env.cluster.kubeconfig),
                "platform": {
                    "namespace": namespace,
                    "kafka": {
                        "version": KAFKA_FROM,
                        "combined": True,
                        "controllers": 0,
                        "brokers": 3,
                        "topics": 2,
                        "partitions_per_topic": 3,
                    },
                    "workers": {"version": WORKERS_FROM, "receivers": 1, "indexers": 2},
                },
                "sim": {"kafka_catchup_seconds": 1.0, "quorum_catchup_seconds": 0.5},
            }
        )
    )
    monkeypatch.setenv("TOOLKIT_ENVIRONMENTS_DIR", str(envs))
    monkeypatch.setenv("TOOLKIT_STATE_DIR", str(tmp_path / "state"))
    yield name


class NotReadyWatcher:
    """Samples the kafka pods every 0.1 s and keeps the largest number seen not Ready at the same time."""

    def __init__(self, core: Any, namespace: str) -> None:
        self.core, self.namespace = core, namespace
        self.max_not_ready = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pods = self.core.list_namespaced_pod(self.namespace, label_selector="toolkit.io/component=kafka").items
                names = {p.metadata.name for p in pods if is_ready(p)}
                self.max_not_ready = max(self.max_not_ready, 3 - len(names))
            except Exception:  # the sampler must not fail the run; gaps only lower the evidence
                pass
            self._stop.wait(0.1)

    def __enter__(self) -> NotReadyWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def kafka_pods(core: Any, namespace: str) -> dict[str, Any]:
    return {
        p.metadata.name: p
        for p in core.list_namespaced_pod(namespace, label_selector="toolkit.io/component=kafka").items
    }


def test_engine_rolls_statefulset_and_deployment_one_member_at_a_time(local_env, namespace, environment):
    api = local_env.api_client
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    create_platform(api, namespace)
    env = resolve(environment)
    with open_real_target(env) as target:
        assert isinstance(target, LocalTarget) and target.simulated
        before = target.observe()
        observe_started = time.monotonic()
        for _ in range(10):
            target.observe()
        observe_ms = (time.monotonic() - observe_started) * 100
        active = before.kafka.active_controller
        assert {n.pod for n in before.kafka.nodes} == {"kafka-0", "kafka-1", "kafka-2"}
        active_pod = before.kafka.node(active).pod if active is not None else None
        with NotReadyWatcher(core, namespace) as watcher:
            started = time.monotonic()
            result = Executor(
                target, load(), {Component.KAFKA: KAFKA_TO, Component.WORKERS: WORKERS_TO}, SETTINGS
            ).run()
            elapsed = time.monotonic() - started
        trail = target.control.audit_trail()
    assert result.outcome == "completed", result.reason
    assert result.simulated is True
    restarts = [s for s in result.steps if s.kind == "restart"]
    assert [len(s.members) for s in restarts] == [1, 1, 1]
    order = [s.members[0] for s in restarts]
    assert sorted(order) == ["kafka-0", "kafka-1", "kafka-2"]
    assert order[-1] == active_pod, f"active controller {active_pod} must restart last, order was {order}"
    for earlier, later in itertools.pairwise(restarts):
        assert later.started_at >= earlier.ended_at
    assert watcher.max_not_ready == 1, "more (or fewer) than one kafka pod was down at a time"
    sts = apps.read_namespaced_stateful_set("kafka", namespace)
    for name, pod in kafka_pods(core, namespace).items():
        assert pod.metadata.labels["controller-revision-hash"] == sts.status.update_revision, name
        assert pod.metadata.labels["app.kubernetes.io/version"] == KAFKA_TO, name
        assert pod.spec.containers[0].image == load().component("kafka").image_ref(KAFKA_TO), name
    assert sts.metadata.annotations["toolkit.io/previous-version"] == KAFKA_FROM
    indexers = core.list_namespaced_pod(namespace, label_selector="app=workers-indexer").items
    live = [p for p in indexers if p.metadata.deletion_timestamp is None]
    assert len(live) == 2 and all(p.metadata.labels["app.kubernetes.io/version"] == WORKERS_TO for p in live)
    pdb = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "policy", "v1beta1", namespace, "poddisruptionbudgets", "kafka-combined"
    )
    assert pdb["spec"]["maxUnavailable"] == 1
    whats = [r["what"] for r in trail]
    assert whats[0] == "start" and whats[-1] == "finish"
    assert all(r["simulated"] is True and "simulated data plane" in r["data_plane"] for r in trail)
    print(
        f"engine on local control plane: 3 brokers + 2 indexers rolled in {elapsed:.1f} s; "
        f"one observation (4 LISTs + simulated data plane) {observe_ms:.0f} ms"
    )


def test_pod_that_never_becomes_ready_halts_the_roll_and_leaves_the_others(local_env, namespace, environment):
    api = local_env.api_client
    core = client.CoreV1Api(api)
    create_platform(api, namespace, never_ready=True)
    before = {name: p.metadata.uid for name, p in kafka_pods(core, namespace).items()}
    env = resolve(environment)
    settings = UpgradeSettings(
        poll_interval=0.5, confirm_seconds=1.0, step_timeout=4.0, gate_timeout=20.0, restart_budget=1
    )
    with open_real_target(env) as target:
        result = Executor(target, load(), {Component.KAFKA: KAFKA_TO}, settings).run()
    assert result.outcome == "halted"
    restarted = [s.members[0] for s in result.steps if s.kind == "restart"]
    assert len(restarted) == 1
    first = restarted[0]
    assert first in result.reason and "restart budget 1 spent" in result.reason, result.reason
    assert result.rule.startswith("kafka."), result.rule
    after = kafka_pods(core, namespace)
    assert after[first].metadata.uid != before[first]
    assert not is_ready(after[first])
    for name in set(before) - {first}:
        assert after[name].metadata.uid == before[name], f"{name} was touched"
        assert after[name].metadata.labels["app.kubernetes.io/version"] == KAFKA_FROM


def test_orchestrator_killed_after_second_restart_resumes_without_rerolling(local_env, namespace, environment):
    api = local_env.api_client
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    create_platform(api, namespace)
    script = [sys.executable, str(HERE / "engine_process.py"), "--env", environment, "--to", f"kafka={KAFKA_TO}"]
    killed = subprocess.run([*script, "--kill-after-restarts", "2"], capture_output=True, text=True, timeout=180)
    assert killed.returncode == -9, killed.stderr[-2000:]
    killed_after = json.loads(killed.stdout.strip().splitlines()[-1])["killed_after"]

    sts_revision = apps.read_namespaced_stateful_set("kafka", namespace).status.update_revision

    def settled() -> dict[str, Any] | None:
        pods = kafka_pods(core, namespace)
        ok = len(pods) == 3 and all(is_ready(p) for p in pods.values())
        return pods if ok else None

    pods = wait_for(settled, 60, "3 kafka pods Ready after the orchestrator died")
    finished = {
        n: p.metadata.uid for n, p in pods.items() if p.metadata.labels["controller-revision-hash"] == sts_revision
    }
    assert len(finished) == 2 and killed_after in finished
    stale = set(pods) - set(finished)
    assert len(stale) == 1

    resumed = subprocess.run(script, capture_output=True, text=True, timeout=180, env=os.environ.copy())
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    outcome = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert outcome["outcome"] == "completed", outcome["reason"]
    assert [s["members"] for s in outcome["steps"] if s["kind"] == "restart"] == [sorted(stale)]
    final = kafka_pods(core, namespace)
    final_revision = apps.read_namespaced_stateful_set("kafka", namespace).status.update_revision
    for name, pod in final.items():
        assert pod.metadata.labels["controller-revision-hash"] == final_revision, name
    for name, uid in finished.items():
        assert final[name].metadata.uid == uid, f"{name} was restarted again after the resume"
    with open_real_target(resolve(environment)) as target:
        trail = target.control.audit_trail()
    assert any("no longer runs on this host" in r.get("why", "") or r.get("what") == "start" for r in trail)
    assert sum(1 for r in trail if r["what"] == "start") == 2


def test_lease_compare_and_swap_and_audit_rolling_on_the_real_apiserver(local_env, namespace):
    from toolkit.engine.ports import LeaseHeldError
    from toolkit.model import Lease
    from toolkit.targets.kube.audit import KubeAuditLog
    from toolkit.targets.kube.lease import KubeLeaseStore

    api = local_env.api_client
    first, second = KubeLeaseStore(api, namespace), KubeLeaseStore(api, namespace)
    now = time.monotonic()
    mine = Lease("sre@host-a/1", now, now, 60.0)
    first.write(mine, None)
    read_back = second.read()
    assert read_back is not None and read_back.holder == "sre@host-a/1"
    assert abs(read_back.renewed_at - now) < 0.01 and read_back.ttl_seconds == 60.0
    with pytest.raises(LeaseHeldError, match="held by sre@host-a/1"):
        second.write(Lease("ops@host-b/2", now, now, 60.0), None)  # expected nobody: refused
    renewed = Lease("sre@host-a/1", now, now + 5, 60.0)
    first.write(renewed, read_back)  # a lease read back by another process compares equal
    with pytest.raises(LeaseHeldError):
        second.write(None, mine)  # stale expectation (renewed since)
    first.write(None, renewed)
    assert first.read() is None

    audit = KubeAuditLog(api, namespace, roll_bytes=600)
    for i in range(12):
        audit.append({"what": "step", "i": i, "why": "x" * 40})
    records = audit.records()
    assert [r["i"] for r in records] == list(range(12))
    core = client.CoreV1Api(api)
    maps = core.list_namespaced_config_map(namespace, label_selector="toolkit.io/audit=true").items
    assert len(maps) >= 2 and all(len(m.data["records.jsonl"].encode()) <= 600 for m in maps)
    archives = [m for m in maps if m.metadata.name != "toolkit-audit"]
    assert archives and all(m.immutable for m in archives)  # only the head is ever written again

    # a roll interrupted after the archive was created and before the head was replaced (a crash): the next append
    # finishes it, and no record is shown twice
    head = core.read_namespaced_config_map("toolkit-audit", namespace)
    pending = int(head.data["archived"])
    core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {"name": f"toolkit-audit-{pending:04d}", "labels": {"toolkit.io/audit": "true"}},
            "data": {"records.jsonl": head.data["records.jsonl"]},
            "immutable": True,
        },
    )
    assert [r["i"] for r in audit.records()] == list(range(12))
    audit.append({"what": "step", "i": 12})
    assert [r["i"] for r in audit.records()] == list(range(13))
    assert core.read_namespaced_config_map("toolkit-audit", namespace).data["archived"] == str(pending + 1)


def test_orchestrator_rbac_is_enough_for_the_adapter_and_forbids_eviction(local_env, namespace):
    """The RBAC of the orchestrator Job as `toolkit upgrade job` renders it, applied to this namespace: the adapter,
    impersonating the ServiceAccount, observes, patches, restarts, takes the lease and writes the audit trail; an
    eviction, reading Secrets and exec into a pod are refused. Then the rights a Job targeting Kubernetes itself
    gets on top (`--to kubernetes=...`): the node adapter observes nodes, pods of every namespace and PDBs, cordons
    (dry run: the session's nodes are shared), evicts through the Eviction API and reads the node pool; a plain
    delete of a pod in another namespace and Secrets stay refused."""
    from kubernetes.client.rest import ApiException

    from toolkit.model import Lease, RunRequest
    from toolkit.targets.kube.audit import KubeAuditLog
    from toolkit.targets.kube.client import api_client_for
    from toolkit.targets.kube.lease import KubeControlStore, KubeLeaseStore
    from toolkit.targets.kube.workloads import KubeWorkloads

    api = local_env.api_client
    create_platform(api, namespace)
    from toolkit.config.environments import resolve
    from toolkit.provision.orchestrator import job_manifests

    env = resolve("local")
    env = env.model_copy(update={"platform": env.platform.model_copy(update={"namespace": namespace})})
    docs = [d for d in job_manifests(env, {"kafka": KAFKA_TO}) if d["kind"] not in ("Job", "ConfigMap")]
    rbac = client.RbacAuthorizationV1Api(api)
    suffix = namespace
    for doc in docs:
        kind = doc["kind"]
        doc["metadata"]["namespace"] = namespace
        for subject in doc.get("subjects", []):
            subject["namespace"] = namespace
        if kind == "ServiceAccount":
            client.CoreV1Api(api).create_namespaced_service_account(namespace, doc)
        elif kind == "Role":
            rbac.create_namespaced_role(namespace, doc)
        elif kind == "RoleBinding":
            rbac.create_namespaced_role_binding(namespace, doc)
        elif kind == "ClusterRole":
            doc["metadata"]["name"] += f"-{suffix}"
            rbac.create_cluster_role(doc)
        elif kind == "ClusterRoleBinding":
            doc["metadata"]["name"] += f"-{suffix}"
            doc["roleRef"]["name"] += f"-{suffix}"
            rbac.create_cluster_role_binding(doc)
    as_orchestrator = api_client_for(str(local_env.cluster.kubeconfig), None)
    as_orchestrator.set_default_header("Impersonate-User", f"system:serviceaccount:{namespace}:toolkit-orchestrator")
    try:
        kube = KubeWorkloads(as_orchestrator, namespace)
        workloads = kube.observe()
        assert {w.name for w in workloads} == {"kafka", "workers-indexer"}
        assert all(p.zone for w in workloads for p in w.pods)  # nodes readable through the ClusterRole
        kube.apply_spec(Component.KAFKA, ("kafka",), KAFKA_TO)
        kube.pause("workers-indexer", True)
        kube.pause("workers-indexer", False)
        kube.restart_pod("kafka-0")
        now = time.monotonic()
        KubeLeaseStore(as_orchestrator, namespace).write(Lease("job@pod/1", now, now, 60.0), None)
        audit = KubeAuditLog(as_orchestrator, namespace)
        audit.append({"what": "rbac-check"})
        assert audit.records()[-1]["what"] == "rbac-check"
        control = KubeControlStore(as_orchestrator, namespace)  # requests and budgets: the same ConfigMap verbs
        control.write_request(RunRequest("pause", "job@pod/1", "2026-01-01T00:00:00+00:00"))
        assert control.spend_restart("kafka-0@4.1.0") == 1 and control.read_request() is not None
        with pytest.raises(ApiException) as refused:
            client.CoreV1Api(as_orchestrator).create_namespaced_pod_eviction(
                "kafka-1", namespace, {"metadata": {"name": "kafka-1", "namespace": namespace}}
            )
        assert refused.value.status == 403
        with pytest.raises(ApiException) as secrets:
            client.CoreV1Api(as_orchestrator).list_namespaced_secret(namespace)
        assert secrets.value.status == 403
        # no exec into any pod (a broker's would reach its super-user certificate): the apiserver authorizes before
        # it asks for the protocol upgrade, so a plain request shows the verdict (403, not 400 "Upgrade required")
        with pytest.raises(ApiException) as exec_refused:
            client.CoreV1Api(as_orchestrator).connect_post_namespaced_pod_exec(
                "kafka-1", namespace, command=["id"], stdout=True
            )
        assert exec_refused.value.status == 403
        # ConfigMaps: it updates its own (the audit head, the control requests) and no other, e.g. not a Kafka
        # configuration whose super.users it could otherwise rewrite
        client.CoreV1Api(api).create_namespaced_config_map(
            namespace, {"metadata": {"name": "kafka-config"}, "data": {"server.properties": "super.users=User:node"}}
        )
        foreign = client.CoreV1Api(as_orchestrator).read_namespaced_config_map("kafka-config", namespace)
        foreign.data["server.properties"] = "super.users=User:node;User:toolkit-orchestrator"
        with pytest.raises(ApiException) as rewrite:
            client.CoreV1Api(as_orchestrator).replace_namespaced_config_map("kafka-config", namespace, foreign)
        assert rewrite.value.status == 403

        # the kubernetes component's rights, rendered only for a Job that targets it
        kube_docs = [
            d for d in job_manifests(env, {"kubernetes": "1.20"}) if d["metadata"]["name"].endswith("-kubernetes")
        ]
        assert {d["kind"] for d in kube_docs} == {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
        for doc in kube_docs:
            for subject in doc.get("subjects", []):
                subject["namespace"] = namespace
            if doc["kind"] == "ClusterRole":
                doc["metadata"]["name"] += f"-{suffix}"
                rbac.create_cluster_role(doc)
            elif doc["kind"] == "ClusterRoleBinding":
                doc["metadata"]["name"] += f"-{suffix}"
                doc["roleRef"]["name"] += f"-{suffix}"
                rbac.create_cluster_role_binding(doc)
            elif doc["kind"] == "Role":
                doc["metadata"]["name"] += f"-{suffix}"
                rbac.create_namespaced_role("kube-system", doc)
            else:
                doc["metadata"]["name"] += f"-{suffix}"
                doc["roleRef"]["name"] += f"-{suffix}"
                rbac.create_namespaced_role_binding("kube-system", doc)
        docs += kube_docs
        from toolkit.targets.kube.nodes import KubeKubernetes
        from toolkit.targets.local.nodepool import LocalPoolProvider

        nodes = KubeKubernetes(as_orchestrator, namespace, "", LocalPoolProvider(as_orchestrator))

        def rights_applied() -> bool:
            return not nodes.observe().unobserved

        wait_for(rights_applied, 30, "the kubernetes-component rights in effect")
        seen = nodes.observe()
        assert seen.control_plane_version == "1.20" and seen.nodes and seen.groups
        assert any(p.namespace == namespace and p.component == "kafka" for p in seen.pods)
        assert any(b.name == "kafka-combined" and b.namespace == namespace for b in seen.budgets)
        core_as = client.CoreV1Api(as_orchestrator)
        core_as.patch_node(seen.nodes[0].name, {"spec": {"unschedulable": True}}, dry_run="All")
        pod = core_as.read_namespaced_pod("kafka-2", namespace)
        # through the Eviction API: 429 while kafka-0 (restarted above) is not Ready again, then 201
        wait_for(lambda: nodes.evict(namespace, "kafka-2", pod.metadata.uid), 60, "kafka-2 evicted")
        other = (
            next(p for p in seen.pods if p.namespace != namespace)
            if any(p.namespace != namespace for p in seen.pods)
            else None
        )
        if other is not None:
            with pytest.raises(ApiException) as delete_refused:
                core_as.delete_namespaced_pod(other.name, other.namespace, dry_run="All")
            assert delete_refused.value.status == 403
        with pytest.raises(ApiException) as still_no_secrets:
            core_as.list_namespaced_secret(namespace)
        assert still_no_secrets.value.status == 403
    finally:
        as_orchestrator.close()
        for doc in docs:
            if doc["kind"] == "ClusterRoleBinding":
                rbac.delete_cluster_role_binding(doc["metadata"]["name"])
            elif doc["kind"] == "ClusterRole":
                rbac.delete_cluster_role(doc["metadata"]["name"])
            elif doc["metadata"].get("namespace") == "kube-system" and doc["kind"] == "Role":
                rbac.delete_namespaced_role(doc["metadata"]["name"], "kube-system")
            elif doc["metadata"].get("namespace") == "kube-system" and doc["kind"] == "RoleBinding":
                rbac.delete_namespaced_role_binding(doc["metadata"]["name"], "kube-system")


def test_requests_and_restart_budgets_are_kept_in_the_namespace(local_env, namespace):
    """The control port's ConfigMap on the real apiserver: a request written by one process is read by another; a
    write that races another writer is retried on the 409 and neither change is lost; counts survive new clients."""
    from toolkit.model import RunRequest
    from toolkit.targets.kube.lease import CONTROL_NAME, CONTROL_RESTARTS_KEY, KubeControlStore

    api = local_env.api_client
    first, second = KubeControlStore(api, namespace), KubeControlStore(api, namespace)
    assert first.read_request() is None and first.restarts() == {}
    pause = RunRequest("pause", "ops@host-a/1", "2026-01-01T00:00:00+00:00", "change freeze")
    first.write_request(pause)
    assert second.read_request() == pause
    assert second.spend_restart("kafka-0@4.1.0") == 1

    raced = [False]

    def add_one_while_another_writer_gets_in_first(data: dict[str, str]) -> dict[str, str]:
        if not raced[0]:
            raced[0] = True
            second.spend_restart("kafka-1@4.1.0")  # lands between this writer's read and its write: 409 for it
        given = json.loads(data.get(CONTROL_RESTARTS_KEY) or "{}")
        given["kafka-0@4.1.0"] = given.get("kafka-0@4.1.0", 0) + 1
        data[CONTROL_RESTARTS_KEY] = json.dumps(given)
        return data

    first.update(add_one_while_another_writer_gets_in_first)
    assert KubeControlStore(api, namespace).restarts() == {"kafka-0@4.1.0": 2, "kafka-1@4.1.0": 1}
    assert second.read_request() == pause  # the request written before was not lost either
    cm = client.CoreV1Api(api).read_namespaced_config_map(CONTROL_NAME, namespace)
    assert cm.metadata.labels["app.kubernetes.io/managed-by"] == "toolkit"
    first.write_request(None)
    second.clear_restarts()
    assert second.read_request() is None and first.restarts() == {}


def test_pause_resume_and_abort_a_run_on_the_real_control_plane(local_env, namespace, environment):
    """`toolkit upgrade pause|resume|abort` from other processes against a `toolkit upgrade run` process: the
    request lives in the namespace (toolkit-upgrade-control), the run holds, continues, then stops at once."""
    api = local_env.api_client
    core = client.CoreV1Api(api)
    create_platform(api, namespace)
    toolkit = str(Path(sys.executable).with_name("toolkit"))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([toolkit, *args], capture_output=True, text=True, timeout=120)

    assert cli("upgrade", "pause", "--env", environment, "--reason", "window closed").returncode == 0
    before = {n: p.metadata.uid for n, p in kafka_pods(core, namespace).items()}
    args = ["upgrade", "run", "--env", environment, "--to", f"kafka={KAFKA_TO}", "--output", "jsonl"]
    run = subprocess.Popen(
        [toolkit, *args, "--poll", "0.5", "--confirm", "1", "--step-timeout", "30", "--gate-timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stdout is not None
        events = (json.loads(line) for line in run.stdout)
        held = next(e for e in events if e["event"] == "paused")
        assert "window closed" in held["message"]
        status = json.loads(cli("upgrade", "status", "--env", environment, "--output", "json").stdout)
        assert status["request"]["action"] == "pause" and status["lease_holder"]
        time.sleep(2)  # held: nothing restarts while paused
        assert {n: p.metadata.uid for n, p in kafka_pods(core, namespace).items()} == before
        assert cli("upgrade", "resume", "--env", environment).returncode == 0
        next(e for e in events if e["event"] == "resumed")
        next(e for e in events if e["event"] == "act" and e["message"].startswith("restart "))
        assert cli("upgrade", "abort", "--env", environment, "--reason", "enough").returncode == 0
        result = [e for e in events][-1]
        assert run.wait(timeout=60) == 4
        assert result["rule"] == "run.aborted" and "enough" in result["reason"]
    finally:
        if run.poll() is None:
            run.kill()
    after = json.loads(cli("upgrade", "status", "--env", environment, "--output", "json").stdout)
    assert after["request"] is None and after["lease_holder"] is None
