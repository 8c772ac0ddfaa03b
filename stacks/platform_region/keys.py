"""Keys: one customer-managed KMS key per purpose, rotated automatically, each with an alias and a key policy
that lets only its users use it.

Purposes: `eks-secrets` (envelope encryption of Kubernetes Secrets), `ebs` (node and volume disks), `logs`
(CloudWatch log groups), `snapshots` (the Elasticsearch snapshot bucket), `alerts` (the alarms' SNS topic).

Key policies are applied by `KeyPolicies`, one purpose at a time, once that purpose's users exist (AWS
validates principals when a policy is set, and the IRSA roles exist only after the cluster): the account may
administer each key (manage, never encrypt/decrypt), and each purpose's users get exactly the
cryptographic actions they need:
- eks-secrets: the EKS cluster role;
- ebs: the Auto Scaling service-linked role (launches node volumes) and the EBS CSI driver's IRSA role;
- logs: the CloudWatch Logs service principal of the region, limited to this region's log groups;
- snapshots: the Elasticsearch snapshot IRSA role;
- alerts: CloudWatch and EventBridge, for this account only (they publish alarms to the encrypted topic).
Keys are protected: `pulumi destroy` refuses to delete them unless they are unprotected first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from .common import child, named, policy_json

KEY_PURPOSES = ("eks-secrets", "ebs", "logs", "snapshots", "alerts")

ADMIN_ACTIONS = [
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
]
USE_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
GRANT_ACTIONS = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]


@dataclass(frozen=True)
class KeysArgs:
    name: str
    tags: dict[str, str]
    purposes: tuple[str, ...] = KEY_PURPOSES
    rotation_enabled: bool = True
    rotation_period_days: int = 365
    deletion_window_days: int = 30


class Keys(pulumi.ComponentResource):
    keys: dict[str, aws.kms.Key]
    arns: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: KeysArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:region:Keys", name, None, opts)
        self.keys = {}
        self.arns = {}
        for purpose in args.purposes:
            key = aws.kms.Key(
                f"{name}-{purpose}",
                description=f"{args.name}: {purpose}",
                enable_key_rotation=args.rotation_enabled,
                rotation_period_in_days=args.rotation_period_days if args.rotation_enabled else None,
                deletion_window_in_days=args.deletion_window_days,
                tags=named(args.tags, f"{args.name}-{purpose}"),
                opts=child(self, protect=True),
            )
            aws.kms.Alias(
                f"{name}-{purpose}",
                name=f"alias/{args.name}-{purpose}",
                target_key_id=key.key_id,
                opts=child(self),
            )
            self.keys[purpose] = key
            self.arns[purpose] = key.arn
        self.register_outputs({"arns": self.arns})


@dataclass(frozen=True)
class KeyUser:
    """Who may use a key: an IAM principal (`{"AWS": arn}` or `{"Service": name}`), with optional grants and
    conditions."""

    principal: Mapping[str, Any]
    grants: bool = False
    condition: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class KeyPoliciesArgs:
    account_id: pulumi.Input[str]
    users: Mapping[str, Sequence[KeyUser]]


class KeyPolicies(pulumi.ComponentResource):
    def __init__(
        self, name: str, keys: Keys, args: KeyPoliciesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:region:KeyPolicies", name, None, opts)
        for purpose, users in args.users.items():
            key = keys.keys[purpose]
            statements: list[Any] = [
                {
                    "Sid": "AccountAdministersKey",
                    "Effect": "Allow",
                    "Principal": {"AWS": pulumi.Output.concat("arn:aws:iam::", args.account_id, ":root")},
                    "Action": ADMIN_ACTIONS,
                    "Resource": "*",
                }
            ]
            for number, user in enumerate(users):
                use: dict[str, Any] = {
                    "Sid": f"Use{number}",
                    "Effect": "Allow",
                    "Principal": dict(user.principal),
                    "Action": USE_ACTIONS,
                    "Resource": "*",
                }
                if user.condition:
                    use["Condition"] = dict(user.condition)
                statements.append(use)
                if user.grants:
                    statements.append(
                        {
                            "Sid": f"Grant{number}",
                            "Effect": "Allow",
                            "Principal": dict(user.principal),
                            "Action": GRANT_ACTIONS,
                            "Resource": "*",
                            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
                        }
                    )
            aws.kms.KeyPolicy(
                f"{name}-{purpose}",
                key_id=key.key_id,
                policy=policy_json({"Version": "2012-10-17", "Statement": statements}),
                opts=child(self),
            )
        self.register_outputs({})
