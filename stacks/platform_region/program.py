"""The whole region, in dependency order; returns the outputs the toolkit and the charts need.

Order (each step needs the one before): keys -> logs key policy -> network -> cluster roles -> secrets key
policy -> cluster (control plane, OIDC, EBS CSI role) -> snapshot bucket and writer role -> ebs, snapshots and
alerts key policies -> node pools (node groups, EBS CSI add-on, encrypted-gp3 StorageClass) -> alarms (EKS
control plane, NAT gateways, KMS) to the encrypted alerts topic.

All AWS resources go through one explicit provider for the region's `aws:region`; every taggable resource
carries the region's tags plus `residency`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from toolkit.config.region import RegionConfig

from .alarms import ALARM_PUBLISHERS, Alarms, AlarmsArgs
from .cluster import (
    Cluster,
    ClusterArgs,
    ClusterRoles,
    ClusterRolesArgs,
    NodePool,
    NodePools,
    NodePoolsArgs,
)
from .common import ArgsHook, adjusted
from .keys import KeyPolicies, KeyPoliciesArgs, Keys, KeysArgs, KeyUser
from .network import Network, NetworkArgs, ZonePlan
from .snapshots import Snapshots, SnapshotsArgs

ELASTICSEARCH_SERVICE_ACCOUNT = "elasticsearch"
AUTOSCALING_ROLE = "aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"


@dataclass(frozen=True)
class RegionOutputs:
    vpc_id: pulumi.Output[str]
    cluster_name: pulumi.Output[str]
    cluster_endpoint: pulumi.Output[str]
    cluster_certificate_authority: pulumi.Output[str]
    kube_context: str
    aws_region: str
    snapshot_bucket: pulumi.Output[str]
    snapshot_writer_role_arn: pulumi.Output[str]
    alarm_topic_arn: pulumi.Output[str]
    key_arns: dict[str, pulumi.Output[str]]

    def exports(self) -> dict[str, object]:
        """The stack outputs, by the names `toolkit region` reads (see stacks/__main__.py)."""
        return {
            "vpcId": self.vpc_id,
            "clusterName": self.cluster_name,
            "clusterEndpoint": self.cluster_endpoint,
            "clusterCertificateAuthority": self.cluster_certificate_authority,
            "kubeContext": self.kube_context,
            "awsRegion": self.aws_region,
            "snapshotBucket": self.snapshot_bucket,
            "snapshotBucketRegion": self.aws_region,
            "snapshotWriterRoleArn": self.snapshot_writer_role_arn,
            "alarmTopicArn": self.alarm_topic_arn,
            "keyArns": self.key_arns,
        }


def region_tags(config: RegionConfig) -> dict[str, str]:
    return {**config.tags, "residency": config.residency}


def declare_region(config: RegionConfig, hook: ArgsHook | None = None) -> RegionOutputs:
    """Declare every resource of `config`'s region. `hook` may replace any component's arguments (tests)."""
    tags = region_tags(config)
    name = config.cluster_name
    provider = aws.Provider("aws", region=config.aws_region)
    on_aws = pulumi.ResourceOptions(providers=[provider])
    identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(provider=provider))
    account = identity.account_id

    keys = Keys("keys", adjusted(hook, KeysArgs(name=name, tags=tags)), on_aws)
    log_group_arns = [
        pulumi.Output.concat("arn:aws:logs:", config.aws_region, ":", account, ":log-group:", prefix, "*")
        for prefix in (f"/platform/{name}/", f"/aws/eks/{config.cluster_name}/")
    ]
    logs_policy = KeyPolicies(
        "logs-key-policy",
        keys,
        adjusted(
            hook,
            KeyPoliciesArgs(
                account_id=account,
                users={
                    "logs": [
                        KeyUser(
                            principal={"Service": f"logs.{config.aws_region}.amazonaws.com"},
                            condition={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_group_arns}},
                        )
                    ]
                },
            ),
        ),
        on_aws,
    )
    network = Network(
        "network",
        adjusted(
            hook,
            NetworkArgs(
                name=name,
                aws_region=config.aws_region,
                cidr=str(config.address_block),
                zones=tuple(
                    ZonePlan(zone=zone, private_cidr=str(plan.private), public_cidr=str(plan.public))
                    for zone, plan in zip(config.availability_zones, config.subnets, strict=True)
                ),
                cluster_name=config.cluster_name,
                nat_per_zone=config.nat_gateways == "per-zone",
                logs_key_arn=keys.arns["logs"],
                log_retention_days=config.log_retention_days,
                tags=tags,
            ),
        ),
        pulumi.ResourceOptions(providers=[provider], depends_on=[logs_policy]),
    )
    roles = ClusterRoles("cluster-roles", adjusted(hook, ClusterRolesArgs(name=name, tags=tags)), on_aws)
    secrets_policy = KeyPolicies(
        "secrets-key-policy",
        keys,
        adjusted(
            hook,
            KeyPoliciesArgs(
                account_id=account,
                users={"eks-secrets": [KeyUser(principal={"AWS": roles.cluster_role.arn}, grants=True)]},
            ),
        ),
        on_aws,
    )
    cluster = Cluster(
        "cluster",
        adjusted(
            hook,
            ClusterArgs(
                cluster_name=config.cluster_name,
                kubernetes_version=config.kubernetes_version,
                cluster_role_arn=roles.cluster_role.arn,
                private_subnet_ids=network.private_subnet_ids,
                public_subnet_ids=network.public_subnet_ids,
                public_access_cidrs=config.api_public_access_cidrs,
                secrets_key_arn=keys.arns["eks-secrets"],
                logs_key_arn=keys.arns["logs"],
                log_types=config.control_plane_log_types,
                log_retention_days=config.log_retention_days,
                tags=tags,
                aws_region=config.aws_region,
            ),
        ),
        pulumi.ResourceOptions(providers=[provider], depends_on=[secrets_policy, logs_policy]),
    )
    snapshots = Snapshots(
        "snapshots",
        adjusted(
            hook,
            SnapshotsArgs(
                name=name,
                snapshots_key_arn=keys.arns["snapshots"],
                oidc_provider_arn=cluster.oidc_provider_arn,
                oidc_issuer_url=cluster.oidc_issuer_url,
                namespace=config.platform.namespace,
                service_account=ELASTICSEARCH_SERVICE_ACCOUNT,
                tags=tags,
            ),
        ),
        on_aws,
    )
    autoscaling_role = pulumi.Output.concat("arn:aws:iam::", account, ":role/", AUTOSCALING_ROLE)
    data_policies = KeyPolicies(
        "data-key-policies",
        keys,
        adjusted(
            hook,
            KeyPoliciesArgs(
                account_id=account,
                users={
                    "ebs": [
                        KeyUser(principal={"AWS": autoscaling_role}, grants=True),
                        KeyUser(principal={"AWS": cluster.ebs_csi_role_arn}, grants=True),
                    ],
                    "snapshots": [KeyUser(principal={"AWS": snapshots.writer_role_arn})],
                    "alerts": [
                        KeyUser(
                            principal={"Service": list(ALARM_PUBLISHERS)},
                            condition={"StringEquals": {"aws:SourceAccount": account}},
                        )
                    ],
                },
            ),
        ),
        on_aws,
    )
    nodes = NodePools(
        "nodes",
        adjusted(
            hook,
            NodePoolsArgs(
                cluster_name=cluster.cluster.name,
                kubernetes_version=config.kubernetes_version,
                node_role_arn=roles.node_role.arn,
                zones=config.availability_zones,
                node_subnet_ids=network.private_subnet_ids,
                pools=tuple(
                    NodePool(
                        role=role,
                        instance_types=group.instance_types,
                        desired_per_zone=group.desired_per_zone,
                        min_per_zone=group.min_per_zone,
                        max_per_zone=group.max_per_zone,
                        disk_gi=group.disk_gi,
                    )
                    for role, group in config.node_groups.items()
                ),
                ebs_key_arn=keys.arns["ebs"],
                ebs_csi_role_arn=cluster.ebs_csi_role_arn,
                kubeconfig=cluster.kubeconfig,
                metadata_hop_limit=config.node_metadata_hop_limit,
                tags=tags,
                aws_region=config.aws_region,
                node_versions=config.node_versions,
            ),
        ),
        pulumi.ResourceOptions(providers=[provider], depends_on=[data_policies, roles]),
    )
    alarms = Alarms(
        "alarms",
        adjusted(
            hook,
            AlarmsArgs(
                name=name,
                account_id=account,
                cluster_name=cluster.cluster.name,
                nat_gateway_ids=network.nat_gateway_ids,
                key_arns=keys.arns,
                alerts_key_arn=keys.arns["alerts"],
                tags=tags,
            ),
        ),
        pulumi.ResourceOptions(providers=[provider], depends_on=[data_policies, nodes]),
    )
    return RegionOutputs(
        vpc_id=network.vpc_id,
        cluster_name=cluster.cluster.name,
        cluster_endpoint=cluster.endpoint,
        cluster_certificate_authority=cluster.certificate_authority_data,
        kube_context=config.kube_context,
        aws_region=config.aws_region,
        snapshot_bucket=snapshots.bucket_name,
        snapshot_writer_role_arn=snapshots.writer_role_arn,
        alarm_topic_arn=alarms.topic_arn,
        key_arns=keys.arns,
    )
