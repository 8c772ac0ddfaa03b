"""The region schema: the shipped regions load; bad files list every problem with key, rule and way out; and
each bypass of the rules reported in issue 15 is refused (these tests fail on the code before the fix)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from toolkit.config.region import (
    RegionConfigError,
    RegionNotFoundError,
    allowlist_problems,
    derive_region,
    load_region,
    region_from_document,
)

STACKS = Path(__file__).resolve().parents[2] / "stacks"
REGIONS = ("eu-west-1", "us-east-1")


def _document(region: str = "eu-west-1") -> dict:
    return yaml.safe_load((STACKS / f"Pulumi.{region}.yaml").read_text())


def _problems(document: dict, name: str = "eu-west-1") -> str:
    with pytest.raises(RegionConfigError) as caught:
        region_from_document(name, document, f"Pulumi.{name}.yaml")
    return "\n".join(caught.value.problems)


@pytest.mark.parametrize("region", REGIONS)
def test_shipped_regions_load(region: str) -> None:
    config = load_region(region, STACKS)
    assert config.name == region and config.aws_region == region
    assert config.kube_context == f"secplat-{region}"
    assert set(config.platform.zones) <= set(config.availability_zones)
    assert len(config.availability_zones) >= 3
    assert config.api_public_access_cidrs == ()  # the examples ship a private-only endpoint


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
        "secretsprovider: the KMS key is in us-east-2, in United States (US), which the eu residency does not allow",
        "region:stateBackend: the state bucket state-bucket is in us-east-1, in United States (US)",
        "region:natGateways",
        "cover 4,294,967,296 addresses (100.0% of the IPv4 internet)",
        "region:colour: unknown key",
        "kafka.version 9.9.9 is not in the catalog",
    ):
        assert fragment in text, fragment
    assert isinstance(caught.value, ValueError)


def test_region_outside_residency_and_foreign_zones() -> None:
    document = _document()
    document["config"]["aws:region"] = "eu-west-2"
    problems = _problems(document, "eu-west-2")
    assert (
        "aws:region: eu-west-2 lies in United Kingdom (GB), which the eu residency does not allow (eu = European "
        "Union member states" in problems
    )
    assert "or set region:residency to gb" in problems
    assert "'eu-west-1a' is not a zone of eu-west-2" in problems


def test_switzerland_is_not_in_the_eu() -> None:
    document = _document()
    document["config"]["aws:region"] = "eu-central-2"
    document["config"]["region:availabilityZones"] = ["eu-central-2a", "eu-central-2b", "eu-central-2c"]
    document["config"]["platform:spec"]["zones"] = ["eu-central-2a", "eu-central-2b", "eu-central-2c"]
    assert "eu-central-2 lies in Switzerland (CH), which the eu residency does not allow" in _problems(
        document, "eu-central-2"
    )


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


# --------------------------------------------------------------------------------------------- the bypasses


def test_bypass_allowlist_of_two_halves_is_the_whole_internet() -> None:
    document = _document()
    document["config"]["region:apiPublicAccessCidrs"] = ["0.0.0.0/1", "128.0.0.0/1"]
    problems = _problems(document)
    assert "the blocks together cover 4,294,967,296 addresses (100.0% of the IPv4 internet)" in problems
    assert "more than the limit of 4,096 (region:apiPublicAccessMaxAddresses)" in problems
    assert "documentation" not in problems  # one clear reason, not one per range the halves happen to contain


def test_bypass_allowlist_measured_against_a_configurable_limit() -> None:
    offices = ["81.2.68.0/24", "81.2.69.0/24"]  # 512 addresses together
    assert allowlist_problems(offices, 512) == []
    (problem,) = allowlist_problems(offices, 511)
    assert "cover 512 addresses" in problem and "limit of 511" in problem
    document = _document()
    document["config"]["region:apiPublicAccessCidrs"] = offices
    document["config"]["region:apiPublicAccessMaxAddresses"] = 256
    assert "cover 512 addresses" in _problems(document)
    document["config"]["region:apiPublicAccessMaxAddresses"] = 2**24
    assert "region:apiPublicAccessMaxAddresses: Input should be less than or equal to 65536" in _problems(document)


def test_bypass_documentation_and_private_ranges_are_refused() -> None:
    document = _document()
    document["config"]["region:apiPublicAccessCidrs"] = ["203.0.113.0/24", "198.51.100.7/32", "10.20.0.0/16"]
    problems = _problems(document)
    assert "203.0.113.0/24 is in the documentation range 203.0.113.0/24 (RFC 5737)" in problems
    assert "198.51.100.7/32 is in the documentation range 198.51.100.0/24" in problems
    assert "10.20.0.0/16 lies in 10.0.0.0/8, which never reaches a public endpoint" in problems
    document["config"]["region:apiPublicAccessCidrs"] = ["81.2.69.7/24"]
    assert "'81.2.69.7/24' is not a CIDR block without host bits" in _problems(document)
    document["config"]["region:apiPublicAccessCidrs"] = ["203.0.112.0/23"]
    assert "203.0.112.0/23 includes the documentation range 203.0.113.0/24 (RFC 5737)" in _problems(document)


def test_bypass_the_template_allowlist_is_never_copied() -> None:
    template = _document()
    template["config"]["region:apiPublicAccessCidrs"] = ["81.2.69.0/28"]
    with pytest.raises(RegionConfigError, match="required for a new region and never copied from the template"):
        derive_region("eu-central-1", "eu-west-1", template, used_indices=[0, 1], api_allowlist=None)
    new = derive_region("eu-central-1", "eu-west-1", template, used_indices=[0, 1], api_allowlist=())
    assert new.config.api_public_access_cidrs == ()


def test_bypass_quoted_address_index_is_a_type_error() -> None:
    document = _document("us-east-1")
    document["config"]["region:addressIndex"] = "0"
    problems = _problems(document, "us-east-1")
    assert (
        "region:addressIndex: Input should be a valid integer (got '0'); write the number without quotes: 0" in problems
    )
    document["config"]["region:addressIndex"] = True
    assert "region:addressIndex: Input should be a valid integer (got True)" in _problems(document, "us-east-1")


def test_bypass_types_are_checked_before_rules(tmp_path: Path) -> None:
    # a quoted index must not slip past the cross-file clash rule either: it is a type error, reported once
    for region in REGIONS:
        (tmp_path / f"Pulumi.{region}.yaml").write_text(yaml.safe_dump(_document(region)))
    document = _document("us-east-1")
    document["config"]["region:addressIndex"] = "0"
    document["config"]["platform:spec"]["kafka"]["brokers"] = "3"
    document["config"]["region:nodeMetadataHopLimit"] = "1"
    (tmp_path / "Pulumi.us-east-1.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(RegionConfigError) as caught:
        load_region("us-east-1", tmp_path)
    problems = caught.value.problems
    assert any(p.startswith("region:addressIndex: Input should be a valid integer") for p in problems)
    assert any(p.startswith("platform:spec.kafka.brokers: Input should be a valid integer") for p in problems)
    assert any(p.startswith("region:nodeMetadataHopLimit: Input should be a valid integer") for p in problems)


def test_bypass_hop_limit_two_lets_pods_reach_imds() -> None:
    document = _document()
    document["config"]["region:nodeMetadataHopLimit"] = 2
    problems = _problems(document)
    assert "region:nodeMetadataHopLimit: 2 lets pods reach the node's instance metadata (IMDS)" in problems
    assert "Set 1: only the node itself reaches IMDS" in problems
    assert "so pods cannot reach IMDS" not in problems


def test_bypass_kms_arn_with_a_region_suffix_is_located_by_its_arn() -> None:
    document = _document()
    document["secretsprovider"] = (
        "awskms://arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab?region=eu-north-1"
    )
    problems = _problems(document)
    assert "the key ARN says us-east-1 but ?region= says eu-north-1; a key lives where its ARN says" in problems
    document["secretsprovider"] = "awskms://arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert "the KMS key is in us-east-1, in United States (US), which the eu residency does not allow" in _problems(
        document
    )
    document["secretsprovider"] = (
        "awskms://arn:aws:kms:eu-north-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab?region=eu-north-1"
    )
    assert region_from_document("eu-west-1", document).secrets_provider.startswith("awskms://arn:aws:kms:eu-north-1")


def test_bypass_state_backend_parameters_cannot_relocate_the_state() -> None:
    document = _document()
    for backend, fragment in (
        ("s3://state?region=eu-west-1&region=us-east-1", "parameter 'region' is given twice"),
        ("s3://state?region=eu-west-1&endpoint=state.example.com", "parameter 'endpoint' is not allowed"),
        ("s3://Bad_Bucket?region=eu-west-1", "'Bad_Bucket' is not a valid S3 bucket name"),
        ("s3://state-bucket?region=mars-north-1", "'mars-north-1' is not a commercial AWS region"),
    ):
        document["config"]["region:stateBackend"] = backend
        assert fragment in _problems(document), backend


def test_unknown_residency_policy_is_named() -> None:
    document = _document()
    document["config"]["region:residency"] = "europe"
    assert "region:residency: residency 'europe' is not a policy: use a group (eu, eea)" in _problems(document)
