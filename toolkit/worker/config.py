"""Worker configuration: environment variables `TOOLKIT_WORKER_<FIELD>` over an optional YAML file.

Sources, lowest precedence first: defaults, the YAML file named by `--config` or `TOOLKIT_WORKER_CONFIG_FILE`
(a mapping of field names), then the environment. An environment variable set to the empty string or `off`
clears an optional field (for example `TOOLKIT_WORKER_UDP_PORT=off` turns the UDP listener off).

Validation happens once, at start, and collects EVERY problem before failing: unreadable file, unknown keys in
the file, unknown `TOOLKIT_WORKER_*` variables (a typo must not silently fall back to a default), field values
that fail their type or range, and the rules of the chosen role (the indexer needs Elasticsearch; the receiver
needs at least one listener; TLS needs a certificate and key that exist). `load_config` raises
`ConfigProblems` holding the full list; `toolkit-worker` prints them and exits with status 2.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Role = Literal["receiver", "indexer"]
ENV_PREFIX = "TOOLKIT_WORKER_"
CONFIG_FILE_ENV = "TOOLKIT_WORKER_CONFIG_FILE"
_CLEARED = ("", "off", "none")


class WorkerConfig(BaseModel):
    """Every setting of both roles; each field is also `TOOLKIT_WORKER_<NAME>` in the environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Kafka
    kafka_bootstrap: str = Field(min_length=1, description="host:port[,host:port...]")
    kafka_security_protocol: Literal["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"] = "plaintext"
    kafka_ca_file: Path | None = None
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_username: str | None = None
    kafka_password: str | None = None
    topic: str = Field("syslog-raw", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    dead_letter_topic: str = Field("syslog-dead-letter", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    consumer_group: str = Field("toolkit-indexer", min_length=1)
    kafka_compression: Literal["none", "lz4", "zstd", "gzip", "snappy"] = "lz4"

    # Elasticsearch (indexer only)
    elasticsearch_url: str | None = None
    elasticsearch_username: str | None = None
    elasticsearch_password: str | None = None
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
    max_message_bytes: int = Field(65_536, ge=480, le=16 * 1024 * 1024)
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

    @field_validator("tls_cert_file", "tls_key_file", "kafka_ca_file", "elasticsearch_ca_file")
    @classmethod
    def _file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file {str(value)!r} does not exist or is not a file")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.rfc3164_timezone)

    def kafka_client_settings(self) -> dict[str, Any]:
        """librdkafka settings shared by the producer and the consumer."""
        settings: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_ca_file is not None:
            settings["ssl.ca.location"] = str(self.kafka_ca_file)
        if self.kafka_security_protocol.startswith("sasl"):
            settings["sasl.mechanism"] = self.kafka_sasl_mechanism
            settings["sasl.username"] = self.kafka_username or ""
            settings["sasl.password"] = self.kafka_password or ""
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
    sasl = str(values.get("kafka_security_protocol") or "").startswith("sasl")
    if sasl and not (present("kafka_username") and present("kafka_password")):
        problems.append(
            f"{_env_name('kafka_security_protocol')}={values['kafka_security_protocol']} needs "
            f"{_env_name('kafka_username')} and {_env_name('kafka_password')}"
        )

    config: WorkerConfig | None = None
    try:
        config = WorkerConfig.model_validate({k: v for k, v in values.items() if v is not None or k in from_env})
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            if error["type"] == "missing":
                continue  # reported above with the way out
            shown = values.get(field)
            problems.append(f"{_where(field, from_env, file_path)}={shown!r}: {error['msg']}")
    if config is not None and config.retry_initial_ms > config.retry_max_ms:
        problems.append(
            f"{_env_name('retry_initial_ms')} ({config.retry_initial_ms}) must not exceed "
            f"{_env_name('retry_max_ms')} ({config.retry_max_ms})"
        )
    if problems or config is None:
        raise ConfigProblems(problems or ["configuration could not be validated"])
    return config


def load_config_from_process(role: Role, file_path: str | None) -> WorkerConfig:
    return load_config(role, os.environ, Path(file_path) if file_path else None)
