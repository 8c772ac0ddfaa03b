"""The certificate rotation as a rehearsal's change (`toolkit rehearse --env sim --rotate-certs`): the hooks
`toolkit.rehearsal.run` calls instead of an upgrade, kept here so the rehearsal's own flow stays as it is.

On `sim`: the simulated platform gets deploy's Secrets (real X.509, `credentials.generate`), the load runs, the
rotation (`toolkit.provision.rotation.Rotation`, the same as `toolkit certs rotate`) replaces the CA through the
engine, and beyond the load's own verdict (nothing lost, duplicated or red) the world's TLS model is checked: a pod
pair that talks and could not complete a handshake at any sampled second fails the rehearsal.

On `local` (and kind) it is refused for now; `toolkit certs rotate --env local` itself works. The platform side is
ready: the rehearsal runs the chart's worker pods, which load the Secrets' files when they start, and the cluster's
peer operator publishes Kafka and Elasticsearch again with the Secret as it stands after each phase. What is missing
is the load's side: its clients (`toolkit.rehearsal.liveload`: the probe producer and consumers, the Elasticsearch
checker) load the admin identity's CA and client certificate once, at start, so once the reissue phase makes the
servers present leaves only the new CA signs (and the drop phase refuses client certificates of the old one), they
would fail. A local rotation rehearsal needs them rebuilt from the run namespace's Secrets after each phase, with
the ledger carried across.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from toolkit import catalog as catalog_mod
from toolkit.config.environments import Environment
from toolkit.engine.executor import Event, StepRecord
from toolkit.errors import UsageError
from toolkit.model import UpgradeSettings
from toolkit.provision import credentials
from toolkit.provision.rotation import Rotation, fixed

LOCAL_REFUSAL = (
    "--rotate-certs rehearses on sim only for now: on {env} the rehearsal's load clients load their CA and client "
    "certificate once, at start, so they cannot follow the rotation (see toolkit/rehearsal/certs.py for what a local "
    "rotation rehearsal needs). Rotate a local platform with `toolkit certs rotate --env {env}`"
)


def check(env: Environment, to_versions: dict[str, str]) -> None:
    """Refuse what a rotation rehearsal cannot be (exit 2): with --to, or outside sim."""
    if to_versions:
        raise UsageError(
            "--rotate-certs and --to conflict: a rehearsal rehearses one change; rehearse the rotation and the "
            "upgrade separately"
        )
    if env.kind != "sim":
        raise UsageError(LOCAL_REFUSAL.format(env=env.name))


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

    result = Rotation(
        env.name,
        credentials.plan(env),
        fixed(target),
        SimCertStore(target),
        catalog_mod.load(),
        settings,
        holder=holder,
        on_event=on_event,
    ).run()
    notes = [
        f"change: certificate rotation {result.generation} (trust a new CA, reissue every leaf, drop the old CA), "
        f"{len(result.stages)} stages: " + ", ".join(f"{s.phase} {s.stage} {s.outcome}" for s in result.stages)
    ]
    return result.outcome, result.reason, result.steps, notes


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
