"""Options shared by every command, exit codes, and the one place where errors become messages and exit codes.

Exit codes
  0  done (or, for `plan`, a plan that can run)
  1  the run halted: a gate did not clear in time or a member did not recover (the platform is left safe)
  2  bad input: unknown environment, component or version, malformed option, unreadable state file
  3  refused by a safety rule before anything changed: version path, rollback, lease held by another orchestrator
  4  stopped on request (Ctrl-C / SIGTERM: at once while waiting for gates or paused, else after the current step;
     a second signal or `toolkit upgrade abort`: at once), the platform left safe; run the same command to resume
  5  unavailable: the cluster, or a data plane the command needs, does not answer (`cluster status`)
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
EXIT_UNAVAILABLE = 5
EXIT_CRASHED = 70


def complete_env(incomplete: str) -> list[str]:
    """Shell completion of --env: the environments this toolkit knows (built-in, custom, one per region file)."""
    from toolkit.config import environments

    try:
        names = environments.known()
    except environments.EnvironmentError_:
        names = sorted(p.stem for p in environments.BUILTIN_DIR.glob("*.yaml"))
    return [n for n in names if n.startswith(incomplete)]


def complete_to(incomplete: str) -> list[str]:
    """Shell completion of --to / --from: COMPONENT=VERSION for every version in the catalog."""
    from toolkit import catalog

    cat = catalog.load()
    pairs = [f"{c}={v}" for c in cat.upgrade_order for v in cat.component(c).sorted_versions()]
    return [p for p in pairs if p.startswith(incomplete)]


def complete_component(incomplete: str) -> list[str]:
    """Shell completion of a component name: the catalog's components."""
    from toolkit import catalog

    return [c for c in catalog.load().upgrade_order if c.startswith(incomplete)]


EnvOption = Annotated[
    str | None,
    typer.Option(
        "--env",
        "-e",
        help="environment name: sim, local, kind, a region (eu-west-1) or a custom one; default $TOOLKIT_ENV or sim",
        autocompletion=complete_env,
    ),
]
OutputOption = Annotated[str, typer.Option("--output", "-o", help="table, json or yaml")]
ContextOption = Annotated[
    str | None,
    typer.Option("--context", help="kubeconfig context to use (instead of the environment's kube_context)"),
]
NamespaceOption = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="the platform's namespace (instead of the environment's)"),
]
ToOption = Annotated[
    list[str] | None,
    typer.Option(
        "--to",
        help="COMPONENT=VERSION, repeatable (e.g. --to kafka=4.1.0 --to elasticsearch=8.19.3)",
        autocompletion=complete_to,
    ),
]

T = TypeVar("T")


def err(message: str) -> None:
    print(message, file=sys.stderr)


def die(code: int, message: str) -> NoReturn:
    err(message)
    raise typer.Exit(code)


OUTPUTS = ("table", "json", "yaml")


def check_output(output: str, allowed: tuple[str, ...] = OUTPUTS) -> None:
    if output not in allowed:
        die(EXIT_USAGE, f"error: --output {output!r} is not supported: use {', '.join(allowed[:-1])} or {allowed[-1]}")


def document(output: str, data: object) -> str:
    """`data` as the machine-readable form `--output` asked for: JSON (indented) or YAML (block style)."""
    import json

    if output == "yaml":
        import yaml

        return str(yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False)).rstrip("\n")
    return json.dumps(data, indent=2, default=str)


def emit(output: str, data: object, text: str) -> None:
    """Print `text` for a person (table) or `data` as JSON or YAML."""
    print(text if output == "table" else document(output, data))


def guarded(call: Callable[[], T]) -> T:
    """Run an operation, turning the toolkit's errors into one clear message and a documented exit code."""
    from toolkit.errors import RefusedError, UsageError

    try:
        return call()
    except UsageError as exc:
        die(EXIT_USAGE, f"error: {exc}")
    except RefusedError as exc:
        die(EXIT_REFUSED, f"refused [{exc.verdict.rule}]: {exc.verdict.reason}")


def environment(name: str | None, context: str | None = None, namespace: str | None = None) -> Environment:
    """Resolve `--env` once, at the edge, with kubectl's `--context` and `--namespace` applied; everything below
    receives the Environment object."""
    from toolkit.config.environments import resolve, with_cluster

    return guarded(lambda: with_cluster(resolve(name), context, namespace))
