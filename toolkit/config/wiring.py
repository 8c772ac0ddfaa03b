"""The platform's wiring in one place: Helm releases, Service names and ports, Secret names and keys, the workloads'
identities, topics, the consumer group and the write alias. Pure, derived from an environment (its namespace and its
Kafka client authentication); the chart values (`toolkit.provision.values`), the certificate and credential plan
(`playbooks/library/toolkit_platform_secrets.py`), the orchestrator's discovery of endpoints and credentials
(`toolkit.targets.discovery`), the in-cluster orchestrator Job and the rehearsal's clients all read it. Nothing else
names a Service, a Secret or a user.

Identities (one per workload, a role per identity; no workload uses a superuser):
- `syslog-receiver`: Kafka principal that may only write the events and dead-letter topics (and read their limits);
- `indexer`: Kafka principal that may only read the events topic with its group and write the dead-letter topic;
  Elasticsearch user with a role that may only create documents in the platform's indices;
- `toolkit-orchestrator`: Kafka principal limited to describing the cluster, its topics, groups and quorum and
  raising metadata.version; Elasticsearch user with read-only monitoring plus exactly the cluster settings and node
  shutdown calls a restart needs;
- `admin`: the platform's administrator (Kafka super user, Elasticsearch `elastic`), used only by the setup Jobs
  that create topics, ACLs and index templates, and by rehearsals, which act as the platform's owner.
A Kafka identity is a client certificate whose common name is the principal (the CLIENT listener requires mutual
TLS: `tls`), or a SCRAM user whose password is in its Secret (`scram-sha-512`); the Secret of an identity always
holds `ca.crt`, and `tls.crt` + `tls.key` or `username` + `password`. An Elasticsearch identity's Secret holds
`username` and `password`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CLUSTER_DOMAIN = "cluster.local"
KafkaClientAuth = Literal["tls", "scram-sha-512"]

# Helm release of each component; with these names the charts' resource prefix equals the release name.
RELEASES: dict[str, str] = {"kafka": "kafka", "elasticsearch": "elasticsearch", "workers": "ingest-workers"}
KAFKA_CLIENT_PORT = 9094
ES_HTTP_PORT = 9200
SYSLOG_PORTS = {"tls": 6514, "tcp": 601, "udp": 514}  # Service ports; containers listen on tcp/udp + 1000
EVENTS_TOPIC = "security-events"
DEAD_LETTER_TOPIC = "security-events-dead-letters"
INDEXER_GROUP = "indexer"
WRITE_ALIAS = "syslog-events"


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    port: int

    @property
    def host(self) -> str:
        return f"{self.name}.{self.namespace}.svc.{CLUSTER_DOMAIN}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def dns_names(self) -> list[str]:
        """Every name a client in the cluster may use for the Service (what a certificate must carry)."""
        return [self.name, f"{self.name}.{self.namespace}", f"{self.name}.{self.namespace}.svc", self.host]


@dataclass(frozen=True)
class Identity:
    """A workload's identity: its Kafka principal and/or Elasticsearch user, and the Secrets that hold them."""

    name: str
    kafka_secret: str = ""  # "" = no Kafka identity
    es_secret: str = ""  # "" = no Elasticsearch identity
    es_role: str = ""


@dataclass(frozen=True)
class PlatformSecrets:
    ca: str  # ca.crt only: what every client needs to verify the platform's servers
    kafka_tls: str  # brokers' and controllers' certificate + key + ca.crt
    es_tls: str  # Elasticsearch transport + HTTP certificate + key + ca.crt
    syslog_tls: str  # the receivers' syslog-over-TLS server certificate
    es_file_realm: str  # Elasticsearch file-realm users and their roles (hashed passwords only)


@dataclass(frozen=True)
class Wiring:
    namespace: str
    kafka_client_auth: KafkaClientAuth
    kafka_pools: tuple[str, ...]  # StatefulSets of Kafka: controller + broker, or combined
    es_node_sets: tuple[str, ...]
    secrets: PlatformSecrets
    receiver: Identity
    indexer: Identity
    orchestrator: Identity
    admin: Identity
    probe: Identity  # Elasticsearch's own readiness probe (role toolkit_probe: monitor only)

    # ------------------------------------------------------------------ services

    @property
    def kafka_bootstrap(self) -> Service:
        return Service(f"{RELEASES['kafka']}-bootstrap", self.namespace, KAFKA_CLIENT_PORT)

    def kafka_headless(self, pool: str) -> Service:
        return Service(f"{RELEASES['kafka']}-{pool}-headless", self.namespace, KAFKA_CLIENT_PORT)

    @property
    def elasticsearch(self) -> Service:
        return Service(f"{RELEASES['elasticsearch']}-http", self.namespace, ES_HTTP_PORT)

    def es_headless(self, node_set: str) -> Service:
        return Service(f"{RELEASES['elasticsearch']}-{node_set}-headless", self.namespace, ES_HTTP_PORT)

    @property
    def elasticsearch_url(self) -> str:
        return f"https://{self.elasticsearch.address}"

    @property
    def syslog(self) -> Service:
        return Service(f"{RELEASES['workers']}-syslog", self.namespace, SYSLOG_PORTS["tcp"])

    # ------------------------------------------------------------------ data

    events_topic: str = EVENTS_TOPIC
    dead_letter_topic: str = DEAD_LETTER_TOPIC
    indexer_group: str = INDEXER_GROUP
    write_alias: str = WRITE_ALIAS

    @property
    def identities(self) -> tuple[Identity, ...]:
        return (self.receiver, self.indexer, self.orchestrator, self.admin, self.probe)


def wiring_for(
    namespace: str, kafka_client_auth: KafkaClientAuth, combined: bool, es_node_sets: tuple[str, ...]
) -> Wiring:
    """The wiring of a platform in `namespace` (pure; `toolkit.config.environments.Environment.wiring` calls it)."""
    return Wiring(
        namespace=namespace,
        kafka_client_auth=kafka_client_auth,
        kafka_pools=("combined",) if combined else ("controller", "broker"),
        es_node_sets=es_node_sets,
        secrets=PlatformSecrets(
            ca="platform-ca",
            kafka_tls="kafka-tls",
            es_tls="es-tls",
            syslog_tls="syslog-tls",
            es_file_realm="es-file-realm",
        ),
        receiver=Identity("syslog-receiver", kafka_secret="kafka-user-syslog-receiver"),
        indexer=Identity(
            "indexer", kafka_secret="kafka-user-indexer", es_secret="es-user-indexer", es_role="toolkit_indexer"
        ),
        orchestrator=Identity(
            "toolkit-orchestrator",
            kafka_secret="kafka-user-toolkit-orchestrator",
            es_secret="es-user-toolkit-orchestrator",
            es_role="toolkit_orchestrator",
        ),
        admin=Identity("admin", kafka_secret="kafka-user-admin", es_secret="es-elastic-user", es_role="superuser"),
        probe=Identity("toolkit-probe", es_secret="es-user-toolkit-probe", es_role="toolkit_probe"),
    )
