"""Helm from Python (helm-python-sdk, Helm v4's Go library; no helm binary): the platform's three releases in one
environment.

`HelmReleases(environment)` is a context manager over one Helm configuration (the environment's kubeconfig and
context, its platform namespace). For a component (kafka | elasticsearch | workers) it offers:
- `values(component, version)`: `toolkit.provision.values.chart_values` + the environment's override file;
- `diff(component, values)`: a server-side dry-run upgrade (or install) renders the chart exactly as the real
  action would (the cluster's API versions, `lookup` of the Kafka cluster-id Secret), then the rendered manifest
  is compared object by object ((kind, namespace, name) -> parsed YAML) with the manifest of the release's
  current revision. The result lists each object created, updated or deleted, with a unified diff of its YAML;
  Secret `data`/`stringData` are replaced by a digest before diffing, so no secret value is ever printed.
- `apply(component, values, check)`: diff first; no change and a `deployed` release -> nothing is done
  (`changed=False`, the release keeps its revision). Otherwise install (no release yet) or upgrade, waiting for
  the release's workloads to be ready; after a first install, one more upgrade when the chart renders differently
  on upgrade than on install (the "settle" step: Elasticsearch drops `cluster.initial_master_nodes`), so a second
  deploy of the same values changes nothing; in check mode only the diff is returned. On `local` environments
  the static volumes the StatefulSets claim are created first (see below).
- `history(component)` and `status(component)`.
No rollback is offered here: a version goes back through `toolkit upgrade rollback`, which moves the pods behind
the engine's gates; a raw `helm rollback` would change the specs behind the engine's back.

Why client-side apply (`server_side_apply: false`, a native option the SDK's Python wrapper does not expose):
Kubernetes 1.20's server-side apply rejects Service ports without an explicit protocol, and the engine patches
workloads with strategic-merge patches; Helm's three-way merge coexists with both on every supported version.

A version change through Helm changes only the spec: the StatefulSets are `OnDelete` and the engine restarts the
pods; Deployments roll by themselves (maxUnavailable 0, maxSurge 1).

Static volumes on `local`: the local control plane has no storage provisioner. Before install/upgrade, one
PersistentVolume (hostPath, class `toolkit-local`, `claimRef` pre-bound) is created for every claim a rendered
StatefulSet will make (`<template>-<set>-<ordinal>`), so the PV controller binds the claims and the scheduler can
place the pods. Existing volumes are left alone (idempotent).

Errors are `DeployError` (a failed Helm action, naming the release and Helm's reason) or
`toolkit.operations.UsageError` (bad input: missing kubeconfig or context, sim environment, unknown component).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from toolkit.config.environments import Environment
from toolkit.config.wiring import RELEASES
from toolkit.errors import UsageError
from toolkit.provision import values as values_mod

REPO = Path(__file__).resolve().parents[2]
CHARTS_DIR = REPO / "charts"
OVERRIDES_DIR_NAME = "chart-values"
LOCAL_VOLUME_LABEL = "toolkit.io/local-volume"
LOCAL_VOLUME_ROOT = "/var/lib/toolkit-local"
DEFAULT_TIMEOUT_SECONDS = {"local": 180, "kind": 600, "kube": 900}
REDACTED_KINDS = frozenset({"Secret"})

ObjectKey = tuple[str, str, str]  # (kind, namespace, name)


class DeployError(RuntimeError):
    """A Helm action failed; the message names the release and Helm's reason."""


# ---------------------------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class ClusterAccess:
    """Where Helm talks to: a kubeconfig file (None = $KUBECONFIG or ~/.kube/config) and a context."""

    kubeconfig: str | None
    context: str | None


