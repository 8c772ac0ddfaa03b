"""Network: one VPC from the region's address block, public and private subnets per zone, NAT, flow logs,
VPC endpoints.

Invariants: nodes only ever get private subnets (their default route goes to a NAT gateway, never to the
internet gateway); public subnets carry load balancers and NAT gateways only; flow logs of all traffic go to a
log group encrypted with the logs key; the AWS APIs nodes call are reached through VPC endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from .common import child, named, policy_json

# Interface endpoints for the AWS APIs nodes and add-ons call (image pulls, IRSA, logs, EBS CSI, load balancers).
INTERFACE_ENDPOINT_SERVICES = (
    "ecr.api",
    "ecr.dkr",
    "sts",
    "logs",
    "ec2",
    "kms",
    "elasticloadbalancing",
    "autoscaling",
)


@dataclass(frozen=True)
class ZonePlan:
    zone: str
    private_cidr: str
    public_cidr: str


@dataclass(frozen=True)
class NetworkArgs:
    name: str
    aws_region: str
    cidr: str
    zones: tuple[ZonePlan, ...]
    cluster_name: str
    nat_per_zone: bool
    logs_key_arn: pulumi.Input[str]
    log_retention_days: int
    tags: dict[str, str]
    flow_logs: bool = True
    interface_endpoints: tuple[str, ...] = INTERFACE_ENDPOINT_SERVICES


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    nat_gateway_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]
    public_subnet_ids: list[pulumi.Output[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:region:Network", name, None, opts)
        tags = args.tags
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=named(tags, f"{args.name}-vpc"),
            opts=child(self),
        )
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags=named(tags, f"{args.name}-igw"), opts=child(self)
        )
        public_rt = aws.ec2.RouteTable(
            f"{name}-public", vpc_id=vpc.id, tags=named(tags, f"{args.name}-public"), opts=child(self)
        )
        aws.ec2.Route(
            f"{name}-public-default",
            route_table_id=public_rt.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=igw.id,
            opts=child(self),
        )
        self.public_subnet_ids = []
        self.private_subnet_ids = []
        nat_ids: list[pulumi.Output[str]] = []
        private_route_tables: list[aws.ec2.RouteTable] = []
        for plan in args.zones:
            public = aws.ec2.Subnet(
                f"{name}-public-{plan.zone}",
                vpc_id=vpc.id,
                cidr_block=plan.public_cidr,
                availability_zone=plan.zone,
                map_public_ip_on_launch=False,
                tags={
                    **named(tags, f"{args.name}-public-{plan.zone}"),
                    "kubernetes.io/role/elb": "1",
                    f"kubernetes.io/cluster/{args.cluster_name}": "shared",
                },
                opts=child(self),
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{plan.zone}", subnet_id=public.id, route_table_id=public_rt.id, opts=child(self)
            )
            self.public_subnet_ids.append(public.id)
            if args.nat_per_zone or not nat_ids:
                eip = aws.ec2.Eip(
                    f"{name}-nat-{plan.zone}",
                    domain="vpc",
                    tags=named(tags, f"{args.name}-nat-{plan.zone}"),
                    opts=child(self),
                )
                nat = aws.ec2.NatGateway(
                    f"{name}-nat-{plan.zone}",
                    allocation_id=eip.id,
                    subnet_id=public.id,
                    tags=named(tags, f"{args.name}-nat-{plan.zone}"),
                    opts=child(self, depends_on=[igw]),
                )
                nat_ids.append(nat.id)
            private = aws.ec2.Subnet(
                f"{name}-private-{plan.zone}",
                vpc_id=vpc.id,
                cidr_block=plan.private_cidr,
                availability_zone=plan.zone,
                map_public_ip_on_launch=False,
                tags={
                    **named(tags, f"{args.name}-private-{plan.zone}"),
                    "kubernetes.io/role/internal-elb": "1",
                    f"kubernetes.io/cluster/{args.cluster_name}": "shared",
                },
                opts=child(self),
            )
            private_rt = aws.ec2.RouteTable(
                f"{name}-private-{plan.zone}",
                vpc_id=vpc.id,
                tags=named(tags, f"{args.name}-private-{plan.zone}"),
                opts=child(self),
            )
            aws.ec2.Route(
                f"{name}-private-{plan.zone}-default",
                route_table_id=private_rt.id,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nat_ids[-1],
                opts=child(self),
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{plan.zone}",
                subnet_id=private.id,
                route_table_id=private_rt.id,
                opts=child(self),
            )
            private_route_tables.append(private_rt)
            self.private_subnet_ids.append(private.id)

        if args.flow_logs:
            self._flow_logs(name, args, vpc)
        self._endpoints(name, args, vpc, private_route_tables)
        self.vpc_id = vpc.id
        self.nat_gateway_ids = nat_ids
        self.register_outputs(
            {
                "vpc_id": vpc.id,
                "private_subnet_ids": self.private_subnet_ids,
                "public_subnet_ids": self.public_subnet_ids,
            }
        )

    def _flow_logs(self, name: str, args: NetworkArgs, vpc: aws.ec2.Vpc) -> None:
        group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=f"/platform/{args.name}/vpc-flow-logs",
            kms_key_id=args.logs_key_arn,
            retention_in_days=args.log_retention_days,
            tags=named(args.tags, f"{args.name}-flow-logs"),
            opts=child(self),
        )
        role = aws.iam.Role(
            f"{name}-flow-logs",
            assume_role_policy=policy_json(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            tags=named(args.tags, f"{args.name}-flow-logs"),
            opts=child(self),
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs",
            role=role.id,
            policy=policy_json(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": [
                                "logs:CreateLogStream",
                                "logs:PutLogEvents",
                                "logs:DescribeLogGroups",
                                "logs:DescribeLogStreams",
                            ],
                            "Resource": [group.arn, group.arn.apply(lambda arn: f"{arn}:*")],
                        }
                    ],
                }
            ),
            opts=child(self),
        )
        aws.ec2.FlowLog(
            f"{name}-flow-logs",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            tags=named(args.tags, f"{args.name}-flow-logs"),
            opts=child(self),
        )

    def _endpoints(
        self, name: str, args: NetworkArgs, vpc: aws.ec2.Vpc, private_route_tables: list[aws.ec2.RouteTable]
    ) -> None:
        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{args.aws_region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_route_tables],
            tags=named(args.tags, f"{args.name}-s3"),
            opts=child(self),
        )
        endpoint_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints",
            vpc_id=vpc.id,
            description="HTTPS from inside the VPC to AWS service endpoints",
            ingress=[{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": [args.cidr]}],
            tags=named(args.tags, f"{args.name}-endpoints"),
            opts=child(self),
        )
        for service in args.interface_endpoints:
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}",
                vpc_id=vpc.id,
                service_name=f"com.amazonaws.{args.aws_region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=self.private_subnet_ids,
                security_group_ids=[endpoint_sg.id],
                tags=named(args.tags, f"{args.name}-{service}"),
                opts=child(self),
            )
