"""One AWS region's configuration: the typed schema of `stacks/Pulumi.<region>.yaml` and the address plan.

The region file is a Pulumi stack settings file and the single source of truth for that region: AWS settings
under the `region:` and `aws:` namespaces, the platform's sizing and versions under `platform:spec`, and the
stack's secrets provider at the top level (`secretsprovider: awskms://...`).

Validation (`region_from_document`) collects every problem before raising one `RegionConfigError`:
1. shape: a mapping with a `config:` mapping; unknown `region:*` keys are reported (typos never pass silently);
2. types, before any rule: each value is checked strictly as the YAML wrote it (pydantic strict mode over the
   JSON form of the document), so `region:addressIndex: "0"` is a string, not the index 0; errors are mapped
   back to the YAML key that holds the value;
3. rules across fields, run only over the fields whose type is right:
   - residency (toolkit.config.residency): `region:residency` is a policy; the region, the state bucket's region
     and the secrets key's region (both parsed strictly) lie in jurisdictions the policy allows;
   - zones: names of the region's zones, each once; at least 2; exactly 2 only with `region:acceptTwoZones: true`
     (the reason: a zone outage then stops ingestion); the platform's zones are among them;
   - the public API allowlist: IPv4 CIDRs without host bits, none in a documentation range (RFC 5737) or a
     non-public range, and their union covers at most `region:apiPublicAccessMaxAddresses` addresses (measured,
     so 0.0.0.0/1 + 128.0.0.0/1 counts as the whole internet); an empty list means a private-only endpoint;
   - IMDS: `region:nodeMetadataHopLimit` must be 1 (with 2, pods reach the node's instance metadata);
   - logs, retention and node groups as documented at each rule.
`load_region` adds one rule across files: no two region files share an address index.

Address plan (invariant: no two regions' networks overlap, so regions can be peered later):
- region `i` (0 <= i < 256) owns `10.i.0.0/16`, carved from `10.0.0.0/8`;
- inside it, zone `z` (0 <= z < 6) gets private `10.i.(32*z).0/19` (nodes and pods) and public
  `10.i.(192+4*z).0/22` (load balancers and NAT gateways); private blocks fill 10.i.0.0-10.i.191.255 and
  public ones sit in 10.i.192.0/18, so no two subnets overlap; a region with 2 zones uses the first two of each;
- the index is recorded in the region file (`region:addressIndex`); `next_free_index` gives the lowest unused.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from toolkit.catalog import load as components_catalog
from toolkit.config.platform import PlatformSpec
from toolkit.config.residency import (
    LocationError,
    RegionCatalog,
    load_catalog,
    parse_kms_provider,
    parse_s3_backend,
)
from toolkit.config.stacks import resolve_stacks_dir

NODE_ROLES = ("kafka", "elasticsearch", "workers")
CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557)

SUPERNET = ipaddress.IPv4Network("10.0.0.0/8")
REGION_PREFIX_LENGTH = 16
PRIVATE_PREFIX_LENGTH = 19
PUBLIC_PREFIX_LENGTH = 22
MAX_ZONES = 6
MIN_ZONES = 2
SAFE_ZONES = 3
MAX_REGIONS = 2 ** (REGION_PREFIX_LENGTH - SUPERNET.prefixlen)

# The public API allowlist: how many addresses its union may cover by default, and the most any region may set.
DEFAULT_ALLOWLIST_MAX_ADDRESSES = 4096  # a /20: room for several offices' and VPN egress blocks
ALLOWLIST_MAX_ADDRESSES_CEILING = 65536  # a /16
IMDS_HOP_LIMIT = 1
# RFC 5737 documentation ranges: examples that route nowhere.
DOCUMENTATION_RANGES = tuple(ipaddress.IPv4Network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))
# Ranges whose addresses never reach a public endpoint from the internet (IANA special-purpose registry).
NON_PUBLIC_RANGES = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
    )
)  # fmt: skip

STACK_FILE_PREFIX = "Pulumi."
STACK_FILE_SUFFIX = ".yaml"


# --------------------------------------------------------------------------------------------- address plan


@dataclass(frozen=True)
class ZoneSubnets:
    zone_index: int
    private: ipaddress.IPv4Network
    public: ipaddress.IPv4Network


def region_block(index: int) -> ipaddress.IPv4Network:
    """The /16 of region `index`: 10.<index>.0.0/16."""
    if not 0 <= index < MAX_REGIONS:
        raise ValueError(f"address index {index} is outside 0..{MAX_REGIONS - 1} (one /16 of 10.0.0.0/8 each)")
    size = 2 ** (32 - REGION_PREFIX_LENGTH)
    return ipaddress.IPv4Network((int(SUPERNET.network_address) + index * size, REGION_PREFIX_LENGTH))


def zone_subnets(index: int, zone_count: int) -> list[ZoneSubnets]:
    """Private and public subnet of each zone of region `index` (see the module docstring for the layout)."""
    if not 1 <= zone_count <= MAX_ZONES:
        raise ValueError(f"zone count {zone_count} is outside 1..{MAX_ZONES} (the address plan's room per region)")
    base = int(region_block(index).network_address)
    private_size = 2 ** (32 - PRIVATE_PREFIX_LENGTH)
    public_size = 2 ** (32 - PUBLIC_PREFIX_LENGTH)
    public_base = base + 3 * 2 ** (32 - 18)  # the last /18 of the region's /16
    return [
        ZoneSubnets(
            zone_index=z,
            private=ipaddress.IPv4Network((base + z * private_size, PRIVATE_PREFIX_LENGTH)),
            public=ipaddress.IPv4Network((public_base + z * public_size, PUBLIC_PREFIX_LENGTH)),
        )
        for z in range(zone_count)
    ]


def next_free_index(used: Iterable[int]) -> int:
    """Lowest address index no region uses yet."""
    taken = set(used)
    for index in range(MAX_REGIONS):
        if index not in taken:
            return index
    raise ValueError(f"all {MAX_REGIONS} address blocks of {SUPERNET} are allocated; retire a region first")


# --------------------------------------------------------------------------------------------- schema


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class NodeGroupConfig(_Frozen):
    instance_types: tuple[str, ...] = Field(alias="instanceTypes", min_length=1)
    desired_per_zone: int = Field(1, alias="desiredPerZone", ge=0)
    min_per_zone: int = Field(1, alias="minPerZone", ge=0)
    max_per_zone: int = Field(2, alias="maxPerZone", ge=1)
    disk_gi: int = Field(50, alias="diskGi", ge=20)


class RegionConfig(_Frozen):
    """A validated region. Build it with `load_region` or `region_from_document`, never by hand."""

    name: str
    aws_region: str
    residency: str
    address_index: int = Field(ge=0, lt=MAX_REGIONS)
    state_backend: str
    secrets_provider: str
    availability_zones: tuple[str, ...] = Field(min_length=1, max_length=MAX_ZONES)
    accept_two_zones: bool = False
    nat_gateways: Literal["per-zone", "single"] = "per-zone"
    kubernetes_version: str = Field(pattern=r"^1\.\d{2}$")
    # Node group generations: one managed node group per role, zone and version listed ([] = the control plane's
    # version). A Kubernetes upgrade lists the old and the new version while the engine replaces the nodes (it surges
    # into the new version's groups and terminates the old ones' instances), then only the new one.
    node_group_versions: tuple[str, ...] = ()
    # Required: a new region states its allowlist explicitly (an empty list = private endpoint only).
    api_public_access_cidrs: tuple[str, ...]
    api_public_access_max_addresses: int = Field(
        DEFAULT_ALLOWLIST_MAX_ADDRESSES, ge=1, le=ALLOWLIST_MAX_ADDRESSES_CEILING
    )
    kube_context: str = Field(min_length=1)
    cluster_name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    control_plane_log_types: tuple[str, ...] = CONTROL_PLANE_LOG_TYPES
    node_metadata_hop_limit: int = Field(IMDS_HOP_LIMIT, ge=1, le=64)
    log_retention_days: int = 365
    node_groups: dict[str, NodeGroupConfig]
    tags: dict[str, str] = Field(default_factory=dict)
    platform: PlatformSpec

    @property
    def node_versions(self) -> tuple[str, ...]:
        """The node group generations the stack declares, oldest first."""
        return self.node_group_versions or (self.kubernetes_version,)

    @property
    def address_block(self) -> ipaddress.IPv4Network:
        return region_block(self.address_index)

    @property
    def subnets(self) -> list[ZoneSubnets]:
        return zone_subnets(self.address_index, len(self.availability_zones))

    @property
    def residency_regions(self) -> tuple[str, ...]:
        """Every AWS region whose jurisdiction the residency allows (where state, keys and copies may live)."""
        return load_catalog().regions_of(self.residency)


# YAML key -> RegionConfig field. `secretsprovider` is a top-level key of the stack file, the rest sit in config.
CONFIG_KEYS: dict[str, str] = {
    "aws:region": "aws_region",
    "region:residency": "residency",
    "region:addressIndex": "address_index",
    "region:stateBackend": "state_backend",
    "region:availabilityZones": "availability_zones",
    "region:acceptTwoZones": "accept_two_zones",
    "region:natGateways": "nat_gateways",
    "region:kubernetesVersion": "kubernetes_version",
    "region:nodeGroupVersions": "node_group_versions",
    "region:apiPublicAccessCidrs": "api_public_access_cidrs",
    "region:apiPublicAccessMaxAddresses": "api_public_access_max_addresses",
    "region:kubeContext": "kube_context",
    "region:clusterName": "cluster_name",
    "region:controlPlaneLogTypes": "control_plane_log_types",
    "region:nodeMetadataHopLimit": "node_metadata_hop_limit",
    "region:logRetentionDays": "log_retention_days",
    "region:nodeGroups": "node_groups",
    "region:tags": "tags",
    "platform:spec": "platform",
}
FIELD_KEYS = {field: key for key, field in CONFIG_KEYS.items()}
FIELD_KEYS["secrets_provider"] = "secretsprovider"
OWN_NAMESPACES = ("region:", "platform:")


class RegionConfigError(ValueError):
    """A region file broke one or more rules; `problems` lists each as 'key: rule; way out'."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = Path(path)
        self.problems = list(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{self.path}: {len(self.problems)} problem(s) in the region configuration:\n{listing}")


class RegionNotFoundError(ValueError):
    """No `Pulumi.<name>.yaml` in the stacks folder."""


def is_secure_value(value: Any) -> bool:
    """A Pulumi encrypted config value: `{secure: <ciphertext>}`."""
    return isinstance(value, Mapping) and set(value) == {"secure"}


def bucket_region(state_backend: str) -> str | None:
    """Region of a Pulumi S3 backend URL, parsed strictly; None when it is not a valid one."""
    try:
        return parse_s3_backend(state_backend).region
    except LocationError:
        return None


def kms_region(secrets_provider: str) -> str | None:
    """Region of an `awskms://` secrets provider's key, parsed strictly; None when it is not a valid one."""
    try:
        return parse_kms_provider(secrets_provider).region
    except LocationError:
        return None


def _type_hint(item: Mapping[str, Any]) -> str:
    """The way out for a type error, when the value is close to what was meant."""
    value = item.get("input")
    kind = str(item.get("type", ""))
    if kind in ("int_type", "float_type") and isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value.strip()):
        return f"; write the number without quotes: {value.strip()}"
    if kind == "bool_type" and isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
        return "; write true or false without quotes"
    if kind == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
        return f'; quote it: "{value}"'
    return ""


