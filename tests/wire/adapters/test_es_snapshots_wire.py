"""Snapshots against the single-node peer (noida-db): repository registration (idempotent; an S3 repository the
cluster cannot verify is refused with the causes to check), a snapshot taken and reported, and
`toolkit es snapshot --env E` end to end. The peer has no S3 backend, so the S3 path is proven up to the
cluster's own verification, which refuses it as a node without credentials would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from toolkit.config.access import EsConnection
from toolkit.targets.es_admin import client_for
from toolkit.targets.es_snapshots import (
    SnapshotError,
    register_repository,
    register_s3_repository,
    s3_repository_body,
    take_snapshot,
)

pytestmark = pytest.mark.wire


@pytest.fixture
def es(peer):
    connection = client_for(EsConnection(url=peer.elasticsearch_url))
    yield connection
    connection.close()


@pytest.fixture
def fs_repository(es, tmp_path: Path) -> str:
    result = register_repository(es, "local-fs", {"type": "fs", "settings": {"location": str(tmp_path / "repo")}})
    assert result.changed
    return "local-fs"


def test_repository_registration_is_idempotent(es, fs_repository, tmp_path: Path) -> None:
    again = register_repository(es, "local-fs", {"type": "fs", "settings": {"location": str(tmp_path / "repo")}})
    assert again.changed is False


def test_snapshot_is_taken_and_reported(es, fs_repository) -> None:
    es.index(index="events-snap-000001", document={"message": "one"}, refresh=True)
    es.index(index="events-snap-000001", document={"message": "two"}, refresh=True)
    report = take_snapshot(es, fs_repository, "nightly-1", indices="events-snap-*")
    assert report.ok, report
    assert (report.repository, report.snapshot, report.state) == ("local-fs", "nightly-1", "SUCCESS")
    assert report.indices == ("events-snap-000001",)
    assert report.shards_total == report.shards_successful >= 1 and report.shards_failed == 0
    listed = es.snapshot.get(repository=fs_repository, snapshot="nightly-1")["snapshots"]
    assert [s["snapshot"] for s in listed] == ["nightly-1"]


def test_snapshot_without_a_repository_is_refused(es) -> None:
    with pytest.raises(SnapshotError, match="snapshot repository s3-snapshots is not registered on this cluster"):
        take_snapshot(es)


def test_s3_repository_the_cluster_cannot_verify_is_refused_with_the_causes(es) -> None:
    assert s3_repository_body("secplat-eu-west-1-es-snapshots-abc") == {
        "type": "s3",
        "settings": {"bucket": "secplat-eu-west-1-es-snapshots-abc", "base_path": "elasticsearch", "client": "default"},
    }
    with pytest.raises(SnapshotError) as refused:
        register_s3_repository(es, "secplat-eu-west-1-es-snapshots-abc")
    message = str(refused.value)
    assert "Elasticsearch refused repository s3-snapshots (s3 " in message
    assert "repository_verification_exception" in message or "not accessible" in message
    assert "eks.amazonaws.com/role-arn = the stack output snapshotWriterRoleArn" in message
    assert es.snapshot.get_repository(name="_all").body.get("s3-snapshots") is None


def test_cli_snapshot_reports_and_refuses(peer, es, fs_repository, tmp_path: Path, monkeypatch) -> None:
    from toolkit.cli.es import app

    envs = tmp_path / "envs"
    envs.mkdir()
    secret = tmp_path / "password"
    secret.write_text("the peer does not check it\n")
    (envs / "peer.yaml").write_text(
        yaml.safe_dump(
            {
                "kind": "kube",
                "access": {
                    "elasticsearch": {"url": peer.elasticsearch_url, "username": "admin", "password_file": str(secret)},
                    "discover": False,  # everything is given: no cluster to read Services and Secrets from
                },
            }
        )
    )
    monkeypatch.setenv("TOOLKIT_ENVIRONMENTS_DIR", str(envs))
    es.index(index="events-cli-000001", document={"message": "x"}, refresh=True)
    runner = CliRunner()
    taken = runner.invoke(app, ["snapshot", "--env", "peer", "--repository", fs_repository, "--name", "cli-1"])
    assert taken.exit_code == 0, taken.output
    assert "snapshot local-fs/cli-1: SUCCESS in" in taken.output and "0 failed" in taken.output
    as_json = runner.invoke(
        app, ["snapshot", "--env", "peer", "--repository", fs_repository, "--name", "cli-2", "-o", "json"]
    )
    assert json.loads(as_json.output)["state"] == "SUCCESS" and json.loads(as_json.output)["ok"] is True
    missing = runner.invoke(app, ["snapshot", "--env", "peer"])
    assert missing.exit_code == 3
    assert "refused [elasticsearch.snapshot]: snapshot repository s3-snapshots is not registered" in missing.output
