"""What a platform looks like in one environment: sizing, zones and component versions (plain, typed data).

The same `PlatformSpec` is read for every kind of environment: built into the toolkit for `sim`, `local` and
`kind`, and under the `platform:spec` key of `stacks/Pulumi.<region>.yaml` for each AWS region.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from toolkit import catalog

Tier = Literal["hot", "warm", "cold", "frozen"]
DEDICATED = "toolkit.io/dedicated"  # label and NoSchedule taint key of nodes reserved for one platform


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSpec(_Spec):
    version: str = Field(default_factory=lambda: catalog.load().component("kafka").default)
    controllers: int = Field(3, ge=0, description="dedicated KRaft controllers; 0 with combined=true")
    brokers: int = Field(3, ge=1)
    combined: bool = Field(False, description="controller and broker roles in the same nodes")
    topics: int = Field(4, ge=1, description="platform topics in the simulated data plane")
    partitions_per_topic: int = Field(12, ge=1)
    replication_factor: int = Field(3, ge=1)
    min_insync_replicas: int = Field(2, ge=1)
    storage_gi: int = Field(100, ge=1)
    client_authentication: Literal["tls", "scram-sha-512"] = Field(
        "tls", description="how clients authenticate on the CLIENT listener: mutual TLS, or SCRAM over TLS"
    )

    @model_validator(mode="after")
    def _rules(self) -> KafkaSpec:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"kafka.min_insync_replicas {self.min_insync_replicas} exceeds replication_factor "
                f"{self.replication_factor}: no write could ever succeed; lower min_insync_replicas"
            )
        if not self.combined and self.controllers < 1:
            raise ValueError(
                "kafka.controllers is 0 without combined=true: KRaft needs a controller quorum; "
                "set controllers to 3 (or 1 for a test), or combined: true"
            )
        if self.replication_factor > self.brokers:
            raise ValueError(
                f"kafka.replication_factor {self.replication_factor} needs at least that many brokers "
                f"(have {self.brokers}); add brokers or lower the replication factor"
            )
        return self


class NodeSetSpec(_Spec):
    name: str
    roles: tuple[str, ...]
    replicas: int = Field(3, ge=1)
    tier: Tier | None = None
    storage_gi: int = Field(100, ge=1)


def _default_node_sets() -> tuple[NodeSetSpec, ...]:
    return (
        NodeSetSpec(name="master", roles=("master",), replicas=3, storage_gi=10),
        NodeSetSpec(name="hot", roles=("data_hot", "data_content", "ingest"), replicas=3, tier="hot"),
        NodeSetSpec(name="warm", roles=("data_warm",), replicas=3, tier="warm"),
    )


class SnapshotSpec(_Spec):
    """The region's S3 snapshot repository, from its stack outputs (snapshotBucket, snapshotBucketRegion,
    snapshotWriterRoleArn): deploy annotates the Elasticsearch service account and registers the repository."""

    bucket: str = Field(min_length=3)
    bucket_region: str = Field(min_length=1)
    writer_role_arn: str = Field(min_length=1)


class ElasticsearchSpec(_Spec):
    version: str = Field(default_factory=lambda: catalog.load().component("elasticsearch").default)
    node_sets: tuple[NodeSetSpec, ...] = Field(default_factory=_default_node_sets)
    indices: int = Field(4, ge=1, description="indices in the simulated data plane")
    shards_per_index: int = Field(3, ge=1)
    replicas: int = Field(1, ge=0)
    snapshots: SnapshotSpec | None = Field(None, description="the S3 snapshot repository (regions: stack outputs)")


class WorkersSpec(_Spec):
    version: str = Field(default_factory=lambda: catalog.load().component("workers").default)
    receivers: int = Field(3, ge=1)
    indexers: int = Field(3, ge=1)
    max_surge: int = Field(1, ge=1)
    lag_bound: int = Field(50_000, ge=0, description="consumer lag under which a worker batch counts as caught up")
    syslog_sources: tuple[IPv4Network | IPv6Network, ...] = Field(
        (), description="CIDRs allowed to send syslog to the receivers (a region's default: its own address block)"
    )


class NodePoolSpec(_Spec):
    """Nodes of one role in every zone (a region's node groups, the simulated platform's nodes)."""

    role: str = Field(description="the component whose pods the nodes carry (kafka, elasticsearch, workers)")
    per_zone: int = Field(1, ge=1)
    max_per_zone: int = Field(2, ge=1, description="room to surge a replacement needs at least per_zone + 1")


def _default_pools() -> tuple[NodePoolSpec, ...]:
    return (
        NodePoolSpec(role="kafka", per_zone=1, max_per_zone=2),
        NodePoolSpec(role="elasticsearch", per_zone=2, max_per_zone=3),
        NodePoolSpec(role="workers", per_zone=1, max_per_zone=4),
    )


class KubernetesSpec(_Spec):
    version: str = Field(
        default_factory=lambda: catalog.load().component("kubernetes").default,
        description="the control plane's minor (a region: region:kubernetesVersion)",
    )
    node_pools: tuple[NodePoolSpec, ...] = Field(default_factory=_default_pools)
    node_selector: str = Field(
        "",
        description="label selector of the nodes that carry the platform, on a real cluster ('' = every node)",
    )
    dedicated: str = Field(
        "",
        pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$",
        description=f"the platform runs only on nodes labelled and tainted (NoSchedule) {DEDICATED}=<this>: every "
        "chart pins its pods there (a nodeSelector and a toleration) and a Kubernetes roll covers exactly those "
        "nodes ('' = no dedicated nodes)",
    )

    @model_validator(mode="after")
    def _one_node_selection(self) -> KubernetesSpec:
        if self.dedicated and self.node_selector:
            raise ValueError(
                f"kubernetes.dedicated ({self.dedicated}) and kubernetes.node_selector ({self.node_selector}) are "
                f"both set: dedicated nodes are selected by their label {DEDICATED}={self.dedicated}; remove "
                "node_selector"
            )
        return self

    @property
    def platform_nodes(self) -> str:
        """The label selector of the nodes that carry the platform ('' = every node)."""
        return f"{DEDICATED}={self.dedicated}" if self.dedicated else self.node_selector

    def placement(self) -> dict[str, object]:
        """Chart values that pin every pod to the dedicated nodes (none without dedicated nodes)."""
        if not self.dedicated:
            return {}
        toleration = {"key": DEDICATED, "operator": "Equal", "value": self.dedicated, "effect": "NoSchedule"}
        return {"nodeSelector": {DEDICATED: self.dedicated}, "tolerations": [toleration]}


class PlatformSpec(_Spec):
    namespace: str = "security-platform"
    zones: tuple[str, ...] = ("zone-a", "zone-b", "zone-c")
    kafka: KafkaSpec = Field(default_factory=KafkaSpec)
    elasticsearch: ElasticsearchSpec = Field(default_factory=ElasticsearchSpec)
    workers: WorkersSpec = Field(default_factory=WorkersSpec)
    kubernetes: KubernetesSpec = Field(default_factory=KubernetesSpec)

    @model_validator(mode="after")
    def _versions_known(self) -> PlatformSpec:
        cat = catalog.load()
        for name, version in (
            ("kafka", self.kafka.version),
            ("elasticsearch", self.elasticsearch.version),
            ("workers", self.workers.version),
            ("kubernetes", self.kubernetes.version),
        ):
            if not cat.has_version(name, version):
                known = ", ".join(cat.component(name).sorted_versions())
                raise ValueError(f"{name}.version {version} is not in the catalog (known: {known})")
        return self

    def version_of(self, component: str) -> str:
        return {
            "kafka": self.kafka.version,
            "elasticsearch": self.elasticsearch.version,
            "workers": self.workers.version,
            "kubernetes": self.kubernetes.version,
        }[component]
