"""The platform's certificates after deploy: what each Secret holds and how long it lasts, and the pure transforms
of a CA rotation, over the Secrets' contents (bytes), wherever they are kept (`CertStore`).

Where things are (names from the credential plan, `toolkit.provision.credentials.plan`, itself from the wiring):
- the signing CA: Secret `<ca secret>` of the CA namespace (`<namespace>-pki`), keys `ca.crt` and `ca.key`; while a
  rotation runs, the next CA beside it, `next-ca.crt` and `next-ca.key`. No key of a CA is ever written to the
  platform namespace (`PlatformKeyError` refuses it before anything is written);
- every Secret of the platform namespace that a workload mounts holds `ca.crt`: what it trusts (one CA, or a bundle
  of two while a rotation runs); the certificate Secrets hold `tls.crt` + `tls.key` too.

Status (`inspect`): per Secret, each certificate's subject, issuer, not-after, days left and which CA signed it
(the current or the next platform CA, by signature), a warning under `WARN_DAYS`, an error when expired, when a
leaf is not signed by any CA of its own `ca.crt` (the peers that trust the same bundle would refuse it), or when a
CA key sits in the platform namespace.

Rotation transforms (each idempotent, so an interrupted phase is simply done again):
- `trusted`: `ca.crt` = the current CA + the next one;
- `reissued`: `tls.crt` + `tls.key` = a new key and certificate with the same subject, names and usages, signed by
  the next CA (a leaf already signed by it is kept);
- `dropped`: `ca.crt` = the next CA only; `switched`: the CA Secret's `ca.crt`/`ca.key` become the next CA's.
Time is injected (`now`): nothing here reads a clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from toolkit.provision import credentials
from toolkit.provision.credentials import CertificatePlan, CredentialPlan

WARN_DAYS = 30
CA_CRT, CA_KEY = "ca.crt", "ca.key"
NEXT_CRT, NEXT_KEY = "next-ca.crt", "next-ca.key"
TLS_CRT, TLS_KEY = "tls.crt", "tls.key"
PHASES = ("trust", "reissue", "drop")


class CertStore(Protocol):
    """Where a platform's Secrets are read and written: the cluster's (toolkit.targets.kube.certs) or the simulated
    platform's (toolkit.targets.sim.pki). Errors are `toolkit.engine.ports.ActionError` naming the object."""

    @property
    def simulated(self) -> bool: ...

    @property
    def description(self) -> str: ...

    @property
    def progress_location(self) -> str:
        """Where the progress record is kept, for people ("ConfigMap <ca namespace>/toolkit-cert-rotation")."""

    def read(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """The Secret's data, or None when it does not exist."""

    def write(self, namespace: str, name: str, data: dict[str, bytes]) -> None:
        """Replace the data of an existing Secret (its type and labels kept)."""

    def read_progress(self) -> str:
        """The rotation's progress record (JSON text; "" when there is none)."""

    def write_progress(self, text: str) -> None: ...


class PlatformKeyError(ValueError):
    """A CA private key was about to be written to the platform namespace."""


# ---------------------------------------------------------------------------------------------- X.509 helpers


def certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM file (one, or a bundle); [] for empty or unreadable content."""
    if not pem.strip():
        return []
    try:
        return list(x509.load_pem_x509_certificates(pem))
    except ValueError:
        return []


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def short(fp: str) -> str:
    return fp[:12]


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def bundle(*pems: bytes) -> bytes:
    """One PEM bundle of the certificates of `pems`, in order, each once."""
    seen: set[str] = set()
    out = b""
    for text in pems:
        for cert in certificates(text):
            fp = fingerprint(cert)
            if fp not in seen:
                seen.add(fp)
                out += pem(cert)
    return out


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer` signed `cert` (names and signature checked)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else name.rfc4514_string()


def has_private_key(data: dict[str, bytes]) -> bool:
    return any(b"PRIVATE KEY-----" in value for value in data.values())


# ---------------------------------------------------------------------------------------------- the CA pair


@dataclass(frozen=True)
class Authorities:
    """The signing CAs as the CA namespace holds them: the current one and, while a rotation runs, the next."""

    current_crt: bytes
    current_key: bytes
    next_crt: bytes = b""
    next_key: bytes = b""

    @classmethod
    def from_secret(cls, data: dict[str, bytes]) -> Authorities:
        return cls(data.get(CA_CRT, b""), data.get(CA_KEY, b""), data.get(NEXT_CRT, b""), data.get(NEXT_KEY, b""))

    def secret(self) -> dict[str, bytes]:
        out = {CA_CRT: self.current_crt, CA_KEY: self.current_key}
        if self.next_crt:
            out |= {NEXT_CRT: self.next_crt, NEXT_KEY: self.next_key}
        return out

    @property
    def current(self) -> x509.Certificate | None:
        found = certificates(self.current_crt)
        return found[0] if found else None

    @property
    def next(self) -> x509.Certificate | None:
        found = certificates(self.next_crt)
        return found[0] if found else None

    def labels(self) -> dict[str, str]:
        """fingerprint -> "current CA" / "next CA"."""
        out = {}
        if self.current is not None:
            out[fingerprint(self.current)] = "current CA"
        if self.next is not None:
            out[fingerprint(self.next)] = "next CA"
        return out


# ---------------------------------------------------------------------------------------------- status


@dataclass(frozen=True)
class CertificateInfo:
    key: str  # the Secret key ("tls.crt", "ca.crt", "ca.crt#2" for the second of a bundle, "next-ca.crt")
    role: str  # leaf | ca
    subject: str
    issuer: str
    not_after: str  # ISO 8601, UTC
    days_left: float
    signed_by: str  # "current CA 1a2b3c4d5e6f", "next CA ...", "self-signed", "CA ... (not the platform's)", "unknown"
    fingerprint: str
    level: str  # ok | warn | error
    problem: str = ""


@dataclass(frozen=True)
class SecretStatus:
    namespace: str
    name: str
    present: bool
    certificates: tuple[CertificateInfo, ...] = ()
    problems: tuple[str, ...] = ()  # about the Secret as a whole (missing, a CA key in the platform namespace, ...)
    level: str = "ok"

    @property
    def days_left(self) -> float | None:
        return min((c.days_left for c in self.certificates), default=None)


@dataclass(frozen=True)
class Progress:
    """Where a rotation stands, kept with the platform (the CA namespace's ConfigMap `toolkit-cert-rotation`, or
    the simulated platform's state): `phase` trust | reissue | drop | done; `stage` secrets (the phase's Secrets are
    being written) | roll (written: every pod restarts behind the gates) | "" (done)."""

    generation: int
    phase: str
    stage: str
    old_ca: str = ""  # fingerprint of the CA being replaced
    new_ca: str = ""  # fingerprint of the CA replacing it ("" until it was made)
    started_at: str = ""
    updated_at: str = ""
    by: str = ""

    @property
    def stamp(self) -> str:
        """The pod-template annotation value of this phase's roll (`toolkit.io/tls-generation`)."""
        return f"{self.generation}-{self.phase}"

    @property
    def in_progress(self) -> bool:
        return self.phase != "done"

    def describe(self) -> str:
        if not self.in_progress:
            return f"rotation {self.generation} completed at {self.updated_at}"
        what = "writing its Secrets" if self.stage == "secrets" else "restarting every pod behind the gates"
        return f"rotation {self.generation} in phase {self.phase} ({what}), since {self.updated_at}, by {self.by}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Progress | None:
        if not text.strip():
            return None
        raw = json.loads(text)
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})

    def moved(self, **changes: object) -> Progress:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CertsStatus:
    environment: str
    simulated: bool
    checked_at: str  # ISO 8601, UTC
    warn_days: int
    secrets: tuple[SecretStatus, ...]
    rotation: Progress | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def level(self) -> str:
        return _worst(s.level for s in self.secrets)


