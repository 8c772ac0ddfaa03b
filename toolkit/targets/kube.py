"""The Kubernetes side of a real target: workloads and pods observed into the model, the few actions the engine
takes, the environment's lease and its audit trail, all through the official `kubernetes` client.

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

Lease: the coordination.k8s.io/v1 Lease `toolkit-upgrade` in the namespace. The engine's lease times are on the
target clock (`time.monotonic`); they are stored as wall-clock epoch seconds (annotations, exact; spec times
rounded) so another process or host can read them. `write_lease(new, expected)` reads the object, checks that it
still equals `expected`, then replaces it with that object's resourceVersion: a concurrent writer makes the
apiserver answer 409, which becomes `LeaseHeldError` (compare-and-swap). Released, the Lease is kept (its
resourceVersion is what the next holder swaps against, and deleting it would need one more verb) with an empty spec
and the annotations `toolkit.io/state: free`, `toolkit.io/last-holder` and `toolkit.io/released-at`, so `kubectl get
lease toolkit-upgrade -o yaml` says it is free and who let go of it when; held, `toolkit.io/state: held`.

Status and Events (`KubeStatus`, the target's `status` port): the ConfigMap `toolkit-upgrade-status` shows the run
(`toolkit.engine.status`: phase, step, gate, progress, conditions), replaced whole under the read resourceVersion (a
409 re-reads and writes again); core/v1 Events (served by 1.20 and by current clusters alike, and what `kubectl
describe` lists) on the pods and workloads a run restarts, waits on, halts on, pauses or completes; a repeat of the
same reason and message on the same object PATCHes its count and lastTimestamp, as kubectl's event recorder does.
Both use a short retry deadline: showing a run must never hold it up.

Requests and restart budgets: the ConfigMap `toolkit-upgrade-control` in the namespace, data keys `request.json` (a
pause or abort request waiting for the run: `toolkit upgrade pause|resume|abort`) and `restarts.json` (restarts the
engine issued per member and version, so a resumed run does not start its budget over). Each change reads the
object and replaces it under that resourceVersion; a 409 (someone changed it meanwhile) re-reads and applies the
change again, so concurrent writers never lose each other's update.

Audit: JSON lines appended to the data key `records.jsonl` of ONE ConfigMap with a fixed name, `toolkit-audit` (the
head), each append a replace under the read resourceVersion (409: re-read, append again). When the head would pass
`AUDIT_ROLL_BYTES` its records move into an immutable archive `toolkit-audit-NNNN` (NNNN = the head's `archived`
count) and the head starts over. A roll interrupted between the archive's creation and the head's replace is finished
by the next append (the archive exists: the head's archived prefix is dropped), and `audit_trail()` (archives in
order, then the head) never shows a record twice. Why this shape: RBAC can scope `update` to named objects but never
`create`, so the orchestrator may update exactly its own ConfigMaps (the head and `toolkit-upgrade-control`) and not,
say, a Kafka configuration; the archives it creates are immutable. The trail lives with the platform, not on the
orchestrator's disk.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from toolkit.catalog import load as load_catalog
from toolkit.catalog import repository_of
from toolkit.engine.ports import ActionError, LeaseHeldError
from toolkit.model import (
    EsState,
    KafkaState,
    KubernetesState,
    Lease,
    Notice,
    PlatformState,
    Pod,
    RunRequest,
    WorkersState,
    Workload,
)
from toolkit.targets.process import holder_alive, wait_or_wake, wake_also

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
LEASE_NAME = "toolkit-upgrade"
CONTROL_NAME = "toolkit-upgrade-control"
CONTROL_REQUEST_KEY = "request.json"
CONTROL_RESTARTS_KEY = "restarts.json"
STATUS_NAME = "toolkit-upgrade-status"
STATUS_LABEL = "toolkit.io/status"
EVENT_SOURCE = "toolkit-orchestrator"
AUDIT_LABEL = "toolkit.io/audit"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
AUDIT_PREFIX = "toolkit-audit"  # the head's name; archives are AUDIT_PREFIX-NNNN
AUDIT_ARCHIVED_KEY = "archived"
AUDIT_KEY = "records.jsonl"
AUDIT_ROLL_BYTES = 512 * 1024  # a ConfigMap holds at most 1 MiB; roll well before
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
RETRYABLE_STATUS = frozenset({409, 429, 500, 502, 503, 504})
NODE_ZONES_TTL = 60.0
USER_AGENT = "toolkit-orchestrator"

T = TypeVar("T")


class ObserveError(RuntimeError):
    """The cluster could not be observed (after retries); the message names the call and the cause."""


class RealClock:
    """Monotonic seconds and a real sleep: the one place where a real run waits. A stop request (Ctrl-C, SIGTERM)
    ends a wait at once (`toolkit.targets.process.wake`); the engine then checks why it woke."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            wait_or_wake(seconds)

    def wait(self, seconds: float) -> None:
        self.sleep(seconds)


