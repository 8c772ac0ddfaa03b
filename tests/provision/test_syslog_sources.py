"""Who may send syslog is never open by default: kind and local default to the networks their senders are on, a
region to its address block, and a `kube` cluster whose file lists none is refused by `toolkit deploy` (and
`--render`) with the key to set, before anything is rendered or changed. Through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from toolkit.cli.main import app
from toolkit.config.environments import resolve, stacks_dir
from toolkit.config.region import load_region


def test_kinds_default_to_their_senders_networks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert [str(c) for c in resolve("kind").platform.workers.syslog_sources] == ["172.16.0.0/12"]
    assert [str(c) for c in resolve("local").platform.workers.syslog_sources] == ["10.0.0.0/8", "127.0.0.0/8"]
    region = load_region("eu-west-1", stacks_dir())
    assert [str(c) for c in resolve("eu-west-1").platform.workers.syslog_sources] == [str(region.address_block)]
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"kind": "local", "kubeconfig": "/nowhere"}))
    monkeypatch.setenv("TOOLKIT_ENVIRONMENTS_DIR", str(tmp_path))
    assert resolve("mine").platform.workers.syslog_sources == resolve("local").platform.workers.syslog_sources


def test_a_kube_cluster_without_senders_is_refused_before_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    envs = tmp_path / "envs"
    envs.mkdir()
    (envs / "prod.yaml").write_text(yaml.safe_dump({"kind": "kube", "kube_context": "prod"}))
    monkeypatch.setenv("TOOLKIT_ENVIRONMENTS_DIR", str(envs))
    out = tmp_path / "rendered"
    for argv in (["deploy", "--env", "prod", "--render", str(out)], ["deploy", "--env", "prod"]):
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 2, result.output
        assert "platform.workers.syslog_sources is empty" in result.output
        assert str(envs / "prod.yaml") in result.output and "nothing was changed" in result.output
    assert not out.exists()
