"""Kubernetes workloads on the simulated platform: the pods every component's model reads, and the controllers that
create, schedule and delete them.

- StatefulSets with OnDelete: a deleted pod comes back on the update revision after a start delay (on another node,
  `volume_attach_seconds` more: its volume follows it).
- Deployments with RollingUpdate maxSurge/maxUnavailable 0: new pods first, an old pod goes only when the ready count
  stays at the desired count.
- Pausing, graceful termination: a deleted pod terminates for its component's stop time; its process leaves the
  data plane at once, or (a preStop hook holding an Elasticsearch node) when the pod is gone.

The pods and workloads themselves are the world's (`World.pods`, `World.workloads`): shared by every model. A pod's
process starting and stopping is handed to its component's model through `World.member_up` / `World.member_down`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from toolkit.model import Pod, Workload
from toolkit.targets.sim.params import NEVER, STEADY_SECONDS

if TYPE_CHECKING:
    from toolkit.targets.sim.world import World


@dataclass
class SimPod:
    name: str
    workload: str
    revision: str
    version: str
    zone: str
    node: str
    uid: str
    phase: str = "running"  # starting | running | terminating
    ready: bool = True
    ready_at: float = 0.0
    gone_at: float = NEVER
    up_since: float = 0.0
    restarts: int = 0
    recovering_until: float = 0.0  # a Kafka broker in log recovery until then (fault injection)
    probe_fails_until: float = 0.0  # readiness probe failing (NotReady) while the process serves, until then
    down_at: float | None = None  # terminating: when its process leaves the data plane (None: already left)
    trusts: list[str] = field(default_factory=list)  # key ids of the CAs it loaded at start ([]: no TLS modelled)
    presents: list[str] = field(default_factory=list)  # key ids of the CAs that issued the certificates it presents


@dataclass
class SimWorkload:
    name: str
    component: str
    kind: str
    role: str
    replicas: int
    update_revision: str
    target_version: str
    previous_version: str = ""
    tier: str = ""
    paused: bool = False
    max_surge: int = 1
    node_id_base: int = 0
    revisions: dict[str, str] = field(default_factory=dict)  # revision -> version
    annotations: dict[str, str] = field(default_factory=dict)  # pod template annotations (toolkit.io/...)


def revision(name: str, version: str, annotations: dict[str, str] | None = None) -> str:
    """A workload's revision: its name, version and template annotations (none: the same as without them)."""
    key = f"{name}/{version}" + "".join(f"/{k}={v}" for k, v in sorted((annotations or {}).items()))
    return f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def serving(pod: SimPod) -> bool:
    """Whether the pod's process serves (an Elasticsearch node is joined): Ready, or running with a failing
    readiness probe, or terminating while its process has not left yet (a preStop hook)."""
    if pod.phase == "running":
        return True
    return pod.phase == "terminating" and pod.down_at is not None


