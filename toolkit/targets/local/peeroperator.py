"""The local cluster's peer operator: every platform namespace gets its own Kafka + Elasticsearch, owned by the cluster.

On kind or EKS the platform's Kafka and Elasticsearch are pods of the Kafka and Elasticsearch charts; on `local`
those pods are simulated (runtime.py: their servers cannot run here), and the single-node peer (noida-db) behind
stunnel with the platform's own certificates stands in for them (dataplane.py). This operator makes that stand-in
part of the cluster, like the cluster's own Kafka would be: `toolkit cluster up --env local` starts it as a sibling
of the node agent (`python -m toolkit.targets.local.peeroperator --kubeconfig K`, pid file run/peeroperator.pid, log
logs/peeroperator.log; cluster.py), `cluster status` shows it and what it serves, `cluster down` stops it.

What it watches (informer.py reflectors, all namespaces): Services, Secrets and Namespaces. Every name it looks for
comes from `toolkit.config.wiring` for the namespace at hand (`wiring_for(namespace, ...)`: the Kafka bootstrap and
Elasticsearch HTTP Services, the platform CA, `kafka-tls`, `es-tls` and the admin identity's Secrets, the Kafka
release, the topics and the write alias), so the platform may be deployed into any namespace: a namespace is a
platform namespace while it holds one of the two Services.

What it does, per platform namespace (one reconcile loop; every step idempotent, retried after a failure):
1. a peer of its own (dataplane.LocalDataPlane, slot k: network namespace `tkl<N>-peer<k>`, data and files under
   `<state>/network/peers/<namespace>/`), started as soon as one Service below can be published;
2. publishes the Kafka bootstrap Service (its port from the wiring) with Secret `kafka-tls`, mutual TLS against
   the CA of the platform CA Secret, as soon as the Service and both Secrets exist; the Elasticsearch HTTP Service
   with Secret `es-tls` likewise. A changed Secret (rotation) publishes again with the new certificate; a Service
   or Secret that goes away unpublishes; when neither Service remains the peer stops, and when the namespace itself
   is gone the peer's data is deleted too (the namespace's volumes would go with it on any cluster);
3. creates what the charts' setup Jobs create on other kinds (local renders those hook Jobs off: they need running
   brokers and nodes, toolkit/provision/values.py), as the platform's admin identity (its Secrets), TLS verified
   against the platform CA, at the publications' loopback addresses:
   - the Kafka chart's topics (post-install/post-upgrade `platform-setup` Job): names from the wiring, partition
     counts and topic configs from the chart's rendered values, read from the Kafka release itself (Helm's
     release Secret: the chart's values overlaid with what deploy gave it), created if missing, replication 1
     (one broker), again for every new revision of the release. The Job's ACLs are not made: noida-db has none;
   - the index layout behind the write alias of the wiring (the Elasticsearch chart's `apply-templates` Job:
     `toolkit es apply-templates`), replicas 0 (one node).

Why the operator and not `toolkit deploy`: the topics and the alias belong to the data plane's lifecycle, not to one
deploy: a peer restarted after a crash, a namespace deployed by a rehearsal, by `helm` or by the in-cluster
orchestrator Job, and a later chart revision all need them, and only the owner of the peer sees all of those (on
kind and EKS the same job belongs to the charts' hook Jobs, i.e. to the cluster, not to the deploying client). It
also keeps deploy free of any `local` special case: deploy talks to Helm, and the worker pods' readiness (the
receiver's needs Kafka and its topic, the indexer's Elasticsearch) holds because the cluster provides them.

A killed operator's leftovers (peers' network namespaces and every process in them, root-namespace listeners,
publication records) are removed when the next one starts (`dataplane.remove_leftovers`), which then publishes
everything again on the same ports (dataplane.py keeps them), so worker pods reconnect where they were.
A host that cannot run the data plane (not root, stunnel4 or nft missing, noida-db not installed) leaves the
operator running with that one problem in its status, which `cluster up` and `cluster status` print.

Status for others: `<state>/network/peers/status.json` (`read_status`), rewritten after every reconcile.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import hashlib
import json
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.config.wiring import RELEASES, Wiring, wiring_for
from toolkit.targets.local.dataplane import (
    DataPlaneError,
    LocalDataPlane,
    TlsMaterial,
    operator_directories,
    remove_leftovers,
)
from toolkit.targets.local.network import MAX_PEER_SLOTS, HostNetwork, network_of

LOG = logging.getLogger(__name__)
JsonDict = dict[str, Any]
ObjectKey = tuple[str, str]

MODULE = "toolkit.targets.local.peeroperator"
STATUS_FILE = "status.json"
SLOTS_FILE = "slots.json"
RETRY_SECONDS = 2.0
RESYNC_SECONDS = 30.0
HELM_RELEASE_TYPE = "helm.sh/release.v1"
GONE_RELEASE_STATES = ("uninstalling", "uninstalled")


class OperatorError(RuntimeError):
    """The operator cannot do what was asked; the message names the object, the rule and the way out."""


# ---------------------------------------------------------------------------------------------- what is wanted


def platform_wiring(namespace: str) -> Wiring:
    """The wiring's names for a platform in `namespace`. The names the operator reads (Services, Secrets, identities,
    release, topics, alias) do not depend on the platform's shape (client authentication, pools, node sets), which
    the operator reads from the Kafka release's values where it matters."""
    return wiring_for(namespace, "tls", combined=False, es_node_sets=())


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    config: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class NamespaceWant:
    """What one platform namespace needs from the data plane now (`wanted`, pure)."""

    namespace: str
    kafka: tuple[TlsMaterial, bytes] | None = None  # server certificate, client CA
    elasticsearch: TlsMaterial | None = None
    topics: tuple[Topic, ...] | None = None  # None: the Kafka release is not there yet
    release_revision: int = 0
    admin_kafka: Mapping[str, bytes] | None = None  # ca.crt, tls.crt, tls.key of the admin identity
    admin_es: Mapping[str, bytes] | None = None  # username, password of the admin identity
    platform_ca: bytes | None = None  # ca.crt of the platform CA Secret
    waiting: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def publishes(self) -> bool:
        return self.kafka is not None or self.elasticsearch is not None

    @property
    def wiring(self) -> Wiring:
        return platform_wiring(self.namespace)


