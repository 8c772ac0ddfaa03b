"""Kafka adapter: observe a KRaft cluster into `KafkaState`; preferred-leader election; metadata.version finalisation.

Where each observation comes from (see /work/shared/reference/upgrade-gates.md)
- brokers that answer: DescribeCluster (confluent-kafka `AdminClient.describe_cluster`) - a registered, unfenced
  broker is listed; controllers answer when they are voters of the quorum.
- topics, partitions, replicas, ISR, leader: Metadata (`list_topics`); min.insync.replicas and
  unclean.leader.election.enable: DescribeConfigs per topic.
- active controller and voters' lag: DescribeQuorum, and metadata.version: the finalized feature level ApiVersions
  reports, raised with UpdateFeatures. confluent-kafka (librdkafka) implements none of the three, so they go through
  kafka-python's admin client (`KafkaQuorum`), with the SAME connection and identity (the orchestrator's own
  principal: Describe and Alter on the cluster), never through a broker pod: exec into a broker would reach its
  super-user certificate. A voter's lag is the leader's log end offset minus its own (as kafka-metadata-quorum.sh
  computes it); it is caught up at most `VOTER_CAUGHT_UP_LAG` records behind. The wire carries metadata.version as a
  feature level; the catalog maps levels to releases (`metadata_level`).
- BrokerState: the broker's metrics, not the admin API. The JMX MBean
  `kafka.server:type=KafkaServer,name=BrokerState` (0 NOT_RUNNING, 1 STARTING, 2 RECOVERY, 3 RUNNING,
  6 PENDING_CONTROLLED_SHUTDOWN, 7 SHUTTING_DOWN) exported in Prometheus text by the JMX exporter
  (`kafka_server_kafkaserver_brokerstate` or `kafka_server_kafkaserver_brokerstate_value`, depending on its rules),
  read through the apiserver's pod proxy (`/api/v1/namespaces/NS/pods/POD:PORT/proxy/metrics`, port
  `TOOLKIT_KAFKA_METRICS_PORT`, default 9404). Without a metrics endpoint the state is inferred and says so in the
  code path: a broker listed by DescribeCluster is RUNNING, otherwise NOT_RUNNING (log recovery is then invisible).
- worker lag: the consumer group's committed offsets (ListConsumerGroupOffsets) against the latest offsets
  (ListOffsets) of the same partitions.

Security: a `KafkaConnection` (from `toolkit.targets.discovery`): TLS with hostname verification whenever a CA or a
client certificate is given; mutual TLS with the orchestrator's own client certificate, or SCRAM with its password
read from a file. `client_config` is the one place librdkafka settings are built.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import ElectionType, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    OffsetSpec,
    ResourceType,
)

from toolkit.config.access import KafkaConnection
from toolkit.engine.ports import ActionError
from toolkit.model import BrokerState, KafkaNode, KafkaState, Partition, Topic, Voter, WorkersState

VOTER_CAUGHT_UP_LAG = 10
DEFAULT_METRICS_PORT = 9404
DEFAULT_CONSUMER_GROUP = "toolkit-indexer"
LAG_UNKNOWN = 1 << 40  # reported when the group's offsets cannot be read: no lag bound passes it
BROKER_STATE_CODES = {
    0: BrokerState.NOT_RUNNING,
    1: BrokerState.STARTING,
    2: BrokerState.RECOVERY,
    3: BrokerState.RUNNING,
    6: BrokerState.PENDING_CONTROLLED_SHUTDOWN,
    7: BrokerState.SHUTTING_DOWN,
    127: BrokerState.UNKNOWN,
}
BROKER_STATE_METRIC = re.compile(r"^kafka_server_kafkaserver_brokerstate(?:_value)?(?:\{[^}]*\})?\s+(\S+)", re.I | re.M)


class KafkaConfigError(ValueError):
    """The environment's Kafka endpoint settings are incomplete (the message names the setting)."""


