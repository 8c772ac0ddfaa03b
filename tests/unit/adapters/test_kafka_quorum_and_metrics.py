"""What a single-node peer cannot serve: DescribeQuorum and the finalized metadata.version, in the exact shape
kafka-python gives them (a real DescribeQuorumResponse, encoded and decoded at version 2 with the library's own
schema, then post-processed by the library's own admin code), UpdateFeatures' verdicts, the settings the quorum
client gets (the orchestrator's identity, hostname verification on), and the JMX exporter's BrokerState."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient
from kafka.protocol.admin.cluster import DescribeQuorumResponse

from toolkit import catalog
from toolkit.config.access import KafkaConnection
from toolkit.engine.ports import ActionError
from toolkit.model import BrokerState
from toolkit.targets.kafka_admin import (
    VOTER_CAUGHT_UP_LAG,
    KafkaQuorum,
    QuorumStatus,
    kafka_python_config,
    metadata_release,
    parse_broker_state,
    quorum_from_response,
)

METRICS = """# HELP kafka_server_kafkaserver_brokerstate Attribute exposed for management kafka.server:name=BrokerState,type=KafkaServer,attribute=Value
# TYPE kafka_server_kafkaserver_brokerstate gauge
kafka_server_kafkaserver_brokerstate 2.0
# HELP jvm_threads_current Current thread count of a JVM
jvm_threads_current 61.0
"""  # noqa: E501 - recorded exporter output


def _replica(replica_id: int, end: int) -> Any:
    state = DescribeQuorumResponse.TopicData.PartitionData.ReplicaState
    return state(
        replica_id=replica_id,
        replica_directory_id=uuid.uuid4(),
        log_end_offset=end,
        last_fetch_timestamp=1763813100950,
        last_caught_up_timestamp=1763813100950,
    )


def describe_quorum_answer(voters: list[tuple[int, int]], leader: int, partition_error: int = 0) -> dict[str, Any]:
    """What `KafkaAdminClient.describe_metadata_quorum()` returns for this quorum: the response built with the
    library's classes, through the wire format, then through the library's own post-processing."""
    topic = DescribeQuorumResponse.TopicData
    response = DescribeQuorumResponse(
        error_code=0,
        error_message=None,
        topics=[
            topic(
                topic_name="__cluster_metadata",
                partitions=[
                    topic.PartitionData(
                        partition_index=0,
                        error_code=partition_error,
                        error_message=None,
                        leader_id=leader,
                        leader_epoch=7,
                        high_watermark=max(end for _, end in voters),
                        current_voters=[_replica(i, end) for i, end in voters],
                        observers=[_replica(100, 18244), _replica(101, 18240)],
                    )
                ],
            )
        ],
        nodes=[],
        version=2,
    )
    decoded = DescribeQuorumResponse.decode(bytes(response.encode()), version=2)

    class Manager:
        async def send(self, request: Any) -> Any:
            assert request.topics[0].topic_name == "__cluster_metadata"
            return decoded

    class Admin:
        _manager = Manager()

    return asyncio.run(KafkaAdminClient._async_describe_quorum(Admin(), "__cluster_metadata", 0))


def test_quorum_from_the_library_answer() -> None:
    status, voters = quorum_from_response(describe_quorum_answer([(1, 18244), (0, 18244), (2, 17932)], leader=1))
    assert status == QuorumStatus(1, 7, 18244, (1, 0, 2), (100, 101))
    assert [(v.id, v.lag, v.caught_up) for v in voters] == [(1, 0, True), (0, 0, True), (2, 312, False)]


def test_a_voter_within_the_bound_is_caught_up_and_one_never_heard_from_is_not() -> None:
    answer = describe_quorum_answer([(1, 500), (0, 500 - VOTER_CAUGHT_UP_LAG), (2, -1)], leader=1)
    assert [v.caught_up for v in quorum_from_response(answer)[1]] == [True, True, False]


def test_a_partition_error_is_not_a_quorum() -> None:
    answer = describe_quorum_answer([(1, 5)], leader=1, partition_error=6)  # NOT_LEADER_OR_FOLLOWER
    with pytest.raises(ValueError, match=r"DescribeQuorum: .*(NotLeaderForPartition|LEADER)"):
        quorum_from_response(answer)


def test_metadata_levels_map_to_the_catalogs_releases() -> None:
    levels = catalog.load().metadata_levels()
    assert levels["4.0-IV3"] == 25 and levels["4.1-IV1"] == 27 and levels["3.3-IV3"] == 7
    assert metadata_release(25, levels) == "4.0-IV3"
    assert metadata_release(0, levels) == ""
    assert metadata_release(26, levels) == "level 26"  # a level no catalog version names equals no target


class _Features:
    """Stands in for kafka-python's admin client at its method boundary (the quorum client's own logic)."""

    def __init__(self, finalized: int | None, update_answer: dict[str, str] | None = None) -> None:
        self.finalized = finalized
        self.update_answer = update_answer or {"metadata.version": "OK"}
        self.updates: list[dict[str, Any]] = []

    def describe_features(self) -> dict[str, Any]:
        if self.finalized is None:
            return {}
        return {"metadata.version": {"supported": (7, 27), "finalized": (1, self.finalized), "finalized_epoch": 3}}

    def update_features(self, updates: dict[str, Any]) -> dict[str, str]:
        self.updates.append(updates)
        return self.update_answer

    def close(self) -> None:
        pass


def _quorum(admin: _Features) -> KafkaQuorum:
    quorum = KafkaQuorum({}, catalog.load().metadata_levels())
    quorum._admin = admin
    return quorum


def test_metadata_version_read_and_finalized_by_level() -> None:
    admin = _Features(finalized=25)
    quorum = _quorum(admin)
    assert quorum.metadata_version() == "4.0-IV3"
    quorum.finalize("4.1-IV1")
    assert admin.updates == [{"metadata.version": 27}]
    assert _quorum(_Features(finalized=None)).metadata_version() == ""


def test_a_refused_update_and_an_unknown_release_are_action_errors() -> None:
    refused = _quorum(_Features(25, {"metadata.version": "InvalidUpdateVersionError: Invalid update version 27"}))
    with pytest.raises(ActionError, match=r"UpdateFeatures metadata\.version=4\.1-IV1 \(level 27\) refused"):
        refused.finalize("4.1-IV1")
    with pytest.raises(ActionError, match="has no feature level in the catalog"):
        _quorum(_Features(25)).finalize("9.9-IV9")


def test_the_quorum_client_uses_the_orchestrators_identity_with_hostname_verification(tmp_path: Path) -> None:
    for name in ("ca.crt", "tls.crt", "tls.key", "password"):
        (tmp_path / name).write_text("x\n")
    mtls = KafkaConnection(
        bootstrap="kafka-bootstrap.sp.svc:9094,kafka-bootstrap.sp.svc:9095",
        ca_file=str(tmp_path / "ca.crt"),
        cert_file=str(tmp_path / "tls.crt"),
        key_file=str(tmp_path / "tls.key"),
    )
    conf = kafka_python_config(mtls)
    assert conf["bootstrap_servers"] == ["kafka-bootstrap.sp.svc:9094", "kafka-bootstrap.sp.svc:9095"]
    assert conf["security_protocol"] == "SSL" and conf["ssl_check_hostname"] is True
    assert conf["ssl_certfile"].endswith("tls.crt") and conf["ssl_keyfile"].endswith("tls.key")
    KafkaAdminClient.DEFAULT_CONFIG.keys() >= conf.keys() or pytest.fail(
        f"settings kafka-python does not know: {set(conf) - set(KafkaAdminClient.DEFAULT_CONFIG)}"
    )
    scram = KafkaConnection(
        bootstrap="kafka-bootstrap.sp.svc:9094",
        ca_file=str(tmp_path / "ca.crt"),
        sasl_mechanism="SCRAM-SHA-512",
        username="toolkit-orchestrator",
        password_file=str(tmp_path / "password"),
    )
    conf = kafka_python_config(scram)
    assert conf["security_protocol"] == "SASL_SSL" and conf["sasl_mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl_plain_username"] == "toolkit-orchestrator" and conf["sasl_plain_password"] == "x"
    assert set(KafkaAdminClient.DEFAULT_CONFIG) >= set(conf)


@pytest.mark.parametrize(
    ("text", "state"),
    [
        (METRICS, BrokerState.RECOVERY),
        (METRICS.replace("brokerstate 2.0", "brokerstate 3.0"), BrokerState.RUNNING),
        ('kafka_server_kafkaserver_brokerstate_value{pod="kafka-broker-0"} 7\n', BrokerState.SHUTTING_DOWN),
        ("kafka_server_kafkaserver_brokerstate 1.0\n", BrokerState.STARTING),
        ("kafka_server_kafkaserver_brokerstate 42.0\n", BrokerState.UNKNOWN),
    ],
)
def test_broker_state_from_exporter_text(text: str, state: BrokerState) -> None:
    assert parse_broker_state(text) is state


def test_broker_state_absent_from_metrics_is_none() -> None:
    assert parse_broker_state("jvm_threads_current 61.0\n") is None
