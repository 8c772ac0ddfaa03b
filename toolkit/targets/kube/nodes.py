"""Kubernetes itself on a real cluster: the nodes that carry the platform, the pods on them, their
PodDisruptionBudgets, the control plane; and the few node actions of a roll (cordon, claim, evict), all through the
official `kubernetes` client. Instances (surge, terminate) and the control plane's version and add-ons belong to a
`NodeProvider`: the local cluster's node pool (toolkit.targets.local.nodepool) or EKS (toolkit.targets.eks).

What is observed (`observe() -> KubernetesState`, only when a run targets Kubernetes or status asks)
- nodes: `GET /api/v1/nodes?labelSelector=<platform.kubernetes.platform_nodes>`; version = the kubelet's minor
  (`v1.33.4-eks-...` -> "1.33"); Ready from the Ready condition; `spec.unschedulable` (cordoned); zone
  `topology.kubernetes.io/zone`; group `toolkit.io/node-group` (local) or `eks.amazonaws.com/nodegroup` (EKS);
  role `toolkit.io/node-role` or `platform.role`; image `toolkit.io/node-image` or
  `eks.amazonaws.com/nodegroup-image`; instance from `spec.providerID` (`aws:///zone/i-...` -> `i-...`);
  `toolkit.io/replaces` (set when the engine claims a surge node);
- pods on those nodes, in every namespace (`fieldSelector=spec.nodeName=<node>`): owner kind (a mirror pod's
  is Node), Ready, terminating; the platform component of pods in the platform's namespace;
- PodDisruptionBudgets of the namespaces those pods live in (policy/v1, else policy/v1beta1 as Kubernetes 1.20
  serves them), with the pods each selects (asked of the apiserver with the budget's own selector) and
  `status.disruptionsAllowed`;
- the control plane's version (`GET /version`), status and add-ons from the provider.
A part that cannot be read (RBAC, a timeout) leaves the whole state unobserved with the reason: the engine then
refuses to plan a Kubernetes roll rather than act on half a picture.

Actions
- `cordon`: `spec.unschedulable: true` (strategic merge patch); `claim`: label `toolkit.io/replaces=<old node>`;
- `evict`: `POST .../pods/<name>/eviction` with a UID precondition (policy/v1 Eviction, or policy/v1beta1 below
  Kubernetes 1.22): True when accepted (201), also when the pod is gone (404) or replaced (409, the precondition);
  False when a PodDisruptionBudget refuses it (429). Never a DELETE of a pod, never a forced eviction.
Transient API errors are retried (`toolkit.targets.kube.client.retrying`); what remains is an ActionError naming
the call.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.rest import ApiException

from toolkit.engine.ports import ActionError
from toolkit.model import Addon, DisruptionBudget, KubernetesState, Node, NodeGroup, NodePod
from toolkit.targets.kube.client import STRATEGIC_MERGE, ObserveError, RetryPolicy, _describe, retrying
from toolkit.targets.kube.workloads import LABEL_COMPONENT, LABEL_ZONE

LABEL_REPLACES = "toolkit.io/replaces"
GROUP_LABELS = ("toolkit.io/node-group", "eks.amazonaws.com/nodegroup")
ROLE_LABELS = ("toolkit.io/node-role", "platform.role")
IMAGE_LABELS = ("toolkit.io/node-image", "eks.amazonaws.com/nodegroup-image")
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
KUBELET_VERSION = re.compile(r"^v?(\d+)\.(\d+)")


def minor_of(version: str) -> str:
    """'v1.33.4-eks-a1b2' -> '1.33'; '' when it does not parse."""
    found = KUBELET_VERSION.match(version or "")
    return f"{found.group(1)}.{found.group(2)}" if found else ""


def instance_of(provider_id: str) -> str:
    """'aws:///eu-west-1a/i-0abc' -> 'i-0abc'; other providers' ids as they are."""
    return provider_id.rsplit("/", 1)[-1] if provider_id else ""


class NodeProvider(Protocol):
    """Where nodes come from and where the control plane lives (the local node pool, EKS)."""

    description: str

    def control_plane(self, api_version: str) -> tuple[str, str, bool]:
        """(version, status, can be upgraded here) of the control plane; `api_version` is what /version says."""

    def addons(self) -> tuple[Addon, ...]: ...

    def groups(self, nodes: tuple[Node, ...]) -> tuple[NodeGroup, ...]: ...

    def upgrade_control_plane(self, version: str) -> None: ...

    def update_addon(self, name: str, version: str) -> None: ...

    def surge(self, group: str, version: str) -> None: ...

    def terminate(self, node: Node) -> None: ...


