"""`toolkit cluster up|down|status` for real environments; each returns a printable sentence.

- local: delegates to `toolkit.targets.local` (control plane + node agent + peer operator) in the environment's state
  directory.
- kind: `kind create cluster --name NAME --config kind-config.yaml` where NAME comes from the environment's context
  (`kind-NAME`, default `kind-toolkit`). A marker file in the state directory records that the toolkit created
  it; `down` deletes only a cluster with that marker. Missing `kind` or `docker` (binary or daemon) is an error
  naming the part and how to install or start it, before anything runs.
- kube (EKS or any kubeconfig context): never created or deleted by the toolkit; `status` says whether the
  context answers.
Missing parts raise `toolkit.operations.UsageError` (imported inside the functions: this module is imported only
by the CLI's command bodies).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from toolkit.config.environments import Environment
from toolkit.errors import UsageError

KIND_INSTALL = (
    "install it: https://kind.sigs.k8s.io/docs/user/quick-start/#installation "
    "(e.g. `go install sigs.k8s.io/kind@v0.27.0`)"
)
DOCKER_INSTALL = "install Docker Engine: https://docs.docker.com/engine/install/"
KIND_CONFIG = "kind-config.yaml"
MARKER = "kind-created.json"


def kind_cluster_name(env: Environment) -> str:
    context = env.kube_context or "kind-toolkit"
    if not context.startswith("kind-"):
        raise UsageError(
            f"environment {env.name}: kube_context {context!r} is not a kind context (kind names them kind-NAME); "
            "set kube_context: kind-toolkit in the environment file"
        )
    return context[len("kind-") :]


def missing_kind_parts() -> list[str]:
    """What the machine lacks to run kind, each with how to get it (empty when all is there)."""
    missing = []
    if shutil.which("kind") is None:
        missing.append(f"kind is not on PATH; {KIND_INSTALL}")
    if shutil.which("docker") is None:
        missing.append(f"docker is not on PATH; {DOCKER_INSTALL}")
    else:
        try:
            probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=20)
            if probe.returncode != 0:
                tail = (probe.stderr or probe.stdout).strip().splitlines()[-1:] or [""]
                missing.append(
                    f"the docker daemon does not answer (`docker info`: {tail[0]}); start it "
                    "(`sudo systemctl start docker`) or give your user access to its socket"
                )
        except (OSError, subprocess.TimeoutExpired) as exc:
            missing.append(f"the docker daemon does not answer (`docker info`: {exc}); start it")
    return missing


def kind_config_path() -> Path:
    for candidate in (Path(__file__).resolve().parents[2] / KIND_CONFIG, Path.cwd() / KIND_CONFIG):
        if candidate.is_file():
            return candidate
    raise UsageError(f"{KIND_CONFIG} not found beside the toolkit or in {Path.cwd()}: run from the repository root")


def _kind_clusters() -> list[str]:
    out = subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise UsageError(f"`kind get clusters` failed: {out.stderr.strip()}")
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def _marker(env: Environment) -> Path:
    return env.state_dir() / MARKER


def _context_answers(env: Environment, timeout: float = 10.0) -> tuple[bool, str]:
    try:
        from kubernetes import client

        from toolkit.targets.kube.client import api_client_for

        api = api_client_for(env.kubeconfig, env.kube_context)
        info = client.VersionApi(api).get_code(_request_timeout=timeout)
        return True, f"Kubernetes {info.git_version}"
    except Exception as exc:  # any failure means "does not answer"; the message says why
        return False, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"


# ---------------------------------------------------------------------------------------------- commands


def up(env: Environment) -> str:
    if env.kind == "local":
        from toolkit.targets import local

        try:
            cluster = local.up(env.state_dir())
        except local.MissingBinariesError as exc:
            raise UsageError(str(exc)) from None
        except local.ControlPlaneError as exc:
            raise UsageError(f"local control plane did not start: {exc}") from None
        state = (
            "already running"
            if cluster.reused
            else f"started (apiserver ready in {cluster.apiserver_ready_seconds:.1f} s)"
        )
        serving = local.status(env.state_dir())
        return "\n".join(
            [
                f"local control plane {state} at {cluster.server}; kubeconfig {cluster.kubeconfig}",
                *serving.data_plane_lines(),
                "Every platform namespace gets its own single-node Kafka + Elasticsearch (noida-db) behind TLS with "
                "the platform's certificates, published as its Kafka bootstrap and Elasticsearch HTTP Services; the "
                "multi-node Kafka/Elasticsearch the engine gates on is a simulated data plane that follows the real "
                "pods",
            ]
        )
    if env.kind == "kind":
        name = kind_cluster_name(env)
        missing = missing_kind_parts()
        if missing:
            raise UsageError(f"cannot create kind cluster {name}: " + "; ".join(missing))
        if name in _kind_clusters():
            return f"kind cluster {name} already exists (context kind-{name}); nothing created"
        config_file = kind_config_path()
        started = time.monotonic()
        run = subprocess.run(
            ["kind", "create", "cluster", "--name", name, "--config", str(config_file), "--wait", "120s"],
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            raise UsageError(f"`kind create cluster --name {name}` failed: {run.stderr.strip()[-800:]}")
        marker = _marker(env)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"cluster": name, "config": str(config_file), "created_at": time.time()}))
        return f"kind cluster {name} created in {time.monotonic() - started:.0f} s (context kind-{name})"
    if env.kind == "kube":
        raise UsageError(
            f"environment {env.name} is of kind kube: the toolkit never creates a cluster it does not own; "
            "provision it with `toolkit region up` (EKS) or your own tooling, then check it with "
            "`toolkit cluster status`"
        )
    raise UsageError(f"environment {env.name} is of kind {env.kind}: `cluster up` handles local, kind and kube")


def down(env: Environment) -> str:
    if env.kind == "local":
        from toolkit.targets import local

        local.down(env.state_dir())
        return (
            f"local control plane, node agent and peer operator in {env.state_dir()} stopped "
            "(data kept; it restarts with `cluster up`)"
        )
    if env.kind == "kind":
        name = kind_cluster_name(env)
        marker = _marker(env)
        if not marker.is_file():
            return (
                f"kind cluster {name} was not created by the toolkit (no marker at {marker}): left alone; "
                f"delete it yourself with `kind delete cluster --name {name}` if you mean to"
            )
        if shutil.which("kind") is None:
            raise UsageError(f"cannot delete kind cluster {name}: kind is not on PATH; {KIND_INSTALL}")
        run = subprocess.run(["kind", "delete", "cluster", "--name", name], capture_output=True, text=True)
        if run.returncode != 0:
            raise UsageError(f"`kind delete cluster --name {name}` failed: {run.stderr.strip()[-800:]}")
        marker.unlink()
        return f"kind cluster {name} deleted"
    if env.kind == "kube":
        raise UsageError(
            f"environment {env.name} is of kind kube: the toolkit never deletes a cluster it does not own; "
            "tear it down with `toolkit region destroy` (EKS) or your own tooling"
        )
    raise UsageError(f"environment {env.name} is of kind {env.kind}: `cluster down` handles local, kind and kube")


@dataclass(frozen=True)
class ClusterStatus:
    """What `toolkit cluster status` reports: whether the environment's cluster answers, and the details."""

    environment: str
    kind: str
    answers: bool
    lines: tuple[str, ...]

    def __str__(self) -> str:
        return "\n".join(self.lines)

    def as_dict(self) -> dict[str, object]:
        return {
            "environment": self.environment,
            "kind": self.kind,
            "answers": self.answers,
            "details": list(self.lines),
        }


