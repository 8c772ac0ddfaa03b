"""The simulated platform's certificates: its Secrets (real X.509 content, made by deploy's own code, given to
`install`), what each gives the pods that mount it, and a rotation's progress record, kept in the world.

SIMULATED: the Secrets are real PEM files, but no TLS handshake happens; the world decides whether two pods could
complete one from what each loaded at start (`TlsModel.ok` in tls.py: the key ids of the CAs it trusts, of the CA that
issued what it presents). `SimCertStore` is the simulated platform's `toolkit.provision.certs.CertStore`.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from cryptography import x509

from toolkit.config.wiring import Wiring
from toolkit.targets.sim.tls import SimTlsView
from toolkit.targets.sim.world import World

if TYPE_CHECKING:
    from toolkit.targets.sim import SimTarget


def _key_id_of(cert: x509.Certificate) -> str:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest.hex()


def _issuer_id_of(cert: x509.Certificate) -> str:
    try:
        value = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        value = None
    return value.hex() if value else f"issuer:{cert.issuer.rfc4514_string()}"


def _certificates(pem: bytes) -> list[x509.Certificate]:
    if not pem.strip():
        return []
    try:
        return list(x509.load_pem_x509_certificates(pem))
    except ValueError:
        return []


def tls_view(data: dict[str, bytes]) -> SimTlsView:
    """What a pod mounting this Secret trusts (`ca.crt`) and presents (the issuer of `tls.crt`)."""
    return SimTlsView(
        trusts=sorted({_key_id_of(c) for c in _certificates(data.get("ca.crt", b""))}),
        presents=sorted({_issuer_id_of(c) for c in _certificates(data.get("tls.crt", b""))[:1]}),
    )


def mounts_for(world: World, wiring: Wiring) -> dict[str, list[str]]:
    """Which Secrets the pods of each simulated workload mount, as the charts mount them (names from the wiring)."""
    ns = wiring.namespace

    def key(name: str) -> str:
        return f"{ns}/{name}"

    out: dict[str, list[str]] = {}
    for w in world.workloads.values():
        if w.component == "kafka":
            out[w.name] = [key(wiring.secrets.kafka_tls)]
        elif w.component == "elasticsearch":
            out[w.name] = [key(wiring.secrets.es_tls)]
        elif w.component == "workers" and w.role == "receiver":
            out[w.name] = [key(wiring.receiver.kafka_secret), key(wiring.secrets.syslog_tls)]
        elif w.component == "workers" and w.role == "indexer":
            out[w.name] = [key(wiring.indexer.kafka_secret), key(wiring.indexer.es_secret)]
    return out


def install(world: World, secrets: dict[str, dict[str, bytes]], wiring: Wiring) -> None:
    """Put a fresh platform's Secrets ("<namespace>/<name>" -> data) in the world, as deploy would create them, and
    have the running pods load them (the simulated platform's `toolkit deploy` of certificates)."""
    for name, data in secrets.items():
        world.tls.put_secret(name, _encode(data), tls_view(data))
    world.tls.mount(mounts_for(world, wiring))


def _encode(data: dict[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items()}


class SimCertStore:
    """The simulated platform's Secrets and rotation record (`toolkit.provision.certs.CertStore`). A write is
    persisted at once by the process holding the lease (as a real apiserver keeps it)."""

    simulated = True

    def __init__(self, target: SimTarget) -> None:
        self._target = target
        self._world = target.world

    @property
    def description(self) -> str:
        return f"the simulated platform {self._world.environment} (real X.509 content, simulated TLS)"

    @property
    def progress_location(self) -> str:
        return f"the simulated platform's state ({self._world.environment})"

    def read(self, namespace: str, name: str) -> dict[str, bytes] | None:
        data = self._world.tls.secrets.get(f"{namespace}/{name}")
        if data is None:
            return None
        return {k: base64.b64decode(v) for k, v in data.items()}

    def write(self, namespace: str, name: str, data: dict[str, bytes]) -> None:
        self._world.tls.put_secret(f"{namespace}/{name}", _encode(data), tls_view(data))
        self._target.persist()

    def read_progress(self) -> str:
        return self._world.tls.progress

    def write_progress(self, text: str) -> None:
        self._world.tls.progress = text
        self._target.persist()
