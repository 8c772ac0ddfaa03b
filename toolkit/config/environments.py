"""Environments: one name, one file that says where a platform lives.

Resolution of `--env NAME` (the first match wins):
1. `$TOOLKIT_ENVIRONMENTS_DIR/NAME.yaml`: a custom environment (e.g. a kubeconfig context, or test endpoints);
2. the built-in `sim`, `local` and `kind` (files beside this module, in `environments/`);
3. `stacks/Pulumi.NAME.yaml`: an AWS region, whose file is also the region's Pulumi stack configuration.

With no `--env`, `$TOOLKIT_ENV` is used, else `sim`. Everything the toolkit keeps for an environment on this
machine (the simulated platform, caches) lives under `$TOOLKIT_STATE_DIR` (default `~/.local/state/toolkit`).
"""

from __future__ import annotations

import json
import os
import re
from ipaddress import ip_network
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from toolkit.config.access import Access
from toolkit.config.platform import NodePoolSpec, PlatformSpec, SnapshotSpec
from toolkit.config.wiring import Wiring, wiring_for
from toolkit.errors import UsageError

BUILTIN_DIR = Path(__file__).with_name("environments")
NAME_RULE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
Kind = Literal["sim", "local", "kind", "kube"]


class EnvironmentError_(UsageError):
    """An environment that cannot be resolved or read."""


class Environment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    kind: Kind
    description: str = ""
    kube_context: str | None = None
    kubeconfig: str | None = None
    platform: PlatformSpec = Field(default_factory=PlatformSpec)
    access: Access = Field(default_factory=Access)
    sim: dict[str, float] = Field(default_factory=dict, description="simulation parameters (sim and local)")
    eks_cluster: str = Field("", description="a region's EKS cluster (its node rolls go through the EKS API)")
    aws_region: str = Field("", description="the AWS region of `eks_cluster`")
    source: str = ""

    @property
    def simulated(self) -> bool:
        """The one answer to "is what the engine gates on modelled?": the whole platform on `sim`, the multi-node
        Kafka/Elasticsearch data plane on `local` (its Kubernetes side is real). Every output built on it says so."""
        return self.kind in ("sim", "local")

    @property
    def wiring(self) -> Wiring:
        """Service names, Secrets and identities of this environment's platform (toolkit.config.wiring)."""
        spec = self.platform
        return wiring_for(
            spec.namespace,
            spec.kafka.client_authentication,
            spec.kafka.combined,
            tuple(s.name for s in spec.elasticsearch.node_sets),
        )

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


# Who may send syslog when an environment file does not say (platform.workers.syslog_sources): the networks its kind
# of cluster puts senders on. kind's nodes live on Docker's bridge networks and NodePort traffic keeps its source
# (externalTrafficPolicy Local); the local cluster's pods are in 10.128.0.0/9 and this machine is on loopback. A
# region defaults to its own address block (_from_region); a `kube` cluster has no default: its file must list them.
SYSLOG_SOURCES_BY_KIND: dict[str, tuple[str, ...]] = {
    "kind": ("172.16.0.0/12",),
    "local": ("10.0.0.0/8", "127.0.0.0/8"),
}


def _with_default_sources(env: Environment) -> Environment:
    workers = env.platform.workers
    if workers.syslog_sources or env.kind not in SYSLOG_SOURCES_BY_KIND:
        return env
    workers = workers.model_copy(
        update={"syslog_sources": tuple(ip_network(c) for c in SYSLOG_SOURCES_BY_KIND[env.kind])}
    )
    return env.model_copy(update={"platform": env.platform.model_copy(update={"workers": workers})})


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
    return _with_default_sources(env)


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