def status(env: Environment) -> ClusterStatus:
    if env.kind == "local":
        from toolkit.targets import local

        st = local.status(env.state_dir())
        lines = [
            f"local environment {env.name} ({st.control_plane.state_dir}): {'running' if st.running else 'not running'}"
        ]
        for p in (*st.control_plane.processes, st.node_agent, st.peer_operator):
            lines.append(f"  {p.name}: {'running' if p.running else 'stopped'}" + (f" (pid {p.pid})" if p.pid else ""))
        lines.append(f"  apiserver /readyz: {'ok' if st.control_plane.apiserver_ready else 'no answer'}")
        lines += [f"  {line}" for line in st.data_plane_lines()]
        missing = local.missing_binaries()
        if missing:
            lines.append(f"  missing: {', '.join(missing)}; run scripts/local-control-plane.sh")
        return ClusterStatus(env.name, env.kind, bool(st.control_plane.apiserver_ready), tuple(lines))
    if env.kind == "kind":
        name = kind_cluster_name(env)
        missing = missing_kind_parts()
        if missing:
            return ClusterStatus(
                env.name, env.kind, False, (f"kind cluster {name}: cannot be checked here: " + "; ".join(missing),)
            )
        exists = name in _kind_clusters()
        created = "created by the toolkit" if _marker(env).is_file() else "not created by the toolkit"
        if not exists:
            line = f"kind cluster {name}: does not exist (create it with `toolkit cluster up --env {env.name}`)"
            return ClusterStatus(env.name, env.kind, False, (line,))
        answers, detail = _context_answers(env)
        verdict = "answers" if answers else "does not answer"
        line = f"kind cluster {name}: exists ({created}); context kind-{name} {verdict}: {detail}"
        return ClusterStatus(env.name, env.kind, answers, (line,))
    if env.kind == "kube":
        answers, detail = _context_answers(env)
        context = env.kube_context or "(current context)"
        verdict = "answers" if answers else "does not answer"
        return ClusterStatus(
            env.name, env.kind, answers, (f"environment {env.name}: context {context} {verdict}: {detail}",)
        )
    raise UsageError(f"environment {env.name} is of kind {env.kind}: `cluster status` handles local, kind and kube")


