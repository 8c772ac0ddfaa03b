"""Cluster: the EKS control plane and its node pools.

- `ClusterRoles`: the control plane's role and the nodes' role (they must exist before the secrets key policy).
- `Cluster`: EKS with Kubernetes Secrets encrypted by the eks-secrets key, a private API endpoint (public access
  only from an allowlist, or none), every control-plane log type into a KMS-encrypted log group created first
  (EKS would otherwise create it unencrypted), the OIDC provider for IRSA and the EBS CSI driver's IRSA role.
- `NodePools`: one managed node group per workload role, zone and node version (so each zone scales on its own
  and EBS-backed pods find a node in their volume's zone), in private subnets only, from launch templates that
  require IMDSv2 (tokens required, hop limit 1 so pods cannot reach the node's instance metadata) and
  encrypt the root volume with the ebs key; labels `platform.role=<role>`; kafka and elasticsearch nodes are
  tainted `dedicated=<role>:NoSchedule`, worker nodes stay untainted so cluster add-ons (CoreDNS, the EBS CSI
  controller) have somewhere to run. Then the EBS CSI add-on, its region set explicitly (its controller would
  otherwise ask IMDS), and the `encrypted-gp3` StorageClass (pulumi-kubernetes).
  Node versions are generations (region:nodeGroupVersions, default the control plane's): a group's version never
  changes (that would make EKS roll it by itself, as fast as the PDBs allow); a Kubernetes upgrade declares the new
  version's groups next to the old ones, empty (desired 0, room for the zone's nodes), and the old ones with a
  minimum of 0, so that `toolkit upgrade run --to kubernetes=...` surges each replacement into the new group and
  terminates the old instance with a capacity decrement, node by node behind the platform's gates; then the old
  version is dropped from the list and its (empty) groups deleted. The oldest generation keeps an alias to the
  name groups had before generations, so an existing stack renames them instead of replacing them. Desired sizes
  are the engine's and the autoscaler's after creation (ignored by Pulumi).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from .common import child, named, policy_json

STORAGE_CLASS_NAME = "encrypted-gp3"
TAINTED_ROLES = ("kafka", "elasticsearch")
EBS_CSI_SERVICE_ACCOUNT = "system:serviceaccount:kube-system:ebs-csi-controller-sa"


def _trust(service: str) -> pulumi.Output[str]:
    return policy_json(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


def irsa_trust(oidc_arn: pulumi.Input[str], oidc_url: pulumi.Input[str], subject: str) -> pulumi.Output[str]:
    """Trust policy letting exactly one Kubernetes service account assume a role through the OIDC provider."""
    issuer = pulumi.Output.from_input(oidc_url).apply(lambda url: url.removeprefix("https://"))
    return policy_json(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": oidc_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": issuer.apply(
                        lambda i: {"StringEquals": {f"{i}:sub": subject, f"{i}:aud": "sts.amazonaws.com"}}
                    ),
                }
            ],
        }
    )


@dataclass(frozen=True)
class ClusterRolesArgs:
    name: str
    tags: dict[str, str]


class ClusterRoles(pulumi.ComponentResource):
    cluster_role: aws.iam.Role
    node_role: aws.iam.Role

    def __init__(self, name: str, args: ClusterRolesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:region:ClusterRoles", name, None, opts)
        self.cluster_role = aws.iam.Role(
            f"{name}-control-plane",
            assume_role_policy=_trust("eks.amazonaws.com"),
            tags=named(args.tags, f"{args.name}-control-plane"),
            opts=child(self),
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-control-plane",
            role=self.cluster_role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
            opts=child(self),
        )
        self.node_role = aws.iam.Role(
            f"{name}-nodes",
            assume_role_policy=_trust("ec2.amazonaws.com"),
            tags=named(args.tags, f"{args.name}-nodes"),
            opts=child(self),
        )
        for policy in ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly", "AmazonEKS_CNI_Policy"):
            aws.iam.RolePolicyAttachment(
                f"{name}-nodes-{policy}",
                role=self.node_role.name,
                policy_arn=f"arn:aws:iam::aws:policy/{policy}",
                opts=child(self),
            )
        self.register_outputs({"cluster_role_arn": self.cluster_role.arn, "node_role_arn": self.node_role.arn})


@dataclass(frozen=True)
class ClusterArgs:
    cluster_name: str
    kubernetes_version: str
    cluster_role_arn: pulumi.Input[str]
    private_subnet_ids: Sequence[pulumi.Input[str]]
    public_subnet_ids: Sequence[pulumi.Input[str]]
    public_access_cidrs: tuple[str, ...]
    secrets_key_arn: pulumi.Input[str]
    logs_key_arn: pulumi.Input[str]
    log_types: tuple[str, ...]
    log_retention_days: int
    tags: dict[str, str]
    aws_region: str


class Cluster(pulumi.ComponentResource):
    cluster: aws.eks.Cluster
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer_url: pulumi.Output[str]
    ebs_csi_role_arn: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    certificate_authority_data: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:region:Cluster", name, None, opts)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=f"/aws/eks/{args.cluster_name}/cluster",
            kms_key_id=args.logs_key_arn,
            retention_in_days=args.log_retention_days,
            tags=named(args.tags, f"{args.cluster_name}-control-plane-logs"),
            opts=child(self),
        )
        self.cluster = aws.eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.kubernetes_version,
            role_arn=args.cluster_role_arn,
            vpc_config={
                "subnet_ids": [*args.private_subnet_ids, *args.public_subnet_ids],
                "endpoint_private_access": True,
                "endpoint_public_access": bool(args.public_access_cidrs),
                "public_access_cidrs": list(args.public_access_cidrs) if args.public_access_cidrs else None,
            },
            encryption_config={"resources": ["secrets"], "provider": {"key_arn": args.secrets_key_arn}},
            enabled_cluster_log_types=list(args.log_types),
            access_config={
                "authentication_mode": "API",
                "bootstrap_cluster_creator_admin_permissions": True,
            },
            tags=named(args.tags, args.cluster_name),
            opts=child(self, depends_on=[log_group]),
        )
        self.oidc_issuer_url = self.cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer)  # type: ignore[index]
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=self.oidc_issuer_url,
            client_id_lists=["sts.amazonaws.com"],
            tags=named(args.tags, f"{args.cluster_name}-oidc"),
            opts=child(self),
        )
        self.oidc_provider_arn = oidc.arn
        csi_role = aws.iam.Role(
            f"{name}-ebs-csi",
            assume_role_policy=irsa_trust(oidc.arn, self.oidc_issuer_url, EBS_CSI_SERVICE_ACCOUNT),
            tags=named(args.tags, f"{args.cluster_name}-ebs-csi"),
            opts=child(self),
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi",
            role=csi_role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy",
            opts=child(self),
        )
        self.ebs_csi_role_arn = csi_role.arn
        self.endpoint = self.cluster.endpoint
        self.certificate_authority_data = self.cluster.certificate_authority.apply(_authority_data)
        self.kubeconfig = pulumi.Output.all(
            self.cluster.endpoint, self.certificate_authority_data, self.cluster.name
        ).apply(lambda parts: kubeconfig_json(parts[0], parts[1], parts[2], args.aws_region))
        self.register_outputs(
            {
                "cluster_name": self.cluster.name,
                "endpoint": self.cluster.endpoint,
                "oidc_provider_arn": self.oidc_provider_arn,
                "ebs_csi_role_arn": self.ebs_csi_role_arn,
            }
        )


def _authority_data(authority: object) -> str:
    data = getattr(authority, "data", None) or (authority.get("data") if isinstance(authority, dict) else "")
    return str(data or "")


def kubeconfig_json(endpoint: str, authority_data: str, cluster_name: str, aws_region: str) -> str:
    """A kubeconfig for the cluster whose user gets tokens from `aws eks get-token` for the region's cluster."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": cluster_name, "cluster": {"server": endpoint, "certificate-authority-data": authority_data}}
            ],
            "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
            "current-context": cluster_name,
            "users": [
                {
                    "name": cluster_name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", aws_region],
                        }
                    },
                }
            ],
        }
    )


