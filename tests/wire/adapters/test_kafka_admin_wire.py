"""The Kafka adapter over the wire against the single-node peer (noida-db): brokers that answer, topics with their
replicas / ISR / leader, topic configs, consumer-group lag, and the shape of the state when nobody answers. What a
single broker cannot serve (DescribeQuorum, features, multi-node ISR, BrokerState metrics) is tested on recorded
real outputs in tests/unit/adapters/."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from toolkit.config.access import KafkaConnection
from toolkit.model import BrokerState, KafkaNode, KafkaRole
from toolkit.targets.kafka_admin import LAG_UNKNOWN, KafkaAdmin, client_config

pytestmark = pytest.mark.wire


@pytest.fixture
def admin(peer):
    return KafkaAdmin.connect(KafkaConnection(bootstrap=peer.kafka_bootstrap))


@pytest.fixture
def topic(peer):
    name = f"events-{uuid.uuid4().hex[:6]}"
    client = AdminClient({"bootstrap.servers": peer.kafka_bootstrap})
    configs = {"min.insync.replicas": "1", "unclean.leader.election.enable": "true"}
    for future in client.create_topics([NewTopic(name, 3, 1, config=configs)]).values():
        future.result(10)
    return name


def member(node_id: int, pod: str) -> KafkaNode:
    return KafkaNode(node_id, KafkaRole.BROKER, pod, "zone-a", "4.0.1", BrokerState.UNKNOWN, False)


def test_topics_partitions_isr_leader_and_configs(admin, topic):
    topics, partitions = admin.topics()
    mine = next(t for t in topics if t.name == topic)
    assert (mine.replication_factor, mine.min_insync_replicas, mine.unclean_leader_election) == (1, 1, True)
    broker = next(iter(admin.brokers()))
    rows = sorted((p.partition, p.replicas, p.isr, p.leader) for p in partitions if p.topic == topic)
    assert rows == [(i, (broker,), (broker,), broker) for i in range(3)]


def test_observe_marks_the_answering_broker_and_the_silent_one(admin, topic):
    broker = next(iter(admin.brokers()))
    state = admin.observe([member(broker, "kafka-0"), member(broker + 100, "kafka-1")])
    answering, silent = state.node(broker), state.node(broker + 100)
    assert answering is not None and answering.reachable and answering.state is BrokerState.RUNNING
    assert answering.rack == "zone-a"  # the broker has no rack: the pod's zone stays
    assert silent is not None and not silent.reachable and silent.state is BrokerState.NOT_RUNNING
    assert state.topic(topic) is not None
    # no broker pod to exec the quorum tool in: the quorum is unknown, not invented
    assert state.active_controller is None and state.voters == () and state.metadata_version == ""


def test_preferred_leaders_already_elected_is_a_no_op(admin, topic):
    admin.elect_preferred_leaders()  # single broker: every leader is its preferred replica, nothing is sent


def test_consumer_group_lag_is_latest_minus_committed(peer, topic):
    producer = Producer({"bootstrap.servers": peer.kafka_bootstrap})
    for _ in range(10):
        producer.produce(topic, b"event", partition=0)
    assert producer.flush(10) == 0
    group = f"indexer-{uuid.uuid4().hex[:6]}"
    consumer = Consumer({"bootstrap.servers": peer.kafka_bootstrap, "group.id": group, "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
    consumer.close()
    admin = KafkaAdmin(AdminClient({"bootstrap.servers": peer.kafka_bootstrap}), consumer_group=group)
    lag = admin.workers_lag()
    assert (lag.consumer_group, lag.lag, lag.lag_by_partition) == (group, 6, ((f"{topic}-0", 6),))


def test_nobody_answering_yields_silent_nodes_and_unbounded_lag():
    admin = KafkaAdmin(
        AdminClient(client_config(KafkaConnection(bootstrap="127.0.0.1:9"), timeout_ms=500)), timeout=1.5
    )
    state = admin.observe([member(0, "kafka-0")])
    assert [(n.id, n.reachable, n.state) for n in state.nodes] == [(0, False, BrokerState.UNKNOWN)]
    assert state.partitions == ()
    assert admin.workers_lag().lag == LAG_UNKNOWN