def node_image(env: Environment, image: str, groups: list[str]) -> str:
    """`toolkit cluster node-image`: publish a new node image to the local node pool's groups (all, or `groups`):
    nodes launched from then on use it, and `toolkit upgrade run --to kubernetes=<the control plane's version>`
    replaces every node still on the old one (a roll at the same version, as an AMI release is rolled out)."""
    if env.kind != "local":
        raise UsageError(
            f"environment {env.name} is of kind {env.kind}: node images are published this way on the local cluster "
            "only; on EKS a new node image comes with a new node group generation (region:nodeGroupVersions)"
        )
    if not image.strip():
        raise UsageError("give the new node image's name (e.g. local-2)")
    from toolkit.targets.local.nodepool import NodePool, PoolError
    from toolkit.targets.real import kube_api

    api = kube_api(env)
    try:
        pool = NodePool(api)
        document = pool.read()
        if document is None:
            raise UsageError(
                f"the local cluster of {env.name} has no node pool yet: start it with `toolkit cluster up`"
            )
        names = groups or sorted(document["groups"])
        unknown = [g for g in names if g not in document["groups"]]
        if unknown:
            raise UsageError(
                f"node pool group {unknown[0]} does not exist (groups: {', '.join(sorted(document['groups']))})"
            )
        try:
            for group in names:
                pool.set_image(group, image)
        except PoolError as exc:
            raise UsageError(str(exc)) from None
        stale = sorted(n for n, e in document["nodes"].items() if e["group"] in names and e.get("image") != image)
    finally:
        api.close()
    return (
        f"node image {image} published to {', '.join(names)}; {len(stale)} node(s) run an older image "
        f"({', '.join(stale) or 'none'}): `toolkit upgrade plan --env {env.name} --to kubernetes=<its version>` "
        "replaces them"
    )
