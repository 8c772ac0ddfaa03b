"""Pulumi adapter: run the region program under mocks (to capture what it declares) and drive real stacks
through the Automation API.

Capture (`capture_region`): the stacks/ program is imported from the stacks folder and run in-process under
`pulumi.runtime.set_mocks`; every registration is recorded as a `DeclaredResource` (type, name, inputs,
provider, protect). Mock ids are `<name>#<Type>`, unique per resource, so references between resources stay
resolvable by the compliance rules. Nothing leaves the process; no CLI, no credentials.

Stacks (`RegionStacks`): one Pulumi stack per region in `stacks/`, its state in the region's S3 backend
(`PULUMI_BACKEND_URL`) and its secrets under the region's `awskms://` provider. `preview(plan_file)` runs a
preview that saves a Pulumi update plan (`--save-plan`) and classifies its steps (`classify_steps`); the
ChangeSet's `digest` identifies exactly those steps. `apply(plan_file, approved)` runs `up --plan plan_file`,
so the engine itself refuses any operation the approved preview did not contain, and then compares the steps
the update performed with the approved ones (`PlanDeviationError` names any difference): what was shown and
approved is what ran. The order preview -> approval -> apply is toolkit.provision.region_up's.
Destroy keeps protected resources (KMS keys, snapshot bucket) unless `include_protected`, which first clears
the protect flags in the stack's state through export/import.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from toolkit.compliance import DeclaredResource, Violation, evaluate
from toolkit.config.region import RegionConfig, stacks_folder

PROJECT_NAME = "region"
PROGRAM_MODULE = "platform_region.program"
MOCK_ACCOUNT_ID = "123456789012"


# --------------------------------------------------------------------------------------------- capture


def _mock_outputs(type_token: str, name: str, resource_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs a real provider would compute that the program reads back."""
    short = type_token.rsplit(":", 1)[-1]
    state: dict[str, Any] = {"arn": f"arn:aws:mock:::{short}/{name}", **inputs}
    if type_token == "aws:eks/cluster:Cluster":
        state.update(
            endpoint=f"https://{name}.eks.mock",
            certificateAuthority={"data": "bW9jay1jYQ=="},
            identities=[{"oidcs": [{"issuer": f"https://oidc.eks.mock/id/{name}"}]}],
        )
    elif type_token == "aws:kms/key:Key":
        state["keyId"] = resource_id
    elif type_token == "aws:ec2/launchTemplate:LaunchTemplate":
        state["latestVersion"] = 1
    elif type_token in ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"):
        state["bucket"] = f"{inputs.get('bucketPrefix', name)}mock"
    elif type_token == "aws:eks/nodeGroup:NodeGroup":
        state["nodeGroupName"] = f"{inputs.get('nodeGroupNamePrefix', name)}mock"
    return state


def capture(program: Callable[[], object], stack: str, project: str = PROJECT_NAME) -> list[DeclaredResource]:
    """Run `program` under Pulumi mocks and return what it registered, in registration order."""
    import pulumi
    from pulumi.runtime import settings
    from pulumi.runtime import stack as runtime_stack
    from pulumi.runtime.sync_await import _sync_await

    records: list[dict[str, Any]] = []
    protected: set[tuple[str, str]] = set()

    class RecordingMocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            resource_id = f"{args.name}#{args.typ.rsplit(':', 1)[-1]}"
            provider_id = args.provider.rsplit("::", 1)[-1] if args.provider else None
            state = _mock_outputs(args.typ, args.name, resource_id, dict(args.inputs))
            records.append(
                {
                    "type": args.typ,
                    "name": args.name,
                    "id": resource_id,
                    "inputs": args.inputs,
                    "provider_id": provider_id,
                    "arn": state.get("arn"),
                }
            )
            return resource_id, state

        def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
            if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
                return {
                    "accountId": MOCK_ACCOUNT_ID,
                    "arn": f"arn:aws:iam::{MOCK_ACCOUNT_ID}:user/mock",
                    "userId": "mock",
                    "id": MOCK_ACCOUNT_ID,
                }
            return {}

    def record_protect(args: pulumi.ResourceTransformationArgs) -> None:
        if args.opts is not None and args.opts.protect:
            protected.add((args.type_, args.name))
        return None

    settings.ROOT.set(None)
    pulumi.runtime.set_mocks(RecordingMocks(), project=project, stack=stack, preview=False)
    pulumi.runtime.register_stack_transformation(record_protect)
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    try:
        _sync_await(runtime_stack.run_pulumi_func(lambda: _run_sync(program)))
    finally:
        settings.ROOT.set(None)
    return [
        DeclaredResource(
            type=r["type"],
            name=r["name"],
            id=r["id"],
            inputs=r["inputs"],
            provider_id=r["provider_id"],
            protect=(r["type"], r["name"]) in protected,
            arn=r["arn"],
        )
        for r in records
    ]


