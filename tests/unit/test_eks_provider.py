"""The EKS node provider's AWS calls (toolkit.targets.eks), against moto (EKS clusters and node groups, Auto Scaling
groups with their instances) where moto implements the call, and against botocore's own Stubber where it does not
(UpdateClusterVersion, DescribeAddonVersions, UpdateAddon: the request is checked exactly); and its refusal without
AWS credentials, which changes nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from toolkit.engine.ports import ActionError
from toolkit.model import Node
from toolkit.targets.eks import EksProvider, FixedProvider

REGION = "eu-west-1"
CLUSTER = "secplat-eu-west-1"


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_without_credentials_every_call_is_refused_naming_what_to_do(no_credentials: None) -> None:
    provider = EksProvider(CLUSTER, REGION)
    for call in (
        lambda: provider.upgrade_control_plane("1.34"),
        lambda: provider.control_plane(""),
        lambda: provider.surge("kafka-eu-west-1a-134", "1.34"),
    ):
        with pytest.raises(ActionError) as refused:
            call()
        assert "AWS credentials not found" in str(refused.value)
        assert "nothing was changed" in str(refused.value) and CLUSTER in str(refused.value)
        assert "eks:UpdateClusterVersion" in str(refused.value)


def test_a_cluster_the_toolkit_does_not_manage_refuses_surges() -> None:
    fixed = FixedProvider("kind")
    with pytest.raises(ActionError, match="manages nodes on EKS"):
        fixed.surge("g", "1.34")
    assert fixed.control_plane("1.31") == ("1.31", "ACTIVE", False)


class _Session:
    """A session handing out the test's clients (stubbed or moto-backed)."""

    def __init__(self, clients: dict[str, Any]) -> None:
        self.clients = clients

    def client(self, service: str, region_name: str | None = None) -> Any:
        return self.clients[service]


def test_control_plane_upgrade_and_add_on_update_send_exactly_the_eks_requests() -> None:
    eks = boto3.client("eks", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="y")
    provider = EksProvider(CLUSTER, REGION, session=_Session({"eks": eks}))
    with Stubber(eks) as stub:
        stub.add_response(
            "update_cluster_version",
            {"update": {"id": "u-1", "status": "InProgress", "type": "VersionUpdate"}},
            {"name": CLUSTER, "version": "1.34"},
        )
        provider.upgrade_control_plane("1.34")
        stub.add_response("describe_cluster", {"cluster": {"name": CLUSTER, "version": "1.34", "status": "ACTIVE"}})
        stub.add_response(
            "describe_addon_versions",
            {"addons": [{"addonName": "kube-proxy", "addonVersions": [{"addonVersion": "v1.34.1-eksbuild.2"}]}]},
            {"kubernetesVersion": "1.34", "addonName": "kube-proxy"},
        )
        stub.add_response(
            "update_addon",
            {"update": {"id": "u-2", "status": "InProgress"}},
            {
                "clusterName": CLUSTER,
                "addonName": "kube-proxy",
                "addonVersion": "v1.34.1-eksbuild.2",
                "resolveConflicts": "PRESERVE",
            },
        )
        provider.update_addon("kube-proxy", "v1.34.1-eksbuild.2")
        stub.add_response("describe_cluster", {"cluster": {"name": CLUSTER, "version": "1.34", "status": "ACTIVE"}})
        stub.add_response(
            "describe_addon_versions",
            {"addons": [{"addonName": "vpc-cni", "addonVersions": [{"addonVersion": "v1.20.1-eksbuild.3"}]}]},
        )
        with pytest.raises(ActionError, match=re.escape("not offered by EKS for Kubernetes 1.34")):
            provider.update_addon("vpc-cni", "v9.9.9-eksbuild.1")  # refused before any UpdateAddon
        stub.assert_no_pending_responses()


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    """moto: an EKS cluster at 1.33 with a blue (1.33, one node) and a green (1.34, empty) node group for kafka in
    eu-west-1a, each backed by the Auto Scaling group its description names."""
    with mock_aws():
        session = boto3.session.Session(region_name=REGION, aws_access_key_id="x", aws_secret_access_key="y")
        ec2, eks, autoscaling = (session.client(s) for s in ("ec2", "eks", "autoscaling"))
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="eu-west-1a")["Subnet"][
            "SubnetId"
        ]
        image = ec2.describe_images()["Images"][0]["ImageId"]
        template = ec2.create_launch_template(
            LaunchTemplateName="kafka", LaunchTemplateData={"ImageId": image, "InstanceType": "r6i.xlarge"}
        )["LaunchTemplate"]["LaunchTemplateId"]
        role = "arn:aws:iam::123456789012:role/eks"
        eks.create_cluster(name=CLUSTER, version="1.33", roleArn=role, resourcesVpcConfig={"subnetIds": [subnet]})
        groups = {}
        for version, desired in (("1.33", 1), ("1.34", 0)):
            name = f"kafka-eu-west-1a-{version.replace('.', '')}"
            eks.create_nodegroup(
                clusterName=CLUSTER,
                nodegroupName=name,
                version=version,
                nodeRole=role,
                subnets=[subnet],
                labels={"platform.role": "kafka"},
                scalingConfig={"minSize": 0, "maxSize": 2, "desiredSize": desired},
            )
            asg = eks.describe_nodegroup(clusterName=CLUSTER, nodegroupName=name)["nodegroup"]["resources"][
                "autoScalingGroups"
            ][0]["name"]
            autoscaling.create_auto_scaling_group(
                AutoScalingGroupName=asg,
                LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
                MinSize=0,
                MaxSize=2,
                DesiredCapacity=desired,
                VPCZoneIdentifier=subnet,
            )
            groups[version] = (name, asg)
        yield {"session": session, "groups": groups, "autoscaling": autoscaling}


