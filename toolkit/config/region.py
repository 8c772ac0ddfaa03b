"""One AWS region's configuration: the typed schema of `stacks/Pulumi.<region>.yaml` and the address plan.

The region file is a Pulumi stack settings file and the single source of truth for that region: AWS settings
under the `region:` and `aws:` namespaces, the platform's sizing and versions under `platform:spec`, and the
stack's secrets provider at the top level (`secretsprovider: awskms://...`).

Validation (`region_from_document`) collects every problem before raising one `RegionConfigError`:
1. shape: a mapping with a `config:` mapping; unknown `region:*` keys are reported (typos never pass silently);
2. fields: pydantic checks each value; its errors are mapped back to the YAML key that holds the value;
3. rules across fields, run only over the fields that parsed: the AWS region belongs to the residency's
   jurisdiction, the state bucket's region and the secrets KMS key's region too, zones are zones of that region,
   the platform's zones are among them, the public API allowlist never opens to the whole internet.
`load_region` adds one rule across files: no two region files share an address index.

Address plan (invariant: no two regions' networks overlap, so regions can be peered later):
- region `i` (0 <= i < 256) owns `10.i.0.0/16`, carved from `10.0.0.0/8`;
- inside it, zone `z` (0 <= z < 6) gets private `10.i.(32*z).0/19` (nodes and pods) and public
  `10.i.(192+4*z).0/22` (load balancers and NAT gateways); private blocks fill 10.i.0.0-10.i.191.255 and
  public ones sit in 10.i.192.0/18, so no two subnets overlap;
- the index is recorded in the region file (`region:addressIndex`); `next_free_index` gives the lowest unused.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from toolkit.config.platform import PlatformSpec

Residency = Literal["eu", "us"]

# Which AWS regions keep data inside each jurisdiction. eu-west-2 (London) and eu-central-2 (Zurich) are in
# Europe but outside the European Union, so they are deliberately absent from "eu".
RESIDENCY_REGIONS: dict[str, tuple[str, ...]] = {
    "eu": ("eu-west-1", "eu-west-3", "eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2"),
    "us": ("us-east-1", "us-east-2", "us-west-1", "us-west-2"),
}

NODE_ROLES = ("kafka", "elasticsearch", "workers")
CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557)

SUPERNET = ipaddress.IPv4Network("10.0.0.0/8")
REGION_PREFIX_LENGTH = 16
PRIVATE_PREFIX_LENGTH = 19
PUBLIC_PREFIX_LENGTH = 22
MAX_ZONES = 6
MAX_REGIONS = 2 ** (REGION_PREFIX_LENGTH - SUPERNET.prefixlen)

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
    residency: Residency
    address_index: int = Field(ge=0, lt=MAX_REGIONS)
    state_backend: str
    secrets_provider: str
    availability_zones: tuple[str, ...] = Field(min_length=3, max_length=MAX_ZONES)
    nat_gateways: Literal["per-zone", "single"] = "per-zone"
    kubernetes_version: str = Field(pattern=r"^1\.\d{2}$")
    api_public_access_cidrs: tuple[str, ...] = ()
    kube_context: str = Field(min_length=1)
    cluster_name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    control_plane_log_types: tuple[str, ...] = CONTROL_PLANE_LOG_TYPES
    node_metadata_hop_limit: int = Field(1, ge=1, le=64)
    log_retention_days: int = 365
    node_groups: dict[str, NodeGroupConfig]
    tags: dict[str, str] = Field(default_factory=dict)
    platform: PlatformSpec

    @property
    def address_block(self) -> ipaddress.IPv4Network:
        return region_block(self.address_index)

    @property
    def subnets(self) -> list[ZoneSubnets]:
        return zone_subnets(self.address_index, len(self.availability_zones))


# YAML key -> RegionConfig field. `secretsprovider` is a top-level key of the stack file, the rest sit in config.
CONFIG_KEYS: dict[str, str] = {
    "aws:region": "aws_region",
    "region:residency": "residency",
    "region:addressIndex": "address_index",
    "region:stateBackend": "state_backend",
    "region:availabilityZones": "availability_zones",
    "region:natGateways": "nat_gateways",
    "region:kubernetesVersion": "kubernetes_version",
    "region:apiPublicAccessCidrs": "api_public_access_cidrs",
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
    """Region of a Pulumi S3 backend URL `s3://bucket?region=eu-west-1`, or None when it does not say."""
    query = parse_qs(urlparse(state_backend).query)
    return query.get("region", [None])[0]


_ARN_REGION = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:(key|alias)/")


def kms_region(secrets_provider: str) -> str | None:
    """Region of an `awskms://` secrets provider: from `?region=` or from a key ARN; None when it does not say."""
    parsed = urlparse(secrets_provider)
    query_region = parse_qs(parsed.query).get("region", [None])[0]
    if query_region:
        return query_region
    key_ref = secrets_provider[len("awskms://") :].split("?", 1)[0]
    match = _ARN_REGION.match(key_ref)
    return match.group(1) if match else None


def jurisdiction_of(aws_region: str) -> str | None:
    for residency, regions in RESIDENCY_REGIONS.items():
        if aws_region in regions:
            return residency
    return None


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
        problems.append(f"{where}: {item['msg']} (got {got})")
    return problems, bad_fields


def _rule_problems(values: dict[str, Any], bad: set[str]) -> list[str]:
    """Rules across fields, each only over fields that parsed."""
    problems: list[str] = []

    def ok(*fields: str) -> bool:
        return all(f in values and f not in bad for f in fields)

    if ok("aws_region", "residency"):
        region, residency = values["aws_region"], values["residency"]
        allowed = RESIDENCY_REGIONS[residency]
        if region not in allowed:
            problems.append(
                f"aws:region: {region} is outside the {residency.upper()} residency "
                f"(allowed: {', '.join(allowed)}); pick an allowed region or change region:residency"
            )
    if ok("residency", "state_backend"):
        residency, backend = values["residency"], values["state_backend"]
        if not str(backend).startswith("s3://"):
            problems.append(f"region:stateBackend: {backend!r} is not an S3 backend URL; use s3://BUCKET?region=REGION")
        else:
            where = bucket_region(backend)
            if where is None:
                problems.append(
                    f"region:stateBackend: {backend!r} does not name the bucket's region; "
                    "append ?region=REGION so residency can be checked"
                )
            elif where not in RESIDENCY_REGIONS[residency]:
                problems.append(
                    f"region:stateBackend: the state bucket is in {where}, outside the {residency.upper()} "
                    f"residency; use a bucket in one of {', '.join(RESIDENCY_REGIONS[residency])}"
                )
    if ok("residency", "secrets_provider"):
        residency, provider = values["residency"], values["secrets_provider"]
        if not str(provider).startswith("awskms://"):
            problems.append(
                f"secretsprovider: {provider!r} is not an AWS KMS provider; use awskms://alias/NAME?region=REGION"
            )
        else:
            where = kms_region(provider)
            if where is None:
                problems.append(f"secretsprovider: {provider!r} does not name the key's region; append ?region=REGION")
            elif where not in RESIDENCY_REGIONS[residency]:
                problems.append(
                    f"secretsprovider: the KMS key is in {where}, outside the {residency.upper()} residency; "
                    f"use a key in one of {', '.join(RESIDENCY_REGIONS[residency])}"
                )
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
    if ok("availability_zones", "platform"):
        region_zones = set(values["availability_zones"])
        platform: PlatformSpec = values["platform"]
        missing = [z for z in platform.zones if z not in region_zones]
        if missing:
            problems.append(
                f"platform:spec.zones: {', '.join(missing)} not among region:availabilityZones "
                f"({', '.join(sorted(region_zones))}); the platform can only spread over the region's zones"
            )
    if ok("api_public_access_cidrs"):
        for cidr in values["api_public_access_cidrs"]:
            try:
                network = ipaddress.ip_network(cidr)
            except ValueError:
                problems.append(f"region:apiPublicAccessCidrs: {cidr!r} is not a CIDR block; write e.g. 203.0.113.0/24")
                continue
            if network.prefixlen == 0:
                problems.append(
                    f"region:apiPublicAccessCidrs: {cidr} opens the Kubernetes API to the whole internet; "
                    "list your offices' or VPN's blocks, or none for a private-only endpoint"
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
    """Validate a parsed stack file; raise RegionConfigError listing every problem."""
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
        model = RegionConfig.model_validate(values)
        parsed = dict(model)
    except ValidationError as error:
        field_problems, bad = _field_problems(error)
        problems.extend(field_problems)
        # Re-validate fields one by one so the rules across fields see every value that parsed.
        for field, value in values.items():
            info = RegionConfig.model_fields.get(field)
            if field in bad or info is None:
                continue
            try:
                annotation: Any = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
                parsed[field] = TypeAdapter(annotation).validate_python(value)
            except ValidationError:
                bad.add(field)
    problems.extend(_rule_problems(parsed, bad))
    if problems:
        raise RegionConfigError(path, problems)
    return RegionConfig.model_validate(values)


# --------------------------------------------------------------------------------------------- files


def default_stacks_dir() -> Path:
    """`$TOOLKIT_STACKS_DIR`, else `./stacks` when present, else the checkout's `stacks/` beside `toolkit/`."""
    env = os.environ.get("TOOLKIT_STACKS_DIR")
    if env:
        return Path(env)
    here = Path.cwd() / "stacks"
    if (here / "Pulumi.yaml").exists():
        return here
    return Path(__file__).resolve().parents[2] / "stacks"


