"""`toolkit deploy`: install or update the whole platform of one environment by running playbooks/site.yml.

`deploy_platform(env_name, check=False) -> DeployResult`:
1. resolve the environment (unknown name -> the resolver's error); a `sim` environment is refused (nothing to deploy:
   the simulated platform is created by `toolkit cluster up --env sim`);
2. check the cluster access before Ansible starts (kubeconfig and context present, else `UsageError` naming the
   file, the context and the way out), and refuse (`RefusedError`) when the environment file's versions are not
   reachable from what the pods run: a deploy never moves a platform backwards (the version-path rules of
   `toolkit upgrade`);
3. run the playbook (roles common, kafka, elasticsearch, ingest_workers) with `--diff`, and `--check` when asked;
4. gather per chart what the `toolkit_helm` module reported (release, action, revision, objects, diff) and per
   task what changed or failed.
Nothing here decides what a chart contains: values come from toolkit.provision.values inside the module.
A second run with the same configuration changes nothing (every task reports changed=false); check mode writes
nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from toolkit.config.environments import Environment, resolve
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


def _usage(message: str) -> Exception:
    from toolkit.operations import UsageError

    return UsageError(message)


def _refuse_version_regressions(environment: Environment) -> None:
    """The environment file's versions must be reachable from what runs: a deploy never downgrades a platform.

    Running versions are read from the pods (one LIST); the same version-path rules as `toolkit upgrade` judge them.
    """
    from toolkit import catalog
    from toolkit.engine import paths
    from toolkit.model import Component, PlatformState
    from toolkit.operations import RefusedError
    from toolkit.targets.kube import KubeWorkloads, api_client_for
    from toolkit.targets.real import _kubeconfig_for

    kubeconfig, context = _kubeconfig_for(environment)
    workloads = KubeWorkloads(api_client_for(kubeconfig, context), environment.platform.namespace).observe()
    state = PlatformState(environment=environment.name, observed_at=0.0, simulated=False, workloads=workloads)
    for component in Component:
        wanted = environment.platform.version_of(component.value)
        running = paths.running_versions(state, component)
        verdict = paths.check_upgrade_path(catalog.load(), component, running, wanted)
        if not verdict.ok:
            raise RefusedError(
                replace(
                    verdict,
                    reason=f"deploy of {environment.name} refused: {environment.source} asks for {component} "
                    f"{wanted}, but {verdict.reason}. Set {component}.version to a reachable version in that file "
                    "(a deploy never moves a platform backwards)",
                )
            )


def deploy_platform(env_name: str, check: bool = False) -> DeployResult:
    """Deploy (or, with `check`, preview) the platform of environment `env_name`; see the module docstring."""
    environment = resolve(env_name)
    if environment.kind == "sim":
        raise _usage(
            f"environment {environment.name} is simulated (kind sim): there is nothing to deploy; the simulated "
            f"platform is created by `toolkit cluster up --env {environment.name}`"
        )
    helm.cluster_access(environment)  # fails early, with the file/context and the way out
    _refuse_version_regressions(environment)
    started = time.monotonic()
    run = ansible.run_playbook(environment, check=check, diff=True)
    result = DeployResult(
        environment=environment.name,
        kind=environment.kind,
        namespace=environment.platform.namespace,
        check=check,
        tasks=list(run.tasks),
        seconds=time.monotonic() - started,
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
    return result
