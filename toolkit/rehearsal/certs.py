"""The certificate rotation as a rehearsal's change (`toolkit rehearse --env sim --rotate-certs`): the hooks
`toolkit.rehearsal.run` calls instead of an upgrade, kept here so the rehearsal's own flow stays as it is.

On `sim`: the simulated platform gets deploy's Secrets (real X.509, `credentials.generate`), the load runs, the
rotation (`toolkit.provision.rotation.Rotation`, the same as `toolkit certs rotate`) replaces the CA through the
engine, and beyond the load's own verdict (nothing lost, duplicated or red) the world's TLS model is checked: a pod
pair that talks and could not complete a handshake at any sampled second fails the rehearsal.

On `local` and `kind` the rotation runs against the run namespace's real Secrets (`KubeCertStore`) with the engine
on the real target, exactly as `toolkit certs rotate` does; the chart's worker pods load the Secrets' files when they
restart, the published Kafka and Elasticsearch (on local: the cluster's peer operator, which serves a changed Secret
at once) follow them. The load is a client outside the platform: after each phase's Secrets are written it takes the
new trust and identity from them (the run namespace's Secrets discovered again, `LiveLoad.reconnect`), as any
client of the platform must, and its ledgers carry on. What a phase allows makes that safe: after `trust` the load
trusts both CAs while the servers still present the old leaves; after `reissue` it presents a new leaf the servers
trust (both CAs) and accepts theirs; after `drop` only the new CA remains on both sides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from toolkit.config.environments import Environment
from toolkit.engine.executor import Event, StepRecord
from toolkit.errors import UsageError
from toolkit.model import UpgradeSettings
from toolkit.provision import credentials
from toolkit.provision.rotation import Rotation, fixed


def check(env: Environment, to_versions: dict[str, str]) -> None:
    """Refuse what a rotation rehearsal cannot be (exit 2): one with --to too, or on a cluster it does not deploy to."""
    if to_versions:
        raise UsageError(
            "--rotate-certs and --to conflict: a rehearsal rehearses one change; rehearse the rotation and the "
            "upgrade separately"
        )
    if env.kind not in ("sim", "local", "kind"):
        raise UsageError(
            f"--rotate-certs rehearses on sim, local and kind (a namespace of its own); on {env.name} (kind "
            f"{env.kind}) rotate with `toolkit certs rotate --env {env.name}`"
        )


def install(env: Environment, world: Any) -> None:
    """Give the simulated platform the certificates deploy makes, loaded by every running pod."""
    from toolkit.targets.sim.pki import install as install_pki

    namespace = env.wiring.namespace
    generated = credentials.generate(env)
    install_pki(world, {k if "/" in k else f"{namespace}/{k}": v for k, v in generated.items()}, env.wiring)


def rotate(
    env: Environment, target: Any, settings: UpgradeSettings, holder: str, on_event: Callable[[Event], None]
) -> tuple[str, str, list[StepRecord], list[str]]:
    """Run the rotation on the simulated platform: (outcome, reason, the engine's step records, notes)."""
    from toolkit.targets.sim.pki import SimCertStore

    return _rotation(env, fixed(target), SimCertStore(target), settings, holder, on_event)


def tls_reasons(world: Any) -> list[str]:
    """Why the rehearsal fails on TLS: the samples where a pod pair that talks could not complete a handshake."""
    failing = [h for h in world.history if h.get("tls_failures")]
    if not failing:
        return []
    first = failing[0]
    return [
        f"TLS handshakes failed during {len(failing)} sampled seconds (first at t={first['t']:.0f} s: "
        f"{first.get('tls_failure', '?')}, {first['tls_failures']} pod pairs)"
    ]


def rotate_real(
    env: Environment,
    settings: UpgradeSettings,
    holder: str,
    on_event: Callable[[Event], None],
    on_secrets: Callable[[str], None],
) -> tuple[str, str, list[StepRecord], list[str]]:
    """Run the rotation on the run's real platform (local, kind): its Secrets through the apiserver, a target opened
    afresh for each stage (as `toolkit certs rotate`); `on_secrets(phase)` after each phase's Secrets are written."""
    from toolkit.targets.kube.certs import KubeCertStore
    from toolkit.targets.real import kube_api, open_real_target

    api = kube_api(env)
    try:
        store = KubeCertStore(api, credentials.ca_namespace(env.wiring.namespace))
        return _rotation(env, lambda: open_real_target(env), store, settings, holder, on_event, on_secrets)
    finally:
        api.close()


def _rotation(
    env: Environment,
    targets: Callable[[], Any],
    store: Any,
    settings: UpgradeSettings,
    holder: str,
    on_event: Callable[[Event], None],
    on_secrets: Callable[[str], None] | None = None,
) -> tuple[str, str, list[StepRecord], list[str]]:
    """The rotation `toolkit certs rotate` runs, as a rehearsal's change: (outcome, reason, step records, notes)."""
    result = Rotation.of_environment(
        env, targets, store, settings, holder=holder, on_event=on_event, on_secrets=on_secrets
    ).run()
    return result.outcome, result.reason, result.steps, [_stages_note(result)]


def _stages_note(result: Any) -> str:
    return (
        f"change: certificate rotation {result.generation} (trust a new CA, reissue every leaf, drop the old CA), "
        f"{len(result.stages)} stages: " + ", ".join(f"{s.phase} {s.stage} {s.outcome}" for s in result.stages)
    )
