"""The quorum client (kafka-python: DescribeQuorum, ApiVersions features, UpdateFeatures) reaches Kafka exactly as
the orchestrator's other Kafka client does: over mutual TLS with its own certificate, the server's certificate
verified against the platform CA and the host name. The peer behind the TLS terminator answers ApiVersions (no
feature finalized) but has no KRaft quorum: DescribeQuorum must come back as a named failure that leaves the
quorum unobserved, never as a guess. A certificate from another CA gets no connection at all."""

from __future__ import annotations

import pytest

from tests.wire.worker.mtls_support import kafka_behind_mtls, namespaces_available
from toolkit.config.access import KafkaConnection
from toolkit.engine.ports import ActionError
from toolkit.model import BrokerState, KafkaNode
from toolkit.targets.kafka_admin import KafkaAdmin
from toolkit.targets.peer import free_port

pytestmark = [pytest.mark.wire, pytest.mark.slow]


@pytest.fixture(scope="module")
def mtls_kafka(tmp_path_factory):
    reason = namespaces_available()
    if reason is not None:
        pytest.skip(reason)
    with kafka_behind_mtls(tmp_path_factory.mktemp("mtls"), free_port()) as kafka:
        yield kafka


def connection(kafka, cert, key) -> KafkaConnection:
    return KafkaConnection(bootstrap=kafka.bootstrap, ca_file=str(kafka.pki.ca), cert_file=str(cert), key_file=str(key))


def test_features_over_mutual_tls_and_a_quorum_that_cannot_be_described_is_named(mtls_kafka):
    admin = KafkaAdmin.connect(connection(mtls_kafka, mtls_kafka.pki.client_cert, mtls_kafka.pki.client_key))
    try:
        assert admin.metadata_version() == ""  # answered over mTLS: nothing finalized on the peer
        with pytest.raises(ActionError, match="DescribeQuorum failed"):
            admin.describe_quorum()
        state = admin.observe([KafkaNode(1, "broker", "kafka-broker-0", "", "4.0.1", BrokerState.UNKNOWN, False)])
        assert state.unobserved == "" and state.active_controller is None and state.voters == ()
    finally:
        admin.close()


def test_a_certificate_from_another_ca_gets_no_quorum_client(mtls_kafka):
    admin = KafkaAdmin.connect(connection(mtls_kafka, mtls_kafka.pki.stranger_cert, mtls_kafka.pki.stranger_key))
    try:
        with pytest.raises(ActionError, match=r"quorum client cannot connect|failed"):
            admin.metadata_version()
    finally:
        admin.close()
