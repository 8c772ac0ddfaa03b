"""Open the target of a real environment: `open_real_target(env)` is a context manager yielding a `Target`.

- kind / kube: `KubeTarget` = workloads, lease and audit through the Kubernetes API (toolkit.targets.kube) +
  `RealDataPlane` = Kafka through its admin API and the tools in a broker pod (toolkit.targets.kafka_admin) and
  Elasticsearch through its REST API (toolkit.targets.es_admin), at the environment's endpoints.
- local: `LocalTarget` = the same Kubernetes side on the local control plane + the simulated data plane that
  follows the real pods (toolkit.targets.dataplane); `simulated` is True and every output says so.
The Kubernetes client is configured from the environment's kubeconfig and context; inside a pod with neither, from
the pod's service account (the orchestrator Job: `toolkit upgrade job`, toolkit.provision.orchestrator).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.config.environments import Environment
from toolkit.errors import UsageError
from toolkit.model import Component, EsState, KafkaNode, KafkaRole, KafkaState, PlatformState, WorkersState, Workload
from toolkit.targets.kube.audit import KubeAuditLog
from toolkit.targets.kube.client import PodWatch, WatchingClock, api_client_for
from toolkit.targets.kube.lease import KubeLeaseStore
from toolkit.targets.kube.target import DataPlane, KubeTarget
from toolkit.targets.kube.workloads import KubeWorkloads, pod_ordinal

if TYPE_CHECKING:
    from toolkit.targets.es_admin import EsAdmin
    from toolkit.targets.kafka_admin import KafkaAdmin


class LocalTarget(KubeTarget):
    """The local environment: real Kubernetes objects, simulated Kafka/Elasticsearch following the real pods."""


class RealDataPlane:
    """Kafka and Elasticsearch of a real cluster, through their adapters (each adapter is its component's port)."""

    simulated = False
    description = "real Kafka and Elasticsearch"

    def __init__(self, kafka: KafkaAdmin | None, es: EsAdmin | None, missing: dict[str, str] | None = None) -> None:
        self.kafka = kafka
        self.es = es
        self.missing = dict(missing or {})  # component -> why it has no adapter (what to provide)

    def observe(
        self, workloads: tuple[Workload, ...], node_id_base: dict[str, int], now: float
    ) -> tuple[KafkaState, EsState, WorkersState]:
        kafka_workloads = tuple(w for w in workloads if w.component == Component.KAFKA)
        members = kafka_members(kafka_workloads, node_id_base)
        if self.kafka is None:
            why = self.missing.get("kafka", "no Kafka access is configured for this environment")
            kafka, workers = KafkaState(unobserved=why), WorkersState(unobserved=why)
        elif members:
            kafka, workers = self.kafka.observe(members), self.kafka.workers_lag()
        else:
            kafka, workers = KafkaState(), WorkersState()
        es_pods = tuple(p.name for w in workloads if w.component == Component.ELASTICSEARCH for p in w.pods)
        if self.es is None:
            es = EsState(unobserved=self.missing.get("elasticsearch", "no Elasticsearch access is configured"))
        else:
            es = self.es.observe(es_pods) if es_pods else EsState()
        return kafka, es, workers

    def ports(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.kafka is not None:
            out["kafka"] = self.kafka
        if self.es is not None:
            out["elasticsearch"] = self.es
        return out

    def close(self) -> None:
        if self.kafka is not None:
            self.kafka.close()
        if self.es is not None:
            self.es.close()


def kafka_members(workloads: tuple[Workload, ...], node_id_base: dict[str, int]) -> list[KafkaNode]:
    """The Kafka nodes the cluster should have, from the StatefulSets: node id = the set's
    `toolkit.io/kafka-node-id-base` annotation (0 when absent) + the pod's ordinal; role from the set's role label;
    rack = the pod's zone. State and reachability are filled in by the Kafka adapter."""
    from toolkit.model import BrokerState

    out: list[KafkaNode] = []
    for w in workloads:
        try:
            role = KafkaRole(w.role)
        except ValueError:
            role = KafkaRole.COMBINED
        base = node_id_base.get(w.name, 0)
        for p in w.pods:
            ordinal = pod_ordinal(p.name)
            if ordinal is None:
                continue
            out.append(KafkaNode(base + ordinal, role, p.name, p.zone, p.version, BrokerState.UNKNOWN, False))
    return sorted(out, key=lambda n: n.id)


def _kubeconfig_for(env: Environment) -> tuple[str | None, str | None]:
    if env.kind == "local":
        if env.kubeconfig:
            return env.kubeconfig, env.kube_context
        path = env.state_dir() / "kubeconfig"
        if not path.is_file():
            raise UsageError(
                f"local environment {env.name} is not running (no kubeconfig at {path}): "
                f"start it with `toolkit cluster up --env {env.name}`"
            )
        return str(path), env.kube_context
    if env.kubeconfig and not Path(env.kubeconfig).expanduser().is_file():
        raise UsageError(
            f"environment {env.name}: kubeconfig {env.kubeconfig} does not exist; fix `kubeconfig:` in {env.source}"
        )
    return (str(Path(env.kubeconfig).expanduser()) if env.kubeconfig else None), env.kube_context


def kube_api(env: Environment) -> Any:
    """A Kubernetes client for the environment's kubeconfig and context, or a UsageError saying which and how to
    fix it."""
    kubeconfig, context = _kubeconfig_for(env)
    try:
        return api_client_for(kubeconfig, context)
    except Exception as exc:  # kubeconfig parse errors, unknown context: say which and how to fix
        raise UsageError(
            f"environment {env.name}: cannot configure a Kubernetes client from kubeconfig "
            f"{kubeconfig or '(default)'} context {context or '(current)'}: {exc}"
        ) from None


def kubernetes_of(api: Any, env: Environment) -> Any:
    """Kubernetes itself for `env` (toolkit.targets.kube.nodes): its nodes from the environment's node selector,
    instances from the local node pool or, on a region, EKS; other clusters can be observed but not surged into."""
    from toolkit.targets.kube.nodes import KubeKubernetes

    provider: Any
    declared = ""
    if env.kind == "local":
        from toolkit.targets.local.nodepool import LocalPoolProvider

        provider = LocalPoolProvider(api)
    elif env.eks_cluster:
        from toolkit.targets.eks import EksProvider

        provider = EksProvider(env.eks_cluster, env.aws_region)
        declared = env.platform.kubernetes.version  # region:kubernetesVersion
    else:
        from toolkit.targets.eks import FixedProvider

        provider = FixedProvider(env.name)
    return KubeKubernetes(
        api, env.platform.namespace, env.platform.kubernetes.platform_nodes, provider, declared_version=declared
    )


@contextlib.contextmanager
def open_real_target(
    env: Environment, kubernetes: bool = False, on_observe: Callable[[PlatformState], None] | None = None
) -> Iterator[KubeTarget]:
    """Build the target of a local, kind or kube environment; close its connections when the block ends. With
    `kubernetes`, Kubernetes itself is observed too (and offered as the kubernetes component's port); `on_observe`
    is told every observation."""
    if env.kind not in ("local", "kind", "kube"):
        raise UsageError(f"environment {env.name} is of kind {env.kind}: only local, kind and kube have real targets")
    api = kube_api(env)
    namespace = env.platform.namespace
    workloads = KubeWorkloads(api, namespace)
    secrets_dir = Path(tempfile.mkdtemp(prefix=f"toolkit-{env.name}-access-"))
    data_plane: DataPlane
    if env.kind == "local":
        from toolkit.targets.dataplane import SimulatedDataPlane
        from toolkit.targets.sim import params_for

        store = env.state_dir() / f"dataplane-{namespace}.json"
        data_plane = SimulatedDataPlane(env.name, env.platform, params_for(env), store)
        target_class: type[KubeTarget] = LocalTarget
    else:
        data_plane = connect_data_plane(api, env, workloads, secrets_dir)
        target_class = KubeTarget
    pod_watch = PodWatch(api, namespace).start()  # only once nothing above can refuse the environment
    target = target_class(
        env.name,
        workloads,
        KubeLeaseStore(api, namespace),
        KubeAuditLog(api, namespace),
        data_plane,
        clock=WatchingClock(pod_watch),
        kubernetes=kubernetes_of(api, env) if kubernetes else None,
        on_observe=on_observe,
    )
    try:
        yield target
    finally:
        pod_watch.stop()
        target.close()
        api.close()
        shutil.rmtree(secrets_dir, ignore_errors=True)


@contextlib.contextmanager
def discovered(env: Environment) -> Iterator[Any]:
    """The connections of `env`'s platform (toolkit.targets.discovery.Discovered), their secret files removed when
    the block ends."""
    from toolkit.targets.discovery import discover

    api = kube_api(env) if env.access.discover else None  # discovery off: everything is in the file, no cluster
    folder = Path(tempfile.mkdtemp(prefix=f"toolkit-{env.name}-access-"))
    try:
        yield discover(api, env, folder)
    finally:
        if api is not None:
            api.close()
        shutil.rmtree(folder, ignore_errors=True)


def connect_data_plane(api: Any, env: Environment, workloads: KubeWorkloads, secrets_dir: Path) -> RealDataPlane:
    """Kafka and Elasticsearch adapters at the connections discovered for `env` (toolkit.targets.discovery); what
    cannot be found stays unobserved, with the reason, and the engine refuses to plan on it."""
    from toolkit.targets.discovery import discover
    from toolkit.targets.es_admin import EsAdmin, EsConfigError
    from toolkit.targets.kafka_admin import KafkaAdmin, KafkaConfigError

    found = discover(api, env, secrets_dir)
    missing = dict(found.missing)
    kafka = es = None
    if found.kafka is not None:
        try:
            kafka = KafkaAdmin.connect(found.kafka, workloads, consumer_group=env.wiring.indexer_group)
        except KafkaConfigError as exc:
            missing["kafka"] = f"kafka cannot be observed: {exc}"
    if found.elasticsearch is not None:
        try:
            es = EsAdmin.connect(found.elasticsearch)
        except EsConfigError as exc:
            missing["elasticsearch"] = f"elasticsearch cannot be observed: {exc}"
    return RealDataPlane(kafka, es, missing)
