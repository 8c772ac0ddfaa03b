"""`toolkit upgrade plan|run|status|rollback|audit|pause|resume|abort`."""

from __future__ import annotations

import signal
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
    ContextOption,
    EnvOption,
    NamespaceOption,
    OutputOption,
    ToOption,
    check_output,
    complete_component,
    die,
    document,
    environment,
    err,
    guarded,
)
from toolkit.model.plan import UpgradeSettings

if TYPE_CHECKING:
    from toolkit.engine.executor import Event, RunResult

app = typer.Typer(help="Plan, run, watch and roll back health-gated rolling upgrades.", no_args_is_help=True)
app.command("job")(job.command)

DEFAULTS = UpgradeSettings()  # every default below comes from the model's settings

ParallelOption = Annotated[
    str,
    typer.Option(
        "--parallel",
        help="none, or auto: brokers that share no partition restart together (kubernetes: nodes whose brokers "
        "share no partition and data nodes no shard are replaced together)",
    ),
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
        help="sim only, repeatable: never-ready=POD, unready=POD, slow-catchup=FACTOR, recovering=POD:SECONDS, "
        "terminating=POD:SECONDS, readiness-fails=POD:SECONDS, red-cluster, crash-after-step=K, "
        "node-never-ready[=ZONE], pdb-blocks=WORKLOAD:SECONDS, slow-drain=FACTOR (applied now, also to a platform "
        "that has been running, or refused)",
    ),
]
AcceptOption = Annotated[
    list[str] | None,
    typer.Option(
        "--accept-unavailable-index",
        help="INDEX[,INDEX...]: Elasticsearch indices with 0 replicas you accept being unavailable while the node "
        "holding each shard restarts (otherwise the plan refuses them)",
    ),
]
RunOutputOption = Annotated[
    str, typer.Option("--output", "-o", help="table, json (one document at the end) or jsonl (one event per line)")
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
    "accept_unavailable_indices": "--accept-unavailable-index",
}
MetricsPortOption = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        help="serve the run's Prometheus metrics on this port while it runs (GET /metrics; 0: any free port)",
    ),
]
MetricsPushOption = Annotated[
    str | None,
    typer.Option(
        "--metrics-push",
        help="Pushgateway URL: push the run's metrics at each transition and at the end (a short-lived Job)",
    ),
]
RUN_OUTPUTS = ("table", "json", "jsonl")


def reporting_for(metrics_port: int | None, metrics_push: str | None) -> Any:
    from toolkit.operations import Reporting

    return Reporting(
        metrics_port=metrics_port,
        metrics_push=metrics_push,
        on_serving=lambda port: err(f"metrics: serving the run's metrics on port {port} (GET /metrics)"),
    )


def warn_problems(reporting: Any) -> None:
    for problem in reporting.problems:
        err(f"warning: the run was not fully shown: {problem}")


def check_run_output(output: str) -> None:
    if output not in RUN_OUTPUTS:
        die(EXIT_USAGE, f"error: --output {output!r} is not supported: use {', '.join(RUN_OUTPUTS)}")


def accepted_indices(values: list[str] | None) -> tuple[str, ...]:
    return tuple(sorted({name.strip() for v in values or [] for name in v.split(",") if name.strip()}))


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
    context: ContextOption = None,
    namespace: NamespaceOption = None,
    to: ToOption = None,
    state: Annotated[Path | None, typer.Option("--state", help="plan from a state file instead of live state")] = None,
    output: OutputOption = "table",
    parallel: ParallelOption = DEFAULTS.parallel,
    max_batch: MaxBatchOption = DEFAULTS.max_batch,
    finalize: FinalizeOption = DEFAULTS.finalize,
    accept_unavailable_index: AcceptOption = None,
) -> None:
    """Print the ordered steps of an upgrade, each with why it comes now and what blocks it. Changes nothing."""
    check_output(output)
    if state is not None and env is not None:
        die(
            EXIT_USAGE,
            "error: --state and --env conflict: a state file already says which environment it shows; give one of them",
        )
    settings = settings_from(
        parallel=parallel,
        max_batch=max_batch,
        finalize=finalize,
        accept_unavailable_indices=accepted_indices(accept_unavailable_index),
    )
    from toolkit import operations
    from toolkit.cli import render

    targets = guarded(lambda: operations.parse_component_versions(list(to or [])))
    environment_ = None if state is not None else environment(env, context, namespace)
    result = guarded(lambda: operations.plan_upgrade(environment_, targets, settings, state))
    render.print_plan(result, output)
    raise typer.Exit(EXIT_REFUSED if result.refused else EXIT_OK)


