"""The platform's workloads and pods in its namespace, observed into the model, and the few actions the engine takes
on them (`KubeWorkloads`).

What is observed (namespace of the platform; objects labelled `toolkit.io/component` = kafka | elasticsearch |
workers)
- StatefulSet: update revision = `status.updateRevision`; a pod's revision = its label `controller-revision-hash`.
- Deployment: update revision = the `pod-template-hash` of its newest ReplicaSet (highest
  `deployment.kubernetes.io/revision`); a pod's revision = its label `pod-template-hash`.
- version of a pod = its label `app.kubernetes.io/version`; target_version of a workload = the same label on its
  pod template; previous_version = the workload annotation `toolkit.io/previous-version` (written by `apply_spec`);
  role = label `app.kubernetes.io/component`; tier = label `toolkit.io/es-tier`; zone = the label
  `topology.kubernetes.io/zone` of the pod's Node; annotations = the pod template's `toolkit.io/` annotations.

Observation strategy: a fresh LIST per observation (StatefulSets, Deployments, ReplicaSets, pods; Nodes at most once
a minute), not a watch-fed cache. Why: the engine observes once per poll interval (seconds), a platform namespace
holds tens of objects, and each LIST is a quorum read at one resourceVersion, so every observation is current by
construction; there is no cache to go stale, no missed event, no 410 Gone to handle, and an apiserver restart costs
nothing but the retries of the calls made during it. Consumers that need to notice a restart between two
observations compare pod UIDs (a re-created pod has a new UID), which a LIST shows as well as a watch would.
Measured on the local control plane: one observation of a namespace with 5 workloads and 10 pods takes a few tens of
milliseconds (see the cluster tier's timing summary).

Actions
- `apply_spec` / `roll_deployment`: one strategic-merge patch of the workload: pod template label
  `app.kubernetes.io/version`, the image of its first container from the catalog
  (`catalog.component(c).image_ref(version)`), and the annotation `toolkit.io/previous-version` = the version the
  template asked for before. Idempotent: a template already on the version is not touched (so the recorded previous
  version survives a re-run). With OnDelete nothing restarts. For a StatefulSet the call returns once the controller
  has observed the new generation, so the next observation already carries the new update revision.
- `restart_pod`: DELETE of exactly that pod with a UID precondition (the UID of the last observation). Never an
  eviction: a PDB with maxUnavailable 1 would refuse the second member of a parallel batch; PDBs stay for drains.
  A pod already gone (404) or already replaced (409 on the precondition) counts as restarted.
- `annotate_template`: one strategic-merge patch of the pod template's annotations (the version untouched), skipped
  when they are there already; like `apply_spec`, a StatefulSet's call returns once its controller observed it.
- `pause_deployment`: patch `spec.paused`.
Conflicts (409 where no precondition was meant), throttling (429), server errors (5xx) and connection errors are
retried with exponential backoff for up to `RetryPolicy.deadline_seconds`; what remains becomes `ActionError`
naming the object and the cause.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

from toolkit.catalog import load as load_catalog
from toolkit.catalog import repository_of
from toolkit.engine.ports import ActionError
from toolkit.model import Pod, Workload
from toolkit.targets.kube.client import (
    STRATEGIC_MERGE,
    ObserveError,
    RetryPolicy,
    _annotations,
    _describe,
    _labels,
    retrying,
)

LABEL_COMPONENT = "toolkit.io/component"
LABEL_VERSION = "app.kubernetes.io/version"
LABEL_ROLE = "app.kubernetes.io/component"
LABEL_TIER = "toolkit.io/es-tier"
LABEL_STS_REVISION = "controller-revision-hash"
LABEL_POD_TEMPLATE_HASH = "pod-template-hash"
LABEL_ZONE = "topology.kubernetes.io/zone"
ANNOTATION_PREVIOUS_VERSION = "toolkit.io/previous-version"
ANNOTATION_DEPLOYMENT_REVISION = "deployment.kubernetes.io/revision"
ANNOTATION_NODE_ID_BASE = "toolkit.io/kafka-node-id-base"
TOOLKIT_ANNOTATION_PREFIX = "toolkit.io/"
NODE_ZONES_TTL = 60.0

T = TypeVar("T")


def _template_annotations(obj: Any) -> tuple[tuple[str, str], ...]:
    notes = (obj.spec.template.metadata.annotations or {}) if obj.spec.template.metadata else {}
    return tuple(sorted((k, str(v)) for k, v in notes.items() if k.startswith(TOOLKIT_ANNOTATION_PREFIX)))


def _resolve_intstr(value: Any, total: int, round_up: bool) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        fraction = int(text[:-1]) * total / 100
        return int(-(-fraction // 1)) if round_up else int(fraction)
    return int(text)


def pod_ready(pod: Any) -> bool:
    conditions = pod.status.conditions or [] if pod.status else []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def pod_ordinal(name: str) -> int | None:
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


@dataclass
class _Observed:
    """The raw objects of one observation, kept so actions can use exactly what the engine decided on."""

    workloads: tuple[Workload, ...] = ()
    pod_uids: dict[str, str] = field(default_factory=dict)
    node_id_base: dict[str, int] = field(default_factory=dict)  # StatefulSet name -> toolkit.io/kafka-node-id-base


class KubeWorkloads:
    """Observes and acts on the platform's workloads in one namespace (see the module docstring)."""

    def __init__(self, api: client.ApiClient, namespace: str, retry: RetryPolicy = RetryPolicy()) -> None:
        self.api = api
        self.namespace = namespace
        self.retry = retry
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self._zones: dict[str, str] = {}
        self._zones_at = -NODE_ZONES_TTL
        self.last = _Observed()

    # ------------------------------------------------------------------ observation

    def _list(self, what: str, call: Callable[[], T]) -> T:
        return retrying(f"list {what} in namespace {self.namespace}", call, self.retry, error=ObserveError)

    def _node_zones(self) -> dict[str, str]:
        if time.monotonic() - self._zones_at >= NODE_ZONES_TTL:
            try:
                nodes = retrying("list nodes", self.core.list_node, self.retry, error=ObserveError)
            except ApiException as exc:
                if exc.status != 403:
                    raise ObserveError(f"kubernetes: list nodes failed: {_describe(exc)}") from None
                nodes = None  # no RBAC for nodes: zones stay unknown rather than failing the observation
            if nodes is not None:
                self._zones = {n.metadata.name: _labels(n).get(LABEL_ZONE, "") for n in nodes.items}
            self._zones_at = time.monotonic()
        return self._zones

    def observe(self) -> tuple[Workload, ...]:
        ns, selector = self.namespace, LABEL_COMPONENT
        try:
            sets = self._list(
                "statefulsets", lambda: self.apps.list_namespaced_stateful_set(ns, label_selector=selector)
            )
            deployments = self._list(
                "deployments", lambda: self.apps.list_namespaced_deployment(ns, label_selector=selector)
            )
            replica_sets = self._list(
                "replicasets", lambda: self.apps.list_namespaced_replica_set(ns, label_selector=selector)
            )
            pods = self._list("pods", lambda: self.core.list_namespaced_pod(ns, label_selector=selector))
        except ApiException as exc:
            raise ObserveError(
                f"kubernetes: cannot list the platform's workloads in namespace {ns}: {_describe(exc)}"
            ) from None
        zones = self._node_zones()
        rs_owner: dict[str, str] = {}
        newest_rs: dict[str, tuple[int, str]] = {}
        for rs in replica_sets.items:
            owner = next((o.name for o in rs.metadata.owner_references or [] if o.kind == "Deployment"), None)
            if owner is None:
                continue
            rs_owner[rs.metadata.name] = owner
            number = int(_annotations(rs).get(ANNOTATION_DEPLOYMENT_REVISION, "0") or 0)
            template_hash = _labels(rs).get(LABEL_POD_TEMPLATE_HASH, "")
            if number >= newest_rs.get(owner, (-1, ""))[0]:
                newest_rs[owner] = (number, template_hash)
        pods_of: dict[str, list[Pod]] = {}
        uids: dict[str, str] = {}
        for p in pods.items:
            owner_ref = next(iter(p.metadata.owner_references or []), None)
            if owner_ref is None:
                continue
            if owner_ref.kind == "ReplicaSet":
                workload = rs_owner.get(owner_ref.name)
                revision = _labels(p).get(LABEL_POD_TEMPLATE_HASH, "")
            elif owner_ref.kind == "StatefulSet":
                workload = owner_ref.name
                revision = _labels(p).get(LABEL_STS_REVISION, "")
            else:
                continue
            if workload is None:
                continue
            statuses = (p.status.container_statuses or []) if p.status else []
            node = p.spec.node_name or ""
            pods_of.setdefault(workload, []).append(
                Pod(
                    name=p.metadata.name,
                    workload=workload,
                    ready=pod_ready(p),
                    revision=revision,
                    version=_labels(p).get(LABEL_VERSION, ""),
                    zone=zones.get(node, ""),
                    node=node,
                    uid=p.metadata.uid or "",
                    phase=(p.status.phase if p.status else None) or "Pending",
                    terminating=p.metadata.deletion_timestamp is not None,
                    restarts=sum(s.restart_count or 0 for s in statuses),
                )
            )
            uids[p.metadata.name] = p.metadata.uid or ""
        workloads: list[Workload] = []
        bases: dict[str, int] = {}
        for s in sets.items:
            component = self._component(s)
            if component is None:
                continue
            template_labels = dict(s.spec.template.metadata.labels or {})
            strategy = s.spec.update_strategy.type if s.spec.update_strategy else "RollingUpdate"
            base = _annotations(s).get(ANNOTATION_NODE_ID_BASE)
            if base is not None and base.strip().lstrip("-").isdigit():
                bases[s.metadata.name] = int(base)
            workloads.append(
                Workload(
                    name=s.metadata.name,
                    component=component,
                    kind="StatefulSet",
                    role=str(_labels(s).get(LABEL_ROLE) or template_labels.get(LABEL_ROLE) or ""),
                    replicas=s.spec.replicas if s.spec.replicas is not None else 1,
                    update_strategy=strategy or "RollingUpdate",
                    update_revision=(s.status.update_revision if s.status else None) or "",
                    target_version=template_labels.get(LABEL_VERSION, ""),
                    previous_version=_annotations(s).get(ANNOTATION_PREVIOUS_VERSION, ""),
                    tier=str(_labels(s).get(LABEL_TIER) or template_labels.get(LABEL_TIER) or ""),
                    max_surge=0,
                    max_unavailable=1,
                    pods=tuple(sorted(pods_of.get(s.metadata.name, []), key=lambda p: p.name)),
                    annotations=_template_annotations(s),
                )
            )
        for d in deployments.items:
            component = self._component(d)
            if component is None:
                continue
            template_labels = dict(d.spec.template.metadata.labels or {})
            replicas = d.spec.replicas if d.spec.replicas is not None else 1
            rolling = d.spec.strategy.rolling_update if d.spec.strategy else None
            strategy = (d.spec.strategy.type if d.spec.strategy else None) or "RollingUpdate"
            workloads.append(
                Workload(
                    name=d.metadata.name,
                    component=component,
                    kind="Deployment",
                    role=str(_labels(d).get(LABEL_ROLE) or template_labels.get(LABEL_ROLE) or ""),
                    replicas=replicas,
                    update_strategy=strategy,
                    update_revision=newest_rs.get(d.metadata.name, (0, ""))[1],
                    target_version=template_labels.get(LABEL_VERSION, ""),
                    previous_version=_annotations(d).get(ANNOTATION_PREVIOUS_VERSION, ""),
                    paused=bool(d.spec.paused),
                    max_surge=_resolve_intstr(rolling.max_surge if rolling else "25%", replicas, round_up=True),
                    max_unavailable=_resolve_intstr(
                        rolling.max_unavailable if rolling else "25%", replicas, round_up=False
                    ),
                    tier="",
                    pods=tuple(sorted(pods_of.get(d.metadata.name, []), key=lambda p: p.name)),
                    annotations=_template_annotations(d),
                )
            )
        workloads.sort(key=lambda w: (w.component, w.name))
        self.last = _Observed(tuple(workloads), uids, bases)
        return self.last.workloads

    @staticmethod
    def _component(obj: Any) -> str | None:
        value = _labels(obj).get(LABEL_COMPONENT, "")
        return value if value in load_catalog().components else None

    # ------------------------------------------------------------------ actions

    def _act(self, what: str, call: Callable[[], T]) -> T:
        try:
            return retrying(what, call, self.retry)
        except ApiException as exc:
            raise ActionError(f"kubernetes: {what} failed: {_describe(exc)}") from None

    def _template_patch(self, obj: Any, component: str, version: str) -> dict[str, Any] | None:
        template = obj.spec.template
        current = dict(template.metadata.labels or {}).get(LABEL_VERSION, "")
        spec = load_catalog().component(component)
        image = spec.image_ref(version)
        containers = template.spec.containers or []
        if not containers:
            raise ActionError(f"{obj.kind or 'workload'} {obj.metadata.name} has no container to set {image} on")
        repo = spec.image
        main = next((c for c in containers if repository_of(c.image or "") == repo), containers[0])
        if current == version and main.image == image:
            return None
        return {
            "metadata": {"annotations": {ANNOTATION_PREVIOUS_VERSION: current}},
            "spec": {
                "template": {
                    "metadata": {"labels": {LABEL_VERSION: version}},
                    "spec": {"containers": [{"name": main.name, "image": image}]},
                }
            },
        }

    def apply_spec(self, component: str, workloads: tuple[str, ...], version: str) -> None:
        for name in workloads:
            obj = self._read_workload(name)
            patch = self._template_patch(obj, component, version)
            if patch is not None:
                self._patch_workload(obj.kind, name, patch, version)

    def annotate_template(self, component: str, workloads: tuple[str, ...], annotations: Mapping[str, str]) -> None:
        wanted = {k: str(v) for k, v in annotations.items()}
        for name in workloads:
            obj = self._read_workload(name)
            template = obj.spec.template
            current = dict((template.metadata.annotations or {}) if template.metadata else {})
            if all(current.get(k) == v for k, v in wanted.items()):
                continue
            patch = {"spec": {"template": {"metadata": {"annotations": wanted}}}}
            what = ", ".join(f"{k}={v}" for k, v in sorted(wanted.items()))
            self._patch_workload(obj.kind, name, patch, what)

    def _patch_workload(self, kind: str, name: str, patch: dict[str, Any], version: str) -> None:
        ns = self.namespace
        if kind == "StatefulSet":

            def patch_set() -> Any:
                return self.apps.patch_namespaced_stateful_set(name, ns, patch, _content_type=STRATEGIC_MERGE)

            patched = self._act(f"patch statefulset {ns}/{name} to {version}", patch_set)
            self._await_observed_generation(name, patched.metadata.generation)
        else:

            def patch_deployment() -> Any:
                return self.apps.patch_namespaced_deployment(name, ns, patch, _content_type=STRATEGIC_MERGE)

            self._act(f"patch deployment {ns}/{name} to {version}", patch_deployment)

    def _read_workload(self, name: str) -> Any:
        ns = self.namespace
        try:
            obj = retrying(f"read statefulset {ns}/{name}", lambda: self.apps.read_namespaced_stateful_set(name, ns))
            obj.kind = "StatefulSet"
            return obj
        except ApiException as exc:
            if exc.status != 404:
                raise ActionError(f"kubernetes: read statefulset {ns}/{name} failed: {_describe(exc)}") from None
        try:
            obj = retrying(f"read deployment {ns}/{name}", lambda: self.apps.read_namespaced_deployment(name, ns))
            obj.kind = "Deployment"
            return obj
        except ApiException as exc:
            if exc.status == 404:
                raise ActionError(
                    f"workload {name} is neither a StatefulSet nor a Deployment in namespace {ns}; "
                    "check the environment's platform.namespace"
                ) from None
            raise ActionError(f"kubernetes: read deployment {ns}/{name} failed: {_describe(exc)}") from None

    def _await_observed_generation(self, name: str, generation: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = retrying(
                f"read statefulset {self.namespace}/{name}",
                lambda: self.apps.read_namespaced_stateful_set_status(name, self.namespace),
            )
            if s.status is not None and (s.status.observed_generation or 0) >= generation:
                return
            time.sleep(0.1)
        raise ActionError(
            f"statefulset {self.namespace}/{name}: the controller did not observe generation {generation} within "
            f"{timeout:.0f} s; is kube-controller-manager running?"
        )

    def restart_pod(self, pod: str) -> None:
        ns = self.namespace
        uid = self.last.pod_uids.get(pod)
        if uid is None:
            try:
                uid = retrying(f"read pod {ns}/{pod}", lambda: self.core.read_namespaced_pod(pod, ns)).metadata.uid
            except ApiException as exc:
                if exc.status == 404:
                    return  # already gone: its controller re-creates it on the current spec
                raise ActionError(f"kubernetes: read pod {ns}/{pod} failed: {_describe(exc)}") from None
        body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
        try:
            retrying(
                f"delete pod {ns}/{pod} (uid {uid})",
                lambda: self.core.delete_namespaced_pod(pod, ns, body=body),
                self.retry,
                retry_conflicts=False,
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                return  # gone, or already replaced by a new pod (other UID): the restart has happened
            raise ActionError(f"kubernetes: delete pod {ns}/{pod} failed: {_describe(exc)}") from None

    def pause(self, name: str, paused: bool) -> None:
        ns = self.namespace
        self._act(
            f"{'pause' if paused else 'resume'} deployment {ns}/{name}",
            lambda: self.apps.patch_namespaced_deployment(
                name, ns, {"spec": {"paused": paused}}, _content_type=STRATEGIC_MERGE
            ),
        )

    def pod_metrics(self, pod: str, port: int) -> str | None:
        """GET /metrics of a pod through the apiserver's pod proxy; None when nothing answers there."""
        try:
            text = self.core.connect_get_namespaced_pod_proxy_with_path(f"{pod}:{port}", self.namespace, "metrics")
        except ApiException:
            return None
        except (urllib3.exceptions.HTTPError, OSError):
            return None
        return str(text)
