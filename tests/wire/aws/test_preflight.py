"""AWS preflight against moto's server on loopback: a ready account passes, each broken part fails alone."""

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


@pytest.fixture
def ready(aws: str) -> PreflightRequest:
    """A request for eu-west-1 whose account has the state bucket, secrets key and autoscaling role."""
    request = request_for(load_region(REGION, STACKS))
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket="secplat-pulumi-state-eu", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    kms = boto3.client("kms", region_name=REGION)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/platform-pulumi-secrets-eu-west-1", TargetKeyId=key)
    boto3.client("iam").create_service_linked_role(AWSServiceName="autoscaling.amazonaws.com")
    return request


def _failed(request: PreflightRequest) -> dict[str, str]:
    return {c.name: c.detail for c in preflight(request).failures()}


def test_ready_account_passes(ready: PreflightRequest) -> None:
    report = preflight(ready)
    assert report.ok, [str(c) for c in report.failures()]
    names = [c.name for c in report.checks]
    assert names[:3] == ["identity", "region-enabled", "availability-zones"]
    assert {"state-bucket", "secrets-key", "kms-keys", "autoscaling-role"} <= set(names)
    assert any(c.name == "quota VPCs per region" and not c.skipped for c in report.checks)


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


def test_too_few_zones_fails(ready: PreflightRequest) -> None:
    request = replace(ready, aws_region="us-west-1", zones=("us-west-1a", "us-west-1b"))
    assert "the platform needs 3" in _failed(request)["availability-zones"]


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