def stack_file(name: str, stacks_dir: Path | None = None) -> Path:
    return (stacks_dir or default_stacks_dir()) / f"{STACK_FILE_PREFIX}{name}{STACK_FILE_SUFFIX}"


def list_regions(stacks_dir: Path | None = None) -> list[str]:
    """Names of the regions that have a stack file, sorted."""
    folder = stacks_dir or default_stacks_dir()
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


def used_address_indices(stacks_dir: Path | None = None, exclude: str | None = None) -> dict[int, str]:
    """Address index -> region name for every region file (read raw, so one broken file does not hide others)."""
    used: dict[int, str] = {}
    folder = stacks_dir or default_stacks_dir()
    for name in list_regions(folder):
        if name == exclude:
            continue
        try:
            document = read_document(stack_file(name, folder))
        except RegionConfigError:
            continue
        config = document.get("config") if isinstance(document, Mapping) else None
        index = config.get("region:addressIndex") if isinstance(config, Mapping) else None
        if isinstance(index, int):
            used[index] = name
    return used


def load_region(name: str, stacks_dir: Path | None = None) -> RegionConfig:
    """Read and validate `stacks/Pulumi.<name>.yaml`; raise RegionConfigError listing every problem."""
    folder = stacks_dir or default_stacks_dir()
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
    config = document.get("config") if isinstance(document, Mapping) else None
    index = config.get("region:addressIndex") if isinstance(config, Mapping) else None
    clash = used_address_indices(folder, exclude=name).get(index) if isinstance(index, int) else None
    if clash is not None and isinstance(index, int):
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
class NewRegion:
    config: RegionConfig
    document: dict[str, Any]
    secrets_to_set: tuple[str, ...]
    notes: tuple[str, ...]