def selector_string(selector: Any) -> str:
    """A label selector (matchLabels, matchExpressions) as the apiserver's query syntax."""
    parts = [f"{k}={v}" for k, v in sorted((getattr(selector, "match_labels", None) or {}).items())]
    for expr in getattr(selector, "match_expressions", None) or []:
        values = ",".join(expr.values or [])
        if expr.operator == "In":
            parts.append(f"{expr.key} in ({values})")
        elif expr.operator == "NotIn":
            parts.append(f"{expr.key} notin ({values})")
        elif expr.operator == "Exists":
            parts.append(expr.key)
        elif expr.operator == "DoesNotExist":
            parts.append(f"!{expr.key}")
    return ",".join(parts)


class KubeKubernetes:
    """Kubernetes itself on a real cluster: observation, and the engine's `KubernetesPort`."""

    def __init__(
        self,
        api: Any,
        namespace: str,
        node_selector: str,
        provider: NodeProvider,
        declared_version: str = "",
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.node_selector = node_selector
        self.provider = provider
        self.declared_version = declared_version
        self.retry = retry
        self.core = client.CoreV1Api(api)
        self._eviction_api: str | None = None
        self._api_minor = ""
        self._observed: dict[str, Node] = {}

    # ------------------------------------------------------------------ observation

    def _call(self, what: str, call: Any) -> Any:
        return retrying(what, call, self.retry, error=ObserveError)

    def observe(self) -> KubernetesState:
        try:
            return self._observe()
        except (ApiException, ObserveError, ActionError) as exc:
            reason = _describe(exc) if isinstance(exc, ApiException) else str(exc)
            return KubernetesState(
                unobserved=f"kubernetes itself cannot be observed: {reason} (the orchestrator needs to list nodes, "
                "pods in every namespace and PodDisruptionBudgets: the kubernetes-component ClusterRole of "
                "`toolkit upgrade job --to kubernetes=...`)"
            )

    def _observe(self) -> KubernetesState:
        info = self._call("read /version", lambda: client.VersionApi(self.api).get_code())
        self._api_minor = minor_of(info.git_version)
        version, status, upgradable = self.provider.control_plane(self._api_minor)
        listed = self._call("list nodes", lambda: self.core.list_node(label_selector=self.node_selector or None)).items
        nodes = tuple(sorted((self._node(n) for n in listed), key=lambda n: n.name))
        self._observed = {n.name: n for n in nodes}
        pods: list[NodePod] = []
        for n in nodes:
            bound = self._call(
                f"list pods on node {n.name}",
                lambda n=n: self.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={n.name}"),
            ).items
            pods.extend(self._pod(p) for p in bound)
        budgets = self._budgets({p.namespace for p in pods})
        return KubernetesState(
            control_plane_version=version,
            control_plane_status=status,
            declared_version=self.declared_version,
            can_upgrade_control_plane=upgradable,
            nodes=nodes,
            groups=self.provider.groups(nodes),
            pods=tuple(sorted(pods, key=lambda p: (p.namespace, p.name))),
            budgets=budgets,
            addons=self.provider.addons(),
        )

    @staticmethod
    def _node(obj: Any) -> Node:
        labels = dict(obj.metadata.labels or {})
        conditions = (obj.status.conditions or []) if obj.status else []
        ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
        info = obj.status.node_info if obj.status else None
        created = obj.metadata.creation_timestamp
        return Node(
            name=obj.metadata.name,
            zone=labels.get(LABEL_ZONE, ""),
            group=next((labels[k] for k in GROUP_LABELS if labels.get(k)), ""),
            version=minor_of(info.kubelet_version if info else ""),
            ready=ready,
            unschedulable=bool(obj.spec.unschedulable) if obj.spec else False,
            role=next((labels[k] for k in ROLE_LABELS if labels.get(k)), ""),
            instance=instance_of(obj.spec.provider_id or "") if obj.spec else "",
            replaces=labels.get(LABEL_REPLACES, ""),
            image=next((labels[k] for k in IMAGE_LABELS if labels.get(k)), ""),
            created_at=created.timestamp() if isinstance(created, dt.datetime) else 0.0,
        )

    def _pod(self, obj: Any) -> NodePod:
        annotations = obj.metadata.annotations or {}
        owner = next(iter(obj.metadata.owner_references or []), None)
        kind = "Node" if MIRROR_ANNOTATION in annotations else (owner.kind if owner is not None else "")
        conditions = (obj.status.conditions or []) if obj.status else []
        component = ""
        if obj.metadata.namespace == self.namespace:
            component = (obj.metadata.labels or {}).get(LABEL_COMPONENT, "")
        return NodePod(
            namespace=obj.metadata.namespace,
            name=obj.metadata.name,
            node=obj.spec.node_name or "",
            uid=obj.metadata.uid or "",
            owner_kind=kind,
            component=component,
            ready=any(c.type == "Ready" and c.status == "True" for c in conditions),
            terminating=obj.metadata.deletion_timestamp is not None,
        )

    def _budgets(self, namespaces: set[str]) -> tuple[DisruptionBudget, ...]:
        out: list[DisruptionBudget] = []
        for ns in sorted(namespaces):
            for item in self._list_budgets(ns):
                selector = selector_string(item.spec.selector) if item.spec and item.spec.selector else ""
                pods = self._call(
                    f"list pods of PodDisruptionBudget {ns}/{item.metadata.name}",
                    lambda ns=ns, selector=selector: self.core.list_namespaced_pod(ns, label_selector=selector or None),
                ).items
                st = item.status
                out.append(
                    DisruptionBudget(
                        namespace=ns,
                        name=item.metadata.name,
                        pods=tuple(sorted(p.metadata.name for p in pods)),
                        allowed=int(getattr(st, "disruptions_allowed", 0) or 0) if st else 0,
                        healthy=int(getattr(st, "current_healthy", 0) or 0) if st else 0,
                        desired_healthy=int(getattr(st, "desired_healthy", 0) or 0) if st else 0,
                    )
                )
        return tuple(out)

    def _list_budgets(self, namespace: str) -> list[Any]:
        try:
            return list(
                self._call(
                    f"list poddisruptionbudgets in {namespace}",
                    lambda: client.PolicyV1Api(self.api).list_namespaced_pod_disruption_budget(namespace),
                ).items
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
        # Kubernetes < 1.21 serves them as policy/v1beta1 only: the same fields, read as plain objects
        raw = self._call(
            f"list poddisruptionbudgets (policy/v1beta1) in {namespace}",
            lambda: client.CustomObjectsApi(self.api).list_namespaced_custom_object(
                "policy", "v1beta1", namespace, "poddisruptionbudgets"
            ),
        )
        return [_Budget(item) for item in raw.get("items", [])]

    # ------------------------------------------------------------------ the engine's KubernetesPort

    def _act(self, what: str, call: Any) -> Any:
        try:
            return retrying(what, call, self.retry)
        except ApiException as exc:
            raise ActionError(f"kubernetes: {what} failed: {_describe(exc)}") from None

    def upgrade_control_plane(self, version: str) -> None:
        self.provider.upgrade_control_plane(version)

    def update_addon(self, name: str, version: str) -> None:
        self.provider.update_addon(name, version)

    def surge(self, group: str, version: str) -> None:
        self.provider.surge(group, version)

    def terminate(self, node: str) -> None:
        observed = self._observed.get(node) or Node(node, "", "", "", False)
        self.provider.terminate(observed)

    def cordon(self, node: str) -> None:
        self._act(
            f"cordon node {node}",
            lambda: self.core.patch_node(node, {"spec": {"unschedulable": True}}, _content_type=STRATEGIC_MERGE),
        )

    def claim(self, node: str, replaces: str) -> None:
        self._act(
            f"label node {node} {LABEL_REPLACES}={replaces}",
            lambda: self.core.patch_node(
                node, {"metadata": {"labels": {LABEL_REPLACES: replaces}}}, _content_type=STRATEGIC_MERGE
            ),
        )

    def _eviction_version(self) -> str:
        if self._eviction_api is None:
            minor = self._api_minor or minor_of(client.VersionApi(self.api).get_code().git_version)
            self._eviction_api = "policy/v1" if minor and int(minor.split(".")[1]) >= 22 else "policy/v1beta1"
        return self._eviction_api

    def evict(self, namespace: str, pod: str, uid: str) -> bool:
        body = {
            "apiVersion": self._eviction_version(),
            "kind": "Eviction",
            "metadata": {"name": pod, "namespace": namespace},
            "deleteOptions": {"preconditions": {"uid": uid}},
        }
        try:
            retrying(
                f"evict pod {namespace}/{pod} (uid {uid})",
                lambda: self.core.create_namespaced_pod_eviction(pod, namespace, body),
                self.retry,
                retry_conflicts=False,
                retry_statuses=frozenset({500, 502, 503, 504}),
            )
        except ApiException as exc:
            if exc.status == 429:
                return False  # a PodDisruptionBudget allows no disruption now
            if exc.status in (404, 409):
                return True  # gone, or the name now belongs to a new pod: the eviction has happened
            raise ActionError(f"kubernetes: evict pod {namespace}/{pod} failed: {_describe(exc)}") from None
        return True


class _Budget:
    """A policy/v1beta1 PodDisruptionBudget read as a plain object, shaped like the client's V1PodDisruptionBudget."""

    def __init__(self, item: dict[str, Any]) -> None:
        self.metadata = _Obj({"name": item["metadata"]["name"]})
        spec = item.get("spec", {})
        selector = spec.get("selector") or {}
        self.spec = _Obj(
            {
                "selector": _Obj(
                    {
                        "match_labels": selector.get("matchLabels") or {},
                        "match_expressions": [_Obj(e) for e in selector.get("matchExpressions") or []],
                    }
                )
            }
        )
        st = item.get("status", {})
        self.status = _Obj(
            {
                "disruptions_allowed": st.get("disruptionsAllowed", 0),
                "current_healthy": st.get("currentHealthy", 0),
                "desired_healthy": st.get("desiredHealthy", 0),
            }
        )


class _Obj:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
        self.__dict__.setdefault("values", values.get("values"))
