"""Open the target of a real environment: `open_real_target(env)` is a context manager yielding a `Target`.

- kind / kube: `KubeTarget` = workloads, lease and audit through the Kubernetes API (toolkit.targets.kube) +
  `RealDataPlane` = Kafka through its admin API and the tools in a broker pod (toolkit.targets.kafka_admin) and
  Elasticsearch through its REST API (toolkit.targets.es_admin), at the environment's endpoints.
- local: `LocalTarget` = the same Kubernetes side on the local control plane + the simulated data plane that
  follows the real pods (toolkit.targets.dataplane); `simulated` is True and every output says so.
The Kubernetes client is configured from the environment's kubeconfig and context; inside a pod with neither, from
the pod's service account (the orchestrator Job, toolkit/targets/orchestrator-job.yaml).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.config.environments import Environment
from toolkit.model import Component, EsState, KafkaNode, KafkaRole, KafkaState, WorkersState, Workload
from toolkit.targets.kube import (
    DataPlane,
    KubeAuditLog,
    KubeLeaseStore,
    KubeTarget,
    KubeWorkloads,
    PodWatch,
    WatchingClock,
    api_client_for,
    pod_ordinal,
)

if TYPE_CHECKING:
    from toolkit.targets.es_admin import EsAdmin
    from toolkit.targets.kafka_admin import KafkaAdmin


def _usage(message: str) -> Exception:
    from toolkit.operations import UsageError

    return UsageError(message)


class LocalTarget(KubeTarget):
    """The local environment: real Kubernetes objects, simulated Kafka/Elasticsearch following the real pods."""


class RealDataPlane:
    """Kafka and Elasticsearch of a real cluster, through their adapters."""

    simulated = False
    description = "real Kafka and Elasticsearch"

    def __init__(self, kafka: KafkaAdmin | None, es: EsAdmin | None) -> None:
        self.kafka = kafka
        self.es = es

    def observe(
        self, workloads: tuple[Workload, ...], node_id_base: dict[str, int], now: float
    ) -> tuple[KafkaState, EsState, WorkersState]:
        kafka_workloads = tuple(w for w in workloads if w.component is Component.KAFKA)
        members = kafka_members(kafka_workloads, node_id_base)
        kafka = self.kafka.observe(members) if self.kafka is not None and members else KafkaState()
        workers = self.kafka.workers_lag() if self.kafka is not None and members else WorkersState()
        es_pods = tuple(p.name for w in workloads if w.component is Component.ELASTICSEARCH for p in w.pods)
        es = self.es.observe(es_pods) if self.es is not None and es_pods else EsState()
        return kafka, es, workers

    def _kafka(self) -> KafkaAdmin:
        if self.kafka is None:
            raise _usage("no Kafka endpoint in this environment: set endpoints.kafka_bootstrap")
        return self.kafka

    def _es(self) -> EsAdmin:
        if self.es is None:
            raise _usage("no Elasticsearch endpoint in this environment: set endpoints.elasticsearch_url")
        return self.es

    def elect_preferred_leaders(self) -> None:
        self._kafka().elect_preferred_leaders()

    def finalize_metadata_version(self, metadata_version: str) -> None:
        self._kafka().finalize_metadata_version(metadata_version)

    def es_prepare_restart(self, node: str, method: str) -> None:
        self._es().prepare_restart(node, method)

    def es_shutdown_complete(self, node: str) -> bool:
        return self._es().shutdown_complete(node)

    def es_finish_restart(self, node: str, method: str) -> None:
        self._es().finish_restart(node, method)

    def es_reset_allocation(self) -> None:
        self._es().reset_allocation()

    def es_remove_shutdown(self, node: str) -> None:
        self._es().remove_shutdown(node)

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
            raise _usage(
                f"local environment {env.name} is not running (no kubeconfig at {path}): "
                f"start it with `toolkit cluster up --env {env.name}`"
            )
        return str(path), env.kube_context
    if env.kubeconfig and not Path(env.kubeconfig).expanduser().is_file():
        raise _usage(
            f"environment {env.name}: kubeconfig {env.kubeconfig} does not exist; fix `kubeconfig:` in {env.source}"
        )
    return (str(Path(env.kubeconfig).expanduser()) if env.kubeconfig else None), env.kube_context


@contextlib.contextmanager
def open_real_target(env: Environment) -> Iterator[KubeTarget]:
    """Build the target of a local, kind or kube environment; close its connections when the block ends."""
    if env.kind not in ("local", "kind", "kube"):
        raise _usage(f"environment {env.name} is of kind {env.kind}: only local, kind and kube have real targets")
    kubeconfig, context = _kubeconfig_for(env)
    try:
        api = api_client_for(kubeconfig, context)
    except Exception as exc:  # kubeconfig parse errors, unknown context: say which and how to fix
        raise _usage(
            f"environment {env.name}: cannot configure a Kubernetes client from kubeconfig "
            f"{kubeconfig or '(default)'} context {context or '(current)'}: {exc}"
        ) from None
    namespace = env.platform.namespace
    workloads = KubeWorkloads(api, namespace)
    data_plane: DataPlane
    if env.kind == "local":
        from toolkit.targets.dataplane import SimulatedDataPlane
        from toolkit.targets.sim import params_from

        try:
            params = params_from(env.sim)
        except ValueError as exc:
            raise _usage(f"environment {env.name} ({env.source}): {exc}") from None
        store = env.state_dir() / f"dataplane-{namespace}.json"
        data_plane = SimulatedDataPlane(env.name, env.platform, params, store)
        target_class: type[KubeTarget] = LocalTarget
    else:
        from toolkit.targets.es_admin import EsAdmin, EsConfigError
        from toolkit.targets.kafka_admin import KafkaAdmin, KafkaConfigError

        try:
            kafka = KafkaAdmin.from_endpoints(env.endpoints, workloads) if env.endpoints.kafka_bootstrap else None
            es = EsAdmin.from_endpoints(env.endpoints) if env.endpoints.elasticsearch_url else None
        except (KafkaConfigError, EsConfigError) as exc:
            raise _usage(f"environment {env.name} ({env.source}): {exc}") from None
        data_plane = RealDataPlane(kafka, es)
        target_class = KubeTarget
    pod_watch = PodWatch(api, namespace).start()  # only once nothing above can refuse the environment
    target = target_class(
        env.name,
        workloads,
        KubeLeaseStore(api, namespace),
        KubeAuditLog(api, namespace),
        data_plane,
        clock=WatchingClock(pod_watch),
    )
    try:
        yield target
    finally:
        pod_watch.stop()
        target.close()
        api.close()
