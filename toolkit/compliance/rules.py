"""The rules every region must pass before `plan` or `up`, evaluated on the declared resources.

Each rule is a pure function `(graph, residency) -> [Violation]`; a violation names the resource (type and
logical name), the rule and what to change. Rules fail closed: a resource of a kind a rule covers that lacks
the setting violates it (a missing setting never counts as compliant).

- encryption-at-rest: log groups have a KMS key; EKS encrypts Secrets with a KMS key; launch templates encrypt
  every volume with a KMS key; EBS volumes are encrypted; every S3 bucket has an aws:kms default encryption;
  StorageClasses set `encrypted: "true"`.
- key-rotation: every KMS key rotates automatically.
- nodes-in-private-subnets: no node group uses a subnet that maps public IPs or whose route table sends
  traffic to an internet gateway.
- imdsv2: every node group uses a launch template, and each launch template requires IMDSv2 tokens with a
  hop limit of at most 2.
- logging: EKS sends at least api, audit and authenticator logs; every VPC has a flow log; every log group has
  a retention.
- mandatory-tags: every AWS resource that can carry tags has non-empty `owner`, `data-classification` and
  `residency`, and `residency` names the region's residency.
- region-residency: every AWS provider is pinned to a region of the residency, every per-resource `region`
  override and every subnet's zone lies in such a region.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from toolkit.compliance.resources import DeclaredResource, ResourceGraph
from toolkit.config.region import RESIDENCY_REGIONS


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
MAX_HOP_LIMIT = 2

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
        *BUCKET_ENCRYPTION,
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
        if not isinstance(hop, int | float) or isinstance(hop, bool) or not 1 <= hop <= MAX_HOP_LIMIT:
            found.append(
                _v(rule, template, f"httpPutResponseHopLimit is {hop!r}; set 1 or 2 so pods cannot reach IMDS")
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


def region_residency(graph: ResourceGraph, residency: str) -> list[Violation]:
    rule = "region-residency"
    allowed = RESIDENCY_REGIONS.get(residency, ())
    found: list[Violation] = []
    for provider in graph.of_type(AWS_PROVIDER):
        region = provider.inputs.get("region")
        if region not in allowed:
            found.append(
                _v(
                    rule,
                    provider,
                    f"region {region!r} is not allowed for {residency.upper()} residency "
                    f"(allowed: {', '.join(allowed)})",
                )
            )
    for resource in graph:
        if not resource.type.startswith("aws:"):
            continue
        override = resource.inputs.get("region")
        if override and override not in allowed:
            found.append(_v(rule, resource, f"region override {override!r} is outside {residency.upper()}"))
        managed_by = graph.provider_of(resource)
        if managed_by is None or managed_by.type != AWS_PROVIDER:
            found.append(_v(rule, resource, "not created through an explicit AWS provider pinned to the region"))
    for subnet in graph.of_type(SUBNET):
        zone = str(subnet.inputs.get("availabilityZone") or "")
        if not any(zone.startswith(region) for region in allowed):
            found.append(_v(rule, subnet, f"availability zone {zone!r} is outside {residency.upper()}"))
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
