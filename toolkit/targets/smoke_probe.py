"""The wire work of the smoke check (toolkit.rehearsal.smoke): a syslog sender, a Kafka reader and an
Elasticsearch search, each against explicit endpoints. Every failure is a `ProbeError` whose message names the
endpoint and what went wrong; nothing here decides whether the platform is healthy.
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from elasticsearch import ApiError, Elasticsearch, TransportError

from toolkit.model.smoke import ElasticsearchTarget, KafkaTarget, SyslogTarget


class ProbeError(RuntimeError):
    """A hop could not be tried or answered with an error; the message says which endpoint and why."""


def kafka_config(target: KafkaTarget) -> dict[str, Any]:
    """confluent-kafka settings for an explicit Kafka target (TLS when a CA or client certificate is given)."""
    conf: dict[str, Any] = {"bootstrap.servers": target.bootstrap, "socket.timeout.ms": 10_000}
    tls = target.tls or bool(target.ca_file or target.client_cert)
    if target.ca_file:
        conf["ssl.ca.location"] = target.ca_file
    if target.client_cert or target.client_key:
        if not (target.client_cert and target.client_key):
            raise ProbeError("Kafka mutual TLS needs both a client certificate and its key")
        conf["ssl.certificate.location"], conf["ssl.key.location"] = target.client_cert, target.client_key
    if target.sasl_username or target.sasl_password:
        if not (target.sasl_username and target.sasl_password):
            raise ProbeError("Kafka SASL needs both a user name and a password")
        conf.update(
            {
                "sasl.mechanism": target.sasl_mechanism,
                "sasl.username": target.sasl_username,
                "sasl.password": target.sasl_password,
                "security.protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT",
            }
        )
    elif tls:
        conf["security.protocol"] = "SSL"
    return conf


def end_offsets(target: KafkaTarget, topic: str, timeout: float = 15.0) -> dict[int, int]:
    """The high watermark of each partition of `topic`; ProbeError when the topic or the cluster is missing."""
    conf = kafka_config(target)
    try:
        # All topics, not this one: a metadata request naming a topic makes a broker that auto-creates topics
        # create it, and the smoke check must not create what deploy should have.
        metadata = AdminClient(conf).list_topics(timeout=timeout)
    except KafkaException as error:
        raise ProbeError(f"Kafka at {target.bootstrap} did not answer within {timeout:g}s: {error}") from None
    described = metadata.topics.get(topic)
    if described is None or described.error is not None or not described.partitions:
        why = described.error if described is not None and described.error is not None else "no partitions"
        raise ProbeError(
            f"topic {topic} is not readable at {target.bootstrap} ({why}); deploy the platform (it creates the "
            "events topic) or give the events topic the receivers write"
        )
    reader = Consumer({**conf, "group.id": "toolkit-smoke-watermarks", "enable.auto.commit": False})
    try:
        offsets = {}
        for partition in sorted(described.partitions):
            _, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout, cached=False)
            offsets[partition] = high
        return offsets
    except KafkaException as error:
        raise ProbeError(f"cannot read the end offsets of {topic} at {target.bootstrap}: {error}") from None
    finally:
        reader.close()


def send_syslog(target: SyslogTarget, frame: bytes, timeout: float = 10.0) -> None:
    """Write one octet-counted frame to the receiver and close the connection cleanly."""
    try:
        raw = socket.create_connection((target.host, target.port), timeout=timeout)
    except OSError as error:
        raise ProbeError(f"cannot connect: {error}") from None
    try:
        connection: socket.socket = raw
        if target.tls:
            context = ssl.create_default_context(cafile=target.ca_file)
            try:
                connection = context.wrap_socket(raw, server_hostname=target.server_name or target.host)
            except (ssl.SSLError, OSError) as error:
                raise ProbeError(f"TLS handshake failed: {error}") from None
        connection.sendall(frame)
        if target.tls and isinstance(connection, ssl.SSLSocket):
            connection = connection.unwrap()
        connection.shutdown(socket.SHUT_WR)
        # Wait for the receiver to close its side, so the frame was read before we report it sent.
        connection.settimeout(timeout)
        while connection.recv(4096):
            pass
    except ssl.SSLError as error:
        raise ProbeError(f"TLS error while sending: {error}") from None
    except OSError as error:
        raise ProbeError(f"sending failed: {error}") from None
    finally:
        raw.close()


def find_in_kafka(
    target: KafkaTarget, topic: str, start: dict[int, int], needle: str, timeout: float
) -> tuple[int, int] | None:
    """(partition, offset) of the first record at or after `start` whose value holds `needle`; None at timeout."""
    conf = {**kafka_config(target), "group.id": f"toolkit-smoke-{needle}", "enable.auto.commit": False}
    consumer = Consumer(conf)
    wanted = needle.encode()
    try:
        consumer.assign([TopicPartition(topic, partition, offset) for partition, offset in start.items()])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is not None:
                    continue
                if wanted in (message.value() or b""):
                    partition, offset = message.partition(), message.offset()
                    return (int(partition or 0), int(offset or 0))
        return None
    except KafkaException as error:
        raise ProbeError(f"reading {topic} at {target.bootstrap} failed: {error}") from None
    finally:
        consumer.close()


def _elasticsearch(target: ElasticsearchTarget) -> Elasticsearch:
    options: dict[str, Any] = {"request_timeout": 30, "max_retries": 2}
    if target.ca_file:
        options["ca_certs"] = target.ca_file
    if target.api_key:
        options["api_key"] = target.api_key
    elif target.username:
        options["basic_auth"] = (target.username, target.password or "")
    return Elasticsearch(target.url, **options)


def find_in_elasticsearch(target: ElasticsearchTarget, alias: str, probe: str, timeout: float) -> str | None:
    """`index/id` of the document whose host.name is `probe` under `alias`; None when none appeared in time."""
    es = _elasticsearch(target)
    deadline = time.monotonic() + timeout
    may_refresh = True
    try:
        while True:
            if may_refresh:
                try:
                    es.indices.refresh(index=alias)
                except ApiError as error:
                    if error.meta.status in (401, 403):
                        may_refresh = False  # the user may search but not refresh: wait for the refresh interval
                    elif error.meta.status != 404:
                        raise
            hits: list[dict[str, Any]] = []
            try:
                hits = list(es.search(index=alias, query={"term": {"host.name": probe}}, size=1)["hits"]["hits"])
            except ApiError as error:
                if error.meta.status != 404:
                    raise ProbeError(
                        f"search of {alias} at {target.url} answered {error.meta.status}: {error.message}"
                    ) from None
            if hits:
                return f"{hits[0]['_index']}/{hits[0]['_id']}"
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.5)
    except TransportError as error:
        raise ProbeError(f"Elasticsearch at {target.url} does not answer: {error}") from None
    except ApiError as error:
        raise ProbeError(f"Elasticsearch at {target.url} answered {error.meta.status}: {error.message}") from None
    finally:
        es.close()
