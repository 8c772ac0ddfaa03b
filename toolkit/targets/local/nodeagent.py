"""A node agent that stands in for kubelets: the real controllers and scheduler run pods without a runtime.

What it does
------------
- Registers the Node objects of the cluster's node pool (nodepool.py: the ConfigMap that stands in for Auto
  Scaling groups; on a cluster's first start it is seeded with N nodes, default 3: `local-node-1..3`, one group
  per zone) labelled `kubernetes.io/hostname`, `topology.kubernetes.io/zone` = zone-a / zone-b / zone-c (round
  robin), `toolkit.io/node-group`, `toolkit.io/node-image` and the group's own labels, with the group's taints,
  capacity, addresses and a Ready condition (never Ready in a group marked `never_ready`). Every
  `heartbeat_seconds` it renews each node's Lease in `kube-node-lease` and the Ready condition's heartbeat,
  re-creating a node or lease that disappeared, so the node lifecycle controller keeps them Ready. Every
  `pool_poll_seconds` it follows the pool: a node added there (a surge) is registered, a node removed (a
  terminated instance) is unregistered: its Node object and Lease are deleted, as a cloud's node lifecycle
  controller does; the controller manager's pod garbage collector then removes pods still bound to it.
- Lists, then watches, pods with `spec.nodeName` set (the real scheduler binds them) and acts on the ones
  bound to its nodes:
    * a new pod is reported started after `ready_delay_seconds` (per pod: annotation
      `toolkit.io/ready-delay-seconds`): phase Running, containers running, Ready/ContainersReady True;
      a pod whose container image is changed in place is reported again for the new image;
    * a pod whose container image tag ends in `-bad` stays Pending with its container waiting in
      ImagePullBackOff; a pod annotated `toolkit.io/never-ready: "true"` runs but is never Ready;
    * a pod with a deletionTimestamp (graceful deletion) is removed after `delete_delay_seconds` with grace 0
      AND a UID precondition, so a re-created pod of the same name (StatefulSet) is never removed by mistake;
    * a *runnable* pod (an image the agent is told to run as host processes, `AgentSettings.runtime.images`,
      repository -> directory) is not simulated: the pod runtime (runtime.py) runs it as a kubelet + CNI +
      kube-proxy would: its own network namespace on the cluster bridge, Service ClusterIPs and cluster names,
      the container's command, env and volumes exactly as the spec says, probes, restarts with back-off,
      graceful termination; see runtime.py and the modules it names;
- Pod IPs come from the cluster's pod network (network.py: node k hands out 10.(128+N).k.x), the same for
  simulated and runnable pods, never one that is held.
- Status writes are strategic-merge patches of the status subresource that carry `metadata.uid`: the
  apiserver rejects them (uid is immutable) when the name now belongs to another pod, like the kubelet's.

Watch resumption
----------------
The pod watch resumes from the last resourceVersion it saw (events and bookmarks). A stream that ends
(server timeout) or breaks (apiserver restart, connection refused) is re-opened from that version after a
short back-off; a `410 Gone` (version compacted, or older than the watch cache) triggers a fresh list, which
re-examines every pod (so nothing is missed), then the watch continues from the list's version. Every
decision is derived from the pod object itself (already reported started? being deleted?), so a re-list or
an agent restart repeats no effect. `stats` counts relists and reconnects for tests and the log.

It runs in-process (`NodeAgent(...).start()`, threads, for tests) or as its own process:
`python -m toolkit.targets.local.nodeagent --kubeconfig PATH [--nodes 3] [--ready-delay 1.0]
[--run-image REPOSITORY=DIRECTORY ...]`. Its state (pod files, container logs under logs/pods/, the network's
hosts files and publication records under network/) lives in the directory of the kubeconfig, where the control
plane's cluster.json names the cluster's network.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import heapq
import itertools
import json
import logging
import os
import signal
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

from toolkit.targets.local.network import ClusterNetwork, network_of
from toolkit.targets.local.nodepool import LABEL_GROUP, LABEL_IMAGE, LABEL_ROLE, NodePool
from toolkit.targets.local.runtime import IpAllocator, PodRuntime, RuntimeSettings

LOG = logging.getLogger(__name__)

ZONES = ("zone-a", "zone-b", "zone-c")
ZONE_LABEL = "topology.kubernetes.io/zone"
HOSTNAME_LABEL = "kubernetes.io/hostname"
AGENT_LABEL = "toolkit.io/local-node"
ANNOTATION_READY_DELAY = "toolkit.io/ready-delay-seconds"
ANNOTATION_NEVER_READY = "toolkit.io/never-ready"
BAD_IMAGE_TAG_SUFFIX = "-bad"
CONTAINER_ID_SCHEME = "toolkit-local://"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
KUBELET_VERSION = "v1.20.2"
BOUND_PODS_SELECTOR = "spec.nodeName!="
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
NODE_RESOURCES = {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "200Gi"}
USER_AGENT = "toolkit-node-agent"

JsonDict = dict[str, Any]


class WatchExpiredError(Exception):
    """The apiserver answered 410 Gone: the resourceVersion to resume from is no longer available."""


@dataclass(frozen=True)
class NodeSpec:
    """One simulated node."""

    name: str
    zone: str
    internal_ip: str
    pod_subnet_prefix: str  # first three octets of the node's /24 pod subnet, e.g. "10.244.1"
    number: int = 0
    group: str = ""
    image: str = ""
    role: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    taints: tuple[tuple[str, str, str], ...] = ()  # (key, value, effect)
    never_ready: bool = False


def default_nodes(
    count: int = 3, name_prefix: str = "local-node", network: ClusterNetwork | None = None
) -> tuple[NodeSpec, ...]:
    """`count` nodes spread round robin over zone-a, zone-b, zone-c; pod subnets from `network` (else 10.244.k)."""
    if not 1 <= count <= 250:
        raise ValueError(f"node agent: node count {count} is out of range; use 1..250")
    return tuple(node_spec(f"{name_prefix}-{i}", ZONES[(i - 1) % len(ZONES)], i, network) for i in range(1, count + 1))


def node_spec(name: str, zone: str, number: int, network: ClusterNetwork | None, **pool: Any) -> NodeSpec:
    """Node `number`'s addresses: InternalIP 10.240.1.<number>, pods in the network's subnet of that number."""
    prefix = network.node_subnet_prefix(number) if network is not None else f"10.244.{number}"
    return NodeSpec(name, zone, f"10.240.{1 + (number - 1) // 250}.{(number - 1) % 250 + 1}", prefix, number, **pool)


def pool_nodes(document: dict[str, Any], network: ClusterNetwork | None) -> dict[str, NodeSpec]:
    """The nodes a node pool document lists, with their group's zone, role, labels, taints and readiness."""
    out: dict[str, NodeSpec] = {}
    for name, entry in document.get("nodes", {}).items():
        group = document["groups"].get(entry["group"], {})
        out[name] = node_spec(
            name,
            group.get("zone", ZONES[0]),
            int(entry["number"]),
            network,
            group=entry["group"],
            image=entry.get("image", ""),
            role=group.get("role", ""),
            labels=tuple(sorted(group.get("labels", {}).items())),
            taints=tuple((t["key"], t.get("value", ""), t["effect"]) for t in group.get("taints", [])),
            never_ready=bool(group.get("never_ready", False)),
        )
    return out