class Controllers:
    """The StatefulSet and Deployment controllers and the scheduler, acting on the world's pods. Its own state is
    the sequence that names pods and gives them uids."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.seq = 0

    def next_uid(self, name: str) -> str:
        self.seq += 1
        return hashlib.sha1(f"{name}/{self.seq}".encode()).hexdigest()[:12]

    def restart_seconds(self, component: str) -> float:
        params = self.world.params
        return {
            "kafka": params.kafka_restart_seconds,
            "elasticsearch": params.es_restart_seconds,
        }.get(component, params.worker_start_seconds)

    def stop_seconds(self, component: str) -> float:
        params = self.world.params
        return {
            "kafka": params.kafka_stop_seconds,
            "elasticsearch": params.es_stop_seconds,
        }.get(component, params.worker_stop_seconds)

    def add_workload(
        self,
        name: str,
        component: str,
        kind: str,
        role: str,
        replicas: int,
        version: str,
        tier: str = "",
        base: int = 0,
        max_surge: int = 1,
        zones: tuple[str, ...] = ("zone-a", "zone-b", "zone-c"),
    ) -> SimWorkload:
        """A workload of any component, its pods healthy and up for a while, every one on `version`."""
        world = self.world
        rev = revision(name, version)
        w = SimWorkload(
            name=name,
            component=component,
            kind=kind,
            role=role,
            replicas=replicas,
            update_revision=rev,
            target_version=version,
            tier=tier,
            node_id_base=base,
            max_surge=max_surge,
            revisions={rev: version},
        )
        world.workloads[name] = w
        for i in range(replicas):
            zone = zones[i % len(zones)]
            pod_name = f"{name}-{i}" if kind == "StatefulSet" else f"{name}-{self.next_uid(name)[:5]}"
            world.pods[pod_name] = SimPod(
                name=pod_name,
                workload=name,
                revision=rev,
                version=version,
                zone=zone,
                node=world.kubernetes.place(component, zone) or f"node-{zone}",
                uid=self.next_uid(pod_name),
                up_since=-STEADY_SECONDS,  # a healthy platform has been up for a while: voters are caught up
            )
        return w

    # ------------------------------------------------------------------ actions

    def apply_spec(self, workload: str, version: str) -> None:
        w = self.world.workloads[workload]
        if w.target_version == version:
            return
        w.previous_version = w.target_version
        w.target_version = version
        rev = revision(w.name, version, w.annotations)
        w.update_revision = rev
        w.revisions[rev] = version

    def annotate_template(self, workload: str, annotations: dict[str, str]) -> None:
        """Stamp the workload's pod template (its version unchanged): a new revision when anything changed."""
        w = self.world.workloads[workload]
        merged = {**w.annotations, **annotations}
        if merged == w.annotations:
            return
        w.annotations = merged
        rev = revision(w.name, w.target_version, merged)
        w.update_revision = rev
        w.revisions[rev] = w.target_version

    def delete_pod(self, name: str, seconds: float | None = None, node_stays: bool = False) -> None:
        """The pod is deleted: it terminates for `seconds` (default: the component's stop time), then its
        controller re-creates it. Its Kafka broker leaves the ISRs at once (controlled shutdown); with `node_stays`
        an Elasticsearch node stays joined with its shards until the pod is gone (a preStop hook holding it)."""
        world = self.world
        pod = world.pods[name]
        if pod.phase == "terminating":
            return
        component = world.component_of(pod)
        pod.phase = "terminating"
        pod.ready = False
        pod.probe_fails_until = 0.0
        pod.gone_at = world.now + (self.stop_seconds(component) if seconds is None else seconds)
        pod.down_at = pod.gone_at if node_stays and component == "elasticsearch" else world.now
        if pod.down_at <= world.now:
            pod.down_at = None
            world.member_down(name)

    def set_paused(self, workload: str, paused: bool) -> None:
        self.world.workloads[workload].paused = paused

    # ------------------------------------------------------------------ physics

    def new_pod(self, w: SimWorkload, name: str, zone: str, previous_node: str = "") -> SimPod:
        version = w.revisions[w.update_revision]
        pod = SimPod(
            name=name,
            workload=w.name,
            revision=w.update_revision,
            version=version,
            zone=zone,
            node="",
            uid=self.next_uid(name),
            phase="starting",
            ready=False,
            ready_at=NEVER,
        )
        pod.trusts, pod.presents = self.world.tls.loaded(w.name)
        self.schedule(pod, w, previous_node)
        return pod

    def schedule(self, pod: SimPod, w: SimWorkload, previous_node: str = "") -> None:
        """Bind a new pod to a node (pending while none fits); its start-up time runs from then."""
        world = self.world
        nodes = world.kubernetes.nodes
        if not nodes:
            pod.node = f"node-{pod.zone}"
        else:
            pod.node = world.kubernetes.place(w.component, pod.zone if w.kind == "StatefulSet" else None)
            if not pod.node:
                return
            pod.zone = nodes[pod.node].zone
        start = self.restart_seconds(w.component)
        if w.kind == "StatefulSet" and previous_node and previous_node != pod.node:
            start += world.params.volume_attach_seconds
        pod.ready_at = NEVER if pod.name in world.faults.never_ready else world.now + start

    def tick(self) -> None:
        world = self.world
        for pod in list(world.pods.values()):
            if pod.phase == "terminating" and pod.down_at is not None and pod.down_at <= world.now:
                pod.down_at = None
                world.member_down(pod.name)
            if pod.phase == "running" and pod.probe_fails_until and pod.probe_fails_until <= world.now:
                pod.probe_fails_until, pod.ready = 0.0, True
            if pod.phase == "terminating" and pod.gone_at <= world.now:
                w = world.workloads[pod.workload]
                del world.pods[pod.name]
                if w.kind == "StatefulSet":
                    new = self.new_pod(w, pod.name, pod.zone, previous_node=pod.node)
                    new.restarts = pod.restarts + 1
                    world.pods[new.name] = new
        for pod in world.pods.values():
            if pod.phase == "starting" and not pod.node:
                self.schedule(pod, world.workloads[pod.workload], previous_node="?")
            if pod.phase == "starting" and pod.ready_at <= world.now:
                pod.phase, pod.ready, pod.up_since = "running", True, pod.ready_at
                world.member_up(pod.name)
        for w in world.workloads.values():
            if w.kind == "Deployment":
                self._deployment_tick(w)

    def _deployment_tick(self, w: SimWorkload) -> None:
        if w.paused:
            return
        world = self.world
        live = [p for p in world.pods_of(w.name) if p.phase != "terminating"]
        new = [p for p in live if p.revision == w.update_revision]
        old = [p for p in live if p.revision != w.update_revision]
        while len(live) < w.replicas + w.max_surge and len(new) < w.replicas and (old or len(live) < w.replicas):
            zones = sorted({n.zone for n in world.kubernetes.nodes.values()}) or ["zone-a", "zone-b", "zone-c"]
            zone = zones[len(new) % len(zones)]
            pod = self.new_pod(w, f"{w.name}-{self.next_uid(w.name)[:5]}", zone)
            world.pods[pod.name] = pod
            live.append(pod)
            new.append(pod)
        ready = [p for p in live if p.ready]
        for pod in sorted(old, key=lambda p: (p.ready, p.name)):
            if not pod.ready or len(ready) - 1 >= w.replicas:
                pod.phase, pod.gone_at = "terminating", world.now + world.params.worker_stop_seconds
                if pod.ready:
                    ready.remove(pod)
                pod.ready = False

    # ------------------------------------------------------------------ observation

    def snapshot(self) -> tuple[Workload, ...]:
        world = self.world
        workloads = []
        for w in world.workloads.values():
            pods = tuple(
                Pod(
                    name=p.name,
                    workload=p.workload,
                    ready=p.ready,
                    revision=p.revision,
                    version=p.version,
                    zone=p.zone,
                    node=p.node,
                    uid=p.uid,
                    phase="Running" if p.phase != "starting" else "Pending",
                    terminating=p.phase == "terminating",
                    restarts=p.restarts,
                )
                for p in sorted(world.pods_of(w.name), key=lambda p: p.name)
            )
            workloads.append(
                Workload(
                    name=w.name,
                    component=w.component,
                    kind=w.kind,
                    role=w.role,
                    replicas=w.replicas,
                    update_strategy="OnDelete" if w.kind == "StatefulSet" else "RollingUpdate",
                    update_revision=w.update_revision,
                    target_version=w.target_version,
                    previous_version=w.previous_version,
                    paused=w.paused,
                    max_surge=w.max_surge,
                    max_unavailable=0,
                    tier=w.tier,
                    pods=pods,
                    annotations=tuple(sorted(w.annotations.items())),
                )
            )
        return tuple(workloads)
