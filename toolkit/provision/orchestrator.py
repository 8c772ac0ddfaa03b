"""The orchestrator inside the cluster: the manifests of a Job that runs `toolkit upgrade run` next to the platform,
derived from the environment's wiring (the same Service names, Secrets and identity the rest of the toolkit uses).

Why a Job: on EKS the platform's Services are reachable only from inside the cluster, and the engine's run must not
depend on a laptop staying awake. The Job's pod
- runs the toolkit's own image (the catalog's `orchestrator_image` at the toolkit's version) with `toolkit upgrade
  run --env <environment> --to ... --output json`, restartPolicy Never and a small backoffLimit: a crashed
  orchestrator is started again and resumes from the observed state (its lease is taken over once it expires);
- reads its environment from a ConfigMap (the Environment resolved by the caller, made in-cluster: kind `kube`, no
  kubeconfig, so the client uses the pod's ServiceAccount; access with discovery off, pointing at files);
- reaches Kafka and Elasticsearch as its own identity (`toolkit-orchestrator`: the Kafka client certificate or SCRAM
  password of Secret `kafka-user-toolkit-orchestrator`, the Elasticsearch user of `es-user-toolkit-orchestrator`),
  mounted as files: the orchestrator needs no right to read Secrets at all;
- has a ServiceAccount whose Role allows exactly what `toolkit.targets.kube` does (observe workloads and pods,
  patch the workloads' version, delete one pod at a time with a UID precondition, the lease, the audit trail, the
  run's status ConfigMap `toolkit-upgrade-status` and Events) and reading Nodes (zones). It cannot evict, read
  Secrets, or touch anything outside its namespace;
- only when the Job targets Kubernetes itself (`--to kubernetes=...`), a second ClusterRole of its own
  (`KUBERNETES_RULES`: what `toolkit.targets.kube.nodes` does) lets it cordon and label nodes, list pods on them in
  every namespace and their PodDisruptionBudgets, and create evictions (`pods/eviction`); still no plain pod delete
  outside its namespace, no Secret. On the local cluster a Role in kube-system adds the node pool's ConfigMap. On
  EKS the AWS side (the EKS and Auto Scaling calls of `toolkit.targets.eks`) comes from the ServiceAccount's IAM role
  (IRSA), not from Kubernetes RBAC.
- shows its run: the status ConfigMap and Events always; Prometheus metrics when asked (a named `metrics` port with
  scrape annotations, a PodMonitor, and/or pushes to a Pushgateway).
`job_manifests(environment, targets, ...)` is pure; `toolkit upgrade job` prints or applies them.
"""

from __future__ import annotations

from typing import Any

from toolkit import catalog as catalog_mod
from toolkit.config.access import Access, EsAccess, KafkaAccess
from toolkit.config.environments import Environment
from toolkit.errors import UsageError
from toolkit.targets.kube.audit import AUDIT_PREFIX  # the names the adapters write
from toolkit.targets.kube.lease import CONTROL_NAME, LEASE_NAME
from toolkit.targets.kube.status import STATUS_NAME

NAME = "toolkit-orchestrator"
JOB_NAME = "toolkit-upgrade"
ENV_DIR = "/etc/toolkit/environments"
KAFKA_DIR = "/etc/toolkit/orchestrator/kafka"
ES_DIR = "/etc/toolkit/orchestrator/es"
CA_DIR = "/etc/toolkit/orchestrator/ca"
RUN_AS = catalog_mod.TOOLKIT_IMAGE_UID

OWN_CONFIG_MAPS = (AUDIT_PREFIX, CONTROL_NAME, STATUS_NAME)
METRICS_PORT_NAME = "metrics"

