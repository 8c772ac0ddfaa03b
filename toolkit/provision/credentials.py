"""The platform's certificates and credentials: what exists, derived from the wiring (pure), and how each is made.

Plan (`plan(environment)`), every name from `toolkit.config.wiring`:
- the certificate authority lives in its own namespace (`<namespace>-pki`, Secret `platform-ca` with ca.crt and
  ca.key): no workload of the platform namespace can read its key; the platform namespace gets `platform-ca` with
  ca.crt only, which every client mounts to verify the servers;
- server certificates, with a SAN for every name and address a client uses: Kafka (`kafka-tls`: the bootstrap
  Service's names, every per-pod name under each pool's headless Service, 127.0.0.1 and ::1, kind's external host),
  Elasticsearch (`es-tls`: the HTTP Service's names, per-pod names, 127.0.0.1, ::1), the syslog receivers
  (`syslog-tls`: the syslog Service's names); node certificates are also client certificates (mutual TLS between
  brokers, between Elasticsearch nodes);
- one identity per workload (receiver, indexer, orchestrator, admin): with mutual TLS to Kafka, a client certificate
  whose common name is the principal (tls.crt, tls.key, ca.crt); with SCRAM, a username and a password (+ ca.crt);
  for Elasticsearch, a username and a password (the built-in `elastic` for the admin);
- the Elasticsearch file realm (`es-file-realm`: `users` with PBKDF2-HMAC-SHA512 hashes in Elasticsearch's own
  format, and `users_roles`), made from the identities' passwords, so each workload logs in as itself.
Leaf certificates live `LEAF_DAYS` (90): short enough that rotation is routine (`toolkit certs rotate`).
Nothing here talks to a cluster; the Ansible module `toolkit_platform_secrets` creates what is missing.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import secrets as random_source
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from toolkit.config.environments import Environment
from toolkit.config.wiring import Identity, Wiring

CA_DAYS = 5 * 365
LEAF_DAYS = 90
LOOPBACK = ("127.0.0.1", "::1")
PBKDF2_ITERATIONS = 10_000  # Elasticsearch's default cost for {PBKDF2}


@dataclass(frozen=True)
class CertificatePlan:
    secret: str
    common_name: str
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    server: bool = False
    client: bool = False


@dataclass(frozen=True)
class PasswordPlan:
    secret: str
    username: str


@dataclass(frozen=True)
class CredentialPlan:
    namespace: str
    ca_namespace: str
    ca_secret: str
    certificates: tuple[CertificatePlan, ...]
    passwords: tuple[PasswordPlan, ...]  # Elasticsearch users, and Kafka users with SCRAM
    file_realm_secret: str
    file_realm_users: tuple[tuple[str, str], ...] = field(default=())  # (username, role) in the file realm

    @property
    def secret_names(self) -> set[str]:
        """Every Secret of the platform namespace this plan makes (not the CA's own)."""
        return (
            {self.ca_secret, self.file_realm_secret}
            | {c.secret for c in self.certificates}
            | {p.secret for p in self.passwords}
        )


def ca_namespace(namespace: str) -> str:
    return f"{namespace}-pki"


def plan(environment: Environment, external_hosts: tuple[str, ...] = ()) -> CredentialPlan:
    wiring = environment.wiring
    ns = wiring.namespace
    ips = tuple(dict.fromkeys((*LOOPBACK, *(h for h in external_hosts if _is_ip(h)))))
    extra_dns = tuple(h for h in external_hosts if not _is_ip(h))
    kafka_dns = [*wiring.kafka_bootstrap.dns_names()]
    for pool in wiring.kafka_pools:
        kafka_dns.append(f"*.{wiring.kafka_headless(pool).host}")
    es_dns = [*wiring.elasticsearch.dns_names()]
    for node_set in wiring.es_node_sets:
        es_dns.append(f"*.{wiring.es_headless(node_set).host}")
    certificates = [
        CertificatePlan(
            wiring.secrets.kafka_tls, "kafka-node", (*kafka_dns, *extra_dns, "localhost"), ips, server=True, client=True
        ),
        CertificatePlan(wiring.secrets.es_tls, "elasticsearch", (*es_dns, "localhost"), ips, server=True, client=True),
        CertificatePlan(wiring.secrets.syslog_tls, wiring.syslog.name, tuple(wiring.syslog.dns_names()), server=True),
    ]
    passwords: list[PasswordPlan] = []
    for identity in _kafka_identities(wiring):
        if wiring.kafka_client_auth == "tls":
            certificates.append(CertificatePlan(identity.kafka_secret, identity.name, client=True))
        else:
            passwords.append(PasswordPlan(identity.kafka_secret, identity.name))
    es_users = [i for i in wiring.identities if i.es_secret]
    for identity in es_users:
        passwords.append(PasswordPlan(identity.es_secret, "elastic" if identity is wiring.admin else identity.name))
    return CredentialPlan(
        namespace=ns,
        ca_namespace=ca_namespace(ns),
        ca_secret=wiring.secrets.ca,
        certificates=tuple(certificates),
        passwords=tuple(passwords),
        file_realm_secret=wiring.secrets.es_file_realm,
        file_realm_users=tuple((i.name, i.es_role) for i in es_users if i is not wiring.admin),
    )


def _kafka_identities(wiring: Wiring) -> list[Identity]:
    return [i for i in wiring.identities if i.kafka_secret]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------- making them


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def new_ca(name: str, now: datetime.datetime | None = None) -> tuple[bytes, bytes]:
    """(ca.crt, ca.key) PEM of a new certificate authority (ECDSA P-256)."""
    now = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def new_leaf(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    item: CertificatePlan,
    days: int = LEAF_DAYS,
    now: datetime.datetime | None = None,
) -> tuple[bytes, bytes]:
    """(tls.crt, tls.key) PEM of a leaf certificate for `item`, signed by the CA."""
    now = now or datetime.datetime.now(datetime.UTC)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the platform CA key must be an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [
        u
        for u, on in ((ExtendedKeyUsageOID.SERVER_AUTH, item.server), (ExtendedKeyUsageOID.CLIENT_AUTH, item.client))
        if on
    ]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, item.common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in item.dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in item.ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def new_password() -> str:
    return random_source.token_urlsafe(24)


def pbkdf2_hash(password: str, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None) -> str:
    """A password hash in Elasticsearch's `{PBKDF2}` format (PBKDF2-HMAC-SHA512, 32-byte salt and key)."""
    salt = salt if salt is not None else random_source.token_bytes(32)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, dklen=32)
    return f"{{PBKDF2}}{iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def file_realm(users: dict[str, str], roles: dict[str, str]) -> dict[str, bytes]:
    """The file realm's `users` (name:hash) and `users_roles` (role:name,name) from passwords and roles."""
    lines = "".join(f"{name}:{pbkdf2_hash(password)}\n" for name, password in sorted(users.items()))
    by_role: dict[str, list[str]] = {}
    for name, role in sorted(roles.items()):
        by_role.setdefault(role, []).append(name)
    role_lines = "".join(f"{role}:{','.join(names)}\n" for role, names in sorted(by_role.items()))
    return {"users": lines.encode(), "users_roles": role_lines.encode()}


