"""`toolkit cluster up|down|status`: bring an environment's platform up, tear it down, say what runs."""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit.cli.common import (
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    ContextOption,
    EnvOption,
    NamespaceOption,
    OutputOption,
    check_output,
    complete_to,
    die,
    emit,
    environment,
    guarded,
)

app = typer.Typer(help="Create, remove and inspect an environment's cluster.", no_args_is_help=True)

FromOption = Annotated[
    list[str] | None,
    typer.Option(
        "--from",
        help="sim: COMPONENT=VERSION to start from, repeatable (default: the environment's)",
        autocompletion=complete_to,
    ),
]


@app.command()
def up(
    env: EnvOption = None,
    context: ContextOption = None,
    namespace: NamespaceOption = None,
    from_: FromOption = None,
    inject: Annotated[list[str] | None, typer.Option("--inject", help="sim: faults present from the start")] = None,
) -> None:
    """Create the environment's platform (sim: a fresh simulated platform; local: control plane + node agent;
    kind: a kind cluster from kind-config.yaml)."""
    from toolkit import operations

    resolved = environment(env, context, namespace)
    if resolved.kind == "sim":
        versions = guarded(lambda: operations.parse_component_versions(list(from_ or []), option="--from"))
        guarded(lambda: operations.reset_sim(resolved, versions, list(inject or [])))
        print(f"simulated platform {resolved.name} created (state in {operations.sim_store(resolved).path})")
        return
    if from_ or inject:
        die(
            EXIT_USAGE,
            "error: --from and --inject apply to sim environments; deploy versions with `toolkit deploy`",
        )
    from toolkit.targets import clusters

    print(guarded(lambda: clusters.up(resolved)))


@app.command()
def down(env: EnvOption = None) -> None:
    """Remove what `cluster up` created for the environment (never a cluster the toolkit did not create)."""
    from toolkit import operations

    resolved = environment(env)
    if resolved.kind == "sim":
        removed = guarded(lambda: operations.delete_sim(resolved))
        print(f"simulated platform {resolved.name} {'removed' if removed else 'was not there'}")
        return
    from toolkit.targets import clusters

    print(guarded(lambda: clusters.down(resolved)))


@app.command()
def status(env: EnvOption = None, context: ContextOption = None, output: OutputOption = "table") -> None:
    """Say whether the environment's cluster runs, and what is missing to run it (exit 5 when it does not answer)."""
    check_output(output)
    from toolkit import operations

    resolved = environment(env, context)
    if resolved.kind == "sim":
        store = operations.sim_store(resolved)
        state = "exists" if store.exists() else "not created yet (created on first use)"
        line = f"simulated platform {resolved.name}: {state} ({store.path})"
        emit(output, {"environment": resolved.name, "kind": "sim", "answers": True, "details": [line]}, line)
        return
    from toolkit.targets import clusters

    found = guarded(lambda: clusters.status(resolved))
    emit(output, found.as_dict(), str(found))
    if not found.answers:
        raise typer.Exit(EXIT_UNAVAILABLE)


@app.command("node-image")
def node_image(
    image: Annotated[str, typer.Argument(help="the new node image's name, e.g. local-2")],
    env: EnvOption = None,
    group: Annotated[list[str] | None, typer.Option("--group", help="node pool group (default: all)")] = None,
) -> None:
    """local: publish a new node image to the node pool (an AMI release, locally): a Kubernetes roll at the same
    version then replaces every node still on the old image."""
    from toolkit.targets import clusters

    resolved = environment(env)
    print(guarded(lambda: clusters.node_image(resolved, image, list(group or []))))