# What toolkit.targets.kube does, and nothing more (see the docstrings of its modules for each call).
RULES: list[dict[str, Any]] = [
    {"apiGroups": ["apps"], "resources": ["statefulsets", "deployments"], "verbs": ["get", "list", "patch"]},
    {"apiGroups": ["apps"], "resources": ["statefulsets/status"], "verbs": ["get"]},
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["get"]},
    # ConfigMaps: read any, create (the audit's immutable archives; RBAC cannot scope create by name, and a create
    # cannot change an existing object), update ONLY its own (a Kafka or Elasticsearch configuration is not among them)
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "create"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["update"], "resourceNames": list(OWN_CONFIG_MAPS)},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["update"], "resourceNames": [LEASE_NAME]},
    # Events on the pods and workloads it restarts, waits on, halts on (core/v1, which kubectl describe lists);
    # patch: a repeat counts up on the same Event, as kubectl's event recorder does
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
]
NODE_RULES: list[dict[str, Any]] = [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}]
# Kubernetes itself as a component (toolkit.targets.kube.nodes), granted only to a Job that targets it.
KUBERNETES_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": ["get", "list"]},
]
LOCAL_POOL_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["toolkit-local-node-pool"],
        "verbs": ["get", "update"],
    }
]


def in_cluster_environment(environment: Environment) -> Environment:
    """The environment as the Job's pod sees it: no kubeconfig (the pod's ServiceAccount), the release's in-cluster
    Services, and the orchestrator's identity as mounted files (no Secret is read through the API)."""
    wiring = environment.wiring
    scram = wiring.kafka_client_auth == "scram-sha-512"
    kafka = KafkaAccess(
        bootstrap=wiring.kafka_bootstrap.address,
        ca_file=f"{CA_DIR}/ca.crt",
        **(
            {"username": wiring.orchestrator.name, "password_file": f"{KAFKA_DIR}/password"}
            if scram
            else {"cert_file": f"{KAFKA_DIR}/tls.crt", "key_file": f"{KAFKA_DIR}/tls.key"}
        ),
    )
    es = EsAccess(
        url=wiring.elasticsearch_url,
        ca_file=f"{CA_DIR}/ca.crt",
        username=wiring.orchestrator.name,
        password_file=f"{ES_DIR}/password",
    )
    return environment.model_copy(
        update={
            "kind": "kube",
            "kubeconfig": None,
            "kube_context": None,
            "access": Access(kafka=kafka, elasticsearch=es, discover=False),
            "description": f"{environment.name} seen from inside its cluster (the orchestrator Job)",
            "source": f"{ENV_DIR}/{environment.name}.yaml",
        }
    )


