"""Find how to reach a deployed platform: Kafka and Elasticsearch connections from the release in the cluster.

For each data plane, in order (the first answer wins, per field):
1. what the environment file says (`access:`): an address the network needs (kind's NodePorts, a load balancer) or
   files the user brings (CA, client certificate and key, password file);
2. discovered (unless `access.discover` is off): the address of the release's Service, named by
   `toolkit.config.wiring` (`<release>-bootstrap:9094`, `<release>-http:9200`), checked to exist; the platform CA
   from Secret `platform-ca`; the orchestrator's own identity from its Secrets (`kafka-user-toolkit-orchestrator`:
   a client certificate and key, or a SCRAM username and password; `es-user-toolkit-orchestrator`: username and
   password). Secret material is written to files (mode 0600) in a private directory the caller owns and removes.
What cannot be found is returned as a sentence naming the missing object and how to provide it; the target then
reports that data plane as unobserved and the engine refuses to plan on it. Nothing here talks to Kafka or
Elasticsearch: whether the connection works is for their adapters to find out.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from toolkit.config.access import EsConnection, KafkaConnection
from toolkit.config.environments import Environment
from toolkit.config.wiring import Identity


@dataclass
class Discovered:
    kafka: KafkaConnection | None = None
    elasticsearch: EsConnection | None = None
    missing: dict[str, str] = field(default_factory=dict)  # component -> what is missing and how to provide it


class _Missing(Exception):
    pass


class _Cluster:
    """Reads the release's Services and Secrets; writes secret material to private files."""

    def __init__(self, api: Any, env: Environment, folder: Path) -> None:
        self.core = client.CoreV1Api(api)
        self.env = env
        self.namespace = env.platform.namespace
        self.folder = folder

    def service_exists(self, name: str) -> None:
        try:
            self.core.read_namespaced_service(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise _Missing(
                    f"Service {self.namespace}/{name} does not exist: deploy the platform first "
                    f"(`toolkit deploy --env {self.env.name}`)"
                ) from None
            raise _Missing(f"Service {self.namespace}/{name} cannot be read: HTTP {exc.status} {exc.reason}") from None

    def secret(self, name: str) -> dict[str, bytes]:
        try:
            data = self.core.read_namespaced_secret(name, self.namespace).data or {}
        except ApiException as exc:
            if exc.status == 404:
                raise _Missing(
                    f"Secret {self.namespace}/{name} does not exist: deploy the platform first "
                    f"(`toolkit deploy --env {self.env.name}`), or give the file in access: of {self.env.source}"
                ) from None
            raise _Missing(
                f"Secret {self.namespace}/{name} cannot be read (HTTP {exc.status} {exc.reason}): give this identity "
                f"read access to it, or give the file in access: of {self.env.source}"
            ) from None
        return {key: base64.b64decode(value) for key, value in data.items()}

    def file(self, secret: str, key: str) -> str:
        data = self.secret(secret)
        if key not in data:
            raise _Missing(f"Secret {self.namespace}/{secret} has no key {key}: was it made by `toolkit deploy`?")
        path = self.folder / f"{secret}.{key}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data[key])
        return str(path)

    def text(self, secret: str, key: str) -> str:
        data = self.secret(secret)
        if key not in data:
            raise _Missing(f"Secret {self.namespace}/{secret} has no key {key}: was it made by `toolkit deploy`?")
        return data[key].decode()


def discover(api: Any, env: Environment, folder: Path, identity: Identity | None = None) -> Discovered:
    """Connections to the platform of `env` as `identity` (default: the orchestrator's; see the module docstring).
    `folder` must be private to the caller."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    cluster = _Cluster(api, env, folder)
    who = identity or env.wiring.orchestrator
    out = Discovered()
    try:
        out.kafka = _kafka(cluster, env, who)
    except _Missing as exc:
        out.missing["kafka"] = f"kafka cannot be observed: {exc}"
    try:
        out.elasticsearch = _elasticsearch(cluster, env, who)
    except _Missing as exc:
        out.missing["elasticsearch"] = f"elasticsearch cannot be observed: {exc}"
    return out


def _kafka(cluster: _Cluster, env: Environment, identity: Identity) -> KafkaConnection:
    given, wiring, discover_ = env.access.kafka, env.wiring, env.access.discover
    if given.bootstrap:
        bootstrap = given.bootstrap
    elif discover_:
        cluster.service_exists(wiring.kafka_bootstrap.name)
        bootstrap = wiring.kafka_bootstrap.address
    else:
        raise _Missing(f"access.kafka.bootstrap is not set in {env.source} and discovery is off")
    ca = given.ca_file or (cluster.file(wiring.secrets.ca, "ca.crt") if discover_ else None)
    if wiring.kafka_client_auth == "tls":
        cert, key = given.cert_file, given.key_file
        if not (cert and key):
            if not discover_:
                raise _Missing(f"access.kafka.cert_file and key_file are not set in {env.source}")
            cert = cluster.file(identity.kafka_secret, "tls.crt")
            key = cluster.file(identity.kafka_secret, "tls.key")
        return KafkaConnection(bootstrap=bootstrap, ca_file=ca, cert_file=cert, key_file=key)
    username, password = given.username, given.password_file
    if not (username and password):
        if not discover_:
            raise _Missing(f"access.kafka.username and password_file are not set in {env.source}")
        username = cluster.text(identity.kafka_secret, "username")
        password = cluster.file(identity.kafka_secret, "password")
    return KafkaConnection(
        bootstrap=bootstrap, ca_file=ca, sasl_mechanism="SCRAM-SHA-512", username=username, password_file=password
    )


def _elasticsearch(cluster: _Cluster, env: Environment, identity: Identity) -> EsConnection:
    given, wiring, discover_ = env.access.elasticsearch, env.wiring, env.access.discover
    if given.url:
        url = given.url
    elif discover_:
        cluster.service_exists(wiring.elasticsearch.name)
        url = wiring.elasticsearch_url
    else:
        raise _Missing(f"access.elasticsearch.url is not set in {env.source} and discovery is off")
    ca = given.ca_file or (cluster.file(wiring.secrets.ca, "ca.crt") if discover_ else None)
    if given.api_key_file:
        return EsConnection(url=url, ca_file=ca, api_key_file=given.api_key_file)
    username, password = given.username, given.password_file
    if not (username and password):
        if not discover_:
            raise _Missing(f"access.elasticsearch.username and password_file are not set in {env.source}")
        username = cluster.text(identity.es_secret, "username")
        password = cluster.file(identity.es_secret, "password")
    return EsConnection(url=url, ca_file=ca, username=username, password_file=password)
