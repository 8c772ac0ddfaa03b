"""A certificate rotation on the simulated platform (virtual clock): the Secrets are real X.509 (made by deploy's own
`credentials.generate`), the pods load them when they start and the world judges each handshake from what they
loaded. The rotation is the product's (`toolkit.provision.rotation.Rotation`), its restarts the engine's.

- a rotation completes: every pod restarted once per phase, never a failed handshake, never a partition under its
  min ISR; afterwards every Secret trusts only the new CA and every leaf is signed by it;
- the world's TLS model is not blind: leaves signed by a new CA without the trust phase break a restarted broker's
  replication, and the engine halts on it;
- stopped (a request) or crashed (the orchestrator dies after its K-th step-starting action, or after its N-th
  Secret write) anywhere, the same rotation run again finishes it: no pod restarted more than once per phase, no
  failed handshake, the Secrets as after an uninterrupted rotation;
- refusals change nothing; without gates the same rotation takes partitions under their min ISR.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.scenarios.harness import Scenario, make
from toolkit.catalog import load
from toolkit.config.environments import resolve
from toolkit.config.platform import KafkaSpec
from toolkit.engine.executor import Event, Executor
from toolkit.model import Component, UpgradeSettings
from toolkit.operations import platform_secrets
from toolkit.provision import certs, credentials
from toolkit.provision.rotation import STAMP_ANNOTATION, Rotation, RotationResult, fixed
from toolkit.targets.sim import Faults, OrchestratorCrash, SimParams, SimTarget
from toolkit.targets.sim.pki import SimCertStore, install

SLOW = pytest.mark.slow  # a whole rotation each (~4 s): one case of each kind stays in the fast tier
ENV = resolve("sim")  # its wiring names the Secrets; the scenario's world has the same workloads
ITEMS = credentials.plan(ENV)
NS, CA_NS = ITEMS.namespace, ITEMS.ca_namespace


def scenario(faults: Faults | None = None, **params: Any) -> Scenario:
    sc = make(kafka=KafkaSpec(version="4.0.1", controllers=3, brokers=3), faults=faults, params=SimParams(**params))
    install(sc.world, platform_secrets(ENV, credentials.generate(ENV)), ENV.wiring)
    return sc


def rotate(
    sc: Scenario,
    settings: UpgradeSettings | None = None,
    holder: str = "sre@host-a/1",
    on_event: Any = None,
    stop_requested: Any = None,
    store: Any = None,
) -> RotationResult:
    def collect(event: Event) -> None:
        sc.events.append(event)
        if on_event is not None:
            on_event(event)

    return Rotation(
        ENV.name,
        ITEMS,
        fixed(sc.target),
        store or SimCertStore(sc.target),
        load(),
        settings or UpgradeSettings(),
        holder=holder,
        on_event=collect,
        stop_requested=stop_requested or (lambda: False),
    ).run()


def secrets_of(sc: Scenario) -> dict[str, dict[str, bytes]]:
    store = SimCertStore(sc.target)
    out = {}
    for name in [*certs.secret_names(ITEMS)]:
        data = store.read(NS, name)
        assert data is not None
        out[name] = data
    ca = store.read(CA_NS, ITEMS.ca_secret)
    assert ca is not None
    out[f"{CA_NS}/{ITEMS.ca_secret}"] = ca
    return out


def fingerprints(pem: bytes) -> list[str]:
    return [certs.fingerprint(c) for c in certs.certificates(pem)]


def assert_rotated(sc: Scenario, old_ca: str) -> str:
    """Every Secret as an uninterrupted rotation leaves it; returns the new CA's fingerprint."""
    secrets = secrets_of(sc)
    ca = secrets.pop(f"{CA_NS}/{ITEMS.ca_secret}")
    assert set(ca) == {"ca.crt", "ca.key"}
    new_ca = fingerprints(ca["ca.crt"])[0]
    assert new_ca != old_ca
    issuer = certs.certificates(ca["ca.crt"])[0]
    leaves = {c.secret for c in ITEMS.certificates}
    for name, data in secrets.items():
        assert fingerprints(data["ca.crt"]) == [new_ca], name
        assert not certs.has_private_key({k: v for k, v in data.items() if k != "tls.key"}), name
        if name in leaves:
            assert certs.signed_by(certs.certificates(data["tls.crt"])[0], issuer), name
    progress = certs.Progress.from_json(SimCertStore(sc.target).read_progress())
    assert progress is not None and progress.phase == "done" and progress.new_ca == new_ca
    return new_ca


def assert_safe(sc: Scenario) -> None:
    assert all(h.get("tls_failures", 0) == 0 for h in sc.world.history), next(
        h for h in sc.world.history if h.get("tls_failures")
    )
    assert all(h["below_min_isr"] == 0 and h["offline"] == 0 for h in sc.world.history)
    assert all(h["es_health"] != "red" for h in sc.world.history)