def _run_sync(program: Callable[[], object]) -> None:
    program()


def load_program(stacks_dir: Path | None = None) -> Any:
    """Import the stacks/ program package (`platform_region.program`) from the stacks folder."""
    folder = stacks_folder(stacks_dir).resolve()
    package = PROGRAM_MODULE.split(".", 1)[0]
    loaded = sys.modules.get(PROGRAM_MODULE)
    if loaded is not None and Path(str(loaded.__file__)).resolve().parents[1] != folder:
        # Imported earlier from another stacks folder: forget it, so this folder's program runs.
        for module in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
            del sys.modules[module]
    if str(folder) in sys.path:
        sys.path.remove(str(folder))
    sys.path.insert(0, str(folder))
    return importlib.import_module(PROGRAM_MODULE)


def capture_region(
    config: RegionConfig, stacks_dir: Path | None = None, hook: Callable[[Any], Any] | None = None
) -> list[DeclaredResource]:
    """What the stacks/ program declares for `config` (hook: replace component arguments, for tests)."""
    program = load_program(stacks_dir)
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    return capture(lambda: program.declare_region(config, hook), stack=config.name)


def check_region(
    config: RegionConfig, stacks_dir: Path | None = None
) -> tuple[list[DeclaredResource], list[Violation]]:
    resources = capture_region(config, stacks_dir)
    return resources, evaluate(resources, config.residency)


# --------------------------------------------------------------------------------------------- stacks


class PulumiCliMissingError(RuntimeError):
    """The Automation API drives the `pulumi` CLI, and there is none on PATH."""


class DestructiveChangeRefusedError(RuntimeError):
    """A plan replaces or deletes resources and `allow_replace` was not given."""


class PlanDeviationError(RuntimeError):
    """An update did something other than the approved plan, or its plan file is gone."""


def pulumi_sdk_version() -> str:
    return metadata.version("pulumi")


def require_pulumi_cli() -> str:
    path = shutil.which("pulumi")
    if path is None:
        version = pulumi_sdk_version()
        raise PulumiCliMissingError(
            "the Pulumi CLI is not installed: no `pulumi` on PATH. `toolkit region plan|up|destroy|outputs|drift` "
            "drive it through the Automation API. Install it with "
            f"`curl -fsSL https://get.pulumi.com | sh -s -- --version {version}` "
            "(or `brew install pulumi/tap/pulumi`), then make sure ~/.pulumi/bin is on PATH. "
            "`toolkit region new`, `check` and `preflight` work without it."
        )
    return path


@dataclass(frozen=True)
class Step:
    op: str
    urn: str
    type: str
    diffs: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


REPLACE_OPS = frozenset({"replace", "create-replacement", "delete-replaced", "discard-replaced"})
DELETE_OPS = frozenset({"delete", "discard"})


@dataclass(frozen=True)
class ChangeSet:
    creates: tuple[Step, ...] = ()
    updates: tuple[Step, ...] = ()
    replaces: tuple[Step, ...] = ()
    deletes: tuple[Step, ...] = ()
    unchanged: int = 0
    plan_file: str | None = None

    @property
    def destructive(self) -> tuple[Step, ...]:
        return self.replaces + self.deletes

    @property
    def changes(self) -> tuple[Step, ...]:
        return self.creates + self.updates + self.replaces + self.deletes

    @property
    def empty(self) -> bool:
        return not self.changes

    def digest(self) -> str:
        """A short fingerprint of exactly these changes (operation, resource, changed properties)."""
        lines = sorted(f"{s.op} {s.urn} {','.join(sorted(s.diffs))}" for s in self.changes)
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]

    def keys(self) -> set[tuple[str, str]]:
        """(kind of change, URN) of every change: what an update may do under this plan."""
        kinds = (
            ("create", self.creates),
            ("update", self.updates),
            ("replace", self.replaces),
            ("delete", self.deletes),
        )
        return {(kind, step.urn) for kind, steps in kinds for step in steps}


