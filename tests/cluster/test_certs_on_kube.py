"""`toolkit certs rotate` against the REAL apiserver of the local control plane: the Secrets deploy makes
(`credentials.ensure`, the `common` role's own call: the CA in `<namespace>-pki`), a Kafka-like StatefulSet (OnDelete)
and a worker Deployment whose pods the node agent runs; the rotation is the product's (`operations.rotate_certs`),
its restarts the engine's through `KubeWorkloads` (the local data plane is simulated and follows the real pods).

After each phase's Secrets are written, every Secret is read back from the apiserver and checked: trust = every
`ca.crt` is [old CA, new CA] and the new CA's key sits in the pki namespace only; reissue = every leaf signed by the
new CA with a new key, bundles unchanged; drop = every `ca.crt` is [new CA] and the CA Secret holds the new CA alone.
After each phase's roll every pod has been replaced (another UID) on the phase's stamp. A missing Secret is refused
before anything changes.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from local_cluster_helpers import FAST_DATA_PLANE, is_ready, wait_for

from toolkit import operations
from toolkit.catalog import load
from toolkit.config.environments import resolve
from toolkit.engine.executor import Event
from toolkit.model import UpgradeSettings
from toolkit.provision import certs, credentials
from toolkit.provision.rotation import STAMP_ANNOTATION
from toolkit.targets.kube.certs import PROGRESS_CONFIGMAP, PROGRESS_KEY

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

KAFKA, WORKERS = "4.0.1", "0.1.0"
SETTINGS = UpgradeSettings(
    poll_interval=0.5, confirm_seconds=1.0, step_timeout=60.0, gate_timeout=60.0, restart_budget=2
)


def _labels(component: str, role: str, version: str) -> dict[str, str]:
    return {
        "app": f"{component}-{role}",
        "toolkit.io/component": component,
        "app.kubernetes.io/component": role,
        "app.kubernetes.io/version": version,
    }


def _template(component: str, role: str, version: str) -> dict[str, Any]:
    return {
        "metadata": {
            "labels": _labels(component, role, version),
            "annotations": {"toolkit.io/ready-delay-seconds": "0.5"},
        },
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "main", "image": load().component(component).image_ref(version)}],
        },
    }


def create_workloads(api: Any, namespace: str) -> None:
    """kafka: a 3-node combined StatefulSet (OnDelete); workers-indexer: a Deployment (2, surge 1, unavailable 0)."""
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "kafka-headless"}, "spec": {"clusterIP": "None", "selector": {"app": "k"}}}
    )
    apps.create_namespaced_stateful_set(
        namespace,
        {
            "metadata": {
                "name": "kafka",
                "labels": _labels("kafka", "combined", KAFKA),
                "annotations": {"toolkit.io/kafka-node-id-base": "0"},
            },
            "spec": {
                "serviceName": "kafka-headless",
                "replicas": 3,
                "podManagementPolicy": "Parallel",
                "updateStrategy": {"type": "OnDelete"},
                "selector": {"matchLabels": {"app": "kafka-combined"}},
                "template": _template("kafka", "combined", KAFKA),
            },
        },
    )
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "workers-indexer", "labels": _labels("workers", "indexer", WORKERS)},
            "spec": {
                "replicas": 2,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "selector": {"matchLabels": {"app": "workers-indexer"}},
                "template": _template("workers", "indexer", WORKERS),
            },
        },
    )

    def all_ready() -> bool:
        pods = core.list_namespaced_pod(namespace, label_selector="toolkit.io/component").items
        return len(pods) == 5 and all(is_ready(p) for p in pods)

    wait_for(all_ready, 90, "3 kafka pods and 2 indexer pods Ready")


@pytest.fixture
def environment(local_env: Any, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A `local` environment file for the session's control plane and this test's namespace; its pki namespace is
    removed afterwards (the `namespace` fixture removes the platform's)."""
    envs = tmp_path / "environments"
    envs.mkdir()
    name = f"cr-{namespace}"
    document = {
        "kind": "local",
        "kubeconfig": str(local_env.cluster.kubeconfig),
        "platform": {
            "namespace": namespace,
            "kafka": {
                "version": KAFKA,
                "combined": True,
                "controllers": 0,
                "brokers": 3,
                "topics": 2,
                "partitions_per_topic": 3,
            },
            "workers": {"version": WORKERS, "receivers": 1, "indexers": 2},
        },
        "sim": FAST_DATA_PLANE,
    }
    (envs / f"{name}.yaml").write_text(yaml.safe_dump(document))
    monkeypatch.setenv("TOOLKIT_ENVIRONMENTS_DIR", str(envs))
    monkeypatch.setenv("TOOLKIT_STATE_DIR", str(tmp_path / "state"))
    yield name
    try:
        client.CoreV1Api(local_env.api_client).delete_namespace(credentials.ca_namespace(namespace))
    except ApiException as exc:
        if exc.status != 404:
            raise


