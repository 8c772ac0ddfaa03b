"""`toolkit certs status|rotate`: the platform's certificates, their expiry, and a CA rotation behind the gates."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.cli.common import (
    EXIT_HALTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_STOPPED,
    EnvOption,
    OutputOption,
    check_output,
    document,
    environment,
    err,
    guarded,
)
from toolkit.cli.upgrade import (
    DEFAULTS,
    BudgetOption,
    ConfirmOption,
    GateTimeoutOption,
    LagOption,
    MaxBatchOption,
    PaceOption,
    ParallelOption,
    PollOption,
    RunOutputOption,
    StepTimeoutOption,
    _JsonLines,
    _StopFlag,
    check_run_output,
    settings_from,
)

if TYPE_CHECKING:
    from toolkit.provision.certs import CertsStatus
    from toolkit.provision.rotation import RotationResult

app = typer.Typer(
    help="The platform's certificates: expiry per Secret, and a CA rotation through the upgrade engine's gates.",
    no_args_is_help=True,
)

WARN_DAYS = 30  # the same default as toolkit.provision.certs.WARN_DAYS (checked by the tests), kept here so that
# `toolkit certs --help` does not import cryptography


@app.command()
def status(
    env: EnvOption = None,
    output: OutputOption = "table",
    warn_days: Annotated[int, typer.Option("--warn-days", help="warn when a certificate expires sooner")] = WARN_DAYS,
) -> None:
    """Every certificate of the platform's Secrets: subject, issuer, not-after, days left and which CA signed it;
    a warning under --warn-days, an error when expired or not trusted by its own bundle (exit 1). Changes nothing."""
    check_output(output)
    from toolkit import operations

    resolved = environment(env)
    result = guarded(lambda: operations.certs_status(resolved, warn_days))
    if output == "table":
        print_status(result)
    else:
        print(document(output, status_dict(result)))
    raise typer.Exit(EXIT_HALTED if result.level == "error" else EXIT_OK)


@app.command()
def rotate(
    env: EnvOption = None,
    output: RunOutputOption = "table",
    parallel: ParallelOption = DEFAULTS.parallel,
    max_batch: MaxBatchOption = DEFAULTS.max_batch,
    pace: PaceOption = DEFAULTS.pace_seconds,
    gate_timeout: GateTimeoutOption = DEFAULTS.gate_timeout,
    step_timeout: StepTimeoutOption = DEFAULTS.step_timeout,
    confirm: ConfirmOption = DEFAULTS.confirm_seconds,
    poll: PollOption = DEFAULTS.poll_interval,
    restart_budget: BudgetOption = DEFAULTS.restart_budget,
    lag_bound: LagOption = DEFAULTS.lag_bound,
    unsafe_skip_gates: Annotated[
        bool,
        typer.Option("--unsafe-skip-gates", help="NEGATIVE CONTROL ONLY (sim, local): restart without any gate"),
    ] = False,
) -> None:
    """Rotate the platform's CA: trust a new CA beside the old one, reissue every leaf with it, drop the old one;
    after each phase every pod restarts behind the upgrade's gates. Resumes where an interrupted rotation stands.
    Ctrl-C/SIGTERM stops at the next safe point, a second one at once (exit 4)."""
    check_run_output(output)
    settings = settings_from(
        parallel=parallel,
        max_batch=max_batch,
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

    resolved = environment(env)
    if unsafe_skip_gates:
        err("WARNING: --unsafe-skip-gates: every health gate is OFF; this run exists to prove the harness sees loss")
    stop = _StopFlag()
    stop.install()
    view = render.LiveView(resolved.simulated, enabled=output == "table")
    on_event = _JsonLines() if output == "jsonl" else view
    with view:
        result = guarded(
            lambda: operations.rotate_certs(
                resolved, settings, on_event=on_event, stop_requested=stop, stop_now=stop.at_once
            )
        )
    if output == "jsonl":
        print(json.dumps({"event": "result", **rotation_dict(result)}), flush=True)
    elif output == "json":
        print(json.dumps(rotation_dict(result), indent=2))
    else:
        print_rotation(result)
    code = {"completed": EXIT_OK, "refused": EXIT_REFUSED, "stopped": EXIT_STOPPED}.get(result.outcome, EXIT_HALTED)
    raise typer.Exit(code)


# ---------------------------------------------------------------------------------------------- rendering


def status_dict(status: CertsStatus) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "environment": status.environment,
        "simulated": status.simulated,
        "checked_at": status.checked_at,
        "warn_days": status.warn_days,
        "level": status.level,
        "rotation": asdict(status.rotation) if status.rotation is not None else None,
        "notes": list(status.notes),
        "secrets": [
            {
                "namespace": s.namespace,
                "name": s.name,
                "present": s.present,
                "level": s.level,
                "days_left": s.days_left,
                "problems": list(s.problems),
                "certificates": [asdict(c) for c in s.certificates],
            }
            for s in status.secrets
        ],
    }


def _label(signed_by: str) -> str:
    """ "current CA 1a2b3c4d5e6f" -> "current CA" (the fingerprint is in the CA table and the JSON)."""
    for label in ("current CA", "next CA"):
        if label in signed_by:
            return label
    return signed_by


def print_status(status: CertsStatus) -> None:
    from rich.markup import escape

    from toolkit import tables

    con = tables.console()
    colour = {"ok": "green", "warn": "yellow", "error": "red"}

    def level(value: str) -> str:
        return f"[{colour[value]}]{value}[/]"

    if status.simulated:
        con.print(
            "[bold yellow]SIMULATED platform: real X.509 certificates in its Secrets, TLS between pods modelled[/]"
        )
    namespace = next((s.namespace for s in status.secrets[1:]), "")
    con.print(
        f"certificates of [bold]{status.environment}[/] (namespace {namespace}), checked {status.checked_at}; "
        f"warn under {status.warn_days} days"
    )
    authorities = tables.table(title="certificate authorities")
    for col in ("ca", "subject", "fingerprint", "expires", "days", "level"):
        if col == "subject":
            tables.text_column(authorities, col)
        else:
            tables.identifier_column(authorities, col, justify="right" if col == "days" else "left")
    seen: set[str] = set()
    for s in status.secrets:
        for c in s.certificates:
            if c.role != "ca" or c.fingerprint in seen:
                continue
            seen.add(c.fingerprint)
            authorities.add_row(
                _label(c.signed_by) if "platform's" not in c.signed_by else "other", escape(c.subject),
                c.fingerprint[:12], c.not_after[:10], f"{c.days_left:.0f}", level(c.level),
            )  # fmt: skip
    con.print(authorities)
    table = tables.table(title="secrets")
    tables.identifier_column(table, "secret")
    tables.identifier_column(table, "level")
    tables.identifier_column(table, "expires")
    tables.identifier_column(table, "days", justify="right")
    tables.text_column(table, "certificates")
    for s in status.secrets:
        parts = []
        for c in s.certificates:
            if c.role == "leaf":
                label = _label(c.signed_by)
                issuer = "" if label in ("current CA", "next CA") else f" (issuer {c.issuer})"
                parts.append(f"leaf {c.subject}, signed by {label}{issuer}")
        cas = [_label(c.signed_by.removeprefix("self-signed, ")) for c in s.certificates if c.role == "ca"]
        if cas:
            parts.append(("trusts " if s.namespace == namespace else "signing CAs: ") + " + ".join(cas))
        parts += [f"{c.key}: {c.problem}" for c in s.certificates if c.problem]
        parts += list(s.problems)
        soonest = min(s.certificates, key=lambda c: c.days_left, default=None)
        table.add_row(
            s.name if s.namespace == namespace else f"{s.namespace}/{s.name}", level(s.level),
            soonest.not_after[:10] if soonest else "-", f"{soonest.days_left:.0f}" if soonest else "-",
            escape("; ".join(parts)),
        )  # fmt: skip
    con.print(table)
    if status.rotation is not None:
        con.print(escape(status.rotation.describe()))
    else:
        con.print("no rotation recorded: the CA is the one deploy made")
    for note in status.notes:
        con.print(escape(note))
    con.print(f"[bold {colour[status.level]}]{status.level}[/]")


def rotation_dict(result: RotationResult) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "environment": result.environment,
        "simulated": result.simulated,
        "outcome": result.outcome,
        "passed": result.ok,
        "rule": result.rule,
        "reason": result.reason,
        "generation": result.generation,
        "progress": asdict(result.progress) if result.progress is not None else None,
        "started_at": round(result.started_at, 3),
        "ended_at": round(result.ended_at, 3),
        "duration_seconds": round(result.ended_at - result.started_at, 3),
        "stages": [s.as_dict() for s in result.stages],
    }


def print_rotation(result: RotationResult) -> None:
    from rich.markup import escape

    from toolkit import tables
    from toolkit.cli.render import SIM_BANNER

    con = tables.console()
    if result.simulated:
        con.print(f"[bold yellow]{SIM_BANNER}[/]")
    table = tables.table(title=f"certificate rotation {result.generation} of {result.environment}")
    for col in ("phase", "stage"):
        tables.identifier_column(table, col)
    tables.identifier_column(table, "start", justify="right")
    tables.identifier_column(table, "took", justify="right")
    tables.identifier_column(table, "secrets", justify="right")
    tables.identifier_column(table, "restarts", justify="right")
    tables.identifier_column(table, "rolls", justify="right")
    tables.identifier_column(table, "outcome")
    tables.text_column(table, "what")
    for s in result.stages:
        table.add_row(
            s.phase, s.stage, f"{s.started_at - result.started_at:.0f}s", f"{s.ended_at - s.started_at:.0f}s",
            str(len(s.secrets)), str(s.restarts), str(s.rolls), s.outcome, escape(s.message),
        )  # fmt: skip
    if result.stages:
        con.print(table)
    colour = "green" if result.ok else "red"
    con.print(
        f"[bold {colour}]{result.outcome}[/] after {result.ended_at - result.started_at:.0f}s "
        + escape(f"[{result.rule}]: {result.reason}")
    )
