"""The planner: (observed state, wanted versions, settings, drivers) -> an ordered `Plan`, or a refusal. Pure.

Because the plan is derived from OBSERVED state alone (each member's revision and version against the target),
running the planner again after a crash yields exactly the work that remains: finished members are never planned
again, and what an interrupted step left behind is planned first as a repair.

Algorithm
1. Repairs of every component (each driver's `repairs`), whatever the targets: nothing moves on top of debris.
2. For each targeted component, in the catalog's upgrade order (servers before their clients: Kafka,
   Elasticsearch, then the workers): refuse when it is not installed, when it has no driver, when its data plane
   cannot be observed (nothing could be proven about it), or when the version path is not allowed (the catalog's
   generic rules against the LOWEST running version, then the driver's own rules; rollback rules with
   `settings.rollback`); otherwise the driver's steps, refusals, warnings and notes. A component's steps all come
   before the next component's.
3. Every step is annotated with what would block it if it were taken now (`Step.blocked`: its driver's gates
   evaluated on this state, once), so a block is visible before the run, not discovered during it; the executor
   acts on the same annotation (one plan per observation, the gates evaluated once per step).
4. A step blocked by a fatal verdict (no amount of waiting can clear it: a replica on a broker that does not exist,
   an index with no replica) refuses the whole plan up front, naming it, instead of stalling until a timeout.

Steps with the same component, kind and phase may be taken in any order: when the first cannot go yet, the executor
re-checks it later and takes another (the Strimzi re-queue), so one slow member never blocks its peers' progress.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from toolkit.catalog import Catalog
from toolkit.engine import paths
from toolkit.engine.drivers import ComponentDriver, default_drivers
from toolkit.model import Plan, PlatformState, Step, StepKind, UpgradeSettings, Verdict, first_blocking


def _registry(drivers: Mapping[str, ComponentDriver] | None) -> Mapping[str, ComponentDriver]:
    return drivers if drivers is not None else default_drivers()


def repairs(state: PlatformState, drivers: Mapping[str, ComponentDriver] | None = None) -> list[Step]:
    """What an interrupted run may have left behind, to be undone before anything else moves."""
    return [step for driver in _registry(drivers).values() for step in driver.repairs(state)]


def installed(state: PlatformState, component: str, driver: ComponentDriver) -> bool:
    """Whether the component is present: its driver's answer when it gives one (Kubernetes itself has no
    workloads: its members are nodes), else whether any workload of the component is observed."""
    own = getattr(driver, "installed", None)
    return bool(own(state)) if callable(own) else bool(state.workloads_of(component))


def unobserved(
    state: PlatformState, targets: Mapping[str, str], drivers: Mapping[str, ComponentDriver] | None = None
) -> list[Verdict]:
    """Refusals for targeted components whose data plane could not be observed at all."""
    registry = _registry(drivers)
    out = []
    for component in targets:
        driver = registry.get(component)
        if driver is not None and installed(state, component, driver):
            verdict = driver.observed(state)
            if not verdict.ok:
                out.append(verdict)
    return out


def plan(
    state: PlatformState,
    targets: Mapping[str, str],
    settings: UpgradeSettings,
    catalog: Catalog,
    drivers: Mapping[str, ComponentDriver] | None = None,
) -> Plan:
    registry = _registry(drivers)
    steps: list[Step] = repairs(state, registry)
    refusals: list[Verdict] = list(unobserved(state, targets, registry))
    warnings: list[Verdict] = []
    notes: list[str] = []
    order = [c for c in catalog.upgrade_order if c in targets]
    for component in order:
        version = targets[component]
        driver = registry.get(component)
        if driver is None:
            refusals.append(
                Verdict.refuse(
                    f"{component}.driver",
                    f"the catalog names component {component} but this toolkit has no driver for it; upgrade the "
                    "toolkit or remove the component from --to",
                )
            )
            continue
        if not installed(state, component, driver):
            refusals.append(
                Verdict.refuse(
                    f"{component}.installed",
                    f"{component} is not installed in environment {state.environment}; install it with "
                    f"`toolkit deploy --env {state.environment}` first",
                )
            )
            continue
        if settings.rollback:
            verdict = rollback_path(catalog, state, component, version, registry)
        else:
            verdict = upgrade_path(catalog, state, component, version, registry)
        if not verdict.ok:
            refusals.append(verdict)
            continue
        part = driver.plan(state, version, settings, catalog)
        refusals.extend(part.refusals)
        warnings.extend(part.warnings)
        notes.extend(part.notes)
        steps.extend(part.steps)
    steps = _annotate_blocks(state, steps, settings, registry)
    for step in steps:  # one refusal per rule: a driver's own refusal already names every object involved
        if step.blocked is not None and step.blocked.fatal and step.blocked.rule not in {r.rule for r in refusals}:
            refusals.append(step.blocked)
    return Plan(
        environment=state.environment,
        simulated=state.simulated,
        targets=tuple((c, targets[c]) for c in order),
        steps=tuple(steps),
        refusals=tuple(refusals),
        warnings=tuple(warnings),
        notes=tuple(notes),
    )


def upgrade_path(
    catalog: Catalog,
    state: PlatformState,
    component: str,
    version: str,
    drivers: Mapping[str, ComponentDriver] | None = None,
    running: list[str] | None = None,
) -> Verdict:
    """May `component` go to `version` from what runs (`running`, default: observed in `state`)? The catalog's
    generic rules first, then the component's own (its driver's `path_rules`)."""
    driver = _registry(drivers)[component]
    if running is None:
        running = paths.running_versions(state, component, driver.running_versions(state))
    own = (
        driver.path_rules(catalog, state, running, version)
        if version in catalog.component(component).versions
        else None
    )
    return paths.check_upgrade_path(catalog, component, running, version, own)


def rollback_path(
    catalog: Catalog,
    state: PlatformState,
    component: str,
    previous: str,
    drivers: Mapping[str, ComponentDriver] | None = None,
) -> Verdict:
    """May `component` return to `previous`? A recorded version the catalog knows, then the driver's rules."""
    verdict = paths.check_rollback_target(catalog, component, previous)
    if not verdict.ok:
        return verdict
    return _registry(drivers)[component].rollback_rules(catalog, state, previous)


def _annotate_blocks(
    state: PlatformState, steps: list[Step], settings: UpgradeSettings, drivers: Mapping[str, ComponentDriver]
) -> list[Step]:
    out: list[Step] = []
    for step in steps:
        blocked = first_blocking(step_gates(state, step, settings, drivers))
        out.append(step if blocked is None else replace(step, blocked=blocked))
    return out


def step_gates(
    state: PlatformState,
    step: Step,
    settings: UpgradeSettings,
    drivers: Mapping[str, ComponentDriver] | None = None,
) -> list[Verdict]:
    """Every gate that must pass before `step` acts (none for repairs and spec changes, none when skipped). Pure."""
    if settings.skip_gates or step.kind in (StepKind.REPAIR, StepKind.APPLY_SPEC):
        return []
    return _registry(drivers)[step.component].gates(state, step, settings)


def step_done(
    state: PlatformState,
    step: Step,
    settings: UpgradeSettings,
    drivers: Mapping[str, ComponentDriver] | None = None,
) -> Verdict:
    """Has the state the step promised been reached? Pure."""
    return _registry(drivers)[step.component].done(state, step, settings)
