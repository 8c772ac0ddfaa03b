"""`toolkit region ...`: create, check, preflight, plan, apply, inspect and destroy one AWS region.

The CLI parses and prints; the work is in toolkit.config.region (schema, new regions), toolkit.config.residency
(regions, jurisdictions), toolkit.provision.pulumi (mocked capture, Automation API), toolkit.provision.region_up
(the `up` steps), toolkit.compliance (rules) and toolkit.targets.aws (preflight). Heavy libraries (pulumi,
pulumi_aws, boto3) are imported inside the command bodies only, so `toolkit --help` stays fast.

The stacks folder is `--stacks-dir`, else `$TOOLKIT_STACKS_DIR`, else the project root found from the working
directory (toolkit.config.stacks). Exit codes (toolkit.cli.common): 0 done; 1 a step after apply failed (`up` at
apply/kubeconfig/deploy/smoke: rerun to resume), or `drift` found a difference; 2 bad input; 3 refused before anything
changed (`check` violations, `preflight` failures, `plan` blocked by compliance, `up` at compliance, preflight,
preview or approval).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer

from toolkit.cli.common import EXIT_HALTED as EXIT_BLOCKED
from toolkit.cli.common import EXIT_REFUSED, OutputOption, check_output, document
from toolkit.cli.common import EXIT_USAGE as EXIT_INVALID

app = typer.Typer(help="Provision and manage the platform's AWS regions (one Pulumi stack per region).")


BEFORE_ANY_CHANGE = ("compliance", "preflight", "preview", "approve")


@app.callback()
def main(
    ctx: typer.Context,
    stacks_dir: Path | None = typer.Option(
        None,
        "--stacks-dir",
        help="the stacks/ folder (holding Pulumi.yaml); default $TOOLKIT_STACKS_DIR, else found from the working "
        "directory upwards",
    ),
) -> None:
    ctx.obj = {"stacks_dir": stacks_dir}


def _fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _folder(ctx: typer.Context) -> Path:
    from toolkit.config.stacks import StacksDirNotFoundError, resolve_stacks_dir

    try:
        return resolve_stacks_dir((ctx.obj or {}).get("stacks_dir"))
    except StacksDirNotFoundError as error:
        _fail(str(error))


def _load(ctx: typer.Context, name: str) -> Any:
    from toolkit.config.region import load_region

    try:
        return load_region(name, _folder(ctx))
    except ValueError as error:
        _fail(str(error))


def _run_check(config: Any, folder: Path, output: str = "table") -> bool:
    """Print the compliance result; True when the region passes."""
    from toolkit.provision.pulumi import check_region

    resources, violations = check_region(config, folder)
    if output != "table":
        data = {"region": config.name, "resources": len(resources), "violations": [str(v) for v in violations]}
        typer.echo(document(output, {**data, "ok": not violations}))
        return not violations
    if violations:
        typer.secho(
            f"compliance: {len(violations)} violation(s) in region {config.name} "
            f"({len(resources)} resources declared):",
            fg=typer.colors.RED,
            bold=True,
        )
        for violation in violations:
            typer.echo(f"  {violation}")
        return False
    typer.secho(
        f"compliance: region {config.name} passes all rules ({len(resources)} resources declared)",
        fg=typer.colors.GREEN,
    )
    return True


def _stacks(config: Any, folder: Path) -> Any:
    from toolkit.provision.pulumi import PulumiCliMissingError, RegionStacks

    try:
        return RegionStacks(config, folder)
    except PulumiCliMissingError as error:
        _fail(str(error))


def _print_changes(changes: Any) -> None:
    typer.echo(
        f"plan {changes.digest()}: {len(changes.creates)} to create, {len(changes.updates)} to update, "
        f"{len(changes.replaces)} to REPLACE, {len(changes.deletes)} to DELETE, {changes.unchanged} unchanged"
    )
    for step in changes.creates:
        typer.echo(f"  + create  {step.type} {step.name}")
    for step in changes.updates:
        typer.echo(f"  ~ update  {step.type} {step.name} ({', '.join(step.diffs) or 'properties'})")
    for step in changes.replaces:
        typer.secho(f"  !! REPLACE {step.type} {step.name} ({', '.join(step.diffs)})", fg=typer.colors.RED, bold=True)
    for step in changes.deletes:
        typer.secho(f"  !! DELETE  {step.type} {step.name}", fg=typer.colors.RED, bold=True)
    if changes.destructive:
        typer.secho(
            "replacements/deletions above destroy live resources; `up` needs --allow-replace to go ahead",
            fg=typer.colors.RED,
            bold=True,
        )


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@app.command()
def new(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="AWS region name of the new region, e.g. eu-central-2"),
    like: str = typer.Option(..., "--like", help="existing region whose sizing and topology to copy"),
    api_allowlist: str | None = typer.Option(
        None,
        "--api-allowlist",
        help="REQUIRED: public egress blocks (CIDR,CIDR) allowed to reach the Kubernetes API, or `none` for a "
        "private-only endpoint; never copied from the template",
    ),
    residency: str | None = typer.Option(
        None, help="residency policy; default: the region's own jurisdiction's (eu for EU members, else e.g. ch, gb)"
    ),
    state_backend: str | None = typer.Option(None, help="s3://BUCKET?region=REGION for the new region's state"),
    secrets_provider: str | None = typer.Option(None, help="awskms://alias/NAME?region=REGION for its secrets"),
    zones: str | None = typer.Option(None, help="comma-separated availability zones (default: asked or assumed)"),
    accept_two_zones: bool = typer.Option(
        False, "--accept-two-zones", help="accept a region with 2 zones (a zone outage then stops ingestion)"
    ),
    discover: bool = typer.Option(
        False, "--discover", help="ask AWS (these credentials) for the region's zones and opt-in status"
    ),
) -> None:
    """Write stacks/Pulumi.NAME.yaml from an existing region: the region's own residency, the next free block."""
    from toolkit.config.region import (
        RegionConfigError,
        ZoneDiscovery,
        derive_region,
        read_document,
        stack_file,
        used_address_indices,
        write_new_region,
    )
    from toolkit.config.residency import load_catalog

    folder = _folder(ctx)
    if stack_file(name, folder).exists():
        _fail(f"region {name} already exists ({stack_file(name, folder)}); edit it, or pick another name")
    template = _load(ctx, like)
    allowlist: tuple[str, ...] | None = None
    if api_allowlist is not None:
        allowlist = () if api_allowlist.strip().lower() == "none" else _split(api_allowlist)
    discovery = None
    if discover:
        from toolkit.targets.aws import discover_region

        found = discover_region(name)
        discovery = ZoneDiscovery(found.zones, found.opt_in_status, found.error)
    try:
        created = derive_region(
            name,
            like,
            read_document(stack_file(like, folder)),
            used_indices=used_address_indices(folder),
            api_allowlist=allowlist,
            residency=residency,
            state_backend=state_backend,
            secrets_provider=secrets_provider,
            zones=_split(zones) if zones else None,
            accept_two_zones=accept_two_zones,
            discovery=discovery,
        )
        path = write_new_region(created, folder, template_name=like)
    except RegionConfigError as error:
        _fail(f"{error}\nnothing was written")
    config = created.config
    catalog = load_catalog()
    typer.echo(f"wrote {path}")
    typer.echo(
        f"  residency {config.residency}: {catalog.describe_policy(config.residency)}; {name} lies in "
        f"{catalog.where(name)} (the template {like} is {template.residency})"
    )
    typer.echo(
        f"  address block {config.address_block} (index {config.address_index}), "
        f"{len(config.availability_zones)} zones: {', '.join(config.availability_zones)}"
    )
    cidrs = ", ".join(config.api_public_access_cidrs) or "none (private endpoint only)"
    typer.echo(f"  API allowlist: {cidrs}")
    for note in created.notes:
        typer.echo(f"  {note}")
    if created.secrets_to_set:
        typer.secho("  secrets NOT copied from the template; set them anew for this region:", fg=typer.colors.YELLOW)
        for key in created.secrets_to_set:
            typer.echo(f"    - {key}   (pulumi config set --secret {key.split(' ')[0]} ... --stack {name})")
    if created.unchecked:
        how = "`toolkit region preflight " + name + "` checks them against AWS"
        typer.secho(f"  not checked (offline; {how}):", fg=typer.colors.YELLOW)
        for item in created.unchecked:
            typer.echo(f"    - {item}")
    typer.echo(f"next: toolkit region check {name} && toolkit region preflight {name}")