def read_secret_file(path: str, what: str) -> str:
    """The content of a secret file (one trailing newline stripped), or a KafkaConfigError naming it."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().removesuffix("\n")
    except OSError as exc:
        raise KafkaConfigError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None


def client_config(connection: KafkaConnection, timeout_ms: int = 10_000, client_id: str = "toolkit") -> dict[str, Any]:
    """librdkafka settings for `connection` (TLS with hostname verification whenever TLS is on)."""
    conf: dict[str, Any] = {
        "bootstrap.servers": connection.bootstrap,
        "socket.timeout.ms": timeout_ms,
        "client.id": client_id,
        "security.protocol": connection.security_protocol,
    }
    for setting, path, what in (
        ("ssl.ca.location", connection.ca_file, "CA file"),
        ("ssl.certificate.location", connection.cert_file, "client certificate"),
        ("ssl.key.location", connection.key_file, "client key"),
    ):
        if path:
            if not os.path.isfile(path):
                raise KafkaConfigError(f"kafka {what} {path} does not exist")
            conf[setting] = path
    if bool(connection.cert_file) != bool(connection.key_file):
        raise KafkaConfigError("mutual TLS to kafka needs both a client certificate and its key")
    if connection.tls:
        conf["ssl.endpoint.identification.algorithm"] = "https"
    if connection.sasl_mechanism:
        if not (connection.username and connection.password_file):
            raise KafkaConfigError(f"SASL {connection.sasl_mechanism} needs a username and a password file")
        conf.update(
            {
                "sasl.mechanism": connection.sasl_mechanism,
                "sasl.username": connection.username,
                "sasl.password": read_secret_file(connection.password_file, "kafka password file"),
            }
        )
    return conf


# ---------------------------------------------------------------------------------------------- quorum and features


@dataclass(frozen=True)
class QuorumStatus:
    leader_id: int
    leader_epoch: int
    high_watermark: int
    voters: tuple[int, ...]
    observers: tuple[int, ...]


def quorum_from_response(answer: dict[str, Any]) -> tuple[QuorumStatus, tuple[Voter, ...]]:
    """DescribeQuorum's answer for `__cluster_metadata` partition 0 (kafka-python's `describe_metadata_quorum()`:
    the response as a dict) -> the quorum status and each voter's lag behind the leader."""
    try:
        (partition,) = [p for t in answer["topics"] for p in t["partitions"] if p["partition_index"] == 0]
    except (KeyError, ValueError) as exc:
        raise ValueError(f"DescribeQuorum answer without __cluster_metadata partition 0 ({exc!r})") from None
    if partition.get("error"):
        raise ValueError(f"DescribeQuorum: {partition['error']}")
    voters = partition.get("current_voters") or []
    observers = partition.get("observers") or []
    leader = int(partition["leader_id"])
    ends = {int(v["replica_id"]): int(v["log_end_offset"]) for v in voters}
    leader_end = ends.get(leader, int(partition["high_watermark"]))
    status = QuorumStatus(
        leader_id=leader,
        leader_epoch=int(partition["leader_epoch"]),
        high_watermark=int(partition["high_watermark"]),
        voters=tuple(ends),
        observers=tuple(int(o["replica_id"]) for o in observers),
    )
    out = []
    for vid, end in ends.items():
        lag = max(0, leader_end - end) if end >= 0 else 1 << 31  # -1: the leader has not heard from it
        out.append(Voter(id=vid, lag=lag, caught_up=end >= 0 and lag <= VOTER_CAUGHT_UP_LAG))
    return status, tuple(out)


def metadata_release(level: int, levels: dict[str, int]) -> str:
    """The metadata.version release of a feature level ("" for 0: none finalized; `level N` when the catalog does
    not name it, which no target equals, so the engine finalizes rather than assumes)."""
    if level <= 0:
        return ""
    named = {v: k for k, v in levels.items()}
    return named.get(level, f"level {level}")


def kafka_python_config(connection: KafkaConnection, timeout_ms: int = 10_000) -> dict[str, Any]:
    """kafka-python settings for `connection`: the same endpoint, CA, certificate and password as `client_config`
    (hostname verification on whenever TLS is)."""
    base = client_config(connection, timeout_ms)  # validates files and pairs once, for both clients
    conf: dict[str, Any] = {
        "bootstrap_servers": connection.bootstrap.split(","),
        "client_id": "toolkit-orchestrator",
        "request_timeout_ms": timeout_ms,
        "security_protocol": connection.security_protocol.upper(),
    }
    if connection.tls:
        conf.update(
            {
                "ssl_check_hostname": True,
                "ssl_cafile": base.get("ssl.ca.location"),
                "ssl_certfile": base.get("ssl.certificate.location"),
                "ssl_keyfile": base.get("ssl.key.location"),
            }
        )
    if connection.sasl_mechanism:
        conf.update(
            {
                "sasl_mechanism": connection.sasl_mechanism,
                "sasl_plain_username": base["sasl.username"],
                "sasl_plain_password": base["sasl.password"],
            }
        )
    return conf