def read_secrets(core: Any, items: credentials.CredentialPlan) -> dict[str, Any]:
    """Every Secret of the plan as the apiserver holds it now: name -> (type, data)."""
    out: dict[str, Any] = {}
    for namespace, name in [(items.ca_namespace, items.ca_secret)] + [
        (items.namespace, n) for n in certs.secret_names(items)
    ]:
        obj = core.read_namespaced_secret(name, namespace)
        key = name if namespace == items.namespace else f"{namespace}/{name}"
        out[key] = (obj.type, {k: base64.b64decode(v) for k, v in (obj.data or {}).items()})
    return out


def fingerprints(pem: bytes) -> list[str]:
    return [certs.fingerprint(c) for c in certs.certificates(pem)]


def test_rotation_writes_each_phase_to_the_apiserver_and_restarts_every_pod_per_phase(
    local_env: Any, namespace: str, environment: str
) -> None:
    api = local_env.api_client
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    env = resolve(environment)
    items = credentials.plan(env)
    ensured = credentials.ensure(api, env)
    assert f"{items.ca_namespace}/{items.ca_secret}" in ensured.created
    create_workloads(api, namespace)
    deployed = read_secrets(core, items)
    ca_key = f"{items.ca_namespace}/{items.ca_secret}"
    old_ca = fingerprints(deployed[ca_key][1]["ca.crt"])[0]
    types = {name: kind for name, (kind, _data) in deployed.items()}
    after: dict[str, dict[str, Any]] = {}
    uids: dict[str, dict[str, str]] = {"deploy": kafka_uids(core, namespace)}

    def watch(event: Event) -> None:  # called by the rotation as it goes: the apiserver's state at that moment
        if event.kind != "phase":
            return
        phase = event.message.split(":", 1)[0]
        if "every pod restarted on" in event.message:
            uids[phase] = kafka_uids(core, namespace)
        elif phase in ("trust", "reissue", "drop") and "restarts" not in event.message:
            after[phase] = read_secrets(core, items)

    started = time.monotonic()
    result = operations.rotate_certs(env, SETTINGS, on_event=watch)
    elapsed = time.monotonic() - started
    assert result.outcome == "completed", result.reason
    assert set(after) == {"trust", "reissue", "drop"} and set(uids) == {"deploy", "trust", "reissue", "drop"}
    new_ca = fingerprints(after["trust"][ca_key][1]["next-ca.crt"])[0]
    leaves = {c.secret for c in items.certificates}
    platform_names = certs.secret_names(items)

    # trust: bundles [old, new] everywhere, the new CA's key in the pki namespace only, leaves untouched
    pki = after["trust"][ca_key][1]
    assert fingerprints(pki["ca.crt"]) == [old_ca] and set(pki) == {"ca.crt", "ca.key", "next-ca.crt", "next-ca.key"}
    for name in platform_names:
        data = after["trust"][name][1]
        assert fingerprints(data["ca.crt"]) == [old_ca, new_ca], name
        if name in leaves:
            assert data["tls.crt"] == deployed[name][1]["tls.crt"], name
    # reissue: every leaf signed by the new CA with a new key; bundles unchanged
    issuer = certs.certificates(pki["next-ca.crt"])[0]
    for name in platform_names:
        data = after["reissue"][name][1]
        assert fingerprints(data["ca.crt"]) == [old_ca, new_ca], name
        if name in leaves:
            assert certs.signed_by(certs.certificates(data["tls.crt"])[0], issuer), name
            assert data["tls.key"] != deployed[name][1]["tls.key"], name
    # drop: bundles [new]; the CA Secret holds the new CA alone
    pki = after["drop"][ca_key][1]
    assert set(pki) == {"ca.crt", "ca.key"} and fingerprints(pki["ca.crt"]) == [new_ca]
    for name in platform_names:
        assert fingerprints(after["drop"][name][1]["ca.crt"]) == [new_ca], name
    # never a CA key in the platform namespace; every Secret kept its type
    ca_keys = [after["trust"][ca_key][1]["ca.key"].strip(), after["trust"][ca_key][1]["next-ca.key"].strip()]
    for phase in ("trust", "reissue", "drop"):
        for name in platform_names:
            kind, data = after[phase][name]
            assert kind == types[name], (phase, name)
            assert not any(k in v for k in ca_keys for v in data.values()), (phase, name)
    # every kafka pod replaced in each phase's roll; templates carry the last stamp; the record says done
    for before, phase in (("deploy", "trust"), ("trust", "reissue"), ("reissue", "drop")):
        assert set(uids[before]) == set(uids[phase]) == {"kafka-0", "kafka-1", "kafka-2"}
        assert all(uids[before][p] != uids[phase][p] for p in uids[phase]), phase
    sts = apps.read_namespaced_stateful_set("kafka", namespace)
    deployment = apps.read_namespaced_deployment("workers-indexer", namespace)
    for workload in (sts, deployment):
        assert workload.spec.template.metadata.annotations[STAMP_ANNOTATION] == "1-drop"
    assert all(
        p.metadata.labels["controller-revision-hash"] == sts.status.update_revision
        for p in core.list_namespaced_pod(namespace, label_selector="app=kafka-combined").items
    )
    progress = certs.Progress.from_json(
        core.read_namespaced_config_map(PROGRESS_CONFIGMAP, items.ca_namespace).data[PROGRESS_KEY]
    )
    assert progress is not None and progress.phase == "done" and progress.new_ca == new_ca
    status = operations.certs_status(env)
    assert status.level == "ok" and status.rotation is not None and not status.rotation.in_progress
    print(f"certificate rotation on the local control plane: 3 phases, 3 kafka pods + 2 indexers, {elapsed:.1f} s")