@app.command()
def check(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="region name (stacks/Pulumi.NAME.yaml)"),
    output: OutputOption = "table",
) -> None:
    """Run the compliance rules over what the program declares for the region (offline, Pulumi mocks)."""
    check_output(output)
    config = _load(ctx, name)
    if not _run_check(config, _folder(ctx), output):
        raise typer.Exit(EXIT_REFUSED)


@app.command()
def preflight(
    ctx: typer.Context, name: str = typer.Argument(..., help="region name"), output: OutputOption = "table"
) -> None:
    """Check the AWS account can host the region (identity, opt-in, zones, quotas, state bucket, keys)."""
    check_output(output)
    from toolkit.targets.aws import preflight as run_preflight
    from toolkit.targets.aws import request_for

    config = _load(ctx, name)
    report = run_preflight(request_for(config))
    if output != "table":
        checks = [{"name": c.name, "ok": c.ok, "skipped": c.skipped, "detail": c.detail} for c in report.checks]
        typer.echo(document(output, {"region": name, "ok": report.ok, "checks": checks}))
        if not report.ok:
            raise typer.Exit(EXIT_REFUSED)
        return
    for item in report.checks:
        mark = "skip" if item.skipped else ("ok" if item.ok else "FAIL")
        color = typer.colors.RED if not item.ok else None
        typer.secho(f"  [{mark:>4}] {item.name}: {item.detail}", fg=color)
    if not report.ok:
        typer.secho(f"preflight: {len(report.failures())} check(s) failed for {name}", fg=typer.colors.RED, bold=True)
        raise typer.Exit(EXIT_REFUSED)
    typer.secho(f"preflight: region {name} is ready", fg=typer.colors.GREEN)