class _StopFlag:
    """Ctrl-C / SIGTERM: the first asks the run to stop at its next safe point (at once while it waits for gates or
    is paused, after the current step otherwise); the second to stop at once, leaving the platform safe. Each wakes
    the run's wait so it notices immediately. The handler only sets flags: the run reports what it does."""

    def __init__(self) -> None:
        self.requested = False
        self.now = False

    def __call__(self) -> bool:
        return self.requested

    def at_once(self) -> bool:
        return self.now

    def install(self) -> None:
        from toolkit.targets.process import wake

        def handler(_signum: int, _frame: Any) -> None:
            if self.requested:
                self.now = True
            self.requested = True
            wake()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


class _JsonLines:
    """`--output jsonl`: one JSON object per event on stdout, as the run goes (flushed), then the result."""

    def __call__(self, event: Event) -> None:
        import json

        line = {"event": event.kind, "at": round(event.at, 3), "step": event.step, "rule": event.rule}
        print(json.dumps({**line, "message": event.message}), flush=True)


def _finish(result: RunResult, output: str) -> None:
    from toolkit.cli import render

    if output == "jsonl":
        import json

        print(json.dumps({"event": "result", **render.result_dict(result)}), flush=True)
    else:
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
    context: ContextOption = None,
    namespace: NamespaceOption = None,
    to: ToOption = None,
    output: RunOutputOption = "table",
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
    accept_unavailable_index: AcceptOption = None,
    unsafe_skip_gates: Annotated[
        bool,
        typer.Option("--unsafe-skip-gates", help="NEGATIVE CONTROL ONLY (sim, local): restart without any gate"),
    ] = False,
    metrics_port: MetricsPortOption = None,
    metrics_push: MetricsPushOption = None,
) -> None:
    """Run an upgrade: re-check the gates on live state before every step, act, wait, and resume from observed
    state when run again. Ctrl-C/SIGTERM stops at the next safe point, a second one at once (exit 4)."""
    check_run_output(output)
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
        accept_unavailable_indices=accepted_indices(accept_unavailable_index),
    )
    from toolkit import operations
    from toolkit.cli import render

    targets = guarded(lambda: operations.parse_component_versions(list(to or [])))
    resolved = environment(env, context, namespace)
    if dry_run:
        result_plan = guarded(lambda: operations.plan_upgrade(resolved, targets, settings))
        render.print_plan(result_plan, "json" if output == "jsonl" else output)
        raise typer.Exit(EXIT_REFUSED if result_plan.refused else EXIT_OK)
    if unsafe_skip_gates:
        err("WARNING: --unsafe-skip-gates: every health gate is OFF; this run exists to prove the harness sees loss")
    from toolkit.targets.sim import OrchestratorCrash

    stop = _StopFlag()
    stop.install()
    view = render.LiveView(resolved.simulated, enabled=output == "table")
    on_event = _JsonLines() if output == "jsonl" else view
    reporting = reporting_for(metrics_port, metrics_push)
    try:
        with view:
            result = guarded(
                lambda: operations.run_upgrade(
                    resolved,
                    targets,
                    settings,
                    list(inject or []),
                    on_event=on_event,
                    stop_requested=stop,
                    stop_now=stop.at_once,
                    reporting=reporting,
                )
            )
    except OrchestratorCrash as crash:
        die(EXIT_CRASHED, f"orchestrator crashed (injected): {crash}. Run the same command again to resume.")
    warn_problems(reporting)
    _finish(result, output)


@app.command()
def status(
    env: EnvOption = None,
    context: ContextOption = None,
    namespace: NamespaceOption = None,
    output: OutputOption = "table",
    audit_lines: Annotated[int, typer.Option("--audit-lines", help="recent audit entries to show")] = 10,
) -> None:
    """Where an upgrade stands: spec vs running versions per component, the lease, the last run as its status object
    shows it (phase, step, the gate it waits on; on Kubernetes the ConfigMap toolkit-upgrade-status), recent audit
    entries."""
    check_output(output)
    from toolkit import operations
    from toolkit.cli import render

    resolved = environment(env, context, namespace)
    result = guarded(lambda: operations.upgrade_status(resolved, audit_lines))
    render.print_status(result, output)