def job_manifests(
    environment: Environment,
    targets: dict[str, str],
    extra_args: list[str] | None = None,
    metrics_port: int | None = None,
    pod_monitor: bool = False,
    metrics_push: str | None = None,
) -> list[dict[str, Any]]:
    """ServiceAccount, Role(+Binding), ClusterRole(+Binding) for Nodes, with `kubernetes` among the targets the
    kubernetes-component rights (module docstring), then the environment ConfigMap and the Job (last).

    Metrics, when asked: `metrics_port` serves the run's metrics from the pod (a container port named `metrics` and
    the `prometheus.io/scrape|port|path` annotations), `pod_monitor` adds a Prometheus Operator PodMonitor on that
    port, `metrics_push` pushes them to a Pushgateway at each transition and at the end (the Job is short-lived)."""
    import yaml

    if pod_monitor and metrics_port is None:
        raise UsageError("--pod-monitor scrapes the Job's metrics port: give --metrics-port too (e.g. 9405)")
    if metrics_port is not None and not 1 <= metrics_port <= 65535:
        raise UsageError(f"--metrics-port {metrics_port}: not a TCP port; give 1-65535 (e.g. 9405)")
    ns = environment.platform.namespace
    wiring = environment.wiring
    catalog = catalog_mod.load()
    inside = in_cluster_environment(environment)
    document = inside.model_dump(mode="json", exclude={"source"})
    labels = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "security-data-platform"}
    command = ["toolkit", "upgrade", "run", "--env", environment.name, "--output", "json"]
    for component, version in targets.items():
        command += ["--to", f"{component}={version}"]
    pod_meta: dict[str, Any] = {"labels": labels}
    ports: list[dict[str, Any]] = []
    if metrics_port is not None:
        command += ["--metrics-port", str(metrics_port)]
        ports = [{"name": METRICS_PORT_NAME, "containerPort": metrics_port, "protocol": "TCP"}]
        pod_meta["annotations"] = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(metrics_port),
            "prometheus.io/path": "/metrics",
        }
    if metrics_push:
        command += ["--metrics-push", metrics_push]
    command += list(extra_args or [])
    meta = {"name": NAME, "namespace": ns, "labels": labels}
    cluster_name = f"{ns}-{NAME}-nodes"
    monitors: list[dict[str, Any]] = []
    if pod_monitor:
        monitors.append(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PodMonitor",
                "metadata": {**meta, "labels": dict(labels)},
                "spec": {
                    "selector": {"matchLabels": dict(labels)},
                    "podMetricsEndpoints": [{"port": METRICS_PORT_NAME, "path": "/metrics", "interval": "15s"}],
                },
            }
        )
    extra = kubernetes_rbac(environment, labels) if "kubernetes" in targets else []  # before the Job starts
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": True},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": RULES},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": ns}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": cluster_name, "labels": labels},
            "rules": NODE_RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": cluster_name, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_name},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": ns}],
        },
        *extra,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{NAME}-environment", "namespace": ns, "labels": labels},
            "data": {f"{environment.name}.yaml": yaml.safe_dump(document, sort_keys=False)},
        },
        *monitors,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": JOB_NAME, "namespace": ns, "labels": labels},
            "spec": {
                "backoffLimit": 3,  # a crashed orchestrator starts again and resumes from the observed state
                "activeDeadlineSeconds": 6 * 3600,
                "template": {
                    "metadata": pod_meta,
                    "spec": {
                        "serviceAccountName": NAME,
                        "restartPolicy": "Never",
                        "enableServiceLinks": False,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": RUN_AS,
                            "runAsGroup": RUN_AS,
                            "fsGroup": RUN_AS,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "orchestrator",
                                "image": catalog.orchestrator_ref(),
                                "imagePullPolicy": "IfNotPresent",
                                "command": command,
                                **({"ports": ports} if ports else {}),
                                "env": [
                                    {"name": "TOOLKIT_ENVIRONMENTS_DIR", "value": ENV_DIR},
                                    {"name": "TOOLKIT_STATE_DIR", "value": "/tmp/toolkit-state"},
                                ],
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "resources": {
                                    "requests": {"cpu": "100m", "memory": "256Mi"},
                                    "limits": {"cpu": "1", "memory": "512Mi"},
                                },
                                "volumeMounts": [
                                    {"name": "environment", "mountPath": ENV_DIR, "readOnly": True},
                                    {"name": "kafka-identity", "mountPath": KAFKA_DIR, "readOnly": True},
                                    {"name": "es-identity", "mountPath": ES_DIR, "readOnly": True},
                                    {"name": "platform-ca", "mountPath": CA_DIR, "readOnly": True},
                                    {"name": "tmp", "mountPath": "/tmp"},
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "environment", "configMap": {"name": f"{NAME}-environment"}},
                            {
                                "name": "kafka-identity",
                                "secret": {"secretName": wiring.orchestrator.kafka_secret, "defaultMode": 0o440},
                            },
                            {
                                "name": "es-identity",
                                "secret": {
                                    "secretName": wiring.orchestrator.es_secret,
                                    "defaultMode": 0o440,
                                    "items": [{"key": "password", "path": "password"}],
                                },
                            },
                            {
                                "name": "platform-ca",
                                "secret": {
                                    "secretName": wiring.secrets.ca,
                                    "defaultMode": 0o440,
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                },
                            },
                            {"name": "tmp", "emptyDir": {}},
                        ],
                    },
                },
            },
        },
    ]


def kubernetes_rbac(environment: Environment, labels: dict[str, str]) -> list[dict[str, Any]]:
    """What a Job that targets Kubernetes itself needs on top of the base Role (module docstring): a ClusterRole and
    its binding; on the local cluster a Role for the node pool's ConfigMap in kube-system."""
    ns = environment.platform.namespace
    name = f"{ns}-{NAME}-kubernetes"
    subject = [{"kind": "ServiceAccount", "name": NAME, "namespace": ns}]
    out: list[dict[str, Any]] = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels},
            "rules": KUBERNETES_RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": subject,
        },
    ]
    if environment.kind == "local":
        meta = {"name": name, "namespace": "kube-system", "labels": labels}
        out += [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": LOCAL_POOL_RULES},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": dict(meta),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": subject,
            },
        ]
    return out
