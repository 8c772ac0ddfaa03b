"""Pulumi entry point: declare the region whose stack is selected (`stacks/Pulumi.<stack>.yaml`)."""

from pathlib import Path

import pulumi
from platform_region.program import declare_region

from toolkit.config.region import load_region

config = load_region(pulumi.get_stack(), Path(__file__).resolve().parent)
outputs = declare_region(config)
for name, value in outputs.exports().items():
    pulumi.export(name, value)
