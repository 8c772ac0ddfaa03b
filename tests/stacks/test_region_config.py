"""The region schema: the two shipped regions load; bad files list every problem with key, rule and way out."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from toolkit.config.region import (
    RegionConfigError,
    RegionNotFoundError,
    load_region,
    region_from_document,
)

STACKS = Path(__file__).resolve().parents[2] / "stacks"
REGIONS = ("eu-west-1", "us-east-1")


def _document(region: str = "eu-west-1") -> dict:
    return yaml.safe_load((STACKS / f"Pulumi.{region}.yaml").read_text())


@pytest.mark.parametrize("region", REGIONS)
def test_shipped_regions_load(region: str) -> None:
    config = load_region(region, STACKS)
    assert config.name == region and config.aws_region == region
    assert config.kube_context == f"secplat-{region}"
    assert set(config.platform.zones) <= set(config.availability_zones)
    assert len(config.availability_zones) >= 3


def test_shipped_regions_have_distinct_blocks() -> None:
    blocks = [load_region(r, STACKS).address_block for r in REGIONS]
    assert not blocks[0].overlaps(blocks[1])


def test_every_problem_is_listed_at_once() -> None:
    document = _document()
    document["secretsprovider"] = "awskms://alias/x?region=us-east-2"
    document["config"]["region:stateBackend"] = "s3://state-bucket?region=us-east-1"
    document["config"]["region:natGateways"] = "many"
    document["config"]["region:apiPublicAccessCidrs"] = ["0.0.0.0/0"]
    document["config"]["region:colour"] = "blue"
    document["config"]["platform:spec"]["kafka"]["version"] = "9.9.9"
    with pytest.raises(RegionConfigError) as caught:
        region_from_document("eu-west-1", document, "Pulumi.eu-west-1.yaml")
    text = str(caught.value)
    assert "6 problem(s)" in text
    for fragment in (
        "secretsprovider: the KMS key is in us-east-2, outside the EU residency",
        "region:stateBackend: the state bucket is in us-east-1, outside the EU residency",
        "region:natGateways",
        "opens the Kubernetes API to the whole internet",
        "region:colour: unknown key",
        "kafka.version 9.9.9 is not in the catalog",
    ):
        assert fragment in text
    assert isinstance(caught.value, ValueError)


def test_region_outside_residency_and_foreign_zones() -> None:
    document = _document()
    document["config"]["aws:region"] = "eu-west-2"
    with pytest.raises(RegionConfigError) as caught:
        region_from_document("eu-west-2", document)
    problems = "\n".join(caught.value.problems)
    assert "eu-west-2 is outside the EU residency" in problems
    assert "'eu-west-1a' is not a zone of eu-west-2" in problems


def test_address_index_clash_between_files_is_refused(tmp_path: Path) -> None:
    for region in REGIONS:
        document = _document(region)
        document["config"]["region:addressIndex"] = 7
        (tmp_path / f"Pulumi.{region}.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(RegionConfigError, match="addressIndex: 7 is already used by region us-east-1"):
        load_region("eu-west-1", tmp_path)


def test_unknown_region_names_the_way_out() -> None:
    with pytest.raises(RegionNotFoundError, match="toolkit region new eu-north-1 --like"):
        load_region("eu-north-1", STACKS)