def _worst(levels: Iterable[str]) -> str:
    order = {"ok": 0, "warn": 1, "error": 2}
    return max(levels, key=lambda x: order[x], default="ok")


def _level(days_left: float, warn_days: int) -> str:
    if days_left <= 0:
        return "error"
    return "warn" if days_left < warn_days else "ok"


def _describe(
    cert: x509.Certificate,
    key: str,
    role: str,
    known: dict[str, str],
    peers: list[x509.Certificate],
    now: dt.datetime,
    warn_days: int,
) -> CertificateInfo:
    not_after = cert.not_valid_after_utc
    days_left = (not_after - now).total_seconds() / 86_400
    level = _level(days_left, warn_days)
    problem = "expired" if level == "error" else (f"expires in less than {warn_days} days" if level == "warn" else "")
    fp = fingerprint(cert)
    if role == "ca":
        signer = known.get(fp, "")
        signed = f"self-signed, {signer} {short(fp)}" if signer else f"self-signed CA {short(fp)} (not the platform's)"
        if not signer and level == "ok":
            level, problem = "warn", "trusts a CA that is neither the platform's current nor its next CA"
    else:
        signed = "unknown"
        for ca in peers:
            if signed_by(cert, ca):
                ca_fp = fingerprint(ca)
                label = known.get(ca_fp)
                signed = f"{label} {short(ca_fp)}" if label else f"CA {short(ca_fp)} (not the platform's)"
                break
    return CertificateInfo(
        key=key,
        role=role,
        subject=common_name(cert.subject),
        issuer=common_name(cert.issuer),
        not_after=not_after.isoformat(timespec="seconds"),
        days_left=round(days_left, 1),
        signed_by=signed,
        fingerprint=fp,
        level=level,
        problem=problem,
    )


