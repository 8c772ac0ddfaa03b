"""`toolkit es`: index management (apply-templates), shard sizing (plan-indices) and snapshots (snapshot). Parses
and prints only; the logic lives in `toolkit.indices` (pure), `toolkit.targets.es_indices` and
`toolkit.targets.es_snapshots` (the cluster)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from toolkit.cli.common import (
    EXIT_HALTED,
    EXIT_REFUSED,
    EXIT_USAGE,
    ContextOption,
    EnvOption,
    NamespaceOption,
    OutputOption,
    check_output,
    die,
    document,
    environment,
    guarded,
)

app = typer.Typer(help="Elasticsearch index management: templates, rollover, shard sizing.", no_args_is_help=True)


@app.command("apply-templates")
def apply_templates(
    env: EnvOption = None,
    context: ContextOption = None,
    namespace: NamespaceOption = None,
    alias: Annotated[str, typer.Option(help="write alias; indices are ALIAS-000001, ...")] = "syslog-events",
    shards: Annotated[int, typer.Option(min=1, help="primary shards per index (see plan-indices)")] = 1,
    replicas: Annotated[int, typer.Option(min=0, help="replicas per shard")] = 1,
    rollover_size_gb: Annotated[int, typer.Option(help="roll over at this primary shard size (1-50)")] = 40,
    rollover_docs: Annotated[int, typer.Option(help="... or this many documents in a primary shard")] = 180_000_000,
    max_age_days: Annotated[int | None, typer.Option(help="... or this age (days)")] = None,
    delete_after_days: Annotated[int | None, typer.Option(help="ILM only: delete indices this old")] = None,
    refresh_interval: Annotated[str, typer.Option(help="index.refresh_interval")] = "30s",
    mode: Annotated[str, typer.Option(help="auto (detect ILM), ilm or alias")] = "auto",
    url: Annotated[str | None, typer.Option(help="Elasticsearch URL (instead of --env: the templates Job)")] = None,
    ca_file: Annotated[str | None, typer.Option(help="with --url: CA certificate file")] = None,
    username: Annotated[str | None, typer.Option(help="with --url: user name")] = None,
    password_file: Annotated[str | None, typer.Option(help="with --url: file holding the password")] = None,
    output: OutputOption = "table",
) -> None:
    """Install the index template and rollover policy, and bootstrap the write alias (idempotent). The cluster is
    the environment's (its access discovered from the deployed release), or the one given with --url."""
    check_output(output)
    if mode not in ("auto", "ilm", "alias"):
        die(EXIT_USAGE, f"error: --mode {mode!r} is not supported: use auto, ilm or alias")
    from toolkit import operations
    from toolkit.config.access import EsConnection
    from toolkit.indices import IndexLayout, RolloverPolicy

    try:
        policy = RolloverPolicy(rollover_size_gb, rollover_docs, max_age_days, delete_after_days)
        layout = IndexLayout(alias, shards, replicas, refresh_interval, policy)
    except ValueError as exc:
        die(EXIT_USAGE, f"error: {exc}")
    if url:
        connection = EsConnection(url=url, ca_file=ca_file, username=username, password_file=password_file)
        result = guarded(lambda: operations.apply_index_templates(None, connection, layout, mode))
    else:
        resolved = environment(env, context, namespace)
        result = guarded(lambda: operations.apply_index_templates(resolved, None, layout, mode))
    if output != "table":
        typer.echo(document(output, asdict(result)))
        return
    typer.echo(f"rollover mode: {result.mode}" + (" (ILM policy " + result.policy + ")" if result.policy else ""))
    for action in result.actions:
        typer.echo(f"  - {action}")
    typer.echo(f"write alias {result.write_alias} -> {result.write_index}")


