"""What the commands do, as functions: the CLI parses, resolves the environment ONCE and prints around these; the
tests call the same ones.

This is the composition root: it opens an environment's target (the simulated platform, or a real cluster through
the adapters) and hands the engine its inputs. It holds no decision of its own. Every function takes the resolved
`Environment` object, never a name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from toolkit import catalog as catalog_mod
from toolkit.config.access import EsConnection
from toolkit.config.environments import Environment
from toolkit.engine import planner
from toolkit.engine.executor import Event, Executor, RunResult, default_holder
from toolkit.engine.ports import Target
from toolkit.engine.status import ACTIVE_PHASES, IDLE, from_data
from toolkit.errors import RefusedError, UsageError
from toolkit.indices import IndexLayout
from toolkit.model import Plan, PlatformState, RunRequest, UpgradeSettings, Verdict
from toolkit.model import schema as state_schema


def parse_component_versions(items: list[str], option: str = "--to") -> dict[str, str]:
    """['kafka=4.1.0', ...] -> {'kafka': '4.1.0'}; every problem reported at once."""
    cat = catalog_mod.load()
    out: dict[str, str] = {}
    problems: list[str] = []
    for item in items:
        name, sep, version = item.partition("=")
        name, version = name.strip(), version.strip()
        if not sep or not name or not version:
            problems.append(f"{option} {item!r} is not COMPONENT=VERSION (e.g. {option} kafka=4.1.0)")
            continue
        if name not in cat.components:
            problems.append(f"{option} {item!r}: unknown component {name!r} (known: {', '.join(cat.components)})")
            continue
        if name in out and out[name] != version:
            problems.append(f"{option} names {name} twice ({out[name]} and {version}); give it once")
            continue
        if version not in cat.components[name].versions:
            known = ", ".join(cat.components[name].sorted_versions())
            problems.append(f"{option} {item!r}: {name} {version} is not in the catalog (known: {known})")
            continue
        out[name] = version
    if problems:
        raise UsageError("; ".join(problems))
    return out


def _require_targets(targets: dict[str, str]) -> None:
    if not targets:
        raise UsageError("nothing to upgrade: give at least one --to COMPONENT=VERSION (e.g. --to kafka=4.1.0)")


def check_settings(settings: UpgradeSettings) -> None:
    """Refuse settings that cannot work (a NaN, infinite, zero or negative duration...) before anything opens."""
    problems = settings.problems()
    if problems:
        named = {f: f for f in UpgradeSettings.__dataclass_fields__}
        raise UsageError("; ".join(f"{f} {why.format(**named)}" for f, why in problems))


# ---------------------------------------------------------------------------------------------- targets


def sim_store(env: Environment) -> Any:
    from toolkit.targets.sim import store_for

    return store_for(env)


def _refuse_while_running(env: Environment, store: Any, what: str) -> None:
    """Refuse to change a stored simulated platform while a live orchestrator holds its lease (call under the
    store's lock)."""
    if not store.exists():
        return
    lease = store.live_lease(store.load().now)
    if lease is not None:
        raise RefusedError(
            Verdict.refuse(
                "lease.single-holder",
                f"{lease.holder} is running an upgrade on {env.name}: {what} would change the platform under it; "
                f"wait for it to finish, or stop it (`toolkit upgrade abort --env {env.name}`)",
            )
        )


def reset_sim(env: Environment, versions: dict[str, str] | None = None, injections: list[str] | None = None) -> None:
    """(Re)create the simulated platform of a sim environment, optionally on other versions."""
    from toolkit.targets.sim import build_world, params_for, parse_injections

    if env.kind != "sim":
        raise UsageError(f"environment {env.name} is of kind {env.kind}; only a sim environment can be reset")
    faults = parse_injections(list(injections or []))
    store = sim_store(env)
    with store.locked():
        _refuse_while_running(env, store, "recreating it")
        world = build_world(env.name, env.platform, params_for(env), faults, versions=dict(versions or {}))
        store.delete()
        store.save(world)


def delete_sim(env: Environment) -> bool:
    """Remove the simulated platform of a sim environment (with its lease, requests and audit trail)."""
    store = sim_store(env)
    with store.locked():
        _refuse_while_running(env, store, "removing it")
        return bool(store.delete())


@contextlib.contextmanager
def open_target(env: Environment, injections: list[str] | None = None, kubernetes: bool = False) -> Iterator[Target]:
    """Open the environment's target. A simulated platform is created on first use; faults given with `--inject`
    are applied to it now (also to one that has been running) or refused with why, never ignored; the platform is
    written back by the process that holds its lease (after each action and before releasing it), also when the
    orchestrator 'crashes' inside the block (the platform outlives the orchestrator). With `kubernetes`, a real
    target observes Kubernetes itself too (nodes, their pods and PDBs: calls a run that does not target it skips)."""
    injections = list(injections or [])
    if env.kind == "sim":
        from toolkit.targets.sim import SimTarget, build_world, params_for, parse_injections

        faults = parse_injections(injections)
        store = sim_store(env)
        with store.locked():
            if store.exists():
                world = store.load()
                if injections:
                    _refuse_while_running(env, store, f"--inject {' '.join(injections)}")
                    world.apply_faults(faults)
                    store.save(world)
            else:
                world = build_world(env.name, env.platform, params_for(env), faults)
                store.save(world)
        target = SimTarget(world, store=store)
        try:
            yield target
        finally:
            target.control.flush()
        return
    if injections:
        raise UsageError(f"--inject works only on a sim environment; {env.name} is of kind {env.kind}")
    from toolkit.targets import real  # the adapters; imported only for real environments

    with real.open_real_target(env, kubernetes=kubernetes) as real_target:
        yield real_target


# ---------------------------------------------------------------------------------------------- commands


def load_state_file(path: Path) -> PlatformState:
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"state file {path}: cannot be read ({exc.strerror}); pass an existing file") from None
    try:
        return state_schema.loads(text, source=f"state file {path}")
    except state_schema.StateFileError as exc:
        raise UsageError(str(exc)) from None


