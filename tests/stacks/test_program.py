"""The stacks/ program under Pulumi mocks, for both shipped regions: what it declares and how it is secured."""

from __future__ import annotations

import ipaddress
import json

import pytest

from toolkit.compliance import ResourceGraph, evaluate
from toolkit.compliance.rules import KMS_KEY, LAUNCH_TEMPLATE, NODE_GROUP, STORAGE_CLASS, SUBNET
from toolkit.config.region import load_region

REGIONS = ("eu-west-1", "us-east-1")


def _one(graph: ResourceGraph, type_: str, name: str):
    matches = [r for r in graph.of_type(type_) if r.name == name]
    assert len(matches) == 1, f"expected one {type_} {name}, found {len(matches)}"
    return matches[0]


@pytest.mark.parametrize("region", REGIONS)
def test_region_declares_the_four_concerns_and_passes_every_rule(region, captured) -> None:
    resources = captured(region)
    graph = ResourceGraph(resources)
    components = {r.type for r in resources if r.type.startswith("platform:region:")}
    assert {
        "platform:region:Network",
        "platform:region:Keys",
        "platform:region:Cluster",
        "platform:region:NodePools",
        "platform:region:Snapshots",
    } <= components
    assert evaluate(list(resources), load_region(region).residency) == []
    provider = graph.of_type("pulumi:providers:aws")
    assert [p.inputs["region"] for p in provider] == [region]


@pytest.mark.parametrize("region", REGIONS)
def test_network_follows_the_address_plan(region, captured) -> None:
    config = load_region(region)
    graph = ResourceGraph(captured(region))
    vpc = graph.of_type("aws:ec2/vpc:Vpc")[0]
    assert vpc.inputs["cidrBlock"] == str(config.address_block)
    subnets = graph.of_type(SUBNET)
    assert len(subnets) == 2 * len(config.availability_zones)
    assert {s.inputs["availabilityZone"] for s in subnets} == set(config.availability_zones)
    assert all(ipaddress.ip_network(s.inputs["cidrBlock"]).subnet_of(config.address_block) for s in subnets)
    nats = graph.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == (len(config.availability_zones) if config.nat_gateways == "per-zone" else 1)
    endpoints = {
        e.inputs["serviceName"].rsplit(".", 1)[-1]
        if "ecr" not in e.inputs["serviceName"]
        else e.inputs["serviceName"].split(f"{region}.", 1)[1]
        for e in graph.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    }
    assert {"s3", "ecr.api", "ecr.dkr", "sts", "logs", "ec2", "kms", "elasticloadbalancing"} <= endpoints
    flow_log = graph.of_type("aws:ec2/flowLog:FlowLog")[0]
    log_group = graph.by_id(flow_log.inputs["logDestination"].replace("arn:aws:mock:::LogGroup/", "") + "#LogGroup")
    assert log_group is not None and log_group.inputs["kmsKeyId"]


