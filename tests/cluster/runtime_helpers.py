"""Building blocks of the pod runtime tests: the probe program as a ConfigMap, pod specs that run it, and readers of
what the runtime made (reports over HTTP, container logs, sandboxes on the host)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from local_cluster_helpers import TEST_PYTHON_IMAGE

PROGRAM = Path(__file__).parent / "programs" / "probe_server.py"
PROGRAM_MAP = "probe-program"


def create_program(core: Any, namespace: str) -> None:
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": PROGRAM_MAP}, "data": {"probe_server.py": PROGRAM.read_text()}}
    )


def probe_container(values: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """The probe program as a container of the runnable test image, its HTTP port named `http`: `values` become
    literal env entries; `env` and `volumeMounts` in `extra` are appended, other keys set."""
    container: dict[str, Any] = {
        "name": "main",
        "image": f"{TEST_PYTHON_IMAGE}:1",
        "command": ["python", "/opt/probe/probe_server.py"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "env": [{"name": k, "value": v} for k, v in (values or {}).items()],
        "volumeMounts": [
            {"name": "program", "mountPath": "/opt/probe", "readOnly": True},
            {"name": "work", "mountPath": "/var/probe"},
        ],
    }
    for key, value in extra.items():
        if key in ("env", "volumeMounts"):
            container[key] = container[key] + value
        else:
            container[key] = value
    return container


def probe_pod_spec(container: dict[str, Any], volumes: list[dict[str, Any]] | None = None, **extra: Any) -> dict:
    return {
        "terminationGracePeriodSeconds": 5,
        "containers": [container],
        "volumes": [
            {"name": "program", "configMap": {"name": PROGRAM_MAP}},
            {"name": "work", "emptyDir": {}},
            *(volumes or []),
        ],
        **extra,
    }


def deployment(name: str, labels: dict[str, str], spec: dict[str, Any], replicas: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": labels["app"]}},
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }


def get_json(url: str, timeout: float = 3.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.loads(answer.read())


def http_status(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def control(pod_ip: str, **flags: int) -> None:
    """Set the probe program's flags (ready, healthy), waiting for it to listen (a busy host starts Python slowly)."""
    query = "&".join(f"{k}={v}" for k, v in flags.items())

    def answered() -> bool:
        try:
            return http_status(f"http://{pod_ip}:8080/control?{query}") == 200
        except OSError:
            return False

    deadline = time.monotonic() + 20
    while not answered():
        assert time.monotonic() < deadline, f"the probe program at {pod_ip}:8080 never answered /control?{query}"
        time.sleep(0.1)


def describe(pods: list[Any]) -> str:
    """Phase and container states of `pods`, for failure messages."""
    out = []
    for pod in pods:
        states = [
            f"{c.name}: {c.state.waiting.reason + ' ' + (c.state.waiting.message or '') if c.state.waiting else ''}"
            f"{'running' if c.state.running else ''}"
            f"{'terminated ' + str(c.state.terminated.exit_code) if c.state.terminated else ''}"
            for c in pod.status.container_statuses or []
        ]
        out.append(f"{pod.metadata.name} {pod.status.phase} ip={pod.status.pod_ip} [{'; '.join(states)}]")
    return " | ".join(out) or "no pods"


def one_pod(core: Any, namespace: str, selector: str, timeout: float = 60, need_ready: bool = False) -> Any:
    """The single running pod of `selector` once it has an IP (and is Ready, with `need_ready`)."""
    deadline = time.monotonic() + timeout
    listed: list[Any] = []
    while time.monotonic() < deadline:
        listed = core.list_namespaced_pod(namespace, label_selector=selector).items
        live = [
            p for p in listed if not p.metadata.deletion_timestamp and p.status.pod_ip and p.status.phase == "Running"
        ]
        if len(live) == 1 and (ready(live[0]) or not need_ready):
            return live[0]
        time.sleep(0.1)
    raise AssertionError(f"no single running{' Ready' if need_ready else ''} pod {selector}: {describe(listed)}")


def container_log(state_dir: Path, namespace: str, pod: str, container: str = "main", restart: int = 0) -> str:
    logs = sorted((state_dir / "logs" / "pods").glob(f"{namespace}_{pod}_*/{container}/{restart}.log"))
    return logs[-1].read_text() if logs else ""


def sandbox_on_host(name: str) -> bool:
    """True while a network namespace or a link of that name exists on this host."""
    return Path(f"/run/netns/{name}").exists() or Path(f"/sys/class/net/{name}").exists()


def ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
