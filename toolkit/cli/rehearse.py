"""`toolkit rehearse`: an upgrade under live load, proven to lose nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli.common import (
    EXIT_HALTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_STOPPED,
    EnvOption,
    OutputOption,
    check_output,
    complete_to,
    document,
    environment,
    err,
    guarded,
)


def command(
    env: EnvOption = None,
    from_: Annotated[
        list[str] | None,
        typer.Option(
            "--from", help="COMPONENT=VERSION to install first (default: the environment's)", autocompletion=complete_to
        ),
    ] = None,
    to: Annotated[list[str] | None, typer.Option("--to", help="COMPONENT=VERSION to upgrade to, repeatable")] = None,
    rate: Annotated[float, typer.Option("--rate", help="probe messages per second through Kafka")] = 500.0,
    syslog_rate: Annotated[float, typer.Option("--syslog-rate", help="syslog events per second")] = 1000.0,
    output: OutputOption = "table",
    junit: Annotated[Path | None, typer.Option("--junit", help="write JUnit XML here")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="report folder (default reports/<run id>)")] = None,
    keep: Annotated[bool, typer.Option("--keep", help="keep what the run created (sim: the platform's state)")] = False,
    parallel: Annotated[str, typer.Option("--parallel", help="none or auto")] = "none",
    max_unavailable: Annotated[
        float | None, typer.Option("--max-unavailable", help="fail when any path is dark longer (seconds)")
    ] = None,
    inject: Annotated[list[str] | None, typer.Option("--inject", help="sim faults, as for `upgrade run`")] = None,
    unsafe_skip_gates: Annotated[
        bool, typer.Option("--unsafe-skip-gates", help="NEGATIVE CONTROL (sim, local): roll with every gate off")
    ] = False,
    step_timeout: Annotated[float, typer.Option("--step-timeout", help="seconds a member may take")] = 900.0,
    rotate_certs: Annotated[
        bool,
        typer.Option("--rotate-certs", help="the change is a certificate rotation instead of an upgrade (sim, local)"),
    ] = False,
    node_image: Annotated[
        str | None,
        typer.Option(
            "--node-image",
            help="local, --to kubernetes: the node image to roll to (default: the one the cluster's groups publish)",
        ),
    ] = None,
) -> None:
    """Install today's versions, put live load on the platform, upgrade through the engine, drain and verify:
    nothing lost, nothing duplicated, never red. Writes JSON, JUnit, a table and a timeline picture."""
    check_output(output)
    from toolkit import operations
    from toolkit.cli.upgrade import settings_from
    from toolkit.rehearsal import report as report_mod
    from toolkit.rehearsal.run import RehearsalOptions, rehearse

    settings = settings_from(parallel=parallel, step_timeout=step_timeout)
    resolved = environment(env)
    from_versions = guarded(lambda: operations.parse_component_versions(list(from_ or []), option="--from"))
    to_versions = guarded(lambda: operations.parse_component_versions(list(to or [])))
    if unsafe_skip_gates:
        err(
            "WARNING: --unsafe-skip-gates: every health gate is OFF; "
            "this rehearsal exists to prove the harness sees loss"
        )
    options = RehearsalOptions(
        rate=rate,
        syslog_rate=syslog_rate,
        keep=keep,
        unsafe_skip_gates=unsafe_skip_gates,
        injections=list(inject or []),
        settings=settings,
        max_unavailable_bound=max_unavailable,
        rotate_certs=rotate_certs,
        node_image=node_image,
    )
    restore = _interrupt_on_signals()
    try:
        result = guarded(lambda: rehearse(resolved, from_versions, to_versions, options))
    except KeyboardInterrupt:
        kept = "kept (--keep)" if keep else "removed"
        err(f"rehearsal interrupted: what it created (namespaces, node groups, the probe topic) was {kept}")
        raise typer.Exit(EXIT_STOPPED) from None
    finally:
        restore()
    folder = report or Path("reports") / result.run_id
    folder.mkdir(parents=True, exist_ok=True)
    report_mod.write_json(result, folder / "report.json")
    written = ["report.json", "junit.xml"]
    try:
        report_mod.draw_timeline(result, folder / "timeline.png")
        written.append("timeline.png")
    except ImportError as exc:  # the picture is the report extra's; the verdict does not depend on it
        from toolkit.errors import missing_extra

        missing = missing_extra(exc, "the timeline picture")
        if missing is None:
            raise
        err(f"timeline.png not drawn: {missing}")
    xml = report_mod.junit_xml(result)
    (folder / "junit.xml").write_text(xml)
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(xml)
    if output != "table":
        print(document(output, result.as_dict()))
    else:
        report_mod.print_table(result)
    err("report: " + ", ".join(f"{folder}/{name}" for name in written))
    if result.passed:
        raise typer.Exit(EXIT_OK)
    raise typer.Exit(EXIT_REFUSED if result.outcome == "refused" else EXIT_HALTED)


def _interrupt_on_signals() -> Callable[[], None]:
    """SIGTERM (a cancelled CI job) and SIGINT stop a rehearsal as Ctrl-C does: the run's clean-up runs (its
    namespaces, node groups and load go) before the process exits 4. Once it is cleaning up, further signals are
    ignored, so a second Ctrl-C cannot leave half of it behind (SIGKILL still can). Returns what puts the previous
    handlers back."""
    import signal

    previous = {signum: signal.getsignal(signum) or signal.SIG_DFL for signum in (signal.SIGINT, signal.SIGTERM)}

    def interrupt(signum: int, _frame: object) -> None:
        for each in previous:
            signal.signal(each, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signum}")

    for signum in previous:
        signal.signal(signum, interrupt)

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore
