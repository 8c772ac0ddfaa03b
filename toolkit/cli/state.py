"""`toolkit state dump|schema`: the observed state of a platform as a versioned JSON document."""

from __future__ import annotations

import json

import typer

from toolkit.cli.common import ContextOption, EnvOption, NamespaceOption, environment, guarded

app = typer.Typer(help="Observe a platform into its versioned JSON form.", no_args_is_help=True)


@app.command()
def dump(env: EnvOption = None, context: ContextOption = None, namespace: NamespaceOption = None) -> None:
    """Print the observed state of ENV as JSON (kind PlatformState, schema_version 1)."""
    from toolkit import operations
    from toolkit.model import schema

    resolved = environment(env, context, namespace)
    state = guarded(lambda: operations.dump_state(resolved))
    print(schema.dumps(state))


@app.command("schema")
def json_schema() -> None:
    """Print the published JSON Schema of the state document."""
    from toolkit.model import schema

    print(json.dumps(schema.json_schema(), indent=2))
