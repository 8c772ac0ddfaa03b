"""A run shows itself in the cluster, on the real control plane, AS the orchestrator's ServiceAccount: the RBAC
`toolkit upgrade job` renders is applied to the test's namespace and `toolkit upgrade run` authenticates with that
ServiceAccount's own token (what the Job's pod does), so every write below is allowed by exactly that Role.

- the ConfigMap `toolkit-upgrade-status` goes through the phases while the run goes (recorded by a watch from the
  test: every version the apiserver stored), ends Completed or Halted, and reads as `kubectl get -o yaml` shows it;
- Events name the right involvedObject (the StatefulSet/Deployment by UID, the pod by the UID it had) and `kubectl
  describe` lists them; a repeat counts up (PATCH);
- the Lease says it is free and who held it last;
- the same ServiceAccount may not update any other ConfigMap (403), nor delete Events;
- a status write that races another writer is re-read and applied again (409).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from local_cluster_helpers import wait_for
from test_engine_on_kube import KAFKA_FROM, KAFKA_TO, WORKERS_FROM, WORKERS_TO, create_platform, kafka_pods

from toolkit.config.environments import resolve
from toolkit.engine.status import Notice, from_data
from toolkit.provision.orchestrator import NAME, job_manifests
from toolkit.targets.kube.client import api_client_for
from toolkit.targets.kube.status import STATUS_NAME, KubeStatus
from toolkit.targets.kube.workloads import KubeWorkloads

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

KUBECTL = str(Path(sys.executable).with_name("kubectl"))
TOOLKIT = str(Path(sys.executable).with_name("toolkit"))
FAST = ["--poll", "0.5", "--confirm", "1", "--gate-timeout", "60"]


def apply_rendered_rbac(api: Any, namespace: str) -> list[dict[str, Any]]:
    """The ServiceAccount, Role(+Binding) and ClusterRole(+Binding) exactly as `toolkit upgrade job` renders them
    for an environment in `namespace`."""
    env = resolve("local")
    env = env.model_copy(update={"platform": env.platform.model_copy(update={"namespace": namespace})})
    docs = [d for d in job_manifests(env, {"kafka": KAFKA_TO}) if d["kind"] not in ("Job", "ConfigMap")]
    rbac, core = client.RbacAuthorizationV1Api(api), client.CoreV1Api(api)
    for doc in docs:
        {
            "ServiceAccount": lambda d: core.create_namespaced_service_account(namespace, d),
            "Role": lambda d: rbac.create_namespaced_role(namespace, d),
            "RoleBinding": lambda d: rbac.create_namespaced_role_binding(namespace, d),
            "ClusterRole": rbac.create_cluster_role,
            "ClusterRoleBinding": rbac.create_cluster_role_binding,
        }[doc["kind"]](doc)
    return docs


def service_account_kubeconfig(local_env: Any, namespace: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the orchestrator's ServiceAccount with its own token (as its pod would)."""
    core = client.CoreV1Api(local_env.api_client)

    def token() -> str | None:
        account = core.read_namespaced_service_account(NAME, namespace)
        for ref in account.secrets or []:
            secret = core.read_namespaced_secret(ref.name, namespace)
            if secret.type == "kubernetes.io/service-account-token" and (secret.data or {}).get("token"):
                import base64

                return base64.b64decode(secret.data["token"]).decode()
        return None

    bearer = wait_for(token, 60, f"the token of service account {namespace}/{NAME}")
    config = yaml.safe_load(Path(local_env.cluster.kubeconfig).read_text())
    for user in config["users"]:
        user["user"] = {"token": bearer}
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def as_orchestrator(local_env: Any, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The rendered RBAC applied, and a `local` environment whose kubeconfig is the ServiceAccount's; its name."""
    docs = apply_rendered_rbac(local_env.api_client, namespace)
    kubeconfig = service_account_kubeconfig(local_env, namespace, tmp_path / "orchestrator.kubeconfig")
    envs = tmp_path / "environments"
    envs.mkdir()
    name = f"sa-{namespace}"
    (envs / f"{name}.yaml").write_text(
        yaml.safe_dump(
            {
                "kind": "local",
                "kubeconfig": str(kubeconfig),
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
    rbac = client.RbacAuthorizationV1Api(local_env.api_client)
    for doc in docs:
        if doc["kind"] == "ClusterRoleBinding":
            rbac.delete_cluster_role_binding(doc["metadata"]["name"])
        elif doc["kind"] == "ClusterRole":
            rbac.delete_cluster_role(doc["metadata"]["name"])


class StatusWatch:
    """Every version of the status ConfigMap the apiserver stores while the block runs (a watch from the test)."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.core, self.namespace = client.CoreV1Api(api), namespace
        self.versions: list[dict[str, str]] = []
        self._watch = watch.Watch()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        seen = "0"  # from the start of the object's history; resumed after a dropped connection
        while not self._stopped.is_set():
            try:
                for event in self._watch.stream(
                    self.core.list_namespaced_config_map,
                    self.namespace,
                    field_selector=f"metadata.name={STATUS_NAME}",
                    resource_version=seen,
                    timeout_seconds=60,
                ):
                    obj = event["object"]
                    if event["type"] in ("ADDED", "MODIFIED") and obj.metadata.resource_version != seen:
                        seen = obj.metadata.resource_version
                        self.versions.append(dict(obj.data or {}))
            except Exception:  # a dropped watch connection: resume from the last version seen
                self._stopped.wait(0.2)

    def __enter__(self) -> StatusWatch:
        self._thread.start()
        return self

    def __exit__(self, failed: object, *exc: object) -> None:
        if failed is not None:  # the run failed: its own error says why
            self._stopped.set()
            self._watch.stop()
            return
        wait_for(lambda: self.versions and self.versions[-1].get("finishedAt"), 30, "the final status in the watch")
        self._stopped.set()
        self._watch.stop()

    def phases(self) -> list[str]:
        out: list[str] = []
        for data in self.versions:
            if not out or out[-1] != data["phase"]:
                out.append(data["phase"])
        return out


def kubectl(local_env: Any, *args: str) -> str:
    done = subprocess.run(
        [KUBECTL, "--kubeconfig", str(local_env.cluster.kubeconfig), *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def events_on(core: Any, namespace: str, kind: str, name: str) -> list[Any]:
    """The toolkit's Events on one object (its controllers record their own there too)."""
    selector = f"involvedObject.kind={kind},involvedObject.name={name},source=toolkit-orchestrator"
    return core.list_namespaced_event(namespace, field_selector=selector).items


def test_a_run_as_the_service_account_shows_its_phases_events_and_frees_the_lease(
    local_env: Any, namespace: str, as_orchestrator: str
) -> None:
    api = local_env.api_client
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    create_platform(api, namespace)
    uids_before = {n: p.metadata.uid for n, p in kafka_pods(core, namespace).items()}
    args = ["upgrade", "run", "--env", as_orchestrator, "--to", f"kafka={KAFKA_TO}", "--to", f"workers={WORKERS_TO}"]
    with StatusWatch(api, namespace) as seen:
        run = subprocess.run(
            [TOOLKIT, *args, "--output", "jsonl", "--step-timeout", "30", *FAST],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    result = lines[-1]
    assert result["outcome"] == "completed", result["reason"]

    # the phases, as the apiserver stored them while the run went
    phases = seen.phases()
    assert phases[0] == "Planning" and "WaitingOnGate" in phases and phases[-1] == "Completed", phases
    waits = [v for v in seen.versions if v["phase"] == "WaitingOnGate"]
    reported = {(e["rule"], e["step"]) for e in lines if e["event"] == "gate-wait"}
    assert all((v["gate"], v["gateStep"]) in reported for v in waits)  # each shown gate is one the run reported
    assert all(v["gateReason"] and v["gateSince"] for v in waits)
    shown_waiting = {k: v for k, v in waits[0].items() if k != "conditions"}
    print(f"mid-run, as the watch saw it (data, without conditions):\n{yaml.safe_dump(shown_waiting)}")
    assert {v["holder"] for v in seen.versions} == {seen.versions[-1]["holder"]}

    # the final object, as `kubectl get configmap toolkit-upgrade-status -o yaml` shows it
    text = kubectl(local_env, "-n", namespace, "get", "configmap", STATUS_NAME, "-o", "yaml")
    print(f"$ kubectl get configmap {STATUS_NAME} -o yaml\n{text}")
    shown = yaml.safe_load(text)
    assert shown["kind"] == "ConfigMap" and shown["metadata"]["name"] == STATUS_NAME
    assert shown["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "toolkit", "toolkit.io/status": "true"}
    data = shown["data"]
    assert data["phase"] == "Completed" and data["rule"] == "run.completed" and data["simulated"] == "true"
    assert data["targets"] == f"kafka={KAFKA_TO},workers={WORKERS_TO}"
    assert data["stepsDone"] == data["stepsTotal"] == str(len(result["steps"]))
    assert data["restarts"] == "3" and "gate" not in data
    assert "\n  conditions: |\n" in text  # a block kubectl prints as YAML, readable as it stands
    conditions = {c["type"]: c for c in yaml.safe_load(data["conditions"])}
    assert list(conditions) == ["Progressing", "GateBlocked", "Paused", "Completed"]
    for condition in conditions.values():
        assert set(condition) == {"type", "status", "reason", "message", "lastTransitionTime"}
    assert conditions["Completed"]["status"] == "True" and conditions["Completed"]["reason"] == "RunCompleted"
    assert conditions["Progressing"]["status"] == "False"
    assert from_data(data)["phase"] == "Completed"
    phase = kubectl(local_env, "-n", namespace, "get", "configmap", STATUS_NAME, "-o", "jsonpath={.data.phase}")
    assert phase == "Completed"

    # Events: on the StatefulSet and Deployment by UID, on each pod by the UID it had when restarted
    sts = apps.read_namespaced_stateful_set("kafka", namespace)
    on_sts = events_on(core, namespace, "StatefulSet", "kafka")
    assert {e.involved_object.uid for e in on_sts} == {sts.metadata.uid}
    reasons = [e.reason for e in on_sts]
    assert reasons.count("ToolkitRestart") == 3 and "ToolkitCompleted" in reasons and "ToolkitSpecApplied" in reasons
    assert all(e.reason.startswith("Toolkit") and e.type == "Normal" for e in on_sts)
    for pod, uid in uids_before.items():
        restarts = [e for e in events_on(core, namespace, "Pod", pod) if e.reason == "ToolkitRestart"]
        assert [e.involved_object.uid for e in restarts] == [uid], pod
        assert restarts[0].message.startswith(f"restarting pod {pod}: step kafka/restart/{pod} (")
    deployment = apps.read_namespaced_deployment("workers-indexer", namespace)
    rolled = events_on(core, namespace, "Deployment", "workers-indexer")
    assert {e.reason for e in rolled} >= {"ToolkitRoll", "ToolkitCompleted"}
    assert {e.involved_object.uid for e in rolled} == {deployment.metadata.uid}
    described = kubectl(local_env, "-n", namespace, "describe", "statefulset", "kafka")
    print(f"$ kubectl describe statefulset kafka | tail\n{described[described.index('Events:') :]}")
    event_lines = described[described.index("Events:") :].splitlines()
    assert any("ToolkitRestart" in line and "toolkit-orchestrator" in line for line in event_lines)
    assert any("ToolkitCompleted" in line for line in event_lines)

    # the Lease: free, and who held it last
    lease = client.CoordinationV1Api(api).read_namespaced_lease("toolkit-upgrade", namespace)
    notes = lease.metadata.annotations
    assert lease.spec.holder_identity is None
    assert notes["toolkit.io/state"] == "free" and notes["toolkit.io/last-holder"] == data["holder"]
    assert notes["toolkit.io/released-at"].endswith("Z")
    lease_yaml = kubectl(local_env, "-n", namespace, "get", "lease", "toolkit-upgrade", "-o", "yaml")
    print(f"$ kubectl get lease toolkit-upgrade -o yaml\n{lease_yaml}")

    # `toolkit upgrade status` (as the ServiceAccount too) shows the same run
    status = subprocess.run(
        [TOOLKIT, "upgrade", "status", "--env", as_orchestrator, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["run"] == {**from_data(data), "stale": False}


def test_a_halted_run_shows_halted_and_warns_on_the_pod_it_halted_on(
    local_env: Any, namespace: str, as_orchestrator: str
) -> None:
    api = local_env.api_client
    core = client.CoreV1Api(api)
    create_platform(api, namespace, never_ready=True)
    run = subprocess.run(
        [TOOLKIT, "upgrade", "run", "--env", as_orchestrator, "--to", f"kafka={KAFKA_TO}", "--output", "jsonl",
         "--step-timeout", "4", "--restart-budget", "1", *FAST],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    halted_on = next(s["members"][0] for s in result["steps"] if s["outcome"] == "halted")
    data = core.read_namespaced_config_map(STATUS_NAME, namespace).data
    assert data["phase"] == "Halted" and data["rule"] == result["rule"] and data["step"].endswith(halted_on)
    conditions = {c["type"]: c for c in yaml.safe_load(data["conditions"])}
    assert conditions["Completed"]["reason"] == "RunHalted" and conditions["Progressing"]["status"] == "False"
    pod = core.read_namespaced_pod(halted_on, namespace)  # the pod as it is now (restarted, never Ready)
    warnings = [e for e in events_on(core, namespace, "Pod", halted_on) if e.reason == "ToolkitHalted"]
    assert [(e.type, e.involved_object.uid) for e in warnings] == [("Warning", pod.metadata.uid)]
    assert any(e.reason == "ToolkitHalted" for e in events_on(core, namespace, "StatefulSet", "kafka"))
    described = kubectl(local_env, "-n", namespace, "describe", "pod", halted_on)
    print(f"$ kubectl describe pod {halted_on} | tail\n{described[described.index('Events:') :]}")
    assert any("Warning" in line and "ToolkitHalted" in line for line in described.splitlines())


def test_the_service_account_updates_its_own_configmaps_and_events_and_no_other(
    local_env: Any, namespace: str, as_orchestrator: str, tmp_path: Path
) -> None:
    admin = local_env.api_client
    create_platform(admin, namespace)
    orchestrator = api_client_for(str(tmp_path / "orchestrator.kubeconfig"), None)
    try:
        workloads = KubeWorkloads(orchestrator, namespace)
        workloads.observe()
        status = KubeStatus(orchestrator, namespace, workloads)
        status.write_status({"phase": "Running"})
        status.write_status({"phase": "WaitingOnGate", "gate": "kafka.isr-rejoined"})
        assert status.read_status() == {"phase": "WaitingOnGate", "gate": "kafka.isr-rejoined"}
        # a repeat of the same Event on the same object counts up (PATCH), as kubectl's recorder does
        notice = Notice("ToolkitGateWait", "Normal", "waiting on kafka.isr-rejoined", ("kafka-1",), ())
        status.record_event(notice)
        status.record_event(notice)
        core = client.CoreV1Api(admin)
        counts = {(e.involved_object.kind, e.count) for e in core.list_namespaced_event(namespace).items
                  if e.reason == "ToolkitGateWait"}  # fmt: skip
        assert counts == {("Pod", 2), ("StatefulSet", 2)}
        as_sa = client.CoreV1Api(orchestrator)
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": "kafka-config"}, "data": {"server.properties": "super.users=User:node"}}
        )
        foreign = as_sa.read_namespaced_config_map("kafka-config", namespace)
        foreign.data["server.properties"] = "super.users=User:node;User:toolkit-orchestrator"
        with pytest.raises(ApiException) as rewrite:
            as_sa.replace_namespaced_config_map("kafka-config", namespace, foreign)
        assert rewrite.value.status == 403
        with pytest.raises(ApiException) as patched:
            as_sa.patch_namespaced_config_map(STATUS_NAME, namespace, {"data": {"phase": "Completed"}})
        assert patched.value.status == 403  # update (whole, under its resourceVersion) only
        event = next(e for e in core.list_namespaced_event(namespace).items if e.reason == "ToolkitGateWait")
        with pytest.raises(ApiException) as deleted:
            as_sa.delete_namespaced_event(event.metadata.name, namespace)
        assert deleted.value.status == 403

        # a status write that races another writer: 409, re-read, written again; the last picture wins
        other = KubeStatus(orchestrator, namespace, workloads)
        raced = [False]

        def change(current: dict[str, str]) -> dict[str, str]:
            if not raced[0]:
                raced[0] = True
                other.write_status({"phase": "Paused"})  # lands between this writer's read and its replace
            return {"phase": "Halted"}

        status.store.update(change)
        assert raced[0] and status.read_status() == {"phase": "Halted"}
    finally:
        orchestrator.close()


def test_applying_a_pod_monitor_where_the_cluster_has_no_prometheus_operator_is_refused_naming_it(
    local_env: Any, namespace: str
) -> None:
    from toolkit.errors import RefusedError
    from toolkit.targets import manifests

    env = resolve("local")
    env = env.model_copy(update={"platform": env.platform.model_copy(update={"namespace": namespace})})
    docs = job_manifests(env, {"kafka": KAFKA_TO}, metrics_port=9405, pod_monitor=True)
    with pytest.raises(RefusedError, match=r"does not serve monitoring\.coreos\.com/v1 PodMonitor"):
        manifests.apply(
            local_env.api_client, [d for d in docs if d["kind"] not in ("ClusterRole", "ClusterRoleBinding")]
        )
    accounts = client.CoreV1Api(local_env.api_client).list_namespaced_service_account(namespace).items
    assert NAME not in {a.metadata.name for a in accounts}  # refused before anything was applied
