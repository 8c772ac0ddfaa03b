"""Pulumi entry point: declare the region whose stack is selected (`stacks/Pulumi.<stack>.yaml`)."""

from pathlib import Path

import pulumi
from platform_region.program import declare_region

from toolkit.config.region import load_region

config = load_region(pulumi.get_stack(), Path(__file__).resolve().parent)
outputs = declare_region(config)
pulumi.export("vpcId", outputs.vpc_id)
pulumi.export("clusterName", outputs.cluster_name)
pulumi.export("kubeContext", outputs.kube_context)
pulumi.export("snapshotBucket", outputs.snapshot_bucket)
pulumi.export("snapshotWriterRoleArn", outputs.snapshot_writer_role_arn)
pulumi.export("keyArns", outputs.key_arns)
