"""What the kind path relies on, checked on what the user gets (kind itself cannot run here): the manifests
`toolkit deploy --render --env kind` writes expose NodePorts that kind-config.yaml maps to this machine, the kind
environment's access addresses are exactly those ports, Kafka advertises them on its EXTERNAL listener, and the
certificates deploy generates for kind verify for 127.0.0.1 (the address the clients dial) with the platform CA."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml
from cryptography import x509

from toolkit.config.environments import resolve
from toolkit.provision import credentials
from toolkit.provision.deploy import render_platform

REPO = Path(__file__).resolve().parents[2]


def _docs(tmp_path: Path) -> list[dict[str, Any]]:
    rendered = render_platform(resolve("kind"), tmp_path / "kind")
    return [
        d
        for f in rendered.files
        if not f.endswith(".values.yaml")
        for d in yaml.safe_load_all(Path(f).read_text())
        if d
    ]


def test_every_address_the_kind_environment_dials_is_a_mapped_node_port(tmp_path: Path) -> None:
    docs = _docs(tmp_path)
    node_ports = {
        port["nodePort"]
        for d in docs
        if d["kind"] == "Service" and d["spec"].get("type") == "NodePort"
        for port in d["spec"]["ports"]
        if "nodePort" in port
    }
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    mapped = {m["hostPort"]: m["containerPort"] for n in config["nodes"] for m in n.get("extraPortMappings", [])}
    access = resolve("kind").access
    dialled = {int(a.rsplit(":", 1)[1]) for a in str(access.kafka.bootstrap).split(",")}
    dialled.add(int(urlparse(str(access.elasticsearch.url)).port or 0))
    assert dialled <= node_ports, f"the environment dials {sorted(dialled - node_ports)}, which no Service exposes"
    assert all(mapped.get(port) == port for port in dialled), f"kind-config.yaml maps {mapped}, not all of {dialled}"


def test_kafka_advertises_the_addresses_the_clients_dial(tmp_path: Path) -> None:
    """Broker i advertises EXTERNAL://$EXTERNAL_HOST:$((EXTERNAL_PORT_BASE + i)) (the chart's start script); the
    kind environment dials exactly those, one per broker."""
    docs = _docs(tmp_path)
    (brokers,) = [d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"].endswith("broker")]
    pod = brokers["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for c in pod["initContainers"] + pod["containers"] for e in c.get("env", [])}
    scripts = "\n".join(str(v) for d in docs if d["kind"] == "ConfigMap" for v in d.get("data", {}).values())
    assert "EXTERNAL://${ext_host}:$((EXTERNAL_PORT_BASE + ordinal))" in scripts
    advertised = [
        f"{env['EXTERNAL_HOST']}:{int(env['EXTERNAL_PORT_BASE']) + i}" for i in range(brokers["spec"]["replicas"])
    ]
    assert str(resolve("kind").access.kafka.bootstrap).split(",") == advertised


def test_the_certificates_deploy_makes_for_kind_verify_for_the_dialled_address() -> None:
    env = resolve("kind")
    secrets = credentials.generate(env)
    ca = x509.load_pem_x509_certificate(secrets[env.wiring.secrets.ca]["ca.crt"])
    for name in (env.wiring.secrets.kafka_tls, env.wiring.secrets.es_tls):
        leaf = x509.load_pem_x509_certificate(secrets[name]["tls.crt"])
        leaf.verify_directly_issued_by(ca)
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress), name
