"""Rendering: plans, run results and status as rich tables or JSON documents, and the live view of a run."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from toolkit.cli.common import document

if TYPE_CHECKING:
    from toolkit.engine.executor import Event, RunResult
    from toolkit.model import Plan, RunRequest, Step
    from toolkit.operations import RequestOutcome, Status

SIM_BANNER = (
    "SIMULATED: the Kafka/Elasticsearch data plane behind these figures is simulated (the sim environment, or the "
    "local one's data plane following real pods), not a real cluster"
)


def _esc(text: str) -> str:
    """Rule names are written in [brackets], which rich would take for markup."""
    from rich.markup import escape

    return escape(text)


def _console(stderr: bool = False) -> Any:
    from toolkit import tables

    return tables.console(stderr)


def step_dict(step: Step) -> dict[str, Any]:
    return {
        "id": step.id,
        "kind": str(step.kind),
        "component": str(step.component),
        "members": list(step.members),
        "version": step.version,
        "reason": step.reason,
        "phase": step.phase,
        "blocked": None
        if step.blocked is None
        else {"rule": step.blocked.rule, "reason": step.blocked.reason, "fatal": step.blocked.fatal},
    }


def plan_dict(plan: Plan) -> dict[str, Any]:
    return {
        "environment": plan.environment,
        "simulated": plan.simulated,
        "targets": dict(plan.targets),
        "refused": plan.refused,
        "refusals": [{"rule": v.rule, "reason": v.reason} for v in plan.refusals],
        "warnings": [{"rule": v.rule, "reason": v.reason} for v in plan.warnings],
        "notes": list(plan.notes),
        "steps": [step_dict(s) for s in plan.steps],
    }


def print_plan(plan: Plan, output: str) -> None:
    if output != "table":
        print(document(output, plan_dict(plan)))
        return
    con = _console()
    if plan.simulated:
        con.print(f"[bold yellow]{SIM_BANNER}[/]")
    targets = ", ".join(f"{c}={v}" for c, v in plan.targets)
    con.print(f"Upgrade plan for [bold]{plan.environment}[/] -> {targets}")
    for v in plan.refusals:
        con.print(f"[bold red]REFUSED[/] {_esc(f'[{v.rule}] {v.reason}')}")
    for v in plan.warnings:
        con.print(f"[yellow]warning[/] {_esc(f'[{v.rule}] {v.reason}')}")
    for note in plan.notes:
        con.print(f"note: {_esc(note)}")
    if not plan.steps:
        if not plan.refused:
            con.print("Nothing to do: every component already runs its target version.")
        return
    from toolkit import tables

    table = tables.table()
    tables.identifier_column(table, "#", justify="right")
    tables.identifier_column(table, "step")
    tables.text_column(table, "why (and what blocks it now)")
    for i, s in enumerate(plan.steps, 1):
        why = _esc(s.reason)
        if s.blocked is not None:
            why += "\n[yellow]blocked now by " + _esc(f"[{s.blocked.rule}] {s.blocked.reason}") + "[/]"
        table.add_row(str(i), _esc(tables.step_cell(str(s.component), str(s.kind), s.members, con.width)), why)
    con.print(table)


def result_dict(result: RunResult) -> dict[str, Any]:
    return {
        "environment": result.environment,
        "simulated": result.simulated,
        "outcome": result.outcome,
        "passed": result.ok,
        "rule": result.rule,
        "reason": result.reason,
        "targets": dict(result.plan.targets),
        "started_at": round(result.started_at, 3),
        "ended_at": round(result.ended_at, 3),
        "duration_seconds": round(result.ended_at - result.started_at, 3),
        "steps": [r.as_dict() for r in result.steps],
    }


def print_result(result: RunResult, output: str) -> None:
    if output != "table":
        print(document(output, result_dict(result)))
        return
    from toolkit import tables

    con = _console()
    if result.simulated:
        con.print(f"[bold yellow]{SIM_BANNER}[/]")
    rows = [
        tables.StepRow(
            component=r.component,
            kind=r.kind,
            members=r.members,
            start=f"{r.started_at - result.started_at:.0f}s",
            took=f"{r.ended_at - r.started_at:.0f}s",
            outcome=r.outcome,
            waits=[(g.rule, g.seconds) for g in r.gates_waited],
        )
        for r in result.steps
    ]
    table = tables.steps_table(rows, con.width, title=f"upgrade of {result.environment}")
    if result.steps:
        con.print(table)
    colour = "green" if result.ok else "red"
    con.print(
        f"[bold {colour}]{result.outcome}[/] after {result.ended_at - result.started_at:.0f}s "
        + _esc(f"[{result.rule}]: {result.reason}")
    )


class LiveView:
    """Shows the current step, the gate it waits on and why; plain lines on stderr when not a terminal."""

    def __init__(self, simulated: bool, enabled: bool = True) -> None:
        self.enabled = enabled
        self.simulated = simulated
        self.step = ""
        self.waiting = ""
        self.done = 0
        self._live: Any = None
        self._tty = sys.stderr.isatty()
        self._last_wait: tuple[str, str] = ("", "")
        self._origin: float | None = None  # times are shown from the run's first event

    def __enter__(self) -> LiveView:
        if self.enabled and self._tty:
            from rich.live import Live

            self._live = Live(self._render(), console=_console(stderr=True), refresh_per_second=8, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def _render(self) -> Any:
        from rich.panel import Panel

        sim = " (simulated)" if self.simulated else ""
        body = _esc(f"step: {self.step or '-'}\nwaiting on: {self.waiting or '-'}\nsteps done: {self.done}")
        return Panel(body, title=f"toolkit upgrade{sim}")

    def __call__(self, event: Event) -> None:
        if self._origin is None:
            self._origin = event.at
        if event.kind == "step":
            self.step, self.waiting = f"{event.step}: {event.message}", ""
        elif event.kind == "gate-wait":
            self.waiting = f"[{event.rule}] {event.message}"
        elif event.kind == "recovered":
            self.done += 1
        if not self.enabled:
            return
        if self._live is not None:
            self._live.update(self._render())
        elif event.kind in (
            "phase",  # a certificate rotation's phases (toolkit certs rotate)
            "step",
            "gate-wait",
            "requeue",
            "halt",
            "done",
            "stop",
            "lease",
            "paused",
            "resumed",
            "stop-requested",
        ):
            if event.kind == "gate-wait":
                if (event.step, event.rule) == self._last_wait:
                    return  # plain output: one line per gate, not one per changed figure
                self._last_wait = (event.step, event.rule)
            rule = f" [{event.rule}]" if event.rule else ""
            print(
                f"[{event.at - (self._origin or 0.0):8.0f}s] {event.kind}{rule} {event.step} {event.message}".rstrip(),
                file=sys.stderr,
            )


def status_dict(status: Status) -> dict[str, Any]:
    return {
        "environment": status.environment,
        "simulated": status.simulated,
        "observed_at": status.observed_at,
        "in_progress": status.in_progress,
        "lease_holder": status.lease_holder,
        "lease_expires_in": status.lease_expires_in,
        "metadata_version": status.metadata_version,
        "elasticsearch_health": status.es_health,
        "elasticsearch_allocation": status.es_allocation,
        "components": [
            {
                "component": c.component,
                "spec_version": c.spec_version,
                "previous_version": c.previous_version,
                "running": c.running,
                "members": c.members,
                "on_spec": c.on_spec,
            }
            for c in status.components
        ],
        "audit_tail": status.audit_tail,
        "request": _request_dict(status.request),
        "run": status.run,
        "kubernetes_control_plane": status.kubernetes_control_plane,
        "next_steps": [{"step": step, "held_by": rule, "reason": why} for step, rule, why in status.next_steps],
    }


def _request_dict(request: RunRequest | None) -> dict[str, Any] | None:
    if request is None:
        return None
    return {"action": request.action, "by": request.by, "at": request.at, "reason": request.reason}


def request_dict(outcome: RequestOutcome) -> dict[str, Any]:
    return {
        "environment": outcome.environment,
        "action": outcome.action,
        "changed": outcome.changed,
        "message": outcome.message,
        "request": _request_dict(outcome.request),
    }


def print_status(status: Status, output: str) -> None:
    if output != "table":
        print(document(output, status_dict(status)))
        return
    from toolkit import tables

    con = _console()
    if status.simulated:
        con.print(f"[bold yellow]{SIM_BANNER}[/]")
    state = "an upgrade is in progress" if status.in_progress else "every member runs its spec"
    con.print(f"Environment [bold]{status.environment}[/]: {state}")
    if status.request is not None:
        label = "PAUSED" if status.request.action == "pause" else "ABORT REQUESTED"
        con.print(f"[bold yellow]{label}[/]: {_esc(status.request.describe())}")
    table = tables.table()
    for col in ("component", "spec", "previous"):
        tables.identifier_column(table, col)
    tables.text_column(table, "running")
    tables.identifier_column(table, "on spec", justify="right")
    for c in status.components:
        running = ", ".join(f"{v} x{n}" for v, n in sorted(c.running.items()))
        table.add_row(c.component, c.spec_version, c.previous_version or "-", running, f"{c.on_spec}/{c.members}")
    con.print(table)
    con.print(
        f"kafka metadata.version {status.metadata_version or '?'}; elasticsearch health {status.es_health}, "
        f"allocation {status.es_allocation or 'all (default)'}"
        + (f"; kubernetes control plane {status.kubernetes_control_plane}" if status.kubernetes_control_plane else "")
    )
    for step, rule, why in status.next_steps:
        if rule:
            con.print("[bold yellow]held[/]: " + _esc(f"{step} by [{rule}] {why}"))
        else:
            con.print(_esc(f"next: {step}: {why}"))
    if status.lease_holder:
        con.print(f"lease held by {status.lease_holder} (expires in {status.lease_expires_in:.0f}s unless renewed)")
    else:
        con.print("no orchestrator holds the lease")
    for line in run_lines(status.run):
        con.print(_esc(line))
    if status.audit_tail:
        con.print("recent audit entries:")
        for entry in status.audit_tail:
            con.print(f"  {_esc(format_audit(entry))}")


def run_lines(run: dict[str, Any] | None) -> list[str]:
    """The last run as its status object shows it: phase, progress, step; the gate it waits on; whether it is stale."""
    if run is None:
        return []
    steps = run.get("steps") or {}
    head = f"run: {run.get('phase', '?')}"
    if run.get("phase") != "Idle":
        targets = ",".join(f"{c}={v}" for c, v in (run.get("targets") or {}).items())
        head += f" ({steps.get('done', 0)}/{steps.get('total', 0)} steps) to {targets} by {run.get('holder', '?')}"
        head += f", started {run.get('startedAt', '?')}, updated {run.get('updatedAt', '?')}"
    lines = [head]
    if run.get("stale"):
        lines.append(
            "  STALE: no live orchestrator holds the lease for this run: it ended without writing its outcome "
            "(killed?); run the same command to resume"
        )
    gate = run.get("gate")
    if gate:
        where = "for the promised state of" if gate.get("stage") == "promised-state" else "before"
        lines.append(f"  waiting on [{gate['rule']}] {where} {gate['step']} since {gate['since']}: {gate['reason']}")
    elif run.get("step") and run.get("phase") in ("Running", "Paused"):
        lines.append(f"  step {run['step']}")
    if run.get("message") and not gate:
        rule = f"[{run['rule']}] " if run.get("rule") else ""
        lines.append(f"  {rule}{run['message']}")
    return lines


def format_audit(entry: dict[str, Any]) -> str:
    return (
        f"{entry.get('wall', '')} t={entry.get('at', '')} {entry.get('who', '')} {entry.get('what', '')}"
        f"{' ' + entry['step'] if entry.get('step') else ''} -> {entry.get('result', '')}: {entry.get('why', '')}"
    )