def classify_steps(steps: Iterable[Step]) -> ChangeSet:
    """Group preview steps; a resource replaced shows once under replaces, whatever sub-steps it emits."""
    creates: list[Step] = []
    updates: list[Step] = []
    replaces: dict[str, Step] = {}
    deletes: list[Step] = []
    unchanged = 0
    for step in steps:
        if step.op in REPLACE_OPS:
            replaces.setdefault(step.urn, step)
        elif step.op in DELETE_OPS:
            deletes.append(step)
        elif step.op == "create":
            creates.append(step)
        elif step.op == "update":
            updates.append(step)
        elif step.op == "same":
            unchanged += 1
    replaced = set(replaces)
    return ChangeSet(
        creates=tuple(s for s in creates if s.urn not in replaced),
        updates=tuple(updates),
        replaces=tuple(replaces.values()),
        deletes=tuple(s for s in deletes if s.urn not in replaced),
        unchanged=unchanged,
    )


@dataclass
class _StepRecorder:
    steps: list[Step] = field(default_factory=list)

    def __call__(self, event: Any) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is None or pre.metadata is None:
            return
        meta = pre.metadata
        if meta.type == "pulumi:pulumi:Stack":
            return
        op = meta.op.value if hasattr(meta.op, "value") else str(meta.op)
        self.steps.append(Step(op=op, urn=meta.urn, type=meta.type, diffs=tuple(meta.diffs or ())))


class RegionStacks:
    """The region's Pulumi stack through the Automation API (needs the Pulumi CLI)."""

    def __init__(self, config: RegionConfig, stacks_dir: Path | None = None) -> None:
        require_pulumi_cli()
        from pulumi import automation as auto

        self.config = config
        self.stacks_dir = stacks_folder(stacks_dir).resolve()
        options = auto.LocalWorkspaceOptions(
            work_dir=str(self.stacks_dir),
            env_vars={"PULUMI_BACKEND_URL": config.state_backend},
            secrets_provider=config.secrets_provider,
        )
        self.stack = auto.create_or_select_stack(stack_name=config.name, work_dir=str(self.stacks_dir), opts=options)

    def preview(self, plan_file: str | None = None) -> ChangeSet:
        """Preview the region; with `plan_file`, Pulumi saves the update plan there (`--save-plan`)."""
        recorder = _StepRecorder()
        self.stack.preview(diff=True, on_event=recorder, plan=plan_file)
        changes = classify_steps(recorder.steps)
        return ChangeSet(**{**changes.__dict__, "plan_file": plan_file})

    plan = preview

    def apply(
        self, approved: ChangeSet, on_output: Callable[[str], None] | None = None
    ) -> tuple[ChangeSet, dict[str, Any]]:
        """`up --plan` with the approved preview's plan file; raise PlanDeviationError if it did otherwise."""
        if not approved.plan_file or not Path(approved.plan_file).is_file():
            raise PlanDeviationError(
                f"region {self.config.name}: the approved plan file {approved.plan_file} is missing; nothing was "
                "applied. Rerun `toolkit region up` to preview and approve again"
            )
        recorder = _StepRecorder()
        result = self.stack.up(plan=approved.plan_file, on_output=on_output, on_event=recorder)
        applied = classify_steps(recorder.steps)
        unexpected = applied.keys() - approved.keys()
        missing = approved.keys() - applied.keys()
        if unexpected or missing:
            raise PlanDeviationError(
                f"region {self.config.name}: the update did not match the approved plan {approved.digest()}: "
                + "; ".join(
                    [f"not approved: {kind} {urn.rsplit('::', 1)[-1]}" for kind, urn in sorted(unexpected)]
                    + [f"approved but not done: {kind} {urn.rsplit('::', 1)[-1]}" for kind, urn in sorted(missing)]
                )
                + ". Review `toolkit region plan` and the stack's history (`pulumi stack history`)"
            )
        return applied, {key: value.value for key, value in result.outputs.items()}

    def outputs(self) -> dict[str, Any]:
        return {key: ("[secret]" if value.secret else value.value) for key, value in self.stack.outputs().items()}

    def drift(self) -> list[Step]:
        """Resources whose real state differs from the recorded state (a refresh preview; nothing is written)."""
        recorder = _StepRecorder()
        self.stack.preview_refresh(on_event=recorder)
        return [s for s in recorder.steps if s.op in DELETE_OPS or s.op == "update" or (s.op == "refresh" and s.diffs)]

    def protected_resources(self) -> list[str]:
        deployment = self.stack.export_stack()
        resources = (deployment.deployment or {}).get("resources", [])
        return [r["urn"] for r in resources if r.get("protect")]

    def unprotect_all(self) -> list[str]:
        """Clear every protect flag in the stack's state (export, edit, import); return the URNs changed."""
        deployment = self.stack.export_stack()
        changed = []
        for resource in (deployment.deployment or {}).get("resources", []):
            if resource.get("protect"):
                resource["protect"] = False
                changed.append(resource["urn"])
        if changed:
            self.stack.import_stack(deployment)
        return changed

    def destroy(self, include_protected: bool = False, on_output: Callable[[str], None] | None = None) -> list[str]:
        """Destroy the region; protected resources stay unless `include_protected`. Returns URNs kept."""
        if include_protected:
            self.unprotect_all()
            self.stack.destroy(on_output=on_output)
            return []
        kept = self.protected_resources()
        self.stack.destroy(exclude_protected=True, on_output=on_output)
        return kept