@app.command()
def plan(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="region name"),
    to: list[str] | None = typer.Option(
        None,
        "--to",
        help="kubernetes=VERSION: the infrastructure changes of a Kubernetes upgrade, before and after the node "
        "roll (offline, under Pulumi mocks: no Pulumi CLI or AWS call)",
    ),
    output: OutputOption = "table",
) -> None:
    """Compliance check, then a Pulumi preview; replacements and deletions are shown loudly. With `--to
    kubernetes=VERSION`, the upgrade's infrastructure changes instead, worked out offline."""
    check_output(output)
    config = _load(ctx, name)
    folder = _folder(ctx)
    if to:
        if output != "table":
            _fail(f"region plan {name} --to: the upgrade's steps print as a table only; drop -o {output}")
        _plan_kubernetes(config, folder, to)
        return
    if not _run_check(config, folder, output):
        raise typer.Exit(EXIT_REFUSED)
    changes = _stacks(config, folder).preview()
    if output == "table":
        _print_changes(changes)
        return

    def steps(kind: tuple[Any, ...]) -> list[dict[str, Any]]:
        return [{"name": s.name, "type": s.type, "urn": s.urn, "diffs": list(s.diffs)} for s in kind]

    typer.echo(
        document(
            output,
            {
                "region": name,
                "digest": changes.digest(),
                "create": steps(changes.creates),
                "update": steps(changes.updates),
                "replace": steps(changes.replaces),
                "delete": steps(changes.deletes),
                "unchanged": changes.unchanged,
                "destructive": bool(changes.destructive),
            },
        )
    )


def _kubernetes_target(config: Any, to: list[str]) -> str:
    from toolkit.catalog import load as components
    from toolkit.catalog import parse_version

    items = [t.partition("=") for t in to]
    if len(items) != 1 or items[0][0].strip() != "kubernetes" or not items[0][2].strip():
        _fail("region plan --to takes exactly one kubernetes=VERSION (the only component the region's stack carries)")
    target = items[0][2].strip()
    spec = components().component("kubernetes")
    if target not in spec.versions or target == "1.20":
        known = ", ".join(v for v in spec.sorted_versions() if v != "1.20")
        _fail(f"--to kubernetes={target}: not an EKS version in the catalog (known: {known})")
    current = parse_version(config.kubernetes_version)
    wanted = parse_version(target)
    if wanted < current:
        _fail(f"--to kubernetes={target}: region {config.name} runs {config.kubernetes_version}; no downgrade")
    if wanted[1] - current[1] > (spec.rules.max_minor_step or 1):
        step = f"{current[0]}.{current[1] + 1}"
        _fail(
            f"--to kubernetes={target}: the control plane moves one minor at a time: plan --to kubernetes={step} first",
            code=EXIT_REFUSED,
        )
    return target