def _asg(aws: dict[str, Any], version: str) -> dict[str, Any]:
    name = aws["groups"][version][1]
    return aws["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


@pytest.mark.wire  # moto's EC2 and Auto Scaling models take seconds to load
def test_surge_raises_the_green_group_and_terminate_decrements_the_blue_one(aws: dict[str, Any]) -> None:
    provider = EksProvider(CLUSTER, REGION, session=aws["session"])
    assert provider.control_plane("") == ("1.33", "ACTIVE", True)
    groups = {g.name: g for g in provider.groups(())}
    blue, green = aws["groups"]["1.33"][0], aws["groups"]["1.34"][0]
    assert groups[blue].version == "1.33" and groups[blue].role == "kafka" and groups[blue].zone == "eu-west-1a"
    assert (groups[blue].size, groups[blue].max_size, groups[green].size) == (1, 2, 0)
    with pytest.raises(ActionError, match=re.escape("launches 1.34, not 1.33")):
        provider.surge(green, "1.33")
    provider.surge(green, "1.34")
    assert _asg(aws, "1.34")["DesiredCapacity"] == 1 and len(_asg(aws, "1.34")["Instances"]) == 1
    old = _asg(aws, "1.33")["Instances"][0]["InstanceId"]
    node = Node("ip-10-0-1-5.eu-west-1.compute.internal", "eu-west-1a", blue, "1.33", True, instance=old)
    provider.terminate(node)
    blue_asg = _asg(aws, "1.33")
    assert blue_asg["DesiredCapacity"] == 0  # decremented: the group does not launch another
    assert all(i["InstanceId"] != old for i in blue_asg["Instances"])
    provider.terminate(node)  # a resumed run terminating it again: nothing more happens
    assert _asg(aws, "1.33")["DesiredCapacity"] == 0
    provider.surge(green, "1.34")
    with pytest.raises(ActionError, match="at its maximum of 2"):
        provider.surge(green, "1.34")
    with pytest.raises(ActionError, match="names no EC2 instance"):
        provider.terminate(Node("n", "eu-west-1a", blue, "1.33", True))
