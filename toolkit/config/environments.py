"""Environments: one name, one file that says where a platform lives.

Resolution of `--env NAME` (the first match wins):
1. `$TOOLKIT_ENVIRONMENTS_DIR/NAME.yaml`: a custom environment (e.g. a kubeconfig context, or test endpoints);
2. the built-in `sim`, `local` and `kind` (files beside this module, in `environments/`);
3. `stacks/Pulumi.NAME.yaml`: an AWS region, whose file is also the region's Pulumi stack configuration.

With no `--env`, `$TOOLKIT_ENV` is used, else `sim`. Everything the toolkit keeps for an environment on this
machine (the simulated platform, caches) lives under `$TOOLKIT_STATE_DIR` (default `~/.local/state/toolkit`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from toolkit.config.platform import PlatformSpec

BUILTIN_DIR = Path(__file__).with_name("environments")
NAME_RULE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
Kind = Literal["sim", "local", "kind", "kube"]


class EnvironmentError_(ValueError):
    """An environment that cannot be resolved or read."""


class Endpoints(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kafka_bootstrap: str | None = None
    elasticsearch_url: str | None = None
    ca_file: str | None = None
    username_env: str | None = None  # name of the environment variable that holds the user name
    password_env: str | None = None  # ... and the password (never the secret itself)
    api_key_env: str | None = None


class Environment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    kind: Kind
    description: str = ""
    kube_context: str | None = None
    kubeconfig: str | None = None
    platform: PlatformSpec = Field(default_factory=PlatformSpec)
    endpoints: Endpoints = Field(default_factory=Endpoints)
    sim: dict[str, float] = Field(default_factory=dict, description="simulation parameters (sim and local)")
    source: str = ""

    @property
    def simulated(self) -> bool:
        return self.kind == "sim"

    def state_dir(self) -> Path:
        return state_root() / self.name


def state_root() -> Path:
    root = os.environ.get("TOOLKIT_STATE_DIR")
    return Path(root) if root else Path.home() / ".local" / "state" / "toolkit"


def stacks_dir() -> Path:
    from toolkit.config.stacks import StacksDirNotFoundError, resolve_stacks_dir

    try:
        return resolve_stacks_dir()
    except StacksDirNotFoundError as exc:
        raise EnvironmentError_(str(exc)) from None


def default_name() -> str:
    return os.environ.get("TOOLKIT_ENV") or "sim"


def _custom_dir() -> Path | None:
    value = os.environ.get("TOOLKIT_ENVIRONMENTS_DIR")
    return Path(value) if value else None


def known() -> list[str]:
    names = {p.stem for p in BUILTIN_DIR.glob("*.yaml")}
    custom = _custom_dir()
    if custom and custom.is_dir():
        names |= {p.stem for p in custom.glob("*.yaml")}
    stacks = stacks_dir()
    if stacks.is_dir():
        names |= {p.name[len("Pulumi.") : -len(".yaml")] for p in stacks.glob("Pulumi.*.yaml")}
    return sorted(names)


def _read(path: Path, name: str) -> Environment:
    try:
        data: Any = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise EnvironmentError_(f"environment file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise EnvironmentError_(f"environment file {path} must hold a mapping with at least `kind:`")
    data.setdefault("name", name)
    data["source"] = str(path)
    try:
        env = Environment.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors())
        raise EnvironmentError_(f"environment file {path} is invalid: {problems}") from None
    if env.name != name:
        raise EnvironmentError_(f"environment file {path} names itself {env.name!r}; rename the file or the name")
    return env


def resolve(name: str | None = None) -> Environment:
    name = name or default_name()
    if not NAME_RULE.match(name):
        raise EnvironmentError_(
            f"environment name {name!r} is invalid: use lower-case letters, digits and dashes (e.g. eu-west-1)"
        )
    custom = _custom_dir()
    if custom is not None and (custom / f"{name}.yaml").is_file():
        return _read(custom / f"{name}.yaml", name)
    builtin = BUILTIN_DIR / f"{name}.yaml"
    if builtin.is_file():
        return _read(builtin, name)
    region_file = stacks_dir() / f"Pulumi.{name}.yaml"
    if region_file.is_file():
        return _from_region(name, region_file)
    raise EnvironmentError_(
        f"unknown environment {name!r}: known environments are {', '.join(known())}. Create a region with "
        f"`toolkit region new {name} --like <existing>`, or describe a cluster in "
        "$TOOLKIT_ENVIRONMENTS_DIR/NAME.yaml (kind: kube, kube_context: ...)"
    )


def _from_region(name: str, path: Path) -> Environment:
    from toolkit.config import region  # the region schema is only needed for region environments

    try:
        cfg = region.load_region(name, path.parent)
    except ValueError as exc:
        raise EnvironmentError_(str(exc)) from None
    return Environment(
        name=name,
        kind="kube",
        description=f"AWS region {name} (EKS)",
        kube_context=cfg.kube_context,
        platform=cfg.platform,
        source=str(path),
    )
