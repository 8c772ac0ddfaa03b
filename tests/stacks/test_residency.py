"""The region catalogue: botocore's commercial regions, each mapped to its jurisdiction; policies as data; strict
location parsing of ARNs, KMS providers and S3 backends."""

from __future__ import annotations

import pytest

from toolkit.config.residency import (
    LocationError,
    load_catalog,
    parse_arn,
    parse_kms_provider,
    parse_s3_backend,
)


def test_catalog_is_every_commercial_region_botocore_ships() -> None:
    from botocore.loaders import Loader

    partitions = Loader().load_data("partitions")["partitions"]
    aws = next(p for p in partitions if p["id"] == "aws")
    import re

    expected = {name for name in aws["regions"] if re.fullmatch(aws["regionRegex"], name)}
    catalog = load_catalog()
    assert set(catalog.regions) == expected
    assert catalog.unmapped == () and catalog.stale == (), "residency.yaml must map exactly botocore's regions"
    assert "aws-global" not in catalog.regions and len(catalog.regions) >= 30


@pytest.mark.parametrize(
    ("region", "jurisdiction", "residency"),
    [
        ("eu-central-2", "Switzerland (CH)", "ch"),
        ("eu-west-2", "United Kingdom (GB)", "gb"),
        ("me-central-1", "United Arab Emirates (AE)", "ae"),
        ("eu-west-1", "Ireland (IE)", "eu"),
        ("eu-central-1", "Germany (DE)", "eu"),
        ("us-west-1", "United States (US)", "us"),
        ("ap-southeast-1", "Singapore (SG)", "sg"),
        ("ca-central-1", "Canada (CA)", "ca"),
        ("sa-east-1", "Brazil (BR)", "br"),
        ("af-south-1", "South Africa (ZA)", "za"),
    ],
)
def test_each_region_has_its_jurisdiction_and_default_residency(region, jurisdiction, residency) -> None:
    catalog = load_catalog()
    assert catalog.where(region) == jurisdiction
    assert catalog.default_residency(region) == residency
    assert catalog.allows(residency, region)


def test_eu_is_the_member_states_only() -> None:
    catalog = load_catalog()
    eu = catalog.policy("eu").jurisdictions
    assert len(eu) == 27 and {"CH", "GB", "NO", "IS", "LI"}.isdisjoint(eu)
    assert not catalog.allows("eu", "eu-central-2") and not catalog.allows("eu", "eu-west-2")
    assert catalog.allows("eea", "eu-north-1") and not catalog.allows("eea", "eu-central-2")
    assert catalog.regions_of("eu") == (
        "eu-central-1",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
        "eu-west-1",
        "eu-west-3",
    )
    assert catalog.describe_policy("ch") == "Switzerland (CH) only"
    with pytest.raises(LocationError, match="residency 'europe' is not a policy"):
        catalog.policy("europe")


def test_arns_are_parsed_strictly() -> None:
    assert parse_arn("arn:aws:kms:eu-west-1:123456789012:key/abc").region == "eu-west-1"
    assert parse_arn("arn:aws:iam::aws:policy/AmazonEKSClusterPolicy").region == ""
    assert parse_arn("arn:aws:s3:::bucket/*").account == ""
    for bad, fragment in (
        ("arn:aws:kms:us-east-1:123456789012:key/abc?region=eu-north-1", "holds whitespace, '?' or '#'"),
        ("arn:aws:kms:eu-nowhere-1:123456789012:key/abc", "'eu-nowhere-1' is not a known region"),
        ("arn:aws-cn:kms:cn-north-1:123456789012:key/abc", "only the commercial `aws` partition"),
        ("arn:aws:kms:eu-west-1:1234:key/abc", "'1234' is not a 12-digit account id"),
        ("arn:aws:kms:eu-west-1", "is not an ARN"),
    ):
        with pytest.raises(LocationError, match=fragment.replace("?", r"\?").replace("(", r"\(").replace(")", r"\)")):
            parse_arn(bad)


def test_kms_providers_and_s3_backends_are_located_strictly() -> None:
    assert parse_kms_provider("awskms://alias/x?region=eu-west-1").region == "eu-west-1"
    arn = "arn:aws:kms:eu-north-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert parse_kms_provider(f"awskms://{arn}").region == "eu-north-1"
    with pytest.raises(LocationError, match="does not name the key's region"):
        parse_kms_provider("awskms://alias/x")
    with pytest.raises(LocationError, match="parameter 'profile' is not allowed"):
        parse_kms_provider("awskms://alias/x?region=eu-west-1&profile=p")
    backend = parse_s3_backend("s3://state-bucket/prefix?region=eu-west-1&awssdk=v2")
    assert (backend.bucket, backend.prefix, backend.region) == ("state-bucket", "prefix", "eu-west-1")
    with pytest.raises(LocationError, match="parameter 'endpoint' is not allowed"):
        parse_s3_backend("s3://state-bucket?region=eu-west-1&endpoint=x")