def _field_problems(error: ValidationError) -> tuple[list[str], set[str]]:
    problems: list[str] = []
    bad_fields: set[str] = set()
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        field = loc[0] if loc else ""
        bad_fields.add(field)
        key = FIELD_KEYS.get(field, field)
        where = ".".join([key, *loc[1:]])
        got = repr(item.get("input"))
        got = got if len(got) <= 80 else got[:77] + "..."
        if item.get("type") == "missing":
            problems.append(f"{where}: required, and missing; add it (see stacks/Pulumi.eu-west-1.yaml)")
            continue
        problems.append(f"{where}: {item['msg']} (got {got}){_type_hint(item)}")
    return problems, bad_fields


def _json_form(value: Any) -> str:
    """The document as JSON, so the strict validation sees exactly the YAML types (dates become strings)."""
    return json.dumps(value, default=str)


def _residency_problems(values: dict[str, Any], ok: Any, catalog: RegionCatalog) -> list[str]:
    problems: list[str] = []
    residency: str | None = None
    if ok("residency"):
        try:
            residency = catalog.policy(values["residency"]).name
        except LocationError as error:
            problems.append(f"region:residency: {error}")
    allowed = catalog.policy(residency).jurisdictions if residency else frozenset()

    def outside(region: str) -> str:
        return (
            f"{region}, in {catalog.where(region)}, which the {residency} residency does not allow "
            f"({residency} = {catalog.describe_policy(residency or '')})"
        )

    if ok("aws_region"):
        region = values["aws_region"]
        try:
            catalog.region(region)
        except LocationError as error:
            problems.append(f"aws:region: {error}")
        else:
            if residency and catalog.region(region).jurisdiction not in allowed:
                own = catalog.default_residency(region)
                problems.append(
                    f"aws:region: {region} lies in {catalog.where(region)}, which the {residency} residency does not "
                    f"allow ({residency} = {catalog.describe_policy(residency or '')}); pick a region in an allowed "
                    "jurisdiction "
                    f"({', '.join(catalog.regions_of(residency))}) or set region:residency to {own}"
                )
    if ok("state_backend"):
        try:
            backend = parse_s3_backend(values["state_backend"], catalog)
        except LocationError as error:
            problems.append(f"region:stateBackend: {error}")
        else:
            if residency and catalog.region(backend.region).jurisdiction not in allowed:
                problems.append(
                    f"region:stateBackend: the state bucket {backend.bucket} is in {outside(backend.region)}; "
                    f"use a bucket in one of {', '.join(catalog.regions_of(residency))}"
                )
    if ok("secrets_provider"):
        try:
            key = parse_kms_provider(values["secrets_provider"], catalog)
        except LocationError as error:
            problems.append(f"secretsprovider: {error}")
        else:
            if residency and catalog.region(key.region).jurisdiction not in allowed:
                problems.append(
                    f"secretsprovider: the KMS key is in {outside(key.region)}; use a key in one of "
                    f"{', '.join(catalog.regions_of(residency))}"
                )
    return problems


