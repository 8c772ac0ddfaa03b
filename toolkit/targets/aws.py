"""AWS preflight for one region, with boto3: can `toolkit region up` work here, before Pulumi touches anything?

Checks, in order, each a `PreflightCheck(name, ok, detail)`; a failed check never stops the later ones, so
one run lists every problem:
1. identity: STS GetCallerIdentity answers (credentials exist and are valid);
2. region-enabled: the region is enabled for the account: asked first of the Account API
   (GetRegionOptStatus: ENABLED or ENABLED_BY_DEFAULT), and where that API does not answer (no permission, or
   an emulator without it) of EC2 DescribeRegions (opt-in-not-required or opted-in); the detail names the source;
3. availability-zones: every zone the region file names is available (DescribeAvailabilityZones); a region
   offering fewer zones than the file names fails with the way out (2 zones need region:acceptTwoZones);
4. quotas: where Service Quotas answers, VPCs, Elastic IPs (one per NAT gateway) and on-demand vCPUs leave
   room; an unreadable quota is reported as skipped, not as a failure;
5. state-bucket: the S3 state bucket exists, lies in the expected region, in a jurisdiction the residency
   allows; state-bucket-versioning: versioning is Enabled (a corrupted state can be rolled back);
   state-bucket-encryption: default encryption is SSE-KMS (aws:kms or aws:kms:dsse) with a named key that lies
   in the residency (an ARN is parsed strictly; a key id or alias lives in the bucket's region) and is Enabled.
   S3 encrypts every object anyway (SSE-S3), so "encrypted" alone proves nothing about who holds the key;
6. secrets-key: the KMS key of the `awskms://` secrets provider exists and is Enabled;
7. kms-keys: keys the program manages (aliases `alias/<cluster>-<purpose>`) that already exist are Enabled
   (a key pending deletion or disabled would break the next update);
8. autoscaling-role: the Auto Scaling service-linked role exists (the ebs key policy names it).
`discover_region` asks only the zone and opt-in questions, for `toolkit region new --discover`.
The endpoint comes from boto3's own configuration, so AWS_ENDPOINT_URL redirects every call (moto in tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

KEY_PURPOSES = ("eks-secrets", "ebs", "logs", "snapshots", "alerts")
ENABLED_ACCOUNT_STATES = ("ENABLED", "ENABLED_BY_DEFAULT")
ENABLED_EC2_STATES = ("opt-in-not-required", "opted-in")
KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")
AUTOSCALING_ROLE_NAME = "AWSServiceRoleForAutoScaling"
# (service code, quota code, what it limits)
QUOTAS = (
    ("vpc", "L-F678F1CE", "VPCs per region"),
    ("ec2", "L-0263D0A3", "EC2-VPC Elastic IPs"),
    ("ec2", "L-1216C47A", "Running On-Demand Standard instances (vCPUs)"),
)


@dataclass(frozen=True)
class PreflightCheck:
    name: str
    ok: bool
    detail: str
    skipped: bool = False


@dataclass(frozen=True)
class PreflightRequest:
    aws_region: str
    zones: Sequence[str]
    state_backend: str
    secrets_provider: str
    key_alias_prefix: str
    nat_gateways: int
    # instance type -> how many nodes of it the region may run at most (node groups at max size)
    max_instances: dict[str, int] = field(default_factory=dict)
    residency: str = ""
    # regions whose jurisdiction the residency allows: where the state bucket and its key may live
    allowed_regions: tuple[str, ...] = ()


@dataclass
class PreflightReport:
    region: str
    checks: list[PreflightCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failures(self) -> list[PreflightCheck]:
        return [c for c in self.checks if not c.ok]


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", type(error).__name__))


def request_for(config: Any) -> PreflightRequest:
    """The preflight request of a RegionConfig (kept duck-typed so this adapter needs no config import)."""
    zones = tuple(config.availability_zones)
    max_instances: dict[str, int] = {}
    for group in config.node_groups.values():
        first_type = group.instance_types[0]
        max_instances[first_type] = max_instances.get(first_type, 0) + group.max_per_zone * len(zones)
    return PreflightRequest(
        aws_region=config.aws_region,
        zones=zones,
        state_backend=config.state_backend,
        secrets_provider=config.secrets_provider,
        key_alias_prefix=f"alias/{config.cluster_name}-",
        nat_gateways=len(zones) if config.nat_gateways == "per-zone" else 1,
        max_instances=max_instances,
        residency=config.residency,
        allowed_regions=tuple(config.residency_regions),
    )


def preflight(request: PreflightRequest, session: Any | None = None) -> PreflightReport:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    errors: tuple[type[Exception], ...] = (BotoCoreError, ClientError)
    session = session or boto3.session.Session(region_name=request.aws_region)
    region = request.aws_region
    report = PreflightReport(region=region)
    add = report.checks.append

    try:
        identity = session.client("sts", region_name=region).get_caller_identity()
        add(PreflightCheck("identity", True, f"account {identity['Account']} as {identity['Arn']}"))
    except errors as error:
        add(
            PreflightCheck(
                "identity",
                False,
                f"STS GetCallerIdentity failed ({_error_code(error)}: {error}); set AWS_PROFILE or "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for the account that owns the region",
            )
        )
        return report  # without an identity every other call fails the same way

    ec2 = session.client("ec2", region_name=region)
    report.checks.append(_region_enabled(session, region, errors))
    try:
        names = _available_zones(ec2)
        missing = [z for z in request.zones if z not in names]
        if len(names) < len(request.zones):
            way_out = (
                f"re-create the region with --zones {','.join(names)} --accept-two-zones (a zone outage then stops "
                "ingestion), or pick another region"
                if len(names) == 2
                else "pick another region"
            )
            add(
                PreflightCheck(
                    "availability-zones",
                    False,
                    f"{region} offers this account {len(names)} available zone(s) ({', '.join(names) or 'none'}); "
                    f"the region file names {len(request.zones)}; {way_out}",
                )
            )
        elif missing:
            add(
                PreflightCheck(
                    "availability-zones",
                    False,
                    f"zones {', '.join(missing)} named in the region file are not available here (available: "
                    f"{', '.join(names)}); fix region:availabilityZones",
                )
            )
        else:
            add(PreflightCheck("availability-zones", True, f"{len(names)} available: {', '.join(names)}"))
    except errors as error:
        add(PreflightCheck("availability-zones", False, f"DescribeAvailabilityZones failed: {error}"))

    _quotas(session, request, report, errors)
    _state_bucket(session, request, report, errors)
    _secrets_key(session, request, report, errors)
    _managed_keys(session, request, report, errors)
    _autoscaling_role(session, request, report, errors)
    return report


def _available_zones(ec2: Any) -> list[str]:
    zones = ec2.describe_availability_zones(
        Filters=[{"Name": "state", "Values": ["available"]}, {"Name": "zone-type", "Values": ["availability-zone"]}]
    )["AvailabilityZones"]
    return sorted(z["ZoneName"] for z in zones)


def _opt_in_status(session: Any, region: str, errors: tuple[type[Exception], ...]) -> tuple[bool | None, str]:
    """(enabled, how it is known); enabled is None when neither API answered."""
    try:
        status = session.client("account", region_name="us-east-1").get_region_opt_status(RegionName=region)
        state = str(status.get("RegionOptStatus", ""))
        return state in ENABLED_ACCOUNT_STATES, f"{region} is {state} (Account API)"
    except errors as error:
        account_error = f"Account API GetRegionOptStatus did not answer ({_error_code(error)})"
    try:
        regions = session.client("ec2", region_name=region).describe_regions(AllRegions=True)["Regions"]
    except errors as error:
        return None, f"{account_error}; DescribeRegions failed ({_error_code(error)}): {error}"
    entry = next((r for r in regions if r["RegionName"] == region), None)
    if entry is None:
        return False, f"{region} is not an AWS region this account sees ({account_error}; EC2 DescribeRegions)"
    state = str(entry.get("OptInStatus", "opt-in-not-required"))
    return state in ENABLED_EC2_STATES, f"{region} is {state} (EC2 DescribeRegions; {account_error})"


def _region_enabled(session: Any, region: str, errors: tuple[type[Exception], ...]) -> PreflightCheck:
    enabled, detail = _opt_in_status(session, region, errors)
    if enabled:
        return PreflightCheck("region-enabled", True, detail)
    if enabled is None:
        return PreflightCheck("region-enabled", False, detail)
    return PreflightCheck(
        "region-enabled", False, f"{detail}; enable it in the account settings (Account > AWS Regions) first"
    )


@dataclass(frozen=True)
class RegionDiscovery:
    """What AWS says about a region for this account; `error` says why something could not be asked."""

    zones: tuple[str, ...] | None
    opt_in_status: str | None
    error: str | None = None


def discover_region(region: str, session: Any | None = None) -> RegionDiscovery:
    """The region's available zones and opt-in status, as this account sees them (for `region new --discover`)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    errors: tuple[type[Exception], ...] = (BotoCoreError, ClientError)
    session = session or boto3.session.Session(region_name=region)
    try:
        session.client("sts", region_name=region).get_caller_identity()
    except errors as error:
        return RegionDiscovery(None, None, f"no usable AWS credentials ({_error_code(error)}: {error})")
    enabled, detail = _opt_in_status(session, region, errors)
    if enabled is False:
        return RegionDiscovery(None, detail, f"{region} is not enabled for this account, so its zones are not listed")
    try:
        zones = tuple(_available_zones(session.client("ec2", region_name=region)))
    except errors as error:
        return RegionDiscovery(None, detail, f"DescribeAvailabilityZones failed ({_error_code(error)}): {error}")
    return RegionDiscovery(zones, detail)