class KafkaQuorum:
    """DescribeQuorum, the finalized metadata.version and UpdateFeatures, through kafka-python's admin client with the
    orchestrator's own identity. The client is made on first use and kept."""

    def __init__(self, config: dict[str, Any], levels: dict[str, int]) -> None:
        self.config = config
        self.levels = levels
        self._admin: Any = None

    def _client(self) -> Any:
        if self._admin is None:
            from kafka.admin import KafkaAdminClient
            from kafka.errors import KafkaError as PythonKafkaError

            try:
                self._admin = KafkaAdminClient(**self.config)
            except PythonKafkaError as exc:
                raise ActionError(f"kafka: the quorum client cannot connect: {exc}") from None
        return self._admin

    def _call(self, what: str, call: Callable[[Any], Any]) -> Any:
        from kafka.errors import KafkaError as PythonKafkaError

        try:
            return call(self._client())
        except PythonKafkaError as exc:
            raise ActionError(f"kafka: {what} failed: {type(exc).__name__}: {exc}") from None

    def describe(self) -> tuple[QuorumStatus, tuple[Voter, ...]]:
        return quorum_from_response(self._call("DescribeQuorum", lambda admin: admin.describe_metadata_quorum()))

    def metadata_version(self) -> str:
        features = self._call("ApiVersions (features)", lambda admin: admin.describe_features())
        finalized = (features.get("metadata.version") or {}).get("finalized")
        return metadata_release(int(finalized[1]) if finalized else 0, self.levels)

    def finalize(self, release: str) -> None:
        level = self.levels.get(release)
        if level is None:
            raise ActionError(
                f"metadata.version {release} has no feature level in the catalog (toolkit/catalog/catalog.yaml, "
                "kafka versions' metadata_level): add it before finalizing"
            )
        answer = self._call(
            f"UpdateFeatures metadata.version={release} (level {level})",
            lambda admin: admin.update_features({"metadata.version": level}),
        )
        outcome = answer.get("metadata.version", "OK")
        if outcome != "OK":
            raise ActionError(f"kafka: UpdateFeatures metadata.version={release} (level {level}) refused: {outcome}")

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None


def parse_broker_state(metrics_text: str) -> BrokerState | None:
    """BrokerState from the Prometheus text of the broker's JMX exporter; None when the metric is absent."""
    match = BROKER_STATE_METRIC.search(metrics_text)
    if match is None:
        return None
    try:
        return BROKER_STATE_CODES.get(int(float(match.group(1))), BrokerState.UNKNOWN)
    except ValueError:
        return BrokerState.UNKNOWN


# ---------------------------------------------------------------------------------------------- broker metrics


class PodAccess(Protocol):
    """What the adapter needs from Kubernetes: a pod's metrics through the apiserver's proxy (nothing else)."""

    def pod_metrics(self, pod: str, port: int) -> str | None: ...


# ---------------------------------------------------------------------------------------------- the adapter


