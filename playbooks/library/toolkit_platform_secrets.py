#!/usr/bin/python
"""Ansible module: the platform's CA, certificates and credentials as Secrets, generated once.

What is generated (names in toolkit.provision.values.SECRETS, the same names the chart values reference):
- the CA (`ca.crt`, `ca.key`; RSA 2048, 10 years) that signs every certificate below;
- server/peer certificates (`tls.crt`, `tls.key` as PKCS#8 PEM, `ca.crt`; 2 years) for Kafka and Elasticsearch,
  whose DNS names cover the services and the per-pod names under each headless Service of the environment's
  node sets; a client certificate for the workers (mTLS to Kafka); a server certificate for syslog over TLS;
- `es-ca` with `ca.crt` only (what the indexer needs to verify Elasticsearch);
- random passwords (32 URL-safe characters from `secrets`) for the Kafka admin, the two worker SCRAM users and the
  `elastic` user.
Invariants: a Secret that exists is never read back into the result nor rewritten (generated once, idempotent);
no secret value is ever returned or logged: the result names Secrets only. Check mode reports what would be
created; nothing is written.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: toolkit_platform_secrets
short_description: Generate the platform CA, certificates and credentials as Secrets, once
description:
  - Creates every Secret the platform charts reference that does not exist yet in the environment's namespace.
  - Existing Secrets are left untouched. Returns Secret names only, never their content.
  - Supports check mode.
options:
  environment:
    description: The toolkit environment, resolved once by C(toolkit deploy) (its document).
    required: true
    type: dict
author: toolkit
"""

RETURN = r"""
created:
  description: Names of the Secrets created (or that would be created in check mode).
  type: list
  returned: always
present:
  description: Names of the Secrets that already existed.
  type: list
  returned: always
"""

import base64
import datetime
import secrets as random_source
from typing import Any

from ansible.module_utils.basic import AnsibleModule

MANAGED_LABEL = "toolkit.io/generated"


def certificate_plan(environment: Any) -> list[dict[str, Any]]:
    """(secret, common name, DNS names, usages) of every certificate, derived from the environment only."""
    from toolkit.provision.values import RELEASES, SECRETS

    ns = environment.platform.namespace
    domain = f"{ns}.svc.cluster.local"
    kafka, es, workers = RELEASES["kafka"], RELEASES["elasticsearch"], RELEASES["workers"]
    kafka_pools = ["combined"] if environment.platform.kafka.combined else ["controller", "broker"]
    kafka_names = [f"{kafka}-bootstrap", f"{kafka}-bootstrap.{ns}.svc", f"{kafka}-bootstrap.{domain}", "localhost"]
    kafka_names += [f"*.{kafka}-{pool}-headless.{domain}" for pool in kafka_pools]
    es_names = [f"{es}-http", f"{es}-http.{ns}.svc", f"{es}-http.{domain}", "localhost"]
    es_names += [f"*.{es}-{s.name}-headless.{domain}" for s in environment.platform.elasticsearch.node_sets]
    syslog_names = [f"{workers}-syslog", f"{workers}-syslog.{ns}.svc", f"{workers}-syslog.{domain}"]
    return [
        {"secret": SECRETS.kafka_tls, "cn": "kafka-node", "dns": kafka_names, "server": True, "client": True},
        {"secret": SECRETS.es_tls, "cn": "elasticsearch", "dns": es_names, "server": True, "client": True},
        {"secret": SECRETS.workers_kafka_tls, "cn": "ingest-workers", "dns": [], "server": False, "client": True},
        {"secret": SECRETS.syslog_tls, "cn": f"{workers}-syslog", "dns": syslog_names, "server": True,
         "client": False},
    ]  # fmt: skip


def password_plan() -> list[tuple[str, str]]:
    from toolkit.provision.values import SECRETS

    return [
        (SECRETS.kafka_admin, "password"),
        (SECRETS.kafka_receiver_user, "password"),
        (SECRETS.kafka_indexer_user, "password"),
        (SECRETS.es_elastic_user, "elastic"),
    ]


def _pem_key(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def new_ca(name: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    return _pem_cert(cert), _pem_key(key)


def new_leaf(ca_cert_pem: bytes, ca_key_pem: bytes, plan: dict[str, Any]) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.timezone.utc)
    usages = []
    if plan["server"]:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if plan["client"]:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, plan["cn"])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=730))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if plan["dns"]:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in plan["dns"]]), critical=False
        )
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    return _pem_cert(cert), _pem_key(key)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _secret(name: str, data: dict[str, bytes], secret_type: str = "Opaque") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {MANAGED_LABEL: "true"}},
        "type": secret_type,
        "data": {k: _b64(v) for k, v in data.items()},
    }


def main() -> None:
    module = AnsibleModule(argument_spec={"environment": {"type": "dict", "required": True}}, supports_check_mode=True)
    try:
        from kubernetes import client, config
        from kubernetes.client.rest import ApiException

        from toolkit.config.environments import from_document
        from toolkit.provision.helm import cluster_access
        from toolkit.provision.values import SECRETS

        environment = from_document(module.params["environment"])
        access = cluster_access(environment)
    except Exception as exc:
        module.fail_json(msg=str(exc))
        return
    ns = environment.platform.namespace
    api = config.new_client_from_config(config_file=access.kubeconfig, context=access.context)
    created: list[str] = []
    try:
        core = client.CoreV1Api(api)
        present = {s.metadata.name for s in core.list_namespaced_secret(ns).items}

        def create(body: dict[str, Any]) -> None:
            created.append(body["metadata"]["name"])
            if not module.check_mode:
                core.create_namespaced_secret(ns, body)

        if SECRETS.ca in present:
            ca = core.read_namespaced_secret(SECRETS.ca, ns).data
            ca_cert, ca_key = base64.b64decode(ca["ca.crt"]), base64.b64decode(ca["ca.key"])
        else:
            ca_cert, ca_key = new_ca(f"security-data-platform {environment.name} CA")
            create(_secret(SECRETS.ca, {"ca.crt": ca_cert, "ca.key": ca_key}))
        if SECRETS.es_ca not in present:
            create(_secret(SECRETS.es_ca, {"ca.crt": ca_cert}))
        for plan in certificate_plan(environment):
            if plan["secret"] in present:
                continue
            cert, key = new_leaf(ca_cert, ca_key, plan)
            create(_secret(plan["secret"], {"tls.crt": cert, "tls.key": key, "ca.crt": ca_cert}, "kubernetes.io/tls"))
        for name, key_name in password_plan():
            if name not in present:
                create(_secret(name, {key_name: random_source.token_urlsafe(24).encode()}))
    except ApiException as exc:
        module.fail_json(msg=f"secrets in namespace {ns}: {exc.status} {exc.reason}", created=created)
        return
    finally:
        api.close()
    module.exit_json(changed=bool(created), created=created, present=sorted(present & _all_names(environment)))


def _all_names(environment: Any) -> set[str]:
    from toolkit.provision.values import SECRETS

    names = {SECRETS.ca, SECRETS.es_ca}
    names |= {p["secret"] for p in certificate_plan(environment)}
    names |= {name for name, _ in password_plan()}
    return names


if __name__ == "__main__":
    main()
