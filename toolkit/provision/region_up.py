"""`toolkit region up`: from a region file to a platform that serves, as a sequence of named steps.

Steps, in order (`STEPS`); each looks at what exists before acting, so a rerun resumes where a run stopped:
1. compliance: the rules over what the program declares (mocked capture, offline); a violation stops before AWS
   is asked anything;
2. preflight: the account can host the region (toolkit.targets.aws: identity, opt-in, zones, quotas, state
   bucket versioning and SSE-KMS in the jurisdiction, keys);
3. preview: a Pulumi preview that saves an update plan into the region's state folder; replacements and
   deletions stop here unless allowed;
4. approve: the person (or `--yes` in CI) approves exactly this plan, identified by its digest; a preview with
   nothing to change is not asked about (skipped: what exists is what the program declares);
5. apply: `pulumi up --plan` with the approved plan file; the engine refuses any operation outside it, and the
   steps performed are compared with the approved ones afterwards (toolkit.provision.pulumi);
6. kubeconfig: the context `region:kubeContext` for the new cluster is written (merged) into the kubeconfig,
   from the stack's outputs; unchanged when it is already there;
7. deploy: the function passed in (`DeployFn`) installs or updates the platform (idempotent);
8. smoke: the function passed in (`SmokeFn`) proves the platform serves;
9. summary: every step's status, time and detail, and the stack's outputs.
Invariants: the first failing step stops the chain and is reported by name with how to resume (`UpFailed`);
nothing after it runs; steps before it are not undone (infrastructure stays, so the rerun's preview shows only
what is left). A step that raises is a failed step, never a traceback.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from toolkit.config.region import RegionConfig
from toolkit.provision.pulumi import ChangeSet

STEPS = ("compliance", "preflight", "preview", "approve", "apply", "kubeconfig", "deploy", "smoke")


@dataclass(frozen=True)
class StepOutcome:
    ok: bool
    detail: str
    lines: tuple[str, ...] = ()  # further lines to print under the step (violations, checks, hops)
    skipped: bool = False


class RegionStacksPort(Protocol):
    """What region_up needs of toolkit.provision.pulumi.RegionStacks."""

    def preview(self, plan_file: str | None = None) -> ChangeSet: ...

    def apply(
        self, approved: ChangeSet, on_output: Callable[[str], None] | None = None
    ) -> tuple[ChangeSet, dict[str, Any]]: ...

    def outputs(self) -> dict[str, Any]: ...


@dataclass
class UpContext:
    config: RegionConfig
    kubeconfig_path: Path
    state_dir: Path
    outputs: dict[str, Any] = field(default_factory=dict)
    changes: ChangeSet | None = None


StepFn = Callable[[UpContext], StepOutcome]
DeployFn = StepFn
SmokeFn = StepFn
Approver = Callable[[ChangeSet], bool]


@dataclass(frozen=True)
class StepRecord:
    name: str
    status: str  # done | skipped | failed | not run
    detail: str
    seconds: float = 0.0


@dataclass
class UpReport:
    region: str
    steps: list[StepRecord] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(s.status in ("done", "skipped") for s in self.steps) and len(self.steps) == len(STEPS)

    @property
    def failed(self) -> StepRecord | None:
        return next((s for s in self.steps if s.status == "failed"), None)


class UpFailed(RuntimeError):
    """A step failed: `step` names it, `resume` says how to go on."""

    def __init__(self, report: UpReport, step: str, detail: str, resume: str) -> None:
        self.report = report
        self.step = step
        self.detail = detail
        self.resume = resume
        super().__init__(f"region up {report.region} failed at step {step}: {detail}\nresume: {resume}")


def resume_hint(step: str, region: str) -> str:
    rerun = f"`toolkit region up {region}`"
    infrastructure_kept = (
        "the infrastructure already created stays, and the rerun's preview finds nothing left to change, so it goes "
        "straight on to"
    )
    return {
        "compliance": f"fix the violations (in stacks/Pulumi.{region}.yaml or the program), then rerun {rerun}",
        "preflight": f"fix the failed checks (`toolkit region preflight {region}` repeats them), then rerun {rerun}",
        "preview": f"nothing was changed; fix the cause above, then rerun {rerun}",
        "approve": f"nothing was changed; rerun {rerun} to preview again and approve (or --yes in CI)",
        "apply": (
            f"what the update created is recorded in the stack's state; rerun {rerun}: its preview shows only what "
            "is left, for approval"
        ),
        "kubeconfig": f"fix the kubeconfig file, then rerun {rerun}: {infrastructure_kept} the kubeconfig",
        "deploy": f"fix the cause, then rerun {rerun}: {infrastructure_kept} deploy and the smoke check",
        "smoke": (
            f"the platform is deployed but did not serve the probe; fix the hop named above, then rerun {rerun}: "
            f"{infrastructure_kept} deploy (no change) and the smoke check"
        ),
    }[step]


def default_kubeconfig_path(environ: dict[str, str] | None = None) -> Path:
    """The file kubectl writes: the first entry of $KUBECONFIG, else ~/.kube/config."""
    env = os.environ if environ is None else environ
    first = next((p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p), "")
    return Path(first).expanduser() if first else Path.home() / ".kube" / "config"


def write_kube_context(
    path: Path, context: str, cluster_name: str, endpoint: str, ca_data: str, aws_region: str
) -> bool:
    """Merge a context for an EKS cluster into the kubeconfig at `path` (created 0600 if absent); the user gets
    tokens from `aws eks get-token` for the cluster's region. Other entries and current-context are kept.
    Returns True when the file changed."""
    if not endpoint.startswith("https://") or not ca_data or not cluster_name:
        raise ValueError(
            f"the stack outputs do not describe a cluster (endpoint {endpoint!r}, certificate authority "
            f"{'present' if ca_data else 'missing'}, name {cluster_name!r}); check `toolkit region outputs`"
        )
    document: dict[str, Any] = {}
    if path.is_file():
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path} is not a kubeconfig (not a mapping); move it aside or fix it")
        document = loaded or {}
    before = yaml.safe_dump(document, sort_keys=True)
    document.setdefault("apiVersion", "v1")
    document.setdefault("kind", "Config")
    entries = {
        "clusters": {"name": context, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}},
        "users": {
            "name": context,
            "user": {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": "aws",
                    "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", aws_region],
                    "interactiveMode": "Never",
                }
            },
        },
        "contexts": {"name": context, "context": {"cluster": context, "user": context}},
    }
    for section, entry in entries.items():
        items = [item for item in document.get(section) or [] if item.get("name") != context]
        document[section] = [*items, entry]
    if yaml.safe_dump(document, sort_keys=True) == before:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.toolkit-tmp")
    temporary.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    temporary.chmod(0o600)
    temporary.replace(path)
    return True


def kubeconfig_step(ctx: UpContext) -> StepOutcome:
    out = ctx.outputs
    changed = write_kube_context(
        ctx.kubeconfig_path,
        ctx.config.kube_context,
        str(out.get("clusterName") or ""),
        str(out.get("clusterEndpoint") or ""),
        str(out.get("clusterCertificateAuthority") or ""),
        str(out.get("awsRegion") or ctx.config.aws_region),
    )
    where = f"context {ctx.config.kube_context} in {ctx.kubeconfig_path}"
    if changed:
        return StepOutcome(True, f"wrote {where} (cluster {out.get('clusterName')})")
    return StepOutcome(True, f"{where} already points at the cluster", skipped=True)


def region_up(
    config: RegionConfig,
    *,
    stacks: Callable[[], RegionStacksPort],
    compliance: StepFn,
    preflight: StepFn,
    approve: Approver,
    deploy: DeployFn,
    smoke: SmokeFn,
    kubeconfig_path: Path,
    state_dir: Path,
    allow_replace: bool = False,
    on_step: Callable[[str, StepOutcome], None] | None = None,
    on_output: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> UpReport:
    """Run the steps of the module docstring; raise UpFailed at the first failing step."""
    from toolkit.provision.pulumi import DestructiveChangeRefusedError

    report = UpReport(region=config.name)
    ctx = UpContext(config=config, kubeconfig_path=kubeconfig_path, state_dir=state_dir)
    port: list[RegionStacksPort] = []

    def the_stacks() -> RegionStacksPort:
        if not port:
            port.append(stacks())
        return port[0]

    def preview_step(ctx: UpContext) -> StepOutcome:
        ctx.state_dir.mkdir(parents=True, exist_ok=True)
        plan_file = ctx.state_dir / "plan.json"
        plan_file.unlink(missing_ok=True)
        changes = the_stacks().preview(str(plan_file))
        ctx.changes = changes
        summary = (
            f"{len(changes.creates)} to create, {len(changes.updates)} to update, {len(changes.replaces)} to "
            f"replace, {len(changes.deletes)} to delete, {changes.unchanged} unchanged"
        )
        if changes.destructive and not allow_replace:
            raise DestructiveChangeRefusedError(
                f"the plan replaces {len(changes.replaces)} and deletes {len(changes.deletes)} resource(s): "
                + ", ".join(f"{s.op} {s.type} {s.name}" for s in changes.destructive)
                + "; nothing was changed. Review `toolkit region plan` and pass --allow-replace to proceed"
            )
        return StepOutcome(True, f"{summary} (plan {changes.digest()})")

    def approve_step(ctx: UpContext) -> StepOutcome:
        changes = ctx.changes
        assert changes is not None
        if changes.empty:
            return StepOutcome(True, "nothing to change: what exists is what the program declares", skipped=True)
        if not approve(changes):
            return StepOutcome(False, f"plan {changes.digest()} was not approved")
        return StepOutcome(True, f"plan {changes.digest()} approved ({len(changes.changes)} change(s))")

    def apply_step(ctx: UpContext) -> StepOutcome:
        changes = ctx.changes
        assert changes is not None
        stacks_now = the_stacks()
        if changes.empty:
            ctx.outputs = dict(stacks_now.outputs())
            save_outputs(ctx)
            return StepOutcome(True, "nothing to apply", skipped=True)
        applied, outputs = stacks_now.apply(changes, on_output=on_output)
        ctx.outputs = dict(outputs)
        save_outputs(ctx)
        return StepOutcome(True, f"applied plan {changes.digest()}: {len(applied.changes)} change(s)")

    chain: list[tuple[str, StepFn]] = [
        ("compliance", compliance),
        ("preflight", preflight),
        ("preview", preview_step),
        ("approve", approve_step),
        ("apply", apply_step),
        ("kubeconfig", kubeconfig_step),
        ("deploy", deploy),
        ("smoke", smoke),
    ]
    for name, run in chain:
        started = clock()
        try:
            outcome = run(ctx)
        except Exception as error:  # a failing step is reported by name, never as a traceback
            outcome = StepOutcome(False, f"{type(error).__name__}: {error}")
        seconds = clock() - started
        status = "failed" if not outcome.ok else ("skipped" if outcome.skipped else "done")
        report.steps.append(StepRecord(name, status, outcome.detail, seconds))
        if on_step is not None:
            on_step(name, outcome)
        if not outcome.ok:
            for later, _ in chain[len(report.steps) :]:
                report.steps.append(StepRecord(later, "not run", f"after {name} failed"))
            report.outputs = ctx.outputs
            raise UpFailed(report, name, outcome.detail, resume_hint(name, config.name))
    report.outputs = ctx.outputs
    return report


# --------------------------------------------------------------------------------------------- the real steps


def compliance_step(stacks_dir: Path | None = None) -> StepFn:
    def run(ctx: UpContext) -> StepOutcome:
        from toolkit.provision.pulumi import check_region

        resources, violations = check_region(ctx.config, stacks_dir)
        if violations:
            return StepOutcome(
                False,
                f"{len(violations)} violation(s) in {len(resources)} declared resources",
                tuple(str(v) for v in violations),
            )
        return StepOutcome(True, f"all rules pass ({len(resources)} resources declared)")

    return run


def preflight_step(ctx: UpContext) -> StepOutcome:
    from toolkit.targets.aws import preflight, request_for

    checks = preflight(request_for(ctx.config)).checks
    lines = tuple(f"[{'skip' if c.skipped else ('ok' if c.ok else 'FAIL'):>4}] {c.name}: {c.detail}" for c in checks)
    failed = [c.name for c in checks if not c.ok]
    if failed:
        return StepOutcome(False, f"{len(failed)} check(s) failed: {', '.join(failed)}", lines)
    skipped = sum(1 for c in checks if c.skipped)
    return StepOutcome(
        True, f"{len(checks) - skipped} checks pass" + (f", {skipped} skipped" if skipped else ""), lines
    )


SAVED_OUTPUTS = ("clusterName", "kubeContext", "snapshotBucket", "snapshotBucketRegion", "snapshotWriterRoleArn")


def save_outputs(ctx: UpContext) -> None:
    """The stack outputs later commands read (the region's environment: its snapshot repository), saved next to
    the plan; no secret output is among them."""
    from toolkit.config.environments import STACK_OUTPUTS_FILE

    kept = {key: ctx.outputs[key] for key in SAVED_OUTPUTS if key in ctx.outputs}
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    target = ctx.state_dir / STACK_OUTPUTS_FILE
    scratch = target.with_suffix(".tmp")
    scratch.write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n")
    scratch.replace(target)


def deploy_with_toolkit(ctx: UpContext) -> StepOutcome:
    """`toolkit deploy --env <region>` (toolkit.provision.deploy.deploy_platform) as the deploy step."""
    from toolkit.config.environments import resolve
    from toolkit.provision.deploy import deploy_platform

    result = deploy_platform(resolve(ctx.config.name), check=False)
    charts = ", ".join(f"{c.release} {c.action or 'unchanged'}" for c in result.charts)
    if result.ok:
        return StepOutcome(True, f"deployed in {result.seconds:.0f}s: {charts or 'no chart reported'}")
    failures = tuple(f"{t.role}/{t.task}: {t.message}" for t in result.failures)
    return StepOutcome(False, f"{len(failures)} task(s) failed", failures)
