"""Worker configuration: environment variables `TOOLKIT_WORKER_<FIELD>` over an optional YAML file.

Sources, lowest precedence first: defaults, the YAML file named by `--config` or `TOOLKIT_WORKER_CONFIG_FILE`
(a mapping of field names), then the environment. An environment variable set to the empty string or `off`
clears an optional field (for example `TOOLKIT_WORKER_UDP_PORT=off` turns the UDP listener off).

Validation happens once, at start, and collects EVERY problem before failing: unreadable file, unknown keys in
the file, unknown `TOOLKIT_WORKER_*` variables (a typo must not silently fall back to a default), field values
that fail their type or range, and the rules of the chosen role (the indexer needs Elasticsearch; the receiver
needs at least one listener; TLS needs a certificate and key). `load_config` raises `ConfigProblems` holding the
full list; `toolkit-worker` prints them and exits with status 2.

Files and secrets
-----------------
Every `*_file` setting must name a regular file this process can open for reading; the check opens it (so it is
true for root too, where permission bits do not apply) and names the variable, the path and the problem.
Secrets come either inline (`KAFKA_PASSWORD`, `ELASTICSEARCH_PASSWORD`) or from a file (`KAFKA_PASSWORD_FILE`,
`ELASTICSEARCH_PASSWORD_FILE`: the file's text with one trailing newline removed), never both. Secret files are
read here, once, at start. Secret values are held as `SecretStr` (their repr is `**********`), so neither a log
line, an exception nor `--check-config` ever shows them; only the librdkafka / Elasticsearch client settings
built for the connection hold them in clear.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator

Role = Literal["receiver", "indexer"]
ENV_PREFIX = "TOOLKIT_WORKER_"
CONFIG_FILE_ENV = "TOOLKIT_WORKER_CONFIG_FILE"
_CLEARED = ("", "off", "none")
SECURITY_PROTOCOLS = ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl")
TLS_PROTOCOLS = ("ssl", "sasl_ssl")
# settings whose value is a file the process must be able to read
FILE_FIELDS = (
    "kafka_ca_file",
    "kafka_cert_file",
    "kafka_key_file",
    "kafka_password_file",
    "elasticsearch_ca_file",
    "elasticsearch_password_file",
    "tls_cert_file",
    "tls_key_file",
)
# settings whose value is a secret (never printed, logged or put in an error message)
SECRET_FIELDS = ("kafka_password", "elasticsearch_password")
# settings naming a file whose CONTENT is a secret (the path may be shown, the content never)
SECRET_FILE_FIELDS = ("kafka_password_file", "elasticsearch_password_file")


class WorkerConfig(BaseModel):
    """Every setting of both roles; each field is also `TOOLKIT_WORKER_<NAME>` in the environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Kafka
    kafka_bootstrap: str = Field(min_length=1, description="host:port[,host:port...]")
    kafka_security_protocol: Literal["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"] = Field(
        "plaintext", description="case-insensitive on input (SASL_SSL works), held in lower case"
    )
    kafka_ca_file: Path | None = None
    kafka_cert_file: Path | None = Field(None, description="PEM client certificate for mutual TLS (ssl, sasl_ssl)")
    kafka_key_file: Path | None = Field(None, description="PEM private key of kafka_cert_file")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    kafka_password_file: Path | None = Field(None, description="file holding the SASL password")
    topic: str = Field("syslog-raw", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    dead_letter_topic: str = Field("syslog-dead-letter", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    consumer_group: str = Field("toolkit-indexer", min_length=1)
    kafka_compression: Literal["none", "lz4", "zstd", "gzip", "snappy"] = "lz4"

    # Elasticsearch (indexer only)
    elasticsearch_url: str | None = None
    elasticsearch_username: str | None = None
    elasticsearch_password: SecretStr | None = None
    elasticsearch_password_file: Path | None = Field(None, description="file holding the basic-auth password")
    elasticsearch_ca_file: Path | None = None
    write_alias: str = Field("syslog-events", pattern=r"^[a-z0-9][a-z0-9._-]*$")

    # receiver
    listen_host: str = "0.0.0.0"
    udp_port: int | None = Field(5514, ge=0, le=65535)
    tcp_port: int | None = Field(5514, ge=0, le=65535)
    tls_port: int | None = Field(None, ge=0, le=65535)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    max_in_flight: int = Field(20_000, ge=1, description="events sent to Kafka and not yet acknowledged")
    max_message_bytes: int = Field(
        65_536,
        ge=480,
        le=16 * 1024 * 1024,
        description="largest event forwarded whole (longer ones are cut and tagged); checked at start against the "
        "events topic's max.message.bytes",
    )
    max_connections: int = Field(4_096, ge=1, description="open TCP/TLS connections; more are closed at once")
    idle_timeout_seconds: float = Field(300.0, gt=0, description="a TCP/TLS connection silent this long is closed")
    max_buffered_bytes: int = Field(
        64 * 1024 * 1024,
        ge=65_536,
        description="partial frames held across all connections; the connection that would exceed it is closed",
    )
    rfc3164_timezone: str = "UTC"
    observer_hostname: str = Field(default_factory=socket.gethostname, min_length=1)
    shutdown_flush_seconds: float = Field(20.0, gt=0)
    shutdown_linger_seconds: float = Field(
        5.0, ge=0, description="after SIGTERM, keep serving while not ready, so routing moves away first"
    )
    shutdown_read_seconds: float = Field(
        10.0, ge=0, description="after the linger, how long half-closed TCP connections are still read"
    )

    # indexer
    batch_size: int = Field(2_000, ge=1, le=100_000)
    batch_max_wait_ms: int = Field(500, ge=1)
    retry_initial_ms: int = Field(200, ge=1)
    retry_max_ms: int = Field(10_000, ge=1)
    pin_lease_offsets: int = Field(50_000, ge=1, description="offsets a partition keeps its target index for")
    alias_refresh_seconds: float = Field(10.0, gt=0)
    rollover_check_seconds: float = Field(60.0, gt=0)
    drain_seconds: float = Field(25.0, gt=0, description="SIGTERM: finish the batch within this time")
    group_instance_id: str | None = Field(
        None, description="static group membership (e.g. the StatefulSet pod name): a restart takes over at once"
    )
    session_timeout_ms: int = Field(10_000, ge=1_000, description="a dead indexer's partitions move after this")
    max_poll_interval_ms: int = Field(
        300_000, ge=1_000, description="longest batch (retries included) before the group evicts the indexer"
    )

    # both
    http_host: str = "0.0.0.0"
    http_port: int = Field(8080, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("rfc3164_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as UTC or Europe/Paris)") from exc
        return value

    # secrets read from *_password_file at load time (load_config sets them; never part of a dump)
    _kafka_file_secret: SecretStr | None = PrivateAttr(None)
    _elasticsearch_file_secret: SecretStr | None = PrivateAttr(None)

    @field_validator("kafka_security_protocol", mode="before")
    @classmethod
    def _lower_protocol(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.rfc3164_timezone)

    def kafka_secret(self) -> str | None:
        """The SASL password, from KAFKA_PASSWORD or the content of KAFKA_PASSWORD_FILE."""
        secret = self.kafka_password or self._kafka_file_secret
        return None if secret is None else secret.get_secret_value()

    def elasticsearch_secret(self) -> str | None:
        """The basic-auth password, from ELASTICSEARCH_PASSWORD or the content of ELASTICSEARCH_PASSWORD_FILE."""
        secret = self.elasticsearch_password or self._elasticsearch_file_secret
        return None if secret is None else secret.get_secret_value()

    def shown(self) -> dict[str, Any]:
        """Every effective setting for display: secrets replaced by `<hidden>` (or `<unset>`)."""
        shown = self.model_dump(mode="json")
        for name in SECRET_FIELDS:
            shown[name] = "<hidden>" if getattr(self, name) is not None else None
        return shown

    def kafka_client_settings(self) -> dict[str, Any]:
        """librdkafka settings shared by the producer and the consumer."""
        settings: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_ca_file is not None:
            settings["ssl.ca.location"] = str(self.kafka_ca_file)
        if self.kafka_cert_file is not None and self.kafka_key_file is not None:
            settings["ssl.certificate.location"] = str(self.kafka_cert_file)
            settings["ssl.key.location"] = str(self.kafka_key_file)
        if self.kafka_security_protocol.startswith("sasl"):
            settings["sasl.mechanism"] = self.kafka_sasl_mechanism
            settings["sasl.username"] = self.kafka_username or ""
            settings["sasl.password"] = self.kafka_secret() or ""
        return settings


class ConfigProblems(Exception):
    """Every problem found in the configuration, one readable line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))

    def render(self) -> str:
        lines = [f"toolkit-worker: invalid configuration ({len(self.problems)} problem(s)):"]
        lines += [f"  - {problem}" for problem in self.problems]
        lines.append("Fix the variables/file entries above and start again; nothing was started.")
        return "\n".join(lines)


_FIELDS = tuple(WorkerConfig.model_fields)


def _env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def _read_file(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problems.append(f"config file {str(path)!r} cannot be read: {exc.strerror or exc}")
        return {}
    except yaml.YAMLError as exc:
        problems.append(f"config file {str(path)!r} is not valid YAML: {exc}")
        return {}
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        problems.append(f"config file {str(path)!r} must hold a mapping of setting names to values")
        return {}
    values: dict[str, Any] = {}
    for key, value in loaded.items():
        if key not in _FIELDS:
            problems.append(f"config file {str(path)!r}: unknown setting {key!r} (known: {', '.join(_FIELDS)})")
        else:
            values[key] = value
    return values


def _where(field: str, from_env: set[str], file_path: Path | None) -> str:
    if field in from_env:
        return _env_name(field)
    if file_path is not None:
        return f"{field} in {file_path}"
    return _env_name(field)


def _check_file(where: str, path: Path, problems: list[str]) -> bytes | None:
    """Open the file the way the process will (so the answer is right for root too); its content, or None after
    recording the problem."""
    if not path.exists():
        problems.append(f"{where}={str(path)!r}: the file does not exist (create it, or point the setting at it)")
        return None
    if not path.is_file():
        problems.append(f"{where}={str(path)!r}: not a regular file (point the setting at the file itself)")
        return None
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        problems.append(
            f"{where}={str(path)!r}: cannot be read by this process ({exc.strerror or exc}); "
            "fix the file's owner/mode (or the volume's defaultMode), or run as a user that can read it"
        )
        return None


def _secret_from_file(where: str, content: bytes, problems: list[str]) -> SecretStr | None:
    """The secret a file holds: its UTF-8 text with ONE trailing newline (LF or CRLF) removed."""
    if content.endswith(b"\r\n"):
        content = content[:-2]
    elif content.endswith(b"\n"):
        content = content[:-1]
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(f"{where}: the file is not UTF-8 text (write the password as plain text)")
        return None
    if not text:
        problems.append(f"{where}: the file is empty (write the password into it)")
        return None
    return SecretStr(text)


def load_config(role: Role, environ: Mapping[str, str], file_path: Path | None = None) -> WorkerConfig:
    """Merge file and environment, validate everything, and return the configuration or raise
    ConfigProblems."""
    problems: list[str] = []
    if file_path is None and environ.get(CONFIG_FILE_ENV):
        file_path = Path(environ[CONFIG_FILE_ENV])
    values: dict[str, Any] = _read_file(file_path, problems) if file_path is not None else {}
    from_env: set[str] = set()
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_FILE_ENV:
            continue
        field = name[len(ENV_PREFIX) :].lower()
        if field not in _FIELDS:
            problems.append(f"{name}: unknown variable (known: {', '.join(_env_name(f) for f in _FIELDS)})")
            continue
        from_env.add(field)
        values[field] = None if raw.strip().lower() in _CLEARED else raw

    def where(field: str) -> str:
        return _where(field, from_env, file_path)

    def present(field: str) -> bool:
        info = WorkerConfig.model_fields[field]
        value = values.get(field, None if info.is_required() else info.default)
        return value not in (None, "")

    if not present("kafka_bootstrap"):
        problems.append(f"{_env_name('kafka_bootstrap')} is required (Kafka bootstrap servers, host:port)")
    if role == "indexer" and not present("elasticsearch_url"):
        problems.append(f"{_env_name('elasticsearch_url')} is required by the indexer (e.g. https://es:9200)")
    if role == "receiver":
        if not any(present(port) for port in ("udp_port", "tcp_port", "tls_port")):
            problems.append(
                "the receiver has no listener: set at least one of "
                f"{_env_name('udp_port')}, {_env_name('tcp_port')}, {_env_name('tls_port')}"
            )
        if present("tls_port"):
            for needed in ("tls_cert_file", "tls_key_file"):
                if not present(needed):
                    problems.append(f"{_env_name(needed)} is required when {_env_name('tls_port')} is set")

    # Kafka security: protocol (any case), mutual TLS, SASL credentials
    raw_protocol = values.get("kafka_security_protocol")
    protocol = str(raw_protocol).strip().lower() if raw_protocol is not None else "plaintext"
    if protocol in SECURITY_PROTOCOLS:
        values["kafka_security_protocol"] = protocol
    mtls = [f for f in ("kafka_cert_file", "kafka_key_file") if present(f)]
    if len(mtls) == 1:
        missing = "kafka_key_file" if mtls[0] == "kafka_cert_file" else "kafka_cert_file"
        problems.append(
            f"{where(mtls[0])} is set but {_env_name(missing)} is not: mutual TLS to Kafka needs both the client "
            "certificate and its private key (set both, or neither)"
        )
    if mtls and protocol in SECURITY_PROTOCOLS and protocol not in TLS_PROTOCOLS:
        problems.append(
            f"{' and '.join(where(f) for f in mtls)} need {_env_name('kafka_security_protocol')} ssl or sasl_ssl "
            f"(it is {protocol}): a client certificate is only presented over TLS (set the protocol to ssl or "
            "sasl_ssl, or unset the certificate and key)"
        )
    if present("kafka_password") and present("kafka_password_file"):
        problems.append(
            f"{where('kafka_password')} and {where('kafka_password_file')} are both set: give the Kafka password "
            "one way only (unset one of them)"
        )
    if protocol.startswith("sasl"):
        if not present("kafka_username"):
            problems.append(
                f"{_env_name('kafka_security_protocol')}={protocol} needs {_env_name('kafka_username')} (the SASL user)"
            )
        if not present("kafka_password") and not present("kafka_password_file"):
            problems.append(
                f"{_env_name('kafka_security_protocol')}={protocol} needs a password: set "
                f"{_env_name('kafka_password_file')} (a mounted secret file) or {_env_name('kafka_password')}"
            )
    if present("elasticsearch_password") and present("elasticsearch_password_file"):
        problems.append(
            f"{where('elasticsearch_password')} and {where('elasticsearch_password_file')} are both set: give the "
            "Elasticsearch password one way only (unset one of them)"
        )
    for secret in ("elasticsearch_password", "elasticsearch_password_file"):
        if present(secret) and not present("elasticsearch_username"):
            problems.append(
                f"{where(secret)} is set but {_env_name('elasticsearch_username')} is not: basic auth needs the "
                "user too (set it, or unset the password)"
            )

    # every file setting: exists, is a file, this process can read it; secret files are read now
    file_secrets: dict[str, SecretStr | None] = {}
    for field in FILE_FIELDS:
        if not present(field):
            continue
        content = _check_file(where(field), Path(str(values[field])), problems)
        if content is not None and field in SECRET_FILE_FIELDS:
            file_secrets[field] = _secret_from_file(where(field), content, problems)

    config: WorkerConfig | None = None
    try:
        config = WorkerConfig.model_validate({k: v for k, v in values.items() if v is not None or k in from_env})
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            if error["type"] == "missing":
                continue  # reported above with the way out
            shown = "<hidden>" if field in SECRET_FIELDS else repr(values.get(field))
            problems.append(f"{where(field)}={shown}: {error['msg']}")
    if config is not None and config.retry_initial_ms > config.retry_max_ms:
        problems.append(
            f"{_env_name('retry_initial_ms')} ({config.retry_initial_ms}) must not exceed "
            f"{_env_name('retry_max_ms')} ({config.retry_max_ms})"
        )
    if problems or config is None:
        raise ConfigProblems(problems or ["configuration could not be validated"])
    config._kafka_file_secret = file_secrets.get("kafka_password_file")
    config._elasticsearch_file_secret = file_secrets.get("elasticsearch_password_file")
    return config


def load_config_from_process(role: Role, file_path: str | None) -> WorkerConfig:
    return load_config(role, os.environ, Path(file_path) if file_path else None)
