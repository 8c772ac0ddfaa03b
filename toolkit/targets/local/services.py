"""The agent's kube-proxy and cluster DNS: Services and Endpoints made real in every network namespace with clients.

Two reflectors (informer.py) keep Services and Endpoints of all namespaces; the publication records
(publications.py) are re-read when their files change. On any change the sync thread renders (kubeproxy.py):
- one nft ruleset, applied to the root network namespace (table `toolkit_local_<N>`) and to every registered pod
  sandbox (table `toolkit_local`), each only when its text differs from what that namespace has;
- per namespace, the DNS records: written into each pod's hosts file (in place: the container sees the file
  through a bind mount, so it must stay the same inode) and into `<state>/network/hosts/<namespace>` for processes
  of the root namespace (bind it over /etc/hosts in a private mount namespace to use the cluster's names there);
- per pod sandbox, the advertised-address listeners of its namespace's record: one TLS terminator per sandbox
  (stunnel.py, inside the pod's network namespace), restarted when its configuration changes, stopped when the
  record no longer names one.
The `kubernetes` Service: its Endpoints name the apiserver's advertised address, which only exists on paper (the
apiserver listens on 127.0.0.1). With `apiserver` given, the Service's port leads to the bridge gateway at the
apiserver's port, and the root namespace's table forwards what arrives there from the bridge to 127.0.0.1
(`route_localnet` on the bridge only): pods reach the real apiserver at KUBERNETES_SERVICE_HOST:443 with their
service-account token, as in-cluster clients expect; nothing listens beyond loopback.
`add_sandbox()` does all three for a new pod sandbox synchronously, after the reflectors' first list, so a
container starts with its Services, names and listeners in place. `stop()` removes the root table and stops every
listener.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.targets.local import kubeproxy
from toolkit.targets.local.informer import Reflector
from toolkit.targets.local.network import HostNetwork, NetworkError
from toolkit.targets.local.publications import AdvertisedListener, read_records, records_stamp
from toolkit.targets.local.stunnel import Terminator, TerminatorError, TlsService

LOG = logging.getLogger(__name__)
JsonDict = dict[str, Any]
POD_TABLE = "toolkit_local"
RECORD_POLL_SECONDS = 0.5
KUBERNETES_SERVICE = ("default", "kubernetes", 443)


@dataclass
class SandboxView:
    """What the proxy knows of one pod sandbox."""

    uid: str
    namespace: str
    netns: str
    pod: JsonDict
    pod_ip: str
    hosts: Path
    resolv: Path
    directory: Path
    applied_rules: str = ""
    applied_hosts: str = ""
    listener: Terminator | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Rendered:
    rules: str
    root_rules: str
    records: dict[str, list[kubeproxy.DnsRecord]]
    advertised: dict[str, tuple[AdvertisedListener, ...]]


class ServiceProxy:
    """See the module docstring."""

    def __init__(self, core: Any, host: HostNetwork, state_dir: Path, apiserver: tuple[str, int] | None = None) -> None:
        self._host = host
        self._apiserver = apiserver if apiserver and apiserver[0] == "127.0.0.1" else None
        self._state_dir = state_dir
        self._stopping = threading.Event()
        self._changed = threading.Event()
        self._lock = threading.Lock()
        self._sandboxes: dict[str, SandboxView] = {}
        self._root_rules = ""
        self._records_stamp: tuple[tuple[str, int], ...] = ()
        self._namespace_hosts: dict[str, str] = {}
        self._services = Reflector(core.list_service_for_all_namespaces, "Service", self._changed.set, self._stopping)
        self._endpoints = Reflector(
            core.list_endpoints_for_all_namespaces, "Endpoints", self._changed.set, self._stopping
        )
        self._threads: list[threading.Thread] = []

    @property
    def hosts_dir(self) -> Path:
        return self._state_dir / "network" / "hosts"

    def start(self) -> None:
        loops = ((self._services.run, "services"), (self._endpoints.run, "endpoints"), (self._loop, "sync"))
        for target, name in loops:
            thread = threading.Thread(target=target, name=f"nodeagent-proxy-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        self._changed.set()
        self._services.stop()
        self._endpoints.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        with self._lock:
            views = list(self._sandboxes.values())
            self._sandboxes.clear()
        for view in views:
            if view.listener is not None:
                view.listener.stop()
        self._host.delete_root_table()

    def wait_synced(self, timeout: float) -> bool:
        return self._services.synced.wait(timeout) and self._endpoints.synced.wait(timeout)

    def services(self) -> list[JsonDict]:
        return list(self._services.snapshot().values())

    # -- sandboxes ---------------------------------------------------------------------------------------
    def add_sandbox(self, view: SandboxView) -> None:
        """Rules, names and listeners for a new sandbox, now (raises NetworkError / TerminatorError)."""
        rendered = self._render()
        self._apply_to(view, rendered)
        with self._lock:
            self._sandboxes[view.uid] = view

    def remove_sandbox(self, uid: str) -> None:
        with self._lock:
            view = self._sandboxes.pop(uid, None)
        if view is not None and view.listener is not None:
            view.listener.stop()

    # -- rendering and applying --------------------------------------------------------------------------
    def _render(self) -> Rendered:
        services = list(self._services.snapshot().values())
        endpoints = self._endpoints.snapshot()
        publications = read_records(self._state_dir)
        published = {
            (namespace, s.service, s.port): s.target
            for namespace, record in publications.items()
            for s in record.services
        }
        inbound: list[str] = []
        if self._apiserver is not None:
            gateway, port = self._host.network.gateway, self._apiserver[1]
            published[KUBERNETES_SERVICE] = (gateway, port)
            bridge = self._host.network.bridge
            inbound.append(f'iifname "{bridge}" ip daddr {gateway} tcp dport {port} dnat to 127.0.0.1:{port}')
        rules = kubeproxy.service_rules(services, endpoints, published)
        namespaces = {str((s.get("metadata") or {}).get("namespace", "")) for s in services}
        with self._lock:
            namespaces |= {v.namespace for v in self._sandboxes.values()}
        return Rendered(
            rules=kubeproxy.render_ruleset(POD_TABLE, rules),
            root_rules=kubeproxy.render_ruleset(self._host.network.root_table, rules, inbound),
            records={ns: kubeproxy.dns_records(services, endpoints, ns) for ns in sorted(namespaces)},
            advertised={ns: record.advertised for ns, record in publications.items()},
        )

    def _apply_to(self, view: SandboxView, rendered: Rendered) -> None:
        if view.applied_rules != rendered.rules:
            self._host.apply_ruleset(view.netns, rendered.rules)
            view.applied_rules = rendered.rules
        hosts = kubeproxy.hosts_file(view.pod, view.pod_ip, rendered.records.get(view.namespace, []))
        if view.applied_hosts != hosts:
            _write_in_place(view.hosts, hosts)
            view.applied_hosts = hosts
        if not view.resolv.exists():
            _write_in_place(view.resolv, kubeproxy.resolv_conf(view.namespace, view.pod["spec"].get("dnsConfig")))
        self._ensure_listener(view, rendered.advertised.get(view.namespace, ()))

    def _ensure_listener(self, view: SandboxView, advertised: tuple[AdvertisedListener, ...]) -> None:
        services = [
            TlsService(a.name, a.listen, a.connect, a.cert, a.key, a.client_ca)
            for a in advertised
        ]  # fmt: skip
        wanted = Terminator("advertised", view.directory / "listener", services, view.netns) if services else None
        current = view.listener
        if current is not None and wanted is not None and current.config_text == wanted.config_text and current.running:
            return
        if current is not None:
            current.stop()
            view.listener = None
        if wanted is not None:
            wanted.start()
            view.listener = wanted

    def _sync_once(self) -> None:
        rendered = self._render()
        if rendered.root_rules != self._root_rules:
            self._host.apply_ruleset(None, rendered.root_rules)
            self._root_rules = rendered.root_rules
        self.hosts_dir.mkdir(parents=True, exist_ok=True)
        for namespace, records in rendered.records.items():
            text = kubeproxy.namespace_hosts_file(namespace, records)
            if self._namespace_hosts.get(namespace) != text:
                path = self.hosts_dir / namespace
                temporary = path.with_suffix(".tmp")
                temporary.write_text(text)
                temporary.replace(path)
                self._namespace_hosts[namespace] = text
        with self._lock:
            views = list(self._sandboxes.values())
        for view in views:
            try:
                self._apply_to(view, rendered)
            except (NetworkError, TerminatorError, OSError) as error:
                LOG.warning("pod sandbox %s (%s): %s", view.netns, view.namespace, error)

    def _loop(self) -> None:
        self._services.synced.wait()
        while not self._stopping.is_set():
            stamp = records_stamp(self._state_dir)
            if self._changed.is_set() or stamp != self._records_stamp:
                self._changed.clear()
                self._records_stamp = stamp
                self._stopping.wait(0.05)  # let a burst of events land in one sync
                try:
                    self._sync_once()
                except (NetworkError, OSError) as error:
                    LOG.warning("service rules: %s; retrying", error)
                    self._changed.set()
                    self._stopping.wait(1.0)
                continue
            self._changed.wait(RECORD_POLL_SECONDS)


def _write_in_place(path: Path, text: str) -> None:
    """Rewrite a file keeping its inode (a bind mount of it must see the new content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.truncate(0)
        handle.write(text)


def namespace_hosts(state_dir: Path, namespace: str) -> Path:
    """The file of cluster names as seen from `namespace`, kept current by the agent (see the module docstring)."""
    return state_dir / "network" / "hosts" / namespace


def cluster_names_argv(state_dir: Path, namespace: str, argv: Sequence[str]) -> list[str]:
    """`argv` in the root network namespace, resolving the cluster's Service names as a pod of `namespace` does:
    a private mount namespace with the agent's hosts file for that namespace bound over /etc/hosts."""
    hosts = namespace_hosts(state_dir, namespace)
    if not hosts.is_file():
        raise FileNotFoundError(
            f"no cluster names for namespace {namespace} at {hosts}: is the node agent of this cluster running, and "
            "does the namespace have a Service?"
        )
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, str(hosts), *argv]
