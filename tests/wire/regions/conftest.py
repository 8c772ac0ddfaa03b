"""`region up` end to end on loopback: moto for AWS, the fake Pulumi edge (tests/stacks/fake_pulumi_edge.py) in
place of the Pulumi CLI, the single-node peer and real worker processes for deploy and smoke."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stacks.conftest import STACKS
from tests.stacks.fake_pulumi_edge import FakeEngine
from tests.wire.worker.conftest import es, index_layout, kafka_topics, names, start_worker

__all__ = ["es", "index_layout", "kafka_topics", "names", "start_worker"]

REGION = "eu-west-1"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def account(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh moto account ready for eu-west-1: versioned SSE-KMS state bucket, secrets key, autoscaling role."""
    import boto3
    import requests

    for key, value in {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    requests.post(f"{moto_url}/moto-api/reset", timeout=10)
    kms = boto3.client("kms", region_name=REGION)
    state_key = kms.create_key(Description="state")["KeyMetadata"]["Arn"]
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="secplat-pulumi-state-eu", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket="secplat-pulumi-state-eu", VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket="secplat-pulumi-state-eu",
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": state_key}}]
        },
    )
    secrets = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/platform-pulumi-secrets-eu-west-1", TargetKeyId=secrets)
    boto3.client("iam").create_service_linked_role(AWSServiceName="autoscaling.amazonaws.com")
    return REGION


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of stacks/, a private state folder and kubeconfig for the run."""
    folder = tmp_path / "stacks"
    shutil.copytree(STACKS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("TOOLKIT_STACKS_DIR", str(folder))
    monkeypatch.setenv("TOOLKIT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kube" / "config"))
    return folder


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    """The Pulumi CLI's place taken by the fake edge; everything on the toolkit's side of it runs for real."""
    import pulumi.automation

    fake = FakeEngine()
    monkeypatch.setattr(pulumi.automation, "create_or_select_stack", fake.create_or_select_stack)
    monkeypatch.setattr("toolkit.provision.pulumi.require_pulumi_cli", lambda: "pulumi (fake edge)")
    return fake