def generate(environment: Environment, ca: tuple[bytes, bytes] | None = None) -> dict[str, dict[str, bytes]]:
    """The content of every Secret of the platform namespace for a fresh platform (the CA's included, under its
    name in the CA namespace's key `<ca namespace>/<ca secret>`), signed by `ca` (cert, key) or a new CA."""
    items = plan(environment)
    ca_cert, ca_key = ca or new_ca(f"security-data-platform {environment.name} CA")
    out: dict[str, dict[str, bytes]] = {
        f"{items.ca_namespace}/{items.ca_secret}": {"ca.crt": ca_cert, "ca.key": ca_key},
        items.ca_secret: {"ca.crt": ca_cert},
    }
    for cert in items.certificates:
        crt, key = new_leaf(ca_cert, ca_key, cert)
        out[cert.secret] = {"tls.crt": crt, "tls.key": key, "ca.crt": ca_cert}
    passwords = {}
    for item in items.passwords:
        passwords[item.username] = new_password()
        out[item.secret] = {"username": item.username.encode(), "password": passwords[item.username].encode()}
        out[item.secret]["ca.crt"] = ca_cert
    roles = dict(items.file_realm_users)
    out[items.file_realm_secret] = file_realm({u: passwords[u] for u in roles}, roles)
    return out


