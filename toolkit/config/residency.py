"""Residency: which AWS regions exist, in which jurisdiction each keeps its data, which jurisdictions a residency
policy allows, and where a state bucket, a KMS key or any ARN lives (parsed strictly).

Sources, and why each is trusted:
- the regions: the `aws` (commercial) partition of the partition data botocore ships
  (`botocore/data/partitions.json`): every name matching the partition's `regionRegex` (which leaves out
  pseudo-regions such as `aws-global`). The file is read as data, without importing botocore: no client
  library on the configuration's path, and `toolkit env` stays fast;
- the jurisdiction of each region and its documented opt-in flag: `residency.yaml` beside this module, the only
  hand-kept table. A region botocore lists that the table does not map is reported as such (never guessed);
- residency policies: every jurisdiction is a policy of its own (its code in lower case: `us`, `ch`, `gb`, ...);
  groups (`eu` = the EU member states, `eea`) name the jurisdictions they allow. A region's default residency is
  the default group it belongs to (`eu` for Ireland), else its own jurisdiction (`ch` for Zurich).

Strict parsing (so no suffix, parameter or look-alike can relocate a resource on paper):
- `parse_arn`: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE` with exactly six fields, the `aws` partition,
  a region that is empty or a known region, an account that is empty, 12 digits or `aws`, and a resource
  without whitespace, `?` or `#`;
- `parse_kms_provider`: `awskms://KEY[?region=R]` where KEY is a key ARN, an alias ARN, `alias/NAME` or a key
  id; an ARN's own region is where the key lives, and a `?region=` that disagrees is refused; no other query
  parameter than `region`, each at most once;
- `parse_s3_backend`: `s3://BUCKET[/PREFIX]?region=R` with a valid bucket name, exactly one `region`, and only
  `region`, `awssdk` and `profile` as parameters (an `endpoint` would send the state somewhere no rule can
  locate).
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import yaml

DATA_FILE = Path(__file__).with_name("residency.yaml")
PARTITION = "aws"


class ResidencyDataError(RuntimeError):
    """The shipped region data cannot be read (botocore missing or its data file changed shape)."""


class LocationError(ValueError):
    """A reference (ARN, backend URL, secrets provider) that cannot be located strictly; the message says why."""


@dataclass(frozen=True)
class AwsRegion:
    name: str
    description: str
    jurisdiction: str  # ISO 3166-1 alpha-2 code
    opt_in: bool  # as AWS documents it; the account's own status is asked by preflight


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    jurisdictions: frozenset[str]


@dataclass(frozen=True)
class RegionCatalog:
    regions: dict[str, AwsRegion]
    jurisdictions: dict[str, str]  # code -> name
    policies: dict[str, Policy]
    default_groups: tuple[str, ...]
    unmapped: tuple[str, ...]  # listed by botocore, absent from residency.yaml
    stale: tuple[str, ...]  # in residency.yaml, not listed by botocore
    botocore_version: str
    region_pattern: str

    def region(self, name: str) -> AwsRegion:
        """The region `name`; raises LocationError naming why it is not one (unknown, or unmapped)."""
        found = self.regions.get(name)
        if found is not None:
            return found
        if name in self.unmapped:
            raise LocationError(
                f"{name} is an AWS region (botocore {self.botocore_version} lists it) but the toolkit's "
                f"jurisdiction table ({DATA_FILE.name}) does not say which jurisdiction holds its data; add "
                f"`{name}: [CODE, OPT_IN]` there (tests check the table against botocore)"
            )
        close = [r for r in self.regions if r.split("-")[0] == name.split("-")[0]][:8]
        hint = f" (regions starting like it: {', '.join(close)})" if close else ""
        raise LocationError(
            f"{name!r} is not a commercial AWS region (the `{PARTITION}` partition of botocore "
            f"{self.botocore_version} lists {len(self.regions)}){hint}"
        )

    def jurisdiction_name(self, code: str) -> str:
        return self.jurisdictions.get(code, code)

    def where(self, region: str) -> str:
        """`Switzerland (CH)` for eu-central-2."""
        code = self.region(region).jurisdiction
        return f"{self.jurisdiction_name(code)} ({code})"

    def policy(self, name: str) -> Policy:
        found = self.policies.get(name)
        if found is None:
            groups = ", ".join(p for p in self.policies if len(self.policies[p].jurisdictions) > 1)
            raise LocationError(
                f"residency {name!r} is not a policy: use a group ({groups}) or a jurisdiction's code in lower case "
                "(e.g. us, ch, gb, ae, sg)"
            )
        return found

    def allows(self, policy: str, region: str) -> bool:
        """True when `region` is known and its jurisdiction is one `policy` allows."""
        known = self.regions.get(region)
        return known is not None and known.jurisdiction in self.policy(policy).jurisdictions

    def regions_of(self, policy: str) -> tuple[str, ...]:
        allowed = self.policy(policy).jurisdictions
        return tuple(sorted(r.name for r in self.regions.values() if r.jurisdiction in allowed))

    def default_residency(self, region: str) -> str:
        code = self.region(region).jurisdiction
        for group in self.default_groups:
            if code in self.policies[group].jurisdictions:
                return group
        return code.lower()

    def describe_policy(self, name: str) -> str:
        policy = self.policy(name)
        if len(policy.jurisdictions) == 1:
            (code,) = policy.jurisdictions
            return f"{self.jurisdiction_name(code)} ({code}) only"
        return policy.description


def _botocore_data_dir() -> Path:
    spec = importlib.util.find_spec("botocore")
    if spec is None or not spec.submodule_search_locations:
        from toolkit.errors import missing_extra

        # botocore comes with boto3, in the aws extra: say which install brings it
        error = missing_extra(
            ModuleNotFoundError("No module named 'boto3'", name="boto3"),
            "the list of AWS regions (botocore's partition data)",
            extra="aws",
        )
        if error is not None:
            raise error
        raise ResidencyDataError(
            "botocore is not installed: the list of AWS regions comes from its partition data; install the toolkit's "
            "dependencies (pip install -e .)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def partition_regions(partition: str = PARTITION) -> tuple[dict[str, str], str]:
    """Region name -> description of `partition` from botocore's shipped partitions.json, and its regionRegex."""
    path = _botocore_data_dir() / "partitions.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ResidencyDataError(f"cannot read botocore's partition data {path}: {error}") from None
    for entry in document.get("partitions", []):
        if entry.get("id") == partition:
            pattern = str(entry.get("regionRegex", ""))
            regions = {
                name: str((info or {}).get("description", ""))
                for name, info in (entry.get("regions") or {}).items()
                if re.fullmatch(pattern, name)
            }
            return regions, pattern
    raise ResidencyDataError(f"botocore's partition data {path} has no partition {partition!r}")


