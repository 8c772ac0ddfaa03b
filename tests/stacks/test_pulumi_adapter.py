"""The Automation API adapter: step classification (pure), the missing-CLI error, and a real preview where the
Pulumi CLI and AWS credentials exist."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from toolkit.config.region import load_region
from toolkit.provision.pulumi import PulumiCliMissingError, Step, classify_steps, require_pulumi_cli

STACKS = Path(__file__).resolve().parents[2] / "stacks"
URN = "urn:pulumi:eu-west-1::region::platform:region:Keys$aws:kms/key:Key::"


def test_replacements_count_once_and_deletions_are_destructive() -> None:
    steps = [
        Step("same", URN + "keys-logs", "aws:kms/key:Key"),
        Step("create", URN + "keys-new", "aws:kms/key:Key"),
        Step("update", URN + "keys-ebs", "aws:kms/key:Key", ("description",)),
        Step("create-replacement", URN + "keys-snapshots", "aws:kms/key:Key", ("customerMasterKeySpec",)),
        Step("replace", URN + "keys-snapshots", "aws:kms/key:Key", ("customerMasterKeySpec",)),
        Step("delete-replaced", URN + "keys-snapshots", "aws:kms/key:Key"),
        Step("delete", URN + "keys-old", "aws:kms/key:Key"),
    ]
    changes = classify_steps(steps)
    assert [s.name for s in changes.creates] == ["keys-new"]
    assert [s.name for s in changes.updates] == ["keys-ebs"]
    assert [s.name for s in changes.replaces] == ["keys-snapshots"]
    assert [s.name for s in changes.deletes] == ["keys-old"]
    assert [s.name for s in changes.destructive] == ["keys-snapshots", "keys-old"]
    assert changes.unchanged == 1


def test_only_creates_and_updates_are_not_destructive() -> None:
    changes = classify_steps([Step("create", URN + "a", "t"), Step("update", URN + "b", "t")])
    assert changes.destructive == ()


@pytest.mark.skipif(shutil.which("pulumi") is not None, reason="the Pulumi CLI is installed here")
def test_missing_cli_error_names_the_install_command() -> None:
    with pytest.raises(PulumiCliMissingError, match=r"curl -fsSL https://get.pulumi.com \| sh -s -- --version 3\."):
        require_pulumi_cli()


@pytest.mark.skipif(
    shutil.which("pulumi") is None or not os.environ.get("TOOLKIT_AWS_PREVIEW"),
    reason="needs the Pulumi CLI, AWS credentials and TOOLKIT_AWS_PREVIEW=1 (absent on this machine)",
)
def test_real_preview_of_a_region_creates_and_destroys_nothing_existing() -> None:
    from toolkit.provision.pulumi import RegionStacks

    changes = RegionStacks(load_region("eu-west-1", STACKS), STACKS).plan()
    assert changes.destructive == ()
