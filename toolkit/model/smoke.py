"""Where a smoke check probes a deployed platform (plain data; the check is toolkit.rehearsal.smoke, the wire work
toolkit.targets.smoke_probe)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SyslogTarget:
    host: str
    port: int
    tls: bool = False
    ca_file: str | None = None  # verify the receiver's certificate against this CA (system CAs when None)
    server_name: str | None = None  # the name the certificate must carry (default: host)

    def __str__(self) -> str:
        return f"{'tls' if self.tls else 'tcp'}://{self.host}:{self.port}"


@dataclass(frozen=True)
class KafkaTarget:
    bootstrap: str
    tls: bool = False
    ca_file: str | None = None
    client_cert: str | None = None  # mutual TLS: certificate and key files
    client_key: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    sasl_mechanism: str = "SCRAM-SHA-512"


@dataclass(frozen=True)
class ElasticsearchTarget:
    url: str
    ca_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SmokeTarget:
    syslog: SyslogTarget
    kafka: KafkaTarget
    elasticsearch: ElasticsearchTarget
    events_topic: str
    write_alias: str