def _secret_data(secret: JsonDict | None) -> dict[str, bytes] | None:
    if secret is None:
        return None
    out = {}
    for key, value in (secret.get("data") or {}).items():
        with contextlib.suppress(ValueError, TypeError):
            out[str(key)] = base64.b64decode(value)
    return out


def release_values(secret: JsonDict) -> tuple[int, str, JsonDict]:
    """(revision, status, values) of a Helm release Secret (`helm.sh/release.v1`): the chart's values overlaid with
    the release's own (what the chart rendered with). Raises ValueError when the Secret is not one."""
    if secret.get("type") != HELM_RELEASE_TYPE:
        raise ValueError(f"Secret {secret.get('metadata', {}).get('name')} is not a Helm release")
    raw = base64.b64decode(base64.b64decode((secret.get("data") or {})["release"]))
    release = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    values = _overlay((release.get("chart") or {}).get("values") or {}, release.get("config") or {})
    status = str((release.get("info") or {}).get("status", ""))
    return int(release.get("version", 0)), status, values


def _overlay(base: Mapping[str, Any], top: Mapping[str, Any]) -> JsonDict:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _overlay(out[key], value)
        else:
            out[key] = value
    return out


def chart_topics(wiring: Wiring, values: Mapping[str, Any]) -> tuple[Topic, ...]:
    """The topics the Kafka chart's setup Job creates: names from the wiring, partitions and configs from the
    chart's rendered `topics` values (keys `events` and `deadLetters`)."""
    topics = values.get("topics") or {}
    out = []
    for key, name in (("events", wiring.events_topic), ("deadLetters", wiring.dead_letter_topic)):
        spec = topics.get(key) or {}
        rendered = spec.get("name", name)
        if rendered != name:
            raise ValueError(
                f"the Kafka release's topics.{key}.name is {rendered!r}, the wiring names {name!r}: deploy renders the "
                "wiring's names; redeploy with `toolkit deploy`"
            )
        partitions = int(spec.get("partitions") or (values.get("config") or {}).get("numPartitions") or 1)
        config = tuple(sorted((str(k), str(v)) for k, v in (spec.get("config") or {}).items()))
        out.append(Topic(name, partitions, config))
    return tuple(out)


