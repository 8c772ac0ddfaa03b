"""The rules every region must pass before `plan` or `up`, evaluated on the declared resources.

Each rule is a pure function `(graph, residency) -> [Violation]`; a violation names the resource (type and
logical name), the rule and what to change. Rules fail closed: a resource of a kind a rule covers that lacks
the setting violates it (a missing setting never counts as compliant).

- encryption-at-rest: log groups have a KMS key; EKS encrypts Secrets with a KMS key; launch templates encrypt
  every volume with a KMS key; EBS volumes are encrypted; every S3 bucket has an aws:kms default encryption;
  StorageClasses set `encrypted: "true"`; SNS topics (alarm notifications) are encrypted with a KMS key.
- key-rotation: every KMS key rotates automatically.
- nodes-in-private-subnets: no node group uses a subnet that maps public IPs or whose route table sends
  traffic to an internet gateway.
- imdsv2: every node group uses a launch template, and each launch template requires IMDSv2 tokens with a
  hop limit of exactly 1 (with 2, the token answer crosses the extra hop into a pod's network namespace, so pods
  reach the node's credentials); no Kubernetes workload runs with `hostNetwork: true` (it shares the node's
  network namespace and reaches IMDS whatever the hop limit); every EKS add-on whose pods look their region up
  in IMDS gets it set explicitly (`ADDON_REGION_SETTINGS`), and an add-on the table does not know is refused.
- logging: EKS sends at least api, audit and authenticator logs; every VPC has a flow log; every log group has
  a retention.
- mandatory-tags: every AWS resource that can carry tags has non-empty `owner`, `data-classification` and
  `residency`, and `residency` names the region's residency.
- region-residency: every AWS provider is pinned to a region whose jurisdiction the residency allows; every
  `region`-named input (at any depth, e.g. a replication destination's region), every subnet's zone and every
  ARN found in any input (at any depth, also inside JSON policy documents) lies in such a region, ARNs parsed
  strictly (toolkit.config.residency.parse_arn: a `?region=` suffix is a malformed ARN, not a relocation);
  every S3 replication target is a bucket this program declares through an allowed provider (an S3 ARN names
  no region, so an undeclared target cannot be located and fails).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from toolkit.compliance.resources import DeclaredResource, ResourceGraph
from toolkit.config.residency import LocationError, RegionCatalog, load_catalog, parse_arn


@dataclass(frozen=True)
class Violation:
    rule: str
    resource_type: str
    resource_name: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.resource_type} {self.resource_name!r}: {self.message}"


Rule = Callable[[ResourceGraph, str], list[Violation]]

MANDATORY_TAGS = ("owner", "data-classification", "residency")
REQUIRED_LOG_TYPES = ("api", "audit", "authenticator")
HOP_LIMIT = 1
# EKS add-ons: where each takes its AWS region from, as a path in its configuration values (None: it needs
# none). With hop limit 1 the add-on's pods cannot ask IMDS, so the region must be set explicitly.
ADDON_REGION_SETTINGS: dict[str, tuple[str, ...] | None] = {
    "aws-ebs-csi-driver": ("controller", "region"),
    "coredns": None,
    "kube-proxy": None,
    "vpc-cni": None,  # aws-node runs in the host network namespace by design; EKS manages it
}

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
EBS_VOLUME = "aws:ebs/volume:Volume"
BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
BUCKET_ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
EKS_ADDON = "aws:eks/addon:Addon"
SNS_TOPIC = "aws:sns/topic:Topic"
BUCKET_REPLICATION = (
    "aws:s3/bucketReplicationConfig:BucketReplicationConfig",
    "aws:s3/bucketReplicationConfiguration:BucketReplicationConfiguration",
)
# Kubernetes workload kinds and where their pod spec sits.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "core/v1:Pod": ("spec",),
    "apps/v1:Deployment": ("spec", "template", "spec"),
    "apps/v1:StatefulSet": ("spec", "template", "spec"),
    "apps/v1:DaemonSet": ("spec", "template", "spec"),
    "apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "batch/v1:Job": ("spec", "template", "spec"),
    "batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
KMS_KEY = "aws:kms/key:Key"
SUBNET = "aws:ec2/subnet:Subnet"
ROUTE = "aws:ec2/route:Route"
ROUTE_TABLE_ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"
INTERNET_GATEWAY = "aws:ec2/internetGateway:InternetGateway"
VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
AWS_PROVIDER = "pulumi:providers:aws"

# AWS resource types the program uses that cannot carry tags; every other `aws:` type must be tagged.
UNTAGGABLE = frozenset(
    {
        ROUTE,
        ROUTE_TABLE_ASSOCIATION,
        "aws:iam/rolePolicy:RolePolicy",
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:kms/alias:Alias",
        "aws:kms/keyPolicy:KeyPolicy",
        "aws:s3/bucketVersioning:BucketVersioning",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
        "aws:s3/bucketPolicy:BucketPolicy",
        "aws:cloudwatch/eventTarget:EventTarget",
        "aws:sns/topicPolicy:TopicPolicy",
        *BUCKET_ENCRYPTION,
        *BUCKET_REPLICATION,
    }
)


def _v(rule: str, resource: DeclaredResource, message: str) -> Violation:
    return Violation(rule=rule, resource_type=resource.type, resource_name=resource.name, message=message)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def encryption_at_rest(graph: ResourceGraph, residency: str) -> list[Violation]:
    rule = "encryption-at-rest"
    found: list[Violation] = []
    for group in graph.of_type(LOG_GROUP):
        if not group.inputs.get("kmsKeyId"):
            found.append(_v(rule, group, "log group has no kmsKeyId; encrypt it with the region's logs key"))
    for cluster in graph.of_type(EKS_CLUSTER):
        config = cluster.inputs.get("encryptionConfig") or {}
        provider = config.get("provider") or {}
        if "secrets" not in (config.get("resources") or []) or not provider.get("keyArn"):
            found.append(_v(rule, cluster, "Kubernetes Secrets are not envelope-encrypted with a KMS key"))
    for template in graph.of_type(LAUNCH_TEMPLATE):
        mappings = template.inputs.get("blockDeviceMappings") or []
        if not mappings:
            found.append(_v(rule, template, "no block device mapping, so the root volume is not encrypted"))
        for mapping in mappings:
            ebs = mapping.get("ebs") or {}
            if not _truthy(ebs.get("encrypted")) or not ebs.get("kmsKeyId"):
                found.append(_v(rule, template, f"volume {mapping.get('deviceName')} is not encrypted with a KMS key"))
    for volume in graph.of_type(EBS_VOLUME):
        if not _truthy(volume.inputs.get("encrypted")):
            found.append(_v(rule, volume, "EBS volume is not encrypted"))
    for bucket in graph.of_type(*BUCKETS):
        configs = [c for t in BUCKET_ENCRYPTION for c in graph.referring(t, "bucket", bucket.id)]
        kms = [
            rule_
            for c in configs
            for rule_ in c.inputs.get("rules") or []
            if (rule_.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm") == "aws:kms"
            and (rule_.get("applyServerSideEncryptionByDefault") or {}).get("kmsMasterKeyId")
        ]
        if not kms:
            found.append(_v(rule, bucket, "bucket has no aws:kms default encryption with a customer key"))
    for topic in graph.of_type(SNS_TOPIC):
        if not topic.inputs.get("kmsMasterKeyId"):
            found.append(_v(rule, topic, "topic has no kmsMasterKeyId; encrypt it with the region's alerts key"))
    for storage_class in graph.of_type(STORAGE_CLASS):
        parameters = storage_class.inputs.get("parameters") or {}
        if parameters.get("encrypted") != "true":
            found.append(_v(rule, storage_class, 'StorageClass does not set parameters.encrypted: "true"'))
    return found


def key_rotation(graph: ResourceGraph, residency: str) -> list[Violation]:
    return [
        _v("key-rotation", key, "automatic key rotation is off; set enable_key_rotation=True")
        for key in graph.of_type(KMS_KEY)
        if key.inputs.get("enableKeyRotation") is not True
    ]


def _public_reason(graph: ResourceGraph, subnet: DeclaredResource) -> str | None:
    if _truthy(subnet.inputs.get("mapPublicIpOnLaunch")):
        return "maps public IPs on launch"
    for association in graph.referring(ROUTE_TABLE_ASSOCIATION, "subnetId", subnet.id):
        table_id = association.inputs.get("routeTableId")
        for route in graph.of_type(ROUTE):
            if route.inputs.get("routeTableId") != table_id:
                continue
            gateway = graph.by_id(route.inputs.get("gatewayId"))
            if gateway is not None and gateway.type == INTERNET_GATEWAY:
                return f"routes {route.inputs.get('destinationCidrBlock')} to internet gateway {gateway.name!r}"
    return None


def nodes_in_private_subnets(graph: ResourceGraph, residency: str) -> list[Violation]:
    found: list[Violation] = []
    for group in graph.of_type(NODE_GROUP):
        for subnet_id in group.inputs.get("subnetIds") or []:
            subnet = graph.by_id(subnet_id)
            if subnet is None:
                continue
            reason = _public_reason(graph, subnet)
            if reason:
                found.append(
                    _v(
                        "nodes-in-private-subnets",
                        group,
                        f"nodes land in public subnet {subnet.name!r} ({reason}); use the private subnets",
                    )
                )
    return found


def _path(value: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _provider_region(graph: ResourceGraph, resource: DeclaredResource) -> str | None:
    provider = graph.provider_of(resource)
    region = provider.inputs.get("region") if provider is not None else None
    return region if isinstance(region, str) else None


def imdsv2(graph: ResourceGraph, residency: str) -> list[Violation]:
    rule = "imdsv2"
    found: list[Violation] = []
    for group in graph.of_type(NODE_GROUP):
        template = (group.inputs.get("launchTemplate") or {}).get("id")
        if graph.by_id(template) is None:
            found.append(_v(rule, group, "node group has no launch template, so IMDSv2 is not enforced"))
    for template in graph.of_type(LAUNCH_TEMPLATE):
        options = template.inputs.get("metadataOptions") or {}
        if options.get("httpTokens") != "required":
            found.append(_v(rule, template, f"httpTokens is {options.get('httpTokens')!r}; set it to 'required'"))
        hop = options.get("httpPutResponseHopLimit")
        # Pulumi sends every number as a float: 1.0 is the hop limit 1.
        if not isinstance(hop, int | float) or isinstance(hop, bool) or hop != HOP_LIMIT:
            found.append(
                _v(
                    rule,
                    template,
                    f"httpPutResponseHopLimit is {hop!r}; set 1. With 2 or more the answer to the IMDSv2 token "
                    "request survives the hop from the node into a pod's network namespace, so pods reach the "
                    "instance metadata and the node role's credentials; with 1 only the node itself does",
                )
            )
    for resource in graph:
        kind = resource.type.removeprefix("kubernetes:")
        if not resource.type.startswith("kubernetes:") or kind not in POD_SPEC_PATHS:
            continue
        pod_spec = _path(dict(resource.inputs), POD_SPEC_PATHS[kind])
        if isinstance(pod_spec, dict) and _truthy(pod_spec.get("hostNetwork")):
            found.append(
                _v(
                    rule,
                    resource,
                    "hostNetwork is true: the pod shares the node's network namespace and reaches IMDS (and the "
                    "node role's credentials) whatever the hop limit; remove hostNetwork and give the workload "
                    "its own IAM role (IRSA) if it calls AWS",
                )
            )
    for addon in graph.of_type(EKS_ADDON):
        name = str(addon.inputs.get("addonName") or "")
        if name not in ADDON_REGION_SETTINGS:
            found.append(
                _v(
                    rule,
                    addon,
                    f"add-on {name!r} is not in the toolkit's table of where add-ons take their region from "
                    "(ADDON_REGION_SETTINGS); with hop limit 1 its pods cannot ask IMDS: check its configuration "
                    "schema (`aws eks describe-addon-configuration`) and add it",
                )
            )
            continue
        setting = ADDON_REGION_SETTINGS[name]
        if setting is None:
            continue
        raw = addon.inputs.get("configurationValues")
        try:
            values = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            values = None
        region = _path(values, setting)
        expected = _provider_region(graph, addon)
        if region != expected:
            found.append(
                _v(
                    rule,
                    addon,
                    f"configuration {'.'.join(setting)} is {region!r}, expected the region {expected!r}: with hop "
                    "limit 1 the add-on's pods cannot look the region up in IMDS; set it in configuration_values",
                )
            )
    return found


def logging(graph: ResourceGraph, residency: str) -> list[Violation]:
    rule = "logging"
    found: list[Violation] = []
    for cluster in graph.of_type(EKS_CLUSTER):
        enabled = set(cluster.inputs.get("enabledClusterLogTypes") or [])
        missing = [t for t in REQUIRED_LOG_TYPES if t not in enabled]
        if missing:
            found.append(_v(rule, cluster, f"control-plane log types {', '.join(missing)} are off"))
    for vpc in graph.of_type(VPC):
        if not graph.referring(FLOW_LOG, "vpcId", vpc.id):
            found.append(_v(rule, vpc, "VPC has no flow log"))
    for group in graph.of_type(LOG_GROUP):
        if not group.inputs.get("retentionInDays"):
            found.append(_v(rule, group, "log group has no retentionInDays"))
    return found


def mandatory_tags(graph: ResourceGraph, residency: str) -> list[Violation]:
    found: list[Violation] = []
    for resource in graph:
        if not resource.type.startswith("aws:") or resource.type in UNTAGGABLE:
            continue
        tags = resource.tags
        missing = [t for t in MANDATORY_TAGS if not tags.get(t)]
        if missing:
            found.append(_v("mandatory-tags", resource, f"missing tag(s) {', '.join(missing)}"))
        elif tags.get("residency") != residency:
            found.append(
                _v("mandatory-tags", resource, f"tag residency={tags.get('residency')!r}, expected {residency!r}")
            )
    return found


def _strings(value: Any, key: str = "") -> list[tuple[str, str]]:
    """Every (key, string) inside `value`, at any depth; JSON documents held in strings are opened too."""
    found: list[tuple[str, str]] = []
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in "{[":
            try:
                return _strings(json.loads(text), key)
            except ValueError:
                pass
        found.append((key, value))
    elif isinstance(value, dict):
        for k, v in value.items():
            if str(k) != "tags":
                found.extend(_strings(v, str(k)))
    elif isinstance(value, list | tuple):
        for item in value:
            found.extend(_strings(item, key))
    return found


def _zone_region(zone: str, catalog: RegionCatalog) -> str | None:
    """The region of an availability zone name `<region><letter>`, or None."""
    region, letter = zone[:-1], zone[-1:]
    return region if letter.isalpha() and letter.islower() and region in catalog.regions else None


def region_residency(graph: ResourceGraph, residency: str) -> list[Violation]:
    rule = "region-residency"
    catalog = load_catalog()
    try:
        policy = catalog.policy(residency)
    except LocationError as error:
        return [Violation(rule, "residency", residency, str(error))]
    allowed = policy.jurisdictions
    what = f"{residency} residency ({catalog.describe_policy(residency)})"

    def inside(region: str) -> bool:
        known = catalog.regions.get(region)
        return known is not None and known.jurisdiction in allowed

    def where(region: str) -> str:
        return catalog.where(region) if region in catalog.regions else "an unknown region"

    found: list[Violation] = []
    for provider in graph.of_type(AWS_PROVIDER):
        region = provider.inputs.get("region")
        if not isinstance(region, str) or not inside(region):
            found.append(
                _v(
                    rule,
                    provider,
                    f"region {region!r} ({where(str(region))}) is not allowed by the {what}; "
                    f"allowed regions: {', '.join(catalog.regions_of(residency))}",
                )
            )
    for resource in graph:
        if resource.type == AWS_PROVIDER:
            continue
        if resource.type.startswith("aws:"):
            managed_by = graph.provider_of(resource)
            if managed_by is None or managed_by.type != AWS_PROVIDER:
                found.append(_v(rule, resource, "not created through an explicit AWS provider pinned to the region"))
        for key, text in _strings(dict(resource.inputs)):
            if key.lower().endswith("region") and text and not inside(text):
                found.append(_v(rule, resource, f"{key} {text!r} ({where(text)}) is outside the {what}"))
            if text.startswith("arn:"):
                try:
                    arn = parse_arn(text, catalog)
                except LocationError as error:
                    found.append(_v(rule, resource, f"{key}: {error}"))
                    continue
                if arn.region and not inside(arn.region):
                    where_arn = f"{arn.region} ({where(arn.region)})"
                    found.append(_v(rule, resource, f"{key} {text} lies in {where_arn}, outside the {what}"))
    for subnet in graph.of_type(SUBNET):
        zone = str(subnet.inputs.get("availabilityZone") or "")
        region = _zone_region(zone, catalog)
        if region is None or not inside(region):
            found.append(_v(rule, subnet, f"availability zone {zone!r} is outside the {what}"))
    for replication in graph.of_type(*BUCKET_REPLICATION):
        for entry in replication.inputs.get("rules") or []:
            target = str(_path(entry, ("destination", "bucket")) or "")
            bucket = graph.by_arn(target)
            region = _provider_region(graph, bucket) if bucket is not None else None
            if bucket is None:
                found.append(
                    _v(
                        rule,
                        replication,
                        f"replication target {target!r} is not a bucket this program declares, so its region cannot "
                        "be checked (an S3 ARN names no region); declare the target bucket here, through a provider "
                        f"in the {what}",
                    )
                )
            elif region is None or not inside(region):
                found.append(
                    _v(rule, replication, f"replication target {bucket.name!r} lies in {region!r}, outside the {what}")
                )
    return found


RULES: dict[str, Rule] = {
    "encryption-at-rest": encryption_at_rest,
    "key-rotation": key_rotation,
    "nodes-in-private-subnets": nodes_in_private_subnets,
    "imdsv2": imdsv2,
    "logging": logging,
    "mandatory-tags": mandatory_tags,
    "region-residency": region_residency,
}


def evaluate(resources: list[DeclaredResource], residency: str) -> list[Violation]:
    """Every violation of every rule, in rule order."""
    graph = ResourceGraph(resources)
    return [violation for rule in RULES.values() for violation in rule(graph, residency)]