def allowlist_problems(cidrs: Iterable[Any], max_addresses: int) -> list[str]:
    """Problems of a public API allowlist (see the module docstring); empty when it is acceptable."""
    key = "region:apiPublicAccessCidrs"
    problems: list[str] = []
    networks: list[ipaddress.IPv4Network] = []
    for cidr in cidrs:
        try:
            network = ipaddress.ip_network(str(cidr), strict=True)
        except ValueError as error:
            problems.append(
                f"{key}: {cidr!r} is not a CIDR block without host bits ({error}); write the block's network "
                "address, e.g. A.B.C.0/24 for A.B.C.7/24"
            )
            continue
        if not isinstance(network, ipaddress.IPv4Network):
            problems.append(f"{key}: {cidr} is IPv6; the EKS public endpoint allowlist takes IPv4 blocks only")
            continue
        networks.append(network)
        inside_documentation = [d for d in DOCUMENTATION_RANGES if network.subnet_of(d)]
        if inside_documentation:
            problems.append(
                f"{key}: {cidr} is in the documentation range {inside_documentation[0]} (RFC 5737): an example that "
                "routes nowhere; list your offices' or VPN's public egress blocks, or [] for a private-only endpoint"
            )
            continue
        holding_documentation = [d for d in DOCUMENTATION_RANGES if d.subnet_of(network)]
        if holding_documentation and network.num_addresses <= max_addresses:
            problems.append(
                f"{key}: {cidr} includes the documentation range {holding_documentation[0]} (RFC 5737), so it is not "
                "one of your egress blocks; list those exactly"
            )
            continue
        special = [s for s in NON_PUBLIC_RANGES if network.subnet_of(s)]
        if special:
            problems.append(
                f"{key}: {cidr} lies in {special[0]}, which never reaches a public endpoint from the internet; "
                "nodes and VPN users inside the VPC use the private endpoint: leave such blocks out"
            )
    covered = sum(n.num_addresses for n in ipaddress.collapse_addresses(networks))
    if covered > max_addresses:
        share = covered / 2**32
        problems.append(
            f"{key}: the blocks together cover {covered:,} addresses ({share:.1%} of the IPv4 internet), more than "
            f"the limit of {max_addresses:,} (region:apiPublicAccessMaxAddresses); list only your egress blocks, "
            "or [] for a private-only endpoint"
        )
    return problems