class KafkaAdmin:
    """One Kafka cluster (see the module docstring)."""

    def __init__(
        self,
        admin: AdminClient,
        pods: PodAccess | None = None,
        quorum: KafkaQuorum | None = None,
        metrics_port: int | None = DEFAULT_METRICS_PORT,
        consumer_group: str = DEFAULT_CONSUMER_GROUP,
        timeout: float = 10.0,
    ) -> None:
        self.admin = admin
        self.pods = pods
        self.quorum = quorum
        self.metrics_port = metrics_port
        self.consumer_group = consumer_group
        self.timeout = timeout
        self.errors = RecentErrors()
        self.where = "the bootstrap servers"
        self._answered = False  # has the cluster answered this adapter at least once?

    @classmethod
    def connect(
        cls,
        connection: KafkaConnection,
        pods: PodAccess | None = None,
        consumer_group: str = DEFAULT_CONSUMER_GROUP,
        metrics_port: int | None = DEFAULT_METRICS_PORT,
    ) -> KafkaAdmin:
        errors = RecentErrors()
        # librdkafka's own log lines go to a quiet logger: the errors that matter reach `errors` and, from there, the
        # refusal or wait that names them
        config = {**client_config(connection, client_id="toolkit-orchestrator"), "error_cb": errors, "logger": QUIET}
        from toolkit import catalog

        quorum = KafkaQuorum(kafka_python_config(connection), catalog.load().metadata_levels())
        admin = cls(AdminClient(config), pods, quorum, metrics_port=metrics_port, consumer_group=consumer_group)
        admin.errors = errors
        admin.where = connection.bootstrap
        return admin

    def close(self) -> None:
        """AdminClient has no close (dropping the reference ends its threads); the quorum client's socket closes."""
        if self.quorum is not None:
            self.quorum.close()

    # ------------------------------------------------------------------ raw calls

    def _future(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call().result(timeout=self.timeout)
        except KafkaException as exc:
            raise ActionError(f"kafka: {what} failed: {exc.args[0] if exc.args else exc}") from None
        except TimeoutError:
            raise ActionError(f"kafka: {what} got no answer within {self.timeout:.0f} s") from None

    def brokers(self) -> dict[int, str]:
        """Registered brokers that answer: id -> rack ("" when none)."""
        result = self._future("DescribeCluster", lambda: self.admin.describe_cluster(request_timeout=self.timeout))
        return {int(n.id): str(n.rack or "") for n in result.nodes}

    def topics(self) -> tuple[list[Topic], list[Partition]]:
        try:
            metadata = self.admin.list_topics(timeout=self.timeout)
        except KafkaException as exc:
            raise ActionError(f"kafka: Metadata request failed: {exc}") from None
        names = sorted(metadata.topics)
        configs = self.topic_configs(names)
        topics, partitions = [], []
        for name in names:
            tm = metadata.topics[name]
            rf = max((len(p.replicas) for p in tm.partitions.values()), default=0)
            cfg = configs.get(name, {})
            topics.append(
                Topic(
                    name,
                    rf,
                    int(cfg.get("min.insync.replicas", "1") or 1),
                    str(cfg.get("unclean.leader.election.enable", "false")).lower() == "true",
                )
            )
            for pid in sorted(tm.partitions):
                p = tm.partitions[pid]
                partitions.append(
                    Partition(
                        name,
                        pid,
                        tuple(p.replicas),
                        tuple(p.isrs),
                        p.leader if p.leader is not None and p.leader >= 0 else None,
                    )
                )
        return topics, partitions

    def topic_configs(self, names: list[str]) -> dict[str, dict[str, str]]:
        if not names:
            return {}
        resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
        out: dict[str, dict[str, str]] = {}
        for resource, future in self.admin.describe_configs(resources, request_timeout=self.timeout).items():
            try:
                entries = future.result(timeout=self.timeout)
            except KafkaException as exc:
                raise ActionError(f"kafka: DescribeConfigs for topic {resource.name} failed: {exc}") from None
            out[resource.name] = {k: str(v.value) for k, v in entries.items() if v.value is not None}
        return out

    # ------------------------------------------------------------------ quorum and features (kafka-python)

    def _quorum(self) -> KafkaQuorum:
        if self.quorum is None:
            raise ActionError("kafka: no quorum client (DescribeQuorum/UpdateFeatures) was configured")
        return self.quorum

    def describe_quorum(self) -> tuple[QuorumStatus, tuple[Voter, ...]]:
        return self._quorum().describe()

    def metadata_version(self) -> str:
        return self._quorum().metadata_version()

    def finalize_metadata_version(self, metadata_version: str) -> None:
        self._quorum().finalize(metadata_version)

    def broker_state(self, pod: str) -> BrokerState | None:
        if self.pods is None or self.metrics_port is None:
            return None
        text = self.pods.pod_metrics(pod, self.metrics_port)
        return parse_broker_state(text) if text is not None else None

    # ------------------------------------------------------------------ observation and actions

    def observe(self, members: list[KafkaNode]) -> KafkaState:
        """`members`: the nodes the StatefulSets say exist (id, role, pod, rack, version); this fills in who
        answers, their state, the topics, the quorum and metadata.version."""
        try:
            answering = self.brokers()
            topics, partitions = self.topics()
        except ActionError as exc:
            if not self._answered:
                # never answered: nothing about kafka can be judged; the engine refuses to plan on it
                return KafkaState(
                    nodes=tuple(_silent(n) for n in members),
                    unobserved=f"kafka at {self.where} does not answer this orchestrator "
                    f"({self.errors.last() or exc}): check that the address is reachable from here (in the cluster, "
                    "run the orchestrator Job: `toolkit upgrade job`; outside, set access.kafka.bootstrap to an "
                    "external listener), and that the CA and the orchestrator's certificate or password are the "
                    "platform's",
                )
            return KafkaState(nodes=tuple(_silent(n) for n in members))
        self._answered = True
        active: int | None = None
        voters: tuple[Voter, ...] = ()
        metadata_version = ""
        try:
            status, voters = self.describe_quorum()
            active = status.leader_id if status.leader_id >= 0 else None
            metadata_version = self.metadata_version()
        except (ActionError, ValueError):
            pass  # the quorum is not observable now: the quorum gates then wait (no voter is known caught up)
        caught_up = {v.id for v in voters if v.caught_up}
        nodes = []
        for n in members:
            reachable = (n.id in answering) if n.is_broker else (n.id in caught_up)
            state = self.broker_state(n.pod) if reachable else None
            if state is None:
                state = BrokerState.RUNNING if reachable else BrokerState.NOT_RUNNING  # inferred: no metrics
            rack = answering.get(n.id) or n.rack
            nodes.append(KafkaNode(n.id, n.role, n.pod, rack, n.version, state, reachable))
        return KafkaState(
            nodes=tuple(nodes),
            topics=tuple(topics),
            partitions=tuple(partitions),
            active_controller=active,
            voters=voters,
            metadata_version=metadata_version,
        )

    def elect_preferred_leaders(self) -> None:
        """Preferred-leader election for every partition whose leader is not its first replica."""
        _topics, partitions = self.topics()
        wanted = [
            TopicPartition(p.topic, p.partition)
            for p in partitions
            if p.replicas and p.leader != p.replicas[0] and p.replicas[0] in p.isr
        ]
        if not wanted:
            return
        try:
            results = self.admin.elect_leaders(ElectionType.PREFERRED, wanted, request_timeout=self.timeout).result(
                timeout=self.timeout
            )
        except KafkaException as exc:
            raise ActionError(f"kafka: preferred leader election failed: {exc}") from None
        failed = {f"{tp.topic}-{tp.partition}": str(err) for tp, err in results.items() if err is not None}
        failed = {k: v for k, v in failed.items() if "ELECTION_NOT_NEEDED" not in v}
        if failed:
            sample = "; ".join(f"{k}: {v}" for k, v in list(failed.items())[:3])
            raise ActionError(f"kafka: preferred leader election failed for {len(failed)} partitions: {sample}")

    def workers_lag(self) -> WorkersState:
        """Total lag of the workers' consumer group: latest offset - committed offset, per partition it committed."""
        from confluent_kafka import ConsumerGroupTopicPartitions

        try:
            futures = self.admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(self.consumer_group)], request_timeout=self.timeout
            )
            committed = futures[self.consumer_group].result(timeout=self.timeout).topic_partitions or []
            committed = [tp for tp in committed if tp.offset >= 0]
            if not committed:
                return WorkersState(consumer_group=self.consumer_group)
            latest_futures = self.admin.list_offsets(
                {TopicPartition(tp.topic, tp.partition): OffsetSpec.latest() for tp in committed},
                request_timeout=self.timeout,
            )
            latest = {
                (tp.topic, tp.partition): f.result(timeout=self.timeout).offset for tp, f in latest_futures.items()
            }
        except (KafkaException, TimeoutError) as exc:
            # unknown lag must not pass a lag gate: report it as unbounded, with the reason as the partition key
            return WorkersState(self.consumer_group, LAG_UNKNOWN, ((f"unavailable: {exc}", LAG_UNKNOWN),))
        by_partition = tuple(
            (f"{tp.topic}-{tp.partition}", max(0, latest.get((tp.topic, tp.partition), tp.offset) - tp.offset))
            for tp in sorted(committed, key=lambda t: (t.topic, t.partition))
        )
        return WorkersState(self.consumer_group, sum(lag for _, lag in by_partition), by_partition)


QUIET = logging.getLogger("toolkit.kafka.client")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


class RecentErrors:
    """librdkafka's error callback: keeps the last errors (TLS, authentication, transport) for the messages."""

    def __init__(self, keep: int = 5) -> None:
        self._errors: list[str] = []
        self._keep = keep

    def __call__(self, error: KafkaError) -> None:
        self._errors = [*self._errors[-(self._keep - 1) :], f"{error.name()}: {error.str()}"]

    def last(self) -> str:
        return self._errors[-1] if self._errors else ""


def _silent(n: KafkaNode) -> KafkaNode:
    return KafkaNode(n.id, n.role, n.pod, n.rack, n.version, BrokerState.UNKNOWN, False)
