"""`toolkit upgrade job --env E --to workers=0.2.0 --apply` on the local control plane: the orchestrator Job runs
`toolkit upgrade run` INSIDE the cluster, as the toolkit's own image (the catalog's `orchestrator_image`, run by the
node agent's pod runtime from this virtualenv, as `toolkit cluster up` maps it), and rolls the workers.

The platform is deployed through the users' deploy path into a namespace of the test; its Kafka and Elasticsearch
Services are published by the TLS data plane (the single-node peer behind stunnel with the platform's certificates,
mutual TLS for Kafka). The Job's pod then reaches
- the apiserver through the `kubernetes` Service as its own ServiceAccount (its Role is all it has: a 403 fails the
  run, and the test);
- Kafka and Elasticsearch through the publications, with the orchestrator's own identity files (mounted Secrets;
  discovery is off in the Job's environment): the Kafka terminator's log must show the pod's address and the
  orchestrator's certificate.
The worker pods themselves stay simulated (their image is not mapped here): the roll is the real Deployment
controller replacing them, which is what the engine drives and checks.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from local_cluster_helpers import FAST_DATA_PLANE, wait_for
from runtime_helpers import container_log

pytestmark = pytest.mark.cluster

FROM, TO = "0.1.0", "0.2.0"


def environment_document(kubeconfig: Path, namespace: str) -> dict[str, Any]:
    return {
        "kind": "local",
        "description": "cluster-tier orchestrator Job test",
        "kubeconfig": str(kubeconfig),
        "platform": {
            "namespace": namespace,
            "kafka": {"version": "4.1.0", "controllers": 3, "brokers": 3, "storage_gi": 1},
            "elasticsearch": {
                "version": "8.19.3",
                "node_sets": [
                    {
                        "name": "data",
                        "roles": ["master", "data_hot", "data_content", "ingest"],
                        "replicas": 3,
                        "tier": "hot",
                        "storage_gi": 1,
                    }
                ],
            },
            "workers": {"version": FROM, "receivers": 2, "indexers": 1},
        },
        "sim": FAST_DATA_PLANE,
    }


def _pods(core: Any, namespace: str) -> dict[str, str]:
    """Worker pod name -> image, for the pods not being deleted."""
    from toolkit.rehearsal import liveload

    selector = f"{liveload.COMPONENT_LABEL} in ({liveload.RECEIVER_COMPONENT},{liveload.INDEXER_COMPONENT})"
    return {
        p.metadata.name: p.spec.containers[0].image
        for p in core.list_namespaced_pod(namespace, label_selector=selector).items
        if p.metadata.deletion_timestamp is None
    }


def test_the_orchestrator_job_rolls_the_workers_from_inside_the_cluster(local_env, tmp_path, monkeypatch) -> None:
    from kubernetes import client

    from toolkit import catalog
    from toolkit.config.environments import resolve
    from toolkit.provision.deploy import deploy_platform
    from toolkit.provision.orchestrator import JOB_NAME
    from toolkit.targets.kube.audit import AUDIT_LABEL
    from toolkit.targets.local.dataplane import LocalDataPlane

    problem = local_env.agent.runtime.problem
    if problem is not None:
        pytest.skip(f"the local pod runtime cannot run here: {problem}")
    core = client.CoreV1Api(local_env.api_client)
    apps = client.AppsV1Api(local_env.api_client)
    batch = client.BatchV1Api(local_env.api_client)
    namespace = f"job-{uuid.uuid4().hex[:6]}"
    name = "job-local"
    envs = tmp_path / "envs"
    envs.mkdir()
    (envs / f"{name}.yaml").write_text(yaml.safe_dump(environment_document(local_env.cluster.kubeconfig, namespace)))
    monkeypatch.setenv("TOOLKIT_ENVIRONMENTS_DIR", str(envs))
    monkeypatch.setenv("TOOLKIT_STATE_DIR", str(tmp_path / "state"))
    environment = resolve(name)
    wiring = environment.wiring
    image = catalog.load().orchestrator_image
    local_env.agent.set_runnable_image(image, Path(sys.executable).parent)
    timings: dict[str, float] = {}
    try:
        with LocalDataPlane(local_env.control_plane.state_dir, local_env.api_client) as plane:
            started = time.monotonic()
            deployed = deploy_platform(environment)
            assert deployed.ok, [(t.task, t.message) for t in deployed.failures]
            timings["deploy"] = time.monotonic() - started
            plane.start_peer()
            ca = base64.b64decode(core.read_namespaced_secret(wiring.secrets.ca, namespace).data["ca.crt"])
            kafka = plane.publish(
                namespace, wiring.kafka_bootstrap.name, wiring.kafka_bootstrap.port, "kafka",
                f"{namespace}/{wiring.secrets.kafka_tls}", client_ca=ca,
            )  # fmt: skip
            plane.publish(
                namespace, wiring.elasticsearch.name, wiring.elasticsearch.port, "elasticsearch",
                f"{namespace}/{wiring.secrets.es_tls}",
            )  # fmt: skip
            before = _pods(core, namespace)
            assert len(before) == 3 and all(i.endswith(f":{FROM}") for i in before.values()), before

            started = time.monotonic()
            applied = subprocess.run(
                [str(Path(sys.executable).parent / "toolkit"), "upgrade", "job", "--env", name, "--to",
                 f"workers={TO}", "--apply"],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert applied.returncode == 0, applied.stdout + applied.stderr

            def finished() -> Any:
                job = batch.read_namespaced_job(JOB_NAME, namespace)
                return job if (job.status.succeeded or job.status.failed) else None

            try:
                job = wait_for(finished, 300, f"Job {namespace}/{JOB_NAME} to finish")
            finally:
                pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={JOB_NAME}").items
                logs = {
                    p.metadata.name: container_log(
                        local_env.control_plane.state_dir, namespace, p.metadata.name, "orchestrator"
                    )
                    for p in pods
                }
                print("\n" + "\n".join(f"--- {pod}\n{log[-4000:]}" for pod, log in logs.items()))
            timings["job"] = time.monotonic() - started
            assert job.status.succeeded == 1 and not job.status.failed, (job.status, logs)
            job_pods = {p.metadata.name: p.status.pod_ip for p in pods}
            terminator_log = kafka.log.read_text()
            images = {
                d.metadata.name: d.spec.template.spec.containers[0].image
                for d in apps.list_namespaced_deployment(namespace).items
            }
            after = _pods(core, namespace)
            audit = core.list_namespaced_config_map(namespace, label_selector=f"{AUDIT_LABEL}=true").items
    finally:
        local_env.agent.remove_runnable_image(image)
        core.delete_namespace(namespace)
    print(f"\ndeploy {timings['deploy']:.0f} s, Job applied to completed {timings['job']:.0f} s")

    # the workers at the new version, every pod new
    assert images and all(i.endswith(f":{TO}") for i in images.values()), images
    assert len(after) == 3 and all(i.endswith(f":{TO}") for i in after.values()), after
    assert not set(before) & set(after), (before, after)

    # the run's own output: completed; the audit trail written by the pod, through the API, as its ServiceAccount
    (log,) = logs.values()
    result = json.loads(log[log.index("{") :])  # `--output json`: the run's result, after any warning line
    assert result["outcome"] == "completed" and result["targets"] == {"workers": TO}, result
    entries = [line for m in audit for text in (m.data or {}).values() for line in text.splitlines() if line]
    assert entries and any("workers" in e for e in entries), entries[:5]

    # Kafka reached through the publication by the Job's pod, with the orchestrator's certificate
    (pod_ip,) = job_pods.values()
    assert f"accepted connection from {pod_ip}:" in terminator_log, terminator_log[-2000:]
    assert f"CN={wiring.orchestrator.name}" in terminator_log, terminator_log[-2000:]