def _kubernetes_problems(values: dict[str, Any], ok: Callable[..., bool], catalog: Any) -> list[str]:
    """The control plane's version is one the catalog knows; node group generations are at most two, each known,
    never newer than the control plane and within the kubelet skew policy below it."""
    problems: list[str] = []
    spec = catalog.component("kubernetes")
    if ok("kubernetes_version") and values["kubernetes_version"] not in spec.versions:
        known = ", ".join(v for v in spec.sorted_versions() if v != "1.20")
        problems.append(
            f"region:kubernetesVersion: {values['kubernetes_version']} is not in the catalog (known: {known})"
        )
        return problems
    if not ok("kubernetes_version", "node_group_versions"):
        return problems
    control = values["kubernetes_version"]
    skew = spec.versions[control].kubelet_skew or 2
    generations = list(values["node_group_versions"])
    if len(generations) != len(set(generations)):
        problems.append("region:nodeGroupVersions: a version is listed twice; list each generation once")
    if len(generations) > 2:
        problems.append(
            f"region:nodeGroupVersions: {len(generations)} generations; a roll needs the old and the new one at most"
        )
    for version in generations:
        if version not in spec.versions:
            problems.append(f"region:nodeGroupVersions: {version} is not in the catalog")
            continue
        behind = int(control.split(".")[1]) - int(version.split(".")[1])
        if behind < 0:
            problems.append(
                f"region:nodeGroupVersions: {version} is newer than the control plane ({control}): a kubelet is never "
                "newer than the control plane; raise region:kubernetesVersion first"
            )
        elif behind > skew:
            problems.append(
                f"region:nodeGroupVersions: {version} is {behind} minors behind the control plane ({control}), more "
                f"than the {skew} the kubelet skew policy allows"
            )
    return problems


