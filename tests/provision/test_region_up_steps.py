"""The `region up` runner's rules, fast and offline: order, the first failure stops the chain with its resume
hint, an exception is a failed step, nothing to change skips approval and apply; the kubeconfig merge; the smoke
endpoints file; the snapshot chart values deploy merges in. The full chain runs in tests/wire/regions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from toolkit.config.region import load_region
from toolkit.provision import region_up as chain
from toolkit.provision.pulumi import ChangeSet, Step
from toolkit.rehearsal.smoke import SmokeTargetError, target_from_document
from toolkit.targets.es_snapshots import SnapshotError, snapshot_chart_values

STACKS = Path(__file__).resolve().parents[2] / "stacks"
OUTPUTS = {
    "clusterName": "secplat-eu-west-1",
    "clusterEndpoint": "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
    "clusterCertificateAuthority": "Q0E=",
    "awsRegion": "eu-west-1",
}


class Stacks:
    """An in-memory stand-in for RegionStacks (the runner's own rules are under test here, not Pulumi)."""

    def __init__(self, changes: ChangeSet) -> None:
        self.changes = changes
        self.applied: list[ChangeSet] = []

    def preview(self, plan_file: str | None = None) -> ChangeSet:
        if plan_file:
            Path(plan_file).write_text("{}")
        return ChangeSet(**{**self.changes.__dict__, "plan_file": plan_file})

    def apply(self, approved: ChangeSet, on_output: Any = None) -> tuple[ChangeSet, dict[str, Any]]:
        self.applied.append(approved)
        return approved, dict(OUTPUTS)

    def outputs(self) -> dict[str, Any]:
        return dict(OUTPUTS)


def ok(detail: str = "fine") -> chain.StepFn:
    return lambda ctx: chain.StepOutcome(True, detail)


def run(tmp_path: Path, stacks: Stacks, **steps: Any) -> chain.UpReport:
    config = load_region("eu-west-1", STACKS)
    defaults: dict[str, Any] = {
        "compliance": ok(),
        "preflight": ok(),
        "approve": lambda changes: True,
        "deploy": ok("deployed"),
        "smoke": ok("served"),
    }
    return chain.region_up(
        config,
        stacks=lambda: stacks,
        kubeconfig_path=tmp_path / "kubeconfig",
        state_dir=tmp_path / "up",
        **{**defaults, **steps},
    )


CREATE = ChangeSet(creates=(Step("create", "urn:pulumi:eu-west-1::region::aws:s3/bucket:Bucket::b", "aws:s3"),))


def test_all_steps_run_in_order(tmp_path: Path) -> None:
    seen: list[str] = []

    def record(name: str) -> chain.StepFn:
        return lambda ctx: seen.append(name) or chain.StepOutcome(True, name)  # type: ignore[func-returns-value]

    stacks = Stacks(CREATE)
    report = run(tmp_path, stacks, compliance=record("compliance"), deploy=record("deploy"), smoke=record("smoke"))
    assert report.ok and [s.name for s in report.steps] == list(chain.STEPS)
    assert seen == ["compliance", "deploy", "smoke"] and len(stacks.applied) == 1
    assert stacks.applied[0].plan_file == str(tmp_path / "up" / "plan.json")


@pytest.mark.parametrize("failing", ["compliance", "preflight", "deploy", "smoke"])
def test_the_first_failure_stops_the_chain_and_says_how_to_resume(tmp_path: Path, failing: str) -> None:
    stacks = Stacks(CREATE)
    with pytest.raises(chain.UpFailed) as failed:
        run(tmp_path, stacks, **{failing: lambda ctx: chain.StepOutcome(False, "broken")})
    report = failed.value.report
    index = chain.STEPS.index(failing)
    assert failed.value.step == failing and failed.value.detail == "broken"
    assert [s.status for s in report.steps[index + 1 :]] == ["not run"] * (len(chain.STEPS) - index - 1)
    assert "`toolkit region up eu-west-1`" in failed.value.resume
    assert len(stacks.applied) == (1 if index > chain.STEPS.index("apply") else 0)


def test_an_exception_is_a_failed_step_not_a_traceback(tmp_path: Path) -> None:
    def explode(ctx: chain.UpContext) -> chain.StepOutcome:
        raise ConnectionError("cluster endpoint unreachable")

    with pytest.raises(chain.UpFailed, match="failed at step deploy: ConnectionError: cluster endpoint unreachable"):
        run(tmp_path, Stacks(CREATE), deploy=explode)


def test_declined_approval_applies_nothing(tmp_path: Path) -> None:
    stacks = Stacks(CREATE)
    with pytest.raises(chain.UpFailed) as failed:
        run(tmp_path, stacks, approve=lambda changes: False)
    assert failed.value.step == "approve" and "nothing was changed" in failed.value.resume
    assert stacks.applied == []


def test_nothing_to_change_skips_approval_and_apply(tmp_path: Path) -> None:
    asked: list[ChangeSet] = []
    stacks = Stacks(ChangeSet(unchanged=121))
    report = run(tmp_path, stacks, approve=lambda changes: asked.append(changes) or True)
    statuses = {s.name: s.status for s in report.steps}
    assert statuses["approve"] == statuses["apply"] == "skipped" and asked == [] and stacks.applied == []
    assert report.outputs["clusterName"] == "secplat-eu-west-1"


def test_destructive_plan_needs_allow_replace(tmp_path: Path) -> None:
    replace = ChangeSet(replaces=(Step("replace", "urn:pulumi:s::region::aws:kms/key:Key::k", "aws:kms/key:Key"),))
    with pytest.raises(chain.UpFailed, match="failed at step preview: DestructiveChangeRefusedError"):
        run(tmp_path, Stacks(replace))
    config = load_region("eu-west-1", STACKS)
    report = chain.region_up(
        config,
        stacks=lambda: Stacks(replace),
        compliance=ok(),
        preflight=ok(),
        approve=lambda changes: True,
        deploy=ok(),
        smoke=ok(),
        kubeconfig_path=tmp_path / "kc",
        state_dir=tmp_path / "up2",
        allow_replace=True,
    )
    assert report.ok


def test_kubeconfig_context_is_merged_idempotently(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "kind-toolkit",
                "contexts": [{"name": "kind-toolkit", "context": {"cluster": "kind", "user": "kind"}}],
                "clusters": [{"name": "kind", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "kind", "user": {"token": "t"}}],
            }
        )
    )
    args = ("secplat-eu-west-1", "secplat-eu-west-1", OUTPUTS["clusterEndpoint"], "Q0E=", "eu-west-1")
    assert chain.write_kube_context(path, *args) is True
    assert chain.write_kube_context(path, *args) is False
    merged = yaml.safe_load(path.read_text())
    assert merged["current-context"] == "kind-toolkit"
    assert [c["name"] for c in merged["contexts"]] == ["kind-toolkit", "secplat-eu-west-1"]
    user = next(u for u in merged["users"] if u["name"] == "secplat-eu-west-1")["user"]["exec"]
    assert user["args"][-2:] == ["--region", "eu-west-1"] and user["command"] == "aws"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ValueError, match="do not describe a cluster"):
        chain.write_kube_context(path, "c", "n", "http://plain", "Q0E=", "eu-west-1")


