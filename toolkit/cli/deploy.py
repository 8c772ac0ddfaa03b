"""`toolkit deploy`: install or update the platform of one environment (playbooks/site.yml through Ansible).

Parses, calls `toolkit.provision.deploy.deploy_platform`, prints; heavy imports stay inside the body.
Exit codes: 0 done (or nothing to change), 1 a task failed, 2 bad input (unknown environment, sim environment,
missing kubeconfig or context, bad --output).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli.common import (
    EXIT_HALTED,
    ContextOption,
    EnvOption,
    NamespaceOption,
    OutputOption,
    check_output,
    die,
    document,
    environment,
    guarded,
)


def command(
    env: EnvOption = None,
    context: ContextOption = None,
    namespace: NamespaceOption = None,
    check: Annotated[
        bool, typer.Option("--check", help="preview only: show what would change per chart (with the diff)")
    ] = False,
    render: Annotated[
        Path | None,
        typer.Option("--render", help="write the manifests deploy would apply to DIR (no cluster needed), and stop"),
    ] = None,
    output: OutputOption = "table",
) -> None:
    """Deploy the platform (namespace, certificates and credentials, Kafka, Elasticsearch, workers) into an
    environment; a second run with the same configuration changes nothing. With --render, write the manifests
    instead (one file per release and its values), as `helm template` would: GitOps users commit these."""

    from toolkit.provision import ansible
    from toolkit.provision.deploy import deploy_platform, render_platform
    from toolkit.provision.helm import DeployError

    check_output(output)
    resolved = environment(env, context, namespace)
    if render is not None:
        try:
            rendered = guarded(lambda: render_platform(resolved, render))
        except DeployError as exc:
            die(EXIT_HALTED, f"error: {exc}")
        if output != "table":
            print(document(output, {"environment": rendered.environment, "versions": rendered.versions,
                                    "files": rendered.files}))  # fmt: skip
        else:
            print(f"rendered {resolved.name} ({', '.join(f'{c}={v}' for c, v in rendered.versions.items())}):")
            for name in rendered.files:
                print(f"  {name}")
        return
    try:
        result = guarded(lambda: deploy_platform(resolved, check=check))
    except (ansible.AnsibleRunError, DeployError) as exc:
        die(EXIT_HALTED, f"error: {exc}")
    if output != "table":
        print(document(output, result.as_dict()))
    else:
        mode = "check mode, nothing written" if result.check else "applied"
        where = f"{result.kind}, namespace {result.namespace}"
        print(f"deploy {result.environment} ({where}) - {mode}, {result.seconds:.1f} s")
        print("versions: " + ", ".join(f"{c}={v}" for c, v in result.versions.items()))
        for note in result.notes:
            print(f"note: {note}")
        for task in result.tasks:
            state = "FAILED" if task.failed else "changed" if task.changed else "ok"
            print(f"  {task.role or '-':15} {state:8} {task.task}")
            if task.failed:
                print(f"      {task.message}")
        verb = "would" if result.check else ""
        for chart in result.charts:
            if not chart.changed:
                print(f"{chart.release}: no change (revision {chart.revision})")
                continue
            action = f"{verb} {chart.action}".strip()
            print(f"{chart.release}: {action} -> {len(chart.objects)} object(s) differ (revision {chart.revision})")
            for obj in chart.objects:
                print(f"    {obj['action']:7} {obj['ref']}")
            if result.check and chart.diff:
                print(chart.diff.rstrip())
    if not result.ok:
        raise typer.Exit(EXIT_HALTED)
