"""`toolkit upgrade plan|run|status|rollback|audit`."""

from __future__ import annotations

import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.cli import job
from toolkit.cli.common import (
    EXIT_CRASHED,
    EXIT_HALTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_STOPPED,
    EXIT_USAGE,
    EnvOption,
    OutputOption,
    ToOption,
    check_output,
    die,
    environment,
    err,
    guarded,
)
from toolkit.model.plan import UpgradeSettings

if TYPE_CHECKING:
    from toolkit.engine.executor import RunResult

app = typer.Typer(help="Plan, run, watch and roll back health-gated rolling upgrades.", no_args_is_help=True)
app.command("job")(job.command)

DEFAULTS = UpgradeSettings()  # every default below comes from the model's settings

ParallelOption = Annotated[
    str, typer.Option("--parallel", help="none, or auto: brokers that share no partition restart together")
]
MaxBatchOption = Annotated[int, typer.Option("--max-batch", help="cap on brokers per batch with --parallel auto")]
FinalizeOption = Annotated[
    bool,
    typer.Option("--finalize", help="raise Kafka metadata.version after the roll (ends binary rollback)"),
]
PaceOption = Annotated[float, typer.Option("--pace", help="seconds to wait between steps")]
GateTimeoutOption = Annotated[float, typer.Option("--gate-timeout", help="seconds a step may wait for its gates")]
StepTimeoutOption = Annotated[float, typer.Option("--step-timeout", help="seconds a member may take to recover")]
ConfirmOption = Annotated[float, typer.Option("--confirm", help="seconds a recovered member must stay healthy")]
PollOption = Annotated[float, typer.Option("--poll", help="seconds between observations while waiting")]
BudgetOption = Annotated[int, typer.Option("--restart-budget", help="restarts allowed per member in one run")]
LagOption = Annotated[int, typer.Option("--lag-bound", help="worker consumer lag under which a batch may proceed")]
InjectOption = Annotated[
    list[str] | None,
    typer.Option(
        "--inject",
        help="sim only, repeatable: never-ready=POD, unready=POD, slow-catchup=FACTOR, red-cluster, crash-after-step=K",
    ),
]
OPTION_OF = {
    "parallel": "--parallel",
    "max_batch": "--max-batch",
    "pace_seconds": "--pace",
    "gate_timeout": "--gate-timeout",
    "step_timeout": "--step-timeout",
    "confirm_seconds": "--confirm",
    "poll_interval": "--poll",
    "restart_budget": "--restart-budget",
    "lag_bound": "--lag-bound",
}


def settings_from(**given: Any) -> UpgradeSettings:
    """UpgradeSettings from the options given (the rest keep the model's defaults); every problem at once, exit 2."""
    settings = replace(DEFAULTS, **given)
    problems = settings.problems()
    if problems:
        named = {field: OPTION_OF.get(field, field) for field in UpgradeSettings.__dataclass_fields__}
        die(EXIT_USAGE, "error: " + "; ".join(f"{named[f]} {why.format(**named)}" for f, why in problems))
    return settings


@app.command()
def plan(
    env: EnvOption = None,
    to: ToOption = None,
    state: Annotated[Path | None, typer.Option("--state", help="plan from a state file instead of live state")] = None,
    output: OutputOption = "table",
    parallel: ParallelOption = DEFAULTS.parallel,
    max_batch: MaxBatchOption = DEFAULTS.max_batch,
    finalize: FinalizeOption = DEFAULTS.finalize,
) -> None:
    """Print the ordered steps of an upgrade, each with why it comes now and what blocks it. Changes nothing."""
    check_output(output)
    if state is not None and env is not None:
        die(
            EXIT_USAGE,
            "error: --state and --env conflict: a state file already says which environment it shows; give one of them",
        )
    settings = settings_from(parallel=parallel, max_batch=max_batch, finalize=finalize)
    from toolkit import operations
    from toolkit.cli import render

    targets = guarded(lambda: operations.parse_component_versions(list(to or [])))
    environment_ = None if state is not None else environment(env)
    result = guarded(lambda: operations.plan_upgrade(environment_, targets, settings, state))
    render.print_plan(result, output)
    raise typer.Exit(EXIT_REFUSED if result.refused else EXIT_OK)