def _latest_release(secrets: Mapping[ObjectKey, JsonDict], namespace: str, release: str) -> JsonDict | None:
    found = [
        s
        for (ns, _name), s in secrets.items()
        if ns == namespace
        and s.get("type") == HELM_RELEASE_TYPE
        and (s.get("metadata", {}).get("labels") or {}).get("name") == release
        and (s.get("metadata", {}).get("labels") or {}).get("owner") == "helm"
    ]

    def revision(secret: JsonDict) -> int:
        try:
            return int((secret.get("metadata", {}).get("labels") or {}).get("version", 0))
        except ValueError:
            return 0

    return max(found, key=revision) if found else None


def _tls(secret: JsonDict | None, reference: str, waiting: list[str], problems: list[str]) -> TlsMaterial | None:
    data = _secret_data(secret)
    if data is None:
        waiting.append(f"Secret {reference}")
        return None
    try:
        return TlsMaterial(
            data.get("tls.crt", b""), data.get("tls.key", b""), data.get("ca.crt"), f"Secret {reference}"
        )
    except DataPlaneError as error:
        problems.append(str(error))
        return None


def wanted(services: Mapping[ObjectKey, JsonDict], secrets: Mapping[ObjectKey, JsonDict]) -> dict[str, NamespaceWant]:
    """Platform namespace -> what it needs, from the Services and Secrets (see the module docstring). Pure."""
    out: dict[str, NamespaceWant] = {}
    namespaces = sorted({ns for ns, _ in services})
    for namespace in namespaces:
        wiring = platform_wiring(namespace)
        has_kafka = (namespace, wiring.kafka_bootstrap.name) in services
        has_es = (namespace, wiring.elasticsearch.name) in services
        if not (has_kafka or has_es):
            continue
        waiting: list[str] = []
        problems: list[str] = []

        def secret(name: str, ns: str = namespace) -> JsonDict | None:
            return secrets.get((ns, name))

        release = _latest_release(secrets, namespace, RELEASES["kafka"])
        values: JsonDict | None = None
        revision = 0
        if release is not None:
            try:
                revision, status, values = release_values(release)
                if status in GONE_RELEASE_STATES:
                    values = None
            except (ValueError, KeyError, OSError, EOFError) as error:
                problems.append(f"the Kafka release {namespace}/{RELEASES['kafka']} cannot be read: {error}")
        auth = str(((values or {}).get("clientAuthentication") or {}).get("type", "tls"))
        ca = (_secret_data(secret(wiring.secrets.ca)) or {}).get("ca.crt")
        if secret(wiring.secrets.ca) is None:
            waiting.append(f"Secret {namespace}/{wiring.secrets.ca}")
        elif ca is None:
            problems.append(f"Secret {namespace}/{wiring.secrets.ca} has no ca.crt: redeploy with `toolkit deploy`")
        kafka = None
        if has_kafka:
            server = _tls(
                secret(wiring.secrets.kafka_tls), f"{namespace}/{wiring.secrets.kafka_tls}", waiting, problems
            )
            if auth != "tls":
                problems.append(
                    f"Kafka of {namespace} is not published: its clients authenticate with {auth} (the Kafka release's "
                    "clientAuthentication), and the local peer (noida-db) has no SASL; use "
                    "kafka.client_authentication: tls on local"
                )
            elif server is not None and ca is not None:
                kafka = (server, ca)
        es = None
        if has_es:
            es = _tls(secret(wiring.secrets.es_tls), f"{namespace}/{wiring.secrets.es_tls}", waiting, problems)
        topics = None
        if values is not None:
            try:
                topics = chart_topics(wiring, values)
            except ValueError as error:
                problems.append(str(error))
        elif has_kafka:
            waiting.append(f"the Kafka release {namespace}/{RELEASES['kafka']}")
        admin_kafka = _secret_data(secret(wiring.admin.kafka_secret))
        admin_es = _secret_data(secret(wiring.admin.es_secret))
        if has_kafka and admin_kafka is None:
            waiting.append(f"Secret {namespace}/{wiring.admin.kafka_secret}")
        if has_es and admin_es is None:
            waiting.append(f"Secret {namespace}/{wiring.admin.es_secret}")
        out[namespace] = NamespaceWant(
            namespace, kafka, es, topics, revision, admin_kafka, admin_es, ca, tuple(waiting), tuple(problems)
        )
    return out


