"""AWS preflight against moto's server on loopback: a ready account passes, each broken part fails alone.
moto does not implement the Account API's GetRegionOptStatus, so the opt-in status comes from EC2 DescribeRegions
here, and the check says so."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

from toolkit.config.region import load_region  # noqa: E402
from toolkit.targets.aws import PreflightRequest, preflight, request_for  # noqa: E402

pytestmark = pytest.mark.wire
STACKS = Path(__file__).resolve().parents[3] / "stacks"
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    moto = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    yield f"http://{host}:{port}"
    moto.stop()


@pytest.fixture
def aws(server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    import requests

    requests.post(f"{server}/moto-api/reset", timeout=10)
    yield server


def state_bucket(name: str, region: str, key_arn: str | None, versioned: bool = True) -> None:
    s3 = boto3.client("s3", region_name=region)
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if key_arn:
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
                        "BucketKeyEnabled": True,
                    }
                ]
            },
        )


def ready_account(region: str, bucket: str, secrets_alias: str) -> str:
    """State bucket (versioned, SSE-KMS with a key of the region), secrets key and autoscaling role; the key ARN."""
    kms = boto3.client("kms", region_name=region)
    state_key = kms.create_key(Description="state bucket")["KeyMetadata"]["Arn"]
    state_bucket(bucket, region, state_key)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=secrets_alias, TargetKeyId=key)
    iam = boto3.client("iam")
    if not any(r["RoleName"] == "AWSServiceRoleForAutoScaling" for r in iam.list_roles()["Roles"]):
        iam.create_service_linked_role(AWSServiceName="autoscaling.amazonaws.com")
    return state_key


@pytest.fixture
def ready(aws: str) -> PreflightRequest:
    """A request for eu-west-1 whose account has the state bucket, secrets key and autoscaling role."""
    request = request_for(load_region(REGION, STACKS))
    ready_account(REGION, "secplat-pulumi-state-eu", "alias/platform-pulumi-secrets-eu-west-1")
    return request


def _failed(request: PreflightRequest) -> dict[str, str]:
    return {c.name: c.detail for c in preflight(request).failures()}


def test_ready_account_passes(ready: PreflightRequest) -> None:
    report = preflight(ready)
    assert report.ok, [str(c) for c in report.failures()]
    names = [c.name for c in report.checks]
    assert names[:3] == ["identity", "region-enabled", "availability-zones"]
    assert {
        "state-bucket",
        "state-bucket-versioning",
        "state-bucket-encryption",
        "secrets-key",
        "kms-keys",
        "autoscaling-role",
    } <= set(names)
    assert any(c.name == "quota VPCs per region" and not c.skipped for c in report.checks)
    details = {c.name: c.detail for c in report.checks}
    assert "Account API GetRegionOptStatus did not answer" in details["region-enabled"]
    assert "(EC2 DescribeRegions" in details["region-enabled"]
    assert details["state-bucket-encryption"].startswith("aws:kms with key arn:aws:kms:eu-west-1:")


def test_no_credentials_fails_identity(ready: PreflightRequest, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    report = preflight(ready)
    assert [c.name for c in report.checks] == ["identity"]
    assert not report.ok and "set AWS_PROFILE" in report.checks[0].detail


def test_region_not_opted_in_fails(ready: PreflightRequest) -> None:
    request = replace(ready, aws_region="eu-south-2", zones=("eu-south-2a", "eu-south-2b", "eu-south-2c"))
    failed = _failed(request)
    assert "eu-south-2 is not-opted-in" in failed["region-enabled"]


def test_region_offering_fewer_zones_than_the_file_fails_with_the_way_out(ready: PreflightRequest) -> None:
    request = replace(ready, aws_region="us-west-1", zones=("us-west-1a", "us-west-1b", "us-west-1c"))
    failed = _failed(request)["availability-zones"]
    assert "us-west-1 offers this account 2 available zone(s) (us-west-1a, us-west-1b)" in failed
    assert "--zones us-west-1a,us-west-1b --accept-two-zones" in failed
    two = replace(ready, aws_region="us-west-1", zones=("us-west-1a", "us-west-1b"))
    assert "availability-zones" not in _failed(two)


def test_zone_named_in_file_but_missing_fails(ready: PreflightRequest) -> None:
    request = replace(ready, zones=("eu-west-1a", "eu-west-1b", "eu-west-1z"))
    assert "eu-west-1z" in _failed(request)["availability-zones"]


def test_vpc_quota_exhausted_fails(ready: PreflightRequest) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    for n in range(4):
        ec2.create_vpc(CidrBlock=f"172.{16 + n}.0.0/16")
    assert "request an increase" in _failed(ready)["quota VPCs per region"]


def test_missing_state_bucket_fails(ready: PreflightRequest) -> None:
    request = replace(ready, state_backend="s3://no-such-bucket?region=eu-west-1")
    assert "state bucket no-such-bucket is not reachable" in _failed(request)["state-bucket"]


def test_secrets_key_missing_or_pending_deletion_fails(ready: PreflightRequest) -> None:
    missing = replace(ready, secrets_provider="awskms://alias/absent?region=eu-west-1")
    assert "alias/absent not found" in _failed(missing)["secrets-key"]
    kms = boto3.client("kms", region_name=REGION)
    key_id = kms.describe_key(KeyId="alias/platform-pulumi-secrets-eu-west-1")["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert "is PendingDeletion" in _failed(ready)["secrets-key"]


def test_managed_key_disabled_fails(ready: PreflightRequest) -> None:
    kms = boto3.client("kms", region_name=REGION)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/secplat-eu-west-1-ebs", TargetKeyId=key)
    kms.disable_key(KeyId=key)
    assert "alias/secplat-eu-west-1-ebs is Disabled" in _failed(ready)["kms-keys"]


def test_missing_autoscaling_role_fails(aws: str) -> None:
    request = request_for(load_region(REGION, STACKS))
    failed = _failed(request)
    assert "create-service-linked-role" in failed["autoscaling-role"]


def test_state_bucket_must_be_versioned(aws: str) -> None:
    request = request_for(load_region(REGION, STACKS))
    kms = boto3.client("kms", region_name=REGION)
    state_bucket("secplat-pulumi-state-eu", REGION, kms.create_key()["KeyMetadata"]["Arn"], versioned=False)
    assert "versioning is never enabled; enable it" in _failed(request)["state-bucket-versioning"]


def test_state_bucket_must_use_sse_kms_not_just_s3_encryption(aws: str) -> None:
    request = request_for(load_region(REGION, STACKS))
    state_bucket("secplat-pulumi-state-eu", REGION, None)
    boto3.client("s3", region_name=REGION).put_bucket_encryption(
        Bucket="secplat-pulumi-state-eu",
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    failed = _failed(request)["state-bucket-encryption"]
    assert "default encryption is AES256 without a named KMS key" in failed and "put-bucket-encryption" in failed


def test_state_bucket_key_must_lie_in_the_jurisdiction(aws: str) -> None:
    request = request_for(load_region(REGION, STACKS))
    foreign = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["Arn"]
    state_bucket("secplat-pulumi-state-eu", REGION, foreign)
    failed = _failed(request)["state-bucket-encryption"]
    assert f"the bucket's KMS key {foreign} lies in us-east-1, outside the eu residency" in failed


def test_state_bucket_outside_the_jurisdiction_fails(aws: str) -> None:
    config = load_region(REGION, STACKS)
    request = replace(request_for(config), state_backend="s3://secplat-state-gb?region=eu-west-2")
    key = boto3.client("kms", region_name="eu-west-2").create_key()["KeyMetadata"]["Arn"]
    state_bucket("secplat-state-gb", "eu-west-2", key)
    failed = _failed(request)
    assert "state bucket secplat-state-gb is in eu-west-2, outside the eu residency" in failed["state-bucket"]
    assert "outside the eu residency" in failed["state-bucket-encryption"]


def test_opt_in_region_not_enabled_and_discovery(aws: str) -> None:
    from toolkit.targets.aws import discover_region

    closed = discover_region("eu-central-2")
    assert closed.zones is None and "eu-central-2 is not enabled for this account" in (closed.error or "")
    assert "not-opted-in" in (closed.opt_in_status or "")
    two = discover_region("us-west-1")
    assert two.zones == ("us-west-1a", "us-west-1b") and two.error is None


def test_region_new_discover_adapts_to_two_zones_or_refuses(aws: str, tmp_path: Path, monkeypatch) -> None:
    import shutil

    from typer.testing import CliRunner

    from toolkit.cli.region import app

    folder = tmp_path / "stacks"
    shutil.copytree(STACKS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("TOOLKIT_STACKS_DIR", str(folder))
    runner = CliRunner()
    base = ["new", "us-west-1", "--like", "us-east-1", "--api-allowlist", "none", "--discover"]
    refused = runner.invoke(app, base)
    assert refused.exit_code == 2, refused.output
    assert "zones: AWS offers us-west-1a, us-west-1b" not in refused.output  # nothing written, nothing printed
    assert "only 2 zones" in refused.output and "region:acceptTwoZones: true" in refused.output
    adapted = runner.invoke(app, [*base, "--accept-two-zones"])
    assert adapted.exit_code == 0, adapted.output
    assert "zones: AWS offers us-west-1a, us-west-1b; using us-west-1a, us-west-1b" in adapted.output
    assert "account: us-west-1 is opt-in-not-required (EC2 DescribeRegions" in adapted.output
    assert "how many us-west-1 offers" not in adapted.output
    config = load_region("us-west-1", folder)
    assert [str(s.public) for s in config.subnets] == ["10.2.192.0/22", "10.2.196.0/22"]
