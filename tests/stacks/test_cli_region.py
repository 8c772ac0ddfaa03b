"""`toolkit region` through typer's CliRunner, offline: new, check, and plan/up without the Pulumi CLI; and the
real `toolkit` process run from a project outside the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.stacks.conftest import STACKS
from toolkit.cli.region import app
from toolkit.config.region import load_region

runner = CliRunner()
ROOT = STACKS.parent
TOOLKIT = Path(sys.executable).parent / "toolkit"
# One line per region of the "done when": its residency and where its data lies.
NEW_REGIONS = {
    "eu-central-2": ("ch", "Switzerland (CH)"),
    "ap-southeast-1": ("sg", "Singapore (SG)"),
    "ca-central-1": ("ca", "Canada (CA)"),
    "me-central-1": ("ae", "United Arab Emirates (AE)"),
    "sa-east-1": ("br", "Brazil (BR)"),
    "af-south-1": ("za", "South Africa (ZA)"),
}


def test_new_then_check(stacks_copy: Path) -> None:
    document = yaml.safe_load((stacks_copy / "Pulumi.eu-west-1.yaml").read_text())
    document["encryptedkey"] = "AQICAHg-test-data-key-ciphertext"
    document["config"]["aws:secretKey"] = {"secure": "AAABAtest-ciphertext"}
    (stacks_copy / "Pulumi.eu-west-1.yaml").write_text(yaml.safe_dump(document))

    result = runner.invoke(app, ["new", "eu-central-1", "--like", "eu-west-1", "--api-allowlist", "none"])
    assert result.exit_code == 0, result.output
    assert "address block 10.2.0.0/16 (index 2)" in result.output
    assert "residency eu: European Union member states" in result.output
    assert "eu-central-1 lies in Germany (DE)" in result.output
    assert "aws:secretKey" in result.output and "encryptedkey" in result.output
    assert "API allowlist: none (private endpoint only)" in result.output
    assert "sharing eu-west-1's state bucket" in result.output
    text = (stacks_copy / "Pulumi.eu-central-1.yaml").read_text()
    assert "AAABAtest-ciphertext" not in text and "AQICAHg" not in text
    config = load_region("eu-central-1", stacks_copy)
    assert config.availability_zones == ("eu-central-1a", "eu-central-1b", "eu-central-1c")
    assert config.platform.zones == config.availability_zones
    assert config.secrets_provider == "awskms://alias/platform-pulumi-secrets-eu-central-1?region=eu-central-1"
    assert config.cluster_name == "secplat-eu-central-1" and config.kube_context == "secplat-eu-central-1"
    assert config.api_public_access_cidrs == ()
    assert config.platform == load_region("eu-west-1", stacks_copy).platform.model_copy(
        update={"zones": config.availability_zones}
    )

    checked = runner.invoke(app, ["check", "eu-central-1"])
    assert checked.exit_code == 0, checked.output
    assert "compliance: region eu-central-1 passes all rules" in checked.output


@pytest.mark.parametrize("region", sorted(NEW_REGIONS))
def test_any_commercial_region_gets_its_own_residency(stacks_copy: Path, region: str) -> None:
    residency, where = NEW_REGIONS[region]
    result = runner.invoke(app, ["new", region, "--like", "eu-west-1", "--api-allowlist", "none"])
    assert result.exit_code == 0, result.output
    assert f"residency {residency}: " in result.output
    assert f"{region} lies in {where} (the template eu-west-1 is eu)" in result.output
    assert f"this region's state goes to s3://secplat-pulumi-state-{residency}?region={region}" in result.output
    assert "not checked (offline" in result.output and f"whether {region} is enabled for this account" in result.output
    config = load_region(region, stacks_copy)
    assert config.residency == residency and config.aws_region == region
    assert config.state_backend == f"s3://secplat-pulumi-state-{residency}?region={region}"
    assert config.secrets_provider.endswith(f"?region={region}")
    checked = runner.invoke(app, ["check", region])
    assert checked.exit_code == 0, checked.output
    assert f"compliance: region {region} passes all rules" in checked.output


def test_env_lists_regions_written_outside_the_checkout(tmp_path: Path) -> None:
    project = tmp_path / "elsewhere"
    shutil.copytree(STACKS, project / "stacks", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("TOOLKIT_STACKS_DIR", "TOOLKIT_ENVIRONMENTS_DIR")}
    for region in NEW_REGIONS:
        made = subprocess.run(
            [str(TOOLKIT), "region", "new", region, "--like", "eu-west-1", "--api-allowlist", "none"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
        )
        assert made.returncode == 0, made.stderr + made.stdout
        assert f"wrote {project / 'stacks' / f'Pulumi.{region}.yaml'}" in made.stdout
    (project / "deeper" / "down").mkdir(parents=True)
    for where in (project, project / "deeper" / "down"):
        listed = subprocess.run([str(TOOLKIT), "env"], cwd=where, env=env, capture_output=True, text=True)
        assert listed.returncode == 0, listed.stderr
        lines = {line.split()[0]: line for line in listed.stdout.splitlines()}
        for region in NEW_REGIONS:
            assert region in lines and f"AWS region {region} (EKS)" in lines[region], listed.stdout
    in_checkout = subprocess.run([str(TOOLKIT), "env"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert "eu-central-2" not in in_checkout.stdout and "eu-west-1" in in_checkout.stdout
    outside = subprocess.run([str(TOOLKIT), "env"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert outside.returncode == 0 and "sim" in outside.stdout and "eu-west-1" not in outside.stdout
    assert "regions are not listed: no stacks folder: looked for stacks/Pulumi.yaml in" in outside.stderr


def test_new_needs_an_explicit_allowlist_and_never_copies_the_template_one(stacks_copy: Path) -> None:
    path = stacks_copy / "Pulumi.eu-west-1.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["region:apiPublicAccessCidrs"] = ["193.0.0.0/24"]
    path.write_text(yaml.safe_dump(document))
    missing = runner.invoke(app, ["new", "eu-central-1", "--like", "eu-west-1"])
    assert missing.exit_code == 2
    assert "region:apiPublicAccessCidrs: required for a new region and never copied from the template" in (
        missing.output
    )
    assert "nothing was written" in missing.output and not (stacks_copy / "Pulumi.eu-central-1.yaml").exists()
    documentation = runner.invoke(
        app, ["new", "eu-central-1", "--like", "eu-west-1", "--api-allowlist", "203.0.113.0/24"]
    )
    assert documentation.exit_code == 2
    assert "203.0.113.0/24 is in the documentation range 203.0.113.0/24 (RFC 5737)" in documentation.output
    own = runner.invoke(app, ["new", "eu-central-1", "--like", "eu-west-1", "--api-allowlist", "81.2.69.0/28"])
    assert own.exit_code == 0, own.output
    assert load_region("eu-central-1", stacks_copy).api_public_access_cidrs == ("81.2.69.0/28",)


def test_new_never_takes_the_template_residency(stacks_copy: Path) -> None:
    narrowed = runner.invoke(app, ["new", "eu-central-2", "--like", "eu-west-1", "--api-allowlist", "none"])
    assert narrowed.exit_code == 0
    assert load_region("eu-central-2", stacks_copy).residency == "ch"
    wrong = runner.invoke(
        app, ["new", "eu-west-2", "--like", "eu-west-1", "--api-allowlist", "none", "--residency", "eu"]
    )
    assert wrong.exit_code == 2
    assert "--residency eu does not allow eu-west-2, which lies in United Kingdom (GB)" in wrong.output
    assert not (stacks_copy / "Pulumi.eu-west-2.yaml").exists()
    us = runner.invoke(app, ["new", "us-west-2", "--like", "eu-west-1", "--api-allowlist", "none"])
    assert us.exit_code == 0, us.output
    config = load_region("us-west-2", stacks_copy)
    assert config.residency == "us" and config.state_backend == "s3://secplat-pulumi-state-us?region=us-west-2"
    shared = runner.invoke(
        app,
        [
            "new",
            "us-east-2",
            "--like",
            "eu-west-1",
            "--api-allowlist",
            "none",
            "--state-backend",
            "s3://secplat-pulumi-state-us?region=us-east-1",
        ],
    )
    assert shared.exit_code == 0, shared.output
    assert load_region("us-east-2", stacks_copy).state_backend == "s3://secplat-pulumi-state-us?region=us-east-1"


def test_new_refuses_an_unknown_region_and_an_existing_one(stacks_copy: Path) -> None:
    unknown = runner.invoke(app, ["new", "eu-middle-9", "--like", "eu-west-1", "--api-allowlist", "none"])
    assert unknown.exit_code == 2
    assert "'eu-middle-9' is not a commercial AWS region (the `aws` partition of botocore" in unknown.output
    existing = runner.invoke(app, ["new", "us-east-1", "--like", "eu-west-1", "--api-allowlist", "none"])
    assert existing.exit_code == 2 and "already exists" in existing.output


def test_two_zones_are_refused_with_the_reason_or_accepted_explicitly(stacks_copy: Path) -> None:
    refused = runner.invoke(
        app, ["new", "us-west-1", "--like", "us-east-1", "--api-allowlist", "none", "--zones", "us-west-1a,us-west-1c"]
    )
    assert refused.exit_code == 2
    assert "only 2 zones" in refused.output and "losing that zone stops every acknowledged write" in refused.output
    accepted = runner.invoke(
        app,
        [
            "new",
            "us-west-1",
            "--like",
            "us-east-1",
            "--api-allowlist",
            "none",
            "--zones",
            "us-west-1a,us-west-1c",
            "--accept-two-zones",
        ],
    )
    assert accepted.exit_code == 0, accepted.output
    config = load_region("us-west-1", stacks_copy)
    assert config.availability_zones == ("us-west-1a", "us-west-1c") and config.accept_two_zones
    assert [str(s.private) for s in config.subnets] == ["10.2.0.0/19", "10.2.32.0/19"]
    checked = runner.invoke(app, ["check", "us-west-1"])
    assert checked.exit_code == 0, checked.output


def test_check_blocks_on_violation(stacks_copy: Path) -> None:
    path = stacks_copy / "Pulumi.eu-west-1.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["region:controlPlaneLogTypes"] = ["api"]
    path.write_text(yaml.safe_dump(document))
    result = runner.invoke(app, ["check", "eu-west-1"])
    assert result.exit_code == 3  # refused before anything changed
    assert "[logging] aws:eks/cluster:Cluster 'cluster-eks'" in result.output
    plan = runner.invoke(app, ["plan", "eu-west-1"])
    assert plan.exit_code == 3 and "Pulumi CLI" not in plan.output
    as_json = runner.invoke(app, ["check", "eu-west-1", "-o", "json"])
    report = json.loads(as_json.output)
    assert as_json.exit_code == 3 and report["ok"] is False and report["region"] == "eu-west-1"
    assert any("[logging]" in v for v in report["violations"])
    as_yaml = runner.invoke(app, ["check", "eu-west-1", "-o", "yaml"])
    assert yaml.safe_load(as_yaml.output) == report


def test_invalid_file_lists_problems(stacks_copy: Path) -> None:
    path = stacks_copy / "Pulumi.us-east-1.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["region:residency"] = "eu"
    path.write_text(yaml.safe_dump(document))
    result = runner.invoke(app, ["check", "us-east-1"])
    assert result.exit_code == 2
    assert "aws:region: us-east-1 lies in United States (US), which the eu residency does not allow" in result.output


def test_stacks_dir_option_wins(
    stacks_copy: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOOLKIT_STACKS_DIR")
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # no stacks/ in it nor in any parent
    monkeypatch.chdir(elsewhere)
    lost = runner.invoke(app, ["check", "eu-west-1"])
    assert lost.exit_code == 2 and f"no stacks folder: looked for stacks/Pulumi.yaml in {elsewhere}" in lost.output
    found = runner.invoke(app, ["--stacks-dir", str(stacks_copy), "check", "eu-west-1"])
    assert found.exit_code == 0, found.output
    wrong = runner.invoke(app, ["--stacks-dir", str(elsewhere), "check", "eu-west-1"])
    assert wrong.exit_code == 2 and f"--stacks-dir names {elsewhere}, which holds no Pulumi.yaml" in wrong.output


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
