"""Configuration: environment over file, every problem listed at once, exit status 2."""

from pathlib import Path

import pytest

from toolkit.worker.config import ConfigProblems, load_config
from toolkit.worker.main import main

BASE = {"TOOLKIT_WORKER_KAFKA_BOOTSTRAP": "k:9092"}


def test_defaults_and_environment_types():
    config = load_config("receiver", {**BASE, "TOOLKIT_WORKER_UDP_PORT": "1514", "TOOLKIT_WORKER_TCP_PORT": "off"})
    assert config.udp_port == 1514 and config.tcp_port is None and config.max_in_flight == 20_000


def test_environment_overrides_the_file(tmp_path: Path):
    file = tmp_path / "worker.yaml"
    file.write_text("batch_size: 500\nwrite_alias: from-file\nelasticsearch_url: http://es:9200\n")
    config = load_config("indexer", {**BASE, "TOOLKIT_WORKER_BATCH_SIZE": "750"}, file)
    assert config.batch_size == 750 and config.write_alias == "from-file"
    via_env = load_config("indexer", {**BASE, "TOOLKIT_WORKER_CONFIG_FILE": str(file)})
    assert via_env.batch_size == 500


def test_every_problem_is_listed_at_once(tmp_path: Path):
    file = tmp_path / "worker.yaml"
    file.write_text("batch_sise: 10\nmax_in_flight: 0\n")
    environ = {
        "TOOLKIT_WORKER_UDP_PORT": "70000",
        "TOOLKIT_WORKER_TCP_PORT": "off",
        "TOOLKIT_WORKER_TLS_PORT": "6514",
        "TOOLKIT_WORKER_TLS_CERT_FILE": str(tmp_path / "missing.pem"),
        "TOOLKIT_WORKER_LOG_LEVEL": "LOUD",
        "TOOLKIT_WORKER_RFC3164_TIMEZONE": "Mars/Olympus",
        "TOOLKIT_WORKER_BACTH_SIZE": "5",
    }
    with pytest.raises(ConfigProblems) as caught:
        load_config("receiver", environ, file)
    text = "\n".join(caught.value.problems)
    for expected in (
        "TOOLKIT_WORKER_KAFKA_BOOTSTRAP is required",
        "unknown setting 'batch_sise'",
        "TOOLKIT_WORKER_BACTH_SIZE: unknown variable",
        "TOOLKIT_WORKER_UDP_PORT='70000'",
        "TOOLKIT_WORKER_TLS_KEY_FILE is required when TOOLKIT_WORKER_TLS_PORT is set",
        "missing.pem': the file does not exist",
        "TOOLKIT_WORKER_LOG_LEVEL='LOUD'",
        "unknown time zone 'Mars/Olympus'",
        "max_in_flight in",
    ):
        assert expected in text, f"{expected!r} not reported in:\n{text}"
    assert len(caught.value.problems) == 9


def test_role_rules():
    with pytest.raises(ConfigProblems) as caught:
        load_config("indexer", BASE)
    assert caught.value.problems == [
        "TOOLKIT_WORKER_ELASTICSEARCH_URL is required by the indexer (e.g. https://es:9200)"
    ]
    with pytest.raises(ConfigProblems) as caught:
        load_config("receiver", {**BASE, **{f"TOOLKIT_WORKER_{p}_PORT": "off" for p in ("UDP", "TCP", "TLS")}})
    assert "the receiver has no listener" in caught.value.problems[0]
    with pytest.raises(ConfigProblems) as caught:
        load_config(
            "indexer",
            {
                **BASE,
                "TOOLKIT_WORKER_ELASTICSEARCH_URL": "http://e",
                "TOOLKIT_WORKER_RETRY_INITIAL_MS": "5000",
                "TOOLKIT_WORKER_RETRY_MAX_MS": "100",
            },
        )
    assert "must not exceed TOOLKIT_WORKER_RETRY_MAX_MS" in caught.value.problems[0]


def test_bad_yaml_file_is_a_problem_not_a_crash(tmp_path: Path):
    file = tmp_path / "worker.yaml"
    file.write_text("batch_size: [unclosed\n")
    with pytest.raises(ConfigProblems) as caught:
        load_config("receiver", BASE, file)
    assert "is not valid YAML" in caught.value.problems[0]


def test_command_line_exits_2_listing_problems(monkeypatch, capsys):
    for name in list(__import__("os").environ):
        if name.startswith("TOOLKIT_WORKER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TOOLKIT_WORKER_BATCH_SIZE", "zero")
    assert main(["indexer"]) == 2
    err = capsys.readouterr().err
    assert "invalid configuration (3 problem(s))" in err
    assert "TOOLKIT_WORKER_BATCH_SIZE='zero'" in err


def test_check_config_prints_settings_with_secrets_hidden(monkeypatch, capsys):
    monkeypatch.setenv("TOOLKIT_WORKER_KAFKA_BOOTSTRAP", "k:9092")
    monkeypatch.setenv("TOOLKIT_WORKER_ELASTICSEARCH_URL", "http://es:9200")
    monkeypatch.setenv("TOOLKIT_WORKER_ELASTICSEARCH_USERNAME", "indexer")
    monkeypatch.setenv("TOOLKIT_WORKER_ELASTICSEARCH_PASSWORD", "hunter2")
    assert main(["indexer", "--check-config"]) == 0
    out = capsys.readouterr().out
    assert "elasticsearch_password=<hidden>" in out and "hunter2" not in out