class PodWatch:
    """Wakes the engine as soon as a pod of the namespace changes, so waiting follows the cluster's own
    notifications instead of fixed sleeps (the engine's poll interval is only the longest wait).

    A background thread keeps one watch on the namespace's pods: resumed from the last resourceVersion it saw,
    re-listed on 410 Gone (the resourceVersion is too old), reconnected with backoff when the apiserver goes away
    (a restart), and stopped with the target. Observation itself stays a fresh LIST: the watch only says *when*.
    """

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._changed = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pod-watch-{namespace}", daemon=True)
        self.events = 0
        self.relists = 0
        self.reconnects = 0

    def start(self) -> PodWatch:
        wake_also(self._changed)  # a stop request wakes the engine's wait like a pod change does
        self._thread.start()
        return self

    def stop(self) -> None:
        wake_also(self._changed, listen=False)
        self._stopping.set()
        self._thread.join(timeout=5)

    def wait(self, seconds: float) -> bool:
        """Block until a pod changed or `seconds` passed; True when woken by a change."""
        woke = self._changed.wait(max(0.0, seconds))
        self._changed.clear()
        return woke

    def _run(self) -> None:
        resource_version: str | None = None
        delay = 0.2
        while not self._stopping.is_set():
            try:
                if resource_version is None:
                    listed = self._core.list_namespaced_pod(self._namespace)
                    resource_version = listed.metadata.resource_version
                    self.relists += 1
                stream = watch.Watch()
                for event in stream.stream(
                    self._core.list_namespaced_pod,
                    self._namespace,
                    resource_version=resource_version,
                    timeout_seconds=30,
                    _request_timeout=40,
                ):
                    if self._stopping.is_set():
                        stream.stop()
                        break
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        code = obj.get("code") if isinstance(obj, dict) else None
                        if code == 410:
                            resource_version = None
                            break
                        continue
                    resource_version = obj.metadata.resource_version
                    self.events += 1
                    self._changed.set()
                delay = 0.2
            except ApiException as exc:
                if exc.status == 410:
                    resource_version = None
                    continue
                self.reconnects += 1
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)
            except Exception:  # connection refused or reset while the apiserver restarts
                self.reconnects += 1
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)


class WatchingClock(RealClock):
    """A real clock whose `wait` returns as soon as the pod watch reports a change."""

    def __init__(self, pod_watch: PodWatch) -> None:
        self._watch = pod_watch

    def wait(self, seconds: float) -> None:
        self._watch.wait(seconds)


@dataclass(frozen=True)
class RetryPolicy:
    first_delay: float = 0.2
    max_delay: float = 5.0
    deadline_seconds: float = 60.0


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        reason = exc.reason or ""
        try:
            body = json.loads(exc.body or "{}")
            reason = body.get("message") or reason
        except (TypeError, ValueError):
            pass
        return f"HTTP {exc.status}: {reason}"
    return f"{type(exc).__name__}: {exc}"


def retrying(
    what: str,
    call: Callable[[], T],
    policy: RetryPolicy = RetryPolicy(),
    retry_conflicts: bool = True,
    error: type[Exception] = ActionError,
    retry_statuses: frozenset[int] = RETRYABLE_STATUS,
) -> T:
    """Run `call`, retrying transient failures with exponential backoff until the policy's deadline.

    Retried: `retry_statuses` (429, 5xx, 409 by default; a 409 only with `retry_conflicts`, otherwise it is returned
    to the caller at once, as is a 429 an eviction must see), connection errors. Anything else, or a transient
    failure past the deadline, raises `error` naming `what`."""
    deadline = time.monotonic() + policy.deadline_seconds
    delay = policy.first_delay
    attempts = 0
    while True:
        attempts += 1
        try:
            return call()
        except ApiException as exc:
            if exc.status not in retry_statuses or (exc.status == 409 and not retry_conflicts):
                raise
            last: BaseException = exc
        except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError, OSError) as exc:
            last = exc
        if time.monotonic() + delay > deadline:
            raise error(f"kubernetes: {what} failed after {attempts} attempts: {_describe(last)}") from None
        time.sleep(delay)
        delay = min(delay * 2, policy.max_delay)


