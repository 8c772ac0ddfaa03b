"""The security part of the configuration contract: protocol case, mutual TLS files, SASL and Elasticsearch
passwords inline or from a file, readable files, and secrets that never show."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from toolkit.worker.config import ConfigProblems, load_config
from toolkit.worker.main import main

BASE = {"TOOLKIT_WORKER_KAFKA_BOOTSTRAP": "k:9093"}
INDEXER = {**BASE, "TOOLKIT_WORKER_ELASTICSEARCH_URL": "https://es:9200"}
SECRET = "s3cr3t-Value-that-must-never-show"


def problems_of(role: str, environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigProblems) as caught:
        load_config(role, environ)  # type: ignore[arg-type]
    return caught.value.problems


@pytest.fixture
def pem(tmp_path: Path) -> dict[str, str]:
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n")
    return {"TOOLKIT_WORKER_KAFKA_CERT_FILE": str(cert), "TOOLKIT_WORKER_KAFKA_KEY_FILE": str(key)}


@pytest.mark.parametrize("given", ["SASL_SSL", "sasl_ssl", "Sasl_Ssl", " SSL ", "PLAINTEXT", "sasl_plaintext"])
def test_security_protocol_is_case_insensitive_and_normalised(given: str, tmp_path: Path):
    secret = tmp_path / "pw"
    secret.write_text(SECRET + "\n")
    config = load_config(
        "receiver",
        {
            **BASE,
            "TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL": given,
            "TOOLKIT_WORKER_KAFKA_USERNAME": "syslog-receiver",
            "TOOLKIT_WORKER_KAFKA_PASSWORD_FILE": str(secret),
        },
    )
    assert config.kafka_security_protocol == given.strip().lower()
    assert config.kafka_client_settings()["security.protocol"] == given.strip().lower()


def test_unknown_security_protocol_names_the_choices():
    [problem] = problems_of("receiver", {**BASE, "TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL": "tls"})
    assert problem.startswith("TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL='tls'")
    assert "'plaintext', 'ssl', 'sasl_plaintext' or 'sasl_ssl'" in problem


def test_mutual_tls_files_become_librdkafka_settings(pem: dict[str, str]):
    config = load_config("receiver", {**BASE, **pem, "TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL": "SSL"})
    settings = config.kafka_client_settings()
    assert settings["security.protocol"] == "ssl"
    assert settings["ssl.certificate.location"] == pem["TOOLKIT_WORKER_KAFKA_CERT_FILE"]
    assert settings["ssl.key.location"] == pem["TOOLKIT_WORKER_KAFKA_KEY_FILE"]
    assert "sasl.password" not in settings


@pytest.mark.parametrize("only", ["TOOLKIT_WORKER_KAFKA_CERT_FILE", "TOOLKIT_WORKER_KAFKA_KEY_FILE"])
def test_certificate_and_key_come_together(pem: dict[str, str], only: str):
    [problem] = problems_of("receiver", {**BASE, only: pem[only], "TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL": "ssl"})
    other = ({*pem} - {only}).pop()
    assert problem.startswith(f"{only} is set but {other} is not")
    assert "set both, or neither" in problem


@pytest.mark.parametrize("protocol", ["plaintext", "SASL_PLAINTEXT"])
def test_client_certificate_needs_a_tls_protocol(pem: dict[str, str], protocol: str, tmp_path: Path):
    environ = {**BASE, **pem, "TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL": protocol}
    if protocol.lower().startswith("sasl"):
        environ |= {"TOOLKIT_WORKER_KAFKA_USERNAME": "u", "TOOLKIT_WORKER_KAFKA_PASSWORD": SECRET}
    [problem] = problems_of("receiver", environ)
    assert "TOOLKIT_WORKER_KAFKA_CERT_FILE and TOOLKIT_WORKER_KAFKA_KEY_FILE need" in problem
    assert f"ssl or sasl_ssl (it is {protocol.lower()})" in problem and "unset the certificate" in problem


def test_sasl_password_from_a_file_loses_one_trailing_newline_only(tmp_path: Path):
    secret = tmp_path / "password"
    secret.write_bytes(SECRET.encode() + b"\n\n")  # the second newline is part of the password
    config = load_config(
        "receiver",
        {
            **BASE,
            "TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "TOOLKIT_WORKER_KAFKA_USERNAME": "syslog-receiver",
            "TOOLKIT_WORKER_KAFKA_PASSWORD_FILE": str(secret),
        },
    )
    settings = config.kafka_client_settings()
    assert settings["sasl.password"] == SECRET + "\n"
    assert settings["sasl.username"] == "syslog-receiver" and settings["sasl.mechanism"] == "SCRAM-SHA-512"
    secret.write_bytes(SECRET.encode() + b"\r\n")
    again = load_config("receiver", {**BASE, "TOOLKIT_WORKER_KAFKA_PASSWORD_FILE": str(secret)})
    assert again.kafka_secret() == SECRET


def test_password_and_password_file_both_set_is_refused(tmp_path: Path):
    secret = tmp_path / "password"
    secret.write_text(SECRET)
    problems = problems_of(
        "indexer",
        {
            **INDEXER,
            "TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "TOOLKIT_WORKER_KAFKA_USERNAME": "indexer",
            "TOOLKIT_WORKER_KAFKA_PASSWORD": SECRET,
            "TOOLKIT_WORKER_KAFKA_PASSWORD_FILE": str(secret),
            "TOOLKIT_WORKER_ELASTICSEARCH_USERNAME": "indexer",
            "TOOLKIT_WORKER_ELASTICSEARCH_PASSWORD": SECRET,
            "TOOLKIT_WORKER_ELASTICSEARCH_PASSWORD_FILE": str(secret),
        },
    )
    assert problems == [
        "TOOLKIT_WORKER_KAFKA_PASSWORD and TOOLKIT_WORKER_KAFKA_PASSWORD_FILE are both set: give the Kafka "
        "password one way only (unset one of them)",
        "TOOLKIT_WORKER_ELASTICSEARCH_PASSWORD and TOOLKIT_WORKER_ELASTICSEARCH_PASSWORD_FILE are both set: give "
        "the Elasticsearch password one way only (unset one of them)",
    ]
    assert all(SECRET not in problem for problem in problems)


def test_sasl_needs_a_username_and_a_password():
    problems = problems_of("receiver", {**BASE, "TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    assert problems == [
        "TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL=sasl_ssl needs TOOLKIT_WORKER_KAFKA_USERNAME (the SASL user)",
        "TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL=sasl_ssl needs a password: set TOOLKIT_WORKER_KAFKA_PASSWORD_FILE "
        "(a mounted secret file) or TOOLKIT_WORKER_KAFKA_PASSWORD",
    ]


def test_elasticsearch_password_from_a_file_reaches_basic_auth(tmp_path: Path):
    from toolkit.worker.indexer import elasticsearch_client

    secret = tmp_path / "es-password"
    secret.write_text(SECRET + "\n")
    config = load_config(
        "indexer",
        {
            **INDEXER,
            "TOOLKIT_WORKER_ELASTICSEARCH_USERNAME": "indexer",
            "TOOLKIT_WORKER_ELASTICSEARCH_PASSWORD_FILE": str(secret),
        },
    )
    assert config.elasticsearch_secret() == SECRET
    client = elasticsearch_client(config)
    import base64

    header = client.transport.node_pool.get().config.headers.get("authorization") or client._headers["authorization"]
    assert header == "Basic " + base64.b64encode(f"indexer:{SECRET}".encode()).decode()


def test_elasticsearch_password_without_a_user_is_refused(tmp_path: Path):
    [problem] = problems_of("indexer", {**INDEXER, "TOOLKIT_WORKER_ELASTICSEARCH_PASSWORD": SECRET})
    assert problem.startswith("TOOLKIT_WORKER_ELASTICSEARCH_PASSWORD is set but TOOLKIT_WORKER_ELASTICSEARCH_USERNAME")


FILE_SETTINGS = [
    "TOOLKIT_WORKER_KAFKA_CA_FILE",
    "TOOLKIT_WORKER_KAFKA_PASSWORD_FILE",
    "TOOLKIT_WORKER_ELASTICSEARCH_CA_FILE",
    "TOOLKIT_WORKER_ELASTICSEARCH_PASSWORD_FILE",
]


@pytest.mark.parametrize("variable", FILE_SETTINGS)
def test_missing_file_names_the_variable_the_path_and_the_problem(variable: str, tmp_path: Path):
    missing = tmp_path / "nowhere.pem"
    extra = {"TOOLKIT_WORKER_ELASTICSEARCH_USERNAME": "u"} if "ELASTICSEARCH_PASSWORD" in variable else {}
    [problem] = problems_of("indexer", {**INDEXER, **extra, variable: str(missing)})
    assert problem == f"{variable}={str(missing)!r}: the file does not exist (create it, or point the setting at it)"


@pytest.mark.parametrize("variable", FILE_SETTINGS)
def test_a_directory_is_not_a_readable_file(variable: str, tmp_path: Path):
    extra = {"TOOLKIT_WORKER_ELASTICSEARCH_USERNAME": "u"} if "ELASTICSEARCH_PASSWORD" in variable else {}
    [problem] = problems_of("indexer", {**INDEXER, **extra, variable: str(tmp_path)})
    assert problem == f"{variable}={str(tmp_path)!r}: not a regular file (point the setting at the file itself)"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 file: see test_unreadable_file_as_root")
def test_unreadable_file_is_refused(pem: dict[str, str]):
    key = Path(pem["TOOLKIT_WORKER_KAFKA_KEY_FILE"])
    key.chmod(0)
    problems = problems_of("receiver", {**BASE, **pem, "TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL": "ssl"})
    assert problems == [
        f"TOOLKIT_WORKER_KAFKA_KEY_FILE={str(key)!r}: cannot be read by this process (Permission denied); fix the "
        "file's owner/mode (or the volume's defaultMode), or run as a user that can read it"
    ]


def test_unreadable_file_as_root(pem: dict[str, str], tmp_path: Path):
    """As root, permission bits do not stop a read, so the check opens the file instead of trusting the mode: a
    FIFO with no writer cannot be read (and is not a regular file either), and a mode-000 file is accepted because
    root really can read it."""
    key = Path(pem["TOOLKIT_WORKER_KAFKA_KEY_FILE"])
    key.chmod(0)
    environ = {**BASE, **pem, "TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL": "ssl"}
    if os.geteuid() == 0:
        assert load_config("receiver", environ).kafka_key_file == key
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    [problem] = problems_of("receiver", {**environ, "TOOLKIT_WORKER_KAFKA_KEY_FILE": str(fifo)})
    assert problem.startswith(f"TOOLKIT_WORKER_KAFKA_KEY_FILE={str(fifo)!r}: not a regular file")


def test_empty_or_binary_password_file_is_refused(tmp_path: Path):
    empty, binary = tmp_path / "empty", tmp_path / "binary"
    empty.write_text("\n")
    binary.write_bytes(b"\xff\xfe\x00")
    problems = problems_of(
        "indexer",
        {
            **INDEXER,
            "TOOLKIT_WORKER_KAFKA_PASSWORD_FILE": str(empty),
            "TOOLKIT_WORKER_ELASTICSEARCH_USERNAME": "u",
            "TOOLKIT_WORKER_ELASTICSEARCH_PASSWORD_FILE": str(binary),
        },
    )
    assert problems == [
        "TOOLKIT_WORKER_KAFKA_PASSWORD_FILE: the file is empty (write the password into it)",
        "TOOLKIT_WORKER_ELASTICSEARCH_PASSWORD_FILE: the file is not UTF-8 text (write the password as plain text)",
    ]


def test_every_security_problem_is_listed_at_once(tmp_path: Path, pem: dict[str, str]):
    problems = problems_of(
        "indexer",
        {
            "TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
            "TOOLKIT_WORKER_KAFKA_CERT_FILE": pem["TOOLKIT_WORKER_KAFKA_CERT_FILE"],
            "TOOLKIT_WORKER_KAFKA_PASSWORD": SECRET,
            "TOOLKIT_WORKER_KAFKA_PASSWORD_FILE": str(tmp_path / "missing"),
            "TOOLKIT_WORKER_ELASTICSEARCH_PASSWORD_FILE": str(tmp_path),
            "TOOLKIT_WORKER_KAFKA_SECRET": "typo",
        },
    )
    text = "\n".join(problems)
    for fragment in (
        "TOOLKIT_WORKER_KAFKA_SECRET: unknown variable",
        "TOOLKIT_WORKER_KAFKA_BOOTSTRAP is required",
        "TOOLKIT_WORKER_ELASTICSEARCH_URL is required",
        "TOOLKIT_WORKER_KAFKA_KEY_FILE is not",
        "need TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL ssl or sasl_ssl",
        "TOOLKIT_WORKER_KAFKA_PASSWORD and TOOLKIT_WORKER_KAFKA_PASSWORD_FILE are both set",
        "needs TOOLKIT_WORKER_KAFKA_USERNAME",
        "TOOLKIT_WORKER_ELASTICSEARCH_PASSWORD_FILE is set but TOOLKIT_WORKER_ELASTICSEARCH_USERNAME is not",
        "missing': the file does not exist",
        "TOOLKIT_WORKER_ELASTICSEARCH_PASSWORD_FILE=" + repr(str(tmp_path)) + ": not a regular file",
    ):
        assert fragment in text, f"{fragment!r} not in:\n{text}"
    assert len(problems) == 10
    assert SECRET not in text


def test_secrets_never_show_in_repr_dump_check_config_or_logs(tmp_path, monkeypatch, capsys, caplog):
    kafka_file, es_file = tmp_path / "kafka-pw", tmp_path / "es-pw"
    kafka_file.write_text(SECRET + "-kafka\n")
    es_file.write_text(SECRET + "-es\n")
    for name in list(os.environ):
        if name.startswith("TOOLKIT_WORKER_"):
            monkeypatch.delenv(name)
    environ = {
        **INDEXER,
        "TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "TOOLKIT_WORKER_KAFKA_USERNAME": "indexer",
        "TOOLKIT_WORKER_KAFKA_PASSWORD_FILE": str(kafka_file),
        "TOOLKIT_WORKER_ELASTICSEARCH_USERNAME": "indexer",
        "TOOLKIT_WORKER_ELASTICSEARCH_PASSWORD": SECRET + "-inline",
    }
    config = load_config("indexer", environ)
    for shown in (repr(config), str(config), str(config.model_dump()), config.model_dump_json()):
        assert SECRET not in shown
    logging.getLogger("toolkit.worker").error("config", extra={"config": config})
    assert SECRET not in caplog.text
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert main(["indexer", "--check-config"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out
    lines = dict(line.split("=", 1) for line in out.splitlines())
    assert lines["kafka_security_protocol"] == "sasl_ssl"
    assert lines["elasticsearch_password"] == "<hidden>"
    assert lines["kafka_password"] == ""  # not set inline: the file's path is shown, never its content
    assert lines["kafka_password_file"] == str(kafka_file)
    monkeypatch.delenv("TOOLKIT_WORKER_ELASTICSEARCH_PASSWORD")
    monkeypatch.setenv("TOOLKIT_WORKER_ELASTICSEARCH_PASSWORD_FILE", str(es_file))
    assert main(["indexer", "--check-config"]) == 0
    assert SECRET not in capsys.readouterr().out


def test_check_config_with_problems_exits_2_and_starts_nothing(monkeypatch, capsys, tmp_path):
    for name in list(os.environ):
        if name.startswith("TOOLKIT_WORKER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TOOLKIT_WORKER_KAFKA_BOOTSTRAP", "k:9093")
    monkeypatch.setenv("TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL", "ssl")
    monkeypatch.setenv("TOOLKIT_WORKER_KAFKA_CERT_FILE", str(tmp_path / "absent.crt"))
    monkeypatch.setenv("TOOLKIT_WORKER_KAFKA_PASSWORD", SECRET)
    monkeypatch.setenv("TOOLKIT_WORKER_KAFKA_PASSWORD_FILE", str(tmp_path / "absent"))
    assert main(["receiver", "--check-config"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "invalid configuration (4 problem(s))" in captured.err and SECRET not in captured.err
