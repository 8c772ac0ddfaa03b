"""Helpers shared by the components: tags, JSON policy documents and the argument hook."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pulumi

ArgsT = TypeVar("ArgsT")
# Called with each component's argument dataclass before the component is built; returns the arguments to use.
# The deployed program passes none; tests pass one to model a change to the program's inputs.
ArgsHook = Callable[[Any], Any]


def adjusted(hook: ArgsHook | None, args: ArgsT) -> ArgsT:
    return hook(args) if hook is not None else args


def named(tags: Mapping[str, str], name: str) -> dict[str, str]:
    """The region's tags plus a Name tag."""
    return {**tags, "Name": name}


def policy_json(document: Any) -> pulumi.Output[str]:
    """A policy document (which may hold Outputs) as a JSON string Output."""
    return pulumi.Output.from_input(document).apply(lambda resolved: json.dumps(resolved, sort_keys=True))


def child(parent: pulumi.Resource, **extra: Any) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, **extra)
