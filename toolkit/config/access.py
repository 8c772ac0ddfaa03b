"""How a client of the platform reaches Kafka and Elasticsearch: plain, typed data.

`Access` is what an environment file may say (`access:`), all optional: an address the network needs (kind's
NodePorts, a load balancer), or files the user brings (a CA, a client certificate, a password file). Whatever it
does not say is discovered from the deployed release in the cluster (its Services and Secrets, named by
`toolkit.config.wiring`), by `toolkit.targets.discovery`. The result of that is a complete `KafkaConnection` /
`EsConnection`, which the adapters use as it is. No secret is ever held here: only paths of files that hold one.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaAccess(_Frozen):
    bootstrap: str | None = None  # host:port[,host:port]; default the bootstrap Service of the release
    ca_file: str | None = None
    cert_file: str | None = None  # client certificate (mutual TLS)
    key_file: str | None = None
    username: str | None = None  # SCRAM (scram-sha-512 listener)
    password_file: str | None = None


class EsAccess(_Frozen):
    url: str | None = None  # default the HTTP Service of the release
    ca_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    api_key_file: str | None = None


class Access(_Frozen):
    kafka: KafkaAccess = KafkaAccess()
    elasticsearch: EsAccess = EsAccess()
    # read what is not given above from the release's Services and Secrets (off: everything must be given here,
    # as for the in-cluster orchestrator, whose credentials are mounted files)
    discover: bool = True


class KafkaConnection(_Frozen):
    """A complete way to reach Kafka: what librdkafka gets."""

    bootstrap: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    sasl_mechanism: str | None = None
    username: str | None = None
    password_file: str | None = None

    @property
    def tls(self) -> bool:
        return bool(self.ca_file or self.cert_file)

    @property
    def security_protocol(self) -> str:
        if self.sasl_mechanism:
            return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"
        return "SSL" if self.tls else "PLAINTEXT"


class EsConnection(_Frozen):
    """A complete way to reach Elasticsearch."""

    url: str
    ca_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    api_key_file: str | None = None
