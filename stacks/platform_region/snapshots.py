"""Snapshots: the S3 bucket Elasticsearch writes snapshots to, and the IRSA role it writes with.

Invariants: objects are encrypted with the snapshots KMS key (bucket key on), versioning is on, every form of
public access is blocked, ACLs are disabled (bucket owner enforced), the bucket policy denies any request not
made over TLS, and only the Elasticsearch service account can assume the writer role. The bucket is protected.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from .cluster import irsa_trust
from .common import child, named, policy_json


@dataclass(frozen=True)
class SnapshotsArgs:
    name: str
    snapshots_key_arn: pulumi.Input[str]
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    namespace: str
    service_account: str
    tags: dict[str, str]
    encrypted: bool = True


class Snapshots(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    writer_role_arn: pulumi.Output[str]

    def __init__(self, name: str, args: SnapshotsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:region:Snapshots", name, None, opts)
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket_prefix=f"{args.name}-es-snapshots-"[:37],
            force_destroy=False,
            tags=named(args.tags, f"{args.name}-es-snapshots"),
            opts=child(self, protect=True),
        )
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=child(self),
        )
        if args.encrypted:
            aws.s3.BucketServerSideEncryptionConfiguration(
                f"{name}-encryption",
                bucket=bucket.id,
                rules=[
                    {
                        "apply_server_side_encryption_by_default": {
                            "sse_algorithm": "aws:kms",
                            "kms_master_key_id": args.snapshots_key_arn,
                        },
                        "bucket_key_enabled": True,
                    }
                ],
                opts=child(self),
            )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child(self),
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child(self),
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket.id,
            policy=policy_json(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "DenyInsecureTransport",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [bucket.arn, bucket.arn.apply(lambda arn: f"{arn}/*")],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        }
                    ],
                }
            ),
            opts=child(self),
        )
        subject = f"system:serviceaccount:{args.namespace}:{args.service_account}"
        role = aws.iam.Role(
            f"{name}-writer",
            assume_role_policy=irsa_trust(args.oidc_provider_arn, args.oidc_issuer_url, subject),
            tags=named(args.tags, f"{args.name}-es-snapshots-writer"),
            opts=child(self),
        )
        aws.iam.RolePolicy(
            f"{name}-writer",
            role=role.id,
            policy=policy_json(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": [
                                "s3:ListBucket",
                                "s3:GetBucketLocation",
                                "s3:ListBucketMultipartUploads",
                                "s3:ListBucketVersions",
                            ],
                            "Resource": bucket.arn,
                        },
                        {
                            "Effect": "Allow",
                            "Action": [
                                "s3:GetObject",
                                "s3:PutObject",
                                "s3:DeleteObject",
                                "s3:AbortMultipartUpload",
                                "s3:ListMultipartUploadParts",
                            ],
                            "Resource": bucket.arn.apply(lambda arn: f"{arn}/*"),
                        },
                        {
                            "Effect": "Allow",
                            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"],
                            "Resource": args.snapshots_key_arn,
                        },
                    ],
                }
            ),
            opts=child(self),
        )
        self.bucket_name = bucket.bucket
        self.writer_role_arn = role.arn
        self.register_outputs({"bucket": bucket.bucket, "writer_role_arn": role.arn})