def _plan_kubernetes(config: Any, folder: Path, to: list[str]) -> None:
    from toolkit.provision.pulumi import preview_kubernetes_upgrade

    target = _kubernetes_target(config, to)
    preview = preview_kubernetes_upgrade(config, target, folder)
    file = f"stacks/Pulumi.{config.name}.yaml"
    typer.echo(
        f"region {config.name}: Kubernetes {preview.current} -> {target} (offline: what the stack declares, under "
        "Pulumi mocks; no Pulumi CLI or AWS call)"
    )
    if preview.violations:
        typer.secho(f"compliance: {len(preview.violations)} violation(s) during the roll:", fg=typer.colors.RED)
        for violation in preview.violations:
            typer.echo(f"  {violation}")
    else:
        typer.secho("compliance: the configuration the roll runs in passes all rules", fg=typer.colors.GREEN)
    versions = ", ".join(f'"{v}"' for v in preview.before_roll.node_versions)
    typer.echo(
        f'1. start: in {file} set region:kubernetesVersion: "{target}" and region:nodeGroupVersions: '
        f"[{versions}], then `toolkit region up {config.name}`:"
    )
    _print_declared(preview.to_start)
    typer.echo(
        f"2. roll: `toolkit upgrade run --env {config.name} --to kubernetes={target}`: the control plane if step 1 "
        f"has not moved it (EKS API, until ACTIVE), the add-ons, then node by node: a {target} node surged into its "
        "zone's new group, the old node cordoned and drained pod by pod behind the platform's gates, its instance "
        "terminated with a capacity decrement"
    )
    typer.echo(f'3. finish: set region:nodeGroupVersions: ["{target}"], then `toolkit region up {config.name}`:')
    _print_declared(preview.to_finish)


def _print_declared(changes: Any) -> None:
    if not changes:
        typer.echo("   (no change)")
    for change in changes:
        if change.action == "update":
            typer.echo(f"   ~ update  {change.type} {change.name} ({', '.join(change.keys)})")
        elif change.action == "create":
            typer.echo(f"   + create  {change.type} {change.name}")
        else:
            typer.secho(f"   - delete  {change.type} {change.name}", fg=typer.colors.YELLOW)


def _smoke_resolver(path: Path | None) -> Any:
    """Read and check the smoke endpoints file now (bad input changes nothing); resolve it at the smoke step."""
    import os

    import yaml

    from toolkit.rehearsal.smoke import SmokeTargetError, target_from_document

    if path is None:
        _fail(
            "`region up` proves the platform serves with a smoke check and needs its endpoints: pass "
            "--smoke-endpoints FILE (syslog host:port, Kafka bootstrap, Elasticsearch URL, CA files, events topic, "
            "write alias; format in the README). Nothing was changed"
        )
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        target = target_from_document(document, dict(os.environ))
    except (OSError, yaml.YAMLError, SmokeTargetError) as error:
        _fail(f"--smoke-endpoints {path}: {error}. Nothing was changed")
    return lambda ctx: target