def test_default_kubeconfig_path_follows_kubectl() -> None:
    assert chain.default_kubeconfig_path({"KUBECONFIG": "/a/one:/b/two"}) == Path("/a/one")
    assert chain.default_kubeconfig_path({}) == Path.home() / ".kube" / "config"


def test_smoke_endpoints_file_reads_secrets_from_named_variables() -> None:
    document = {
        "syslog": {"host": "syslog.internal", "port": 6514, "tls": True, "ca_file": "ca.pem"},
        "kafka": {"bootstrap": "k:9094", "ca_file": "ca.pem", "sasl_username_env": "KU", "sasl_password_env": "KP"},
        "elasticsearch": {"url": "https://es:9200", "api_key_env": "ESK"},
        "events_topic": "syslog-raw",
        "write_alias": "syslog-events",
    }
    target = target_from_document(document, {"KU": "user", "KP": "pw", "ESK": "key"})
    assert target.syslog.tls and target.kafka.sasl_password == "pw" and target.elasticsearch.api_key == "key"
    assert "pw" not in repr(target) and "key" not in repr(target.elasticsearch)
    with pytest.raises(SmokeTargetError, match=r"kafka\.sasl_password_env names KP, which is not set"):
        target_from_document(document, {"KU": "user", "ESK": "key"})
    with pytest.raises(SmokeTargetError, match="unknown key"):
        target_from_document({**document, "extra": 1}, {"KU": "u", "KP": "p", "ESK": "k"})