def _quotas(
    session: Any, request: PreflightRequest, report: PreflightReport, errors: tuple[type[Exception], ...]
) -> None:
    quotas = session.client("service-quotas", region_name=request.aws_region)
    ec2 = session.client("ec2", region_name=request.aws_region)
    for service, code, label in QUOTAS:
        try:
            value = float(quotas.get_service_quota(ServiceCode=service, QuotaCode=code)["Quota"]["Value"])
        except errors as error:
            report.checks.append(
                PreflightCheck(f"quota {label}", True, f"not readable ({_error_code(error)}); skipped", skipped=True)
            )
            continue
        try:
            if code == "L-F678F1CE":
                used, needed = len(ec2.describe_vpcs()["Vpcs"]), 1
            elif code == "L-0263D0A3":
                used, needed = len(ec2.describe_addresses()["Addresses"]), request.nat_gateways
            else:
                used, needed = _running_vcpus(ec2), _vcpus(ec2, request.max_instances)
        except errors as error:
            report.checks.append(PreflightCheck(f"quota {label}", False, f"could not count usage: {error}"))
            continue
        ok = used + needed <= value
        detail = f"limit {value:g}, in use {used}, this region needs {needed} more"
        if not ok:
            detail += "; request an increase in Service Quotas before `up`"
        report.checks.append(PreflightCheck(f"quota {label}", ok, detail))


