"""The `toolkit` command: one Typer app with a group per concern. Importing this module stays light."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from toolkit.cli import certs, cluster, deploy, es, region, rehearse, state, upgrade
from toolkit.cli.common import OutputOption, check_output, document

app = typer.Typer(
    name="toolkit",
    help="Provision and upgrade a streaming security-data platform (Kafka -> workers -> Elasticsearch) "
    "without dropping an event.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"toolkit {version('toolkit')}")
        except PackageNotFoundError:
            print("toolkit (not installed: running from a source tree)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False, "--version", help="print the toolkit's version and exit", callback=_version, is_eager=True
    ),
) -> None:
    """Provision and upgrade a streaming security-data platform (Kafka -> workers -> Elasticsearch) without dropping
    an event."""


app.add_typer(upgrade.app, name="upgrade")
app.add_typer(state.app, name="state")
app.add_typer(cluster.app, name="cluster")


app.add_typer(region.app, name="region")
app.add_typer(es.app, name="es")
app.add_typer(certs.app, name="certs")
app.command("deploy")(deploy.command)
app.command("rehearse")(rehearse.command)


@app.command("env")
def env_list(output: OutputOption = "table") -> None:
    """List the environments this toolkit knows (built-in, custom, and one per region file)."""
    from toolkit.config import environments

    check_output(output)
    try:
        names = environments.known()
    except environments.EnvironmentError_ as exc:
        # Outside a project the built-in environments still exist; only the regions cannot be listed.
        typer.echo(f"note: regions are not listed: {exc}", err=True)
        folders = [environments.BUILTIN_DIR]
        custom = os.environ.get("TOOLKIT_ENVIRONMENTS_DIR")
        folders += [Path(custom)] if custom else []
        names = sorted({p.stem for folder in folders for p in folder.glob("*.yaml")})
    rows: list[dict[str, str]] = []
    for name in names:
        try:
            env = environments.resolve(name)
            rows.append({"name": name, "kind": env.kind, "description": env.description, "source": env.source})
        except ValueError as exc:
            rows.append({"name": name, "kind": "?", "description": f"invalid: {exc}", "source": ""})
    if output != "table":
        print(document(output, rows))
        return
    for row in rows:
        print(f"{row['name']:16} {row['kind']:6} {row['description']}")


def run() -> None:
    """The console script: a library left out of this installation becomes one line naming the extra to install."""
    try:
        app()
    except ImportError as exc:
        from toolkit.cli.common import EXIT_USAGE, err
        from toolkit.errors import missing_extra

        missing = missing_extra(exc)
        if missing is None:
            raise
        err(f"error: {missing}")
        sys.exit(EXIT_USAGE)
