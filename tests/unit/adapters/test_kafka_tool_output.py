"""What a single-node peer cannot serve, parsed from the real output formats of the Kafka tools and metrics:
`kafka-metadata-quorum.sh describe --status/--replication` (3.3-3.8 and 3.9+ layouts), `kafka-features.sh
describe/upgrade`, and the JMX exporter's BrokerState. The texts below follow the tools' printing code
(MetadataQuorumCommand, FeatureCommand) column for column."""

from __future__ import annotations

import pytest

from toolkit.engine.ports import ActionError
from toolkit.model import BrokerState
from toolkit.targets.kafka_admin import (
    KafkaTools,
    QuorumStatus,
    parse_broker_state,
    parse_finalized_metadata_version,
    parse_quorum_replication,
    parse_quorum_status,
    voters_from,
)

STATUS_3_7 = """ClusterId:              fMCL8kv1SWm87L_Md-I2hg
LeaderId:               3002
LeaderEpoch:            2
HighWatermark:          10
MaxFollowerLag:         0
MaxFollowerLagTimeMs:   -1
CurrentVoters:          [3000,3001,3002]
CurrentObservers:       [0,1,2]
"""

STATUS_4_0 = (
    "ClusterId:              MkU3OEVBNTcwNTJENDM2Qk\n"
    "LeaderId:               1\n"
    "LeaderEpoch:            7\n"
    "HighWatermark:          18244\n"
    "MaxFollowerLag:         312\n"
    "MaxFollowerLagTimeMs:   4120\n"
    'CurrentVoters:          [{"id": 0, "directoryId": "pbvuBlaTTwKRxS5NLJwRFQ", "endpoints": '
    '["CONTROLLER://kafka-controller-0.kafka-controller-headless.sp.svc.cluster.local:9093"]}, '
    '{"id": 1, "directoryId": "QjA2MkU3OEVBNTcwNTJENA", "endpoints": '
    '["CONTROLLER://kafka-controller-1.kafka-controller-headless.sp.svc.cluster.local:9093"]}, '
    '{"id": 2, "directoryId": "k3wUDgYRSv-xGu0eGJpuAQ", "endpoints": '
    '["CONTROLLER://kafka-controller-2.kafka-controller-headless.sp.svc.cluster.local:9093"]}]\n'
    'CurrentObservers:       [{"id": 100, "directoryId": "Z1iEJr4gRKaMUHuNN1g4Hg"}, '
    '{"id": 101, "directoryId": "3KcrDpgcRx-lM3YJrybV2w"}, {"id": 102, "directoryId": "6g4CiYjzQSuF7gSQKHe8sg"}]\n'
)

REPLICATION_3_7 = """NodeId\tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus
3002\t10\t0\t1713543050012\t1713543050012\tLeader
3000\t10\t0\t1713543049911\t1713543049911\tFollower
3001\t10\t0\t1713543049907\t1713543049907\tFollower
0\t10\t0\t1713543049910\t1713543049910\tObserver
"""

REPLICATION_4_0 = """NodeId  DirectoryId             LogEndOffset  Lag   LastFetchTimestamp  LastCaughtUpTimestamp  Status
1       QjA2MkU3OEVBNTcwNTJENA  18244         0     1763813101000       1763813101000          Leader
0       pbvuBlaTTwKRxS5NLJwRFQ  18244         0     1763813100950       1763813100950          Follower
2       k3wUDgYRSv-xGu0eGJpuAQ  17932         312   1763813100991       1763813096880          Follower
100     Z1iEJr4gRKaMUHuNN1g4Hg  18244         0     1763813100977       1763813100977          Observer
"""  # noqa: E501 - recorded tool output, column widths as printed

FEATURES_DESCRIBE = (
    "Feature: eligible.leader.replicas.version\tSupportedMinVersion: 0\tSupportedMaxVersion: 1\t"
    "FinalizedVersionLevel: 0\tEpoch: 412\n"
    "Feature: group.version\tSupportedMinVersion: 0\tSupportedMaxVersion: 1\tFinalizedVersionLevel: 1\tEpoch: 412\n"
    "Feature: kraft.version\tSupportedMinVersion: 0\tSupportedMaxVersion: 1\tFinalizedVersionLevel: 0\tEpoch: 412\n"
    "Feature: metadata.version\tSupportedMinVersion: 3.3-IV3\tSupportedMaxVersion: 4.1-IV1\t"
    "FinalizedVersionLevel: 4.0-IV3\tEpoch: 412\n"
    "Feature: transaction.version\tSupportedMinVersion: 0\tSupportedMaxVersion: 2\tFinalizedVersionLevel: 2\t"
    "Epoch: 412\n"
)

METRICS = """# HELP kafka_server_kafkaserver_brokerstate Attribute exposed for management kafka.server:name=BrokerState,type=KafkaServer,attribute=Value
# TYPE kafka_server_kafkaserver_brokerstate gauge
kafka_server_kafkaserver_brokerstate 2.0
# HELP jvm_threads_current Current thread count of a JVM
jvm_threads_current 61.0
"""  # noqa: E501 - recorded exporter output