# ---------------------------------------------------------------------------------------------- status


@dataclass(frozen=True)
class NamespaceStatus:
    namespace: str
    slot: int
    peer: JsonDict | None  # netns, address, kafka_port, elasticsearch_port, pid
    kafka: JsonDict | None  # service, port, loopback, advertised, mutual_tls
    elasticsearch: JsonDict | None  # service, port, loopback
    topics: dict[str, int] | None  # created (name -> partitions)
    alias: str | None  # the write alias, once its index layout is applied
    waiting: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        """Both Services published, the topics and the write alias made."""
        return bool(self.kafka and self.elasticsearch and self.topics and self.alias)

    def describe(self) -> str:
        parts = []
        if self.kafka:
            tls = "mutual TLS" if self.kafka.get("mutual_tls") else "TLS"
            parts.append(
                f"Kafka {self.kafka['service']}:{self.kafka['port']} ({tls}; from this host {self.kafka['loopback']})"
            )
        if self.elasticsearch:
            es = self.elasticsearch
            parts.append(f"Elasticsearch {es['service']}:{es['port']} (TLS; from this host https://{es['loopback']})")
        if self.topics:
            parts.append("topics " + ", ".join(f"{name} ({count})" for name, count in sorted(self.topics.items())))
        if self.alias:
            parts.append(f"write alias {self.alias}")
        if self.waiting:
            parts.append("waiting for " + ", ".join(self.waiting))
        parts += [f"problem: {p}" for p in self.problems]
        return f"namespace {self.namespace}: " + ("; ".join(parts) if parts else "nothing published")

    def as_json(self) -> JsonDict:
        return {
            "namespace": self.namespace,
            "slot": self.slot,
            "peer": self.peer,
            "kafka": self.kafka,
            "elasticsearch": self.elasticsearch,
            "topics": self.topics,
            "alias": self.alias,
            "waiting": list(self.waiting),
            "problems": list(self.problems),
            "ready": self.ready,
        }

    @classmethod
    def from_json(cls, data: JsonDict) -> NamespaceStatus:
        return cls(
            str(data["namespace"]), int(data.get("slot", 0)), data.get("peer"), data.get("kafka"),
            data.get("elasticsearch"), data.get("topics"), data.get("alias"), tuple(data.get("waiting") or ()),
            tuple(data.get("problems") or ()),
        )  # fmt: skip


@dataclass(frozen=True)
class OperatorStatus:
    pid: int
    updated: float
    synced: bool
    problem: str | None
    namespaces: dict[str, NamespaceStatus] = field(default_factory=dict)

    def lines(self) -> list[str]:
        if self.problem:
            return [f"data plane unavailable: {self.problem}"]
        if not self.namespaces:
            return ["data plane: no platform namespace yet (`toolkit deploy` makes one)"]
        return [f"data plane: {n.describe()}" for _, n in sorted(self.namespaces.items())]


def status_path(state_dir: Path) -> Path:
    return operator_directories(state_dir) / STATUS_FILE