def cluster_access(environment: Environment) -> ClusterAccess:
    """The kubeconfig and context of an environment, checked before anything runs.

    local: `kubeconfig:` of the environment file, else the one `toolkit cluster up` writes in the state directory.
    kind/kube: `kubeconfig:` (must exist), else $KUBECONFIG, else ~/.kube/config; the context must be in it."""
    if environment.kind == "sim":
        raise UsageError(
            f"environment {environment.name} is simulated (kind sim): there is no cluster to deploy to; the "
            f"simulated platform is created by `toolkit cluster up --env {environment.name}`"
        )
    if environment.kind == "local" and not environment.kubeconfig:
        path = environment.state_dir() / "kubeconfig"
        if not path.is_file():
            raise UsageError(
                f"local environment {environment.name} is not running (no kubeconfig at {path}): start it with "
                f"`toolkit cluster up --env {environment.name}`"
            )
        return ClusterAccess(str(path), environment.kube_context)
    if environment.kubeconfig:
        path = Path(environment.kubeconfig).expanduser()
        if not path.is_file():
            raise UsageError(
                f"environment {environment.name}: kubeconfig {environment.kubeconfig} does not exist; fix "
                f"`kubeconfig:` in {environment.source}"
            )
    else:
        env_value = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
        path = Path(env_value).expanduser() if env_value else Path.home() / ".kube" / "config"
        if not path.is_file():
            raise UsageError(
                f"environment {environment.name}: no kubeconfig found ($KUBECONFIG unset or missing, no {path}); "
                f"set `kubeconfig:` in {environment.source} or export KUBECONFIG"
            )
    if environment.kube_context:
        contexts = _contexts(path)
        if environment.kube_context not in contexts:
            raise UsageError(
                f"environment {environment.name}: context {environment.kube_context!r} is not in kubeconfig {path} "
                f"(it has: {', '.join(contexts) or 'none'}); create it (e.g. `aws eks update-kubeconfig`, "
                f"`kind create cluster`) or fix `kube_context:` in {environment.source}"
            )
    return ClusterAccess(str(path), environment.kube_context)


def _contexts(path: Path) -> list[str]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"kubeconfig {path} cannot be read as YAML: {exc}") from None
    return [c.get("name", "") for c in data.get("contexts") or [] if isinstance(c, dict)]


def overrides_file(environment: Environment, component: str) -> Path:
    """Per-environment chart value overrides: `chart-values/<environment>/<chart>.yaml` beside the environment's
    file (for a region: beside stacks/Pulumi.<region>.yaml). Optional."""
    base = Path(environment.source).parent if environment.source else Path.cwd()
    return base / OVERRIDES_DIR_NAME / environment.name / f"{values_mod.chart_of(component)}.yaml"