def make_plan(state: PlatformState, targets: dict[str, str], settings: UpgradeSettings) -> Plan:
    return planner.plan(state, targets, settings, catalog_mod.load())


def plan_upgrade(
    env: Environment | None,
    targets: dict[str, str],
    settings: UpgradeSettings,
    state_file: Path | None = None,
) -> Plan:
    """The plan from a saved state (`state_file`) or from the environment's live state. Changes nothing."""
    _require_targets(targets)
    check_settings(settings)
    if state_file is not None:
        return make_plan(load_state_file(state_file), targets, settings)
    if env is None:
        raise UsageError("plan needs an environment (--env) or a state file (--state)")
    with open_target(env, kubernetes="kubernetes" in targets) as target:
        return make_plan(target.observe(), targets, settings)


@dataclass
class Reporting:
    """How a run is shown beyond the CLI's own output (`toolkit.targets.run_reporting`): the status object and the
    Kubernetes Events are always written when the target offers a status port; Prometheus metrics are served on
    `metrics_port` (0: any free port, told to `on_serving`) and/or pushed to the Pushgateway at `metrics_push`.
    `problems` is filled after the run with what could not be written (the run itself is not affected)."""

    metrics_port: int | None = None
    metrics_push: str | None = None
    metrics_addr: str = "0.0.0.0"
    status_interval: float = 10.0
    wall: Callable[[], float] | None = None  # epoch seconds for the status times; None: the system clock
    on_serving: Callable[[int], None] | None = None
    problems: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Refuse options that cannot work, naming them, before anything is opened."""
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise UsageError(f"--metrics-port {self.metrics_port}: not a TCP port; give 1-65535 (0: any free port)")
        if self.metrics_push is not None:
            from urllib.parse import urlsplit

            url = self.metrics_push if "://" in self.metrics_push else f"http://{self.metrics_push}"
            parts = urlsplit(url)
            try:
                parts.port  # noqa: B018 - raises on a malformed port
            except ValueError:
                parts = parts._replace(netloc="")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UsageError(
                    f"--metrics-push {self.metrics_push!r}: not a Pushgateway address; give http(s)://HOST[:PORT] "
                    "(e.g. http://pushgateway.monitoring:9091)"
                )
        if not self.status_interval > 0 or self.status_interval == float("inf"):
            raise UsageError(f"status interval {self.status_interval}: give a finite number of seconds above 0")


@contextlib.contextmanager
def _metrics(reporting: Reporting, environment: str) -> Iterator[Any]:
    """The run's Prometheus metrics when asked for, served for the block. Opened BEFORE the target: a port that
    cannot be served is bad input and changes nothing (no fault injected, no platform created)."""
    if reporting.metrics_port is None and reporting.metrics_push is None:
        yield None
        return
    from toolkit.targets.run_metrics import RunMetrics

    metrics = RunMetrics(environment)
    server = None
    if reporting.metrics_port is not None:
        try:
            server = metrics.serve(reporting.metrics_port, reporting.metrics_addr)
        except OSError as exc:  # the port is taken or not ours to bind
            raise UsageError(
                f"--metrics-port {reporting.metrics_port}: cannot serve metrics there ({exc.strerror or exc}); "
                "pick another port"
            ) from None
        if reporting.on_serving is not None:
            reporting.on_serving(server.port)
    try:
        yield metrics
    finally:
        if server is not None:
            server.close()


@contextlib.contextmanager
def _reported(
    target: Target,
    holder: str,
    targets: dict[str, str],
    on_event: Callable[[Event], None] | None,
    reporting: Reporting,
    metrics: Any,
) -> Iterator[Any]:
    """A RunReporter around the run: the status object, Events and metrics (toolkit.targets.run_reporting)."""
    from toolkit.targets.run_reporting import RunReporter

    reporter = RunReporter(
        target,
        holder,
        targets,
        forward=on_event,
        metrics=metrics,
        push_url=reporting.metrics_push,
        interval=reporting.status_interval,
        **({"wall": reporting.wall} if reporting.wall is not None else {}),
    )
    try:
        yield reporter
    finally:
        reporting.problems[:] = reporter.problems


def run_upgrade(
    env: Environment,
    targets: dict[str, str],
    settings: UpgradeSettings,
    injections: list[str] | None = None,
    on_event: Callable[[Event], None] | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
    holder: str | None = None,
    stop_now: Callable[[], bool] = lambda: False,
    reporting: Reporting | None = None,
) -> RunResult:
    _require_targets(targets)
    check_settings(settings)
    reporting = reporting or Reporting()
    reporting.check()
    if settings.skip_gates and env.kind not in ("sim", "local"):
        raise UsageError(
            f"--unsafe-skip-gates is refused on environment {env.name} (kind {env.kind}): it exists only as a "
            "negative control on sim and local"
        )
    holder = holder or default_holder()
    with (
        _metrics(reporting, env.name) as metrics,
        open_target(env, injections, kubernetes="kubernetes" in targets) as target,
        _reported(target, holder, targets, on_event, reporting, metrics) as reporter,
    ):
        return _execute(target, targets, settings, holder, reporter, stop_requested, stop_now)


def _execute(
    target: Target,
    targets: dict[str, str],
    settings: UpgradeSettings,
    holder: str,
    reporter: Any,
    stop_requested: Callable[[], bool],
    stop_now: Callable[[], bool],
) -> RunResult:
    """One engine run on an open target, its events through `reporter`, which records the result too."""
    result = Executor(
        target,
        catalog_mod.load(),
        targets,
        settings,
        holder=holder,
        on_event=reporter,
        stop_requested=stop_requested,
        stop_now=stop_now,
    ).run()
    reporter.finish(result)
    return result


def rollback_targets(state: PlatformState, components: list[str]) -> dict[str, str]:
    """The previous version of each component (recorded on its workloads), checked against the rollback rules."""
    cat = catalog_mod.load()
    wanted = components or list(cat.upgrade_order)
    out: dict[str, str] = {}
    for component in wanted:
        workloads = state.workloads_of(component)
        previous = next((w.previous_version for w in workloads if w.previous_version), "")
        if not previous and not components:
            continue  # nothing recorded for it: not part of an implicit rollback
        verdict = planner.rollback_path(cat, state, component, previous)
        if not verdict.ok:
            raise RefusedError(verdict)
        out[component] = previous
    if not out:
        raise RefusedError(
            Verdict.refuse("rollback.nothing", "no component has a recorded previous version: nothing to roll back")
        )
    return out


def run_rollback(
    env: Environment,
    components: list[str],
    settings: UpgradeSettings,
    on_event: Callable[[Event], None] | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
    dry_run: bool = False,
    stop_now: Callable[[], bool] = lambda: False,
    reporting: Reporting | None = None,
) -> tuple[dict[str, str], RunResult | Plan]:
    check_settings(settings)
    reporting = reporting or Reporting()
    reporting.check()
    settings = replace(settings, rollback=True)
    with _metrics(reporting if not dry_run else Reporting(), env.name) as metrics, open_target(env) as target:
        state = target.observe()
        targets = rollback_targets(state, components)
        if dry_run:
            return targets, make_plan(state, targets, settings)
        holder = default_holder()
        with _reported(target, holder, targets, on_event, reporting, metrics) as reporter:
            result = _execute(target, targets, settings, holder, reporter, stop_requested, stop_now)
        return targets, result


@dataclass
class ComponentStatus:
    component: str
    spec_version: str
    previous_version: str
    running: dict[str, int]  # version -> members
    members: int
    on_spec: int


@dataclass
class Status:
    environment: str
    simulated: bool
    observed_at: float
    components: list[ComponentStatus]
    lease_holder: str | None
    lease_expires_in: float | None
    metadata_version: str
    es_health: str
    es_allocation: str | None
    audit_tail: list[dict[str, Any]]
    request: RunRequest | None = None  # a pause or abort waiting for the run
    # the last run as it showed itself (toolkit.engine.status: phase, step, gate, conditions; `stale` when its phase
    # is active but no live orchestrator holds the lease); None when the target keeps no status or none was written
    run: dict[str, Any] | None = None
    # per component in progress: its next step, and what holds it now ("" when nothing does): (step, rule, reason)
    next_steps: list[tuple[str, str, str]] = field(default_factory=list)
    kubernetes_control_plane: str = ""  # "1.34 (ACTIVE)", "" when Kubernetes itself is not observed

    @property
    def in_progress(self) -> bool:
        return any(c.on_spec < c.members for c in self.components)


def kubernetes_status(state: PlatformState) -> ComponentStatus | None:
    """Kubernetes itself: the control plane's version is the spec; the members are the nodes, on spec when their
    kubelet runs it, they are Ready and not cordoned (a cordoned node is being replaced)."""
    k = state.kubernetes
    if not k.nodes:
        return None
    running: dict[str, int] = {}
    for n in k.nodes:
        running[n.version] = running.get(n.version, 0) + 1
    on_spec = sum(1 for n in k.nodes if n.version == k.control_plane_version and n.ready and not n.unschedulable)
    return ComponentStatus("kubernetes", k.control_plane_version, "", running, len(k.nodes), on_spec)


def next_steps(state: PlatformState, components: list[ComponentStatus]) -> list[tuple[str, str, str]]:
    """For each component not all on its spec: the step that would come next towards the spec, and what holds it
    now (the plan's own verdict; "" when nothing does)."""
    targets = {c.component: c.spec_version for c in components if c.on_spec < c.members and c.spec_version}
    if not targets:
        return []
    plan = make_plan(state, targets, UpgradeSettings())
    out: list[tuple[str, str, str]] = [("plan", r.rule, r.reason) for r in plan.refusals]
    seen: set[str] = set()
    for step in plan.steps:
        if step.component in seen:
            continue
        seen.add(step.component)
        blocked = step.blocked
        out.append((step.id, blocked.rule if blocked else "", blocked.reason if blocked else step.reason))
    return out


def component_status(state: PlatformState, component: str) -> ComponentStatus | None:
    """Spec vs running per member: a member is on spec when it runs the spec's version on the current revision
    and is Ready. The same observation decides completion of an upgrade (the planner plans every other member)."""
    if component == "kubernetes":
        return kubernetes_status(state)
    workloads = state.workloads_of(component)
    if not workloads:
        return None
    running: dict[str, int] = {}
    on_spec = members = 0
    for w in workloads:
        for p in w.pods:
            members += 1
            running[p.version] = running.get(p.version, 0) + 1
            if p.version == w.target_version and p.revision == w.update_revision and p.ready:
                on_spec += 1
    return ComponentStatus(
        component=component,
        spec_version=workloads[0].target_version,
        previous_version=next((w.previous_version for w in workloads if w.previous_version), ""),
        running=running,
        members=members,
        on_spec=on_spec,
    )


def upgrade_status(env: Environment, audit_lines: int = 10) -> Status:
    with open_target(env, kubernetes=True) as target:
        state = target.observe()
        lease = target.control.read_lease()
        now = target.clock.now()
        trail = target.control.audit_trail()
        request = target.control.read_request()
        run = run_status(target)
        alive = lease is not None and target.control.holder_alive(lease.holder)
    comps = [s for c in catalog_mod.load().upgrade_order if (s := component_status(state, c)) is not None]
    live_lease = lease if lease is not None and not lease.expired(now) else None
    if run is not None:
        held = live_lease is not None and alive and live_lease.holder == run["holder"]
        run["stale"] = run["phase"] in ACTIVE_PHASES and not held
    return Status(
        environment=env.name,
        simulated=state.simulated,
        observed_at=state.observed_at,
        components=comps,
        lease_holder=live_lease.holder if live_lease else None,
        lease_expires_in=(live_lease.renewed_at + live_lease.ttl_seconds - now) if live_lease else None,
        metadata_version=state.kafka.metadata_version,
        es_health=state.elasticsearch.health.value,
        es_allocation=state.elasticsearch.allocation_enable,
        audit_tail=trail[-audit_lines:] if audit_lines else trail,
        request=request,
        run=run,
        next_steps=next_steps(state, comps),
        kubernetes_control_plane=(
            f"{state.kubernetes.control_plane_version} ({state.kubernetes.control_plane_status})"
            if state.kubernetes.control_plane_version
            else ""
        ),
    )


def run_status(target: Target) -> dict[str, Any] | None:
    """The status object the last run wrote (`toolkit.engine.status`), as a document; phase Idle when the target
    keeps status but no run wrote one; None when the target keeps none."""
    port = getattr(target, "status", None)
    if port is None:
        return None
    data = port.read_status()
    return from_data(data if data is not None else {"phase": IDLE, "message": "no run has written a status yet"})


@dataclass
class RequestOutcome:
    environment: str
    action: str  # pause | resume | abort
    changed: bool
    message: str
    request: RunRequest | None


def _live_holder(target: Target) -> str | None:
    lease = target.control.read_lease()
    if lease is None or lease.expired(target.clock.now()) or not target.control.holder_alive(lease.holder):
        return None
    return lease.holder


def request_run(env: Environment, action: str, reason: str = "", by: str | None = None) -> RequestOutcome:
    """`toolkit upgrade pause|resume|abort`: store a request with the platform (kubectl rollout pause/resume, Argo
    Rollouts abort). A pause holds the run at its next step boundary, also a run started later, until resumed; an
    abort stops the run in progress at once, leaving the platform safe (refused when no run is in progress)."""
    import datetime as dt

    if action not in ("pause", "resume", "abort"):
        raise UsageError(f"unknown request {action!r}: use pause, resume or abort")
    with open_target(env) as target:
        control = target.control
        current = control.read_request()
        holder = _live_holder(target)
        run = f"the run of {holder}" if holder else "the next run"
        if action == "resume":
            if current is None or current.action != "pause":
                return RequestOutcome(env.name, action, False, f"{env.name} is not paused: nothing to resume", current)
            control.write_request(None)
            control.audit({"what": "resume", "who": by or default_holder(), "why": reason, "result": "requested"})
            return RequestOutcome(env.name, action, True, f"resumed: {run} on {env.name} continues", None)
        if action == "abort" and holder is None:
            raise RefusedError(
                Verdict.refuse(
                    "run.abort",
                    f"no upgrade is running on {env.name} (no live lease holder): nothing to abort"
                    + (
                        f"; a {current.action} request is pending (`toolkit upgrade resume` withdraws it)"
                        if current
                        else ""
                    ),
                )
            )
        if current is not None and current.action == action:
            return RequestOutcome(env.name, action, False, f"already requested: {current.describe()}", current)
        request = RunRequest(
            action=action,
            by=by or default_holder(),
            at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            reason=reason,
        )
        control.write_request(request)
        control.audit({"what": action, "who": request.by, "why": reason, "result": "requested"})
        if action == "pause":
            message = f"pause requested: {run} on {env.name} holds at its next step boundary (`toolkit upgrade resume`)"
        else:
            message = f"abort requested: {run} on {env.name} stops within one observation interval, leaving it safe"
        return RequestOutcome(env.name, action, True, message, request)


def apply_index_templates(
    env: Environment | None, connection: EsConnection | None, layout: IndexLayout, mode: str
) -> Any:
    """`toolkit es apply-templates`: the index template, rollover policy and write alias, on the environment's
    Elasticsearch (its access discovered) or at an explicit connection (the templates Job)."""
    from toolkit.targets import es_indices
    from toolkit.targets.es_admin import EsConfigError, client_for
    from toolkit.targets.real import discovered

    forced = None if mode == "auto" else mode

    def apply(found: EsConnection) -> Any:
        try:
            es = client_for(found, request_timeout=60)
        except EsConfigError as exc:
            raise UsageError(str(exc)) from None
        try:
            return es_indices.apply_index_management(es, layout, forced)  # type: ignore[arg-type]
        except es_indices.IndexManagementError as exc:
            raise RefusedError(Verdict.refuse("elasticsearch.index-management", str(exc))) from None
        except es_indices.Unreachable as exc:
            raise UsageError(f"Elasticsearch at {found.url} does not answer: {exc}") from None
        finally:
            es.close()

    if connection is not None:
        return apply(connection)
    if env is None:
        raise UsageError("give --env, or --url for an explicit Elasticsearch")
    with discovered(env) as found:
        if found.elasticsearch is None:
            raise UsageError(found.missing.get("elasticsearch", "no Elasticsearch access"))
        return apply(found.elasticsearch)


def take_snapshot(env: Environment, repository: str, name: str | None, indices: str | None, timeout: float) -> Any:
    """`toolkit es snapshot`: a snapshot of the environment's Elasticsearch (access discovered), waited for."""
    from toolkit.targets.es_admin import EsConfigError, client_for
    from toolkit.targets.es_snapshots import SnapshotError, Unreachable
    from toolkit.targets.es_snapshots import take_snapshot as take
    from toolkit.targets.real import discovered

    with discovered(env) as found:
        if found.elasticsearch is None:
            raise UsageError(found.missing.get("elasticsearch", "no Elasticsearch access"))
        try:
            es = client_for(found.elasticsearch, request_timeout=timeout + 30)
        except EsConfigError as exc:
            raise UsageError(str(exc)) from None
        try:
            return take(es, repository, name, indices, timeout)
        except SnapshotError as exc:
            raise RefusedError(Verdict.refuse("elasticsearch.snapshot", str(exc))) from None
        except Unreachable as exc:
            raise UsageError(f"Elasticsearch at {found.elasticsearch.url} does not answer: {exc}") from None
        finally:
            es.close()


def orchestrator_job(
    env: Environment,
    targets: dict[str, str],
    metrics_port: int | None = None,
    pod_monitor: bool = False,
    metrics_push: str | None = None,
) -> list[dict[str, Any]]:
    """The manifests of the in-cluster orchestrator Job (toolkit.provision.orchestrator)."""
    from toolkit.provision.orchestrator import job_manifests

    _require_targets(targets)
    if metrics_push is not None:
        Reporting(metrics_push=metrics_push).check()
    return job_manifests(env, targets, metrics_port=metrics_port, pod_monitor=pod_monitor, metrics_push=metrics_push)


def apply_orchestrator_job(env: Environment, docs: list[dict[str, Any]]) -> list[str]:
    from toolkit.targets import manifests
    from toolkit.targets.real import kube_api

    api = kube_api(env)
    try:
        return manifests.apply(api, docs)
    finally:
        api.close()


def dump_state(env: Environment) -> PlatformState:
    with open_target(env, kubernetes=True) as target:
        return target.observe()


def audit_trail(env: Environment) -> list[dict[str, Any]]:
    with open_target(env) as target:
        return target.control.audit_trail()


# ---------------------------------------------------------------------------------------------- certificates


def _sim_pki(env: Environment) -> None:
    """Give a simulated platform the certificates deploy would make (once: its first `toolkit certs` command), the
    same Secrets `toolkit.provision.credentials.generate` makes for a cluster; refused while a run holds it."""
    from toolkit.provision import credentials
    from toolkit.targets.sim import build_world, params_for
    from toolkit.targets.sim.pki import install

    store = sim_store(env)
    with store.locked():
        world = store.load() if store.exists() else build_world(env.name, env.platform, params_for(env))
        if world.tls.secrets:
            return
        _refuse_while_running(env, store, "giving it certificates")
        install(world, platform_secrets(env, credentials.generate(env)), env.wiring)
        store.save(world)


def platform_secrets(env: Environment, generated: dict[str, dict[str, bytes]]) -> dict[str, dict[str, bytes]]:
    """`credentials.generate`'s Secrets keyed "<namespace>/<name>" (the CA's key already names its namespace)."""
    namespace = env.wiring.namespace
    return {name if "/" in name else f"{namespace}/{name}": data for name, data in generated.items()}


@contextlib.contextmanager
def _cert_store(env: Environment, target: Target | None = None) -> Iterator[Any]:
    """The environment's certificate store: the simulated platform's (of `target`), or the cluster's Secrets."""
    if env.kind == "sim":
        from toolkit.targets.sim.pki import SimCertStore

        if target is None:
            with open_target(env) as opened:
                yield SimCertStore(opened)  # type: ignore[arg-type]
        else:
            yield SimCertStore(target)  # type: ignore[arg-type]
        return
    from toolkit.provision.credentials import ca_namespace
    from toolkit.targets.kube.certs import KubeCertStore
    from toolkit.targets.real import kube_api

    api = kube_api(env)
    try:
        yield KubeCertStore(api, ca_namespace(env.wiring.namespace))
    finally:
        api.close()


def certs_status(env: Environment, warn_days: int | None = None, now: Any = None) -> Any:
    """`toolkit certs status`: every certificate of the platform's Secrets, its expiry and signer
    (toolkit.provision.certs.CertsStatus). Changes nothing (a simulated platform gets its certificates first)."""
    import datetime as dt

    from toolkit.provision import certs, credentials

    days = certs.WARN_DAYS if warn_days is None else warn_days
    if days < 0:
        raise UsageError(f"--warn-days {days} must be 0 or more days")
    when = now or dt.datetime.now(dt.UTC)
    items = credentials.plan(env)
    if env.kind == "sim":
        _sim_pki(env)
    with _cert_store(env) as store:
        secrets = certs.inspect(items, store, when, days)
        progress = certs.Progress.from_json(store.read_progress())
        notes = [f"read from {store.description}"]
    return certs.CertsStatus(
        environment=env.name,
        simulated=env.kind == "sim",
        checked_at=when.isoformat(timespec="seconds"),
        warn_days=days,
        secrets=secrets,
        rotation=progress,
        notes=tuple(notes),
    )


def rotate_certs(
    env: Environment,
    settings: UpgradeSettings,
    on_event: Callable[[Event], None] | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
    stop_now: Callable[[], bool] = lambda: False,
    holder: str | None = None,
) -> Any:
    """`toolkit certs rotate`: trust a new CA, reissue the leaves, drop the old CA, each phase followed by every pod
    restarted behind the gates (toolkit.provision.rotation); resumes where an interrupted rotation stands."""
    from toolkit.provision.rotation import Rotation

    check_settings(settings)
    if settings.skip_gates and env.kind not in ("sim", "local"):
        raise UsageError(
            f"--unsafe-skip-gates is refused on environment {env.name} (kind {env.kind}): it exists only as a "
            "negative control on sim and local"
        )

    def rotation(targets: Callable[[], contextlib.AbstractContextManager[Target]], store: Any) -> Any:
        return Rotation.of_environment(
            env,
            targets,
            store,
            settings,
            holder=holder,
            on_event=on_event,
            stop_requested=stop_requested,
            stop_now=stop_now,
        ).run()

    if env.kind == "sim":
        from toolkit.provision.rotation import fixed

        _sim_pki(env)
        with open_target(env) as target, _cert_store(env, target) as store:
            return rotation(fixed(target), store)  # one simulated platform in memory, saved as it goes
    with _cert_store(env) as store:
        return rotation(lambda: open_target(env), store)  # a target opened afresh for each stage