@pytest.mark.parametrize("region", REGIONS)
def test_keys_rotate_are_protected_and_grant_only_their_users(region, captured) -> None:
    graph = ResourceGraph(captured(region))
    keys = graph.of_type(KMS_KEY)
    assert {k.name for k in keys} == {"keys-eks-secrets", "keys-ebs", "keys-logs", "keys-snapshots", "keys-alerts"}
    assert all(k.inputs["enableKeyRotation"] is True and k.protect for k in keys)
    assert len(graph.of_type("aws:kms/alias:Alias")) == 5
    policies = {p.name: json.loads(p.inputs["policy"]) for p in graph.of_type("aws:kms/keyPolicy:KeyPolicy")}
    assert set(policies) == {
        "logs-key-policy-logs",
        "secrets-key-policy-eks-secrets",
        "data-key-policies-ebs",
        "data-key-policies-snapshots",
        "data-key-policies-alerts",
    }
    for document in policies.values():
        admin = document["Statement"][0]
        assert admin["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
        assert not any(a in admin["Action"] for a in ("kms:Decrypt", "kms:Encrypt", "kms:*"))
    logs = policies["logs-key-policy-logs"]["Statement"][1]
    assert logs["Principal"] == {"Service": f"logs.{region}.amazonaws.com"}
    assert "kms:EncryptionContext:aws:logs:arn" in logs["Condition"]["ArnLike"]
    ebs_users = [s["Principal"]["AWS"] for s in policies["data-key-policies-ebs"]["Statement"][1:]]
    assert any(u.endswith("autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling") for u in ebs_users)
    assert any("cluster-ebs-csi" in u for u in ebs_users)
    snapshot_users = {s["Principal"]["AWS"] for s in policies["data-key-policies-snapshots"]["Statement"][1:]}
    assert snapshot_users == {"arn:aws:mock:::Role/snapshots-writer"}


@pytest.mark.parametrize("region", REGIONS)
def test_cluster_nodes_and_storage_are_locked_down(region, captured) -> None:
    config = load_region(region)
    graph = ResourceGraph(captured(region))
    cluster = graph.of_type("aws:eks/cluster:Cluster")[0]
    vpc_config = cluster.inputs["vpcConfig"]
    assert vpc_config["endpointPrivateAccess"] is True
    assert vpc_config["endpointPublicAccess"] is bool(config.api_public_access_cidrs)
    assert vpc_config.get("publicAccessCidrs") == (list(config.api_public_access_cidrs) or None)
    assert cluster.inputs["encryptionConfig"]["resources"] == ["secrets"]
    assert set(cluster.inputs["enabledClusterLogTypes"]) == {
        "api",
        "audit",
        "authenticator",
        "controllerManager",
        "scheduler",
    }
    groups = graph.of_type(NODE_GROUP)
    assert len(groups) == 3 * len(config.availability_zones)
    for group in groups:
        role = group.inputs["labels"]["platform.role"]
        taints = group.inputs.get("taints") or []
        assert (taints == [{"key": "dedicated", "value": role, "effect": "NO_SCHEDULE"}]) == (role != "workers")
        (subnet_id,) = group.inputs["subnetIds"]
        assert graph.by_id(subnet_id).name.startswith("network-private-")
    for template in graph.of_type(LAUNCH_TEMPLATE):
        assert template.inputs["metadataOptions"]["httpTokens"] == "required"
        assert template.inputs["metadataOptions"]["httpPutResponseHopLimit"] == config.node_metadata_hop_limit
        ebs = template.inputs["blockDeviceMappings"][0]["ebs"]
        assert ebs["encrypted"] == "true" and ebs["kmsKeyId"] == "arn:aws:mock:::Key/keys-ebs"
    assert _one(graph, "aws:iam/openIdConnectProvider:OpenIdConnectProvider", "cluster-oidc").inputs[
        "clientIdLists"
    ] == ["sts.amazonaws.com"]
    addon = _one(graph, "aws:eks/addon:Addon", "nodes-ebs-csi")
    assert addon.inputs["addonName"] == "aws-ebs-csi-driver"
    assert addon.inputs["serviceAccountRoleArn"] == "arn:aws:mock:::Role/cluster-ebs-csi"
    csi_trust = json.loads(_one(graph, "aws:iam/role:Role", "cluster-ebs-csi").inputs["assumeRolePolicy"])
    condition = csi_trust["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:kube-system:ebs-csi-controller-sa" in condition.values()
    storage_class = graph.of_type(STORAGE_CLASS)[0]
    assert storage_class.inputs["metadata"]["name"] == "encrypted-gp3"
    assert storage_class.inputs["parameters"] == {
        "type": "gp3",
        "encrypted": "true",
        "kmsKeyId": "arn:aws:mock:::Key/keys-ebs",
    }


@pytest.mark.parametrize("region", REGIONS)
def test_snapshot_bucket_is_private_encrypted_versioned_and_tls_only(region, captured) -> None:
    config = load_region(region)
    graph = ResourceGraph(captured(region))
    bucket = _one(graph, "aws:s3/bucket:Bucket", "snapshots-bucket")
    assert bucket.protect and bucket.inputs["forceDestroy"] is False
    versioning = graph.referring("aws:s3/bucketVersioning:BucketVersioning", "bucket", bucket.id)
    assert versioning[0].inputs["versioningConfiguration"]["status"] == "Enabled"
    block = graph.referring("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "bucket", bucket.id)[0]
    assert all(
        block.inputs[k] is True
        for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    policy = json.loads(graph.referring("aws:s3/bucketPolicy:BucketPolicy", "bucket", bucket.id)[0].inputs["policy"])
    deny = policy["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    writer = json.loads(_one(graph, "aws:iam/role:Role", "snapshots-writer").inputs["assumeRolePolicy"])
    subject = f"system:serviceaccount:{config.platform.namespace}:elasticsearch"
    assert subject in writer["Statement"][0]["Condition"]["StringEquals"].values()


@pytest.mark.parametrize("region", REGIONS)
def test_alarms_watch_what_lives_outside_the_cluster(region, captured) -> None:
    config = load_region(region)
    graph = ResourceGraph(captured(region))
    topic = _one(graph, "aws:sns/topic:Topic", "alarms-topic")
    assert topic.inputs["kmsMasterKeyId"] == "arn:aws:mock:::Key/keys-alerts"
    topic_policy = json.loads(graph.of_type("aws:sns/topicPolicy:TopicPolicy")[0].inputs["policy"])
    publish = topic_policy["Statement"][0]
    assert sorted(publish["Principal"]["Service"]) == ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    assert publish["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    alerts_key_users = json.loads(
        _one(graph, "aws:kms/keyPolicy:KeyPolicy", "data-key-policies-alerts").inputs["policy"]
    )
    assert alerts_key_users["Statement"][1]["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}

    alarms = {a.name: a.inputs for a in graph.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert all(a["alarmActions"] == [topic.arn] and a["okActions"] == [topic.arn] for a in alarms.values())

    def metrics(alarm: dict) -> set[tuple[str, str]]:
        if "metricName" in alarm:
            return {(alarm["namespace"], alarm["metricName"])}
        return {(q["metric"]["namespace"], q["metric"]["metricName"]) for q in alarm["metricQueries"] if "metric" in q}

    eks = {n: a for n, a in alarms.items() if ("AWS/EKS", "apiserver_request_total") in metrics(a) or "eks" in n}
    assert {("AWS/EKS", "apiserver_request_total_5XX"), ("AWS/EKS", "apiserver_request_total")} == metrics(
        alarms["alarms-eks-api-5xx"]
    )
    latency = {m for a in eks.values() for _, m in metrics(a) if m.startswith("apiserver_request_duration")}
    assert latency == {
        f"apiserver_request_duration_seconds_{v}_P99" for v in ("GET", "LIST", "POST", "PUT", "PATCH", "DELETE")
    }
    for alarm in eks.values():
        dims = alarm.get("dimensions") or alarm["metricQueries"][0]["metric"]["dimensions"]
        assert dims == {"ClusterName": config.cluster_name}

    nats = graph.of_type("aws:ec2/natGateway:NatGateway")
    nat_alarms = [a for n, a in alarms.items() if "-nat-" in n]
    assert len(nat_alarms) == 2 * len(nats)
    assert {a["dimensions"]["NatGatewayId"] for a in nat_alarms} == {n.id for n in nats}
    assert {a["metricName"] for a in nat_alarms} == {"ErrorPortAllocation", "PacketsDropCount"}

    quota = alarms["alarms-kms-quota"]
    (usage,) = [q for q in quota["metricQueries"] if "metric" in q]
    assert usage["metric"]["namespace"] == "AWS/Usage" and usage["metric"]["dimensions"]["Service"] == "KMS"
    assert any("SERVICE_QUOTA(calls)" in q.get("expression", "") for q in quota["metricQueries"])

    rule = _one(graph, "aws:cloudwatch/eventRule:EventRule", "alarms-kms-key-disabled")
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern["detail"]["eventName"] == ["DisableKey", "ScheduleKeyDeletion"]
    assert pattern["detail"]["resources"]["ARN"] == sorted(k.arn for k in graph.of_type(KMS_KEY))
    target = graph.of_type("aws:cloudwatch/eventTarget:EventTarget")[0]
    assert target.inputs["arn"] == topic.arn