def secret_names(items: CredentialPlan) -> list[str]:
    """The platform namespace's Secrets that hold certificates (`ca.crt`, and `tls.crt` for the certificate ones),
    in the plan's order."""
    return [items.ca_secret, *(c.secret for c in items.certificates), *(p.secret for p in items.passwords)]


def inspect(
    items: CredentialPlan, store: CertStore, now: dt.datetime, warn_days: int = WARN_DAYS
) -> tuple[SecretStatus, ...]:
    """Every certificate of the platform's Secrets, as `store` holds them now."""
    ca_data = store.read(items.ca_namespace, items.ca_secret)
    authorities = Authorities.from_secret(ca_data or {})
    known = authorities.labels()
    platform_cas = [c for c in (authorities.current, authorities.next) if c is not None]
    out: list[SecretStatus] = []
    if ca_data is None:
        out.append(
            SecretStatus(
                items.ca_namespace,
                items.ca_secret,
                False,
                problems=("missing: the platform's CA (made by `toolkit deploy`)",),
                level="error",
            )
        )
    else:
        infos = []
        for key in (CA_CRT, NEXT_CRT):
            for cert in certificates(ca_data.get(key, b""))[:1]:
                infos.append(_describe(cert, key, "ca", known, platform_cas, now, warn_days))
        problems = [] if authorities.current_key else [f"no {CA_KEY}: leaves cannot be signed"]
        out.append(
            SecretStatus(
                items.ca_namespace,
                items.ca_secret,
                True,
                tuple(infos),
                tuple(problems),
                _worst([*(i.level for i in infos), *(["error"] if problems else [])]),
            )
        )
    leaves = {c.secret for c in items.certificates}
    for name in secret_names(items):
        data = store.read(items.namespace, name)
        if data is None:
            out.append(
                SecretStatus(
                    items.namespace, name, False, problems=("missing (made by `toolkit deploy`)",), level="error"
                )
            )
            continue
        problems = []
        bundle_certs = certificates(data.get(CA_CRT, b""))
        if not bundle_certs:
            problems.append(f"no {CA_CRT}: its workload cannot verify its peers")
        if data.get(CA_KEY) or data.get(NEXT_KEY):
            problems.append(f"holds a CA private key in the platform namespace {items.namespace}")
        infos = [
            _describe(cert, CA_CRT if i == 0 else f"{CA_CRT}#{i + 1}", "ca", known, platform_cas, now, warn_days)
            for i, cert in enumerate(bundle_certs)
        ]
        if name in leaves:
            found = certificates(data.get(TLS_CRT, b""))
            if not found:
                problems.append(f"no {TLS_CRT}")
            else:
                leaf = _describe(found[0], TLS_CRT, "leaf", known, [*platform_cas, *bundle_certs], now, warn_days)
                if bundle_certs and not any(signed_by(found[0], ca) for ca in bundle_certs):
                    leaf = replace(
                        leaf,
                        level="error",
                        problem=f"not signed by any CA of its own {CA_CRT}: peers that trust that bundle refuse it",
                    )
                infos.insert(0, leaf)
        out.append(
            SecretStatus(
                items.namespace,
                name,
                True,
                tuple(infos),
                tuple(problems),
                _worst([*(i.level for i in infos), *(["error"] if problems else [])]),
            )
        )
    return tuple(out)


