"""The rotation's pure parts, on real X.509 material made by deploy's own code (`credentials.generate`):

- each phase's Secrets: after trust every `ca.crt` is exactly [old CA, new CA]; after reissue every leaf is signed
  by the new CA and keeps its names and usages (a new key); after drop every `ca.crt` is [new CA] and the CA Secret
  holds the new CA only; no CA key is ever in the platform namespace;
- chain verification with `cryptography.x509.verification` (path building, names, usages, validity): a leaf signed
  by the new CA verifies against the trust bundle, and once the old CA is dropped a leaf signed by it no longer does;
- `certs status` levels (warn under 30 days, error when expired, a leaf its own bundle does not trust, a CA key in
  the platform namespace) on an injected clock, and the progress record.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.x509 import verification

from toolkit.cli.certs import WARN_DAYS as CLI_WARN_DAYS
from toolkit.config.environments import resolve
from toolkit.provision import certs, credentials
from toolkit.provision.certs import Authorities, Progress
from toolkit.provision.rotation import consistent

ENV = resolve("sim")
ITEMS = credentials.plan(ENV)
NOW = dt.datetime.now(dt.UTC)  # set again when the module's tests start (below)


@pytest.fixture(scope="module", autouse=True)
def _now() -> None:
    """The checks' time is taken when this module's tests start, not when it was imported: in one long session
    (`make test`) they start many minutes later, after certificates made now are valid from (now - 5 minutes)."""
    global NOW
    NOW = dt.datetime.now(dt.UTC)


LEAVES = {c.secret: c for c in ITEMS.certificates}


class DictStore:
    """Secrets in a dict: the store port of the pure functions under test (no platform involved)."""

    simulated = True
    description = "a dict"
    progress_location = "a dict"

    def __init__(self, secrets: dict[str, dict[str, bytes]]) -> None:
        self.secrets = secrets
        self.progress = ""

    def read(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.secrets.get(f"{namespace}/{name}")

    def write(self, namespace: str, name: str, data: dict[str, bytes]) -> None:
        self.secrets[f"{namespace}/{name}"] = data

    def read_progress(self) -> str:
        return self.progress

    def write_progress(self, text: str) -> None:
        self.progress = text


@pytest.fixture(scope="module")
def deployed() -> dict[str, dict[str, bytes]]:
    """Every Secret deploy makes, keyed "<namespace>/<name>"."""
    generated = credentials.generate(ENV)
    return {k if "/" in k else f"{ITEMS.namespace}/{k}": v for k, v in generated.items()}


def platform(secrets: dict[str, dict[str, bytes]]) -> dict[str, dict[str, bytes]]:
    return {k.split("/", 1)[1]: v for k, v in secrets.items() if k.startswith(f"{ITEMS.namespace}/")}


def phases(deployed: dict[str, dict[str, bytes]]) -> tuple[Authorities, dict[str, dict[str, dict[str, bytes]]]]:
    """The platform's Secrets after each phase's transform, as the rotation writes them."""
    ca = deployed[f"{ITEMS.ca_namespace}/{ITEMS.ca_secret}"]
    crt, key = credentials.new_ca("next CA")
    authorities = Authorities(ca["ca.crt"], ca["ca.key"], crt, key)
    names = certs.secret_names(ITEMS)
    before = platform(deployed)
    trusted = {n: certs.trusted(before[n], authorities) for n in names}
    reissued = dict(trusted)
    for name in LEAVES:
        new = certs.reissued(trusted[name], name, authorities, NOW)
        assert new is not None
        reissued[name] = new
    dropped = {n: certs.dropped(reissued[n], authorities) for n in names}
    return authorities, {"deploy": before, "trust": trusted, "reissue": reissued, "drop": dropped}


def chain_ok(leaf_pem: bytes, bundle_pem: bytes, server_name: str | None) -> bool:
    """Does `leaf_pem` verify against the trust bundle (path, signature, validity, usage; a server's name too), as a
    TLS peer checks it? Client certificates carry no SAN (Kafka maps the subject's CN to the principal), which the
    Web PKI client profile would require: the leaf's extension policy is relaxed for clients only."""
    store = verification.Store(certs.certificates(bundle_pem))
    builder = verification.PolicyBuilder().store(store).time(NOW)
    if server_name is None:
        builder = builder.extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
    leaf = x509.load_pem_x509_certificate(leaf_pem)
    try:
        if server_name is not None:
            builder.build_server_verifier(verification.DNSName(server_name)).verify(leaf, [])
        else:
            builder.build_client_verifier().verify(leaf, [])
    except verification.VerificationError:
        return False
    return True


def fingerprints(pem: bytes) -> list[str]:
    return [certs.fingerprint(c) for c in certs.certificates(pem)]


def test_each_phase_leaves_exactly_the_bundles_and_leaves_it_promises(deployed) -> None:
    authorities, by_phase = phases(deployed)
    old, new = certs.fingerprint(authorities.current), certs.fingerprint(authorities.next)  # type: ignore[arg-type]
    for name in certs.secret_names(ITEMS):
        assert fingerprints(by_phase["deploy"][name]["ca.crt"]) == [old], name
        assert fingerprints(by_phase["trust"][name]["ca.crt"]) == [old, new], name
        assert fingerprints(by_phase["reissue"][name]["ca.crt"]) == [old, new], name
        assert fingerprints(by_phase["drop"][name]["ca.crt"]) == [new], name
        for phase in ("trust", "reissue", "drop"):  # nothing else of the Secret changes but what the phase says
            changed = {k for k in by_phase[phase][name] if by_phase[phase][name][k] != by_phase["deploy"][name][k]}
            assert changed <= {"ca.crt", "tls.crt", "tls.key"}, (phase, name, changed)
    for name in LEAVES:
        assert by_phase["trust"][name]["tls.crt"] == by_phase["deploy"][name]["tls.crt"]
        assert by_phase["reissue"][name]["tls.key"] != by_phase["deploy"][name]["tls.key"]  # a new key
        leaf = certs.certificates(by_phase["reissue"][name]["tls.crt"])[0]
        assert certs.signed_by(leaf, authorities.next)  # type: ignore[arg-type]
        assert not certs.signed_by(leaf, authorities.current)  # type: ignore[arg-type]
        was = certs.certificates(by_phase["deploy"][name]["tls.crt"])[0]
        assert certs.plan_of(leaf, name) == certs.plan_of(was, name)  # same subject, names, addresses and usages
        assert leaf.not_valid_after_utc - NOW <= dt.timedelta(days=credentials.LEAF_DAYS)
    switched = certs.switched(authorities)
    assert switched.secret() == {"ca.crt": authorities.next_crt, "ca.key": authorities.next_key}


def test_no_phase_ever_puts_a_ca_key_in_the_platform_namespace(deployed) -> None:
    authorities, by_phase = phases(deployed)
    ca_keys = [authorities.current_key.strip(), authorities.next_key.strip()]
    for phase, secrets in by_phase.items():
        for name, data in secrets.items():
            assert "ca.key" not in data and "next-ca.key" not in data, (phase, name)
            assert not any(k in v for k in ca_keys for v in data.values()), (phase, name)
    with pytest.raises(certs.PlatformKeyError, match="CA private key"):
        certs.check_platform_data(ITEMS.namespace, "kafka-tls", {"tls.key": authorities.next_key}, authorities)
    with pytest.raises(certs.PlatformKeyError):
        certs.check_platform_data(ITEMS.namespace, "platform-ca", {"ca.key": b"anything"}, authorities)
    certs.check_platform_data(ITEMS.namespace, "kafka-tls", by_phase["reissue"]["kafka-tls"], authorities)


def test_a_new_leaf_verifies_against_the_bundle_and_an_old_one_not_after_drop(deployed) -> None:
    _authorities, by_phase = phases(deployed)
    kafka, client = ENV.wiring.secrets.kafka_tls, ENV.wiring.receiver.kafka_secret
    server_name = ENV.wiring.kafka_bootstrap.host
    old_leaf, new_leaf = by_phase["deploy"][kafka]["tls.crt"], by_phase["reissue"][kafka]["tls.crt"]
    old_client, new_client = by_phase["deploy"][client]["tls.crt"], by_phase["reissue"][client]["tls.crt"]
    # deploy: only the old CA is trusted; a leaf of the new CA would be refused (why the trust phase comes first)
    assert chain_ok(old_leaf, by_phase["deploy"][kafka]["ca.crt"], server_name)
    assert not chain_ok(new_leaf, by_phase["deploy"][kafka]["ca.crt"], server_name)
    # trust and reissue: old and new leaves both verify (mixed pods during a roll), servers and clients alike
    for phase in ("trust", "reissue"):
        bundle = by_phase[phase][client]["ca.crt"]
        assert chain_ok(old_leaf, bundle, server_name) and chain_ok(new_leaf, bundle, server_name)
        assert chain_ok(old_client, bundle, None) and chain_ok(new_client, bundle, None)
    # drop: the new leaf still verifies, the old CA's leaf no longer does
    dropped = by_phase["drop"][client]["ca.crt"]
    assert chain_ok(new_leaf, dropped, server_name) and chain_ok(new_client, dropped, None)
    assert not chain_ok(old_leaf, dropped, server_name) and not chain_ok(old_client, dropped, None)
    # the names every client uses stay in the reissued leaf (127.0.0.1 for kind's NodePorts too)
    sans = x509.load_pem_x509_certificate(new_leaf).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert server_name in sans.value.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in [str(a) for a in sans.value.get_values_for_type(x509.IPAddress)]


def test_transforms_are_idempotent_so_an_interrupted_phase_is_simply_done_again(deployed) -> None:
    authorities, by_phase = phases(deployed)
    for name in certs.secret_names(ITEMS):
        assert certs.trusted(by_phase["trust"][name], authorities) == by_phase["trust"][name]
        assert certs.dropped(by_phase["drop"][name], authorities) == by_phase["drop"][name]
    for name in LEAVES:
        assert certs.reissued(by_phase["reissue"][name], name, authorities, NOW) is None


def test_status_levels_on_an_injected_clock(deployed) -> None:
    store = DictStore(dict(deployed))
    fresh = certs.inspect(ITEMS, store, NOW)
    assert {s.level for s in fresh} == {"ok"}
    assert all(s.present for s in fresh) and len(fresh) == 1 + len(certs.secret_names(ITEMS))
    kafka = next(s for s in fresh if s.name == "kafka-tls")
    leaf = next(c for c in kafka.certificates if c.role == "leaf")
    assert leaf.subject == "kafka-node" and leaf.signed_by.startswith("current CA ")
    assert 89 <= leaf.days_left <= 90
    soon = certs.inspect(ITEMS, store, NOW + dt.timedelta(days=70))
    assert next(s for s in soon if s.name == "kafka-tls").level == "warn"
    assert next(s for s in soon if s.name == "es-user-indexer").level == "ok"  # a CA bundle: 5 years
    late = certs.inspect(ITEMS, store, NOW + dt.timedelta(days=91))
    expired = next(s for s in late if s.name == "kafka-tls")
    assert expired.level == "error" and any(c.problem == "expired" for c in expired.certificates)
    assert certs.WARN_DAYS == CLI_WARN_DAYS == 30


def test_status_names_what_is_wrong(deployed) -> None:
    secrets = dict(deployed)
    ca = secrets[f"{ITEMS.ca_namespace}/{ITEMS.ca_secret}"]
    secrets[f"{ITEMS.namespace}/platform-ca"] = {**ca}  # the CA key copied into the platform namespace
    del secrets[f"{ITEMS.namespace}/es-user-indexer"]
    stranger = credentials.new_ca("a stranger")
    secrets[f"{ITEMS.namespace}/syslog-tls"] = {**secrets[f"{ITEMS.namespace}/syslog-tls"], "ca.crt": stranger[0]}
    found = {s.name: s for s in certs.inspect(ITEMS, DictStore(secrets), NOW)}
    assert found["platform-ca"].level == "error"
    assert any("CA private key in the platform namespace" in p for p in found["platform-ca"].problems)
    assert not found["es-user-indexer"].present and found["es-user-indexer"].level == "error"
    syslog = found["syslog-tls"]
    assert syslog.level == "error"
    assert any("not signed by any CA of its own ca.crt" in c.problem for c in syslog.certificates)
    assert any(c.role == "ca" and "not the platform's" in c.signed_by for c in syslog.certificates)


def test_progress_record_and_what_a_resume_accepts() -> None:
    p = Progress(3, "reissue", "roll", old_ca="a" * 64, new_ca="b" * 64, started_at="t0")
    assert Progress.from_json(p.to_json()) == p and Progress.from_json("") is None
    assert p.stamp == "3-reissue" and p.in_progress
    assert consistent(p, "a" * 64, "b" * 64)
    assert not consistent(p, "b" * 64, "")  # switched while the record says reissue: changed outside
    assert not consistent(p, "a" * 64, "c" * 64)
    drop = p.moved(phase="drop", stage="secrets")
    assert consistent(drop, "a" * 64, "b" * 64) and consistent(drop, "b" * 64, "")  # before or after the switch
    assert not consistent(drop.moved(stage="roll"), "a" * 64, "b" * 64)
    started = Progress(1, "trust", "secrets", old_ca="a" * 64)
    assert consistent(started, "a" * 64, "") and consistent(started, "a" * 64, "d" * 64)
