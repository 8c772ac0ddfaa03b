"""`toolkit region up` end to end: compliance (real, mocks) -> preflight (moto) -> preview -> approval -> apply
(the Pulumi CLI replaced at the Automation API's outermost edge) -> kubeconfig -> deploy -> smoke (the real probe
through a real receiver and indexer and the single-node Kafka + Elasticsearch peer) -> summary."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from toolkit.cli.region import app
from toolkit.config.region import load_region
from toolkit.provision import region_up as chain
from toolkit.rehearsal.smoke import ElasticsearchTarget, KafkaTarget, SmokeTarget, SyslogTarget, smoke_with
from toolkit.targets.peer import free_port

pytestmark = pytest.mark.wire
runner = CliRunner()


def _endpoints_file(tmp_path: Path, peer, names, receiver_port: int) -> Path:
    path = tmp_path / "smoke.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "syslog": {"host": "127.0.0.1", "port": receiver_port},
                "kafka": {"bootstrap": peer.kafka_bootstrap},
                "elasticsearch": {"url": peer.elasticsearch_url},
                "events_topic": names["topic"],
                "write_alias": names["alias"],
            }
        )
    )
    return path


def _up(*args: str, input: str | None = None):
    return runner.invoke(app, ["up", "eu-west-1", *args], input=input)


@pytest.mark.slow
def test_failed_deploy_exits_non_zero_and_a_rerun_resumes_to_a_serving_platform(
    account, project, engine, peer, kafka_topics, index_layout, names, start_worker, tmp_path, monkeypatch
) -> None:
    """First run: the real deploy (toolkit deploy) fails, the cluster's endpoint does not answer. After the cause is
    fixed (here: a deploy that starts the real worker processes on loopback, what deploy does in a cluster), the
    same command resumes: nothing to approve or apply, deploy, then the real smoke probe passes. An indexer stopped
    afterwards makes `up` fail at the smoke step, naming the hop."""
    receiver_port = free_port()
    smoke = _endpoints_file(tmp_path, peer, names, receiver_port)
    first = _up("--yes", "--smoke-endpoints", str(smoke))
    assert first.exit_code == 1, first.output
    assert "[1/8] compliance ok" in first.output and "[2/8] preflight  ok" in first.output
    assert "approved by --yes: plan " in first.output and "[5/8] apply      ok   applied plan" in first.output
    assert "region up eu-west-1 failed at step deploy:" in first.output
    assert "cluster-eks.eks.mock" in first.output  # the real deploy tried the new cluster's endpoint
    assert "resume: fix the cause, then rerun `toolkit region up eu-west-1`" in first.output
    assert "smoke      not run" in first.output
    created = len(engine.states["eu-west-1"].resources)
    assert created > 100 and engine.ups == 1
    kubeconfig = yaml.safe_load(Path(tmp_path / "kube" / "config").read_text())
    (context,) = kubeconfig["contexts"]
    assert context["name"] == "secplat-eu-west-1"
    (user,) = kubeconfig["users"]
    assert user["user"]["exec"]["args"] == [
        "eks",
        "get-token",
        "--cluster-name",
        "secplat-eu-west-1",
        "--region",
        "eu-west-1",
    ]
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://cluster-eks.eks.mock"

    workers: dict[str, object] = {}

    def fixed_deploy(ctx: chain.UpContext) -> chain.StepOutcome:
        if not workers:
            workers["receiver"] = start_worker("receiver", tcp_port=receiver_port)
            workers["indexer"] = start_worker("indexer")
        return chain.StepOutcome(True, "receiver and indexer running")

    monkeypatch.setattr(chain, "deploy_with_toolkit", fixed_deploy)
    second = _up("--smoke-endpoints", str(smoke))  # no --yes: nothing to approve, so nothing is asked
    assert second.exit_code == 0, second.output
    assert "[4/8] approve    skip nothing to change" in second.output
    assert "[5/8] apply      skip nothing to apply" in second.output
    assert "[6/8] kubeconfig skip context secplat-eu-west-1" in second.output
    assert (
        "[8/8] smoke      ok   probe smoke-" in second.output and "region eu-west-1 is up and serves" in second.output
    )
    assert engine.ups == 1 and len(engine.states["eu-west-1"].resources) == created
    assert set(engine.backends) == {"s3://secplat-pulumi-state-eu?region=eu-west-1"}

    indexer = workers["indexer"]
    indexer.process.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
    indexer.process.wait(30)  # type: ignore[attr-defined]
    third = _up("--smoke-endpoints", str(smoke), "--smoke-timeout", "8")
    assert third.exit_code == 1, third.output
    assert "region up eu-west-1 failed at step smoke: probe smoke-" in third.output
    assert "stopped at hop elasticsearch" in third.output
    assert "[FAIL] elasticsearch" in third.output


def test_declined_plan_changes_nothing(account, project, engine, peer, names, tmp_path) -> None:
    result = _up("--smoke-endpoints", str(_endpoints_file(tmp_path, peer, names, 9)), input="n\n")
    assert result.exit_code == 3, result.output
    assert "apply exactly plan" in result.output and "failed at step approve: plan" in result.output
    assert "was not approved" in result.output and "nothing was changed" in result.output
    assert engine.ups == 0 and not engine.states["eu-west-1"].resources


def test_plan_changed_after_approval_is_refused_by_the_update_plan(account, project, engine, peer, names, tmp_path):
    engine.extra_before_up = True
    result = _up("--yes", "--smoke-endpoints", str(_endpoints_file(tmp_path, peer, names, 9)))
    assert result.exit_code == 1, result.output
    assert "failed at step apply: CommandError" in result.output and "violates plan" in result.output
    assert not engine.states["eu-west-1"].resources


def test_an_update_that_ignored_the_plan_is_caught(account, project, engine, peer, names, tmp_path) -> None:
    engine.extra_before_up, engine.ignore_plan = True, True
    result = _up("--yes", "--smoke-endpoints", str(_endpoints_file(tmp_path, peer, names, 9)))
    assert result.exit_code == 1, result.output
    assert "failed at step apply: PlanDeviationError" in result.output
    assert "not approved: create added-after-preview" in result.output


def test_compliance_and_preflight_stop_before_pulumi(account, project, engine, peer, names, tmp_path) -> None:
    path = project / "Pulumi.eu-west-1.yaml"
    document = yaml.safe_load(path.read_text())
    smoke = str(_endpoints_file(tmp_path, peer, names, 9))
    document["config"]["region:controlPlaneLogTypes"] = ["api"]
    path.write_text(yaml.safe_dump(document))
    violated = _up("--yes", "--smoke-endpoints", smoke)
    assert violated.exit_code == 3 and "failed at step compliance: 1 violation(s)" in violated.output
    assert "[logging] aws:eks/cluster:Cluster 'cluster-eks'" in violated.output
    document["config"]["region:controlPlaneLogTypes"] = ["api", "audit", "authenticator"]
    document["config"]["region:stateBackend"] = "s3://no-such-state-bucket?region=eu-west-1"
    path.write_text(yaml.safe_dump(document))
    unready = _up("--yes", "--smoke-endpoints", smoke)
    assert unready.exit_code == 3 and "failed at step preflight" in unready.output
    assert "state bucket no-such-state-bucket is not reachable" in unready.output
    assert engine.previews == 0 and engine.ups == 0


def test_bad_smoke_endpoints_are_refused_before_anything(account, project, engine, tmp_path) -> None:
    missing = _up("--yes")
    assert missing.exit_code == 2 and "--smoke-endpoints FILE" in missing.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"syslog": {"host": "h", "port": "514"}, "kafka": {}, "elasticsearch": {}}))
    refused = _up("--yes", "--smoke-endpoints", str(bad))
    assert refused.exit_code == 2 and "syslog.port must be a port number (got '514')" in refused.output
    secret = tmp_path / "secret.yaml"
    secret.write_text(
        yaml.safe_dump(
            {
                "syslog": {"host": "h", "port": 514},
                "kafka": {"bootstrap": "k:9092"},
                "elasticsearch": {"url": "https://es:9200", "password": "hunter2"},
                "events_topic": "t",
                "write_alias": "a",
            }
        )
    )
    leaked = _up("--yes", "--smoke-endpoints", str(secret))
    assert leaked.exit_code == 2 and "secrets never go in the file; name the variable in password_env" in leaked.output
    assert engine.previews == 0


def test_chain_with_deploy_passed_in_serves_then_fails_at_smoke_when_an_indexer_stops(
    account, project, engine, peer, kafka_topics, index_layout, names, start_worker, tmp_path
) -> None:
    """deploy and smoke as functions passed in: deploy starts the real worker processes on loopback (what the
    main deploy does in a cluster), smoke is the real probe."""
    config = load_region("eu-west-1", project)
    workers: dict[str, object] = {}
    deploy_calls: list[str] = []

    def deploy(ctx: chain.UpContext) -> chain.StepOutcome:
        deploy_calls.append(ctx.config.name)
        if len(deploy_calls) == 1:
            raise RuntimeError("helm: release elasticsearch failed: timed out waiting for the condition")
        if not workers:
            workers["receiver"] = start_worker("receiver")
            workers["indexer"] = start_worker("indexer")
        return chain.StepOutcome(True, "receiver and indexer running")

    def target(ctx: chain.UpContext) -> SmokeTarget:
        return SmokeTarget(
            SyslogTarget("127.0.0.1", workers["receiver"].ports["tcp"]),  # type: ignore[attr-defined]
            KafkaTarget(peer.kafka_bootstrap),
            ElasticsearchTarget(peer.elasticsearch_url),
            names["topic"],
            names["alias"],
        )

    def run() -> chain.UpReport:
        from toolkit.provision.pulumi import RegionStacks

        return chain.region_up(
            config,
            stacks=lambda: RegionStacks(config, project),
            compliance=chain.compliance_step(project),
            preflight=chain.preflight_step,
            approve=lambda changes: True,
            deploy=deploy,
            smoke=smoke_with(target, hop_timeout=8),
            kubeconfig_path=tmp_path / "kubeconfig",
            state_dir=tmp_path / "up",
        )

    with pytest.raises(chain.UpFailed) as failed:
        run()
    assert failed.value.step == "deploy" and "timed out waiting" in failed.value.detail
    assert [s.status for s in failed.value.report.steps] == ["done"] * 6 + ["failed", "not run"]

    report = run()
    assert report.ok and [s.status for s in report.steps] == [
        "done",
        "done",
        "done",
        "skipped",
        "skipped",
        "skipped",
        "done",
        "done",
    ]
    assert "went syslog -> Kafka -> Elasticsearch" in report.steps[-1].detail
    assert report.outputs["snapshotBucket"] == "secplat-eu-west-1-es-snapshots-mock"
    assert engine.ups == 1

    indexer = workers["indexer"]
    indexer.process.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
    indexer.process.wait(30)  # type: ignore[attr-defined]
    with pytest.raises(chain.UpFailed) as smoke_failed:
        run()
    assert smoke_failed.value.step == "smoke"
    assert "stopped at hop elasticsearch" in smoke_failed.value.detail
    assert "the platform is deployed but did not serve the probe" in smoke_failed.value.resume
