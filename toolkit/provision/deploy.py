"""`toolkit deploy`: install or update the whole platform of one environment by running playbooks/site.yml.

`deploy_platform(environment, check=False) -> DeployResult`:
1. a `sim` environment is refused (nothing to deploy: the simulated platform is created by `toolkit cluster up`);
2. check the cluster access before Ansible starts (kubeconfig and context present, else `UsageError` naming the
   file, the context and the way out);
3. decide each component's version. State is read, intent is written: a component already installed keeps the
   version its workloads ask for in the cluster (versions move only through `toolkit upgrade run`, behind the
   gates); the environment file's version applies only to a component not installed yet. When the two differ the
   result carries a note saying so (never a refusal: `deploy` after `upgrade run` just works);
4. run the playbook (roles common, kafka, elasticsearch, ingest_workers) with `--diff`, and `--check` when asked,
   handing the modules the environment resolved once (its document) and the versions;
5. gather per chart what the `toolkit_helm` module reported (release, action, revision, objects, diff) and per
   task what changed or failed.
Nothing here decides what a chart contains: values come from toolkit.provision.values inside the module.
A second run with the same configuration changes nothing (every task reports changed=false); check mode writes
nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.config.environments import Environment
from toolkit.errors import UsageError
from toolkit.model import Workload
from toolkit.provision import ansible, helm

HELM_ROLES = {"kafka": "kafka", "elasticsearch": "elasticsearch", "ingest_workers": "workers"}


@dataclass(frozen=True)
class ChartResult:
    component: str
    release: str
    action: str  # install | upgrade | none
    changed: bool
    revision: int
    objects: list[dict[str, str]]
    diff: str


@dataclass
class DeployResult:
    environment: str
    kind: str
    namespace: str
    check: bool
    charts: list[ChartResult] = field(default_factory=list)
    tasks: list[ansible.TaskResult] = field(default_factory=list)
    seconds: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[ansible.TaskResult]:
        return [t for t in self.tasks if t.failed]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def changed(self) -> bool:
        return any(t.changed for t in self.tasks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "kind": self.kind,
            "namespace": self.namespace,
            "check": self.check,
            "ok": self.ok,
            "changed": self.changed,
            "seconds": round(self.seconds, 2),
            "versions": dict(self.versions),
            "notes": list(self.notes),
            "charts": [
                {
                    "component": c.component,
                    "release": c.release,
                    "action": c.action,
                    "changed": c.changed,
                    "revision": c.revision,
                    "objects": c.objects,
                    "diff": c.diff,
                }
                for c in self.charts
            ],
            "tasks": [
                {"role": t.role, "task": t.task, "changed": t.changed, "failed": t.failed, "message": t.message}
                for t in self.tasks
            ],
        }


def deploy_versions(environment: Environment, workloads: tuple[Workload, ...]) -> tuple[dict[str, str], list[str]]:
    """(component -> version to deploy, notes): what runs wins over what the file asks for (see the module doc)."""
    from toolkit import catalog

    versions: dict[str, str] = {}
    notes: list[str] = []
    for component in catalog.load().charted():
        asked = environment.platform.version_of(component)
        specs = sorted({w.target_version for w in workloads if w.component == component and w.target_version})
        if not specs:
            versions[component] = asked
            continue
        running = specs[-1]
        versions[component] = running
        if running != asked:
            notes.append(
                f"{component}: {environment.source or 'the environment'} asks for {asked}, the cluster runs {running}; "
                f"deploy keeps {running} (versions change through `toolkit upgrade run --to {component}=VERSION`)"
            )
    return versions, notes


def _observe_workloads(environment: Environment) -> tuple[Workload, ...]:
    from toolkit.targets.kube.client import api_client_for
    from toolkit.targets.kube.workloads import KubeWorkloads

    access = helm.cluster_access(environment)
    api = api_client_for(access.kubeconfig, access.context)
    try:
        return KubeWorkloads(api, environment.platform.namespace).observe()
    finally:
        api.close()


def _require_senders(environment: Environment) -> None:
    if not environment.platform.workers.syslog_sources:
        raise UsageError(
            f"environment {environment.name} ({environment.source or 'its file'}): platform.workers.syslog_sources is "
            "empty, and no syslog sender is trusted by default: list the CIDRs allowed to send syslog (e.g. "
            "[10.20.0.0/16]); nothing was changed"
        )


def deploy_platform(environment: Environment, check: bool = False) -> DeployResult:
    """Deploy (or, with `check`, preview) the platform of `environment`; see the module docstring."""
    if environment.kind == "sim":
        raise UsageError(
            f"environment {environment.name} is simulated (kind sim): there is nothing to deploy; the simulated "
            f"platform is created by `toolkit cluster up --env {environment.name}`"
        )
    _require_senders(environment)
    helm.cluster_access(environment)  # fails early, with the file/context and the way out
    versions, notes = deploy_versions(environment, _observe_workloads(environment))
    started = time.monotonic()
    run = ansible.run_playbook(environment, check=check, diff=True, versions=versions)
    result = DeployResult(
        environment=environment.name,
        kind=environment.kind,
        namespace=environment.platform.namespace,
        check=check,
        tasks=list(run.tasks),
        seconds=time.monotonic() - started,
        versions=versions,
        notes=notes,
    )
    for task in run.tasks:
        component = HELM_ROLES.get(task.role)
        if component is None or task.skipped:
            continue
        res = task.result
        result.charts.append(
            ChartResult(
                component=component,
                release=str(res.get("release", "")),
                action=str(res.get("action", "failed" if task.failed else "")),
                changed=task.changed,
                revision=int(res.get("revision", 0) or 0),
                objects=list(res.get("objects", [])),
                diff=task.diff,
            )
        )
    if not check and result.ok and environment.platform.elasticsearch.snapshots is not None:
        result.notes.append(register_snapshot_repository(environment))
    return result


def register_snapshot_repository(environment: Environment) -> str:
    """Register the region's S3 snapshot repository on its Elasticsearch (idempotent; Elasticsearch verifies it
    from every node); the outcome as a note, since a cluster still starting registers it on the next deploy."""
    from toolkit.targets.es_admin import EsConfigError, client_for
    from toolkit.targets.es_snapshots import SnapshotError, register_s3_repository
    from toolkit.targets.real import discovered

    snapshots = environment.platform.elasticsearch.snapshots
    assert snapshots is not None
    with discovered(environment) as found:
        if found.elasticsearch is None:
            return (
                f"snapshot repository not registered: {found.missing.get('elasticsearch', 'no Elasticsearch access')}"
            )
        try:
            es = client_for(found.elasticsearch, request_timeout=120)
        except EsConfigError as exc:
            return f"snapshot repository not registered: {exc}"
        try:
            repo = register_s3_repository(es, snapshots.bucket)
        except SnapshotError as exc:
            return f"snapshot repository not registered (rerun deploy once Elasticsearch is green): {exc}"
        except Exception as exc:  # the cluster does not answer yet: the next deploy registers it
            return f"snapshot repository not registered: Elasticsearch does not answer ({type(exc).__name__}: {exc})"
        finally:
            es.close()
    state = "registered" if repo.changed else "already registered"
    return f"snapshot repository {repo.name} ({repo.type} bucket {snapshots.bucket}) {state}"


@dataclass
class Rendered:
    environment: str
    directory: str
    versions: dict[str, str]
    files: list[str] = field(default_factory=list)


def render_platform(environment: Environment, directory: Path, versions: dict[str, str] | None = None) -> Rendered:
    """Write, without a cluster, exactly the manifests `deploy` would apply (as `helm template` does): one file per
    release (`<release>.yaml`) plus its effective values (`<release>.values.yaml`), for the versions given or the
    environment file's. Secrets are not among them: `deploy` creates those in the cluster (they never reach disk)."""
    import yaml

    from toolkit import catalog
    from toolkit.config.wiring import RELEASES

    if environment.kind == "sim":
        raise UsageError(f"environment {environment.name} is simulated (kind sim): it has no manifests to render")
    _require_senders(environment)
    wanted = {c: environment.platform.version_of(c) for c in catalog.load().charted()} | dict(versions or {})
    directory.mkdir(parents=True, exist_ok=True)
    out = Rendered(environment.name, str(directory), wanted)
    for component in catalog.load().charted():
        values = helm.environment_values(environment, component, wanted[component])
        release = RELEASES[component]
        rendered = helm.render_offline(
            catalog.load().component(component).chart,
            values,
            release=release,
            namespace=environment.platform.namespace,
            kube=helm.RENDER_KUBE.get(environment.kind),
        )
        manifest = directory / f"{release}.yaml"
        manifest.write_text(helm.manifest_of(rendered))
        values_file = directory / f"{release}.values.yaml"
        values_file.write_text(yaml.safe_dump(values, sort_keys=False))
        out.files += [str(manifest), str(values_file)]
    return out