@app.command()
def rollback(
    env: EnvOption = None,
    context: ContextOption = None,
    namespace: NamespaceOption = None,
    component: Annotated[
        list[str] | None,
        typer.Option(
            "--component",
            "-c",
            help="component to roll back (default: all recorded)",
            autocompletion=complete_component,
        ),
    ] = None,
    output: RunOutputOption = "table",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the rollback plan; change nothing")] = False,
    step_timeout: StepTimeoutOption = DEFAULTS.step_timeout,
    gate_timeout: GateTimeoutOption = DEFAULTS.gate_timeout,
    poll: PollOption = DEFAULTS.poll_interval,
    confirm: ConfirmOption = DEFAULTS.confirm_seconds,
    accept_unavailable_index: AcceptOption = None,
    metrics_port: MetricsPortOption = None,
    metrics_push: MetricsPushOption = None,
) -> None:
    """Return components to their previous version where that is still safe, through the same gates; refuse with
    the reason where it is not (Kafka after metadata.version was raised, Elasticsearch after a newer node joined)."""
    check_run_output(output)
    settings = settings_from(
        gate_timeout=gate_timeout,
        step_timeout=step_timeout,
        confirm_seconds=confirm,
        poll_interval=poll,
        accept_unavailable_indices=accepted_indices(accept_unavailable_index),
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
    resolved = environment(env, context, namespace)
    stop = _StopFlag()
    stop.install()
    reporting = reporting_for(metrics_port, metrics_push)
    targets, outcome = guarded(
        lambda: operations.run_rollback(
            resolved,
            names,
            settings,
            on_event=_JsonLines() if output == "jsonl" else None,
            stop_requested=stop,
            dry_run=dry_run,
            stop_now=stop.at_once,
            reporting=reporting,
        )
    )
    warn_problems(reporting)
    err("rolling back to " + ", ".join(f"{c}={v}" for c, v in targets.items()))
    if isinstance(outcome, Plan):
        render.print_plan(outcome, "json" if output == "jsonl" else output)
        raise typer.Exit(EXIT_REFUSED if outcome.refused else EXIT_OK)
    _finish(outcome, output)


@app.command()
def audit(
    env: EnvOption = None,
    context: ContextOption = None,
    namespace: NamespaceOption = None,
    output: OutputOption = "table",
) -> None:
    """Print the append-only audit trail kept with the platform: when, who, what, why, result."""
    check_output(output)

    from toolkit import operations
    from toolkit.cli import render

    resolved = environment(env, context, namespace)
    trail = guarded(lambda: operations.audit_trail(resolved))
    if output != "table":
        print(document(output, trail))
        return
    for entry in trail:
        print(render.format_audit(entry))


ReasonOption = Annotated[str, typer.Option("--reason", help="why, recorded with the request and in the audit trail")]


def _request(
    env: str | None, action: str, reason: str, output: str, context: str | None = None, namespace: str | None = None
) -> None:
    check_output(output)

    from toolkit import operations
    from toolkit.cli import render

    resolved = environment(env, context, namespace)
    outcome = guarded(lambda: operations.request_run(resolved, action, reason))
    if output != "table":
        print(document(output, render.request_dict(outcome)))
    else:
        print(outcome.message)


@app.command()
def pause(env: EnvOption = None, reason: ReasonOption = "", output: OutputOption = "table") -> None:
    """Hold the upgrade of ENV at its next step boundary (kubectl rollout pause): the step in progress finishes,
    nothing else starts until `resume`. Stored with the platform, so it also holds a run started later."""
    _request(env, "pause", reason, output)


@app.command()
def resume(env: EnvOption = None, reason: ReasonOption = "", output: OutputOption = "table") -> None:
    """Withdraw a pause: the held run continues where it stands."""
    _request(env, "resume", reason, output)


@app.command()
def abort(env: EnvOption = None, reason: ReasonOption = "", output: OutputOption = "table") -> None:
    """Stop the run in progress at once (Argo Rollouts abort): within one observation interval, undoing what the
    current step prepared and releasing the lease; the platform is left safe and the same `run` resumes it."""
    _request(env, "abort", reason, output)
