"""A rehearsal's own nodes on the local cluster, for `--to kubernetes=...`: a node roll moves every pod of the nodes
it drains, so a rehearsal that deploys into a namespace of its own also gets nodes of its own.

1. `node_images`: the roll rehearsed is the one the cluster faces: from the node image its shared groups' nodes run
   to the one published to those groups (`toolkit cluster node-image IMAGE`), or to `--node-image IMAGE`; the same
   image on both sides is refused (nothing would be replaced).
2. `add_groups`: one node group per zone of the platform (`<run>-<zone>`, one node, room for a surge node), launched
   from the `from` image, labelled and tainted (NoSchedule) `toolkit.io/dedicated=<run>`: the run environment names
   them (`platform.kubernetes.dedicated`), so the charts pin every pod there and nothing else lands on them.
3. `publish`: the change itself, the `to` image published to the run's groups (what an AMI release does); the
   engine then replaces every node still on the `from` image, behind the platform's gates.
4. `remove_groups`: the groups and their nodes leave the pool (instances terminated); the node agent unregisters
   them, and the pods still bound to them go with the run's namespace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from toolkit.config.platform import DEDICATED
from toolkit.errors import UsageError

READY_TIMEOUT = 90.0  # seconds for the node agent to register the run's nodes


@dataclass(frozen=True)
class NodeChange:
    run: str  # the run environment's name: the groups' prefix and their dedicated label's value
    from_image: str
    to_image: str
    groups: tuple[str, ...]


def _pool(api: Any) -> Any:
    from toolkit.targets.local.nodepool import NodePool

    return NodePool(api)


def node_images(document: dict[str, Any], requested: str | None, env_name: str) -> tuple[str, str]:
    """(from, to) for the roll (see the module docstring); UsageError when there is nothing to roll."""
    shared = {name for name, spec in document["groups"].items() if DEDICATED not in (spec.get("labels") or {})}
    running = sorted({entry["image"] for entry in document["nodes"].values() if entry["group"] in shared})
    published = sorted({document["groups"][name]["image"] for name in shared})
    if not running:
        raise UsageError(
            f"the local cluster of {env_name} has no node in its node pool: start it with "
            f"`toolkit cluster up --env {env_name}`"
        )
    from_image = running[0]
    to_image = requested or next((image for image in published if image != from_image), from_image)
    if to_image == from_image:
        raise UsageError(
            f"--to kubernetes: the cluster's nodes run node image {from_image}, the same image "
            f"{'--node-image names' if requested else 'their groups launch'}: a roll would replace nothing. Publish "
            f"the next image with `toolkit cluster node-image IMAGE --env {env_name}`, or give `--node-image IMAGE`"
        )
    return from_image, to_image


def plan(api: Any, run: str, zones: Sequence[str], requested: str | None, env_name: str) -> NodeChange:
    """The run's roll: its images and its groups' names; nothing is changed yet."""
    from toolkit.targets.local.nodepool import empty

    from_image, to_image = node_images(_pool(api).read() or empty(), requested, env_name)
    return NodeChange(run, from_image, to_image, tuple(f"{run}-{zone}" for zone in zones))


def add_groups(api: Any, change: NodeChange, zones: Sequence[str]) -> list[str]:
    """The run's groups, one node each on the `from` image; their node names (see `ready`)."""
    pool = _pool(api)
    taint = [{"key": DEDICATED, "value": change.run, "effect": "NoSchedule"}]
    nodes: list[str] = []
    for group, zone in zip(change.groups, zones, strict=True):
        nodes += pool.add_group(
            group, zone, 1, 2, labels={DEDICATED: change.run}, taints=taint, image=change.from_image
        )
    return nodes


def ready(api: Any, change: NodeChange, nodes: Sequence[str]) -> bool:
    """Every node of `nodes` registered by the node agent and Ready."""
    from kubernetes import client

    listed = client.CoreV1Api(api).list_node(label_selector=f"{DEDICATED}={change.run}").items
    found = {n.metadata.name: n for n in listed}
    return all(
        name in found and any(c.type == "Ready" and c.status == "True" for c in found[name].status.conditions or [])
        for name in nodes
    )


def publish(api: Any, change: NodeChange) -> None:
    pool = _pool(api)
    for group in change.groups:
        pool.set_image(group, change.to_image)


def remove_groups(api: Any, run: str) -> list[str]:
    """Every group of the run leaves the pool with its nodes; the groups removed."""
    removed: list[str] = []

    def drop(document: dict[str, Any]) -> dict[str, Any]:
        mine = {name for name, spec in document["groups"].items() if (spec.get("labels") or {}).get(DEDICATED) == run}
        removed[:] = sorted(mine)
        document["nodes"] = {n: e for n, e in document["nodes"].items() if e["group"] not in mine}
        document["groups"] = {g: e for g, e in document["groups"].items() if g not in mine}
        return document

    _pool(api).update(drop)
    return removed
