"""Certificates and keys of the local control plane, generated with the `cryptography` package.

What is made (once per state directory; existing files are reused, so a restart keeps every client working):
  - a self-signed certificate authority (ECDSA P-256, 10 years) that signs every other certificate;
  - the kube-apiserver serving certificate, valid for 127.0.0.1, localhost and the in-cluster names of the
    `kubernetes` service (and its first service IP);
  - client certificates: `admin` (group system:masters) for people, tests and the node agent;
    `system:kube-controller-manager` and `system:kube-scheduler`, whose permissions come from the apiserver's
    bootstrap RBAC roles;
  - the service-account RSA key pair: the private half signs tokens (controller-manager, apiserver), the
    public half verifies them (apiserver).

Invariants: private keys are written with mode 0600; a certificate is never regenerated when its file exists;
kubeconfigs embed the certificate data, so they stay valid wherever they are copied.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_VALIDITY = datetime.timedelta(days=3650)
APISERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class CertPair:
    """A certificate and its private key, both PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class ClusterPki:
    """Every credential file of one local cluster."""

    ca: CertPair
    apiserver: CertPair
    admin: CertPair
    controller_manager: CertPair
    scheduler: CertPair
    service_account_private: Path
    service_account_public: Path


def ensure_pki(pki_dir: Path, service_ip: str) -> ClusterPki:
    """Create the missing credentials under `pki_dir` and return where all of them are."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    ca = _ensure_ca(pki_dir)
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca.key}: the local CA key must be an EC key; delete {pki_dir} to regenerate it")
    san: list[x509.GeneralName] = [x509.DNSName(name) for name in APISERVER_DNS_NAMES]
    san += [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address(service_ip)),
    ]
    apiserver = _ensure_leaf(
        pki_dir, "apiserver", "kube-apiserver", None, ca_cert, ca_key, server=True, subject_alt_names=san
    )
    admin = _ensure_leaf(pki_dir, "admin", "admin", "system:masters", ca_cert, ca_key)
    controller_manager = _ensure_leaf(
        pki_dir, "controller-manager", "system:kube-controller-manager", None, ca_cert, ca_key
    )
    scheduler = _ensure_leaf(pki_dir, "scheduler", "system:kube-scheduler", None, ca_cert, ca_key)
    sa_private, sa_public = _ensure_service_account_keys(pki_dir)
    return ClusterPki(ca, apiserver, admin, controller_manager, scheduler, sa_private, sa_public)


def write_kubeconfig(path: Path, server: str, ca: CertPair, client: CertPair, user: str) -> None:
    """Write a kubeconfig for `user` at `server` with the certificate data embedded (atomic replace)."""

    def b64(file: Path) -> str:
        return base64.b64encode(file.read_bytes()).decode("ascii")

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority-data": b64(ca.cert)}}],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(client.cert), "client-key-data": b64(client.key)},
            }
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    _write_private(path, yaml.safe_dump(config, sort_keys=False).encode("utf-8"))


def _write_private(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    temporary.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str, organization: str | None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _ensure_ca(pki_dir: Path) -> CertPair:
    pair = CertPair(pki_dir / "ca.crt", pki_dir / "ca.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = _name("toolkit-local-ca", None)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(pair.key, _key_pem(key))
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return pair


def _ensure_leaf(
    pki_dir: Path,
    file_stem: str,
    common_name: str,
    organization: str | None,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    server: bool = False,
    subject_alt_names: list[x509.GeneralName] | None = None,
) -> CertPair:
    pair = CertPair(pki_dir / f"{file_stem}.crt", pki_dir / f"{file_stem}.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if subject_alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(subject_alt_names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_private(pair.key, _key_pem(key))
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return pair


def _ensure_service_account_keys(pki_dir: Path) -> tuple[Path, Path]:
    private_path, public_path = pki_dir / "sa.key", pki_dir / "sa.pub"
    if private_path.exists() and public_path.exists():
        return private_path, public_path
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private(private_path, _key_pem(key))
    public_path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private_path, public_path