def test_snapshot_chart_values_for_deploy() -> None:
    role = "arn:aws:iam::123456789012:role/secplat-eu-west-1-es-snapshots-writer"
    assert snapshot_chart_values(role, "eu-west-1") == {
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": role}},
        "config": {"s3.client.default.endpoint": "s3.eu-west-1.amazonaws.com"},
    }
    with pytest.raises(SnapshotError, match="is not an IAM role ARN"):
        snapshot_chart_values("arn:aws:kms:eu-west-1:123456789012:key/abc", "eu-west-1")
    with pytest.raises(SnapshotError, match="snapshotBucketRegion"):
        snapshot_chart_values(role, "eu-nowhere-1")


def test_apply_saves_the_snapshot_outputs_the_region_environment_deploys_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After apply, `region up` saves the snapshot outputs; the region's environment (what deploy and the deploy
    step resolve) then carries them, and the Elasticsearch chart it renders annotates the service account."""
    from toolkit.config.environments import EnvironmentError_, region_up_state, resolve, stack_outputs_path
    from toolkit.provision.deploy import render_platform

    monkeypatch.setenv("TOOLKIT_STATE_DIR", str(tmp_path / "state"))
    role = "arn:aws:iam::123456789012:role/secplat-eu-west-1-es-snapshots-writer"
    outputs = {
        **OUTPUTS,
        "snapshotBucket": "secplat-eu-west-1-es-snapshots",
        "snapshotBucketRegion": "eu-west-1",
        "snapshotWriterRoleArn": role,
        "kubeconfig": "secret material is not saved",
    }
    assert resolve("eu-west-1").platform.elasticsearch.snapshots is None  # before any region up
    seen: list[Any] = []

    class WithSnapshots(Stacks):
        def apply(self, approved: ChangeSet, on_output: Any = None) -> tuple[ChangeSet, dict[str, Any]]:
            self.applied.append(approved)
            return approved, dict(outputs)

    def deploy(ctx: chain.UpContext) -> chain.StepOutcome:
        seen.append(resolve("eu-west-1"))
        return chain.StepOutcome(True, "deployed")

    config = load_region("eu-west-1", STACKS)
    chain.region_up(
        config,
        stacks=lambda: WithSnapshots(CREATE),
        compliance=ok(),
        preflight=ok(),
        approve=lambda changes: True,
        deploy=deploy,
        smoke=ok(),
        kubeconfig_path=tmp_path / "kubeconfig",
        state_dir=region_up_state("eu-west-1"),
    )
    saved = stack_outputs_path("eu-west-1").read_text()
    assert "secret material" not in saved and role in saved
    (environment,) = seen
    assert environment.platform.elasticsearch.snapshots.bucket == "secplat-eu-west-1-es-snapshots"
    rendered = render_platform(environment, tmp_path / "rendered")
    (manifest,) = [Path(f) for f in rendered.files if f.endswith("elasticsearch.yaml")]
    docs = [d for d in yaml.safe_load_all(manifest.read_text()) if d]
    (account,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role
    assert "s3.client.default.endpoint: s3.eu-west-1.amazonaws.com" in yaml.safe_dump(docs)
    (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert any(
        {"protocol": "TCP", "port": 443} in rule["ports"] and {"ipBlock": {"cidr": "0.0.0.0/0"}} in rule.get("to", [])
        for rule in policy["spec"]["egress"]
    ), "the nodes must reach S3 and STS to verify and write the repository"

    stack_outputs_path("eu-west-1").write_text("{not json")
    with pytest.raises(EnvironmentError_, match="rerun `toolkit region up eu-west-1`"):
        resolve("eu-west-1")