def statefulset_restarts(sc: Scenario) -> dict[str, int]:
    return {p.name: p.restarts for p in sc.world.pods.values() if sc.world.workloads[p.workload].kind == "StatefulSet"}


def test_a_rotation_restarts_every_pod_once_per_phase_and_no_handshake_ever_fails() -> None:
    sc = scenario()
    old_ca = fingerprints(secrets_of(sc)["platform-ca"]["ca.crt"])[0]
    result = rotate(sc)
    assert result.outcome == "completed", result.reason
    assert [(s.phase, s.stage) for s in result.stages] == [
        ("trust", "secrets"),
        ("trust", "roll"),
        ("reissue", "secrets"),
        ("reissue", "roll"),
        ("drop", "secrets"),
        ("drop", "roll"),
    ]
    assert set(statefulset_restarts(sc).values()) == {3}
    assert_rotated(sc, old_ca)
    assert_safe(sc)
    assert "tls_failures" in sc.world.history[-1]  # the TLS model was on
    for w in sc.world.workloads.values():
        assert w.annotations[STAMP_ANNOTATION] == "1-drop"
    # per phase: the StatefulSets of a component stamped together, each Deployment alone (it rolls once stamped)
    runs = [[c for c, _ in r.plan.targets] for s in result.stages for r in s.runs]
    assert runs == [["kafka"], ["elasticsearch"], ["workers"], ["workers"]] * 3
    rolled = [st.members[0] for s in result.stages for r in s.runs for st in r.steps if st.kind == "roll"]
    assert rolled == ["workers-receiver", "workers-indexer"] * 3
    whats = [a["what"] for a in sc.world.audit]
    assert (
        whats.index("certs trust: bundles")
        < whats.index("certs reissue: leaves")
        < whats.index("certs drop: bundles and CA")
    )


@SLOW
def test_a_second_rotation_is_generation_two_and_replaces_the_first_ones_ca() -> None:
    sc = scenario()
    first = rotate(sc)
    assert first.ok
    ca_after_first = fingerprints(secrets_of(sc)["platform-ca"]["ca.crt"])[0]
    second = rotate(sc)
    assert second.ok and second.generation == 2
    assert_rotated(sc, ca_after_first)
    assert {w.annotations[STAMP_ANNOTATION] for w in sc.world.workloads.values()} == {"2-drop"}
    assert_safe(sc)


def test_the_tls_model_sees_leaves_of_a_new_ca_that_peers_do_not_trust() -> None:
    """The negative control of the model itself: skip the trust phase (new leaves and a new-CA-only bundle written
    at once), restart one broker through the engine: its handshake with its peers fails, it never rejoins the ISR,
    and the engine halts on that broker instead of going on."""
    sc = scenario()
    store = SimCertStore(sc.target)
    authorities = certs.Authorities.from_secret(store.read(CA_NS, ITEMS.ca_secret) or {})
    crt, key = credentials.new_ca("naive CA")
    naive = certs.Authorities(authorities.current_crt, authorities.current_key, crt, key)
    kafka = store.read(NS, ITEMS.certificates[0].secret) or {}
    new = certs.reissued(kafka, ITEMS.certificates[0].secret, naive, dt.datetime.now(dt.UTC))
    assert new is not None
    store.write(NS, ITEMS.certificates[0].secret, certs.dropped(new, naive))
    sc.world.controllers.annotate_template("kafka-broker", {STAMP_ANNOTATION: "naive"})
    sc.world.advance(sc.world.now + 10)
    settings = UpgradeSettings(step_timeout=300, restart_budget=1)
    result = Executor(sc.target, load(), {Component.KAFKA: "4.0.1"}, settings).run()
    assert result.outcome == "halted"
    assert "did not reach its promised state" in result.reason
    failing = [h for h in sc.world.history if h.get("tls_failures")]
    assert failing and "kafka-broker" in failing[0]["tls_failure"]
    restarted = [s.members[0] for s in result.steps if s.kind in ("restart", "recover")]
    assert len(set(restarted)) == 1  # one broker went down; the others were never touched


@pytest.mark.parametrize("crash_after", [pytest.param(k, marks=SLOW) for k in (2, 5, 9, 13, 26, 33, 40)] + [20])
def test_a_crash_anywhere_in_the_pod_restarts_resumes_safely(crash_after: int) -> None:
    sc = scenario(Faults(crash_after_step=crash_after), es_shutdown_api=False)
    old_ca = fingerprints(secrets_of(sc)["platform-ca"]["ca.crt"])[0]
    with pytest.raises(OrchestratorCrash):
        rotate(sc)
    progress = certs.Progress.from_json(SimCertStore(sc.target).read_progress())
    assert progress is not None and progress.in_progress
    again = Scenario(sc.world, SimTarget(sc.world), sc.events)  # a new process on the same platform
    result = rotate(again)
    assert result.outcome == "completed", result.reason
    assert result.stages[0].stage == progress.stage or result.stages[0].phase != progress.phase
    assert max(statefulset_restarts(sc).values()) <= 4  # at most the one restart the crash cut short, again
    assert min(statefulset_restarts(sc).values()) == 3
    assert_rotated(again, old_ca)
    assert_safe(again)
    assert sc.world.elasticsearch.allocation is None