def derive_region(
    name: str,
    template_name: str,
    template_document: Mapping[str, Any],
    *,
    used_indices: Iterable[int],
    residency: str | None = None,
    state_backend: str | None = None,
    secrets_provider: str | None = None,
    zones: tuple[str, ...] | None = None,
) -> NewRegion:
    """The configuration of region `name` cloned from a template region's file, validated.

    Takes the next free address index; renames what names the region (aws:region, zones, cluster, context);
    keeps sizing, versions and tags; never copies `secure:` values nor the template's encrypted data key:
    their keys are returned in `secrets_to_set`. Raises RegionConfigError listing every problem.
    """
    path = f"stacks/{STACK_FILE_PREFIX}{name}{STACK_FILE_SUFFIX} (from {template_name})"
    config_in = template_document.get("config") if isinstance(template_document, Mapping) else None
    if not isinstance(config_in, Mapping):
        raise RegionConfigError(path, [f"template {template_name}: no `config:` mapping to copy"])
    template_residency = str(config_in.get("region:residency", ""))
    target_residency = residency or template_residency
    problems: list[str] = []
    jurisdiction = jurisdiction_of(name)
    if jurisdiction is None:
        known = "; ".join(f"{r}: {', '.join(rs)}" for r, rs in RESIDENCY_REGIONS.items())
        problems.append(f"{name}: not an AWS region the toolkit can place in a residency ({known})")
    elif jurisdiction != target_residency:
        how = (
            f"pass --residency {jurisdiction} together with --state-backend and --secrets-provider located in "
            f"{jurisdiction.upper()}"
            if residency is None
            else f"use a region in {target_residency.upper()}: {', '.join(RESIDENCY_REGIONS.get(target_residency, ()))}"
        )
        problems.append(
            f"residency: template {template_name} is {template_residency.upper()}-resident and {name} lies in "
            f"{jurisdiction.upper()}; the copy would move the region's data out of {target_residency.upper()}; "
            f"{how}"
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

    old_region = str(config_in.get("aws:region", template_name))
    new_zones = list(zones) if zones else [f"{name}{suffix}" for suffix in ("a", "b", "c")]
    config["aws:region"] = name
    config["region:residency"] = target_residency
    config["region:addressIndex"] = next_free_index(used_indices)
    config["region:availabilityZones"] = new_zones
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
        spec["zones"] = new_zones[: max(3, len(spec.get("zones", ())))]
        config["platform:spec"] = spec

    notes: list[str] = []
    old_backend = str(config_in.get("region:stateBackend", ""))
    if state_backend:
        config["region:stateBackend"] = state_backend
    elif bucket_region(old_backend) in RESIDENCY_REGIONS.get(target_residency, ()):
        notes.append(f"state: sharing {template_name}'s state bucket {old_backend} (same jurisdiction)")
    old_provider = str(template_document.get("secretsprovider", ""))
    new_provider = secrets_provider
    if new_provider is None and old_provider.startswith("awskms://alias/"):
        alias = old_provider[len("awskms://") :].split("?", 1)[0].replace(old_region, name)
        new_provider = f"awskms://{alias}?region={name}"
        notes.append(
            f"secrets: {new_provider} must exist before `toolkit region up {name}` "
            f"(`toolkit region preflight {name}` checks it)"
        )
    document: dict[str, Any] = {"secretsprovider": new_provider or old_provider, "config": config}
    region = region_from_document(name, document, path)
    return NewRegion(config=region, document=document, secrets_to_set=tuple(secrets), notes=tuple(notes))


def write_new_region(new: NewRegion, stacks_dir: Path | None = None, template_name: str = "") -> Path:
    """Write the new region's stack file; refuse to overwrite an existing one."""
    path = stack_file(new.config.name, stacks_dir)
    if path.exists():
        raise RegionConfigError(path, ["already exists; pick another name or edit the file directly"])
    header = (
        f"# Region {new.config.name}: created by `toolkit region new {new.config.name} --like {template_name}`.\n"
        "# Single source of truth for this region (AWS settings and platform:spec); validated by\n"
        "# toolkit.config.region. Address block: "
        f"{new.config.address_block} (index {new.config.address_index}).\n"
    )
    path.write_text(header + yaml.safe_dump(new.document, sort_keys=False), encoding="utf-8")
    return path