def read_status(state_dir: Path) -> OperatorStatus | None:
    """What the operator of the cluster in `state_dir` last wrote (None when it never did)."""
    try:
        data = json.loads(status_path(state_dir).read_text())
        return OperatorStatus(
            int(data["pid"]),
            float(data["updated"]),
            bool(data["synced"]),
            data.get("problem"),
            {ns: NamespaceStatus.from_json(n) for ns, n in (data.get("namespaces") or {}).items()},
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def wait_namespace_ready(
    state_dir: Path, namespace: str, timeout: float, alive: Callable[[], bool] | None = None
) -> NamespaceStatus:
    """The namespace's status once the operator reports it ready; OperatorError naming what is still missing after
    `timeout` seconds (or at once when `alive()` says the operator is gone)."""
    deadline = time.monotonic() + timeout
    last: NamespaceStatus | None = None
    status: OperatorStatus | None = None
    while True:
        status = read_status(state_dir)
        if status is not None:
            last = status.namespaces.get(namespace)
            if last is not None and last.ready:
                return last
        if alive is not None and not alive():
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if status is not None and status.problem:
        why = status.problem
    elif last is not None:
        why = last.describe()
    else:
        why = f"the operator has not seen a platform in namespace {namespace}"
    raise OperatorError(
        f"the local data plane of {state_dir} did not make namespace {namespace}'s Kafka and Elasticsearch ready "
        f"within {timeout:.0f} s ({why}); see {state_dir / 'logs' / 'peeroperator.log'}"
    )


# ---------------------------------------------------------------------------------------------- the operator


@dataclass
class _Served:
    """What the operator runs for one namespace."""

    slot: int
    plane: LocalDataPlane
    kafka: str = ""  # fingerprint of what is published ("" = nothing)
    elasticsearch: str = ""
    topics_done: tuple[int, tuple[Topic, ...]] | None = None  # (peer pid, topics)
    alias_done: int = 0  # peer pid
    problems: list[str] = field(default_factory=list)


class PeerOperator:
    """See the module docstring."""

    def __init__(self, kubeconfig: Path, state_dir: Path | None = None) -> None:
        from kubernetes import client, config

        from toolkit.targets.local.informer import Reflector

        self.kubeconfig = kubeconfig
        self.state_dir = (state_dir or Path(kubeconfig).parent).resolve()
        self.network = network_of(self.state_dir)
        self._api_client = config.new_client_from_config(config_file=str(kubeconfig))
        watch_client = config.new_client_from_config(config_file=str(kubeconfig))
        core = client.CoreV1Api(watch_client)
        self._stopping = threading.Event()
        self._changed = threading.Event()
        self._services = Reflector(core.list_service_for_all_namespaces, "Service", self._changed.set, self._stopping)
        self._secrets = Reflector(core.list_secret_for_all_namespaces, "Secret", self._changed.set, self._stopping)
        self._namespaces = Reflector(core.list_namespace, "Namespace", self._changed.set, self._stopping)
        self._threads: list[threading.Thread] = []
        self._served: dict[str, _Served] = {}
        self._wants: dict[str, NamespaceWant] = {}
        self.problem: str | None = None
        self.reconciles = 0

    @property
    def directory(self) -> Path:
        return operator_directories(self.state_dir)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Check the host, remove a killed operator's leftovers, start watching (returns at once)."""
        self.problem = self._host_problem()
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.problem is None and self.network is not None:
            for item in remove_leftovers(self.state_dir, self.network, include_default=False):
                LOG.info("removed leftover of an earlier operator: %s", item)
        else:
            LOG.warning("the local data plane cannot run here: %s", self.problem)
        self._write_status(synced=False)
        loops = [(self._services.run, "services"), (self._secrets.run, "secrets"), (self._namespaces.run, "namespaces")]
        for target, name in [*loops, (self._loop, "reconcile")]:
            thread = threading.Thread(target=target, name=f"peeroperator-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def request_stop(self) -> None:
        self._stopping.set()
        self._changed.set()

    def wait(self) -> None:
        while not self._stopping.wait(1.0):
            pass

    def stop(self) -> None:
        """Stop watching, then every peer and publication (the peers' data stays for the next start)."""
        self.request_stop()
        for reflector in (self._services, self._secrets, self._namespaces):
            reflector.stop()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()
        for namespace in list(self._served):
            self._stop_namespace(namespace, delete_data=False)
        status_path(self.state_dir).unlink(missing_ok=True)

    def _host_problem(self) -> str | None:
        from toolkit.targets.peer import server_binary

        if self.network is None:
            return (
                f"{self.state_dir}: no cluster network recorded in cluster.json; recreate the cluster with "
                "`toolkit cluster down --wipe` and `toolkit cluster up`"
            )
        problem = HostNetwork(self.network).support_problem()
        if problem is not None:
            return problem
        if server_binary() is None:
            return "the single-node peer noida-db is not installed: pip install 'toolkit[local]'"
        return None

    # -- the loop ----------------------------------------------------------------------------------------
    def _loop(self) -> None:
        for reflector in (self._services, self._secrets, self._namespaces):
            while not reflector.synced.wait(1.0):
                if self._stopping.is_set():
                    return
        while not self._stopping.is_set():
            self._changed.clear()
            retry = False
            if self.problem is None:
                try:
                    retry = self.reconcile()
                except Exception:
                    LOG.exception("reconcile failed; retrying")
                    retry = True
            self._write_status(synced=True)
            self._changed.wait(RETRY_SECONDS if retry else RESYNC_SECONDS)
            self._stopping.wait(0.05)  # let a burst of events land in one reconcile

    def reconcile(self) -> bool:
        """One pass over every platform namespace; True when something is left to retry."""
        self.reconciles += 1
        wants = wanted(self._services.snapshot(), self._secrets.snapshot())
        self._wants = wants
        existing = {name for _, name in self._namespaces.snapshot()}
        retry = False
        for namespace in list(self._served):
            want = wants.get(namespace)
            if want is None or not want.publishes:
                self._stop_namespace(namespace, delete_data=namespace not in existing)
        for namespace in self._slots():
            if namespace not in existing and namespace not in self._served:
                self._stop_namespace(namespace, delete_data=True)
        for want in wants.values():
            if want.publishes and not self._stopping.is_set():
                retry = self._serve(want) or retry
        return retry

    def _serve(self, want: NamespaceWant) -> bool:
        namespace, wiring = want.namespace, want.wiring
        served = self._served.get(namespace)
        if served is None:
            slot = self._slot(namespace)
            plane = LocalDataPlane(
                self.state_dir, self._api_client, self.network, slot=slot, directory=self.directory / namespace
            )
            served = self._served[namespace] = _Served(slot, plane)
        served.problems = []
        try:
            if not served.plane.peer_running:
                served.plane.start_peer()
                served.kafka = served.elasticsearch = ""
                LOG.info("%s: peer started in %s", namespace, served.plane.sandbox)
            self._publish(served, want, wiring)
            self._prepare(served, want, wiring)
        except Exception as error:  # reported in the status, retried
            LOG.warning("%s: %s", namespace, error)
            served.problems.append(
                str(error) if isinstance(error, RuntimeError) else f"{type(error).__name__}: {error}"
            )
            return True
        return False

    def _publish(self, served: _Served, want: NamespaceWant, wiring: Wiring) -> None:
        plane, namespace = served.plane, want.namespace
        kafka, es = wiring.kafka_bootstrap, wiring.elasticsearch
        if want.kafka is not None:
            server, ca = want.kafka
            fingerprint = server.fingerprint() + hashlib.sha256(ca).hexdigest()[:16]
            if served.kafka != fingerprint:
                plane.publish(namespace, kafka.name, kafka.port, "kafka", server, client_ca=ca, wait_seconds=0)
                served.kafka, served.topics_done = fingerprint, None
                LOG.info("%s: published %s:%d (Kafka, mutual TLS)", namespace, kafka.name, kafka.port)
        elif served.kafka:
            plane.unpublish(namespace, kafka.name, kafka.port)
            served.kafka, served.topics_done = "", None
            LOG.info("%s: unpublished %s:%d", namespace, kafka.name, kafka.port)
        if want.elasticsearch is not None:
            fingerprint = want.elasticsearch.fingerprint()
            if served.elasticsearch != fingerprint:
                plane.publish(namespace, es.name, es.port, "elasticsearch", want.elasticsearch, wait_seconds=0)
                served.elasticsearch, served.alias_done = fingerprint, 0
                LOG.info("%s: published %s:%d (Elasticsearch, TLS)", namespace, es.name, es.port)
        elif served.elasticsearch:
            plane.unpublish(namespace, es.name, es.port)
            served.elasticsearch, served.alias_done = "", 0
            LOG.info("%s: unpublished %s:%d", namespace, es.name, es.port)

    def _prepare(self, served: _Served, want: NamespaceWant, wiring: Wiring) -> None:
        peer = served.plane.peer
        assert peer is not None
        published = {(p.service, p.port): p for p in served.plane.publications()}
        kafka = published.get((wiring.kafka_bootstrap.name, wiring.kafka_bootstrap.port))
        if kafka is not None and want.topics and want.admin_kafka is not None:
            done = (peer.pid, want.topics)
            if served.topics_done != done:
                self._create_topics(want, kafka.loopback, served)
                served.topics_done = done
        es = published.get((wiring.elasticsearch.name, wiring.elasticsearch.port))
        if es is not None and want.admin_es is not None and served.alias_done != peer.pid:
            self._apply_index_layout(want, es.loopback, served)
            served.alias_done = peer.pid

    def _admin_files(self, served: _Served, data: Mapping[str, bytes], keys: Sequence[str], what: str) -> list[str]:
        missing = [key for key in keys if key not in data]
        if missing:
            raise OperatorError(f"{what} lacks {', '.join(missing)}: redeploy with `toolkit deploy`")
        folder = served.plane.directory / "admin"
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        paths = []
        for key in keys:
            path = folder / f"{what.rsplit('/', 1)[-1]}.{key}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data[key])
            paths.append(str(path))
        return paths

    def _create_topics(self, want: NamespaceWant, bootstrap: str, served: _Served) -> None:
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        from toolkit.config.access import KafkaConnection
        from toolkit.targets.kafka_admin import client_config

        wiring = want.wiring
        assert want.topics is not None and want.admin_kafka is not None
        ca, cert, key = self._admin_files(
            served,
            want.admin_kafka,
            ("ca.crt", "tls.crt", "tls.key"),
            f"Secret {want.namespace}/{wiring.admin.kafka_secret}",
        )
        connection = KafkaConnection(bootstrap=bootstrap, ca_file=ca, cert_file=cert, key_file=key)
        admin = AdminClient(client_config(connection, client_id="toolkit-local-peer-operator"))
        futures = admin.create_topics(
            [
                NewTopic(t.name, num_partitions=t.partitions, replication_factor=1, config=dict(t.config))
                for t in want.topics
            ],
            request_timeout=20,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=30)
                LOG.info("%s: created topic %s", want.namespace, name)
            except KafkaException as error:
                if error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    LOG.info("%s: topic %s exists", want.namespace, name)
                else:
                    raise OperatorError(
                        f"creating topic {name} at {bootstrap} as {wiring.admin.name}: {error}"
                    ) from None

    def _apply_index_layout(self, want: NamespaceWant, loopback: str, served: _Served) -> None:
        from toolkit.config.access import EsConnection
        from toolkit.indices import IndexLayout
        from toolkit.targets.es_admin import client_for
        from toolkit.targets.es_indices import apply_index_management

        wiring = want.wiring
        assert want.admin_es is not None
        if want.platform_ca is None:
            raise OperatorError(
                f"no ca.crt in Secret {want.namespace}/{wiring.secrets.ca}: redeploy with `toolkit deploy`"
            )
        (ca,) = self._admin_files(
            served, {"ca.crt": want.platform_ca}, ("ca.crt",), f"Secret {want.namespace}/{wiring.secrets.ca}"
        )
        secret = f"Secret {want.namespace}/{wiring.admin.es_secret}"
        (password,) = self._admin_files(served, want.admin_es, ("password",), secret)
        if "username" not in want.admin_es:
            raise OperatorError(f"{secret} lacks username: redeploy with `toolkit deploy`")
        username = want.admin_es["username"].decode()
        connection = EsConnection(url=f"https://{loopback}", ca_file=ca, username=username, password_file=password)
        client = client_for(connection, request_timeout=30)
        try:
            result = apply_index_management(client, IndexLayout(alias=wiring.write_alias, replicas=0))
        finally:
            client.close()
        LOG.info(
            "%s: index layout of %s: %s", want.namespace, wiring.write_alias, "; ".join(result.actions) or "as wanted"
        )

    def _stop_namespace(self, namespace: str, delete_data: bool) -> None:
        served = self._served.pop(namespace, None)
        if served is not None:
            try:
                served.plane.stop()
            except Exception as error:  # a stop must go on with the others
                LOG.warning("%s: stopping the peer: %s", namespace, error)
            LOG.info("%s: peer stopped%s", namespace, " and its data deleted (namespace gone)" if delete_data else "")
        if delete_data:
            shutil.rmtree(self.directory / namespace, ignore_errors=True)
            slots = self._slots()
            if slots.pop(namespace, None) is not None:
                self._save_slots(slots)

    # -- slots -------------------------------------------------------------------------------------------
    def _slots(self) -> dict[str, int]:
        try:
            data = json.loads((self.directory / SLOTS_FILE).read_text())
            return {str(k): int(v) for k, v in data.items()}
        except (OSError, ValueError, AttributeError, TypeError):
            return {}

    def _save_slots(self, slots: Mapping[str, int]) -> None:
        path = self.directory / SLOTS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(dict(sorted(slots.items())), indent=2) + "\n")
        temporary.replace(path)

    def _slot(self, namespace: str) -> int:
        """The namespace's peer slot: the one it had (so its address stays), else the lowest free one."""
        slots = self._slots()
        if namespace in slots:
            return slots[namespace]
        taken = set(slots.values())
        free = next((k for k in range(1, MAX_PEER_SLOTS + 1) if k not in taken), None)
        if free is None:
            raise OperatorError(
                f"namespace {namespace}: all {MAX_PEER_SLOTS} peer slots of this cluster are taken; delete platform "
                "namespaces you no longer need"
            )
        slots[namespace] = free
        self._save_slots(slots)
        return free

    # -- status ------------------------------------------------------------------------------------------
    def namespace_status(self, namespace: str) -> NamespaceStatus:
        want = self._wants.get(namespace) or NamespaceWant(namespace)
        served = self._served.get(namespace)
        wiring = platform_wiring(namespace)
        peer_json = kafka_json = es_json = None
        topics = alias = None
        problems = list(want.problems)
        slot = 0
        if served is not None:
            slot = served.slot
            problems += served.problems
            peer = served.plane.peer
            if peer is not None:
                peer_json = {
                    "netns": peer.netns, "address": peer.address, "kafka_port": peer.kafka_port,
                    "elasticsearch_port": peer.elasticsearch_port, "pid": peer.pid,
                }  # fmt: skip
            for p in served.plane.publications():
                entry = {"service": p.service, "port": p.port, "loopback": p.loopback, "mutual_tls": p.mutual_tls}
                if p.backend == "kafka" and p.service == wiring.kafka_bootstrap.name:
                    kafka_json = {**entry, "advertised": p.advertised}
                elif p.backend == "elasticsearch" and p.service == wiring.elasticsearch.name:
                    es_json = entry
            if served.topics_done is not None:
                topics = {t.name: t.partitions for t in served.topics_done[1]}
            if served.alias_done:
                alias = wiring.write_alias
        return NamespaceStatus(
            namespace, slot, peer_json, kafka_json, es_json, topics, alias, want.waiting, tuple(problems)
        )

    def _write_status(self, synced: bool) -> None:
        namespaces = sorted(set(self._wants) | set(self._served))
        document = {
            "pid": os.getpid(),
            "updated": time.time(),
            "synced": synced,
            "problem": self.problem,
            "namespaces": {ns: self.namespace_status(ns).as_json() for ns in namespaces},
        }
        path = status_path(self.state_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(document, indent=2) + "\n")
        temporary.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    """Process mode: run the operator until SIGTERM or SIGINT, then stop every peer it runs."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--kubeconfig", type=Path, required=True, help="admin kubeconfig of the local cluster")
    parser.add_argument("--log-level", default="INFO")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=arguments.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)  # one line per request otherwise
    operator = PeerOperator(arguments.kubeconfig)

    def request_stop(signum: int, _frame: object) -> None:
        LOG.info("signal %d: stopping", signum)
        operator.request_stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    operator.start()
    operator.wait()
    operator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