# ---------------------------------------------------------------------------------------------- in the cluster

MANAGED_LABEL = "toolkit.io/generated"
PKI_OF_LABEL = "toolkit.io/pki-of"  # on the CA's namespace: the platform namespace it serves


@dataclass
class Ensured:
    created: list[str] = field(default_factory=list)  # "<namespace>/<secret>" made now (or that would be, in check)
    present: list[str] = field(default_factory=list)


def ensure(api: object, environment: Environment, check: bool = False) -> Ensured:
    """Create every Secret of the plan that does not exist yet (a Secret that exists is never rewritten, and no
    secret value is ever returned). In `check` mode nothing is written. The CA's namespace is created if missing."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    items = plan(environment)
    core = client.CoreV1Api(api)
    out = Ensured()

    def names(namespace: str) -> set[str]:
        try:
            return {s.metadata.name for s in core.list_namespaced_secret(namespace).items}
        except ApiException as exc:
            if exc.status == 404:
                return set()
            raise

    def read(namespace: str, name: str) -> dict[str, bytes]:
        data = core.read_namespaced_secret(name, namespace).data or {}
        return {k: base64.b64decode(v) for k, v in data.items()}

    def create(namespace: str, name: str, data: dict[str, bytes], kind: str = "Opaque") -> None:
        out.created.append(f"{namespace}/{name}")
        if check:
            return
        body = {
            "metadata": {"name": name, "labels": {MANAGED_LABEL: "true"}},
            "type": kind,
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
        core.create_namespaced_secret(namespace, body)

    ca_ns, ns = items.ca_namespace, items.namespace
    if not check:
        try:
            core.read_namespace(ca_ns)
        except ApiException as exc:
            if exc.status != 404:
                raise
            core.create_namespace({"metadata": {"name": ca_ns, "labels": {MANAGED_LABEL: "true", PKI_OF_LABEL: ns}}})
    in_ca, in_platform = names(ca_ns), names(ns)
    existing_ca = None
    if items.ca_secret in in_ca:
        ca = read(ca_ns, items.ca_secret)
        existing_ca = (ca["ca.crt"], ca["ca.key"])
        out.present.append(f"{ca_ns}/{items.ca_secret}")
    fresh = generate(environment, existing_ca)
    if existing_ca is None:
        create(ca_ns, items.ca_secret, fresh[f"{ca_ns}/{items.ca_secret}"])
    tls = {c.secret for c in items.certificates}
    passwords = {p.secret: p.username for p in items.passwords}
    realm_users: dict[str, str] = {}
    for name in [items.ca_secret, *tls, *passwords]:
        if name in in_platform:
            out.present.append(f"{ns}/{name}")
            if name in passwords and items.file_realm_secret not in in_platform and not check:
                realm_users[passwords[name]] = read(ns, name)["password"].decode()
            continue
        create(ns, name, fresh[name], "kubernetes.io/tls" if name in tls else "Opaque")
        if name in passwords:
            realm_users[passwords[name]] = fresh[name]["password"].decode()
    if items.file_realm_secret in in_platform:
        out.present.append(f"{ns}/{items.file_realm_secret}")
    else:
        roles = dict(items.file_realm_users)
        create(ns, items.file_realm_secret, file_realm({u: realm_users.get(u, "") for u in roles}, roles))
    return out
