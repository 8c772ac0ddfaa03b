"""Run a rehearsal: install the `from` versions, put load on the platform, upgrade through the engine, stop the load,
drain, verify, report.

On `sim` the platform and the load are both simulated (toolkit.targets.sim.traffic says exactly what is modelled) and
live only for the run, unless `--keep` saves them under the state directory. The upgrade itself is the real engine:
the same planner, gates and executor as `toolkit upgrade run`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from toolkit import catalog as catalog_mod
from toolkit.config.environments import Environment, resolve
from toolkit.engine.executor import Event, Executor, RunResult
from toolkit.model import Component, UpgradeSettings
from toolkit.rehearsal.report import RehearsalReport
from toolkit.rehearsal.verdict import judge

WARMUP_SECONDS = 60.0


@dataclass
class RehearsalOptions:
    rate: float = 500.0  # probe messages per second
    syslog_rate: float = 1000.0  # syslog events per second
    drain_timeout: float = 900.0
    keep: bool = False
    unsafe_skip_gates: bool = False
    injections: list[str] = field(default_factory=list)
    settings: UpgradeSettings = field(default_factory=UpgradeSettings)
    max_unavailable_bound: float | None = None


def new_run_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"rh-{stamp}-{uuid.uuid4().hex[:6]}"


def rehearse(
    env_name: str | None,
    from_versions: dict[Component, str],
    to_versions: dict[Component, str],
    options: RehearsalOptions,
    on_event: Callable[[Event], None] | None = None,
) -> RehearsalReport:
    from toolkit.operations import UsageError

    env = resolve(env_name)
    if not to_versions:
        raise UsageError("nothing to rehearse: give at least one --to COMPONENT=VERSION (e.g. --to kafka=4.1.0)")
    if options.unsafe_skip_gates and env.kind not in ("sim", "local"):
        raise UsageError(
            f"--unsafe-skip-gates is refused on environment {env.name} (kind {env.kind}): it exists only as a "
            "negative control on sim and local"
        )
    for name, value in (("--rate", options.rate), ("--syslog-rate", options.syslog_rate)):
        if value <= 0:
            raise UsageError(f"{name} {value} must be > 0 events per second")
    if env.kind != "sim":
        raise UsageError(
            f"environment {env.name} is of kind {env.kind}: this toolkit rehearses on sim; on a real cluster run "
            f"`toolkit deploy --env {env.name}` and `toolkit upgrade run --env {env.name}` under your own load"
        )
    return _rehearse_sim(env, from_versions, to_versions, options, on_event)


def _rehearse_sim(
    env: Environment,
    from_versions: dict[Component, str],
    to_versions: dict[Component, str],
    options: RehearsalOptions,
    on_event: Callable[[Event], None] | None,
) -> RehearsalReport:
    from toolkit.operations import UsageError, _sim_params, sim_store
    from toolkit.targets.sim import (
        InjectionError,
        OrchestratorCrash,
        SimStore,
        SimTarget,
        build_world,
        parse_injections,
    )
    from toolkit.targets.sim.traffic import Traffic

    run_id = new_run_id()
    try:
        faults = parse_injections(list(options.injections))
    except InjectionError as exc:
        raise UsageError(str(exc)) from None
    versions = {c.value: v for c, v in from_versions.items()}
    world = build_world(env.name, env.platform, _sim_params(env), faults, versions=versions)
    traffic = Traffic(rate=options.rate, syslog_rate=options.syslog_rate)
    world.traffic = traffic
    target = SimTarget(world)
    world.advance(WARMUP_SECONDS)
    events: list[Event] = []

    def collect(event: Event) -> None:
        events.append(event)
        if on_event is not None:
            on_event(event)

    settings = replace(options.settings, skip_gates=options.unsafe_skip_gates)
    executor = Executor(
        target, catalog_mod.load(), to_versions, settings, holder=f"rehearsal/{run_id}", on_event=collect
    )
    outcome, reason = "completed", ""
    try:
        result: RunResult | None = executor.run()
        assert result is not None
        outcome, reason = result.outcome, result.reason
    except OrchestratorCrash as crash:
        result = None
        outcome, reason = "crashed", str(crash)
    traffic.stop()
    deadline = world.now + options.drain_timeout
    while not traffic.drained and world.now < deadline:
        world.advance(world.now + 5)
    summary = traffic.summary()
    verdict = judge(summary, outcome, options.max_unavailable_bound)
    reasons = list(verdict.reasons)
    if not traffic.drained:
        reasons.append(f"the load did not drain within {options.drain_timeout:.0f} s after the upgrade")
    steps: list[dict[str, Any]] = [r.as_dict() for r in (result.steps if result else executor.records)]
    restarts = [(e.at, e.message.split()[1]) for e in events if e.kind == "act" and e.message.startswith("restart ")]
    if options.keep:
        SimStore(sim_store(env).path.with_name(f"{run_id}.json")).save(world)
    return RehearsalReport(
        run_id=run_id,
        environment=env.name,
        simulated=True,
        from_versions={c.value: v for c, v in from_versions.items()}
        or {c: env.platform.version_of(c) for c in catalog_mod.load().upgrade_order},
        to_versions={c.value: v for c, v in to_versions.items()},
        rate=options.rate,
        syslog_rate=options.syslog_rate,
        unsafe_skip_gates=options.unsafe_skip_gates,
        outcome=outcome,
        outcome_reason=reason,
        passed=not reasons,
        reasons=reasons,
        summary=summary,
        steps=steps,
        restarts=restarts,
        timeline=traffic.timeline,
    )