def _load_table() -> dict[str, Any]:
    document = yaml.safe_load(DATA_FILE.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or not {"jurisdictions", "groups", "regions"} <= set(document):
        raise ResidencyDataError(f"{DATA_FILE} must hold `jurisdictions`, `groups` and `regions`")
    return document


@cache
def load_catalog() -> RegionCatalog:
    """The region catalogue: botocore's regions joined with the jurisdiction table (cached per process)."""
    listed, pattern = partition_regions()
    table = _load_table()
    jurisdictions: dict[str, str] = {str(k): str(v) for k, v in table["jurisdictions"].items()}
    regions: dict[str, AwsRegion] = {}
    for name, entry in table["regions"].items():
        code, opt_in = entry
        if code not in jurisdictions:
            raise ResidencyDataError(f"{DATA_FILE}: region {name} names jurisdiction {code}, which is not listed")
        if name in listed:
            regions[name] = AwsRegion(name, listed[name], str(code), bool(opt_in))
    policies: dict[str, Policy] = {
        code.lower(): Policy(code.lower(), name, frozenset({code})) for code, name in jurisdictions.items()
    }
    defaults: list[str] = []
    for group, entry in table["groups"].items():
        members = frozenset(str(c) for c in entry["jurisdictions"])
        unknown = sorted(members - set(jurisdictions))
        if unknown:
            raise ResidencyDataError(f"{DATA_FILE}: group {group} names unknown jurisdictions {unknown}")
        if group in policies:
            raise ResidencyDataError(f"{DATA_FILE}: group {group} has the name of a jurisdiction's own policy")
        policies[group] = Policy(group, str(entry["description"]), members)
        if entry.get("default"):
            defaults.append(group)
    return RegionCatalog(
        regions=dict(sorted(regions.items())),
        jurisdictions=jurisdictions,
        policies=policies,
        default_groups=tuple(defaults),
        unmapped=tuple(sorted(set(listed) - set(table["regions"]))),
        stale=tuple(sorted(set(table["regions"]) - set(listed))),
        botocore_version=metadata.version("botocore"),
        region_pattern=pattern,
    )


# --------------------------------------------------------------------------------------------- strict parsing


@dataclass(frozen=True)
class Arn:
    partition: str
    service: str
    region: str  # "" for global services (IAM, S3 bucket ARNs)
    account: str
    resource: str


_ACCOUNT = re.compile(r"^(\d{12}|aws|)$")
_SERVICE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_RESOURCE = re.compile(r"^[^\s?#]+$")


def parse_arn(text: str, catalog: RegionCatalog | None = None) -> Arn:
    """A strictly parsed ARN of the commercial partition; raises LocationError saying what is wrong."""
    catalog = catalog or load_catalog()
    parts = text.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise LocationError(f"{text!r} is not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)")
    _, partition, service, region, account, resource = parts
    if partition != PARTITION:
        raise LocationError(f"{text!r} is in partition {partition!r}; only the commercial `aws` partition is supported")
    if not _SERVICE.match(service):
        raise LocationError(f"{text!r}: service {service!r} is not a service name")
    if region and region not in catalog.regions:
        raise LocationError(f"{text!r}: {region!r} is not a known region of the aws partition")
    if not _ACCOUNT.match(account):
        raise LocationError(f"{text!r}: account {account!r} is not a 12-digit account id")
    if not resource or not _RESOURCE.match(resource):
        raise LocationError(
            f"{text!r}: the resource part {resource!r} is empty or holds whitespace, '?' or '#' "
            "(an ARN carries no parameters: a `?region=` suffix does not move a resource)"
        )
    return Arn(partition, service, region, account, resource)


_KMS_KEY_ID = re.compile(r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$")
_KMS_ALIAS = re.compile(r"^alias/[A-Za-z0-9/_-]{1,250}$")


@dataclass(frozen=True)
class KmsKeyRef:
    key: str  # the reference as written: ARN, alias/NAME or key id
    region: str
    from_arn: bool


def _query(text: str, allowed: tuple[str, ...], what: str) -> dict[str, str]:
    pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    seen: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            raise LocationError(f"{what}: parameter {key!r} is not allowed (allowed: {', '.join(allowed)})")
        if key in seen:
            raise LocationError(f"{what}: parameter {key!r} is given twice; give it once")
        seen[key] = value
    return seen


def parse_kms_provider(provider: str, catalog: RegionCatalog | None = None) -> KmsKeyRef:
    """Where the key of an `awskms://` secrets provider lives (see the module docstring)."""
    catalog = catalog or load_catalog()
    if not provider.startswith("awskms://"):
        raise LocationError(f"{provider!r} is not an AWS KMS provider; use awskms://alias/NAME?region=REGION")
    reference, _, query_text = provider[len("awskms://") :].partition("?")
    try:
        query = _query(query_text, ("region",), provider)
    except ValueError as error:
        raise LocationError(f"{provider!r}: malformed parameters ({error})") from None
    query_region = query.get("region")
    if reference.startswith("arn:"):
        arn = parse_arn(reference, catalog)
        if (
            arn.service != "kms"
            or not arn.region
            or not (arn.resource.startswith("key/") or arn.resource.startswith("alias/"))
        ):
            raise LocationError(f"{provider!r}: {reference} is not a KMS key or alias ARN with a region")
        if query_region is not None and query_region != arn.region:
            raise LocationError(
                f"{provider!r}: the key ARN says {arn.region} but ?region= says {query_region}; a key lives where its "
                f"ARN says. Remove ?region=, or use a key created in {query_region}"
            )
        return KmsKeyRef(reference, arn.region, True)
    if not (_KMS_ALIAS.match(reference) or _KMS_KEY_ID.match(reference)):
        raise LocationError(f"{provider!r}: {reference!r} is neither a key ARN, an alias/NAME nor a key id")
    if not query_region:
        raise LocationError(f"{provider!r} does not name the key's region; append ?region=REGION")
    catalog.region(query_region)
    return KmsKeyRef(reference, query_region, False)


_BUCKET = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class S3Backend:
    bucket: str
    prefix: str
    region: str
    parameters: dict[str, str]


def parse_s3_backend(url: str, catalog: RegionCatalog | None = None) -> S3Backend:
    """Bucket and region of a Pulumi S3 backend URL (see the module docstring)."""
    catalog = catalog or load_catalog()
    if not url.startswith("s3://"):
        raise LocationError(f"{url!r} is not an S3 backend URL; use s3://BUCKET?region=REGION")
    rest, _, query_text = url[len("s3://") :].partition("?")
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.match(bucket):
        raise LocationError(f"{url!r}: {bucket!r} is not a valid S3 bucket name")
    try:
        query = _query(query_text, ("region", "awssdk", "profile"), url)
    except ValueError as error:
        raise LocationError(f"{url!r}: malformed parameters ({error})") from None
    region = query.get("region")
    if not region:
        raise LocationError(f"{url!r} does not name the bucket's region; append ?region=REGION")
    catalog.region(region)
    return S3Backend(bucket, prefix, region, query)