class _StopFlag:
    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def install(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            err(f"{signal.Signals(signum).name}: stopping after the current step (send it again to abort now)")

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


def _finish(result: RunResult, output: str) -> None:
    from toolkit.cli import render

    render.print_result(result, output)
    code = {
        "completed": EXIT_OK,
        "halted": EXIT_HALTED,
        "refused": EXIT_REFUSED,
        "stopped": EXIT_STOPPED,
    }.get(result.outcome, EXIT_HALTED)
    raise typer.Exit(code)


@app.command()
def run(
    env: EnvOption = None,
    to: ToOption = None,
    output: OutputOption = "table",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan from live state; change nothing")] = False,
    parallel: ParallelOption = DEFAULTS.parallel,
    max_batch: MaxBatchOption = DEFAULTS.max_batch,
    finalize: FinalizeOption = DEFAULTS.finalize,
    pace: PaceOption = DEFAULTS.pace_seconds,
    gate_timeout: GateTimeoutOption = DEFAULTS.gate_timeout,
    step_timeout: StepTimeoutOption = DEFAULTS.step_timeout,
    confirm: ConfirmOption = DEFAULTS.confirm_seconds,
    poll: PollOption = DEFAULTS.poll_interval,
    restart_budget: BudgetOption = DEFAULTS.restart_budget,
    lag_bound: LagOption = DEFAULTS.lag_bound,
    inject: InjectOption = None,
    unsafe_skip_gates: Annotated[
        bool,
        typer.Option("--unsafe-skip-gates", help="NEGATIVE CONTROL ONLY (sim, local): restart without any gate"),
    ] = False,
) -> None:
    """Run an upgrade: re-check the gates on live state before every step, act, wait, and resume from observed
    state when run again."""
    check_output(output)
    if dry_run and inject:
        die(
            EXIT_USAGE,
            "error: --dry-run and --inject conflict: a dry run changes nothing, so nothing can fail",
        )
    settings = settings_from(
        parallel=parallel,
        max_batch=max_batch,
        finalize=finalize,
        pace_seconds=pace,
        gate_timeout=gate_timeout,
        step_timeout=step_timeout,
        confirm_seconds=confirm,
        poll_interval=poll,
        restart_budget=restart_budget,
        lag_bound=lag_bound,
        skip_gates=unsafe_skip_gates,
    )
    from toolkit import operations
    from toolkit.cli import render

    targets = guarded(lambda: operations.parse_component_versions(list(to or [])))
    resolved = environment(env)
    if dry_run:
        result_plan = guarded(lambda: operations.plan_upgrade(resolved, targets, settings))
        render.print_plan(result_plan, output)
        raise typer.Exit(EXIT_REFUSED if result_plan.refused else EXIT_OK)
    if unsafe_skip_gates:
        err("WARNING: --unsafe-skip-gates: every health gate is OFF; this run exists to prove the harness sees loss")
    from toolkit.targets.sim import OrchestratorCrash

    stop = _StopFlag()
    stop.install()
    view = render.LiveView(resolved.simulated, enabled=output == "table")
    try:
        with view:
            result = guarded(
                lambda: operations.run_upgrade(
                    resolved,
                    targets,
                    settings,
                    list(inject or []),
                    on_event=view,
                    stop_requested=stop,
                )
            )
    except OrchestratorCrash as crash:
        die(EXIT_CRASHED, f"orchestrator crashed (injected): {crash}. Run the same command again to resume.")
    _finish(result, output)


@app.command()
def status(
    env: EnvOption = None,
    output: OutputOption = "table",
    audit_lines: Annotated[int, typer.Option("--audit-lines", help="recent audit entries to show")] = 10,
) -> None:
    """Where an upgrade stands: spec vs running versions per component, the lease, recent audit entries."""
    check_output(output)
    from toolkit import operations
    from toolkit.cli import render

    resolved = environment(env)
    result = guarded(lambda: operations.upgrade_status(resolved, audit_lines))
    render.print_status(result, output)


@app.command()
def rollback(
    env: EnvOption = None,
    component: Annotated[
        list[str] | None,
        typer.Option("--component", "-c", help="component to roll back (default: all recorded)"),
    ] = None,
    output: OutputOption = "table",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the rollback plan; change nothing")] = False,
    step_timeout: StepTimeoutOption = DEFAULTS.step_timeout,
    gate_timeout: GateTimeoutOption = DEFAULTS.gate_timeout,
    poll: PollOption = DEFAULTS.poll_interval,
    confirm: ConfirmOption = DEFAULTS.confirm_seconds,
) -> None:
    """Return components to their previous version where that is still safe, through the same gates; refuse with
    the reason where it is not (Kafka after metadata.version was raised, Elasticsearch after a newer node joined)."""
    check_output(output)
    settings = settings_from(
        gate_timeout=gate_timeout, step_timeout=step_timeout, confirm_seconds=confirm, poll_interval=poll
    )
    from toolkit import catalog, operations
    from toolkit.cli import render
    from toolkit.model import Plan

    names = list(component or [])
    unknown = [c for c in names if c not in catalog.load().components]
    if unknown:
        die(
            EXIT_USAGE,
            f"error: unknown component {unknown[0]!r} (known: {', '.join(catalog.load().components)})",
        )
    resolved = environment(env)
    stop = _StopFlag()
    stop.install()
    targets, outcome = guarded(
        lambda: operations.run_rollback(resolved, names, settings, stop_requested=stop, dry_run=dry_run)
    )
    err("rolling back to " + ", ".join(f"{c}={v}" for c, v in targets.items()))
    if isinstance(outcome, Plan):
        render.print_plan(outcome, output)
        raise typer.Exit(EXIT_REFUSED if outcome.refused else EXIT_OK)
    _finish(outcome, output)


@app.command()
def audit(env: EnvOption = None, output: OutputOption = "table") -> None:
    """Print the append-only audit trail kept with the platform: when, who, what, why, result."""
    check_output(output)
    import json

    from toolkit import operations
    from toolkit.cli import render

    resolved = environment(env)
    trail = guarded(lambda: operations.audit_trail(resolved))
    if output == "json":
        json.dump(trail, sys.stdout, indent=2)
        print()
        return
    for entry in trail:
        print(render.format_audit(entry))
