"""`toolkit region` through typer's CliRunner, offline: new, check, and plan without the Pulumi CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from toolkit.cli.region import app
from toolkit.config.region import load_region

runner = CliRunner()


def test_new_then_check(stacks_copy: Path) -> None:
    document = yaml.safe_load((stacks_copy / "Pulumi.eu-west-1.yaml").read_text())
    document["encryptedkey"] = "AQICAHg-test-data-key-ciphertext"
    document["config"]["aws:secretKey"] = {"secure": "AAABAtest-ciphertext"}
    (stacks_copy / "Pulumi.eu-west-1.yaml").write_text(yaml.safe_dump(document))

    result = runner.invoke(app, ["new", "eu-central-1", "--like", "eu-west-1"])
    assert result.exit_code == 0, result.output
    assert "address block 10.2.0.0/16 (index 2)" in result.output
    assert "aws:secretKey" in result.output and "encryptedkey" in result.output
    text = (stacks_copy / "Pulumi.eu-central-1.yaml").read_text()
    assert "AAABAtest-ciphertext" not in text and "AQICAHg" not in text
    config = load_region("eu-central-1", stacks_copy)
    assert config.availability_zones == ("eu-central-1a", "eu-central-1b", "eu-central-1c")
    assert config.platform.zones == config.availability_zones
    assert config.secrets_provider == "awskms://alias/platform-pulumi-secrets-eu-central-1?region=eu-central-1"
    assert config.cluster_name == "secplat-eu-central-1" and config.kube_context == "secplat-eu-central-1"
    assert config.platform == load_region("eu-west-1", stacks_copy).platform.model_copy(
        update={"zones": config.availability_zones}
    )

    checked = runner.invoke(app, ["check", "eu-central-1"])
    assert checked.exit_code == 0, checked.output
    assert "compliance: region eu-central-1 passes all rules" in checked.output


def test_new_refuses_to_move_eu_data_to_the_us(stacks_copy: Path) -> None:
    result = runner.invoke(app, ["new", "us-west-2", "--like", "eu-west-1"])
    assert result.exit_code == 2
    assert "template eu-west-1 is EU-resident and us-west-2 lies in US" in result.output
    assert "pass --residency us" in result.output
    assert not (stacks_copy / "Pulumi.us-west-2.yaml").exists()

    half = runner.invoke(app, ["new", "us-west-2", "--like", "eu-west-1", "--residency", "us"])
    assert half.exit_code == 2
    assert "region:stateBackend: the state bucket is in eu-west-1, outside the US residency" in half.output
    assert not (stacks_copy / "Pulumi.us-west-2.yaml").exists()

    full = runner.invoke(
        app,
        [
            "new",
            "us-west-2",
            "--like",
            "eu-west-1",
            "--residency",
            "us",
            "--state-backend",
            "s3://secplat-pulumi-state-us?region=us-east-1",
        ],
    )
    assert full.exit_code == 0, full.output
    assert load_region("us-west-2", stacks_copy).residency == "us"


def test_new_refuses_an_existing_region(stacks_copy: Path) -> None:
    result = runner.invoke(app, ["new", "us-east-1", "--like", "eu-west-1"])
    assert result.exit_code == 2 and "already exists" in result.output


def test_check_blocks_on_violation(stacks_copy: Path) -> None:
    path = stacks_copy / "Pulumi.eu-west-1.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["region:controlPlaneLogTypes"] = ["api"]
    path.write_text(yaml.safe_dump(document))
    result = runner.invoke(app, ["check", "eu-west-1"])
    assert result.exit_code == 1
    assert "[logging] aws:eks/cluster:Cluster 'cluster-eks'" in result.output
    plan = runner.invoke(app, ["plan", "eu-west-1"])
    assert plan.exit_code == 1 and "Pulumi CLI" not in plan.output


def test_invalid_file_lists_problems(stacks_copy: Path) -> None:
    path = stacks_copy / "Pulumi.us-east-1.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["region:residency"] = "eu"
    path.write_text(yaml.safe_dump(document))
    result = runner.invoke(app, ["check", "us-east-1"])
    assert result.exit_code == 2
    assert "aws:region: us-east-1 is outside the EU residency" in result.output


@pytest.mark.skipif(shutil.which("pulumi") is not None, reason="the Pulumi CLI is installed here")
@pytest.mark.parametrize("command", ["plan", "up", "outputs", "drift", "destroy"])
def test_missing_pulumi_cli_says_how_to_install(stacks_copy: Path, command: str) -> None:
    result = runner.invoke(app, [command, "eu-west-1"])
    assert result.exit_code == 2
    assert "the Pulumi CLI is not installed" in result.output
    assert "https://get.pulumi.com" in result.output


def test_importing_the_cli_does_not_import_pulumi_aws() -> None:
    code = (
        "import sys, toolkit.cli.region as r; "
        "heavy = [m for m in ('pulumi_aws', 'pulumi_kubernetes', 'pulumi', 'boto3') if m in sys.modules]; "
        "print(','.join(heavy) or 'none')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "none"
