"""The node agent's pod runtime on the real control plane: a real program (programs/probe_server.py, run as a container
of the test image `toolkit-test-python`) reports what it sees, so each test checks what a kubelet + CNI + kube-proxy
would give it: env (every valueFrom kind, $(VAR) expansion), volumes with modes and fsGroup, identity, cluster names
and Service ClusterIPs, readiness gating Endpoints, liveness restarts, SIGTERM and the grace period, crash back-off,
and the sandbox gone after deletion.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from kubernetes import client
from local_cluster_helpers import wait_for
from runtime_helpers import (
    container_log,
    control,
    create_program,
    deployment,
    get_json,
    http_status,
    one_pod,
    probe_container,
    probe_pod_spec,
    ready,
    sandbox_on_host,
)

pytestmark = pytest.mark.cluster


def _value_from(name: str, source: dict) -> dict:
    return {"name": name, "valueFrom": source}


def _field(name: str, path: str) -> dict:
    return _value_from(name, {"fieldRef": {"fieldPath": path}})


def test_the_container_gets_the_kubelets_env_files_identity_and_cluster_names(local_env, namespace, runnable_python):
    core = client.CoreV1Api(local_env.api_client)
    apps = client.AppsV1Api(local_env.api_client)
    ns = namespace
    create_program(core, ns)
    core.create_namespaced_secret(
        ns, {"metadata": {"name": "creds"}, "stringData": {"password": "s3cr3t", "token": "tok", "1bad": "skipped"}}
    )
    core.create_namespaced_config_map(ns, {"metadata": {"name": "settings"}, "data": {"mode": "fast"}})
    web = core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "rt"}, "ports": [{"port": 80, "targetPort": "http"}]},
        },
    )
    core.create_namespaced_service(ns, {
        "metadata": {"name": "peers"},
        "spec": {"clusterIP": "None", "selector": {"app": "rt"}, "ports": [{"name": "http", "port": 8080}]},
    })  # fmt: skip
    names = [
        f"web.{ns}.svc.cluster.local",
        "web",
        f"peers.{ns}.svc.cluster.local",
        f"member.peers.{ns}.svc.cluster.local",
        "kubernetes.default.svc.cluster.local",
        f"late.{ns}.svc",
    ]
    container = probe_container(
        {
            "READY_AT_START": "1",
            "REPORT_PATHS": "/etc/creds,/etc/settings,/etc/projected",
            "REPORT_NAMES": ",".join(names),
        },
        args=["--pod", "$(POD_NAME)", "--literal", "$$(A)", "--unknown", "$(NOPE)"],
        env=[
            {"name": "A", "value": "alpha"},
            {"name": "B", "value": "$(A)-beta"},
            {"name": "C", "value": "$$(A)"},
            {"name": "D", "value": "$(NOPE)-$(LATER)"},
            {"name": "LATER", "value": "later"},
            {"name": "SVC", "value": "$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)"},
            _value_from("PASSWORD", {"secretKeyRef": {"name": "creds", "key": "password"}}),
            _value_from("MODE", {"configMapKeyRef": {"name": "settings", "key": "mode"}}),
            _value_from("OPT_KEY", {"configMapKeyRef": {"name": "settings", "key": "absent", "optional": True}}),
            _value_from("OPT_SECRET", {"secretKeyRef": {"name": "no-such-secret", "key": "x", "optional": True}}),
            _field("POD_NAME", "metadata.name"),
            _field("POD_NAMESPACE", "metadata.namespace"),
            _field("POD_UID", "metadata.uid"),
            _field("POD_TIER", "metadata.labels['tier']"),
            _field("POD_IP", "status.podIP"),
            _field("NODE", "spec.nodeName"),
            _field("ACCOUNT", "spec.serviceAccountName"),
            _field("HOST_IP", "status.hostIP"),
            _value_from("MEM_MI", {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}),
            _value_from("CPU_M", {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}),
            _value_from("CPU_LIMIT", {"resourceFieldRef": {"resource": "limits.cpu"}}),
        ],
        envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}, {"secretRef": {"name": "creds"}}],
        resources={"requests": {"cpu": "250m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
        readinessProbe={"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1},
        securityContext={"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
        volumeMounts=[
            {"name": "creds", "mountPath": "/etc/creds", "readOnly": True},
            {"name": "settings", "mountPath": "/etc/settings"},
            {"name": "projected", "mountPath": "/etc/projected"},
        ],
    )
    volumes = [
        {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o440, "items": [
            {"key": "password", "path": "password"}, {"key": "token", "path": "nested/token.txt", "mode": 0o400}]}},
        {"name": "settings", "configMap": {"name": "settings", "defaultMode": 0o444}},
        {"name": "projected", "projected": {"defaultMode": 0o440, "sources": [
            {"secret": {"name": "creds", "items": [{"key": "password", "path": "secret-password"}]}},
            {"configMap": {"name": "settings", "items": [{"key": "mode", "path": "mode"}]}},
            {"downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "mem", "resourceFieldRef": {"containerName": "main", "resource": "limits.memory",
                                                     "divisor": "1Mi"}}]}}]}},
    ]  # fmt: skip
    spec = probe_pod_spec(
        container, volumes, hostname="member", subdomain="peers",
        securityContext={"runAsUser": 1500, "runAsGroup": 1600, "fsGroup": 2000, "supplementalGroups": [3000]},
    )  # fmt: skip
    started = time.monotonic()
    apps.create_namespaced_deployment(ns, deployment("rt", {"app": "rt", "tier": "backend"}, spec))
    pod = one_pod(core, ns, "app=rt", need_ready=True)
    print(f"\nDeployment created -> pod Ready: {time.monotonic() - started:.2f} s")
    # the report comes through the Service's ClusterIP from the root network namespace (kube-proxy's job)
    url = f"http://{web.spec.cluster_ip}/report"
    headless = f"member.peers.{ns}.svc.cluster.local"  # names follow the Endpoints, which follow readiness

    def report_with_names() -> dict:
        answer = get_json(url)
        names = answer["names"]
        service = f"peers.{ns}.svc.cluster.local"  # both follow the same Endpoints; the hosts file is rewritten once
        return answer if names[headless] == [pod.status.pod_ip] and names[service] == [pod.status.pod_ip] else {}

    report = wait_for(report_with_names, 20, f"{url} through the Service, with the headless names")
    env = report["env"]
    kubernetes_ip = core.read_namespaced_service("kubernetes", "default").spec.cluster_ip

    assert report["argv"][1:] == ["--pod", pod.metadata.name, "--literal", "$(A)", "--unknown", "$(NOPE)"]
    assert (env["A"], env["B"], env["C"], env["D"]) == ("alpha", "alpha-beta", "$(A)", "$(NOPE)-$(LATER)")
    assert env["SVC"] == f"{web.spec.cluster_ip}:80" and env["WEB_SERVICE_HOST"] == web.spec.cluster_ip
    assert env["KUBERNETES_SERVICE_HOST"] == kubernetes_ip and env["WEB_PORT_80_TCP_PROTO"] == "tcp"
    assert (env["PASSWORD"], env["MODE"], env["CFG_mode"], env["password"], env["token"]) == (
        "s3cr3t", "fast", "fast", "s3cr3t", "tok")  # fmt: skip
    assert "OPT_KEY" not in env and "OPT_SECRET" not in env and "1bad" not in env
    assert env["POD_NAME"] == pod.metadata.name and env["POD_NAMESPACE"] == ns and env["POD_UID"] == pod.metadata.uid
    assert env["POD_TIER"] == "backend" and env["POD_IP"] == pod.status.pod_ip and env["NODE"] == pod.spec.node_name
    assert env["ACCOUNT"] == "default" and env["HOST_IP"] == pod.status.host_ip
    assert (env["MEM_MI"], env["CPU_M"], env["CPU_LIMIT"]) == ("64", "250", "32")  # no cpu limit: the node's 32
    assert env["HOSTNAME"] == "member" and env["HOME"] == "/"
    assert env["PATH"].split(":")[0] == str(Path(local_env.agent.runtime.images.directory("toolkit-test-python:1")))
    assert "PYTEST_CURRENT_TEST" not in env, "the agent's own environment leaked into the container"

    assert (report["uid"], report["gid"]) == (1500, 1600) and {2000, 3000} <= set(report["groups"])
    assert report["hostname"] == "member"
    files = report["files"]
    for path, mode in (("/etc/creds/password", "0o440"), ("/etc/creds/nested/token.txt", "0o440"),
                       ("/etc/projected/secret-password", "0o440")):  # fmt: skip
        assert files[path]["mode"] == mode and files[path]["gid"] == 2000 and files[path]["readable"], (
            path,
            files[path],
        )
    assert (
        files["/etc/creds/password"]["content"] == "s3cr3t" and files["/etc/creds/nested/token.txt"]["content"] == "tok"
    )
    assert files["/etc/settings/mode"]["mode"] == "0o444" and files["/etc/settings/mode"]["content"] == "fast"
    assert 'app="rt"' in files["/etc/projected/labels"]["content"] and files["/etc/projected/mem"]["content"] == "64"
    assert report["writable"] == {"/": False, "/etc": False, "/var/probe": True}  # readOnlyRootFilesystem, emptyDir

    pod_ip = pod.status.pod_ip
    assert report["names"][f"web.{ns}.svc.cluster.local"] == [web.spec.cluster_ip] == report["names"]["web"]
    assert report["names"][f"peers.{ns}.svc.cluster.local"] == [pod_ip]
    assert report["names"][f"member.peers.{ns}.svc.cluster.local"] == [pod_ip]
    assert report["names"]["kubernetes.default.svc.cluster.local"] == [kubernetes_ip]
    assert report["names"][f"late.{ns}.svc"].startswith("unresolved")

    # names stay current while the pod runs: a Service made now resolves in the running container
    late = core.create_namespaced_service(ns, {"metadata": {"name": "late"}, "spec": {"ports": [{"port": 1}]}})
    wait_for(lambda: get_json(url)["names"][f"late.{ns}.svc"] == [late.spec.cluster_ip], 15, "late to resolve")


def test_without_fs_group_a_0440_secret_is_not_readable_by_a_non_root_user(local_env, namespace, runnable_python):
    core = client.CoreV1Api(local_env.api_client)
    create_program(core, namespace)
    core.create_namespaced_secret(namespace, {"metadata": {"name": "creds"}, "stringData": {"password": "s3cr3t"}})
    container = probe_container(
        {"READY_AT_START": "1", "REPORT_PATHS": "/etc/creds"},
        volumeMounts=[{"name": "creds", "mountPath": "/etc/creds", "readOnly": True}],
    )
    volumes = [{"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o440}}]
    spec = probe_pod_spec(container, volumes, securityContext={"runAsUser": 1500, "runAsGroup": 1600})
    core.create_namespaced_pod(namespace, {"metadata": {"name": "no-fsgroup", "labels": {"app": "nofs"}}, "spec": spec})
    pod = one_pod(core, namespace, "app=nofs")
    entry = wait_for(lambda: get_json(f"http://{pod.status.pod_ip}:8080/report"), 20, "the report")["files"]
    assert entry["/etc/creds/password"]["mode"] == "0o440" and entry["/etc/creds/password"]["gid"] == 0
    assert not entry["/etc/creds/password"]["readable"]
    assert "Permission denied" in entry["/etc/creds/password"]["content"]


def test_readiness_gates_the_endpoints_and_liveness_restarts_the_container(local_env, namespace, runnable_python):
    core = client.CoreV1Api(local_env.api_client)
    apps = client.AppsV1Api(local_env.api_client)
    ns = namespace
    create_program(core, ns)
    core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": "svc"},
            "spec": {"selector": {"app": "gate"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    container = probe_container(
        readinessProbe={"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1, "failureThreshold": 1},
        livenessProbe={"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1, "failureThreshold": 2},
    )
    apps.create_namespaced_deployment(ns, deployment("gate", {"app": "gate"}, probe_pod_spec(container)))
    pod = one_pod(core, ns, "app=gate")
    ip = pod.status.pod_ip

    def endpoint_ips() -> tuple[list[str], list[str]]:
        subsets = core.read_namespaced_endpoints("svc", ns).subsets or []
        ready_ips = [a.ip for s in subsets for a in s.addresses or []]
        return ready_ips, [a.ip for s in subsets for a in s.not_ready_addresses or []]

    wait_for(lambda: endpoint_ips() == ([], [ip]), 20, "the running, unready pod listed as not ready")
    time.sleep(2.0)  # several readiness periods: it must stay out of the Endpoints while /ready says 503
    assert endpoint_ips() == ([], [ip]) and not ready(core.read_namespaced_pod(pod.metadata.name, ns))
    svc_ip = core.read_namespaced_service("svc", ns).spec.cluster_ip
    with pytest.raises(ConnectionRefusedError):  # no Ready endpoint: the ClusterIP rejects, as kube-proxy does
        socket.create_connection((svc_ip, 80), timeout=2).close()
    control(ip, ready=1)
    wait_for(lambda: endpoint_ips() == ([ip], []), 20, "the pod in the Endpoints once /ready answers 200")
    wait_for(lambda: http_status(f"http://{svc_ip}/ready") == 200, 10, "the Service to lead to the Ready pod")
    control(ip, ready=0)
    wait_for(lambda: endpoint_ips() == ([], [ip]), 20, "the pod out of the Endpoints again")

    control(ip, healthy=0, ready=1)

    def restarted() -> object:
        status = core.read_namespaced_pod(pod.metadata.name, ns).status.container_statuses[0]
        return status if status.restart_count == 1 and status.state.running else None

    status = wait_for(restarted, 30, "the liveness probe to restart the container")
    assert status.last_state.terminated is not None
    assert "Liveness probe failed" in (status.last_state.terminated.message or "")
    report = wait_for(lambda: get_json(f"http://{ip}:8080/report"), 20, "the restarted container")
    assert len(report["starts"]) == 2, "one pod, two runs of the container: the emptyDir survived the restart"
    assert "SIGTERM" in container_log(local_env.control_plane.state_dir, ns, pod.metadata.name, restart=0)
    wait_for(lambda: ready(core.read_namespaced_pod(pod.metadata.name, ns)), 20, "the pod Ready after the restart")


@pytest.mark.parametrize(("term_delay", "grace", "graceful"), [(2, 10, True), (60, 2, False)])
def test_deletion_sends_sigterm_waits_the_grace_period_then_kills_and_removes_the_sandbox(
    local_env, namespace, runnable_python, term_delay: int, grace: int, graceful: bool
):
    core = client.CoreV1Api(local_env.api_client)
    create_program(core, namespace)
    readiness = {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1}  # Ready: SIGTERM handler set
    container = probe_container({"TERM_DELAY": str(term_delay), "READY_AT_START": "1"}, readinessProbe=readiness)
    spec = probe_pod_spec(container)
    spec["terminationGracePeriodSeconds"] = grace
    core.create_namespaced_pod(namespace, {"metadata": {"name": "term", "labels": {"app": "term"}}, "spec": spec})
    pod = one_pod(core, namespace, "app=term", need_ready=True)
    sandbox = local_env.agent.network.sandbox_name(pod.status.pod_ip)
    assert sandbox_on_host(sandbox)
    started = time.monotonic()
    core.delete_namespaced_pod("term", namespace)
    wait_for(lambda: not core.list_namespaced_pod(namespace).items, grace + 20, "pod term removed")
    took = time.monotonic() - started
    log = container_log(local_env.control_plane.state_dir, namespace, "term")
    print(f"\nTERM_DELAY {term_delay} s, grace {grace} s: pod removed {took:.2f} s after the delete")
    assert "SIGTERM" in log
    if graceful:
        assert "exiting" in log and term_delay <= took < grace
    else:
        assert "exiting" not in log and grace <= took < grace + 5  # SIGKILL at the end of the grace period
    assert not sandbox_on_host(sandbox), f"{sandbox} left on the host after the pod was removed"


def test_a_crashing_container_restarts_with_growing_back_off(local_env, namespace, runnable_python):
    core = client.CoreV1Api(local_env.api_client)
    create_program(core, namespace)
    spec = probe_pod_spec(probe_container({"CRASH_CODE": "3"}))
    started = time.monotonic()
    core.create_namespaced_pod(namespace, {"metadata": {"name": "crash"}, "spec": spec})
    seen_back_off: list[str] = []

    def restarted_four_times() -> bool:
        status = (core.read_namespaced_pod("crash", namespace).status.container_statuses or [None])[0]
        if status is None:
            return False
        if status.state.waiting and status.state.waiting.reason == "CrashLoopBackOff":
            seen_back_off.append(status.state.waiting.message)
        return bool(status.restart_count >= 4 and status.last_state.terminated)

    wait_for(restarted_four_times, 60, "four restarts", interval=0.1)
    took = time.monotonic() - started
    status = core.read_namespaced_pod("crash", namespace).status.container_statuses[0]
    print(f"\nfour restarts after {took:.1f} s; back-off messages: {sorted(set(seen_back_off))}")
    assert status.last_state.terminated.exit_code == 3 and status.last_state.terminated.reason == "Error"
    assert any(m.startswith("back-off 2s restarting failed container=main") for m in seen_back_off)
    assert took >= 1 + 2 + 4 - 0.5, "back-off of 1, 2 and 4 s (the session's settings) before restarts 2, 3 and 4"
    assert "crashing with 3" in container_log(local_env.control_plane.state_dir, namespace, "crash", restart=3)


IN_CLUSTER_CLIENT = """
from kubernetes import client, config
from kubernetes.client.rest import ApiException
config.load_incluster_config()
api = client.ApiClient()
print("version", client.VersionApi(api).get_code().git_version, flush=True)
try:
    client.CoreV1Api(api).list_namespaced_pod("kube-system")
except ApiException as error:
    print("list pods", error.status, error.reason, flush=True)
"""


def test_a_pod_reaches_the_apiserver_with_its_service_account_token(local_env, namespace, runnable_python):
    """In-cluster clients use KUBERNETES_SERVICE_HOST:443, the mounted CA and token: the real apiserver answers, and
    knows the pod as its service account (403 on what that account may not do)."""
    core = client.CoreV1Api(local_env.api_client)
    container = {"name": "main", "image": "toolkit-test-python:1", "command": ["python", "-c", IN_CLUSTER_CLIENT]}
    spec = {"restartPolicy": "Never", "securityContext": {"runAsUser": 1500}, "containers": [container]}
    core.create_namespaced_pod(namespace, {"metadata": {"name": "in-cluster"}, "spec": spec})

    def finished() -> object:
        pod = core.read_namespaced_pod("in-cluster", namespace)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    pod = wait_for(finished, 60, "pod in-cluster to finish")
    log = container_log(local_env.control_plane.state_dir, namespace, "in-cluster")
    assert pod.status.phase == "Succeeded", log
    assert "version v1.20.2" in log
    assert "list pods 403 Forbidden" in log, log
