"""Real TLS on the local data plane: the single-node peer behind stunnel, published as a platform namespace's Kafka and
Elasticsearch Services, used by the REAL confluent-kafka and elasticsearch clients with hostname verification on,
from the root network namespace and from inside a pod; and refused, with the clients' own errors, when a SAN is
missing or the client certificate is missing or foreign.

Certificates are generated here (certificates.py): a platform CA, server certificates carrying every Service name
and (Kafka) the IP SAN 127.0.0.1 of the advertised address, client certificates of the platform CA and of a rogue
CA. Clients run as separate processes (programs/tls_client.py): in the root network namespace with the namespace's
cluster names bound over /etc/hosts (services.cluster_names_argv), or as a pod of the runtime.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from certificates import Authority, Issued, authority, service_names
from kubernetes import client
from local_cluster_helpers import TEST_PYTHON_IMAGE, make_namespace, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.wire]

PROGRAM = Path(__file__).parent / "programs" / "tls_client.py"
KAFKA_SERVICE, KAFKA_PORT = "kafka-bootstrap", 9094
ES_SERVICE, ES_PORT = "elasticsearch-http", 9200


@dataclass
class TlsEnvironment:
    namespace: str
    plane: Any  # LocalDataPlane
    ca: Authority
    rogue: Authority
    kafka_server: Issued
    es_server: Issued
    client: Issued
    folder: Path
    state_dir: Path

    def write(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        return path

    def settings(self, prefix: str, client: Issued | None, **extra: Any) -> dict[str, Any]:
        return {
            "kafka_bootstrap": f"{KAFKA_SERVICE}.{self.namespace}.svc.cluster.local:{KAFKA_PORT}",
            "es_url": f"https://{ES_SERVICE}.{self.namespace}.svc.cluster.local:{ES_PORT}",
            "topic": f"tls-{self.namespace}",
            "ca": str(self.write(f"{prefix}-ca.crt", self.ca.cert_pem)),
            "cert": str(self.write(f"{prefix}-client.crt", client.cert_pem)) if client else "",
            "key": str(self.write(f"{prefix}-client.key", client.key_pem)) if client else "",
            "timeout": 10,
            **extra,
        }

    def run_from_root(self, settings: dict[str, Any], name: str, names: bool = True) -> list[dict[str, Any]]:
        """Run the client in the root network namespace; with `names`, the namespace's cluster names as its
        /etc/hosts (else the host's own, as an in-process client of the root namespace has)."""
        from toolkit.targets.local.services import cluster_names_argv

        config = self.write(f"{name}.json", json.dumps(settings).encode())
        argv = [sys.executable, str(PROGRAM), str(config)]
        if names:
            argv = cluster_names_argv(self.state_dir, self.namespace, argv)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        assert lines, f"client printed nothing (exit {done.returncode}): {done.stderr[-2000:]}"
        return lines


def publish_both(plane: Any, namespace: str, kafka_server: Issued, es_server: Issued, ca: Authority) -> None:
    """Kafka and Elasticsearch of `namespace` served with these server certificates, client certificates of `ca`
    required."""
    from toolkit.targets.local.dataplane import TlsMaterial

    for service, port, backend, server in (
        (KAFKA_SERVICE, KAFKA_PORT, "kafka", kafka_server),
        (ES_SERVICE, ES_PORT, "elasticsearch", es_server),
    ):
        material = TlsMaterial(server.cert_pem, server.key_pem)
        plane.publish(namespace, service, port, backend, material, client_ca=ca.cert_pem)


@pytest.fixture(scope="module")
def tls(local_env, tmp_path_factory) -> Iterator[TlsEnvironment]:
    from toolkit.targets.local.dataplane import LocalDataPlane

    core = client.CoreV1Api(local_env.api_client)
    namespace = make_namespace(core, "tls")
    for name, port in ((KAFKA_SERVICE, KAFKA_PORT), (ES_SERVICE, ES_PORT)):
        core.create_namespaced_service(
            namespace, {"metadata": {"name": name}, "spec": {"ports": [{"name": "tls", "port": port}]}}
        )
    ca, rogue = authority("platform-ca"), authority("rogue-ca")
    kafka_server = ca.issue("kafka", dns=service_names(KAFKA_SERVICE, namespace), ips=("127.0.0.1",))
    es_server = ca.issue("elasticsearch", dns=service_names(ES_SERVICE, namespace), ips=("127.0.0.1",))
    plane = LocalDataPlane(local_env.control_plane.state_dir, local_env.api_client)
    started = time.monotonic()
    plane.start_peer()
    publish_both(plane, namespace, kafka_server, es_server, ca)
    print(f"\npeer started and both Services published in {time.monotonic() - started:.1f} s")
    folder = tmp_path_factory.mktemp("tls")
    env = TlsEnvironment(
        namespace, plane, ca, rogue, kafka_server, es_server, ca.issue("indexer", server=False), folder,
        local_env.control_plane.state_dir,
    )  # fmt: skip
    try:
        yield env
    finally:
        plane.stop()
        core.delete_namespace(namespace)


def _by_check(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["check"]: line for line in lines}


def test_real_clients_verify_the_platform_certificates_from_the_root_namespace(tls: TlsEnvironment) -> None:
    results = _by_check(tls.run_from_root(tls.settings("root", tls.client), "root-ok"))
    assert results["kafka"]["ok"], results["kafka"]["detail"]
    assert results["elasticsearch"]["ok"], results["elasticsearch"]["detail"]
    # without the cluster's names: the loopback addresses of the publications (IP SAN 127.0.0.1), as the rehearsal's
    # in-process load generators use them
    by_service = {p.service: p for p in tls.plane.publications()}
    loopback = tls.settings(
        "loopback", tls.client, kafka_bootstrap=by_service[KAFKA_SERVICE].loopback,
        es_url=f"https://{by_service[ES_SERVICE].loopback}",
    )  # fmt: skip
    results = _by_check(tls.run_from_root(loopback, "loopback-ok", names=False))
    assert results["kafka"]["ok"] and results["elasticsearch"]["ok"], results


def test_real_clients_verify_the_platform_certificates_from_inside_a_pod(
    tls: TlsEnvironment, local_env, runnable_python
) -> None:
    core = client.CoreV1Api(local_env.api_client)
    ns = tls.namespace
    settings = {
        **tls.settings("pod", None),
        "ca": "/etc/platform-tls/ca.crt",
        "cert": "/etc/platform-tls/tls.crt",
        "key": "/etc/platform-tls/tls.key",
    }
    core.create_namespaced_secret(ns, {
        "metadata": {"name": "indexer-tls"}, "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": tls.client.cert_pem.decode(), "tls.key": tls.client.key_pem.decode(),
                       "ca.crt": tls.ca.cert_pem.decode()},
    })  # fmt: skip
    core.create_namespaced_config_map(ns, {
        "metadata": {"name": "tls-client"},
        "data": {"tls_client.py": PROGRAM.read_text(), "settings.json": json.dumps(settings)},
    })  # fmt: skip
    core.create_namespaced_pod(ns, {
        "metadata": {"name": "tls-client"},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001, "runAsNonRoot": True},
            "containers": [{
                "name": "client", "image": f"{TEST_PYTHON_IMAGE}:1",
                "command": ["python", "/opt/check/tls_client.py", "/opt/check/settings.json"],
                "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
                "volumeMounts": [
                    {"name": "program", "mountPath": "/opt/check", "readOnly": True},
                    {"name": "platform-tls", "mountPath": "/etc/platform-tls", "readOnly": True},
                ],
            }],
            "volumes": [
                {"name": "program", "configMap": {"name": "tls-client"}},
                {"name": "platform-tls", "secret": {"secretName": "indexer-tls", "defaultMode": 0o440}},
            ],
        },
    })  # fmt: skip

    def finished() -> Any:
        pod = core.read_namespaced_pod("tls-client", ns)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    pod = wait_for(finished, 90, "pod tls-client to finish")
    logs = sorted((tls.state_dir / "logs" / "pods").glob(f"{ns}_tls-client_*/client/0.log"))
    output = logs[0].read_text() if logs else "(no log)"
    results = _by_check([json.loads(line) for line in output.splitlines() if line.startswith("{")])
    assert pod.status.phase == "Succeeded", output
    assert results["kafka"]["ok"] and results["elasticsearch"]["ok"], output