@dataclass(frozen=True)
class AgentSettings:
    """Timings of the agent (seconds)."""

    ready_delay_seconds: float = 1.0
    delete_delay_seconds: float = 0.5
    heartbeat_seconds: float = 10.0
    pool_poll_seconds: float = 1.0
    node_prefix: str = "local-node"  # its nodes' names; picks the node pool it follows (nodepool.pool_name)
    watch_timeout_seconds: int = 60
    reconnect_backoff_seconds: float = 0.5
    state_dir: Path | None = None  # default: the kubeconfig's directory (the control plane's state dir)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)


@dataclass
class AgentStats:
    """Counters, for tests and logs."""

    relists: int = 0
    watch_reconnects: int = 0
    watch_expired: int = 0
    pods_started: int = 0
    pods_run: int = 0  # handed to the pod runtime
    pods_deleted: int = 0
    delete_conflicts: int = 0


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    action: Callable[[], None] = field(compare=False)


class NodeAgent:
    """Kubelet stand-in for `nodes` (see the module docstring for behaviour and guarantees)."""

    def __init__(
        self,
        kubeconfig: Path,
        nodes: Sequence[NodeSpec] | None = None,
        settings: AgentSettings | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.settings = settings or AgentSettings()
        self.state_dir = (self.settings.state_dir or Path(kubeconfig).parent).resolve()
        self.network = network_of(self.state_dir)
        self._seed = tuple(nodes or default_nodes(network=self.network))
        self.stats = AgentStats()
        self._node_by_name: dict[str, NodeSpec] = {node.name: node for node in self._seed}
        self._api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self._watch_client = config.new_client_from_config(config_file=str(kubeconfig))
        self._api_client.user_agent = self._watch_client.user_agent = USER_AGENT
        self._core = client.CoreV1Api(self._api_client)
        self._coordination = client.CoordinationV1Api(self._api_client)
        self._watch_core = client.CoreV1Api(self._watch_client)
        self._lock = threading.Lock()
        self._pool_lock = threading.Lock()  # node membership vs. the heartbeat's re-creation of a vanished node
        self._stopping = threading.Event()
        self._wakeup = threading.Condition(self._lock)
        self._due: list[_Due] = []
        self._sequence = itertools.count()
        self._pending_start: set[str] = set()  # pod uids with a start scheduled
        self._pending_delete: set[str] = set()  # pod uids with a final delete scheduled
        self._ips = IpAllocator({node.name: node.pod_subnet_prefix for node in self._seed})
        self.runtime = PodRuntime(
            self._core,
            self.network,
            self.state_dir,
            self.settings.runtime,
            node_ips={node.name: node.internal_ip for node in self._seed},
            node_prefixes={node.name: node.pod_subnet_prefix for node in self._seed},
            allocatable=NODE_RESOURCES,
            on_removed=self._finish_deletion,
            ips=self._ips,
            apiserver=_apiserver_address(self._api_client.configuration.host),
        )
        self._threads: list[threading.Thread] = []
        self._watch_response: Any = None
        self._started_at = _now_seconds()

    @property
    def nodes(self) -> tuple[NodeSpec, ...]:
        """The nodes the agent runs now (the pool's; they change as the pool does)."""
        return tuple(self._node_by_name.values())

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(node.name for node in self.nodes)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Register the nodes (raises if the apiserver refuses) and start the agent's threads."""
        self._pool = NodePool(self._api_client, self.settings.node_prefix)
        seeded = self._pool.seed([(n.name, n.zone, n.number) for n in self._seed if n.number])
        self._follow_pool(seeded, register=False)
        for node in self.nodes:
            self._ensure_node(node)
            self._renew_lease(node)
        self.runtime.start()
        for target, name in (
            (self._pool_loop, "node-pool"),
            (self._heartbeat_loop, "heartbeat"),
            (self._watch_loop, "pod-watch"),
            (self._timer_loop, "timer"),
        ):
            thread = threading.Thread(target=target, name=f"nodeagent-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        LOG.info("node agent started for %s", ", ".join(self.node_names))

    def stop(self) -> None:
        """Stop the threads and the pod runtime; leaves Node objects in place (they go NotReady later)."""
        self._stopping.set()
        with self._lock:
            self._wakeup.notify_all()
            response = self._watch_response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        self.runtime.stop()

    def set_runnable_image(self, image: str, directory: Path) -> None:
        """Run pods of `image` (a repository, or repository:tag) as host processes from `directory` from now on."""
        self.runtime.images.set(image, directory)

    def remove_runnable_image(self, image: str) -> None:
        """Stop treating `image` as runnable for new pods (pods already running keep running)."""
        self.runtime.images.remove(image)

    def request_stop(self) -> None:
        """Ask `wait()` to return (safe from a signal handler); call `stop()` afterwards."""
        self._stopping.set()

    def wait(self) -> None:
        """Block until `stop()` is called (process mode)."""
        while not self._stopping.wait(1.0):
            pass

    # -- the node pool -----------------------------------------------------------------------------------
    def _pool_loop(self) -> None:
        while not self._stopping.wait(self.settings.pool_poll_seconds):
            try:
                document = self._pool.read()
                if document is not None:
                    self._follow_pool(document, register=True)
            except Exception as error:  # apiserver down or restarting: follow on the next poll
                LOG.warning("node pool: %s; retrying in %.0f s", error, self.settings.pool_poll_seconds)

    def _follow_pool(self, document: dict[str, Any], register: bool) -> None:
        """Make the agent's nodes the pool's: register added ones, unregister removed ones, update changed ones."""
        wanted = pool_nodes(document, self.network)
        if not wanted:
            return
        with self._lock:
            current = dict(self._node_by_name)
        for name, node in wanted.items():
            if current.get(name) == node:
                continue
            if name not in current:
                self._ips.add_node(name, node.pod_subnet_prefix)
                self.runtime.add_node(name, node.internal_ip, node.pod_subnet_prefix)
            with self._lock:
                self._node_by_name[name] = node
            if register:
                self._ensure_node(node)
                self._renew_lease(node)
                LOG.info("node pool: node %s (group %s, image %s) registered", name, node.group, node.image)
        for name in set(current) - set(wanted):
            with self._pool_lock:  # the heartbeat never re-creates it after this
                with self._lock:
                    self._node_by_name.pop(name, None)
                if register:
                    self._unregister(name)

    def _unregister(self, name: str) -> None:
        """The node's instance was terminated: its Node object and Lease go (pods bound to it are the pod garbage
        collector's)."""
        for delete in (
            lambda: self._core.delete_node(name),
            lambda: self._coordination.delete_namespaced_lease(name, LEASE_NAMESPACE),
        ):
            try:
                delete()
            except ApiException as error:
                if error.status != 404:
                    raise
        LOG.info("node pool: node %s terminated and unregistered", name)

    # -- nodes -------------------------------------------------------------------------------------------
    def _node_conditions(self, node: NodeSpec | None = None) -> list[JsonDict]:
        now, since = _rfc3339(time.time()), _rfc3339(self._started_at)
        ready = ("Ready", "True", "KubeletReady")
        if node is not None and node.never_ready:
            ready = ("Ready", "False", "KubeletNotReady")
        healthy = [
            ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID"),
            ready,
        ]
        return [
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": "toolkit local node agent"
                + (": node image never becomes Ready" if status == "False" and kind == "Ready" else ""),
                "lastHeartbeatTime": now,
                "lastTransitionTime": since,
            }
            for kind, status, reason in healthy
        ]

    def _node_status(self, node: NodeSpec) -> JsonDict:
        return {
            "capacity": NODE_RESOURCES,
            "allocatable": NODE_RESOURCES,
            "conditions": self._node_conditions(node),
            "addresses": [
                {"type": "InternalIP", "address": node.internal_ip},
                {"type": "Hostname", "address": node.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": node.name,
                "systemUUID": node.name,
                "bootID": node.name,
                "kernelVersion": os.uname().release,
                "osImage": "toolkit local node agent",
                "containerRuntimeVersion": "toolkit-local://1",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def _ensure_node(self, node: NodeSpec) -> None:
        labels = {
            HOSTNAME_LABEL: node.name,
            ZONE_LABEL: node.zone,
            "topology.kubernetes.io/region": "local",
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            AGENT_LABEL: "true",
            **{LABEL_GROUP: node.group, LABEL_IMAGE: node.image, LABEL_ROLE: node.role},
            **dict(node.labels),
        }
        labels = {k: v for k, v in labels.items() if v or k not in (LABEL_GROUP, LABEL_IMAGE, LABEL_ROLE)}
        taints = [{"key": k, "value": v, "effect": e} for k, v, e in node.taints]
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node.name, "labels": labels},
            "spec": {
                "podCIDR": f"{node.pod_subnet_prefix}.0/24",
                "podCIDRs": [f"{node.pod_subnet_prefix}.0/24"],
                **({"taints": taints} if taints else {}),
            },
            "status": self._node_status(node),
        }
        try:
            self._core.create_node(body)
            LOG.info("registered node %s in %s", node.name, node.zone)
        except ApiException as error:
            if error.status != 409:
                raise
            self._core.patch_node(node.name, {"metadata": {"labels": labels}}, _content_type=STRATEGIC_MERGE)
            if taints:
                self._core.patch_node(node.name, {"spec": {"taints": taints}}, _content_type=STRATEGIC_MERGE)
        self._core.patch_node_status(node.name, {"status": self._node_status(node)}, _content_type=STRATEGIC_MERGE)

    def _renew_lease(self, node: NodeSpec) -> None:
        renew = {"holderIdentity": node.name, "renewTime": _micro_time(time.time())}
        try:
            self._coordination.patch_namespaced_lease(
                node.name, LEASE_NAMESPACE, {"spec": renew}, _content_type=STRATEGIC_MERGE
            )
        except ApiException as error:
            if error.status != 404:
                raise
            owner = self._core.read_node(node.name)
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": node.name,
                    "namespace": LEASE_NAMESPACE,
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": owner.metadata.uid}
                    ],
                },
                "spec": {**renew, "leaseDurationSeconds": LEASE_DURATION_SECONDS},
            }
            self._coordination.create_namespaced_lease(LEASE_NAMESPACE, body)

    def _heartbeat_once(self) -> None:
        for node in self.nodes:
            try:
                self._core.patch_node_status(
                    node.name,
                    {"status": {"conditions": self._node_conditions(node)}},
                    _content_type=STRATEGIC_MERGE,
                )
            except ApiException as error:
                if error.status != 404:
                    raise
                with self._pool_lock:  # re-create a node that disappeared, unless the pool terminated it meanwhile
                    if node.name in self._node_by_name:
                        self._ensure_node(node)
            with self._pool_lock:
                if node.name in self._node_by_name:
                    self._renew_lease(node)

    def _heartbeat_loop(self) -> None:
        while not self._stopping.wait(self.settings.heartbeat_seconds):
            try:
                self._heartbeat_once()
            except Exception as error:  # apiserver down or restarting: retry on the next beat
                LOG.warning("node heartbeat failed (%s); retrying in %.0f s", error, self.settings.heartbeat_seconds)

    # -- pod watch ---------------------------------------------------------------------------------------
    def relist_pods(self) -> str:
        """List bound pods, examine each, forget vanished ones; return the list's resourceVersion."""
        response = self._watch_core.list_pod_for_all_namespaces(
            field_selector=BOUND_PODS_SELECTOR, _preload_content=False, _request_timeout=(5, 30)
        )
        listing = json.loads(response.data)
        items = [pod for pod in listing.get("items", []) if pod.get("spec", {}).get("nodeName") in self._node_by_name]
        seen = {pod["metadata"]["uid"] for pod in items}
        for pod in items:  # addresses pods already report stay theirs, before any new pod gets one
            address = pod.get("status", {}).get("podIP")
            if address:
                with contextlib.suppress(Exception):
                    self._ips.claim(pod["metadata"]["uid"], pod["spec"]["nodeName"], address)
        for pod in items:
            self._on_pod_event("SYNC", pod)
        self.runtime.forget_missing(seen)
        for uid in set(self._ips.held()) - seen:
            if not self.runtime.knows(uid):
                self._ips.release(uid)
        with self._lock:
            self._pending_delete &= seen
        self.stats.relists += 1
        return str(listing["metadata"]["resourceVersion"])

    def watch_pods_once(self, resource_version: str) -> str:
        """Follow one watch stream from `resource_version` until it ends; return the last version seen.

        Raises `WatchExpiredError` on 410 Gone; connection errors propagate to the caller's back-off.
        """
        return self._follow_pod_watch(resource_version, own_loop=False)

    def _follow_pod_watch(self, resource_version: str, own_loop: bool) -> str:
        try:
            response = self._watch_core.list_pod_for_all_namespaces(
                field_selector=BOUND_PODS_SELECTOR,
                watch=True,
                allow_watch_bookmarks=True,
                resource_version=resource_version,
                timeout_seconds=self.settings.watch_timeout_seconds,
                _preload_content=False,
                _request_timeout=(5, self.settings.watch_timeout_seconds + 15),
            )
        except ApiException as error:
            if error.status == 410:
                raise WatchExpiredError(str(error.reason)) from error
            raise
        if own_loop:
            with self._lock:
                self._watch_response = response
        last = resource_version
        try:
            for line in iter_resp_lines(response):
                if self._stopping.is_set():
                    break
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpiredError(obj.get("message", "410 Gone"))
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                last = obj.get("metadata", {}).get("resourceVersion") or last
                if kind != "BOOKMARK":
                    self._on_pod_event(kind, obj)
        finally:
            if own_loop:
                with self._lock:
                    self._watch_response = None
            response.close()
            response.release_conn()
        return last

    def _watch_loop(self) -> None:
        resource_version: str | None = None
        while not self._stopping.is_set():
            try:
                if resource_version is None:
                    resource_version = self.relist_pods()
                resource_version = self._follow_pod_watch(resource_version, own_loop=True)
            except WatchExpiredError as expired:
                LOG.info("pod watch expired (%s): re-listing", expired)
                self.stats.watch_expired += 1
                resource_version = None
            except ApiException as error:
                if error.status == 410:
                    self.stats.watch_expired += 1
                    resource_version = None
                    continue
                self._back_off(f"pod watch: API error {error.status} {error.reason}")
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
                self._back_off(f"pod watch: connection lost ({type(error).__name__})")

    def _back_off(self, why: str) -> None:
        if self._stopping.is_set():
            return
        self.stats.watch_reconnects += 1
        LOG.info("%s; resuming in %.1f s", why, self.settings.reconnect_backoff_seconds)
        self._stopping.wait(self.settings.reconnect_backoff_seconds)

    def _on_pod_event(self, kind: str, pod: JsonDict) -> None:
        metadata, spec = pod["metadata"], pod.get("spec", {})
        uid, namespace, name = metadata["uid"], metadata["namespace"], metadata["name"]
        if spec.get("nodeName") not in self._node_by_name:
            # a pod of a node the pool no longer has (terminated): only its end still concerns the agent
            if kind == "DELETED" and self.runtime.knows(uid):
                self.runtime.on_pod(kind, pod)
                self._ips.release(uid)
            return
        if self.runtime.knows(uid) or self.runtime.claims(pod):
            if not self.runtime.knows(uid) and kind != "DELETED":
                self.stats.pods_run += 1
            self.runtime.on_pod(kind, pod)
            return
        if kind == "DELETED":
            with self._lock:
                self._pending_start.discard(uid)
                self._pending_delete.discard(uid)
            self._ips.release(uid)
            return
        if metadata.get("deletionTimestamp"):
            with self._lock:
                if uid in self._pending_delete:
                    return
                self._pending_delete.add(uid)
            self._call_later(self.settings.delete_delay_seconds, lambda: self._finish_deletion(namespace, name, uid))
            return
        if _reported_started(pod):
            return
        with self._lock:
            if uid in self._pending_start:
                return
            self._pending_start.add(uid)
        delay = _ready_delay(metadata, self.settings.ready_delay_seconds)
        self._call_later(delay, lambda: self._report_started(namespace, name, uid))

    # -- pod actions (run on the timer thread) ------------------------------------------------------------
    def _report_started(self, namespace: str, name: str, uid: str) -> None:
        try:
            pod = self._core.read_namespaced_pod(name, namespace, _preload_content=False)
            current = json.loads(pod.data)
            if current["metadata"]["uid"] != uid or current["metadata"].get("deletionTimestamp"):
                return
            status = self._started_status(current)
            self._core.patch_namespaced_pod_status(
                name, namespace, {"metadata": {"uid": uid}, "status": status}, _content_type=STRATEGIC_MERGE
            )
            self.stats.pods_started += 1
        except ApiException as error:
            if error.status not in (404, 409, 422):  # gone or replaced by a same-name pod: nothing to do
                LOG.warning("could not report pod %s/%s started: %s", namespace, name, error.reason)
                self._retry_start_later(namespace, name, uid)
                return
        except (urllib3.exceptions.HTTPError, OSError) as error:
            LOG.warning("could not report pod %s/%s started (%s); retrying", namespace, name, error)
            self._retry_start_later(namespace, name, uid)
            return
        with self._lock:
            self._pending_start.discard(uid)

    def _retry_start_later(self, namespace: str, name: str, uid: str) -> None:
        self._call_later(1.0, lambda: self._report_started(namespace, name, uid))

    def _finish_deletion(self, namespace: str, name: str, uid: str) -> None:
        options = client.V1DeleteOptions(grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid))
        try:
            self._core.delete_namespaced_pod(name, namespace, body=options)
            self.stats.pods_deleted += 1
        except ApiException as error:
            if error.status == 409:  # the name now belongs to a re-created pod: leave it alone
                self.stats.delete_conflicts += 1
            elif error.status != 404:
                LOG.warning("could not delete pod %s/%s: %s; retrying", namespace, name, error.reason)
                self._call_later(1.0, lambda: self._finish_deletion(namespace, name, uid))
                return
        except (urllib3.exceptions.HTTPError, OSError):
            self._call_later(1.0, lambda: self._finish_deletion(namespace, name, uid))
            return
        with self._lock:
            self._pending_delete.discard(uid)

    def _assign_ip(self, pod: JsonDict) -> str:
        preferred = pod.get("status", {}).get("podIP")
        return self._ips.claim(pod["metadata"]["uid"], pod["spec"]["nodeName"], preferred)

    def _started_status(self, pod: JsonDict) -> JsonDict:
        uid = pod["metadata"]["uid"]
        now = _rfc3339(time.time())
        never_ready = pod["metadata"].get("annotations", {}).get(ANNOTATION_NEVER_READY) == "true"
        bad = _pod_is_bad(pod)
        ready = not bad and not never_ready
        node = self._node_by_name[pod["spec"]["nodeName"]]
        address = self._assign_ip(pod)
        statuses = []
        for container in pod["spec"].get("containers", []):
            image = container.get("image", "")
            if _image_is_bad(image):
                state: JsonDict = {
                    "waiting": {
                        "reason": "ImagePullBackOff",
                        "message": f'Back-off pulling image "{image}" (marked bad for the local node agent)',
                    }
                }
                image_id, started = "", False
            else:
                state, image_id, started = (
                    {"running": {"startedAt": now}},
                    f"{CONTAINER_ID_SCHEME}{image}",
                    True,
                )
            statuses.append(
                {
                    "name": container["name"],
                    "image": image,
                    "imageID": image_id,
                    "containerID": f"{CONTAINER_ID_SCHEME}{uid}/{container['name']}",
                    "ready": ready,
                    "started": started,
                    "restartCount": 0,
                    "state": state,
                }
            )
        init_statuses = [
            {
                "name": container["name"],
                "image": container.get("image", ""),
                "imageID": f"{CONTAINER_ID_SCHEME}{container.get('image', '')}",
                "containerID": f"{CONTAINER_ID_SCHEME}{uid}/{container['name']}",
                "ready": True,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now}},
            }
            for container in pod["spec"].get("initContainers", [])
        ]
        why_not = "image marked bad (ImagePullBackOff)" if bad else "pod annotated toolkit.io/never-ready"
        conditions = [
            _condition("PodScheduled", True, now),
            _condition("Initialized", True, now),
            _condition("ContainersReady", ready, now, "ContainersNotReady", why_not),
            _condition("Ready", ready, now, "ContainersNotReady", why_not),
        ]
        status: JsonDict = {
            "phase": "Pending" if bad else "Running",
            "conditions": conditions,
            "containerStatuses": statuses,
            "hostIP": node.internal_ip,
            "podIP": address,
            "podIPs": [{"ip": address}],
            "startTime": pod.get("status", {}).get("startTime") or now,
        }
        if init_statuses:
            status["initContainerStatuses"] = init_statuses
        return status

    # -- timer -------------------------------------------------------------------------------------------
    def _call_later(self, delay: float, action: Callable[[], None]) -> None:
        with self._lock:
            heapq.heappush(self._due, _Due(time.monotonic() + max(0.0, delay), next(self._sequence), action))
            self._wakeup.notify()

    def _timer_loop(self) -> None:
        while True:
            with self._lock:
                while not self._stopping.is_set() and (not self._due or self._due[0].at > time.monotonic()):
                    timeout = self._due[0].at - time.monotonic() if self._due else None
                    self._wakeup.wait(timeout)
                if self._stopping.is_set():
                    return
                due = heapq.heappop(self._due)
            try:
                due.action()
            except Exception:
                LOG.exception("node agent action failed")