def _rule_problems(values: dict[str, Any], bad: set[str]) -> list[str]:
    """Rules across fields, each only over fields whose type is right."""
    problems: list[str] = []
    catalog = load_catalog()

    def ok(*fields: str) -> bool:
        return all(f in values and f not in bad for f in fields)

    problems.extend(_residency_problems(values, ok, catalog))
    problems.extend(_kubernetes_problems(values, ok, components_catalog()))
    if ok("aws_region", "availability_zones"):
        region = values["aws_region"]
        zones = list(values["availability_zones"])
        for zone in zones:
            if not re.fullmatch(re.escape(region) + r"[a-z]", zone):
                problems.append(
                    f"region:availabilityZones: {zone!r} is not a zone of {region}; use names like {region}a"
                )
        if len(set(zones)) != len(zones):
            problems.append("region:availabilityZones: a zone is listed twice; list each zone once")
        if len(zones) < MIN_ZONES:
            problems.append(
                f"region:availabilityZones: {len(zones)} zone: the platform needs at least {MIN_ZONES} "
                f"({SAFE_ZONES} to survive a zone outage); list the region's zones"
            )
        elif len(zones) < SAFE_ZONES and ok("accept_two_zones") and not values.get("accept_two_zones"):
            problems.append(
                f"region:availabilityZones: only {len(zones)} zones. Kafka keeps 3 replicas of each partition with "
                "min.insync.replicas 2: over 2 zones one zone holds 2 of the 3 replicas, so losing that zone stops "
                "every acknowledged write until it returns. Add a third zone (see `toolkit region preflight`), or "
                "set region:acceptTwoZones: true to accept that a zone outage stops ingestion"
            )
    if ok("availability_zones", "platform"):
        region_zones = set(values["availability_zones"])
        platform: PlatformSpec = values["platform"]
        missing = [z for z in platform.zones if z not in region_zones]
        if missing:
            problems.append(
                f"platform:spec.zones: {', '.join(missing)} not among region:availabilityZones "
                f"({', '.join(sorted(region_zones))}); the platform can only spread over the region's zones"
            )
    if ok("api_public_access_cidrs", "api_public_access_max_addresses"):
        problems.extend(
            allowlist_problems(values["api_public_access_cidrs"], values["api_public_access_max_addresses"])
        )
    if ok("node_metadata_hop_limit") and values["node_metadata_hop_limit"] != IMDS_HOP_LIMIT:
        problems.append(
            f"region:nodeMetadataHopLimit: {values['node_metadata_hop_limit']} lets pods reach the node's instance "
            "metadata (IMDS): the answer to the IMDSv2 token request survives the extra hop from the node into a "
            "pod's network namespace, so any pod could take the node role's credentials. Set 1: only the node "
            "itself reaches IMDS; the platform's pods use their own IAM roles (IRSA)"
        )
    if ok("control_plane_log_types"):
        unknown = [t for t in values["control_plane_log_types"] if t not in CONTROL_PLANE_LOG_TYPES]
        if unknown:
            problems.append(
                f"region:controlPlaneLogTypes: unknown {', '.join(unknown)}; "
                f"known: {', '.join(CONTROL_PLANE_LOG_TYPES)}"
            )
    if ok("log_retention_days") and values["log_retention_days"] not in LOG_RETENTION_DAYS:
        problems.append(
            f"region:logRetentionDays: {values['log_retention_days']} is not a CloudWatch retention; "
            f"pick one of {', '.join(map(str, LOG_RETENTION_DAYS))}"
        )
    if ok("node_groups"):
        groups: dict[str, NodeGroupConfig] = values["node_groups"]
        missing_roles = [r for r in NODE_ROLES if r not in groups]
        extra_roles = [r for r in groups if r not in NODE_ROLES]
        if missing_roles:
            problems.append(f"region:nodeGroups: no group for {', '.join(missing_roles)}; add one per role")
        if extra_roles:
            problems.append(
                f"region:nodeGroups: unknown role {', '.join(extra_roles)}; roles are {', '.join(NODE_ROLES)}"
            )
        for role, group in groups.items():
            if not group.min_per_zone <= group.desired_per_zone <= group.max_per_zone:
                problems.append(
                    f"region:nodeGroups.{role}: needs minPerZone <= desiredPerZone <= maxPerZone "
                    f"(got {group.min_per_zone}, {group.desired_per_zone}, {group.max_per_zone})"
                )
    return problems