def api_client_for(kubeconfig: str | None, context: str | None) -> client.ApiClient:
    """A client for a kubeconfig file and context; in a pod with neither, the in-cluster service account."""
    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        api = client.ApiClient(in_cluster_configuration())
    else:
        api = config.new_client_from_config(config_file=kubeconfig, context=context)
        _send_bearer_token(api.configuration)
    api.user_agent = USER_AGENT  # the apiserver's audit log tells the orchestrator's calls from others'
    return api


def _send_bearer_token(configuration: client.Configuration) -> client.Configuration:
    """kubernetes 36.0.0's generated client sends the token kept under api_key['BearerToken'], while its own config
    loaders (in-cluster ServiceAccount, a kubeconfig `token:`) keep it under api_key['authorization']
    (kubernetes-client/python#2582, #2584): unbridged, every token-authenticated request goes out without an
    Authorization header, as system:anonymous, and the orchestrator Job is refused everything. Keep both keys equal,
    also after the loaders' refresh hook re-reads a rotated token (an exec plugin's such as EKS's, a projected
    ServiceAccount token): that hook installs itself again each time it runs, so it is wrapped again each time.
    Harmless on a client version that reads either key."""
    loaders: list[Any] = [configuration.refresh_api_key_hook]

    def refresh(conf: Any) -> None:
        if loaders[0] is not None:
            loaders[0](conf)
            if conf.refresh_api_key_hook is not refresh:  # the loader put its own hook back: keep it, wrapped
                loaders[0] = conf.refresh_api_key_hook
                conf.refresh_api_key_hook = refresh
        scheme, _, token = str(conf.api_key.get("authorization") or "").strip().partition(" ")
        if token:  # the in-cluster loader writes `bearer <token>`: sent as the scheme is spelled (RFC 6750)
            conf.api_key["BearerToken"] = f"{scheme.capitalize()} {token.strip()}"

    if configuration.api_key.get("authorization"):
        refresh(configuration)
        configuration.refresh_api_key_hook = refresh
    return configuration


def in_cluster_configuration(
    token_file: str = SERVICE_ACCOUNT_DIR + "/token", ca_file: str = SERVICE_ACCOUNT_DIR + "/ca.crt"
) -> client.Configuration:
    """The pod's service account as a client configuration: the apiserver from KUBERNETES_SERVICE_HOST/PORT, its CA,
    and the account's token sent as `Authorization: Bearer`, re-read as the loader refreshes it."""
    from kubernetes.config.incluster_config import InClusterConfigLoader

    configuration = client.Configuration()
    InClusterConfigLoader(token_filename=token_file, cert_filename=ca_file).load_and_set(configuration)
    return _send_bearer_token(configuration)


# ---------------------------------------------------------------------------------------------- helpers


def _labels(obj: Any) -> dict[str, str]:
    return dict(obj.metadata.labels or {})


def _annotations(obj: Any) -> dict[str, str]:
    return dict(obj.metadata.annotations or {})


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