# (case, what librdkafka reports, what elasticsearch-py reports (None: it succeeds), what the Service terminators log).
# Each inner tuple holds the acceptable wordings of one fact: with TLS 1.3 the server checks the client's certificate
# after the client considers the handshake done, so a client sees the terminator's refusal as an alert or as EOF
# depending on timing; the terminator's log says exactly what it refused. librdkafka does not offer a certificate
# that the server's list of acceptable CAs does not cover, so the terminator sees none from it.
ANY_REFUSAL = ("alert certificate required", "alert unknown ca", "eof occurred in violation of protocol")
REFUSALS = [
    (
        "server certificate without the Service's DNS names",
        [("kafka-bootstrap",), ("certificate verify failed",)],
        [("hostname mismatch",), ("elasticsearch-http",)],
        [],
    ),
    (
        "Kafka certificate without the IP SAN 127.0.0.1 of the advertised address",
        [("ssl://127.0.0.1:",), ("certificate verify failed",)],  # bootstrap by name worked; the broker address not
        None,
        [],
    ),
    ("no client certificate", [ANY_REFUSAL], [("tlserror",), ANY_REFUSAL], ["peer did not return a certificate"]),
    (
        "client certificate of another CA",
        [ANY_REFUSAL],
        [("tlserror",), ANY_REFUSAL],
        ["Rejected by CERT at depth=0: CN=indexer"],
    ),
]