def _apiserver_address(url: str) -> tuple[str, int] | None:
    """(host, port) of the apiserver URL the agent uses (pods reach it through the `kubernetes` Service)."""
    parsed = urllib.parse.urlparse(url)
    return (parsed.hostname, parsed.port or 443) if parsed.hostname else None


def _condition(kind: str, true: bool, now: str, reason: str = "", message: str = "") -> JsonDict:
    condition: JsonDict = {"type": kind, "status": "True" if true else "False", "lastTransitionTime": now}
    if not true:
        condition.update(reason=reason, message=message)
    return condition


def _image_is_bad(image: str) -> bool:
    """True when the image's tag (after the last ':' that follows the last '/') ends in `-bad`."""
    reference = image.split("@", 1)[0]
    last_segment = reference.rsplit("/", 1)[-1]
    return ":" in last_segment and last_segment.rsplit(":", 1)[1].endswith(BAD_IMAGE_TAG_SUFFIX)


def _pod_is_bad(pod: JsonDict) -> bool:
    return any(_image_is_bad(c.get("image", "")) for c in pod.get("spec", {}).get("containers", []))


def _reported_started(pod: JsonDict) -> bool:
    """True when this agent (now or before a restart) already wrote the pod's started status for the images
    the pod specifies now (a changed container image, as after `kubectl set image` on a pod, is re-reported)."""
    statuses = pod.get("status", {}).get("containerStatuses") or []
    wanted = {c["name"]: c.get("image", "") for c in pod.get("spec", {}).get("containers", [])}
    reported = {
        status.get("name"): status.get("image")
        for status in statuses
        if str(status.get("containerID", "")).startswith(CONTAINER_ID_SCHEME)
    }
    return bool(wanted) and reported == wanted