def outputs_as_json(outputs: dict[str, Any]) -> str:
    return json.dumps(outputs, indent=2, sort_keys=True, default=str)


# --------------------------------------------------------------------------------------------- Kubernetes upgrades


@dataclass(frozen=True)
class DeclaredChange:
    """One difference between what the program declares for two configurations of a region (offline)."""

    action: str  # create | update | delete
    type: str
    name: str
    keys: tuple[str, ...] = ()  # the inputs that differ (update)


def declared_diff(before: Iterable[DeclaredResource], after: Iterable[DeclaredResource]) -> list[DeclaredChange]:
    """Creates, updates (with the inputs that differ) and deletes between two captures, by (type, name)."""
    old = {(r.type, r.name): r for r in before}
    new = {(r.type, r.name): r for r in after}
    out: list[DeclaredChange] = []
    for key in new.keys() - old.keys():
        out.append(DeclaredChange("create", *key))
    for key in old.keys() - new.keys():
        out.append(DeclaredChange("delete", *key))
    for key in old.keys() & new.keys():
        a, b = _normal(old[key].inputs), _normal(new[key].inputs)
        changed = tuple(sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)))
        if changed:
            out.append(DeclaredChange("update", *key, keys=changed))
    order = {"update": 0, "create": 1, "delete": 2}
    return sorted(out, key=lambda c: (order[c.action], c.type, c.name))


def _normal(inputs: Any) -> dict[str, str]:
    return {k: json.dumps(v, sort_keys=True, default=str) for k, v in dict(inputs).items()}


@dataclass(frozen=True)
class KubernetesUpgradePreview:
    """What a Kubernetes upgrade changes in a region's infrastructure, in its two `region up` moments."""

    region: str
    current: str
    target: str
    before_roll: RegionConfig  # control plane at the target, both node group generations
    after_roll: RegionConfig  # only the target's node groups
    to_start: list[DeclaredChange]
    to_finish: list[DeclaredChange]
    violations: list[Violation]


def kubernetes_upgrade_configs(config: RegionConfig, target: str) -> tuple[RegionConfig, RegionConfig]:
    """The region's configuration during a roll to `target` (the control plane at `target`, node groups of the old
    and the new version) and after it (only the new version's)."""
    old = [v for v in config.node_versions if v != target][:1]
    during = config.model_copy(update={"kubernetes_version": target, "node_group_versions": (*old, target)})
    after = config.model_copy(update={"kubernetes_version": target, "node_group_versions": (target,)})
    return during, after


def preview_kubernetes_upgrade(
    config: RegionConfig, target: str, stacks_dir: Path | None = None
) -> KubernetesUpgradePreview:
    """Offline (Pulumi mocks): what `toolkit region up` changes to start a roll to `target`, and to finish it; the
    compliance rules over the configuration the roll runs in."""
    during, after = kubernetes_upgrade_configs(config, target)
    now = capture_region(config, stacks_dir)
    rolling = capture_region(during, stacks_dir)
    done = capture_region(after, stacks_dir)
    return KubernetesUpgradePreview(
        region=config.name,
        current=config.kubernetes_version,
        target=target,
        before_roll=during,
        after_roll=after,
        to_start=declared_diff(now, rolling),
        to_finish=declared_diff(rolling, done),
        violations=evaluate(rolling, config.residency),
    )