def kafka_uids(core: Any, namespace: str) -> dict[str, str]:
    pods = core.list_namespaced_pod(namespace, label_selector="app=kafka-combined").items
    return {p.metadata.name: p.metadata.uid for p in pods if p.metadata.deletion_timestamp is None}


def test_a_missing_secret_refuses_the_rotation_and_changes_nothing(
    local_env: Any, namespace: str, environment: str
) -> None:
    api = local_env.api_client
    core = client.CoreV1Api(api)
    env = resolve(environment)
    items = credentials.plan(env)
    credentials.ensure(api, env)
    core.delete_namespaced_secret(env.wiring.indexer.es_secret, namespace)
    before = {
        name: (core.read_namespaced_secret(name, namespace).metadata.resource_version)
        for name in certs.secret_names(items)
        if name != env.wiring.indexer.es_secret
    }
    result = operations.rotate_certs(env, SETTINGS)
    assert result.outcome == "refused" and result.rule == "certs.secret-present"
    assert f"Secret {namespace}/{env.wiring.indexer.es_secret} does not exist" in result.reason
    after = {name: core.read_namespaced_secret(name, namespace).metadata.resource_version for name in before}
    assert after == before
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map(PROGRESS_CONFIGMAP, items.ca_namespace)
    assert missing.value.status == 404
    status = operations.certs_status(env)
    assert status.level == "error"
    assert any(not s.present and s.name == env.wiring.indexer.es_secret for s in status.secrets)