@dataclass(frozen=True)
class NodePool:
    role: str
    instance_types: tuple[str, ...]
    desired_per_zone: int
    min_per_zone: int
    max_per_zone: int
    disk_gi: int


@dataclass(frozen=True)
class NodePoolsArgs:
    cluster_name: pulumi.Input[str]
    kubernetes_version: str
    node_role_arn: pulumi.Input[str]
    zones: tuple[str, ...]
    # Subnet each zone's node groups go into, in the order of `zones`.
    node_subnet_ids: Sequence[pulumi.Input[str]]
    pools: tuple[NodePool, ...]
    ebs_key_arn: pulumi.Input[str]
    ebs_csi_role_arn: pulumi.Input[str]
    kubeconfig: pulumi.Input[str]
    tags: dict[str, str]
    # Set explicitly on add-ons that would otherwise ask IMDS for it (unreachable from pods with hop limit 1).
    aws_region: str
    metadata_http_tokens: str = "required"
    metadata_hop_limit: int = 1
    volumes_encrypted: bool = True
    storage_class_parameters: Mapping[str, str] | None = None
    # node group generations, oldest first; () = one generation of `kubernetes_version`
    node_versions: tuple[str, ...] = ()


class NodePools(pulumi.ComponentResource):
    def __init__(self, name: str, args: NodePoolsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:region:NodePools", name, None, opts)
        group_names: list[pulumi.Output[str]] = []
        for pool in args.pools:
            template = aws.ec2.LaunchTemplate(
                f"{name}-{pool.role}",
                name_prefix=f"{pool.role}-",
                metadata_options={
                    "http_endpoint": "enabled",
                    "http_tokens": args.metadata_http_tokens,
                    "http_put_response_hop_limit": args.metadata_hop_limit,
                },
                block_device_mappings=[
                    {
                        "device_name": "/dev/xvda",
                        "ebs": {
                            "volume_size": pool.disk_gi,
                            "volume_type": "gp3",
                            "encrypted": "true" if args.volumes_encrypted else "false",
                            "kms_key_id": args.ebs_key_arn if args.volumes_encrypted else None,
                            "delete_on_termination": "true",
                        },
                    }
                ],
                tag_specifications=[
                    {"resource_type": "instance", "tags": named(args.tags, f"{pool.role}-node")},
                    {"resource_type": "volume", "tags": named(args.tags, f"{pool.role}-node")},
                ],
                tags=named(args.tags, f"{pool.role}-nodes"),
                opts=child(self),
            )
            versions = args.node_versions or (args.kubernetes_version,)
            for zone, subnet_id in zip(args.zones, args.node_subnet_ids, strict=True):
                for generation, version in enumerate(versions):
                    legacy = f"{name}-{pool.role}-{zone}"  # the name before generations
                    rolling = len(versions) > 1
                    group = aws.eks.NodeGroup(
                        f"{legacy}-v{version.replace('.', '-')}",
                        cluster_name=args.cluster_name,
                        node_group_name_prefix=f"{pool.role}-{zone}-",
                        version=version,
                        node_role_arn=args.node_role_arn,
                        subnet_ids=[subnet_id],
                        instance_types=list(pool.instance_types),
                        scaling_config={
                            # during a roll: the new generation starts empty, the old one may shrink to nothing
                            "desired_size": pool.desired_per_zone if generation == 0 else 0,
                            "min_size": 0 if rolling else pool.min_per_zone,
                            "max_size": pool.max_per_zone,
                        },
                        update_config={"max_unavailable": 1},
                        launch_template={"id": template.id, "version": template.latest_version.apply(str)},
                        labels={"platform.role": pool.role},
                        taints=(
                            [{"key": "dedicated", "value": pool.role, "effect": "NO_SCHEDULE"}]
                            if pool.role in TAINTED_ROLES
                            else []
                        ),
                        tags=named(args.tags, f"{pool.role}-{zone}"),
                        opts=child(
                            self,
                            ignore_changes=["scalingConfig.desiredSize"],
                            aliases=[pulumi.Alias(name=legacy)] if generation == 0 else None,
                        ),
                    )
                    group_names.append(group.node_group_name)
        addon = aws.eks.Addon(
            f"{name}-ebs-csi",
            cluster_name=args.cluster_name,
            addon_name="aws-ebs-csi-driver",
            service_account_role_arn=args.ebs_csi_role_arn,
            configuration_values=json.dumps({"controller": {"region": args.aws_region}}),
            resolve_conflicts_on_update="OVERWRITE",
            tags=named(args.tags, "ebs-csi"),
            opts=child(self),
        )
        provider = k8s.Provider(f"{name}-kubernetes", kubeconfig=args.kubeconfig, opts=child(self))
        parameters = dict(
            args.storage_class_parameters
            if args.storage_class_parameters is not None
            else {"type": "gp3", "encrypted": "true", "kmsKeyId": args.ebs_key_arn}
        )
        k8s.storage.v1.StorageClass(
            f"{name}-{STORAGE_CLASS_NAME}",
            metadata={"name": STORAGE_CLASS_NAME},
            provisioner="ebs.csi.aws.com",
            parameters=parameters,
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            reclaim_policy="Retain",
            opts=child(self, provider=provider, depends_on=[addon]),
        )
        self.register_outputs({"node_groups": group_names, "storage_class": STORAGE_CLASS_NAME})
