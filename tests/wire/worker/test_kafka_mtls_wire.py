"""A real `toolkit-worker receiver` talks to Kafka over mutual TLS only (see mtls_support for how the broker's
advertised address is made to be the TLS terminator's)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid

import pytest

from tests.wire.worker.conftest import VENV_BIN, wait_until
from tests.wire.worker.mtls_support import kafka_behind_mtls, namespaces_available
from toolkit.targets.peer import free_port

pytestmark = [pytest.mark.wire, pytest.mark.slow]


@pytest.fixture(scope="module")
def mtls_kafka(tmp_path_factory):
    reason = namespaces_available()
    if reason is not None:
        pytest.skip(reason)
    with kafka_behind_mtls(tmp_path_factory.mktemp("mtls"), free_port()) as kafka:
        yield kafka


def client_settings(kafka, cert, key) -> dict[str, str]:
    return {
        "bootstrap.servers": kafka.bootstrap,
        "security.protocol": "ssl",
        "ssl.ca.location": str(kafka.pki.ca),
        "ssl.certificate.location": str(cert),
        "ssl.key.location": str(key),
    }


def start_receiver(kafka, tmp_path, topic: str, **settings: str) -> tuple[subprocess.Popen, int, int]:
    http_port, tcp_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLKIT_WORKER_")}
    env |= {
        "TOOLKIT_WORKER_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL": "SSL",
        "TOOLKIT_WORKER_KAFKA_CA_FILE": str(kafka.pki.ca),
        "TOOLKIT_WORKER_TOPIC": topic,
        "TOOLKIT_WORKER_LISTEN_HOST": "127.0.0.1",
        "TOOLKIT_WORKER_TCP_PORT": str(tcp_port),
        "TOOLKIT_WORKER_UDP_PORT": "off",
        "TOOLKIT_WORKER_HTTP_HOST": "127.0.0.1",
        "TOOLKIT_WORKER_HTTP_PORT": str(http_port),
        "TOOLKIT_WORKER_SHUTDOWN_LINGER_SECONDS": "0",
        "TOOLKIT_WORKER_SHUTDOWN_READ_SECONDS": "1",
    }
    env |= {f"TOOLKIT_WORKER_{k.upper()}": v for k, v in settings.items()}
    log = open(tmp_path / f"receiver-{uuid.uuid4().hex[:6]}.log", "wb")  # noqa: SIM115 - the child owns it
    process = subprocess.Popen([str(VENV_BIN / "toolkit-worker"), "receiver"], env=env, stdout=log, stderr=log)
    log.close()
    return process, http_port, tcp_port


def readyz(port: int) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_receiver_delivers_to_kafka_over_mutual_tls(mtls_kafka, tmp_path):
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    kafka, pki = mtls_kafka, mtls_kafka.pki
    topic = f"mtls-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(client_settings(kafka, pki.client_cert, pki.client_key))
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)

    process, http_port, tcp_port = start_receiver(
        kafka, tmp_path, topic, kafka_cert_file=str(pki.client_cert), kafka_key_file=str(pki.client_key)
    )
    try:
        wait_until(lambda: process.poll() is None and readyz(http_port) == 200, 60, "receiver ready over mTLS")
        with socket.create_connection(("127.0.0.1", tcp_port)) as sender:
            for n in range(50):
                sender.sendall(b"<134>1 2026-01-01T00:00:00Z mtlshost app - - - over mutual TLS %d\n" % n)
        consumer = Consumer(
            {
                **client_settings(kafka, pki.client_cert, pki.client_key),
                "group.id": f"reader-{topic}",
                "enable.auto.commit": False,
            }
        )
        consumer.assign([TopicPartition(topic, 0, 0)])
        values: list[bytes] = []
        deadline = time.monotonic() + 60
        while len(values) < 50 and time.monotonic() < deadline:
            values += [m.value() for m in consumer.consume(100, 1.0) if m.error() is None]
        consumer.close()
        assert sorted(values) == sorted(
            b"<134>1 2026-01-01T00:00:00Z mtlshost app - - - over mutual TLS %d" % n for n in range(50)
        )
    finally:
        stop(process)
    assert "syslog-receiver" in kafka.terminator.client_names, "the receiver presented its client certificate"


def test_without_a_trusted_client_certificate_kafka_is_unreachable(mtls_kafka, tmp_path):
    kafka, pki = mtls_kafka, mtls_kafka.pki
    refused_before = len(kafka.terminator.refused)
    # no client certificate at all, then a certificate from a CA the broker does not trust
    anonymous, _, _ = start_receiver(kafka, tmp_path, "anything")
    stranger, stranger_http, _ = start_receiver(
        kafka, tmp_path, "anything", kafka_cert_file=str(pki.stranger_cert), kafka_key_file=str(pki.stranger_key)
    )
    try:
        wait_until(lambda: len(kafka.terminator.refused) >= refused_before + 2, 30, "refused handshakes")
        time.sleep(6)  # one Kafka check has timed out
        assert anonymous.poll() is None and stranger.poll() is None, "alive, just not ready"
        assert readyz(stranger_http) == 503
    finally:
        stop(anonymous)
        stop(stranger)
    assert "stranger" not in kafka.terminator.client_names