@app.command()
def up(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="region name"),
    yes: bool = typer.Option(False, "--yes", help="approve the previewed plan without asking (CI)"),
    allow_replace: bool = typer.Option(
        False, "--allow-replace", help="go ahead even if resources are replaced or deleted"
    ),
    smoke_endpoints: Path | None = typer.Option(
        None, "--smoke-endpoints", help="YAML file: the endpoints the smoke check probes (see the README)"
    ),
    smoke_timeout: float = typer.Option(60.0, "--smoke-timeout", min=1.0, help="seconds per smoke hop"),
    kubeconfig: Path | None = typer.Option(
        None, "--kubeconfig", help="kubeconfig to write the context into (default: $KUBECONFIG's first, ~/.kube/config)"
    ),
) -> None:
    """compliance -> preflight -> preview -> approve -> apply exactly that plan -> kubeconfig -> deploy -> smoke."""
    import click

    from toolkit.config.environments import region_up_state
    from toolkit.provision import region_up as chain
    from toolkit.provision.pulumi import PulumiCliMissingError, RegionStacks, require_pulumi_cli
    from toolkit.rehearsal.smoke import smoke_with

    config = _load(ctx, name)
    folder = _folder(ctx)
    try:
        require_pulumi_cli()
    except PulumiCliMissingError as error:
        _fail(str(error))
    resolve_target = _smoke_resolver(smoke_endpoints)

    def approve(changes: Any) -> bool:
        _print_changes(changes)
        if yes:
            typer.echo(f"approved by --yes: plan {changes.digest()}")
            return True
        try:
            return bool(typer.confirm(f"apply exactly plan {changes.digest()} to region {name}?", default=False))
        except click.exceptions.Abort:
            return False

    def on_step(step: str, outcome: Any) -> None:
        mark = "FAIL" if not outcome.ok else ("skip" if outcome.skipped else "ok")
        color = typer.colors.RED if not outcome.ok else (None if outcome.skipped else typer.colors.GREEN)
        number = chain.STEPS.index(step) + 1
        typer.secho(f"[{number}/{len(chain.STEPS)}] {step:<10} {mark:<4} {outcome.detail}", fg=color)
        for line in outcome.lines:
            typer.echo(f"      {line}")

    try:
        report = chain.region_up(
            config,
            stacks=lambda: RegionStacks(config, folder),
            compliance=chain.compliance_step(folder),
            preflight=chain.preflight_step,
            approve=approve,
            deploy=chain.deploy_with_toolkit,
            smoke=smoke_with(resolve_target, hop_timeout=smoke_timeout),
            kubeconfig_path=kubeconfig or chain.default_kubeconfig_path(),
            state_dir=region_up_state(name),
            allow_replace=allow_replace,
            on_step=on_step,
            on_output=lambda line: typer.echo(line, nl=False),
        )
    except chain.UpFailed as failure:
        _summary(failure.report)
        _fail(
            f"region up {name} failed at step {failure.step}: {failure.detail}\nresume: {failure.resume}",
            EXIT_REFUSED if failure.step in BEFORE_ANY_CHANGE else EXIT_BLOCKED,
        )
    _summary(report)
    typer.secho(f"region {name} is up and serves", fg=typer.colors.GREEN, bold=True)


def _summary(report: Any) -> None:
    typer.echo(f"summary of region up {report.region}:")
    for step in report.steps:
        typer.echo(f"  {step.name:<10} {step.status:<8} {step.seconds:7.1f}s  {step.detail}")
    for key in ("clusterName", "kubeContext", "snapshotBucket", "snapshotWriterRoleArn", "alarmTopicArn"):
        if key in report.outputs:
            typer.echo(f"  {key}: {report.outputs[key]}")


@app.command()
def destroy(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="region name"),
    include_protected: bool = typer.Option(
        False, "--include-protected", help="also delete KMS keys and the snapshot bucket (unprotects them first)"
    ),
    yes: bool = typer.Option(False, "--yes", help="do not ask for confirmation"),
) -> None:
    """Destroy the region's infrastructure; KMS keys and the snapshot bucket stay unless --include-protected."""
    config = _load(ctx, name)
    stacks = _stacks(config, _folder(ctx))
    what = (
        "EVERYTHING, including KMS keys and Elasticsearch snapshots"
        if include_protected
        else "all but protected resources"
    )
    if not yes and not typer.confirm(f"destroy {what} in region {name}?"):
        _fail("nothing destroyed", EXIT_BLOCKED)
    kept = stacks.destroy(include_protected=include_protected, on_output=lambda line: typer.echo(line, nl=False))
    typer.echo(f"destroyed region {name}")
    for urn in kept:
        typer.echo(f"  kept (protected): {urn}")


@app.command()
def outputs(ctx: typer.Context, name: str = typer.Argument(..., help="region name")) -> None:
    """Print the region stack's outputs as JSON (secrets masked)."""
    from toolkit.provision.pulumi import outputs_as_json

    config = _load(ctx, name)
    typer.echo(outputs_as_json(_stacks(config, _folder(ctx)).outputs()))


@app.command()
def drift(ctx: typer.Context, name: str = typer.Argument(..., help="region name")) -> None:
    """Compare the recorded state with AWS (refresh preview; nothing is written). Exit 1 on drift."""
    config = _load(ctx, name)
    drifted = _stacks(config, _folder(ctx)).drift()
    if not drifted:
        typer.secho(f"no drift in region {name}", fg=typer.colors.GREEN)
        return
    typer.secho(f"drift in region {name}: {len(drifted)} resource(s)", fg=typer.colors.RED, bold=True)
    for step in drifted:
        typer.echo(f"  {step.op} {step.type} {step.name} ({', '.join(step.diffs)})")
    raise typer.Exit(EXIT_BLOCKED)