def test_status_3_7_layout():
    status = parse_quorum_status(STATUS_3_7)
    assert status == QuorumStatus(3002, 2, 10, (3000, 3001, 3002), (0, 1, 2))


def test_status_4_0_layout_with_voter_objects():
    status = parse_quorum_status(STATUS_4_0)
    assert (status.leader_id, status.leader_epoch, status.high_watermark) == (1, 7, 18244)
    assert status.voters == (0, 1, 2) and status.observers == (100, 101, 102)


def test_status_without_leader_is_a_clear_error():
    with pytest.raises(ValueError, match="--status output not understood"):
        parse_quorum_status("Error while executing: org.apache.kafka.common.errors.TimeoutException\n")


def test_replication_3_7_layout_all_caught_up():
    rows = parse_quorum_replication(REPLICATION_3_7)
    assert [(r.node_id, r.lag, r.status) for r in rows] == [
        (3002, 0, "Leader"), (3000, 0, "Follower"), (3001, 0, "Follower"), (0, 0, "Observer"),
    ]  # fmt: skip
    voters = voters_from(parse_quorum_status(STATUS_3_7), rows)
    assert [(v.id, v.caught_up) for v in voters] == [(3000, True), (3001, True), (3002, True)]


def test_replication_4_0_layout_one_voter_lagging():
    status = parse_quorum_status(STATUS_4_0)
    voters = voters_from(status, parse_quorum_replication(REPLICATION_4_0))
    assert [(v.id, v.lag, v.caught_up) for v in voters] == [(0, 0, True), (1, 0, True), (2, 312, False)]


def test_a_voter_missing_from_the_replication_table_is_not_caught_up():
    status = QuorumStatus(1, 1, 10, (0, 1, 2), ())
    rows = parse_quorum_replication(REPLICATION_4_0.replace("2       k3wUDgYRSv", "9       k3wUDgYRSv"))
    assert [v.caught_up for v in voters_from(status, rows)] == [True, True, False]


def test_finalized_metadata_version():
    assert parse_finalized_metadata_version(FEATURES_DESCRIBE) == "4.0-IV3"
    assert parse_finalized_metadata_version("Feature: group.version\tFinalizedVersionLevel: 1\n") == ""


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
def test_broker_state_from_exporter_text(text, state):
    assert parse_broker_state(text) is state


def test_broker_state_absent_from_metrics_is_none():
    assert parse_broker_state("jvm_threads_current 61.0\n") is None


def test_tool_command_runs_in_the_broker_container_with_the_internal_listener():
    command = KafkaTools().command("kafka-features.sh", "upgrade", "--metadata", "4.1-IV1")
    assert command[:2] == ["bash", "-c"]
    assert "/opt/kafka/bin/kafka-features.sh --bootstrap-server" in command[2]
    assert "--command-config /opt/toolkit/config/internal-client.properties upgrade --metadata 4.1-IV1" in command[2]


class _RecordedPods:
    """Answers exec calls with recorded tool output (what the Kubernetes exec API would return)."""

    def __init__(self, outputs: dict[str, str]) -> None:
        self.outputs = outputs
        self.commands: list[str] = []

    def exec_in_pod(self, pod, command, container=None, timeout=60.0):
        self.commands.append(f"{pod}:{container}:{command[-1]}")
        for key, out in self.outputs.items():
            if key in command[-1]:
                return out
        raise ActionError(f"{command[-1]} in pod {pod} exited 1")

    def pod_metrics(self, pod, port):
        return None


def test_finalize_reads_the_tool_verdict():
    from confluent_kafka.admin import AdminClient

    from toolkit.targets.kafka_admin import KafkaAdmin

    pods = _RecordedPods({"upgrade --metadata 4.1-IV1": "metadata.version was upgraded to 27.\n"})
    admin = KafkaAdmin(AdminClient({"bootstrap.servers": "127.0.0.1:9"}), pods)
    admin._tool_pods = ["kafka-broker-0"]
    admin.finalize_metadata_version("4.1-IV1")
    assert pods.commands[0].startswith("kafka-broker-0:kafka:")
    refused = _RecordedPods({"upgrade": "Could not upgrade metadata.version to 27. Invalid update version\n"})
    admin = KafkaAdmin(AdminClient({"bootstrap.servers": "127.0.0.1:9"}), refused)
    admin._tool_pods = ["kafka-broker-0"]
    with pytest.raises(ActionError, match=r"Could not upgrade metadata\.version"):
        admin.finalize_metadata_version("4.1-IV1")


def test_no_broker_pod_to_exec_into_is_an_action_error():
    from confluent_kafka.admin import AdminClient

    from toolkit.targets.kafka_admin import KafkaAdmin

    admin = KafkaAdmin(AdminClient({"bootstrap.servers": "127.0.0.1:9"}), _RecordedPods({}))
    with pytest.raises(ActionError, match="needs a running broker pod"):
        admin.describe_quorum()