def _vcpus(ec2: Any, counts: dict[str, int]) -> int:
    if not counts:
        return 0
    types = ec2.describe_instance_types(InstanceTypes=sorted(counts))["InstanceTypes"]
    per_type = {t["InstanceType"]: int(t["VCpuInfo"]["DefaultVCpus"]) for t in types}
    return sum(per_type.get(name, 0) * count for name, count in counts.items())


def _running_vcpus(ec2: Any) -> int:
    reservations = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["running"]}])
    running: dict[str, int] = {}
    for reservation in reservations["Reservations"]:
        for instance in reservation["Instances"]:
            running[instance["InstanceType"]] = running.get(instance["InstanceType"], 0) + 1
    return _vcpus(ec2, running)


def _state_bucket(
    session: Any, request: PreflightRequest, report: PreflightReport, errors: tuple[type[Exception], ...]
) -> None:
    from toolkit.config.residency import LocationError, parse_arn, parse_s3_backend

    add = report.checks.append
    try:
        backend = parse_s3_backend(request.state_backend)
    except LocationError as error:
        add(PreflightCheck("state-bucket", False, f"{error}; fix region:stateBackend"))
        return
    bucket = backend.bucket
    s3 = session.client("s3", region_name=backend.region)
    try:
        location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
    except errors as error:
        add(
            PreflightCheck(
                "state-bucket",
                False,
                f"state bucket {bucket} is not reachable ({_error_code(error)}); create it in the region's "
                f"jurisdiction with versioning and SSE-KMS (see the README), or fix region:stateBackend",
            )
        )
        return
    allowed = request.allowed_regions
    if location != backend.region:
        add(
            PreflightCheck(
                "state-bucket",
                False,
                f"state bucket {bucket} is in {location}, region:stateBackend says {backend.region}",
            )
        )
    elif allowed and location not in allowed:
        add(
            PreflightCheck(
                "state-bucket",
                False,
                f"state bucket {bucket} is in {location}, outside the {request.residency} residency; use a bucket in "
                f"one of {', '.join(allowed)}",
            )
        )
    else:
        add(PreflightCheck("state-bucket", True, f"{bucket} in {location}"))
    try:
        status = s3.get_bucket_versioning(Bucket=bucket).get("Status", "never enabled")
        add(
            PreflightCheck(
                "state-bucket-versioning",
                status == "Enabled",
                f"versioning is {status}"
                + ("" if status == "Enabled" else f"; enable it: aws s3api put-bucket-versioning --bucket {bucket} "
                   "--versioning-configuration Status=Enabled"),
            )
        )  # fmt: skip
    except errors as error:
        add(PreflightCheck("state-bucket-versioning", False, f"GetBucketVersioning failed: {_error_code(error)}"))
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        default = (rules[0] if rules else {}).get("ApplyServerSideEncryptionByDefault", {})
    except errors as error:
        if _error_code(error) != "ServerSideEncryptionConfigurationNotFoundError":
            add(PreflightCheck("state-bucket-encryption", False, f"GetBucketEncryption failed: {_error_code(error)}"))
            return
        default = {}
    algorithm, key = default.get("SSEAlgorithm", "none (S3-managed keys at most)"), default.get("KMSMasterKeyID")
    fix = (
        f"; set SSE-KMS with a customer key in the residency: aws s3api put-bucket-encryption --bucket {bucket} "
        '--server-side-encryption-configuration \'{"Rules":[{"ApplyServerSideEncryptionByDefault":'
        '{"SSEAlgorithm":"aws:kms","KMSMasterKeyID":"KEY_ARN"},"BucketKeyEnabled":true}]}\''
    )
    if algorithm not in KMS_ALGORITHMS or not key:
        add(
            PreflightCheck(
                "state-bucket-encryption", False, f"default encryption is {algorithm} without a named KMS key{fix}"
            )
        )
        return
    try:
        key_region = parse_arn(key).region if key.startswith("arn:") else location
    except LocationError as error:
        add(PreflightCheck("state-bucket-encryption", False, f"{error}{fix}"))
        return
    if allowed and key_region not in allowed:
        add(
            PreflightCheck(
                "state-bucket-encryption",
                False,
                f"the bucket's KMS key {key} lies in {key_region}, outside the {request.residency} residency{fix}",
            )
        )
        return
    try:
        state = _key_state(session.client("kms", region_name=key_region), key)
    except errors as error:
        add(PreflightCheck("state-bucket-encryption", False, f"the bucket's KMS key {key} is not readable: {error}"))
        return
    add(
        PreflightCheck(
            "state-bucket-encryption",
            state == "Enabled",
            f"{algorithm} with key {key} in {key_region} ({state})",
        )
    )