class CrashingStore(SimCertStore):
    """The simulated store, whose orchestrator dies (like SIGKILL) right after its N-th Secret write: the fault
    injection of a crash in the middle of a phase's Secrets."""

    def __init__(self, target: SimTarget, after: int) -> None:
        super().__init__(target)
        self.left = after

    def write(self, namespace: str, name: str, data: dict[str, bytes]) -> None:
        super().write(namespace, name, data)
        self.left -= 1
        if self.left == 0:
            raise OrchestratorCrash(f"crashed after writing {namespace}/{name}")


# 33 Secret writes in all: trust 1 (the new CA) + 12 bundles, reissue 7 leaves, drop 12 bundles + 1 (the CA switch)
@pytest.mark.parametrize("writes", [pytest.param(n, marks=SLOW) for n in (1, 2, 13, 14, 16, 20, 21, 25, 32, 33)] + [7])
def test_a_crash_in_the_middle_of_a_phases_secrets_resumes_safely(writes: int) -> None:
    sc = scenario()
    old_ca = fingerprints(secrets_of(sc)["platform-ca"]["ca.crt"])[0]
    with pytest.raises(OrchestratorCrash):
        rotate(sc, store=CrashingStore(sc.target, writes))
    again = Scenario(sc.world, SimTarget(sc.world), sc.events)
    result = rotate(again)
    assert result.outcome == "completed", result.reason
    assert set(statefulset_restarts(sc).values()) == {3}
    assert_rotated(again, old_ca)
    assert_safe(again)


def test_a_stop_request_ends_at_a_safe_point_and_the_same_rotation_resumes() -> None:
    sc = scenario()
    old_ca = fingerprints(secrets_of(sc)["platform-ca"]["ca.crt"])[0]
    phases: list[str] = []

    def watch(event: Event) -> None:
        if event.kind == "phase":
            phases.append(event.message)

    first = rotate(sc, on_event=watch, stop_requested=lambda: any(m.startswith("reissue:") for m in phases))
    assert first.outcome == "stopped" and "run the same command to resume" in first.reason
    assert first.progress is not None and first.progress.phase == "reissue"
    assert sc.world.lease is None  # released
    second = rotate(sc)
    assert second.outcome == "completed", second.reason
    assert second.stages[0].phase == "reissue"
    assert set(statefulset_restarts(sc).values()) == {3}
    assert_rotated(sc, old_ca)
    assert_safe(sc)


def test_refusals_change_nothing() -> None:
    sc = scenario()
    before = secrets_of(sc)
    del sc.world.tls.secrets[f"{NS}/kafka-user-indexer"]
    refused = rotate(sc)
    assert refused.outcome == "refused" and refused.rule == "certs.secret-present"
    assert "Secret security-platform/kafka-user-indexer does not exist" in refused.reason
    assert "toolkit deploy --env sim" in refused.reason
    assert SimCertStore(sc.target).read_progress() == ""
    sc2 = scenario()
    before = secrets_of(sc2)
    # an upgrade half way: the spec asks a version no pod runs
    sc2.world.controllers.apply_spec("kafka-broker", "4.1.0")
    sc2.world.advance(sc2.world.now + 10)
    refused = rotate(sc2)
    assert refused.outcome == "refused" and refused.rule == "certs.upgrade-in-progress"
    assert "toolkit upgrade run --env sim --to kafka=4.1.0" in refused.reason
    assert secrets_of(sc2) == before and sc2.world.lease is None
    assert all(p.restarts == 0 for p in sc2.world.pods.values())


def test_a_ca_changed_outside_the_rotation_is_refused_on_resume() -> None:
    sc = scenario()
    stop = [False]

    def watch(event: Event) -> None:
        if event.kind == "phase" and event.message.startswith("trust: new CA"):
            stop[0] = True

    assert rotate(sc, on_event=watch, stop_requested=lambda: stop[0]).outcome == "stopped"
    store = SimCertStore(sc.target)
    crt, key = credentials.new_ca("someone else's CA")
    store.write(CA_NS, ITEMS.ca_secret, {"ca.crt": crt, "ca.key": key})
    refused = rotate(sc)
    assert refused.outcome == "refused" and refused.rule == "certs.rotation-consistent"
    assert "changed outside the rotation" in refused.reason


@pytest.mark.slow  # two whole rotations of the simulated platform
def test_without_gates_the_rotation_takes_partitions_under_min_isr() -> None:
    gated, unsafe = scenario(), scenario()
    assert rotate(gated).ok
    assert_safe(gated)
    result = rotate(unsafe, settings=UpgradeSettings(skip_gates=True))
    assert result.ok  # it "completes"...
    assert any(h["below_min_isr"] for h in unsafe.world.history)  # ...by taking writes away meanwhile
