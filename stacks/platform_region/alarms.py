"""Alarms: CloudWatch alarms for what lives outside the cluster, sent to one encrypted SNS topic.

Inside the cluster the platform's own alerts watch Kafka, Elasticsearch and the workers; these watch what the
cluster cannot see from inside (AWS/EKS, AWS/NATGateway and AWS/Usage metrics, and CloudTrail events):
- EKS control plane (`AWS/EKS`, vended for Kubernetes 1.28+, dimension ClusterName): the share of API requests
  answered 5XX, requests throttled (429), and the P99 latency of each verb (GET, LIST, POST, PUT, PATCH, DELETE);
- each NAT gateway (`AWS/NATGateway`, dimension NatGatewayId): port allocation errors (connections refused for
  lack of source ports) and dropped packets;
- KMS: the region's symmetric cryptographic request rate against its Service Quota (`AWS/Usage` CallCount with
  SERVICE_QUOTA: throttling starts at 100%), and an EventBridge rule that reports DisableKey and
  ScheduleKeyDeletion on any of the region's keys (CloudTrail management events; the account needs a trail).
Every alarm and the rule notify the `alerts` topic, encrypted with the region's alerts key; CloudWatch and
EventBridge may publish to it only for this account. Thresholds are arguments with production defaults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from .common import child, named, policy_json

API_VERBS = ("GET", "LIST", "POST", "PUT", "PATCH", "DELETE")
KEY_EVENTS = ("DisableKey", "ScheduleKeyDeletion")
ALARM_PUBLISHERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com")


@dataclass(frozen=True)
class AlarmsArgs:
    name: str
    account_id: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    nat_gateway_ids: Sequence[pulumi.Input[str]]
    key_arns: Mapping[str, pulumi.Input[str]]
    alerts_key_arn: pulumi.Input[str]
    tags: dict[str, str]
    api_error_percent: float = 5.0
    api_throttled_per_minute: float = 100.0
    api_p99_seconds: float = 1.0
    nat_port_errors_per_minute: float = 1.0
    nat_dropped_packets_per_minute: float = 100.0
    kms_quota_percent: float = 80.0
    evaluation_minutes: int = 5


class Alarms(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]

    def __init__(self, name: str, args: AlarmsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:region:Alarms", name, None, opts)
        topic = aws.sns.Topic(
            f"{name}-topic",
            name=f"{args.name}-platform-alarms",
            kms_master_key_id=args.alerts_key_arn,
            tags=named(args.tags, f"{args.name}-platform-alarms"),
            opts=child(self),
        )
        aws.sns.TopicPolicy(
            f"{name}-topic-policy",
            arn=topic.arn,
            policy=policy_json(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "AlarmsPublish",
                            "Effect": "Allow",
                            "Principal": {"Service": list(ALARM_PUBLISHERS)},
                            "Action": "sns:Publish",
                            "Resource": topic.arn,
                            "Condition": {"StringEquals": {"aws:SourceAccount": args.account_id}},
                        }
                    ],
                }
            ),
            opts=child(self),
        )
        self.topic_arn = topic.arn
        self._actions = [topic.arn]
        self._period = 60
        self._cluster(name, args)
        self._nat(name, args)
        self._kms(name, args, topic)
        self.register_outputs({"topic_arn": topic.arn})

    def _alarm(self, name: str, args: AlarmsArgs, description: str, **settings: object) -> None:
        aws.cloudwatch.MetricAlarm(
            name,
            alarm_description=description,
            evaluation_periods=args.evaluation_minutes,
            datapoints_to_alarm=args.evaluation_minutes,
            alarm_actions=self._actions,
            ok_actions=self._actions,
            tags=named(args.tags, name),
            opts=child(self),
            **settings,  # type: ignore[arg-type]
        )

    def _cluster(self, name: str, args: AlarmsArgs) -> None:
        dimensions = {"ClusterName": args.cluster_name}

        def eks(metric: str, stat: str) -> dict[str, object]:
            return {
                "metric": {
                    "namespace": "AWS/EKS",
                    "metric_name": metric,
                    "dimensions": dimensions,
                    "period": self._period,
                    "stat": stat,
                }
            }

        self._alarm(
            f"{name}-eks-api-5xx",
            args,
            f"EKS API server answered more than {args.api_error_percent:g}% of requests with 5XX for "
            f"{args.evaluation_minutes} minutes",
            comparison_operator="GreaterThanThreshold",
            threshold=args.api_error_percent,
            treat_missing_data="notBreaching",
            metric_queries=[
                {"id": "errors", "return_data": False, **eks("apiserver_request_total_5XX", "Sum")},
                {"id": "requests", "return_data": False, **eks("apiserver_request_total", "Sum")},
                {
                    "id": "share",
                    "expression": "100 * errors / MAX([requests, 1])",
                    "label": "5XX share of API requests (%)",
                    "return_data": True,
                },
            ],
        )
        self._alarm(
            f"{name}-eks-api-throttled",
            args,
            f"EKS API server throttled (429) more than {args.api_throttled_per_minute:g} requests a minute",
            comparison_operator="GreaterThanThreshold",
            threshold=args.api_throttled_per_minute,
            treat_missing_data="notBreaching",
            namespace="AWS/EKS",
            metric_name="apiserver_request_total_429",
            dimensions=dimensions,
            period=self._period,
            statistic="Sum",
        )
        for verb in API_VERBS:
            self._alarm(
                f"{name}-eks-api-p99-{verb.lower()}",
                args,
                f"EKS API server {verb} requests: P99 latency above {args.api_p99_seconds:g} s",
                comparison_operator="GreaterThanThreshold",
                threshold=args.api_p99_seconds,
                treat_missing_data="notBreaching",
                namespace="AWS/EKS",
                metric_name=f"apiserver_request_duration_seconds_{verb}_P99",
                dimensions=dimensions,
                period=self._period,
                statistic="Average",
            )

    def _nat(self, name: str, args: AlarmsArgs) -> None:
        for number, nat_id in enumerate(args.nat_gateway_ids):
            for metric, threshold, what in (
                ("ErrorPortAllocation", args.nat_port_errors_per_minute, "could not allocate a source port"),
                ("PacketsDropCount", args.nat_dropped_packets_per_minute, "dropped packets"),
            ):
                self._alarm(
                    f"{name}-nat-{number}-{metric.lower()}",
                    args,
                    f"NAT gateway {number} {what} ({metric} at or above {threshold:g} a minute): nodes in its "
                    "zone lose egress to AWS APIs outside the VPC endpoints and to the internet",
                    comparison_operator="GreaterThanOrEqualToThreshold",
                    threshold=threshold,
                    treat_missing_data="notBreaching",
                    namespace="AWS/NATGateway",
                    metric_name=metric,
                    dimensions={"NatGatewayId": nat_id},
                    period=self._period,
                    statistic="Sum",
                )

    def _kms(self, name: str, args: AlarmsArgs, topic: aws.sns.Topic) -> None:
        self._alarm(
            f"{name}-kms-quota",
            args,
            f"KMS symmetric cryptographic requests above {args.kms_quota_percent:g}% of the account's request "
            "quota in this region: at 100% KMS throttles, and EBS, EKS Secrets, logs and snapshots stop "
            "encrypting and decrypting",
            comparison_operator="GreaterThanThreshold",
            threshold=args.kms_quota_percent,
            treat_missing_data="notBreaching",
            metric_queries=[
                {
                    "id": "calls",
                    "return_data": False,
                    "metric": {
                        "namespace": "AWS/Usage",
                        "metric_name": "CallCount",
                        "dimensions": {
                            "Service": "KMS",
                            "Type": "API",
                            "Resource": "CryptographicOperationsSymmetric",
                            "Class": "None",
                        },
                        "period": self._period,
                        "stat": "Sum",
                    },
                },
                {
                    "id": "usage",
                    "expression": "100 * (calls / PERIOD(calls)) / SERVICE_QUOTA(calls)",
                    "label": "KMS symmetric requests, % of quota",
                    "return_data": True,
                },
            ],
        )
        pattern = pulumi.Output.all(*args.key_arns.values()).apply(
            lambda arns: json.dumps(
                {
                    "source": ["aws.kms"],
                    "detail-type": ["AWS API Call via CloudTrail"],
                    "detail": {"eventName": list(KEY_EVENTS), "resources": {"ARN": sorted(arns)}},
                },
                sort_keys=True,
            )
        )
        rule = aws.cloudwatch.EventRule(
            f"{name}-kms-key-disabled",
            description="A KMS key of this region was disabled or scheduled for deletion (CloudTrail)",
            event_pattern=pattern,
            tags=named(args.tags, f"{args.name}-kms-key-disabled"),
            opts=child(self),
        )
        aws.cloudwatch.EventTarget(
            f"{name}-kms-key-disabled",
            rule=rule.name,
            arn=topic.arn,
            opts=child(self),
        )
