"""Options shared by every command, exit codes, and the one place where errors become messages and exit codes.

Exit codes
  0  done (or, for `plan`, a plan that can run)
  1  the run halted: a gate did not clear in time or a member did not recover (the platform is left safe)
  2  bad input: unknown environment, component or version, malformed option, unreadable state file
  3  refused by a safety rule before anything changed: version path, rollback, lease held by another orchestrator
  4  stopped on request (Ctrl-C / SIGTERM: at once while waiting for gates or paused, else after the current step;
     a second signal or `toolkit upgrade abort`: at once), the platform left safe; run the same command to resume
  70 the orchestrator crashed (a simulated crash injected with --inject crash-after-step=K)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from toolkit.config.environments import Environment

EXIT_OK = 0
EXIT_HALTED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_STOPPED = 4
EXIT_CRASHED = 70

EnvOption = Annotated[
    str | None,
    typer.Option(
        "--env",
        "-e",
        help="environment name: sim, local, kind, a region (eu-west-1) or a custom one; default $TOOLKIT_ENV or sim",
    ),
]
OutputOption = Annotated[str, typer.Option("--output", "-o", help="table or json")]
ToOption = Annotated[
    list[str] | None,
    typer.Option("--to", help="COMPONENT=VERSION, repeatable (e.g. --to kafka=4.1.0 --to elasticsearch=8.19.3)"),
]

T = TypeVar("T")


def err(message: str) -> None:
    print(message, file=sys.stderr)


def die(code: int, message: str) -> NoReturn:
    err(message)
    raise typer.Exit(code)


def check_output(output: str) -> None:
    if output not in ("table", "json"):
        die(EXIT_USAGE, f"error: --output {output!r} is not supported: use table or json")


def guarded(call: Callable[[], T]) -> T:
    """Run an operation, turning the toolkit's errors into one clear message and a documented exit code."""
    from toolkit.errors import RefusedError, UsageError

    try:
        return call()
    except UsageError as exc:
        die(EXIT_USAGE, f"error: {exc}")
    except RefusedError as exc:
        die(EXIT_REFUSED, f"refused [{exc.verdict.rule}]: {exc.verdict.reason}")


def environment(name: str | None) -> Environment:
    """Resolve `--env` once, at the edge; everything below receives the Environment object."""
    from toolkit.config.environments import resolve

    return guarded(lambda: resolve(name))