def _rfc3339_micro(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class KubeLeaseStore:
    """The environment's lease as a coordination.k8s.io/v1 Lease, swapped by resourceVersion (see module doc)."""

    ANNOTATION_ACQUIRED = "toolkit.io/acquired-at"
    ANNOTATION_RENEWED = "toolkit.io/renewed-at"
    ANNOTATION_TTL = "toolkit.io/ttl-seconds"
    # what the Lease says when nobody holds it: that it is free, who held it last and when they let go (a Lease
    # with an empty spec alone cannot tell "never used" from "released" from "wiped")
    ANNOTATION_STATE = "toolkit.io/state"  # held | free
    ANNOTATION_LAST_HOLDER = "toolkit.io/last-holder"
    ANNOTATION_RELEASED = "toolkit.io/released-at"

    def __init__(self, api: client.ApiClient, namespace: str, retry: RetryPolicy = RetryPolicy()) -> None:
        self.namespace = namespace
        self.retry = retry
        self.coordination = client.CoordinationV1Api(api)
        # monotonic -> wall offset of this process: stored times are wall-clock, the engine's are monotonic
        self._offset = time.time() - time.monotonic()

    def _read(self) -> Any | None:
        try:
            return retrying(
                f"read lease {self.namespace}/{LEASE_NAME}",
                lambda: self.coordination.read_namespaced_lease(LEASE_NAME, self.namespace),
                self.retry,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ActionError(f"kubernetes: read lease {self.namespace}/{LEASE_NAME}: {_describe(exc)}") from None

    def _decode(self, obj: Any | None) -> Lease | None:
        if obj is None or not obj.spec or not obj.spec.holder_identity:
            return None
        notes = _annotations(obj)
        spec = obj.spec

        def wall(key: str, fallback: Any) -> float:
            if key in notes:
                return float(notes[key])
            return fallback.timestamp() if fallback is not None else time.time()

        acquired = wall(self.ANNOTATION_ACQUIRED, spec.acquire_time)
        renewed = wall(self.ANNOTATION_RENEWED, spec.renew_time)
        ttl = float(notes.get(self.ANNOTATION_TTL, spec.lease_duration_seconds or 60))
        return Lease(
            holder=spec.holder_identity,
            acquired_at=acquired - self._offset,
            renewed_at=renewed - self._offset,
            ttl_seconds=ttl,
        )

    def read(self) -> Lease | None:
        return self._decode(self._read())

    @staticmethod
    def _same(a: Lease | None, b: Lease | None) -> bool:
        if a is None or b is None:
            return a is b
        return (
            a.holder == b.holder
            and abs(a.renewed_at - b.renewed_at) < 1e-3
            and abs(a.acquired_at - b.acquired_at) < 1e-3
            and abs(a.ttl_seconds - b.ttl_seconds) < 1e-3
        )

    def _body(self, lease: Lease | None, resource_version: str | None, released_by: str = "") -> client.V1Lease:
        annotations: dict[str, str | None]
        if lease is None:
            spec = client.V1LeaseSpec()
            annotations = {
                self.ANNOTATION_STATE: "free",
                self.ANNOTATION_LAST_HOLDER: released_by or None,
                self.ANNOTATION_RELEASED: _rfc3339_micro(time.time()),
            }
        else:
            acquired, renewed = lease.acquired_at + self._offset, lease.renewed_at + self._offset
            spec = client.V1LeaseSpec(
                holder_identity=lease.holder,
                lease_duration_seconds=max(1, int(-(-lease.ttl_seconds // 1))),
                acquire_time=_rfc3339_micro(acquired),
                renew_time=_rfc3339_micro(renewed),
            )
            annotations = {
                self.ANNOTATION_STATE: "held",
                self.ANNOTATION_ACQUIRED: repr(acquired),
                self.ANNOTATION_RENEWED: repr(renewed),
                self.ANNOTATION_TTL: repr(lease.ttl_seconds),
            }
        meta = client.V1ObjectMeta(
            name=LEASE_NAME,
            namespace=self.namespace,
            resource_version=resource_version,
            labels={"app.kubernetes.io/managed-by": "toolkit"},
            annotations={k: v for k, v in annotations.items() if v is not None},
        )
        return client.V1Lease(metadata=meta, spec=spec)

    def write(self, new: Lease | None, expected: Lease | None) -> None:
        obj = self._read()
        current = self._decode(obj)
        if not self._same(current, expected):
            holder = current.holder if current is not None else "nobody"
            raise LeaseHeldError(f"lease {self.namespace}/{LEASE_NAME} changed under us: now held by {holder}")
        try:
            if obj is None:
                if new is None:
                    return
                retrying(
                    f"create lease {self.namespace}/{LEASE_NAME}",
                    lambda: self.coordination.create_namespaced_lease(self.namespace, self._body(new, None)),
                    self.retry,
                    retry_conflicts=False,
                )
            else:
                body = self._body(new, obj.metadata.resource_version, current.holder if current is not None else "")
                retrying(
                    f"replace lease {self.namespace}/{LEASE_NAME}",
                    lambda: self.coordination.replace_namespaced_lease(LEASE_NAME, self.namespace, body),
                    self.retry,
                    retry_conflicts=False,
                )
        except ApiException as exc:
            if exc.status == 409:
                latest = self.read()
                holder = latest.holder if latest is not None else "nobody"
                raise LeaseHeldError(
                    f"lease {self.namespace}/{LEASE_NAME} was changed concurrently (now held by {holder})"
                ) from None
            raise ActionError(f"kubernetes: write lease {self.namespace}/{LEASE_NAME}: {_describe(exc)}") from None


# ---------------------------------------------------------------------------------------------- requests, budgets


class KubeControlStore:
    """Requests and restart budgets in the ConfigMap `toolkit-upgrade-control` (see module doc); with another `name`
    (and `labels`), any ConfigMap of the orchestrator's own that is read, changed and replaced the same way (the
    run's status, `KubeStatus`)."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        retry: RetryPolicy = RetryPolicy(),
        name: str = CONTROL_NAME,
        labels: dict[str, str] | None = None,
    ) -> None:
        self.namespace = namespace
        self.retry = retry
        self.core = client.CoreV1Api(api)
        self.name = name
        self.labels = {"app.kubernetes.io/managed-by": "toolkit", **(labels or {})}

    def _read(self) -> Any | None:
        name = self.name
        try:
            return retrying(
                f"read configmap {self.namespace}/{name}",
                lambda: self.core.read_namespaced_config_map(name, self.namespace),
                self.retry,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ActionError(f"kubernetes: read configmap {self.namespace}/{name}: {_describe(exc)}") from None

    def data(self) -> dict[str, str]:
        obj = self._read()
        return dict((obj.data or {}) if obj is not None else {})

    def update(self, change: Callable[[dict[str, str]], dict[str, str]]) -> dict[str, str]:
        """Apply `change` to the data and write it under the read resourceVersion; on a conflict, again."""
        deadline = time.monotonic() + self.retry.deadline_seconds
        while True:
            obj = self._read()
            new = change(dict((obj.data or {}) if obj is not None else {}))
            body = client.V1ConfigMap(
                metadata=client.V1ObjectMeta(
                    name=self.name,
                    namespace=self.namespace,
                    resource_version=obj.metadata.resource_version if obj is not None else None,
                    labels=dict(self.labels),
                ),
                data=new,
            )
            try:
                if obj is None:
                    self.core.create_namespaced_config_map(self.namespace, body)
                else:
                    self.core.replace_namespaced_config_map(self.name, self.namespace, body)
                return new
            except ApiException as exc:
                if exc.status not in RETRYABLE_STATUS or time.monotonic() > deadline:
                    raise ActionError(
                        f"kubernetes: write configmap {self.namespace}/{self.name}: {_describe(exc)}"
                    ) from None
                time.sleep(0.05 if exc.status == 409 else 0.5)

    def read_request(self) -> RunRequest | None:
        text = self.data().get(CONTROL_REQUEST_KEY, "")
        if not text:
            return None
        raw = json.loads(text)
        return RunRequest(
            action=str(raw["action"]), by=str(raw["by"]), at=str(raw["at"]), reason=str(raw.get("reason", ""))
        )

    def write_request(self, request: RunRequest | None) -> None:
        text = "" if request is None else json.dumps(dataclasses.asdict(request), sort_keys=True)

        def change(data: dict[str, str]) -> dict[str, str]:
            data[CONTROL_REQUEST_KEY] = text
            return data

        self.update(change)

    def restarts(self) -> dict[str, int]:
        text = self.data().get(CONTROL_RESTARTS_KEY, "")
        return {str(k): int(v) for k, v in json.loads(text).items()} if text else {}

    def spend_restart(self, key: str) -> int:
        counted = [0]

        def change(data: dict[str, str]) -> dict[str, str]:
            given = json.loads(data.get(CONTROL_RESTARTS_KEY) or "{}")
            given[key] = int(given.get(key, 0)) + 1
            counted[0] = given[key]
            data[CONTROL_RESTARTS_KEY] = json.dumps(given, sort_keys=True)
            return data

        self.update(change)
        return counted[0]

    def clear_restarts(self) -> None:
        def change(data: dict[str, str]) -> dict[str, str]:
            data[CONTROL_RESTARTS_KEY] = "{}"
            return data

        self.update(change)


# ---------------------------------------------------------------------------------------------- audit


class KubeAuditLog:
    """Append-only JSON lines: the head ConfigMap `toolkit-audit` and immutable archives (see module doc)."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        roll_bytes: int = AUDIT_ROLL_BYTES,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.namespace = namespace
        self.roll_bytes = roll_bytes
        self.retry = retry
        self.core = client.CoreV1Api(api)

    @staticmethod
    def name(index: int) -> str:
        return f"{AUDIT_PREFIX}-{index:04d}"

    def _body(self, name: str, data: dict[str, str], immutable: bool = False) -> Any:
        return client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name=name,
                namespace=self.namespace,
                labels={AUDIT_LABEL: "true", "app.kubernetes.io/managed-by": "toolkit"},
            ),
            data=data,
            immutable=immutable or None,
        )

    def _read(self, name: str) -> Any | None:
        try:
            return retrying(
                f"read configmap {self.namespace}/{name}",
                lambda: self.core.read_namespaced_config_map(name, self.namespace),
                self.retry,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _create(self, name: str, data: dict[str, str], immutable: bool = False) -> bool:
        try:
            retrying(
                f"create configmap {self.namespace}/{name}",
                lambda: self.core.create_namespaced_config_map(self.namespace, self._body(name, data, immutable)),
                self.retry,
                retry_conflicts=False,
            )
        except ApiException as exc:
            if exc.status == 409:
                return False  # it exists already (another writer, or a roll interrupted after this step)
            raise
        return True

    @staticmethod
    def _unarchived(head: Any, pending: Any | None) -> str:
        """The head's records not yet in an archive: all of them, unless the archive the head is about to write
        exists already (an interrupted roll), whose records are then a prefix of the head's."""
        text = str((head.data or {}).get(AUDIT_KEY, ""))
        if pending is None:
            return text
        archived = str((pending.data or {}).get(AUDIT_KEY, ""))
        return text[len(archived) :] if text.startswith(archived) else text

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        deadline = time.monotonic() + self.retry.deadline_seconds
        while True:
            try:
                head = self._read(AUDIT_PREFIX)
                if head is None:
                    if self._create(AUDIT_PREFIX, {AUDIT_KEY: line, AUDIT_ARCHIVED_KEY: "0"}):
                        return
                    continue
                archived = int((head.data or {}).get(AUDIT_ARCHIVED_KEY, "0") or 0)
                pending = self._read(self.name(archived))
                text = self._unarchived(head, pending)
                if pending is not None:
                    archived += 1  # finish the interrupted roll
                elif text and len(text.encode()) + len(line.encode()) > self.roll_bytes:
                    if not self._create(self.name(archived), {AUDIT_KEY: text}, immutable=True):
                        continue  # written meanwhile: re-read, the pending branch finishes the roll
                    text, archived = "", archived + 1
                head.data = {AUDIT_KEY: text + line, AUDIT_ARCHIVED_KEY: str(archived)}
                self.core.replace_namespaced_config_map(AUDIT_PREFIX, self.namespace, head)
                return
            except ApiException as exc:
                if exc.status not in RETRYABLE_STATUS or time.monotonic() > deadline:
                    raise ActionError(
                        f"kubernetes: could not append to the audit trail in {self.namespace}: {_describe(exc)}"
                    ) from None
                time.sleep(0.05 if exc.status == 409 else 0.5)

    def records(self) -> list[dict[str, Any]]:
        found = retrying(
            f"list audit configmaps in {self.namespace}",
            lambda: self.core.list_namespaced_config_map(self.namespace, label_selector=f"{AUDIT_LABEL}=true"),
            self.retry,
        )
        archives = {}
        head = None
        for item in found.items:
            name = item.metadata.name
            if name == AUDIT_PREFIX:
                head = item
            elif name.startswith(AUDIT_PREFIX + "-") and name.rsplit("-", 1)[1].isdigit():
                archives[int(name.rsplit("-", 1)[1])] = item
        out: list[dict[str, Any]] = []
        for index in sorted(archives):
            out.extend(_json_lines((archives[index].data or {}).get(AUDIT_KEY, "")))
        if head is not None:
            archived = int((head.data or {}).get(AUDIT_ARCHIVED_KEY, "0") or 0)
            out.extend(_json_lines(self._unarchived(head, archives.get(archived))))
        return out


def _json_lines(text: str) -> Iterator[dict[str, Any]]:
    for line in text.splitlines():
        if line.strip():
            value = json.loads(line)
            if isinstance(value, dict):
                yield value


# ---------------------------------------------------------------------------------------------- status, Events


class KubeStatus:
    """The run's status ConfigMap and its Kubernetes Events (`toolkit.engine.ports.StatusPort`; see module doc).
    Objects are resolved from the workloads' last observation (a pod -> itself and its StatefulSet/Deployment; a
    component -> its workloads); a name that is neither (a repair's "allocation") is skipped."""

    RETRY = RetryPolicy(first_delay=0.1, max_delay=1.0, deadline_seconds=5.0)

    def __init__(
        self, api: client.ApiClient, namespace: str, workloads: KubeWorkloads, retry: RetryPolicy = RETRY
    ) -> None:
        self.namespace = namespace
        self.retry = retry
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.store = KubeControlStore(api, namespace, retry, name=STATUS_NAME, labels={STATUS_LABEL: "true"})
        self._workloads = workloads
        self._host = socket.gethostname()
        self._uids: dict[tuple[str, str], str] = {}  # (kind, name) -> uid of a workload
        self._recorded: dict[tuple[str, str, str, str], tuple[str, int]] = {}  # (uid, reason, type, message)

    # ------------------------------------------------------------------ the status ConfigMap

    def read_status(self) -> dict[str, str] | None:
        obj = self.store._read()
        return dict(obj.data or {}) if obj is not None else None

    def write_status(self, data: Mapping[str, str]) -> None:
        """Replace the data whole; a 409 (written meanwhile) re-reads and writes again: the last run's picture."""
        self.store.update(lambda _current: dict(data))

    # ------------------------------------------------------------------ Events

    def _workload_uid(self, kind: str, name: str) -> str | None:
        key = (kind, name)
        if key not in self._uids:
            read = (
                self.apps.read_namespaced_stateful_set
                if kind == "StatefulSet"
                else self.apps.read_namespaced_deployment
            )
            try:
                obj = retrying(
                    f"read {kind.lower()} {self.namespace}/{name}", lambda: read(name, self.namespace), self.retry
                )
            except ApiException:
                return None
            self._uids[key] = obj.metadata.uid
        return self._uids[key]

    def _refs(self, notice: Notice) -> list[dict[str, str]]:
        last = self._workloads.last
        kinds = {w.name: w.kind for w in last.workloads}
        owner = {p.name: w.name for w in last.workloads for p in w.pods}
        refs: list[dict[str, str]] = []

        def add(kind: str, name: str, uid: str | None) -> None:
            if uid and all(r["uid"] != uid for r in refs):
                api_version = "v1" if kind == "Pod" else "apps/v1"
                refs.append(
                    {"apiVersion": api_version, "kind": kind, "name": name, "namespace": self.namespace, "uid": uid}
                )

        def add_workload(name: str) -> None:
            if name in kinds:
                add(kinds[name], name, self._workload_uid(kinds[name], name))

        for name in notice.objects:
            if name in owner:
                add("Pod", name, last.pod_uids.get(name))
                add_workload(owner[name])
            else:
                add_workload(name)
        for component in notice.components:
            for w in last.workloads:
                if w.component == component:
                    add_workload(w.name)
        return refs

    def record_event(self, notice: Notice) -> None:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for ref in self._refs(notice):
            key = (ref["uid"], notice.reason, notice.type, notice.message)
            seen = self._recorded.get(key)
            if seen is not None:
                name, count = seen
                patch = {"count": count + 1, "lastTimestamp": now}
                try:
                    retrying(
                        f"patch event {self.namespace}/{name}",
                        partial(self.core.patch_namespaced_event, name, self.namespace, patch),
                        self.retry,
                    )
                    self._recorded[key] = (name, count + 1)
                    continue
                except ApiException as exc:
                    if exc.status != 404:  # gone (events expire): record it afresh
                        raise ActionError(
                            f"kubernetes: patch event {self.namespace}/{name}: {_describe(exc)}"
                        ) from None
            name = f"{ref['name']}.{time.time_ns():x}"
            body = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": self.namespace},
                "involvedObject": ref,
                "reason": notice.reason,
                "message": notice.message,
                "type": notice.type,
                "source": {"component": EVENT_SOURCE, "host": self._host},
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "reportingComponent": EVENT_SOURCE,
                "reportingInstance": self._host,
            }
            try:
                retrying(
                    f"create event {self.namespace}/{name}",
                    partial(self.core.create_namespaced_event, self.namespace, body),
                    self.retry,
                    retry_conflicts=False,
                )
            except ApiException as exc:
                raise ActionError(f"kubernetes: create event in {self.namespace}: {_describe(exc)}") from None
            self._recorded[key] = (name, 1)


# ---------------------------------------------------------------------------------------------- the target


class KubernetesObserver(Protocol):
    """Kubernetes itself (toolkit.targets.kube_nodes.KubeKubernetes): observed into `KubernetesState`."""

    def observe(self) -> KubernetesState: ...


class DataPlane(Protocol):
    """The data-plane side of a target: real adapters (kind, EKS) or the simulated data plane (local)."""

    simulated: bool
    description: str

    def observe(
        self, workloads: tuple[Workload, ...], node_id_base: dict[str, int], now: float
    ) -> tuple[KafkaState, EsState, WorkersState]: ...

    def ports(self) -> dict[str, Any]:
        """Component name -> that component's data-plane port (`toolkit.engine.drivers.*Port`)."""

    def close(self) -> None: ...


class KubeControl:
    """Lease, audit trail, requests and restart budgets of a platform on Kubernetes, in its namespace
    (`toolkit.engine.ports.ControlPort`)."""

    def __init__(
        self,
        lease: KubeLeaseStore,
        audit_log: KubeAuditLog,
        data_plane: DataPlane,
        host: str,
        store: KubeControlStore | None = None,
    ) -> None:
        self.lease = lease
        self.audit_log = audit_log
        self.store = store or KubeControlStore(lease.coordination.api_client, lease.namespace, lease.retry)
        self._data_plane = data_plane
        self._host = host

    def read_lease(self) -> Lease | None:
        return self.lease.read()

    def write_lease(self, lease: Lease | None, expected: Lease | None) -> None:
        self.lease.write(lease, expected)

    def holder_alive(self, holder: str) -> bool:
        return holder_alive(holder, self._host)

    def audit(self, record: dict[str, Any]) -> None:
        entry = {
            "wall": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "simulated": self._data_plane.simulated,
            "data_plane": self._data_plane.description,
            **record,
        }
        self.audit_log.append(entry)

    def audit_trail(self) -> list[dict[str, Any]]:
        return self.audit_log.records()

    def read_request(self) -> RunRequest | None:
        return self.store.read_request()

    def write_request(self, request: RunRequest | None) -> None:
        self.store.write_request(request)

    def restarts_spent(self, member: str, version: str) -> int:
        return self.store.restarts().get(f"{member}@{version}", 0)

    def spend_restart(self, member: str, version: str) -> int:
        return self.store.spend_restart(f"{member}@{version}")

    def clear_restarts(self) -> None:
        self.store.clear_restarts()


class KubeTarget:
    """A platform on a real Kubernetes cluster (`toolkit.engine.ports.Target`): workloads, lease and audit through
    the API; Kafka and Elasticsearch through `data_plane`. `simulated` is the data plane's (True only for the local
    environment, whose multi-node data plane is modelled)."""

    def __init__(
        self,
        name: str,
        workloads: KubeWorkloads,
        lease: KubeLeaseStore,
        audit_log: KubeAuditLog,
        data_plane: DataPlane,
        clock: RealClock | None = None,
        host: str | None = None,
        kubernetes: KubernetesObserver | None = None,
    ) -> None:
        self.name = name
        self.workloads = workloads
        self.data = data_plane
        self.control = KubeControl(lease, audit_log, data_plane, host or socket.gethostname())
        self.simulated = data_plane.simulated
        self.clock = clock or RealClock()
        self._ports = data_plane.ports()
        self.status = KubeStatus(lease.coordination.api_client, lease.namespace, workloads)
        # Kubernetes itself (nodes, their pods and PDBs, the control plane): observed only when given, i.e. when a
        # run targets it or status asks (toolkit.targets.kube_nodes); it is also that component's port
        self.kubernetes = kubernetes
        if kubernetes is not None:
            self._ports["kubernetes"] = kubernetes

    def data_plane(self, component: str) -> Any:
        return self._ports[component]

    def observe(self) -> PlatformState:
        now = self.clock.now()
        workloads = self.workloads.observe()
        kafka, es, workers = self.data.observe(workloads, self.workloads.last.node_id_base, now)
        return PlatformState(
            environment=self.name,
            observed_at=now,
            simulated=self.simulated,
            workloads=workloads,
            kafka=kafka,
            elasticsearch=es,
            workers=workers,
            kubernetes=self.kubernetes.observe() if self.kubernetes is not None else KubernetesState(),
        )

    def close(self) -> None:
        self.data.close()
