"""EKS as the node provider of a Kubernetes roll (`toolkit.targets.kube.nodes.NodeProvider`), with boto3.

Control plane and add-ons, through the EKS API
- `control_plane()`: DescribeCluster -> (version, status: ACTIVE | UPDATING | ...); it can be upgraded here.
- `upgrade_control_plane(v)`: UpdateClusterVersion(name, version) (one minor: the engine checked); the engine then
  observes DescribeCluster until the cluster is ACTIVE on `v`.
- `addons()`: ListAddons + DescribeAddon; `update_addon(n, v)`: DescribeAddonVersions first (is `v` compatible with
  the cluster's version? refused with the versions EKS offers otherwise), then UpdateAddon(resolveConflicts PRESERVE).
Instances, through the Auto Scaling API (what Cluster Autoscaler does with managed node groups)
- `groups()`: ListNodegroups + DescribeNodegroup: the group's version, role (label `platform.role`), zone (its nodes',
  else its subnet's), and its Auto Scaling group's desired and maximum capacity (DescribeAutoScalingGroups).
- `surge(group)`: SetDesiredCapacity(desired + 1, HonorCooldown false) on the group's Auto Scaling group: one
  instance more, launched from the group's launch template (its version's AMI). Blue/green node groups (one per
  role, zone and version, declared by the region's stack: region:nodeGroupVersions) give a surge node of the target
  version while the old group's nodes are replaced.
- `terminate(node)`: TerminateInstanceInAutoScalingGroup(instance, ShouldDecrementDesiredCapacity true): the
  instance goes and the group does not start another (deleting the Node object alone would leave the instance
  running). An instance already terminating, or no longer in a group, counts as terminated.
Credentials come from boto3's own chain (the environment, a profile, IRSA in the orchestrator Job); without any,
every call is refused with what to do, and nothing is changed. Missing boto3 names the `aws` extra.

`FixedProvider`: a cluster the toolkit can observe but not provision (kind, a kube context that is not a region):
surges and control-plane changes are refused with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from toolkit.config.environments import Environment
from toolkit.engine.ports import ActionError
from toolkit.errors import require_extra
from toolkit.model import Addon, Node, NodeGroup

T = TypeVar("T")
ROLE_LABEL = "platform.role"


class FixedProvider:
    """A cluster whose instances and control plane the toolkit does not manage."""

    def __init__(self, environment: str) -> None:
        self.environment = environment
        self.description = f"{environment}: nodes and control plane not managed by the toolkit"

    def _refuse(self, what: str) -> ActionError:
        return ActionError(
            f"environment {self.environment}: the toolkit cannot {what} here: it manages nodes on EKS (a region "
            "environment, stacks/Pulumi.<region>.yaml) and on the local cluster (its node pool)"
        )

    def control_plane(self, api_version: str) -> tuple[str, str, bool]:
        return api_version, "ACTIVE", False

    def addons(self) -> tuple[Addon, ...]:
        return ()

    def groups(self, nodes: tuple[Node, ...]) -> tuple[NodeGroup, ...]:
        return ()

    def upgrade_control_plane(self, version: str) -> None:
        raise self._refuse(f"upgrade the control plane to {version}")

    def update_addon(self, name: str, version: str) -> None:
        raise self._refuse(f"update add-on {name}")

    def surge(self, group: str, version: str) -> None:
        raise self._refuse(f"launch a node in {group}")

    def terminate(self, node: Node) -> None:
        raise self._refuse(f"terminate node {node.name}")


class EksProvider:
    """One EKS cluster (see the module docstring)."""

    def __init__(self, cluster: str, region: str, session: Any = None) -> None:
        self.cluster = cluster
        self.region = region
        self.description = f"EKS cluster {cluster} ({region}): EKS API and Auto Scaling API"
        self._session = session
        self._clients: dict[str, Any] = {}

    @classmethod
    def for_environment(cls, env: Environment) -> EksProvider:
        """The provider of a region environment (its cluster and AWS region, carried by the environment itself, so
        the in-cluster orchestrator Job has them without the stack files)."""
        if not env.eks_cluster:
            raise ActionError(f"environment {env.name} is not an EKS region: no cluster to drive")
        return cls(env.eks_cluster, env.aws_region)

    # ------------------------------------------------------------------ plumbing

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            require_extra("aws", "the EKS node provider")
            import boto3

            session = self._session or boto3.session.Session(region_name=self.region)
            self._clients[service] = session.client(service, region_name=self.region)
        return self._clients[service]

    def _call(self, what: str, call: Callable[[], T]) -> T:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

        try:
            return call()
        except NoCredentialsError:
            raise ActionError(
                f"AWS credentials not found: cannot {what} (EKS cluster {self.cluster}, {self.region}); nothing was "
                "changed. Give the toolkit credentials (AWS_PROFILE, `aws sso login`, or the orchestrator Job's IRSA "
                "role) with eks:DescribeCluster, eks:UpdateClusterVersion, eks:*Addon*, eks:*Nodegroup*, "
                "autoscaling:DescribeAutoScalingGroups, autoscaling:SetDesiredCapacity and "
                "autoscaling:TerminateInstanceInAutoScalingGroup"
            ) from None
        except NoRegionError:
            raise ActionError(f"cannot {what}: no AWS region; set AWS_REGION (the region's is {self.region})") from None
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise ActionError(f"AWS: {what} failed: {error.get('Code')}: {error.get('Message')}") from None
        except BotoCoreError as exc:
            raise ActionError(f"AWS: {what} failed: {exc}") from None

    # ------------------------------------------------------------------ control plane and add-ons

    def control_plane(self, api_version: str) -> tuple[str, str, bool]:
        eks = self._client("eks")
        cluster = self._call(
            f"describe EKS cluster {self.cluster}", lambda: eks.describe_cluster(name=self.cluster)["cluster"]
        )
        return str(cluster["version"]), str(cluster["status"]), True

    def addons(self) -> tuple[Addon, ...]:
        eks = self._client("eks")
        names = self._call(
            f"list the add-ons of {self.cluster}", lambda: eks.list_addons(clusterName=self.cluster)["addons"]
        )
        out = []
        for name in sorted(names):
            addon = self._call(
                f"describe add-on {name}", partial(eks.describe_addon, clusterName=self.cluster, addonName=name)
            )
            out.append(Addon(name, str(addon["addon"].get("addonVersion", "")), str(addon["addon"].get("status", ""))))
        return tuple(out)

    def upgrade_control_plane(self, version: str) -> None:
        eks = self._client("eks")
        self._call(
            f"upgrade the control plane of {self.cluster} to {version}",
            lambda: eks.update_cluster_version(name=self.cluster, version=version),
        )

    def update_addon(self, name: str, version: str) -> None:
        eks = self._client("eks")
        cluster_version, _status, _ok = self.control_plane("")
        offered = self._call(
            f"list the versions of add-on {name} for {cluster_version}",
            lambda: eks.describe_addon_versions(kubernetesVersion=cluster_version, addonName=name)["addons"],
        )
        versions = [v["addonVersion"] for a in offered for v in a.get("addonVersions", [])]
        if version not in versions:
            raise ActionError(
                f"add-on {name} {version} is not offered by EKS for Kubernetes {cluster_version} (offered: "
                f"{', '.join(versions[:6]) or 'none'}); correct the catalog (toolkit/catalog/catalog.yaml)"
            )
        self._call(
            f"update add-on {name} to {version}",
            lambda: eks.update_addon(
                clusterName=self.cluster, addonName=name, addonVersion=version, resolveConflicts="PRESERVE"
            ),
        )

    # ------------------------------------------------------------------ instances

    def _nodegroups(self) -> list[dict[str, Any]]:
        eks = self._client("eks")
        names = self._call(
            f"list the node groups of {self.cluster}", lambda: eks.list_nodegroups(clusterName=self.cluster)
        )["nodegroups"]
        return [
            self._call(
                f"describe node group {name}",
                partial(eks.describe_nodegroup, clusterName=self.cluster, nodegroupName=name),
            )["nodegroup"]
            for name in sorted(names)
        ]

    def _asg(self, name: str) -> dict[str, Any]:
        autoscaling = self._client("autoscaling")
        found = self._call(
            f"describe auto scaling group {name}",
            lambda: autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"],
        )
        if not found:
            raise ActionError(f"auto scaling group {name} does not exist")
        return dict(found[0])

    @staticmethod
    def _asg_name(group: dict[str, Any]) -> str:
        asgs = group.get("resources", {}).get("autoScalingGroups", [])
        if not asgs:
            raise ActionError(f"node group {group.get('nodegroupName')} has no auto scaling group yet")
        return str(asgs[0]["name"])

    def _zones(self, subnets: list[str]) -> list[str]:
        ec2 = self._client("ec2")
        found = self._call("describe subnets", lambda: ec2.describe_subnets(SubnetIds=subnets)["Subnets"])
        return sorted({s["AvailabilityZone"] for s in found})

    def groups(self, nodes: tuple[Node, ...]) -> tuple[NodeGroup, ...]:
        out = []
        for group in self._nodegroups():
            name = str(group["nodegroupName"])
            members = [n for n in nodes if n.group == name]
            zones = sorted({n.zone for n in members}) or self._zones(list(group.get("subnets", [])))
            asg = self._asg(self._asg_name(group))
            out.append(
                NodeGroup(
                    name=name,
                    role=str(group.get("labels", {}).get(ROLE_LABEL, "")),
                    zone=zones[0] if zones else "",
                    version=str(group.get("version", "")),
                    size=int(asg["DesiredCapacity"]),
                    max_size=int(asg["MaxSize"]),
                )
            )
        return tuple(out)

    def surge(self, group: str, version: str) -> None:
        eks = self._client("eks")
        described = self._call(
            f"describe node group {group}",
            lambda: eks.describe_nodegroup(clusterName=self.cluster, nodegroupName=group)["nodegroup"],
        )
        if version and described.get("version") and described["version"] != version:
            raise ActionError(f"node group {group} launches {described['version']}, not {version}")
        name = self._asg_name(described)
        asg = self._asg(name)
        desired = int(asg["DesiredCapacity"]) + 1
        if desired > int(asg["MaxSize"]):
            raise ActionError(
                f"auto scaling group {name} of node group {group} is at its maximum of {asg['MaxSize']}: no room to "
                "surge; raise region:nodeGroups maxPerZone"
            )
        autoscaling = self._client("autoscaling")
        self._call(
            f"raise the desired capacity of {name} to {desired}",
            lambda: autoscaling.set_desired_capacity(
                AutoScalingGroupName=name, DesiredCapacity=desired, HonorCooldown=False
            ),
        )

    def terminate(self, node: Node) -> None:
        if not node.instance:
            raise ActionError(f"node {node.name} names no EC2 instance (spec.providerID): cannot terminate it")
        autoscaling = self._client("autoscaling")
        found = self._call(
            f"describe instance {node.instance}",
            lambda: autoscaling.describe_auto_scaling_instances(InstanceIds=[node.instance])["AutoScalingInstances"],
        )
        if not found or str(found[0].get("LifecycleState", "")).startswith("Terminat"):
            return  # terminated already (a resumed run), or no longer in a group
        self._call(
            f"terminate {node.instance} (node {node.name}) with a capacity decrement",
            lambda: autoscaling.terminate_instance_in_auto_scaling_group(
                InstanceId=node.instance, ShouldDecrementDesiredCapacity=True
            ),
        )
