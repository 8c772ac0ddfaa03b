"""The chart values of one platform component in one environment: a pure function, shared by the Helm adapter, the
Ansible module and the tests.

`chart_values(environment, component, version=None, overrides=None)` builds, in this order (later wins, maps
merge key by key as Helm merges values, lists and scalars are replaced):
1. the platform spec of the environment: sizes (replicas, storage, node sets, partitions), and its wiring
   (`toolkit.config.wiring`): Service addresses, Secret names, identities, topics, group and alias; with
   dedicated nodes (`platform.kubernetes.dedicated`), every pod's nodeSelector and toleration;
2. what the kind of environment needs (`local`: static volumes of class `toolkit-local` and no hook Jobs, since the
   node agent never completes a pod; `kind`: the `standard` class and the NodePorts of kind-config.yaml; `kube`:
   the `encrypted-gp3` class made by the region stack, forced zone awareness, autoscaled workers);
3. the catalog: `image.repository`/`image.tag` (and Kafka's `metadataVersion`) for `version`, and `toolkitImage.*`
   = the catalog's workers image at the catalog's default workers version (so a workers upgrade never changes the
   Kafka or Elasticsearch pod templates);
4. per-environment `overrides` (read from files by the caller; see `toolkit.provision.helm.overrides_for`).

Invariants: no version or image comes from anywhere but `toolkit.catalog.load()`; the catalog layer is applied after
the spec and kind layers so nothing but an explicit override file can displace it, and an override that tries to is
refused (`UsageError` naming the key): the catalog stays the one source of versions. No I/O happens here.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from toolkit import catalog as catalog_mod
from toolkit.config.environments import Environment
from toolkit.config.platform import NodeSetSpec
from toolkit.errors import UsageError

COMPONENTS = ("kafka", "elasticsearch", "workers")
LOCAL_STORAGE_CLASS = "toolkit-local"
KIND_STORAGE_CLASS = "standard"
KUBE_STORAGE_CLASS = "encrypted-gp3"  # created by the region's Pulumi stack (stacks/platform_region/cluster.py)
KIND_HOST = "127.0.0.1"  # where kind-config.yaml maps the NodePorts on the machine running kind
# Values only the catalog may set; an override file naming one of them is refused.
CATALOG_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "kafka": (("image", "repository"), ("image", "tag"), ("image", "digest"), ("metadataVersion",),
              ("toolkitImage", "repository"), ("toolkitImage", "tag"), ("toolkitImage", "digest")),
    "elasticsearch": (("image", "repository"), ("image", "tag"), ("image", "digest"), ("toolkitImage", "repository"),
                      ("toolkitImage", "tag"), ("toolkitImage", "digest"), ("toolkitImage", "runAsUser")),
    "workers": (("image", "repository"), ("image", "tag"), ("image", "digest")),
}  # fmt: skip


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's merge: maps merge key by key, everything else is replaced. Neither input is modified."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def chart_of(component: str) -> str:
    """The chart directory name of a component (from the catalog)."""
    return catalog_mod.load().component(component).chart


def catalog_values(component: str, version: str) -> dict[str, Any]:
    """Images and versions of `component` at `version`, exactly as the catalog says."""
    cat = catalog_mod.load()
    spec = cat.component(component)
    if version not in spec.versions:
        known = ", ".join(spec.sorted_versions())
        raise UsageError(f"{component} {version} is not in the catalog (known: {known}); pick one of those versions")
    workers = cat.component("workers")
    toolkit_image = workers.image_values(workers.default)
    if component == "kafka":
        info = spec.versions[version]
        if not info.kraft or not info.metadata_version:
            raise UsageError(
                f"kafka {version} has no KRaft metadata version in the catalog: the kafka chart runs KRaft only; "
                "deploy a KRaft version (3.3 or later) and migrate older clusters first"
            )
        return {
            "image": spec.image_values(version),
            "metadataVersion": info.metadata_version,
            "toolkitImage": toolkit_image,
        }
    if component == "elasticsearch":
        return {
            "image": spec.image_values(version),
            "toolkitImage": {**toolkit_image, "runAsUser": catalog_mod.TOOLKIT_IMAGE_UID},
        }
    return {"image": spec.image_values(version)}


def _persistence(environment: Environment) -> dict[str, Any]:
    storage_class = {"local": LOCAL_STORAGE_CLASS, "kind": KIND_STORAGE_CLASS}.get(environment.kind, KUBE_STORAGE_CLASS)
    return {"storageClassName": storage_class, "storageClass": {"create": False}}


def _resources(cpu_request: str, memory: str, cpu_limit: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu_request, "memory": memory}, "limits": {"cpu": cpu_limit, "memory": memory}}


def _small(environment: Environment) -> bool:
    """Laptop-sized containers on local and kind; production sizes on kube."""
    return environment.kind in ("local", "kind")


def _kafka_values(environment: Environment) -> dict[str, Any]:
    spec = environment.platform.kafka
    wiring = environment.wiring
    small = _small(environment)
    scram = wiring.kafka_client_auth == "scram-sha-512"
    users: list[dict[str, Any]] = [
        {"name": wiring.receiver.name, "role": "receiver"},
        {"name": wiring.indexer.name, "role": "indexer", "consumerGroup": wiring.indexer_group},
        {"name": wiring.orchestrator.name, "role": "orchestrator"},
    ]
    if scram:
        secrets = {i.name: i.kafka_secret for i in wiring.identities}
        users = [{**u, "existingSecret": secrets[u["name"]]} for u in users]
    values: dict[str, Any] = {
        "mode": "combined" if spec.combined else "dedicated",
        "broker": {
            "replicas": spec.brokers,
            "storageSize": f"{spec.storage_gi}Gi",
            "resources": _resources("500m", "2Gi", "1") if small else _resources("2", "8Gi", "4"),
        },
        "config": {
            "defaultReplicationFactor": spec.replication_factor,
            "minInsyncReplicas": spec.min_insync_replicas,
            "numPartitions": spec.partitions_per_topic,
        },
        "topics": {
            # The setup Job is a hook: on local no Kafka pod runs a broker, so Helm would wait for it forever.
            "create": environment.kind != "local",
            "events": {"name": wiring.events_topic, "partitions": spec.partitions_per_topic},
            "deadLetters": {"name": wiring.dead_letter_topic},
        },
        "tls": {"enabled": True, "existingSecret": wiring.secrets.kafka_tls},
        "clientAuthentication": {"type": wiring.kafka_client_auth},
        "admin": {"name": wiring.admin.name, **({"existingSecret": wiring.admin.kafka_secret} if scram else {})},
        "users": users,
        "persistence": _persistence(environment),
    }
    if not spec.combined:
        values["controller"] = {
            "replicas": spec.controllers,
            "resources": _resources("250m", "1Gi", "1") if small else _resources("500m", "2Gi", "1"),
        }
    if environment.kind == "kind":
        values["external"] = {"enabled": True, "host": KIND_HOST, "nodePortBase": 30092}
    return values


def _node_set(node_set: NodeSetSpec, small: bool) -> dict[str, Any]:
    master_only = set(node_set.roles) == {"master"}
    if master_only:
        resources = _resources("250m", "1Gi", "1") if small else _resources("1", "4Gi", "2")
    else:
        resources = _resources("500m", "2Gi", "1") if small else _resources("2", "16Gi", "4")
    return {
        "name": node_set.name,
        "roles": list(node_set.roles),
        "tier": node_set.tier or "none",
        "replicas": node_set.replicas,
        "storageSize": f"{node_set.storage_gi}Gi",
        "resources": resources,
    }


def _elasticsearch_values(environment: Environment) -> dict[str, Any]:
    spec = environment.platform.elasticsearch
    wiring = environment.wiring
    values: dict[str, Any] = {
        "nodeSets": [_node_set(s, _small(environment)) for s in spec.node_sets],
        "auth": {
            "existingSecret": wiring.admin.es_secret,
            "fileRealmSecret": wiring.secrets.es_file_realm,
            "probeSecret": wiring.probe.es_secret,
            "indexPatterns": [f"{wiring.write_alias}*"],
        },
        "tls": {"existingSecret": wiring.secrets.es_tls, "http": True},
        "persistence": _persistence(environment),
        # A hook Job: on local no Elasticsearch node runs, so Helm would wait for it forever.
        "templatesJob": {"enabled": environment.kind != "local", "alias": wiring.write_alias},
    }
    if environment.kind == "kube":
        values["zoneAwareness"] = {"enabled": True, "forcedZones": list(environment.platform.zones)}
    if environment.kind == "kind":
        values["http"] = {"nodePort": {"enabled": True, "port": 30920}}
    if spec.snapshots is not None:
        from toolkit.targets.es_snapshots import snapshot_chart_values

        values.update(snapshot_chart_values(spec.snapshots.writer_role_arn, spec.snapshots.bucket_region))
        # S3 (through the VPC's gateway endpoint) and STS (the web identity exchange) have no stable addresses to
        # name: egress on 443 only; the bucket policy and the writer role limit what that reaches.
        values["networkPolicy"] = {"snapshotStore": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}
    return values


def _workers_values(environment: Environment) -> dict[str, Any]:
    spec = environment.platform.workers
    wiring = environment.wiring
    autoscaled = environment.kind == "kube"

    def hpa(replicas: int) -> dict[str, Any]:
        if not autoscaled:
            return {"enabled": False}
        return {"enabled": True, "minReplicas": replicas, "maxReplicas": max(replicas, 4 * replicas)}

    values: dict[str, Any] = {
        "kafka": {
            "bootstrap": wiring.kafka_bootstrap.address,
            "authentication": wiring.kafka_client_auth,
            "eventsTopic": wiring.events_topic,
            "deadLetterTopic": wiring.dead_letter_topic,
            "consumerGroup": wiring.indexer_group,
            "receiver": {"secret": wiring.receiver.kafka_secret, "username": wiring.receiver.name},
            "indexer": {"secret": wiring.indexer.kafka_secret, "username": wiring.indexer.name},
            "port": wiring.kafka_bootstrap.port,
        },
        "elasticsearch": {
            "url": wiring.elasticsearch_url,
            "username": wiring.indexer.name,
            "userSecret": wiring.indexer.es_secret,
            "caSecret": wiring.secrets.ca,
            "writeAlias": wiring.write_alias,
            "port": wiring.elasticsearch.port,
        },
        "receiver": {"replicas": spec.receivers, "tlsSecret": wiring.secrets.syslog_tls, "hpa": hpa(spec.receivers)},
        "indexer": {"replicas": spec.indexers, "hpa": hpa(spec.indexers)},
        "networkPolicy": {"syslogSenders": [{"ipBlock": {"cidr": str(cidr)}} for cidr in spec.syslog_sources]},
    }
    if environment.kind == "kind":
        values["receiver"]["service"] = {"type": "NodePort"}
    return values


def _catalog_keys_overridden(component: str, overrides: Mapping[str, Any]) -> list[str]:
    named = []
    for path in CATALOG_KEYS[component]:
        node: Any = overrides
        for key in path:
            if not isinstance(node, Mapping) or key not in node:
                break
            node = node[key]
        else:
            named.append(".".join(path))
    return named


def chart_values(
    environment: Environment,
    component: str,
    version: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The values to install `component` (kafka | elasticsearch | workers) at `version` (default: the version the
    environment's platform spec names) into `environment`. See the module docstring for the layers."""
    if component not in COMPONENTS:
        raise UsageError(f"unknown platform component {component!r}: expected one of {', '.join(COMPONENTS)}")
    if environment.kind == "sim":
        raise UsageError(
            f"environment {environment.name} is simulated (kind sim): it has no cluster to install charts into; "
            "use a local, kind or kube environment"
        )
    version = version or environment.platform.version_of(component)
    builders = {"kafka": _kafka_values, "elasticsearch": _elasticsearch_values, "workers": _workers_values}
    values = deep_merge(builders[component](environment), environment.platform.kubernetes.placement())
    values = deep_merge(values, catalog_values(component, version))
    if overrides:
        clashing = _catalog_keys_overridden(component, overrides)
        if clashing:
            raise UsageError(
                f"chart value override for {component} in environment {environment.name} sets {', '.join(clashing)}: "
                "images and versions come only from the catalog; set the version in the environment's platform spec "
                "instead and remove those keys from the override file"
            )
        values = deep_merge(values, overrides)
    return values