# ---------------------------------------------------------------------------------------------- transforms


def trusted(data: dict[str, bytes], authorities: Authorities) -> dict[str, bytes]:
    """`ca.crt` = the current CA and the next one (the rest of the Secret unchanged)."""
    return {**data, CA_CRT: bundle(authorities.current_crt, authorities.next_crt)}


def dropped(data: dict[str, bytes], authorities: Authorities) -> dict[str, bytes]:
    """`ca.crt` = the next CA only."""
    return {**data, CA_CRT: bundle(authorities.next_crt)}


def switched(authorities: Authorities) -> Authorities:
    """The CA Secret once the rotation dropped the old CA: the next CA becomes the current, nothing beside it."""
    return Authorities(authorities.next_crt, authorities.next_key)


def plan_of(cert: x509.Certificate, secret: str) -> CertificatePlan:
    """What a certificate says about itself (subject, names, addresses, usages), to issue it again as it was."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(sans.get_values_for_type(x509.DNSName))
        ips = tuple(str(a) for a in sans.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    try:
        usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        usages = set()
    return CertificatePlan(
        secret=secret,
        common_name=common_name(cert.subject),
        dns_names=dns,
        ip_addresses=tuple(str(ipaddress.ip_address(a)) for a in ips),
        server=ExtendedKeyUsageOID.SERVER_AUTH in usages,
        client=ExtendedKeyUsageOID.CLIENT_AUTH in usages,
    )


def reissued(
    data: dict[str, bytes], secret: str, authorities: Authorities, now: dt.datetime
) -> dict[str, bytes] | None:
    """`tls.crt` + `tls.key` issued again (new key, `LEAF_DAYS`) with the same subject, names and usages, signed by
    the next CA; None when the leaf is signed by it already (nothing to do)."""
    found = certificates(data.get(TLS_CRT, b""))
    issuer = authorities.next
    if issuer is None:
        raise ValueError("no next CA to sign with")
    if not found:
        raise ValueError(f"Secret {secret} has no {TLS_CRT} to issue again")
    if signed_by(found[0], issuer):
        return None
    crt, key = credentials.new_leaf(authorities.next_crt, authorities.next_key, plan_of(found[0], secret), now=now)
    return {**data, TLS_CRT: crt, TLS_KEY: key}


def check_platform_data(namespace: str, name: str, data: dict[str, bytes], authorities: Authorities) -> None:
    """Refuse to write a CA private key to the platform namespace, under any key (a leaf's own `tls.key` is
    expected there)."""
    ca_keys = [k.strip() for k in (authorities.current_key, authorities.next_key) if k.strip()]
    for key, value in data.items():
        if key in (CA_KEY, NEXT_KEY) or any(k in value for k in ca_keys):
            raise PlatformKeyError(
                f"refusing to write a CA private key ({key}) into Secret {namespace}/{name}: the CA's key stays in "
                "its own namespace"
            )