def with_cluster(env: Environment, context: str | None = None, namespace: str | None = None) -> Environment:
    """`env` with kubectl's `--context` (the kubeconfig context) and `--namespace` (the platform's namespace) applied;
    refused for the simulated environment, which has neither."""
    if context is None and namespace is None:
        return env
    if env.kind == "sim":
        given = " and ".join(f for f, v in (("--context", context), ("--namespace", namespace)) if v is not None)
        raise EnvironmentError_(
            f"environment {env.name} is simulated (kind sim): it has no cluster, so {given} cannot apply; drop it, or "
            "pick an environment of kind local, kind or kube"
        )
    update: dict[str, Any] = {}
    if context is not None:
        update["kube_context"] = context
    if namespace is not None:
        if not NAME_RULE.match(namespace):
            raise EnvironmentError_(
                f"--namespace {namespace!r} is not a Kubernetes namespace name: lower-case letters, digits and dashes"
            )
        update["platform"] = env.platform.model_copy(update={"namespace": namespace})
    return env.model_copy(update=update)


def from_document(document: dict[str, Any]) -> Environment:
    """The Environment that `resolve` produced, from its JSON form (`model_dump(mode="json")`): how a child process
    (an Ansible module, an in-cluster orchestrator) receives the environment resolved once by its parent."""
    try:
        return Environment.model_validate(document)
    except ValidationError as exc:
        raise EnvironmentError_(f"environment document is invalid: {exc}") from None


STACK_OUTPUTS_FILE = "stack-outputs.json"  # written by `toolkit region up` after apply, in its state folder


def region_up_state(name: str) -> Path:
    """Where `toolkit region up` keeps a region's approved plan and the stack outputs it saved."""
    return state_root() / name / "region-up"


def stack_outputs_path(name: str) -> Path:
    return region_up_state(name) / STACK_OUTPUTS_FILE


def snapshots_from_outputs(outputs: dict[str, Any]) -> SnapshotSpec | None:
    """The snapshot repository a region's stack declared (outputs snapshotBucket, snapshotBucketRegion,
    snapshotWriterRoleArn); None when the stack has none."""
    keys = ("snapshotBucket", "snapshotBucketRegion", "snapshotWriterRoleArn")
    if not all(outputs.get(key) for key in keys):
        return None
    return SnapshotSpec(
        bucket=str(outputs["snapshotBucket"]),
        bucket_region=str(outputs["snapshotBucketRegion"]),
        writer_role_arn=str(outputs["snapshotWriterRoleArn"]),
    )


def _from_region(name: str, path: Path) -> Environment:
    from toolkit.config import region  # the region schema is only needed for region environments

    try:
        cfg = region.load_region(name, path.parent)
    except ValueError as exc:
        raise EnvironmentError_(str(exc)) from None
    platform = cfg.platform
    # Kubernetes itself: the control plane's minor and the node groups come from the region's own keys (one source)
    kubernetes = platform.kubernetes.model_copy(
        update={
            "version": cfg.kubernetes_version,
            "node_pools": tuple(
                NodePoolSpec(role=role, per_zone=max(1, g.desired_per_zone), max_per_zone=g.max_per_zone)
                for role, g in cfg.node_groups.items()
            ),
            "node_selector": platform.kubernetes.node_selector
            or ("" if platform.kubernetes.dedicated else "platform.role"),
        }
    )
    platform = platform.model_copy(update={"kubernetes": kubernetes})
    if not platform.workers.syslog_sources:  # senders inside the region's own network, unless the file says otherwise
        workers = platform.workers.model_copy(update={"syslog_sources": (cfg.address_block,)})
        platform = platform.model_copy(update={"workers": workers})
    outputs_file = stack_outputs_path(name)
    if platform.elasticsearch.snapshots is None and outputs_file.is_file():
        try:
            snapshots = snapshots_from_outputs(json.loads(outputs_file.read_text()))
        except (ValueError, ValidationError) as exc:
            raise EnvironmentError_(
                f"{outputs_file}: the stack outputs `toolkit region up` saved are unreadable ({exc}); delete the "
                f"file and rerun `toolkit region up {name}`"
            ) from None
        if snapshots is not None:
            es = platform.elasticsearch.model_copy(update={"snapshots": snapshots})
            platform = platform.model_copy(update={"elasticsearch": es})
    return Environment(
        name=name,
        kind="kube",
        description=f"AWS region {name} (EKS)",
        kube_context=cfg.kube_context,
        platform=platform,
        eks_cluster=cfg.cluster_name,
        aws_region=cfg.aws_region,
        source=str(path),
    )