def region_from_document(name: str, document: Any, path: Path | str = "<memory>") -> RegionConfig:
    """Validate a parsed stack file; raise RegionConfigError listing every problem (types first, then rules)."""
    problems: list[str] = []
    if not isinstance(document, Mapping):
        raise RegionConfigError(path, ["the file must be a YAML mapping with a `config:` section"])
    config = document.get("config")
    if not isinstance(config, Mapping):
        raise RegionConfigError(path, ["config: missing or not a mapping; a region file keeps its settings there"])
    values: dict[str, Any] = {"name": name}
    for key, value in config.items():
        if key in CONFIG_KEYS:
            if is_secure_value(value):
                problems.append(f"{key}: must be a plain value, not a secret (`secure:`); write it in clear")
                continue
            values[CONFIG_KEYS[key]] = value
        elif str(key).startswith(OWN_NAMESPACES):
            known = ", ".join(k for k in CONFIG_KEYS if k.startswith(OWN_NAMESPACES))
            problems.append(f"{key}: unknown key; known keys are {known}")
    if "secretsprovider" in document:
        values["secrets_provider"] = document["secretsprovider"]
    bad: set[str] = set()
    parsed: dict[str, Any] = {}
    try:
        model = RegionConfig.model_validate_json(_json_form(values), strict=True)
        parsed = dict(model)
    except ValidationError as error:
        field_problems, bad = _field_problems(error)
        problems.extend(field_problems)
        # Re-validate fields one by one so the rules across fields see every value whose type is right.
        for field, value in values.items():
            info = RegionConfig.model_fields.get(field)
            if field in bad or info is None:
                continue
            try:
                annotation: Any = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
                parsed[field] = TypeAdapter(annotation).validate_json(_json_form(value), strict=True)
            except ValidationError:
                bad.add(field)
        for field, info in RegionConfig.model_fields.items():
            if field not in parsed and field not in bad and not info.is_required():
                parsed[field] = info.get_default(call_default_factory=True)
    problems.extend(_rule_problems(parsed, bad))
    if problems:
        raise RegionConfigError(path, problems)
    return RegionConfig.model_validate_json(_json_form(values), strict=True)


# --------------------------------------------------------------------------------------------- files


def stacks_folder(stacks_dir: Path | None = None) -> Path:
    """`stacks_dir` when given, else the one resolver's answer (toolkit.config.stacks)."""
    return stacks_dir if stacks_dir is not None else resolve_stacks_dir()


def stack_file(name: str, stacks_dir: Path | None = None) -> Path:
    return stacks_folder(stacks_dir) / f"{STACK_FILE_PREFIX}{name}{STACK_FILE_SUFFIX}"


def list_regions(stacks_dir: Path | None = None) -> list[str]:
    """Names of the regions that have a stack file, sorted."""
    folder = stacks_folder(stacks_dir)
    names = []
    for path in folder.glob(f"{STACK_FILE_PREFIX}*{STACK_FILE_SUFFIX}"):
        name = path.name[len(STACK_FILE_PREFIX) : -len(STACK_FILE_SUFFIX)]
        if name:
            names.append(name)
    return sorted(names)


