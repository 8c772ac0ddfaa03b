"""`toolkit region ...`: create, check, preflight, plan, apply, inspect and destroy one AWS region.

The CLI parses and prints; the work is in toolkit.config.region (schema, new regions), toolkit.provision.pulumi
(mocked capture, Automation API), toolkit.compliance (rules) and toolkit.targets.aws (preflight). Heavy
libraries (pulumi, pulumi_aws, boto3) are imported inside the command bodies only, so `toolkit --help` stays
fast. `plan` and `up` run the compliance check first and stop on any violation.
"""

from __future__ import annotations

from typing import Any, NoReturn

import typer

app = typer.Typer(help="Provision and manage the platform's AWS regions (one Pulumi stack per region).")

EXIT_INVALID = 2
EXIT_BLOCKED = 1


def _fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _load(name: str) -> Any:
    from toolkit.config.region import load_region

    try:
        return load_region(name)
    except ValueError as error:
        _fail(str(error))


def _run_check(config: Any) -> bool:
    """Print the compliance result; True when the region passes."""
    from toolkit.provision.pulumi import check_region

    resources, violations = check_region(config)
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


def _stacks(config: Any) -> Any:
    from toolkit.provision.pulumi import PulumiCliMissingError, RegionStacks

    try:
        return RegionStacks(config)
    except PulumiCliMissingError as error:
        _fail(str(error))


def _print_changes(changes: Any) -> None:
    typer.echo(
        f"plan: {len(changes.creates)} to create, {len(changes.updates)} to update, "
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


@app.command()
def new(
    name: str = typer.Argument(..., help="AWS region name of the new region, e.g. eu-central-1"),
    like: str = typer.Option(..., "--like", help="existing region whose configuration to copy"),
    residency: str | None = typer.Option(None, help="residency of the new region (eu, us); default: the template's"),
    state_backend: str | None = typer.Option(None, help="s3://BUCKET?region=REGION for the new region's state"),
    secrets_provider: str | None = typer.Option(None, help="awskms://alias/NAME?region=REGION for its secrets"),
    zones: str | None = typer.Option(None, help="comma-separated availability zones (default: <name>a,b,c)"),
) -> None:
    """Write stacks/Pulumi.NAME.yaml from an existing region: next free address block, residency checked."""
    from toolkit.config.region import (
        RegionConfigError,
        derive_region,
        read_document,
        stack_file,
        used_address_indices,
        write_new_region,
    )

    if stack_file(name).exists():
        _fail(f"region {name} already exists ({stack_file(name)}); edit it, or pick another name")
    _load(like)
    try:
        created = derive_region(
            name,
            like,
            read_document(stack_file(like)),
            used_indices=used_address_indices(),
            residency=residency,
            state_backend=state_backend,
            secrets_provider=secrets_provider,
            zones=tuple(z.strip() for z in zones.split(",")) if zones else None,
        )
        path = write_new_region(created, template_name=like)
    except RegionConfigError as error:
        _fail(f"{error}\nnothing was written")
    config = created.config
    typer.echo(f"wrote {path}")
    typer.echo(f"  residency {config.residency}, address block {config.address_block} (index {config.address_index})")
    for note in created.notes:
        typer.echo(f"  {note}")
    if created.secrets_to_set:
        typer.secho("  secrets NOT copied from the template; set them anew for this region:", fg=typer.colors.YELLOW)
        for key in created.secrets_to_set:
            typer.echo(f"    - {key}   (pulumi config set --secret {key.split(' ')[0]} ... --stack {name})")
    typer.echo(f"next: toolkit region check {name} && toolkit region preflight {name}")


@app.command()
def check(name: str = typer.Argument(..., help="region name (stacks/Pulumi.NAME.yaml)")) -> None:
    """Run the compliance rules over what the program declares for the region (offline, Pulumi mocks)."""
    config = _load(name)
    if not _run_check(config):
        raise typer.Exit(EXIT_BLOCKED)


@app.command()
def preflight(name: str = typer.Argument(..., help="region name")) -> None:
    """Check the AWS account can host the region (identity, region, zones, quotas, state bucket, keys)."""
    from toolkit.targets.aws import preflight as run_preflight
    from toolkit.targets.aws import request_for

    config = _load(name)
    report = run_preflight(request_for(config))
    for item in report.checks:
        mark = "skip" if item.skipped else ("ok" if item.ok else "FAIL")
        color = typer.colors.RED if not item.ok else None
        typer.secho(f"  [{mark:>4}] {item.name}: {item.detail}", fg=color)
    if not report.ok:
        typer.secho(f"preflight: {len(report.failures())} check(s) failed for {name}", fg=typer.colors.RED, bold=True)
        raise typer.Exit(EXIT_BLOCKED)
    typer.secho(f"preflight: region {name} is ready", fg=typer.colors.GREEN)


@app.command()
def plan(name: str = typer.Argument(..., help="region name")) -> None:
    """Compliance check, then a Pulumi preview; replacements and deletions are shown loudly."""
    config = _load(name)
    if not _run_check(config):
        raise typer.Exit(EXIT_BLOCKED)
    _print_changes(_stacks(config).plan())


@app.command()
def up(
    name: str = typer.Argument(..., help="region name"),
    allow_replace: bool = typer.Option(
        False, "--allow-replace", help="go ahead even if resources are replaced or deleted"
    ),
) -> None:
    """Compliance check, preview, apply exactly the previewed plan, then deploy the platform and smoke-check it."""
    from toolkit.provision.pulumi import DestructiveChangeRefusedError

    config = _load(name)
    if not _run_check(config):
        raise typer.Exit(EXIT_BLOCKED)
    stacks = _stacks(config)
    try:
        changes, outputs = stacks.up(allow_replace=allow_replace, on_output=lambda line: typer.echo(line, nl=False))
    except DestructiveChangeRefusedError as error:
        _fail(str(error), EXIT_BLOCKED)
    _print_changes(changes)
    typer.echo(f"infrastructure of {name} is up; outputs: {', '.join(sorted(outputs))}")
    from toolkit.config.environments import resolve
    from toolkit.provision.deploy import deploy_platform

    result = deploy_platform(resolve(name), check=False)
    typer.echo(str(result))


@app.command()
def destroy(
    name: str = typer.Argument(..., help="region name"),
    include_protected: bool = typer.Option(
        False, "--include-protected", help="also delete KMS keys and the snapshot bucket (unprotects them first)"
    ),
    yes: bool = typer.Option(False, "--yes", help="do not ask for confirmation"),
) -> None:
    """Destroy the region's infrastructure; KMS keys and the snapshot bucket stay unless --include-protected."""
    config = _load(name)
    stacks = _stacks(config)
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
def outputs(name: str = typer.Argument(..., help="region name")) -> None:
    """Print the region stack's outputs as JSON (secrets masked)."""
    from toolkit.provision.pulumi import outputs_as_json

    config = _load(name)
    typer.echo(outputs_as_json(_stacks(config).outputs()))


@app.command()
def drift(name: str = typer.Argument(..., help="region name")) -> None:
    """Compare the recorded state with AWS (refresh preview; nothing is written). Exit 1 on drift."""
    config = _load(name)
    drifted = _stacks(config).drift()
    if not drifted:
        typer.secho(f"no drift in region {name}", fg=typer.colors.GREEN)
        return
    typer.secho(f"drift in region {name}: {len(drifted)} resource(s)", fg=typer.colors.RED, bold=True)
    for step in drifted:
        typer.echo(f"  {step.op} {step.type} {step.name} ({', '.join(step.diffs)})")
    raise typer.Exit(EXIT_BLOCKED)