def _ready_delay(metadata: JsonDict, default: float) -> float:
    raw = metadata.get("annotations", {}).get(ANNOTATION_READY_DELAY)
    if raw is None:
        return default
    try:
        return max(0.0, float(raw))
    except ValueError:
        LOG.warning(
            "pod %s/%s: annotation %s=%r is not a number of seconds; using %.1f",
            metadata.get("namespace"), metadata.get("name"), ANNOTATION_READY_DELAY, raw, default,
        )  # fmt: skip
        return default


def _now_seconds() -> float:
    return time.time()


def _rfc3339(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_time(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def main(argv: Sequence[str] | None = None) -> int:
    """Process mode: run the agent until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m toolkit.targets.local.nodeagent", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--kubeconfig", type=Path, required=True, help="admin kubeconfig of the local cluster")
    parser.add_argument("--nodes", type=int, default=3, help="number of nodes (zones round robin; default 3)")
    parser.add_argument("--node-prefix", default="local-node", help="node names: PREFIX-1, PREFIX-2, ...")
    parser.add_argument("--ready-delay", type=float, default=1.0, help="seconds from binding to Running/Ready")
    parser.add_argument("--delete-delay", type=float, default=0.5, help="seconds from deletion request to removal")
    parser.add_argument(
        "--run-image",
        action="append",
        default=[],
        metavar="REPOSITORY=DIRECTORY",
        help="run pods of this image repository (or repository:tag) as host processes from DIRECTORY (repeatable)",
    )
    parser.add_argument("--log-level", default="INFO")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=arguments.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    images = {}
    for item in arguments.run_image:
        image, separator, directory = item.partition("=")
        if not separator or not image or not directory:
            parser.error(f"--run-image {item!r}: expected REPOSITORY=DIRECTORY, e.g. toolkit-worker=/opt/venv/bin")
        images[image] = Path(directory)
    settings = AgentSettings(
        ready_delay_seconds=arguments.ready_delay,
        delete_delay_seconds=arguments.delete_delay,
        node_prefix=arguments.node_prefix,
        runtime=RuntimeSettings(images=images),
    )
    network = network_of(arguments.kubeconfig.parent.resolve())
    nodes = default_nodes(arguments.nodes, arguments.node_prefix, network=network)
    agent = NodeAgent(arguments.kubeconfig, nodes, settings)

    def request_stop(signum: int, _frame: object) -> None:
        LOG.info("signal %d: stopping", signum)
        agent.request_stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    deadline = time.monotonic() + 60
    while True:  # the apiserver may still be coming up when the process is started
        try:
            agent.start()
            break
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            if time.monotonic() > deadline:
                LOG.error("cannot register nodes: %s", error)
                return 1
            time.sleep(1.0)
    agent.wait()
    agent.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
