"""Apply a list of Kubernetes objects (plain dicts) through the API: create, or replace what exists.

Used for the few objects the toolkit owns outside Helm releases (the orchestrator Job and its RBAC). A Job's pod
template is immutable: an existing Job that has finished is deleted (with its pods) and created again; one that is
still running is refused, naming it, so two orchestrators never run side by side.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from toolkit.errors import RefusedError
from toolkit.model import Verdict


def _api_for(api: Any, kind: str) -> tuple[Any, str, bool]:
    """(API object, method suffix, namespaced) for the kinds the toolkit applies."""
    table = {
        "ServiceAccount": (client.CoreV1Api(api), "service_account", True),
        "ConfigMap": (client.CoreV1Api(api), "config_map", True),
        "Role": (client.RbacAuthorizationV1Api(api), "role", True),
        "RoleBinding": (client.RbacAuthorizationV1Api(api), "role_binding", True),
        "ClusterRole": (client.RbacAuthorizationV1Api(api), "cluster_role", False),
        "ClusterRoleBinding": (client.RbacAuthorizationV1Api(api), "cluster_role_binding", False),
        "Job": (client.BatchV1Api(api), "job", True),
    }
    if kind not in table:
        raise ValueError(f"the toolkit does not apply objects of kind {kind}")
    return table[kind]


CUSTOM_KINDS = {"PodMonitor": ("monitoring.coreos.com", "v1", "podmonitors")}


def _require_served(api: Any, obj: dict[str, Any]) -> None:
    """Refuse, before anything is applied, a custom object whose kind the cluster does not serve (no CRD)."""
    kind, ns = obj["kind"], obj["metadata"]["namespace"]
    group, version, plural = CUSTOM_KINDS[kind]
    try:
        client.CustomObjectsApi(api).list_namespaced_custom_object(group, version, ns, plural, limit=1)
    except ApiException as exc:
        if exc.status != 404:
            raise
        raise RefusedError(
            Verdict.refuse(
                "orchestrator.pod-monitor",
                f"the cluster does not serve {group}/{version} {kind}: install the Prometheus Operator's CRDs, or "
                "leave out --pod-monitor (the pod keeps its prometheus.io annotations); nothing was applied",
            )
        ) from None


def _apply_custom(api: Any, obj: dict[str, Any]) -> str:
    """Create or replace a namespaced custom object (a PodMonitor)."""
    kind, name, ns = obj["kind"], obj["metadata"]["name"], obj["metadata"]["namespace"]
    group, version, plural = CUSTOM_KINDS[kind]
    custom = client.CustomObjectsApi(api)
    try:
        current = custom.get_namespaced_custom_object(group, version, ns, plural, name)
    except ApiException as exc:
        if exc.status != 404:
            raise
        custom.create_namespaced_custom_object(group, version, ns, plural, obj)
        return f"created {kind}/{name}"
    body = {**obj, "metadata": {**obj["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}}
    custom.replace_namespaced_custom_object(group, version, ns, plural, name, body)
    return f"replaced {kind}/{name}"


def _job_finished(job: Any) -> bool:
    status = job.status
    return bool(status and (status.succeeded or status.failed) and not status.active)


def apply(api: Any, objects: list[dict[str, Any]], timeout: float = 60.0) -> list[str]:
    """Create each object, or replace it when it exists; returns 'created Kind/name' / 'replaced Kind/name'."""
    done: list[str] = []
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            _require_served(api, obj)
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind in CUSTOM_KINDS:
            done.append(_apply_custom(api, obj))
            continue
        ns = obj["metadata"].get("namespace")
        target, suffix, namespaced = _api_for(api, kind)
        where = (ns,) if namespaced else ()
        read = getattr(target, f"read_{'namespaced_' if namespaced else ''}{suffix}")
        try:
            current = read(name, *where)
        except ApiException as exc:
            if exc.status != 404:
                raise
            current = None
        if current is None:
            getattr(target, f"create_{'namespaced_' if namespaced else ''}{suffix}")(*where, obj)
            done.append(f"created {kind}/{name}")
            continue
        if kind == "Job":
            if not _job_finished(current):
                raise RefusedError(
                    Verdict.refuse(
                        "orchestrator.job-running",
                        f"Job {ns}/{name} is still running: one orchestrator at a time; follow it with "
                        f"`kubectl -n {ns} logs -f job/{name}`, or delete it if it is stuck",
                    )
                )
            target.delete_namespaced_job(name, ns, propagation_policy="Foreground")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    read(name, ns)
                except ApiException as exc:
                    if exc.status == 404:
                        break
                    raise
                time.sleep(0.5)
            target.create_namespaced_job(ns, obj)
            done.append(f"replaced {kind}/{name}")
            continue
        body = {**obj, "metadata": {**obj["metadata"], "resourceVersion": current.metadata.resource_version}}
        getattr(target, f"replace_{'namespaced_' if namespaced else ''}{suffix}")(name, *where, body)
        done.append(f"replaced {kind}/{name}")
    return done
