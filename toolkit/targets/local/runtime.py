"""The node agent's pod runtime: which pods run as real processes, and the machinery they share.

A pod is *runnable* when every one of its container images, init containers included, is a runnable image
(launcher.RunnableImages: repository -> host directory) and no image tag ends in `-bad` (the agent's convention for
a broken image). Runnable pods are run by a PodWorker each (podworker.py); every other pod keeps the agent's
simulated behaviour as a whole. So a pod that mixes a runnable image with one that cannot run here stays simulated:
on `local` the Kafka brokers' and Elasticsearch nodes' pods, whose init containers use the toolkit's own image
(zone lookup) but whose servers are the simulated data plane; running only their init container would leave them
stuck forever. A container whose image stops being runnable while its pod runs (the mapping removed) waits in
ErrImageNeverPull, naming the images the agent runs: nothing is ever faked for a runnable pod.

`start()`:
1. asks the host what is missing (network.HostNetwork.support_problem); with a problem the runtime still starts,
   and every runnable pod waits in CreatePodSandboxError with that sentence;
2. removes what a killed agent of this cluster left: network namespaces and veths named `tkl<N>-*` (their
   processes killed first), pod directories (volumes) under the state directory;
3. brings up the bridge and the Service proxy (services.py) and waits for its first Service/Endpoints list.
`stop()` kills every pod's processes (no API writes: the pods stay as they are, a restarted agent takes them over),
removes every sandbox, the root Service table and the bridge when nothing else is attached to it.

Pod IPs (`IpAllocator`): node k hands out 10.(128+N).k.2-254, never one that is held, preferring the one a pod
already reports (an agent restart keeps addresses); released when the pod is gone.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.targets.local.container import Backoff
from toolkit.targets.local.launcher import RunnableImages
from toolkit.targets.local.network import ClusterNetwork, HostNetwork, NetworkError
from toolkit.targets.local.podspec import image_repository
from toolkit.targets.local.podworker import PodContext, PodWorker
from toolkit.targets.local.services import ServiceProxy

LOG = logging.getLogger(__name__)
JsonDict = dict[str, Any]
BAD_TAG_SUFFIX = "-bad"


class IpAllocator:
    """Pod IPs per node (see the module docstring); thread-safe."""

    def __init__(self, node_prefixes: Mapping[str, str]) -> None:
        self._prefixes = dict(node_prefixes)  # node name -> first three octets
        self._held: dict[str, str] = {}  # uid -> IP
        self._next = dict.fromkeys(self._prefixes, 2)
        self._lock = threading.Lock()

    def claim(self, uid: str, node: str, preferred: str | None = None) -> str:
        with self._lock:
            if uid in self._held:
                return self._held[uid]
            in_use = set(self._held.values())
            prefix = self._prefixes[node]
            if preferred and preferred not in in_use and preferred.startswith(prefix + "."):
                self._held[uid] = preferred
                return preferred
            for _ in range(253):
                suffix = self._next[node]
                self._next[node] = 2 if suffix >= 254 else suffix + 1
                address = f"{prefix}.{suffix}"
                if address not in in_use:
                    self._held[uid] = address
                    return address
        raise NetworkError(f"node {node}: all 253 pod addresses of {prefix}.0/24 are held; delete pods first")

    def add_node(self, node: str, prefix: str) -> None:
        """A node registered after the start (the node pool surged one)."""
        with self._lock:
            self._prefixes.setdefault(node, prefix)
            self._next.setdefault(node, 2)

    def release(self, uid: str) -> None:
        with self._lock:
            self._held.pop(uid, None)

    def held(self) -> dict[str, str]:
        with self._lock:
            return dict(self._held)


@dataclass
class RuntimeSettings:
    """How the runtime behaves (the agent's settings carry one)."""

    images: Mapping[str, Path] = field(default_factory=dict)  # repository[:tag] -> directory
    backoff_initial_seconds: float = 10.0
    backoff_max_seconds: float = 300.0
    stop_seconds: float = 2.0  # SIGTERM to SIGKILL for a pod's processes when the agent stops


def _bad(image: str) -> bool:
    return image_repository(image)[1].endswith(BAD_TAG_SUFFIX)


class PodRuntime:
    """See the module docstring."""

    def __init__(
        self,
        core: Any,
        network: ClusterNetwork | None,
        state_dir: Path,
        settings: RuntimeSettings,
        node_ips: Mapping[str, str],
        node_prefixes: Mapping[str, str],
        allocatable: Mapping[str, str],
        on_removed: Callable[[str, str, str], None],
        ips: IpAllocator | None = None,
        apiserver: tuple[str, int] | None = None,
    ) -> None:
        self.network = network
        self.state_dir = state_dir
        self.settings = settings
        self.images = RunnableImages(settings.images)
        self.ips = ips or IpAllocator(node_prefixes)
        self.host = HostNetwork(network) if network is not None else None
        self.proxy: ServiceProxy | None = None
        self._core = core
        self._node_ips = dict(node_ips)
        self._allocatable = dict(allocatable)
        self._on_removed = on_removed
        self._apiserver = apiserver
        self._workers: dict[str, PodWorker] = {}
        self._lock = threading.Lock()
        self.problem: str | None = None

    def add_node(self, node: str, node_ip: str, prefix: str) -> None:
        """A node registered after the start (the node pool surged one): its address and pod subnet."""
        self._node_ips[node] = node_ip
        self.ips.add_node(node, prefix)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.network is None or self.host is None:
            self.problem = (
                "the cluster's network is unknown: the control plane's cluster.json records none (a cluster made "
                "before pod networks); recreate it with `toolkit cluster down --wipe` and `toolkit cluster up`"
            )
        else:
            self.problem = self.host.support_problem()
        if self.problem is None and self.host is not None:
            self._clean_leftovers(self.host)
            self.host.ensure_bridge()
            self.proxy = ServiceProxy(self._core, self.host, self.state_dir, self._apiserver)
            self.proxy.start()
            if not self.proxy.wait_synced(30):
                LOG.warning("Service and Endpoints lists did not arrive within 30 s; pods will wait for them")
        else:
            LOG.warning("local pod runtime unavailable: %s", self.problem)

    def _clean_leftovers(self, host: HostNetwork) -> None:
        for name in host.leftover_sandboxes():
            LOG.info("removing leftover pod sandbox %s (an earlier agent was killed)", name)
            host.delete_sandbox(name)
        shutil.rmtree(self.state_dir / "pods", ignore_errors=True)

    def stop(self) -> None:
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for worker in workers:
            worker.kill(self.settings.stop_seconds)
        for worker in workers:
            worker.join(self.settings.stop_seconds + 5)
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        if self.host is not None and self.problem is None:
            for name in self.host.leftover_sandboxes():
                self.host.delete_sandbox(name)
            self.host.remove_bridge_if_unused()

    # -- pods --------------------------------------------------------------------------------------------
    def claims(self, pod: JsonDict) -> bool:
        """True when this runtime runs the pod (see the module docstring)."""
        spec = pod.get("spec") or {}
        containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        if any(_bad(str(c.get("image", ""))) for c in containers):
            return False
        return self.images.runs_all(pod)

    def knows(self, uid: str) -> bool:
        """True while a worker runs the pod or tears its sandbox down (its address is still held)."""
        with self._lock:
            return uid in self._workers

    def worker(self, uid: str) -> PodWorker | None:
        with self._lock:
            return self._workers.get(uid)

    def on_pod(self, kind: str, pod: JsonDict) -> None:
        """One watch event (or a re-list's SYNC) for a pod this runtime claims."""
        metadata = pod["metadata"]
        uid = metadata["uid"]
        with self._lock:
            worker = self._workers.get(uid)
        if kind == "DELETED":
            if worker is not None:
                worker.kill()  # the worker leaves the table when its sandbox is gone (`_finished`)
            else:
                self.ips.release(uid)
            return
        if metadata.get("deletionTimestamp"):
            grace = metadata.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            if worker is None:
                worker = self._admit(pod, terminate_grace=float(grace))
            worker.terminate(float(grace))
            return
        if worker is None:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return  # finished before this agent saw it: nothing runs again
            self._admit(pod)
        else:
            worker.update(pod)

    def forget_missing(self, present: set[str]) -> None:
        """After a re-list: kill the workers of pods that no longer exist."""
        with self._lock:
            gone = [(uid, w) for uid, w in self._workers.items() if uid not in present]
        for _uid, worker in gone:
            worker.kill()

    def _admit(self, pod: JsonDict, terminate_grace: float | None = None) -> PodWorker:
        context = PodContext(
            core=self._core,
            host=self.host if self.problem is None else None,
            proxy=self.proxy,
            images=self.images,
            allocate_ip=self.ips.claim,
            release_ip=self.ips.release,
            node_ip=lambda node: self._node_ips.get(node, ""),
            allocatable=self._allocatable,
            state_dir=self.state_dir,
            backoff=Backoff(self.settings.backoff_initial_seconds, self.settings.backoff_max_seconds),
            problem=self.problem,
            on_removed=self._on_removed,
            on_finished=self._finished,
        )
        worker = PodWorker(context, pod)
        if terminate_grace is not None:  # deleted before this agent ran it: remove it, start nothing
            worker.terminate(terminate_grace)
        with self._lock:
            self._workers[worker.uid] = worker
        worker.start()
        return worker

    def _finished(self, uid: str) -> None:
        with self._lock:
            self._workers.pop(uid, None)
