"""TLS on the simulated platform: which pod trusts and presents which CA, and which handshakes fail.

Modelled only once certificates are installed (`pki.py`: the platform's Secrets with real X.509 content, made by the
same code as deploy's). A pod loads the Secrets its workload mounts when it starts and keeps them; it trusts the CAs
of their `ca.crt` and presents the issuer of their `tls.crt` (by key identifier). Peers that talk (Kafka nodes with
each other and with the workers, mutual; Elasticsearch nodes with each other, mutual; the indexers with
Elasticsearch, server only) and do not trust what the other presents fail their handshake: a broker then does not
rejoin the ISR of a partition whose leader it cannot reach (`kafka.py`), and every sample counts such pairs
(`tls_failures`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toolkit.targets.sim.pods import SimPod

if TYPE_CHECKING:
    from toolkit.targets.sim.world import World


@dataclass
class SimTlsView:
    """What a Secret gives the pod that mounts it: the key ids of the CAs in its `ca.crt` and of the issuer of its
    `tls.crt` (computed where the Secret is written: toolkit.targets.sim.pki)."""

    trusts: list[str] = field(default_factory=list)
    presents: list[str] = field(default_factory=list)


class TlsModel:
    """The platform's certificates (empty: TLS not modelled): "<namespace>/<secret>" -> key -> base64 value
    (`secrets`), what each Secret gives a pod (`views`), which Secrets each workload's pods mount (`mounts`), and a
    certificate rotation's progress record (`progress`, its JSON). What each pod loaded is on the pod."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.secrets: dict[str, dict[str, str]] = {}
        self.views: dict[str, SimTlsView] = {}
        self.mounts: dict[str, list[str]] = {}
        self.progress = ""
        # the last judgement and the running pods (by uid) it was made for; never saved
        self.judged: tuple[tuple[str, ...], tuple[int, str]] | None = None

    def put_secret(self, key: str, data: dict[str, str], view: SimTlsView) -> None:
        """Write one Secret ("<namespace>/<name>", base64 values) and what it gives a pod; running pods keep what
        they loaded at start (they read their certificates once), new pods load the new content."""
        self.secrets[key] = dict(data)
        self.views[key] = view

    def mount(self, mounts: dict[str, list[str]]) -> None:
        """Which Secrets each workload's pods mount; the pods running now are taken to have loaded them at start."""
        self.mounts = {k: list(v) for k, v in mounts.items()}
        self.judged = None
        for pod in self.world.pods.values():
            pod.trusts, pod.presents = self.loaded(pod.workload)

    def loaded(self, workload: str) -> tuple[list[str], list[str]]:
        """(trusted CA key ids, presented issuer key ids) a pod of `workload` starting now loads: it trusts what
        every mounted Secret's ca.crt holds (each connection uses its own Secret), presents every issuer."""
        views = [self.views[k] for k in self.mounts.get(workload, []) if k in self.views]
        if not views:
            return [], []
        trusts = set(views[0].trusts)
        for view in views[1:]:
            trusts &= set(view.trusts)
        presents = sorted({p for view in views for p in view.presents})
        return sorted(trusts), presents

    @staticmethod
    def ok(a: SimPod, b: SimPod, mutual: bool = True) -> bool:
        """Can client `a` complete a handshake with server `b` (and `b` verify `a`, with mutual TLS)? Pods that
        loaded no certificate are not modelled (always True)."""
        if not a.trusts or not b.trusts:
            return True
        if not set(b.presents) <= set(a.trusts):
            return False
        return not mutual or set(a.presents) <= set(b.trusts)

    def failures(self) -> tuple[int, str]:
        """How many (client, server) pairs of running pods that talk fail their handshake, and the first of them
        ("client -> server", by name). Computed over the distinct certificate sets loaded, not pod by pod."""
        if not self.mounts:
            return 0, ""
        world = self.world
        groups: dict[str, list[SimPod]] = {"kafka": [], "elasticsearch": [], "workers": [], "indexer": []}
        for pod in sorted(world.pods.values(), key=lambda p: p.name):
            if pod.phase != "running" or not pod.trusts:
                continue
            w = world.workloads[pod.workload]
            groups.setdefault(w.component, []).append(pod)
            if w.component == "workers" and w.role == "indexer":
                groups["indexer"].append(pod)
        count, first = 0, ""
        for client_group, server_group, mutual in (
            ("kafka", "kafka", True),
            ("workers", "kafka", True),
            ("elasticsearch", "elasticsearch", True),
            ("indexer", "elasticsearch", False),
        ):
            clients, servers = _by_view(groups[client_group]), _by_view(groups[server_group])
            for c_pods in clients.values():
                for s_pods in servers.values():
                    if self.ok(c_pods[0], s_pods[0], mutual):
                        continue
                    pairs = [(a.name, b.name) for a in c_pods for b in s_pods if a is not b]
                    count += len(pairs)
                    if pairs and not first:
                        first = f"{pairs[0][0]} -> {pairs[0][1]}"
        return count, first

    def sample(self, sample: dict[str, Any]) -> None:
        """Add the handshake failures now to an invariants sample (nothing while TLS is not modelled)."""
        if not self.mounts:
            return
        running = tuple(sorted(p.uid for p in self.world.pods.values() if p.phase == "running"))
        if self.judged is None or self.judged[0] != running:
            self.judged = (running, self.failures())  # what running pods loaded changes only with them
        count, first = self.judged[1]
        sample["tls_failures"] = count
        if first:
            sample["tls_failure"] = first


def _by_view(pods: list[SimPod]) -> dict[tuple[tuple[str, ...], tuple[str, ...]], list[SimPod]]:
    out: dict[tuple[tuple[str, ...], tuple[str, ...]], list[SimPod]] = {}
    for pod in pods:
        out.setdefault((tuple(pod.trusts), tuple(pod.presents)), []).append(pod)
    return out