def overrides_for(environment: Environment, component: str) -> dict[str, Any]:
    path = overrides_file(environment, component)
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UsageError(f"chart value override file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"chart value override file {path} must hold a mapping of chart values")
    return data


def environment_values(environment: Environment, component: str, version: str | None = None) -> dict[str, Any]:
    """Spec + catalog + the environment's override file: what `toolkit deploy` installs."""
    return values_mod.chart_values(environment, component, version, overrides_for(environment, component))


# ---------------------------------------------------------------------------------------------- manifests and diffs


@dataclass(frozen=True)
class ObjectChange:
    kind: str
    namespace: str
    name: str
    action: str  # create | update | delete
    diff: str  # unified diff of the object's YAML (secret data redacted)

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class ReleaseDiff:
    component: str
    release: str
    chart: str
    installed: bool  # a release exists already
    status: str  # the current revision's status ("" when not installed)
    changes: tuple[ObjectChange, ...]
    wanted_manifest: str = field(default="", repr=False)

    @property
    def changed(self) -> bool:
        """Something to do: objects differ, or the release is missing or not in `deployed` state."""
        return bool(self.changes) or not self.installed or self.status != "deployed"

    def text(self) -> str:
        return "".join(c.diff for c in self.changes)


def parse_manifest(text: str, default_namespace: str) -> dict[ObjectKey, dict[str, Any]]:
    """Rendered multi-document YAML -> {(kind, namespace, name): object}. Cluster-scoped objects get ''."""
    objects: dict[ObjectKey, dict[str, Any]] = {}
    for doc in yaml.safe_load_all(text or ""):
        if not isinstance(doc, dict) or "kind" not in doc:
            continue
        meta = doc.get("metadata") or {}
        namespace = meta.get("namespace") or (default_namespace if _namespaced(doc["kind"]) else "")
        objects[(doc["kind"], namespace, meta.get("name", ""))] = doc
    return objects


_CLUSTER_SCOPED = frozenset(
    {"ClusterRole", "ClusterRoleBinding", "Namespace", "PersistentVolume", "StorageClass", "PriorityClass",
     "CustomResourceDefinition"}
)  # fmt: skip


def _namespaced(kind: str) -> bool:
    return kind not in _CLUSTER_SCOPED


def redacted(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy safe to print: every value under a Secret's data/stringData becomes a short digest."""
    out = dict(obj)
    if obj.get("kind") in REDACTED_KINDS:
        for key in ("data", "stringData"):
            if isinstance(obj.get(key), dict):
                out[key] = {
                    k: f"(redacted, sha256 {hashlib.sha256(str(v).encode()).hexdigest()[:12]})"
                    for k, v in obj[key].items()
                }
    return out


def _dump(obj: Mapping[str, Any] | None) -> list[str]:
    if obj is None:
        return []
    return yaml.safe_dump(redacted(obj), sort_keys=True, default_flow_style=False).splitlines(keepends=True)


def diff_manifests(current: str, wanted: str, namespace: str) -> tuple[ObjectChange, ...]:
    """Per-object differences between the release's current manifest and the wanted one (sorted by key)."""
    before = parse_manifest(current, namespace)
    after = parse_manifest(wanted, namespace)
    changes = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        action = "create" if old is None else "delete" if new is None else "update"
        kind, ns, name = key
        label = f"{kind}/{name}" + (f" ({ns})" if ns else "")
        lines = difflib.unified_diff(_dump(old), _dump(new), f"{label} (current)", f"{label} (wanted)")
        changes.append(ObjectChange(kind, ns, name, action, "".join(lines)))
    return tuple(changes)


def claims_of(manifest: str, namespace: str) -> list[tuple[str, str, str]]:
    """(claim name, requested size, storage class) of every claim the rendered StatefulSets will make."""
    claims = []
    for (kind, _ns, name), obj in sorted(parse_manifest(manifest, namespace).items()):
        if kind != "StatefulSet":
            continue
        replicas = int(obj["spec"].get("replicas", 1))
        for template in obj["spec"].get("volumeClaimTemplates") or []:
            spec = template.get("spec") or {}
            size = str(((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi"))
            storage_class = spec.get("storageClassName") or ""
            for ordinal in range(replicas):
                claims.append((f"{template['metadata']['name']}-{name}-{ordinal}", size, storage_class))
    return claims


def static_volume(namespace: str, claim: str, size: str, storage_class: str) -> dict[str, Any]:
    """A hostPath PersistentVolume pre-bound to one claim (local environments only: nothing mounts it)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": f"{namespace}-{claim}"[:253],
            "labels": {LOCAL_VOLUME_LABEL: "true", "toolkit.io/namespace": namespace},
        },
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": storage_class,
            "claimRef": {"namespace": namespace, "name": claim},
            "hostPath": {"path": f"{LOCAL_VOLUME_ROOT}/{namespace}/{claim}", "type": "DirectoryOrCreate"},
        },
    }


# ---------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Revision:
    revision: int
    status: str
    chart: str
    app_version: str  # the component version this revision deployed (the chart's image.tag value)
    deployed_at: str
    description: str


@dataclass
class ApplyResult:
    component: str
    release: str
    action: str  # install | upgrade | none
    changed: bool
    check: bool
    revision: int  # the release's revision after the action (0: not installed)
    diff: ReleaseDiff
    volumes_created: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)  # objects changed by the post-install settle upgrade

    def summary(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "release": self.release,
            "action": self.action,
            "changed": self.changed,
            "check": self.check,
            "revision": self.revision,
            "objects": [{"ref": c.ref, "action": c.action} for c in self.diff.changes],
            "volumes_created": list(self.volumes_created),
            "settled": list(self.settled),
        }


# ---------------------------------------------------------------------------------------------- Helm actions


class HelmReleases:
    """The three releases of one environment, through one Helm configuration (see the module docstring)."""

    def __init__(self, environment: Environment, access: ClusterAccess | None = None) -> None:
        self.environment = environment
        self.access = access or cluster_access(environment)
        self.namespace = environment.platform.namespace
        self.timeout = DEFAULT_TIMEOUT_SECONDS.get(environment.kind, 600)
        self._config: Any = None

    def __enter__(self) -> HelmReleases:
        import helm_python

        self._config = helm_python.Config(
            kubeconfig_path=self.access.kubeconfig,
            kube_context=self.access.context,
            namespace=self.namespace,
        )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._config is not None:
            self._config.close()
            self._config = None

    @property
    def config(self) -> Any:
        if self._config is None:
            raise RuntimeError("HelmReleases is used outside its `with` block")
        return self._config

    # ------------------------------------------------------------------ reading

    def values(self, component: str, version: str | None = None) -> dict[str, Any]:
        """The chart values, with `previousVersion`: the version the release ran before its last version change
        (the deployed tag when this deploy changes it, else what the release already recorded), so that
        `toolkit upgrade rollback` knows where to return after a deploy-driven upgrade; stable across no-change
        deploys."""
        import helm_python

        values = environment_values(self.environment, component, version)
        config: dict[str, Any] = {}
        if self.current(component) is not None:
            try:
                config = dict(self.config.get_values(RELEASES[component]) or {})
            except helm_python.HelmError as exc:
                raise DeployError(f"cannot read the values of release {RELEASES[component]}: {exc}") from None
        deployed = str((config.get("image") or {}).get("tag") or "")
        wanted = str(values.get("image", {}).get("tag") or "")
        values["previousVersion"] = (
            deployed if deployed and deployed != wanted else str(config.get("previousVersion", ""))
        )
        return values

    def current(self, component: str) -> dict[str, Any] | None:
        """The release's latest revision (status() of Helm) or None when there is none."""
        import helm_python

        release = RELEASES[component]
        try:
            found = self.config.list(all_states=True, name_filter=f"^{release}$")
        except helm_python.HelmError as exc:
            raise DeployError(f"cannot list Helm releases in namespace {self.namespace}: {exc}") from None
        if not found:
            return None
        try:
            status: dict[str, Any] = self.config.status(release)
        except helm_python.HelmError as exc:
            raise DeployError(f"cannot read release {release} in namespace {self.namespace}: {exc}") from None
        return status

    def status(self, component: str) -> dict[str, Any] | None:
        """Name, revision, status, chart and deploy time of the release (no manifest), or None."""
        current = self.current(component)
        if current is None:
            return None
        return {k: v for k, v in current.items() if k not in ("manifest", "config")}

    def history(self, component: str) -> list[Revision]:
        """Every stored revision of the release, oldest first (empty when never installed)."""
        import helm_python

        release = RELEASES[component]
        if self.current(component) is None:
            return []
        try:
            revisions = self.config.history(release)
        except helm_python.HelmError as exc:
            raise DeployError(f"cannot read the history of release {release}: {exc}") from None
        out = []
        for item in revisions:
            number = int(item["revision"])
            try:
                config = self.config.get_values(release, revision=number)
            except helm_python.HelmError:
                config = {}
            out.append(
                Revision(
                    revision=number,
                    status=str(item.get("status", "")),
                    chart=f"{item.get('chart_name', '')}-{item.get('chart_version', '')}",
                    app_version=str(((config or {}).get("image") or {}).get("tag", "")),
                    deployed_at=str(item.get("deployed_at", "")),
                    description=str(item.get("description", "")),
                )
            )
        return sorted(out, key=lambda r: r.revision)

    def render(self, component: str, values: Mapping[str, Any]) -> str:
        """The manifest the next install/upgrade would apply: a server-side dry run against the cluster."""
        current = self.current(component)
        action = "helm_upgrade" if current is not None else "helm_install"
        result = self._native_release_action(action, component, values, dry_run="server")
        manifest: str = result.get("manifest", "")
        return manifest

    def diff(self, component: str, values: Mapping[str, Any]) -> ReleaseDiff:
        current = self.current(component)
        wanted = self._native_release_action(
            "helm_upgrade" if current is not None else "helm_install", component, values, dry_run="server"
        ).get("manifest", "")
        changes = diff_manifests(current.get("manifest", "") if current else "", wanted, self.namespace)
        return ReleaseDiff(
            component=component,
            release=RELEASES[component],
            chart=values_mod.chart_of(component),
            installed=current is not None,
            status=str(current.get("status", "")) if current else "",
            changes=changes,
            wanted_manifest=wanted,
        )

    # ------------------------------------------------------------------ writing

    def apply(self, component: str, values: Mapping[str, Any], check: bool = False) -> ApplyResult:
        """Install or upgrade the release to `values` when the rendered objects differ (see the module docstring)."""
        release = RELEASES[component]
        current = self.current(component)
        if current is not None and str(current.get("status", "")).startswith("pending"):
            raise DeployError(
                f"release {release} in namespace {self.namespace} is {current['status']}: another Helm operation is "
                "running or was interrupted; wait for it, or inspect it with `toolkit deploy --check`"
            )
        diff = self.diff(component, values)
        revision = int(current["revision"]) if current else 0
        action = "none" if not diff.changed else "upgrade" if current is not None else "install"
        result = ApplyResult(component, release, action, diff.changed, check, revision, diff)
        if check or not diff.changed:
            return result
        if self.environment.kind == "local":
            result.volumes_created = self.ensure_static_volumes(diff.wanted_manifest)
        applied = self._native_release_action(
            "helm_upgrade" if current is not None else "helm_install", component, values, dry_run=None
        )
        result.revision = int(applied.get("revision", revision + 1))
        self.wait_ready(diff.wanted_manifest)
        if current is None:
            # Settle: a chart may render differently on install than on upgrade (Elasticsearch's
            # cluster.initial_master_nodes exists only for the first start). Once the pods are ready, upgrade once
            # to the steady-state rendering, so that the next deploy of the same values changes nothing.
            settled = self.diff(component, values)
            if settled.changes:
                applied = self._native_release_action("helm_upgrade", component, values, dry_run=None)
                result.revision = int(applied.get("revision", result.revision + 1))
                result.settled = [c.ref for c in settled.changes]
        return result

    def wait_ready(self, manifest: str) -> None:
        """Wait until every StatefulSet of `manifest` has all its replicas ready and every Deployment has rolled
        out (observed generation, updated and available replicas). Helm's own wait treats an `OnDelete`
        StatefulSet as done before its pods are ready, so the toolkit checks the workloads itself."""
        import time

        from kubernetes import client, config

        workloads = [
            (kind, name)
            for (kind, _ns, name) in parse_manifest(manifest, self.namespace)
            if kind in ("StatefulSet", "Deployment")
        ]
        api = config.new_client_from_config(config_file=self.access.kubeconfig, context=self.access.context)
        deadline = time.monotonic() + self.timeout
        pending: list[str] = []
        try:
            apps = client.AppsV1Api(api)
            while True:
                pending = []
                for kind, name in workloads:
                    if kind == "StatefulSet":
                        obj = apps.read_namespaced_stateful_set_status(name, self.namespace)
                        wanted = obj.spec.replicas or 0
                        ready = obj.status.ready_replicas or 0
                        if ready < wanted:
                            pending.append(f"StatefulSet/{name} ({ready}/{wanted} ready)")
                    else:
                        obj = apps.read_namespaced_deployment_status(name, self.namespace)
                        wanted = obj.spec.replicas or 0
                        status = obj.status
                        done = (
                            (status.observed_generation or 0) >= (obj.metadata.generation or 0)
                            and (status.updated_replicas or 0) >= wanted
                            and (status.available_replicas or 0) >= wanted
                            and (status.replicas or 0) <= wanted
                        )
                        if not done:
                            pending.append(
                                f"Deployment/{name} ({status.updated_replicas or 0}/{wanted} updated, "
                                f"{status.available_replicas or 0} available)"
                            )
                if not pending:
                    return
                if time.monotonic() > deadline:
                    raise DeployError(
                        f"namespace {self.namespace}: not ready after {self.timeout} s: {'; '.join(pending)}; "
                        "inspect the pods (kubectl describe) and run the deploy again"
                    )
                time.sleep(0.5)
        finally:
            api.close()

    def ensure_static_volumes(self, manifest: str) -> list[str]:
        """Create the missing pre-bound volumes for the claims of `manifest` (local environments)."""
        from kubernetes import client, config
        from kubernetes.client.rest import ApiException

        api = config.new_client_from_config(config_file=self.access.kubeconfig, context=self.access.context)
        created = []
        try:
            core = client.CoreV1Api(api)
            existing = {pv.metadata.name for pv in core.list_persistent_volume().items}
            for claim, size, storage_class in claims_of(manifest, self.namespace):
                body = static_volume(self.namespace, claim, size, storage_class)
                if body["metadata"]["name"] in existing:
                    continue
                try:
                    core.create_persistent_volume(body)
                except ApiException as exc:
                    if exc.status != 409:
                        raise DeployError(f"cannot create volume {body['metadata']['name']}: {exc.reason}") from None
                    continue
                created.append(body["metadata"]["name"])
        finally:
            api.close()
        return created

    def _native_release_action(
        self, action: str, component: str, values: Mapping[str, Any], dry_run: str | None
    ) -> dict[str, Any]:
        """helm_install / helm_upgrade through the native call, adding `server_side_apply: false` (see docstring)."""
        import helm_python
        from helm_python import _native

        release = RELEASES[component]
        chart_dir = CHARTS_DIR / values_mod.chart_of(component)
        opts: dict[str, Any] = {
            "namespace": self.namespace,
            "timeout_seconds": self.timeout,
            # install takes a boolean, upgrade Helm's tri-state string (auto | true | false)
            "server_side_apply": False if action == "helm_install" else "false",
            "description": f"toolkit deploy: {component} {dict(values).get('image', {}).get('tag', '')}",
        }
        if dry_run is not None:
            opts["dry_run"] = dry_run
        else:
            opts["wait"] = "watcher"
        try:
            raw = _native.call_string(
                action,
                self.config._raw(),
                _native.HANDLE(0),
                _native.HANDLE(0),
                str(chart_dir),
                release,
                json.dumps(dict(values)),
                json.dumps(opts),
            )
        except helm_python.HelmError as exc:
            verb = "install" if action == "helm_install" else "upgrade"
            what = "dry run of " if dry_run else ""
            raise DeployError(
                f"{what}{verb} of release {release} (chart {chart_dir.name}) in namespace {self.namespace} failed: "
                f"{str(exc).strip()}"
            ) from None
        result: dict[str, Any] = json.loads(raw)
        return result


def iter_components() -> Iterator[str]:
    """Components with a chart in the catalog's upgrade order (Kafka, Elasticsearch, workers): the order to install
    them (Kubernetes itself has no chart)."""
    from toolkit import catalog

    yield from catalog.load().charted()


# ---------------------------------------------------------------------------------------------- offline rendering

# What a cluster of each Kubernetes version serves, as `helm template --kube-version --api-versions` takes it:
# 1.20 serves neither policy/v1 nor autoscaling/v2 (the local control plane); later versions serve both.
API_VERSIONS_1_20 = (
    "policy/v1beta1",
    "policy/v1beta1/PodDisruptionBudget",
    "autoscaling/v2beta2",
    "autoscaling/v2beta2/HorizontalPodAutoscaler",
)
API_VERSIONS_MODERN = (
    "policy/v1",
    "policy/v1/PodDisruptionBudget",
    "autoscaling/v2",
    "autoscaling/v2/HorizontalPodAutoscaler",
)
KUBE_CAPABILITIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "1.20": ("v1.20.2", API_VERSIONS_1_20),
    "1.25": ("v1.25.0", API_VERSIONS_MODERN),
    "1.33": ("v1.33.0", API_VERSIONS_MODERN),
}
# the Kubernetes version each kind of environment runs, for rendering without a cluster
RENDER_KUBE = {"local": "1.20", "kind": "1.33", "kube": "1.33"}


def render_offline(
    chart: str,
    values: Mapping[str, Any],
    *,
    release: str,
    namespace: str,
    kube: str | None = None,
    is_upgrade: bool = False,
    api_versions: Sequence[str] = (),
) -> dict[str, str]:
    """Render `chart` without a cluster, as `helm template` would (template name -> text), for the Kubernetes version
    key `kube` (a key of KUBE_CAPABILITIES) or Helm's default capabilities; `api_versions` adds what a cluster serves
    beyond those (e.g. "monitoring.coreos.com/v1" where the Prometheus Operator runs), as `--api-versions` does."""
    import helm_python
    from helm_python import _native

    opts: dict[str, Any] = {"name": release, "namespace": namespace}
    if is_upgrade:
        opts.update(is_install=False, is_upgrade=True)
    if kube is not None:
        kube_version, served = KUBE_CAPABILITIES[kube]
        opts.update(kube_version=kube_version, api_versions=[*served, *api_versions])
    elif api_versions:
        opts.update(api_versions=list(api_versions))
    try:
        with helm_python.Chart.load(CHARTS_DIR / chart) as loaded:
            raw = _native.call_string("helm_render", loaded._raw(), json.dumps(dict(values)), json.dumps(opts))
    except helm_python.HelmError as exc:
        raise DeployError(f"rendering chart {chart} (release {release}) failed: {str(exc).strip()}") from None
    rendered: dict[str, str] = json.loads(raw)
    return rendered


def manifest_of(rendered: Mapping[str, str]) -> str:
    """One multi-document manifest from rendered templates, in template order (NOTES.txt left out)."""
    parts = [text.strip() for name, text in sorted(rendered.items()) if not name.endswith("NOTES.txt") and text.strip()]
    return "\n---\n".join(parts) + "\n"