@app.command("plan-indices")
def plan_indices_command(
    events_per_second: Annotated[float, typer.Option(help="sustained ingest rate")],
    event_bytes: Annotated[int, typer.Option(help="average event size in bytes (raw)")],
    retention_days: Annotated[int, typer.Option(help="days of data kept searchable")],
    replicas: Annotated[int, typer.Option(help="replicas per primary shard")] = 1,
    nodes: Annotated[int, typer.Option(help="data nodes holding these indices")] = 3,
    disk_per_node_gb: Annotated[float, typer.Option(help="disk per data node, GB")] = 1000,
    storage_ratio: Annotated[float, typer.Option(help="on-disk bytes per raw byte (measure: _cat/indices)")] = 1.0,
    output: OutputOption = "table",
) -> None:
    """Shard counts, rollover size and disk per node for an ingest rate, or a refusal that names the rule."""
    check_output(output)
    from toolkit.indices import IndexPlanInputs, PlanRefused, plan_indices

    inputs = IndexPlanInputs(
        events_per_second, event_bytes, retention_days, replicas, nodes, disk_per_node_gb, storage_ratio
    )
    try:
        plan = plan_indices(inputs)
    except PlanRefused as exc:
        lines = "\n".join(f"  - {reason}" for reason in exc.reasons)
        die(EXIT_REFUSED, f"refused: these inputs do not fit the shard-sizing rules:\n{lines}")
    if output != "table":
        typer.echo(document(output, asdict(plan)))
        return
    rows = [
        ("ingest per day (primary)", f"{plan.daily_primary_gb:,.1f} GB, {plan.docs_per_day:,} docs"),
        (
            "retained (primary / with replicas)",
            f"{plan.retained_primary_gb:,.1f} GB / {plan.retained_total_gb:,.1f} GB",
        ),
        ("primary shards per index", str(plan.primary_shards_per_index)),
        ("replicas", str(plan.replicas)),
        (
            "rollover at",
            f"max_primary_shard_size {plan.rollover_max_primary_shard_size_gb} GB or "
            f"max_primary_shard_docs {plan.rollover_max_primary_shard_docs:,}",
        ),
        ("expected shard size", f"{plan.expected_shard_gb:,.1f} GB"),
        ("rollovers per day", f"{plan.rollovers_per_day:,.2f}"),
        ("indices kept", str(plan.indices_kept)),
        ("shards in total / per node", f"{plan.total_shards:,} / {plan.shards_per_node:,} (limit 1,000)"),
        (
            "disk per node",
            f"{plan.disk_needed_per_node_gb:,.0f} GB needed of {inputs.disk_per_node_gb:,.0f} GB "
            f"({plan.disk_used_fraction:.0%} used by data)",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        typer.echo(f"{name:<{width}}  {value}")
    for warning in plan.warnings:
        typer.echo(f"note: {warning}")
    typer.echo(
        f"apply with: toolkit es apply-templates --shards {plan.primary_shards_per_index} "
        f"--replicas {plan.replicas} --rollover-size-gb {plan.rollover_max_primary_shard_size_gb}"
    )


@app.command("snapshot")
def snapshot_command(
    env: EnvOption = None,
    context: ContextOption = None,
    namespace: NamespaceOption = None,
    repository: Annotated[str, typer.Option(help="repository (deploy registers s3-snapshots)")] = "s3-snapshots",
    name: Annotated[str | None, typer.Option("--name", help="snapshot name (default snapshot-<UTC time>)")] = None,
    indices: Annotated[str | None, typer.Option(help="indices to include (default: all)")] = None,
    timeout: Annotated[float, typer.Option(min=1.0, help="seconds to wait for the snapshot")] = 3600.0,
    output: OutputOption = "table",
) -> None:
    """Take a snapshot of the environment's Elasticsearch into its repository, wait for it and report it."""
    check_output(output)
    from toolkit import operations

    resolved = environment(env, context, namespace)
    report = guarded(lambda: operations.take_snapshot(resolved, repository, name, indices, timeout))
    if output != "table":
        typer.echo(document(output, {**asdict(report), "ok": report.ok}))
    else:
        typer.echo(f"snapshot {report.repository}/{report.snapshot}: {report.state} in {report.seconds:.1f}s")
        typer.echo(
            f"  indices {len(report.indices)}, shards {report.shards_successful}/{report.shards_total} successful, "
            f"{report.shards_failed} failed"
        )
        for failure in report.failures:
            typer.echo(f"  failure: {failure}")
    if not report.ok:
        raise typer.Exit(EXIT_HALTED)
