"""The `toolkit` command: one Typer app with a group per concern. Importing this module stays light."""

from __future__ import annotations

import typer

from toolkit.cli import cluster, state, upgrade

app = typer.Typer(
    name="toolkit",
    help="Provision and upgrade a streaming security-data platform (Kafka -> workers -> Elasticsearch) "
    "without dropping an event.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(upgrade.app, name="upgrade")
app.add_typer(state.app, name="state")
app.add_typer(cluster.app, name="cluster")


def _optional_groups() -> None:
    """Command groups whose modules are written alongside; each stays light to import."""
    import importlib

    for module, name in (
        ("toolkit.cli.region", "region"),
        ("toolkit.cli.es", "es"),
        ("toolkit.cli.deploy", "deploy"),
        ("toolkit.cli.rehearse", "rehearse"),
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        sub = getattr(mod, "app", None)
        if isinstance(sub, typer.Typer):
            app.add_typer(sub, name=name)
        elif callable(getattr(mod, "command", None)):
            app.command(name)(mod.command)


_optional_groups()


@app.command("env")
def env_list() -> None:
    """List the environments this toolkit knows (built-in, custom, and one per region file)."""
    from toolkit.config import environments

    for name in environments.known():
        try:
            env = environments.resolve(name)
            print(f"{name:16} {env.kind:6} {env.description}")
        except ValueError as exc:
            print(f"{name:16} ?      invalid: {exc}")


def run() -> None:
    app()
