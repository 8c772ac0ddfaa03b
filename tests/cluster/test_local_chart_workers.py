"""The real ingest-workers chart on the local control plane, run as real `toolkit-worker` processes.

The chart is rendered exactly as `toolkit deploy` renders it (toolkit.provision.helm: the environment's values, a
server-side dry run through helm-python-sdk) for a `local` environment, its Deployments and Services are created
unmodified (its PodDisruptionBudgets and NetworkPolicies play no part in running the pods), and the
node agent runs the catalog's worker image `toolkit-worker` from this virtualenv. The Secrets the chart references
are made by the same code as deploy's `common` role (toolkit.provision.credentials).

What is checked, from the host, on each worker process while it runs: its environment is EXACTLY the one the kubelet
derives from the rendered container (literal values, secretKeyRefs resolved, the `kubernetes` Service variables since
enableServiceLinks is false, PATH/HOSTNAME/HOME), read from /proc/<pid>/environ; its files at the rendered
mountPaths carry the Secrets' bytes with mode 0440 and group fsGroup, read through /proc/<pid>/root; it runs as the
chart's user. And it starts: a worker that refuses the rendered configuration exits 2 naming it, which fails here.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, utils
from local_cluster_helpers import FAST_DATA_PLANE, make_namespace, wait_for
from runtime_helpers import container_log

from toolkit.targets.local.network import HostNetwork

pytestmark = pytest.mark.cluster

WORKER_IMAGE = "toolkit-worker"


@pytest.fixture
def worker_image(local_env) -> Iterator[str]:
    problem = local_env.agent.runtime.problem
    if problem is not None:
        pytest.skip(f"the local pod runtime cannot run here: {problem}")
    local_env.agent.set_runnable_image(WORKER_IMAGE, Path(sys.executable).parent)
    yield WORKER_IMAGE
    local_env.agent.remove_runnable_image(WORKER_IMAGE)


def _environment(kubeconfig: Path, namespace: str) -> dict[str, Any]:
    return {
        "kind": "local",
        "description": "cluster-tier chart test",
        "kubeconfig": str(kubeconfig),
        "platform": {
            "namespace": namespace,
            "kafka": {"version": "4.1.0", "controllers": 3, "brokers": 3, "storage_gi": 1},
            "elasticsearch": {
                "version": "8.19.3",
                "node_sets": [
                    {
                        "name": "data",
                        "roles": ["master", "data_hot", "data_content", "ingest"],
                        "replicas": 3,
                        "tier": "hot",
                        "storage_gi": 1,
                    }
                ],
            },
            "workers": {"version": "0.2.0", "receivers": 1, "indexers": 1},
        },
        "sim": FAST_DATA_PLANE,
    }


def _platform_secrets(core: Any, environment: Any) -> dict[str, dict[str, bytes]]:
    """The platform's Secrets, made by the same code as deploy's `common` role (toolkit.provision.credentials), read
    back: name -> key -> bytes."""
    import base64

    from toolkit.provision import credentials

    credentials.ensure(core.api_client, environment)
    return {
        s.metadata.name: {k: base64.b64decode(v) for k, v in (s.data or {}).items()}
        for s in core.list_namespaced_secret(environment.platform.namespace).items
    }


def _expected_env(container: dict[str, Any], secrets: dict[str, dict[str, bytes]], pod: Any, core: Any) -> dict:
    """What the kubelet gives the container, computed here independently of the runtime."""
    kubernetes = core.read_namespaced_service("kubernetes", "default").spec
    ip, port = kubernetes.cluster_ip, kubernetes.ports[0].port
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOSTNAME": pod.metadata.name,
        "HOME": "/",
        "KUBERNETES_SERVICE_HOST": ip,
        "KUBERNETES_SERVICE_PORT": str(port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
        "KUBERNETES_PORT": f"tcp://{ip}:{port}",
        f"KUBERNETES_PORT_{port}_TCP": f"tcp://{ip}:{port}",
        f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
        f"KUBERNETES_PORT_{port}_TCP_PORT": str(port),
        f"KUBERNETES_PORT_{port}_TCP_ADDR": ip,
    }
    for variable in container["env"]:
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            env[variable["name"]] = secrets[ref["name"]][ref["key"]].decode()
    return env


def _process_of(network: Any, pod: Any) -> int | None:
    """The worker process of the pod while it runs (the one process in its sandbox running toolkit-worker)."""
    for pid in HostNetwork(network).sandbox_pids(network.sandbox_name(pod.status.pod_ip)):
        try:
            if b"toolkit-worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return None


def test_the_charts_worker_pods_run_the_rendered_command_env_and_files(local_env, worker_image, tmp_path, monkeypatch):
    from toolkit.config.environments import resolve
    from toolkit.provision.helm import HelmReleases, environment_values, parse_manifest

    core = client.CoreV1Api(local_env.api_client)
    namespace = make_namespace(core, "chart")
    envs = tmp_path / "envs"
    envs.mkdir()
    (envs / "chart-run.yaml").write_text(yaml.safe_dump(_environment(local_env.cluster.kubeconfig, namespace)))
    monkeypatch.setenv("TOOLKIT_ENVIRONMENTS_DIR", str(envs))
    monkeypatch.setenv("TOOLKIT_STATE_DIR", str(tmp_path / "state"))
    environment = resolve("chart-run")
    secrets = _platform_secrets(core, environment)
    with HelmReleases(environment) as releases:
        manifest = releases.render("workers", environment_values(environment, "workers"))
    objects = parse_manifest(manifest, namespace)
    deployments = {name: obj for (kind, _, name), obj in objects.items() if kind == "Deployment"}
    assert len(deployments) == 2, sorted(objects)
    started = time.monotonic()
    for (kind, _, _), obj in sorted(objects.items()):
        if kind in ("Deployment", "Service"):  # what runs and what it is reached by; no NetworkPolicy is enforced here
            utils.create_from_dict(local_env.api_client, obj, namespace=namespace)

    seen: dict[str, str] = {}
    for name, deployment in sorted(deployments.items()):
        template = deployment["spec"]["template"]
        container = template["spec"]["containers"][0]
        component = template["metadata"]["labels"]["app.kubernetes.io/component"]
        selector = f"app.kubernetes.io/component={component}"

        def running_process(selector: str = selector) -> tuple[Any, int] | None:
            for pod in core.list_namespaced_pod(namespace, label_selector=selector).items:
                pid = _process_of(local_env.agent.network, pod) if pod.status.pod_ip else None
                if pid is not None:
                    return pod, pid
            return None

        pod, pid = wait_for(running_process, 60, f"a toolkit-worker process of {name}", interval=0.02)
        took = time.monotonic() - started
        environ = dict(
            item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item
        )
        identity = Path(f"/proc/{pid}/status").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")[:-1]
        files = {}
        for mount in container["volumeMounts"]:
            if mount["name"] == "tmp":
                continue
            for entry in sorted(Path(f"/proc/{pid}/root{mount['mountPath']}").iterdir()):
                if not entry.name.startswith(".."):
                    info = entry.stat()
                    files[f"{mount['mountPath']}/{entry.name}"] = (
                        stat.S_IMODE(info.st_mode),
                        info.st_gid,
                        entry.read_bytes(),
                    )

        assert environ == _expected_env(container, secrets, pod, core), name
        assert argv[1:] == [str(Path(sys.executable).parent / "toolkit-worker"), container["command"][1]], argv
        assert "Uid:\t10001\t10001\t10001\t10001" in identity and "Groups:\t10001" in identity
        volumes = {v["name"]: v["secret"] for v in template["spec"]["volumes"] if "secret" in v}
        for mount in container["volumeMounts"]:
            if mount["name"] not in volumes:
                continue
            secret = volumes[mount["name"]]
            keys = [i["key"] for i in secret.get("items", [])] or list(secrets[secret["secretName"]])
            for key in keys:
                mode, gid, data = files[f"{mount['mountPath']}/{key}"]
                assert (mode, gid, data) == (0o440, 10001, secrets[secret["secretName"]][key]), (name, key)
        seen[name] = f"process {pid} running {argv[1:]} as uid 10001 {took:.1f} s after the objects were created"

    def outcome(name: str) -> str | None:
        pods = core.list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/component={name}").items
        for pod in pods:
            for status in pod.status.container_statuses or []:
                if status.ready:
                    return "Ready"
                if status.state.running is not None and status.restart_count == 0:
                    # no Kafka is published here, so the worker serves but is not Ready (its readiness probe)
                    return "running, not Ready (no Kafka is published for this namespace)"
                last = status.last_state.terminated or status.state.terminated
                if last is not None:
                    log = container_log(local_env.control_plane.state_dir, namespace, pod.metadata.name, status.name)
                    return f"exited {last.exit_code} after {status.restart_count} restart(s); its log:\n{log}"
        return None

    # Nothing publishes Kafka or Elasticsearch in this namespace, so the workers cannot become Ready here; what
    # matters is that they START: the worker refuses a configuration it does not accept with exit 2 and names it.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for component in ("syslog-receiver", "indexer"):
            said = outcome(component)
            if said is not None:
                seen[component] = said
                assert "invalid configuration" not in said and not said.startswith("exited 2 "), said
        time.sleep(0.5)
    print("\n" + "\n".join(f"{k}: {v}" for k, v in seen.items()))
    assert os.path.isdir(local_env.control_plane.state_dir / "logs" / "pods")
    from toolkit.provision.credentials import ca_namespace

    core.delete_namespace(namespace)
    core.delete_namespace(ca_namespace(namespace))
