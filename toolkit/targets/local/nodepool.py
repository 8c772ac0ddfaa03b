"""The local cluster's node pool: what stands in for EC2 Auto Scaling groups on the local control plane.

A ConfigMap `kube-system/toolkit-local-node-pool` (data key `pool.json`) lists node groups and the nodes they run:

    {"groups": {"local-zone-a": {"zone": "zone-a", "role": "", "image": "local-1", "max_size": 2,
                                 "labels": {...}, "taints": [...], "never_ready": false}},
     "nodes": {"local-node-1": {"group": "local-zone-a", "number": 1, "image": "local-1"}},
     "next_number": 2}

The node agent (nodeagent.py) follows it: a node listed is registered (labels: zone, `toolkit.io/node-group`,
`toolkit.io/node-image`, `toolkit.io/node-role`, the group's own; the group's taints) and kept Ready by its
heartbeat, NotReady for ever in a group marked `never_ready` (a bad node image); a node removed from it is
unregistered (its Node object and Lease deleted, as the cloud's node lifecycle controller does when an instance is
terminated; pods still bound to it are then removed by the controller manager's pod garbage collector). The toolkit
acts on it as on an Auto Scaling group: `surge(group)` adds one node launched from the group's current image (desired
capacity + 1), `terminate(node)` removes it (desired capacity - 1), `set_image(group, image)` publishes a new node
image (an AMI release): nodes of the old image are then replaced by a Kubernetes roll at the same version.

One pool per node agent: the cluster's own agent (node names `local-node-N`) follows `toolkit-local-node-pool`; an
extra agent started with another node prefix follows a pool of its own (`toolkit-local-node-pool-<prefix>`), so two
agents never claim the same nodes.

Every change is a read and a replace under the read resourceVersion; a 409 (someone changed it meanwhile) re-reads
and applies the change again, so the agent and the toolkit never lose each other's update. Node numbers are never
reused (`next_number`): a node's number picks its pod subnet.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from toolkit.engine.ports import ActionError
from toolkit.model import Addon, Node, NodeGroup

NAMESPACE = "kube-system"
NAME = "toolkit-local-node-pool"
KEY = "pool.json"
DEFAULT_IMAGE = "local-1"
LABEL_GROUP = "toolkit.io/node-group"
LABEL_IMAGE = "toolkit.io/node-image"
LABEL_ROLE = "toolkit.io/node-role"
ATTEMPTS = 20

Document = dict[str, Any]


class PoolError(RuntimeError):
    """The pool cannot do what was asked (an unknown group, no room); the message names the object and the way out."""


DEFAULT_PREFIX = "local-node"


def pool_name(prefix: str = DEFAULT_PREFIX) -> str:
    """The ConfigMap of the pool whose nodes are named `<prefix>-N`."""
    return NAME if prefix == DEFAULT_PREFIX else f"{NAME}-{prefix}"


def empty() -> Document:
    return {"groups": {}, "nodes": {}, "next_number": 1}


class NodePool:
    """Read and change the pool's ConfigMap (see the module docstring)."""

    def __init__(self, api: Any, prefix: str = DEFAULT_PREFIX) -> None:
        self.core = client.CoreV1Api(api)
        self.prefix = prefix
        self.name = pool_name(prefix)

    def read(self) -> Document | None:
        try:
            obj = self.core.read_namespaced_config_map(self.name, NAMESPACE)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return _decode(obj)

    def update(self, change: Callable[[Document], Document]) -> Document:
        """Apply `change` to the current document (created empty when missing) under its resourceVersion."""
        for _ in range(ATTEMPTS):
            try:
                obj = self.core.read_namespaced_config_map(self.name, NAMESPACE)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                body = {
                    "metadata": {"name": self.name, "namespace": NAMESPACE},
                    "data": {KEY: json.dumps(change(empty()))},
                }
                try:
                    created = self.core.create_namespaced_config_map(NAMESPACE, body)
                except ApiException as again:
                    if again.status == 409:
                        continue
                    raise
                return _decode(created)
            document = change(_decode(obj))
            obj.data = {**(obj.data or {}), KEY: json.dumps(document, sort_keys=True)}
            try:
                replaced = self.core.replace_namespaced_config_map(self.name, NAMESPACE, obj)
            except ApiException as exc:
                if exc.status == 409:
                    continue
                raise
            return _decode(replaced)
        raise PoolError(f"configmap {NAMESPACE}/{self.name}: {ATTEMPTS} conflicting writers in a row; try again")

    def seed(self, nodes: list[tuple[str, str, int]], image: str = DEFAULT_IMAGE) -> Document:
        """First start of a cluster: its (name, zone, number) nodes, one group per zone (room for one more each).
        A pool that exists already is left as it is: it is what the nodes are now."""

        def change(doc: Document) -> Document:
            if doc["nodes"] or doc["groups"]:
                return doc
            for name, zone, number in nodes:
                group = f"local-{zone}"
                spec = doc["groups"].setdefault(
                    group, {"zone": zone, "role": "", "image": image, "max_size": 1, "labels": {}, "taints": []}
                )
                spec["max_size"] = sum(1 for _n, z, _k in nodes if z == zone) + 1
                doc["nodes"][name] = {"group": group, "number": number, "image": image}
                doc["next_number"] = max(doc["next_number"], number + 1)
            return doc

        return self.update(change)

    def add_group(
        self,
        name: str,
        zone: str,
        count: int,
        max_size: int,
        role: str = "",
        image: str = DEFAULT_IMAGE,
        labels: dict[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
    ) -> list[str]:
        """A group and its first `count` nodes; the names of those nodes."""
        added: list[str] = []

        def change(doc: Document) -> Document:
            added.clear()
            doc["groups"][name] = {
                "zone": zone,
                "role": role,
                "image": image,
                "max_size": max_size,
                "labels": dict(labels or {}),
                "taints": list(taints or []),
            }
            for _ in range(count):
                added.append(_add_node(doc, name, self.prefix))
            return doc

        self.update(change)
        return list(added)

    def surge(self, group: str) -> str:
        """One more node in `group` (desired capacity + 1), from the group's current image; its name."""
        added: list[str] = []

        def change(doc: Document) -> Document:
            added.clear()
            spec = doc["groups"].get(group)
            if spec is None:
                raise PoolError(f"node pool group {group} does not exist (groups: {', '.join(sorted(doc['groups']))})")
            size = sum(1 for n in doc["nodes"].values() if n["group"] == group)
            if size >= spec["max_size"]:
                raise PoolError(f"node pool group {group} is at its maximum of {spec['max_size']} nodes")
            added.append(_add_node(doc, group, self.prefix))
            return doc

        self.update(change)
        return added[0]

    def terminate(self, node: str) -> bool:
        """Remove the node (desired capacity - 1); False when it was not in the pool (already terminated)."""
        removed: list[bool] = []

        def change(doc: Document) -> Document:
            removed[:] = [doc["nodes"].pop(node, None) is not None]
            return doc

        self.update(change)
        return removed[0]

    def set_image(self, group: str, image: str) -> None:
        """Publish a new node image for the group: nodes launched from now on use it."""

        def change(doc: Document) -> Document:
            if group not in doc["groups"]:
                raise PoolError(f"node pool group {group} does not exist (groups: {', '.join(sorted(doc['groups']))})")
            doc["groups"][group]["image"] = image
            return doc

        self.update(change)

    def set_never_ready(self, group: str, never_ready: bool) -> None:
        """Nodes of the group (existing and new) never become Ready while set: a bad node image."""

        def change(doc: Document) -> Document:
            doc["groups"][group]["never_ready"] = never_ready
            return doc

        self.update(change)


def _add_node(doc: Document, group: str, prefix: str) -> str:
    number = int(doc["next_number"])
    doc["next_number"] = number + 1
    name = f"{prefix}-{number}"
    doc["nodes"][name] = {"group": group, "number": number, "image": doc["groups"][group]["image"]}
    return name


def _decode(obj: Any) -> Document:
    raw = (obj.data or {}).get(KEY) or "{}"
    document = {**empty(), **json.loads(raw)}
    return document


class LocalPoolProvider:
    """The local cluster as a `toolkit.targets.kube.nodes.NodeProvider`: instances come from the node pool, the
    control plane is the one this machine built (fixed: it cannot be upgraded here), and there are no EKS add-ons."""

    description = f"the local node pool (configmap {NAMESPACE}/{NAME}, followed by the node agent)"

    def __init__(self, api: Any) -> None:
        self.pool = NodePool(api)

    def control_plane(self, api_version: str) -> tuple[str, str, bool]:
        return api_version, "ACTIVE", False

    def addons(self) -> tuple[Addon, ...]:
        return ()

    def groups(self, nodes: tuple[Node, ...]) -> tuple[NodeGroup, ...]:
        document = self.pool.read() or empty()
        out = []
        for name, spec in sorted(document["groups"].items()):
            size = sum(1 for n in document["nodes"].values() if n["group"] == name)
            out.append(
                NodeGroup(
                    name, spec.get("role", ""), spec["zone"], "", size, int(spec["max_size"]), spec.get("image", "")
                )
            )
        return tuple(out)

    def upgrade_control_plane(self, version: str) -> None:
        raise ActionError(f"the local control plane cannot be upgraded (to {version}): it is built from fixed sources")

    def update_addon(self, name: str, version: str) -> None:
        raise ActionError(f"the local cluster has no EKS add-on {name} to update")

    def surge(self, group: str, version: str) -> None:
        try:
            self.pool.surge(group)
        except PoolError as exc:
            raise ActionError(str(exc)) from None

    def terminate(self, node: Node) -> None:
        self.pool.terminate(node.name)
