"""`toolkit upgrade job`: run the upgrade from inside the cluster, as a Job (the manifests come from
`toolkit.provision.orchestrator`, the same wiring as the charts). Prints them (`--render`, for GitOps) or applies
them (`--apply`). Exit codes as every command: 2 bad input, 3 refused (a Job still running)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli.common import ContextOption, EnvOption, NamespaceOption, ToOption, die, environment, guarded

EXIT_USAGE = 2


def command(
    env: EnvOption = None,
    context: ContextOption = None,
    namespace: NamespaceOption = None,
    to: ToOption = None,
    render: Annotated[Path | None, typer.Option("--render", help="write the manifests to this file")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="apply them to the environment's cluster")] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help="serve the run's metrics from the pod on this port (container port `metrics`, prometheus.io "
            "annotations), e.g. 9405",
        ),
    ] = None,
    pod_monitor: Annotated[
        bool, typer.Option("--pod-monitor", help="also a PodMonitor (Prometheus Operator) on the metrics port")
    ] = False,
    metrics_push: Annotated[
        str | None,
        typer.Option("--metrics-push", help="Pushgateway URL the run pushes its metrics to (each transition, the end)"),
    ] = None,
) -> None:
    """Run `toolkit upgrade run` inside the cluster as a Job (its own least-privilege ServiceAccount and identity;
    resumes from the observed state if it crashes). Without --render or --apply, print the manifests."""
    import yaml

    from toolkit import operations

    resolved = environment(env, context, namespace)
    targets = guarded(lambda: operations.parse_component_versions(list(to or [])))
    if not targets:
        die(EXIT_USAGE, "error: nothing to upgrade: give at least one --to COMPONENT=VERSION (e.g. --to kafka=4.1.0)")
    if resolved.kind == "sim":
        die(EXIT_USAGE, f"error: environment {resolved.name} is simulated: there is no cluster to run a Job in")
    docs = guarded(
        lambda: operations.orchestrator_job(
            resolved, targets, metrics_port=metrics_port, pod_monitor=pod_monitor, metrics_push=metrics_push
        )
    )
    text = yaml.safe_dump_all(docs, sort_keys=False)
    if render is not None:
        render.write_text(text)
        print(f"wrote {len(docs)} objects to {render}")
    if apply:
        for line in guarded(lambda: operations.apply_orchestrator_job(resolved, docs)):
            print(line)
        ns = resolved.platform.namespace
        print(f"follow it with: kubectl -n {ns} logs -f job/{docs[-1]['metadata']['name']}")
    if render is None and not apply:
        print(text, end="")
