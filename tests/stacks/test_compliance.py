"""Each compliance rule fails when the program's configuration or inputs change in the way the rule forbids.

Violations come from running the real stacks/ program under mocks with a changed RegionConfig (what an
operator edits) or with one component's arguments replaced through the program's argument hook (what a
change to the program would do); never from a hand-written resource list.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from toolkit.compliance import Violation, evaluate
from toolkit.config.region import load_region
from toolkit.provision.pulumi import capture_region, load_program

STACKS = Path(__file__).resolve().parents[2] / "stacks"


def _violations(config: Any, hook: Any = None) -> list[Violation]:
    return evaluate(capture_region(config, STACKS, hook), config.residency)


def _hook(args_type_name: str, **changes: Any):
    def hook(args: Any) -> Any:
        return replace(args, **changes) if type(args).__name__ == args_type_name else args

    return hook


def _only(violations: list[Violation], rule: str) -> list[Violation]:
    assert violations, "expected violations"
    assert {v.rule for v in violations} == {rule}, [str(v) for v in violations]
    return violations


@pytest.fixture(scope="module")
def eu() -> Any:
    return load_region("eu-west-1", STACKS)


def test_encryption_at_rest_unencrypted_node_volumes(eu) -> None:
    found = _only(_violations(eu, _hook("NodePoolsArgs", volumes_encrypted=False)), "encryption-at-rest")
    assert {(v.resource_type, v.resource_name) for v in found} == {
        ("aws:ec2/launchTemplate:LaunchTemplate", f"nodes-{role}") for role in ("kafka", "elasticsearch", "workers")
    }
    assert "volume /dev/xvda is not encrypted with a KMS key" in str(found[0])


def test_encryption_at_rest_bucket_and_storage_class(eu) -> None:
    bucket = _only(_violations(eu, _hook("SnapshotsArgs", encrypted=False)), "encryption-at-rest")
    assert [(v.resource_type, v.resource_name) for v in bucket] == [("aws:s3/bucket:Bucket", "snapshots-bucket")]
    plain_class = _violations(eu, _hook("NodePoolsArgs", storage_class_parameters={"type": "gp3"}))
    assert [str(v) for v in _only(plain_class, "encryption-at-rest")] == [
        "[encryption-at-rest] kubernetes:storage.k8s.io/v1:StorageClass 'nodes-encrypted-gp3': "
        'StorageClass does not set parameters.encrypted: "true"'
    ]


def test_key_rotation_off(eu) -> None:
    found = _only(_violations(eu, _hook("KeysArgs", rotation_enabled=False)), "key-rotation")
    assert sorted(v.resource_name for v in found) == [
        "keys-alerts",
        "keys-ebs",
        "keys-eks-secrets",
        "keys-logs",
        "keys-snapshots",
    ]
    assert all(v.resource_type == "aws:kms/key:Key" for v in found)


def test_nodes_in_public_subnets(eu) -> None:
    seen: dict[str, Any] = {}

    def hook(args: Any) -> Any:
        if type(args).__name__ == "ClusterArgs":
            seen["public"] = args.public_subnet_ids
        if type(args).__name__ == "NodePoolsArgs":
            return replace(args, node_subnet_ids=seen["public"])
        return args

    found = _only(_violations(eu, hook), "nodes-in-private-subnets")
    assert len(found) == 9
    assert (
        "nodes land in public subnet 'network-public-eu-west-1a' (routes 0.0.0.0/0 to internet gateway "
        "'network-igw')" in str(found[0])
    )
    assert found[0].resource_type == "aws:eks/nodeGroup:NodeGroup"


def test_imdsv2_hop_limit_from_configuration(eu) -> None:
    found = _only(_violations(eu.model_copy(update={"node_metadata_hop_limit": 3})), "imdsv2")
    assert len(found) == 3 and "httpPutResponseHopLimit is 3" in found[0].message


def test_imdsv2_tokens_optional(eu) -> None:
    found = _only(_violations(eu, _hook("NodePoolsArgs", metadata_http_tokens="optional")), "imdsv2")
    assert "httpTokens is 'optional'; set it to 'required'" in str(found[0])


def test_logging_control_plane_types_from_configuration(eu) -> None:
    found = _only(_violations(eu.model_copy(update={"control_plane_log_types": ("api",)})), "logging")
    assert [str(v) for v in found] == [
        "[logging] aws:eks/cluster:Cluster 'cluster-eks': control-plane log types audit, authenticator are off"
    ]


def test_logging_no_flow_logs(eu) -> None:
    found = _only(_violations(eu, _hook("NetworkArgs", flow_logs=False)), "logging")
    assert [(v.resource_type, v.resource_name) for v in found] == [("aws:ec2/vpc:Vpc", "network-vpc")]


def test_mandatory_tags_owner_removed_from_configuration(eu) -> None:
    tags = {k: v for k, v in eu.tags.items() if k != "owner"}
    found = _only(_violations(eu.model_copy(update={"tags": tags})), "mandatory-tags")
    names = {v.resource_name for v in found}
    assert {"network-vpc", "keys-logs", "cluster-eks", "snapshots-bucket"} <= names
    assert all(v.message == "missing tag(s) owner" for v in found)


def test_region_outside_residency(eu) -> None:
    # The schema refuses this file; the rule is the second wall, so the schema is bypassed on purpose here.
    moved = eu.model_copy(
        update={"aws_region": "us-east-1", "availability_zones": ("us-east-1a", "us-east-1b", "us-east-1c")}
    )
    found = _only(_violations(moved), "region-residency")
    provider = [v for v in found if v.resource_type == "pulumi:providers:aws"]
    assert (
        provider and "region 'us-east-1' (United States (US)) is not allowed by the eu residency" in provider[0].message
    )
    assert any(v.resource_type == "aws:ec2/subnet:Subnet" for v in found)


def test_program_module_is_the_stacks_program() -> None:
    program = load_program(STACKS)
    assert Path(program.__file__).resolve().parent == STACKS / "platform_region"


def test_encryption_at_rest_alarm_topic(eu) -> None:
    found = _only(_violations(eu, _hook("AlarmsArgs", alerts_key_arn=None)), "encryption-at-rest")
    assert [(v.resource_type, v.resource_name) for v in found] == [("aws:sns/topic:Topic", "alarms-topic")]


# --------------------------------------------------------------------------------------------- the bypasses


def _capture_with(config: Any, extra: Any) -> list[Violation]:
    """What the program declares plus `extra()` (resources a change to the program would add), evaluated."""
    from toolkit.provision.pulumi import capture

    program = load_program(STACKS)

    def both() -> None:
        program.declare_region(config)
        extra()

    return evaluate(capture(both, stack=config.name), config.residency)


def test_bypass_hop_limit_two_is_refused_with_the_right_reason(eu) -> None:
    found = _only(_violations(eu.model_copy(update={"node_metadata_hop_limit": 2})), "imdsv2")
    assert len(found) == 3
    assert "httpPutResponseHopLimit is 2.0; set 1" in found[0].message
    assert "pods reach the instance metadata and the node role's credentials" in found[0].message
    assert "so pods cannot reach IMDS" not in found[0].message


def test_bypass_host_network_workload_reaches_imds_whatever_the_hop_limit(eu) -> None:
    import pulumi_kubernetes as k8s

    def agent() -> None:
        labels = {"app": "agent"}
        k8s.apps.v1.DaemonSet(
            "host-agent",
            spec={
                "selector": {"match_labels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"host_network": True, "containers": [{"name": "agent", "image": "agent:1"}]},
                },
            },
        )

    found = _only(_capture_with(eu, agent), "imdsv2")
    assert [(v.resource_type, v.resource_name) for v in found] == [("kubernetes:apps/v1:DaemonSet", "host-agent")]
    assert "hostNetwork is true: the pod shares the node's network namespace and reaches IMDS" in found[0].message


def test_bypass_addon_without_its_region_would_ask_imds(eu) -> None:
    found = _only(_violations(eu, _hook("NodePoolsArgs", aws_region="")), "imdsv2")
    assert [(v.resource_type, v.resource_name) for v in found] == [("aws:eks/addon:Addon", "nodes-ebs-csi")]
    assert "configuration controller.region is '', expected the region 'eu-west-1'" in found[0].message


def test_bypass_unknown_addon_fails_closed(eu) -> None:
    import pulumi
    import pulumi_aws as aws

    def addon() -> None:
        provider = aws.Provider("second", region="eu-west-1")
        aws.eks.Addon(
            "observability",
            cluster_name="secplat-eu-west-1",
            addon_name="amazon-cloudwatch-observability",
            tags={**eu.tags, "residency": "eu"},
            opts=pulumi.ResourceOptions(provider=provider),
        )

    found = _only(_capture_with(eu, addon), "imdsv2")
    assert "add-on 'amazon-cloudwatch-observability' is not in the toolkit's table" in found[0].message


def test_bypass_region_suffix_on_a_key_arn_is_a_malformed_arn(eu) -> None:
    suffixed = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab?region=eu-north-1"
    found = _only(_violations(eu, _hook("ClusterArgs", secrets_key_arn=suffixed)), "region-residency")
    assert [(v.resource_type, v.resource_name) for v in found] == [("aws:eks/cluster:Cluster", "cluster-eks")]
    assert "keyArn: " in found[0].message and "an ARN carries no parameters" in found[0].message
    foreign = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    (moved,) = _only(_violations(eu, _hook("ClusterArgs", secrets_key_arn=foreign)), "region-residency")
    assert f"keyArn {foreign} lies in us-east-1 (United States (US)), outside the eu residency" in moved.message


def test_bypass_arn_inside_a_policy_document_is_checked(eu) -> None:
    import sys

    load_program(STACKS)
    key_user = sys.modules["platform_region.keys"].KeyUser
    foreign_logs = "arn:aws:logs:us-east-1:123456789012:log-group:*"

    def hook(args: Any) -> Any:
        if type(args).__name__ == "KeyPoliciesArgs" and "logs" in args.users:
            user = key_user(
                principal={"Service": "logs.eu-west-1.amazonaws.com"},
                condition={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": [foreign_logs]}},
            )
            return replace(args, users={"logs": [user]})
        return args

    (found,) = _only(_violations(eu, hook), "region-residency")
    assert (found.resource_type, found.resource_name) == ("aws:kms/keyPolicy:KeyPolicy", "logs-key-policy-logs")
    assert f"kms:EncryptionContext:aws:logs:arn {foreign_logs} lies in us-east-1" in found.message


def test_bypass_replication_to_an_undeclared_bucket(eu) -> None:
    import pulumi
    import pulumi_aws as aws

    def replication() -> None:
        provider = aws.Provider("replica", region="eu-north-1")
        tags = {**eu.tags, "residency": "eu"}
        declared = aws.s3.Bucket("replica-bucket", tags=tags, opts=pulumi.ResourceOptions(provider=provider))
        aws.s3.BucketServerSideEncryptionConfiguration(
            "replica-encryption",
            bucket=declared.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms", "kms_master_key_id": "k"}}],
            opts=pulumi.ResourceOptions(provider=provider),
        )
        for name, target in (("to-declared", declared.arn), ("to-elsewhere", "arn:aws:s3:::bucket-in-virginia")):
            aws.s3.BucketReplicationConfig(
                name,
                bucket="source",
                role="arn:aws:iam::123456789012:role/replication",
                rules=[{"id": "all", "status": "Enabled", "destination": {"bucket": target}}],
                opts=pulumi.ResourceOptions(provider=provider),
            )

    found = _only(_capture_with(eu, replication), "region-residency")
    assert [v.resource_name for v in found] == ["to-elsewhere"]
    assert "replication target 'arn:aws:s3:::bucket-in-virginia' is not a bucket this program declares" in (
        found[0].message
    )