def _matches(detail: str, expected: list[tuple[str, ...]]) -> bool:
    return all(any(text in detail.lower() for text in wordings) for wordings in expected)


@pytest.mark.parametrize(("case", "expected_kafka", "expected_es", "logged"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_the_clients_refuse_or_are_refused_when_the_certificates_do_not_fit(
    tls: TlsEnvironment,
    case: str,
    expected_kafka: list[tuple[str, ...]],
    expected_es: list[tuple[str, ...]] | None,
    logged: list[str],
) -> None:
    client_cert: Issued | None = tls.client
    kafka_server, es_server = tls.kafka_server, tls.es_server
    if case.startswith("server certificate without"):
        kafka_server = tls.ca.issue("kafka", dns=("somewhere-else.example",), ips=("127.0.0.1",))
        es_server = tls.ca.issue("elasticsearch", dns=("somewhere-else.example",))
    elif case.startswith("Kafka certificate without"):
        kafka_server = tls.ca.issue("kafka", dns=service_names(KAFKA_SERVICE, tls.namespace))
    elif case == "no client certificate":
        client_cert = None
    else:
        client_cert = tls.rogue.issue("indexer", server=False)
    republished = kafka_server is not tls.kafka_server
    logs = [p.log for p in tls.plane.publications()]
    sizes = [log.stat().st_size if log.exists() else 0 for log in logs]
    try:
        if republished:
            publish_both(tls.plane, tls.namespace, kafka_server, es_server, tls.ca)
        results = _by_check(tls.run_from_root(tls.settings("bad", client_cert, timeout=6), "bad"))
    finally:
        if republished:
            publish_both(tls.plane, tls.namespace, tls.kafka_server, tls.es_server, tls.ca)
    kafka, es = results["kafka"], results["elasticsearch"]
    print(f"\n{case}:\n  kafka: {kafka['detail'][:300]}\n  elasticsearch: {es['detail'][:300]}")
    assert not kafka["ok"] and _matches(kafka["detail"], expected_kafka), (expected_kafka, kafka["detail"])
    if expected_es is None:
        assert es["ok"], es["detail"]
    else:
        assert not es["ok"] and _matches(es["detail"], expected_es), (expected_es, es["detail"])
    if logged:
        written = "".join(log.read_text(errors="replace")[size:] for log, size in zip(logs, sizes, strict=True))
        assert all(line in written for line in logged), written[-2000:]