def read_document(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise RegionConfigError(path, [f"not valid YAML: {error}"]) from None


def _index_of(document: Any) -> int | None:
    config = document.get("config") if isinstance(document, Mapping) else None
    index = config.get("region:addressIndex") if isinstance(config, Mapping) else None
    return index if isinstance(index, int) and not isinstance(index, bool) else None


def used_address_indices(stacks_dir: Path | None = None, exclude: str | None = None) -> dict[int, str]:
    """Address index -> region name for every region file (read raw, so one broken file does not hide others)."""
    used: dict[int, str] = {}
    folder = stacks_folder(stacks_dir)
    for name in list_regions(folder):
        if name == exclude:
            continue
        try:
            index = _index_of(read_document(stack_file(name, folder)))
        except RegionConfigError:
            continue
        if index is not None:
            used[index] = name
    return used


def load_region(name: str, stacks_dir: Path | None = None) -> RegionConfig:
    """Read and validate `stacks/Pulumi.<name>.yaml`; raise RegionConfigError listing every problem."""
    folder = stacks_folder(stacks_dir)
    path = stack_file(name, folder)
    if not path.exists():
        known = ", ".join(list_regions(folder)) or "none"
        raise RegionNotFoundError(
            f"region {name!r}: no {path} (known regions: {known}); create it with "
            f"`toolkit region new {name} --like <existing>`"
        )
    document = read_document(path)
    problems: list[str] = []
    region: RegionConfig | None = None
    try:
        region = region_from_document(name, document, path)
    except RegionConfigError as error:
        problems.extend(error.problems)
    index = _index_of(document)
    clash = used_address_indices(folder, exclude=name).get(index) if index is not None else None
    if clash is not None and index is not None:
        free = next_free_index([*used_address_indices(folder), index])
        problems.append(
            f"region:addressIndex: {index} is already used by region {clash} (networks would overlap); "
            f"use a free index such as {free}"
        )
    if problems or region is None:
        raise RegionConfigError(path, problems)
    return region


# --------------------------------------------------------------------------------------------- new region


@dataclass(frozen=True)
class ZoneDiscovery:
    """What AWS said about a region's zones and opt-in status, or why it could not be asked."""

    zones: tuple[str, ...] | None
    opt_in_status: str | None
    unavailable: str | None = None  # the reason AWS was not asked or did not answer


@dataclass(frozen=True)
class NewRegion:
    config: RegionConfig
    document: dict[str, Any]
    secrets_to_set: tuple[str, ...]
    notes: tuple[str, ...]
    unchecked: tuple[str, ...]  # what could not be checked offline, each with the command that checks it


def _renamed_backend(old_backend: str, template_residency: str, residency: str, region: str) -> str:
    """A state bucket for the new residency, named after the template's: `...-eu` -> `...-ch`, in `region`."""
    try:
        bucket = parse_s3_backend(old_backend).bucket
    except LocationError:
        bucket = "platform-pulumi-state"
    suffix = f"-{template_residency}"
    base = bucket[: -len(suffix)] if template_residency and bucket.endswith(suffix) else bucket
    return f"s3://{base}-{residency}?region={region}"


def derive_region(
    name: str,
    template_name: str,
    template_document: Mapping[str, Any],
    *,
    used_indices: Iterable[int],
    api_allowlist: tuple[str, ...] | None,
    residency: str | None = None,
    state_backend: str | None = None,
    secrets_provider: str | None = None,
    zones: tuple[str, ...] | None = None,
    accept_two_zones: bool = False,
    discovery: ZoneDiscovery | None = None,
) -> NewRegion:
    """The configuration of region `name` cloned from a template region's file, validated.

    Copies sizing, topology (node groups, zone count, NAT layout), versions and tags; never copies what is the
    template's own: its residency (the new one is `name`'s own jurisdiction's, or `residency` when that policy
    allows the region), its API allowlist (`api_allowlist` is required: () means a private-only endpoint), its
    `secure:` values and encrypted data key (listed in `secrets_to_set`). Takes the next free address index.
    Zones: `zones`, else those AWS reported (`discovery`), else `<name>a..` as many as the template has.
    Raises RegionConfigError listing every problem; nothing is written here.
    """
    catalog = load_catalog()
    path = f"stacks/{STACK_FILE_PREFIX}{name}{STACK_FILE_SUFFIX} (from {template_name})"
    config_in = template_document.get("config") if isinstance(template_document, Mapping) else None
    if not isinstance(config_in, Mapping):
        raise RegionConfigError(path, [f"template {template_name}: no `config:` mapping to copy"])
    problems: list[str] = []
    try:
        own = catalog.default_residency(name)
    except LocationError as error:
        raise RegionConfigError(path, [f"aws:region: {error}"]) from None
    target_residency = residency or own
    try:
        catalog.policy(target_residency)
        if not catalog.allows(target_residency, name):
            problems.append(
                f"region:residency: --residency {target_residency} does not allow {name}, which lies in "
                f"{catalog.where(name)}; leave --residency out to use {own}, the region's own"
            )
    except LocationError as error:
        problems.append(f"region:residency: {error}")
    if api_allowlist is None:
        problems.append(
            "region:apiPublicAccessCidrs: required for a new region and never copied from the template: pass "
            "--api-allowlist CIDR[,CIDR...] with your offices' or VPN's public egress blocks, or --api-allowlist none "
            "for a private-only API endpoint"
        )
    if problems:
        raise RegionConfigError(path, problems)

    config: dict[str, Any] = {}
    secrets: list[str] = []
    for key, value in config_in.items():
        if is_secure_value(value):
            secrets.append(str(key))
            continue
        config[key] = value
    if "encryptedkey" in template_document:
        secrets.append("encryptedkey (the stack's data key; Pulumi creates a new one under the new KMS key)")

    template_residency = str(config_in.get("region:residency", ""))
    old_region = str(config_in.get("aws:region", template_name))
    template_zones = config_in.get("region:availabilityZones")
    zone_count = len(template_zones) if isinstance(template_zones, list) and template_zones else SAFE_ZONES
    notes: list[str] = []
    unchecked: list[str] = []
    if zones:
        new_zones = list(zones)
    elif discovery is not None and discovery.zones is not None:
        new_zones = sorted(discovery.zones)[:zone_count]
        notes.append(f"zones: AWS offers {', '.join(sorted(discovery.zones))}; using {', '.join(new_zones)}")
    else:
        new_zones = [f"{name}{chr(ord('a') + n)}" for n in range(zone_count)]
        unchecked.append(
            f"zones: how many {name} offers to this account and their names (assumed {', '.join(new_zones)})"
        )
    if discovery is not None and discovery.opt_in_status is not None:
        notes.append(f"account: {discovery.opt_in_status}")
    else:
        opt = "opt-in: the account must enable it" if catalog.region(name).opt_in else "enabled by default"
        unchecked.append(f"account: whether {name} is enabled for this account (AWS documents it as {opt})")
    if discovery is not None and discovery.unavailable:
        notes.append(f"AWS not asked: {discovery.unavailable}")

    config["aws:region"] = name
    config["region:residency"] = target_residency
    config["region:addressIndex"] = next_free_index(used_indices)
    config["region:availabilityZones"] = new_zones
    if accept_two_zones:
        config["region:acceptTwoZones"] = True
    else:
        config.pop("region:acceptTwoZones", None)
    config["region:apiPublicAccessCidrs"] = list(api_allowlist or ())
    for key in ("region:kubeContext", "region:clusterName"):
        if isinstance(config.get(key), str):
            config[key] = (
                config[key].replace(old_region, name) if old_region in config[key] else f"{config[key]}-{name}"
            )
    tags = dict(config.get("region:tags") or {})
    if "residency" in tags:
        tags["residency"] = target_residency
        config["region:tags"] = tags
    spec = config.get("platform:spec")
    if isinstance(spec, Mapping):
        spec = dict(spec)
        spec["zones"] = list(new_zones)
        config["platform:spec"] = spec

    old_backend = str(config_in.get("region:stateBackend", ""))
    if state_backend:
        config["region:stateBackend"] = state_backend
    else:
        old_bucket_region = bucket_region(old_backend)
        if old_bucket_region is not None and catalog.allows(target_residency, old_bucket_region):
            notes.append(
                f"state: sharing {template_name}'s state bucket {old_backend} "
                f"({catalog.where(old_bucket_region)}, allowed by {target_residency})"
            )
        else:
            config["region:stateBackend"] = _renamed_backend(old_backend, template_residency, target_residency, name)
            notes.append(
                f"state: {template_name}'s state bucket lies outside {target_residency}; this region's state goes to "
                f"{config['region:stateBackend']}, which must exist (versioned, SSE-KMS) before "
                f"`toolkit region up {name}` (pass --state-backend to choose another)"
            )
        unchecked.append("state: that the state bucket exists, is versioned and encrypted with SSE-KMS")
    old_provider = str(template_document.get("secretsprovider", ""))
    new_provider = secrets_provider
    if new_provider is None:
        alias = "alias/platform-pulumi-secrets"
        if old_provider.startswith("awskms://alias/"):
            alias = old_provider[len("awskms://") :].split("?", 1)[0].replace(f"-{old_region}", "")
        new_provider = f"awskms://{alias}-{name}?region={name}"
        notes.append(f"secrets: {new_provider} must exist before `toolkit region up {name}`")
    unchecked.append("secrets: that the secrets provider's KMS key exists and is enabled")
    document: dict[str, Any] = {"secretsprovider": new_provider, "config": config}
    region = region_from_document(name, document, path)
    return NewRegion(
        config=region,
        document=document,
        secrets_to_set=tuple(secrets),
        notes=tuple(notes),
        unchecked=tuple(unchecked),
    )


ALLOWLIST_COMMENT = (
    "# region:apiPublicAccessCidrs: who may reach the Kubernetes API's public endpoint. [] = private endpoint only\n"
    "# (reach it from inside the VPC or over VPN/Direct Connect). Otherwise list your offices' or VPN's public\n"
    "# egress blocks, e.g. [A.B.C.0/28]: no documentation or private ranges, together at most\n"
    "# region:apiPublicAccessMaxAddresses addresses (default 4096).\n"
)


def write_new_region(new: NewRegion, stacks_dir: Path | None = None, template_name: str = "") -> Path:
    """Write the new region's stack file; refuse to overwrite an existing one."""
    path = stack_file(new.config.name, stacks_dir)
    if path.exists():
        raise RegionConfigError(path, ["already exists; pick another name or edit the file directly"])
    catalog = load_catalog()
    header = (
        f"# Region {new.config.name} ({catalog.region(new.config.aws_region).description}): created by "
        f"`toolkit region new {new.config.name} --like {template_name}`.\n"
        f"# Residency {new.config.residency}: {catalog.describe_policy(new.config.residency)}.\n"
        "# Single source of truth for this region (AWS settings and platform:spec); validated by\n"
        "# toolkit.config.region. Address block: "
        f"{new.config.address_block} (index {new.config.address_index}).\n"
        f"{ALLOWLIST_COMMENT}"
    )
    path.write_text(header + yaml.safe_dump(new.document, sort_keys=False), encoding="utf-8")
    return path