def _key_state(kms: Any, key_id: str) -> str:
    return str(kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"])


def _secrets_key(
    session: Any, request: PreflightRequest, report: PreflightReport, errors: tuple[type[Exception], ...]
) -> None:
    reference = request.secrets_provider[len("awskms://") :].split("?", 1)[0]
    query = dict(p.split("=", 1) for p in urlparse(request.secrets_provider).query.split("&") if "=" in p)
    kms = session.client("kms", region_name=query.get("region", request.aws_region))
    try:
        state = _key_state(kms, reference)
    except errors as error:
        report.checks.append(
            PreflightCheck(
                "secrets-key",
                False,
                f"secrets provider key {reference} not found ({_error_code(error)}); create it "
                f"(`aws kms create-key` then `aws kms create-alias`) or fix `secretsprovider`",
            )
        )
        return
    ok = state == "Enabled"
    detail = f"{reference} is {state}" + ("" if ok else "; enable it or cancel its deletion before `up`")
    report.checks.append(PreflightCheck("secrets-key", ok, detail))


def _managed_keys(
    session: Any, request: PreflightRequest, report: PreflightReport, errors: tuple[type[Exception], ...]
) -> None:
    kms = session.client("kms", region_name=request.aws_region)
    try:
        aliases = kms.list_aliases()["Aliases"]
    except errors as error:
        report.checks.append(PreflightCheck("kms-keys", False, f"ListAliases failed: {error}"))
        return
    wanted = {f"{request.key_alias_prefix}{purpose}" for purpose in KEY_PURPOSES}
    found = [(a["AliasName"], a.get("TargetKeyId")) for a in aliases if a["AliasName"] in wanted]
    bad = []
    for alias, key_id in found:
        try:
            state = _key_state(kms, key_id or alias)
        except errors as error:
            bad.append(f"{alias}: {error}")
            continue
        if state != "Enabled":
            bad.append(f"{alias} is {state}")
    if bad:
        report.checks.append(
            PreflightCheck(
                "kms-keys",
                False,
                "; ".join(bad) + " (cancel the deletion with `aws kms cancel-key-deletion` and enable the key)",
            )
        )
    else:
        report.checks.append(
            PreflightCheck("kms-keys", True, f"{len(found)} existing managed key(s) enabled" if found else "none yet")
        )


def _autoscaling_role(
    session: Any, request: PreflightRequest, report: PreflightReport, errors: tuple[type[Exception], ...]
) -> None:
    iam = session.client("iam", region_name=request.aws_region)
    try:
        iam.get_role(RoleName=AUTOSCALING_ROLE_NAME)
        report.checks.append(PreflightCheck("autoscaling-role", True, f"{AUTOSCALING_ROLE_NAME} exists"))
    except errors as error:
        report.checks.append(
            PreflightCheck(
                "autoscaling-role",
                False,
                f"{AUTOSCALING_ROLE_NAME} is missing ({_error_code(error)}); the ebs key policy names it. Create it: "
                "`aws iam create-service-linked-role --aws-service-name autoscaling.amazonaws.com`",
            )
        )
