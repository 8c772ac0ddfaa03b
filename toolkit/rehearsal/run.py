"""Run a rehearsal: install the `from` versions, put load on the platform, upgrade through the engine, stop the load,
drain, verify, report.

On `sim` the platform and the load are both simulated (toolkit.rehearsal.traffic says exactly what is modelled) and
live only for the run, unless `--keep` saves them under the state directory. The upgrade itself is the real engine:
the same planner, gates and executor as `toolkit upgrade run`.

On `local` and `kind` the load is real (toolkit.rehearsal.liveload: real Kafka, Elasticsearch and syslog clients;
toolkit.rehearsal.live: what is counted and how loss is defined per path). One run, in order:
1. the cluster: `toolkit.targets.clusters.up` (a running one is reused; a local environment file with its own
   `kubeconfig:` names a control plane started elsewhere, which is used as it is);
2. a per-run environment `<run id>` (lower case) written to `<state>/rehearsals/<run id>/envs/`, namespace = the run
   id, the `--from` versions (local: the simulated data plane's event rate = the load's syslog rate); the namespace
   is created first, labelled `toolkit.io/rehearsal-run=<run id>`. `--to kubernetes=...` (local only): the run also
   gets node groups of its own, one node per zone, labelled and tainted `toolkit.io/dedicated=<run id>`, which the
   run environment names (`platform.kubernetes.dedicated`): the charts pin every pod there, and the change is the
   next node image published to those groups (toolkit.rehearsal.nodes); the engine then rolls exactly those nodes;
3. local only: the cluster's peer operator must run (toolkit.targets.local.peeroperator, started by
   `toolkit cluster up`): it gives every platform namespace its own single-node Kafka + Elasticsearch (noida-db)
   behind stunnel with the platform's own certificates, published as the namespace's Kafka bootstrap (mutual TLS
   against the platform CA) and Elasticsearch HTTP Services as soon as deploy made them, and creates the chart's
   topics and the write alias's index layout as the admin identity. The rehearsal uses it as any deploy does;
4. `toolkit.provision.deploy.deploy_platform` (the users' deploy path: Ansible + Helm, the charts unmodified) with
   $TOOLKIT_ENVIRONMENTS_DIR pointing at the run's folder for the duration of the call. The node agent's pod
   runtime runs the worker pods exactly as the chart renders them (the catalog's `toolkit-worker` image is mapped to
   this installation's bin/ by `toolkit cluster up`): their own network namespace, the kubelet's env, the Secrets
   at their mountPaths, the Services' ClusterIPs and names; deploy's own wait for the Deployments (the chart's
   readiness probes) holds, and afterwards every worker pod must run a `toolkit-worker` process. Local: the
   operator's loopback addresses of the run namespace's Kafka and Elasticsearch, with the admin identity's
   credentials discovered from the run namespace's Secrets, are the load's connections (`_local_load_config`);
5. start the load (local: at the publications' loopback addresses, TLS verified against the platform CA with
   hostname verification on, as the admin identity; the receivers at their pod IPs and the chart's container ports),
   warm up, run the upgrade with the engine's `Executor` on the environment's target (local: LocalTarget, whose
   multi-node Kafka/Elasticsearch is a simulated data plane following the real pods; kind: real Kafka/Elasticsearch
   at the environment's endpoints), stop the load, drain, verify, report;
   The engine's every observation of the data plane is kept (toolkit.rehearsal.observed): a partition under
   min.insync.replicas, an offline partition or a red Elasticsearch at any of them fails the rehearsal;
6. clean-up (unless `--keep`): the run's node groups, the probe topic, the namespaces labelled with the run id, the
   CA namespace deploy
   made for each, and the cluster-scoped objects the charts made for them (local: the operator then stops the
   run namespace's peer and deletes its data; with `--keep` the namespace, its workers and its Kafka and
   Elasticsearch stay). A cluster is never torn down: a kind cluster and a local control plane stay for the next
   run; a `kube` environment is refused (the rehearsal deploys into it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from toolkit import catalog as catalog_mod
from toolkit.config.environments import Environment, from_document
from toolkit.config.platform import DEDICATED
from toolkit.engine.executor import Event, Executor, RunResult
from toolkit.errors import UsageError, require_extra
from toolkit.model import UpgradeSettings
from toolkit.rehearsal.report import RehearsalReport
from toolkit.rehearsal.verdict import judge

WARMUP_SECONDS = 60.0
LIVE_WARMUP_SECONDS = 5.0
ROLLOUT_TIMEOUT = 300.0
DATA_PLANE_WHAT = {True: "the simulated data plane", False: "the data plane"}  # by: is it simulated
LOCAL_DATA_PLANE_NOTE = (
    "workers: the chart's pods, unmodified, run by the local node agent's pod runtime (real toolkit-worker processes "
    "in their own network namespaces) against a single-node Kafka + Elasticsearch peer (noida-db) behind TLS with "
    "the platform's certificates; the multi-node Kafka/Elasticsearch the engine gated on is a SIMULATED data plane "
    "following the real pods"
)


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
    rotate_certs: bool = False  # the change is a certificate rotation, not an upgrade (rehearsal/certs.py)
    node_image: str | None = None  # local, --to kubernetes: the node image to roll to (rehearsal/nodes.py)


def new_run_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"rh-{stamp}-{uuid.uuid4().hex[:6]}"


def rehearse(
    env: Environment,
    from_versions: dict[str, str],
    to_versions: dict[str, str],
    options: RehearsalOptions,
    on_event: Callable[[Event], None] | None = None,
) -> RehearsalReport:
    if options.rotate_certs:
        from toolkit.rehearsal import certs as rotation_change

        rotation_change.check(env, to_versions)
    elif not to_versions:
        raise UsageError(
            "nothing to rehearse: give at least one --to COMPONENT=VERSION (e.g. --to kafka=4.1.0), or --rotate-certs"
        )
    if "kubernetes" in to_versions and env.kind not in ("sim", "local"):
        raise UsageError(
            f"--to kubernetes=...: a rehearsal of a Kubernetes roll runs on sim and local; on {env.name} (kind "
            f"{env.kind}) the rehearsal would need nodes of its own, and only the local cluster's node pool can "
            "launch them. Rehearse it with `toolkit rehearse --env local --to kubernetes=1.20` (a node image roll) or "
            "`--env sim --to kubernetes=VERSION`"
        )
    if options.node_image is not None and not ("kubernetes" in to_versions and env.kind == "local"):
        raise UsageError(
            f"--node-image {options.node_image}: a node image is rolled only by a Kubernetes roll on the local "
            "cluster; give it with --env local --to kubernetes=1.20, or drop it"
        )
    if options.unsafe_skip_gates and env.kind not in ("sim", "local"):
        raise UsageError(
            f"--unsafe-skip-gates is refused on environment {env.name} (kind {env.kind}): it exists only as a "
            "negative control on sim and local"
        )
    for name, value in (("--rate", options.rate), ("--syslog-rate", options.syslog_rate)):
        if value <= 0:
            raise UsageError(f"{name} {value} must be > 0 events per second")
    if env.kind in ("local", "kind"):
        return _rehearse_real(env, from_versions, to_versions, options, on_event)
    if env.kind != "sim":
        raise UsageError(
            f"environment {env.name} is of kind {env.kind}: the toolkit rehearses on sim, local and kind only (a "
            f"rehearsal deploys into a namespace of its own); on this cluster run `toolkit deploy --env {env.name}` "
            f"and `toolkit upgrade run --env {env.name}` under your own load"
        )
    return _rehearse_sim(env, from_versions, to_versions, options, on_event)


def _report(
    run_id: str,
    env: Environment,
    simulated: bool,
    from_versions: dict[str, str],
    to_versions: dict[str, str],
    options: RehearsalOptions,
    outcome: str,
    reason: str,
    reasons: list[str],
    summary: dict[str, Any],
    steps: list[dict[str, Any]],
    restarts: list[tuple[float, str]],
    timeline: list[dict[str, Any]],
    notes: list[str],
    data_plane: dict[str, Any] | None = None,
) -> RehearsalReport:
    """One report shape for simulated and live rehearsals: it passes only when no reason was found."""
    return RehearsalReport(
        run_id=run_id,
        environment=env.name,
        simulated=simulated,
        from_versions=dict(from_versions) or {c: env.platform.version_of(c) for c in catalog_mod.load().upgrade_order},
        to_versions=dict(to_versions),
        rate=options.rate,
        syslog_rate=options.syslog_rate,
        unsafe_skip_gates=options.unsafe_skip_gates,
        outcome=outcome,
        outcome_reason=reason,
        notes=notes,
        passed=not reasons,
        reasons=reasons,
        summary=summary,
        steps=steps,
        restarts=restarts,
        timeline=timeline,
        data_plane=data_plane,
        data_plane_simulated=simulated or env.kind == "local",
    )


def _rehearse_sim(
    env: Environment,
    from_versions: dict[str, str],
    to_versions: dict[str, str],
    options: RehearsalOptions,
    on_event: Callable[[Event], None] | None,
) -> RehearsalReport:
    from toolkit.rehearsal.traffic import Traffic
    from toolkit.targets.sim import (
        InjectionError,
        OrchestratorCrash,
        SimStore,
        SimTarget,
        build_world,
        params_for,
        parse_injections,
        store_for,
    )

    run_id = new_run_id()
    try:
        faults = parse_injections(list(options.injections))
    except InjectionError as exc:
        raise UsageError(str(exc)) from None
    versions = dict(from_versions)
    world = build_world(env.name, env.platform, params_for(env), faults, versions=versions)
    traffic = Traffic(rate=options.rate, syslog_rate=options.syslog_rate)
    world.traffic = traffic
    target = SimTarget(world)
    if options.rotate_certs:  # hook: the change is a certificate rotation (toolkit.rehearsal.certs)
        from toolkit.rehearsal import certs as rotation_change

        rotation_change.install(env, world)
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
    notes: list[str] = []
    rotated: list[Any] | None = None
    try:
        result: RunResult | None = None
        if options.rotate_certs:  # hook: the rotation's engine runs instead of one upgrade run
            outcome, reason, rotated, notes = rotation_change.rotate(
                env, target, settings, f"rehearsal/{run_id}", collect
            )
        else:
            result = executor.run()
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
    if options.rotate_certs:
        reasons.extend(rotation_change.tls_reasons(world))
    records = rotated if rotated is not None else (result.steps if result else executor.records)
    steps: list[dict[str, Any]] = [r.as_dict() for r in records]
    restarts = [(e.at, e.message.split()[1]) for e in events if e.kind == "act" and e.message.startswith("restart ")]
    if options.keep:
        SimStore(store_for(env).path.with_name(f"{run_id}.json")).save(world)
    return _report(
        run_id, env, True, from_versions, to_versions, options, outcome, reason, reasons, summary, steps, restarts,
        traffic.timeline, notes,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ local and kind


def run_environment(
    env: Environment,
    run_env_name: str,
    from_versions: dict[str, str],
    kubeconfig: str | None,
    dedicated_nodes: bool = False,
    events_per_second: float | None = None,
) -> Environment:
    """The per-run environment: the base environment, its own namespace, the `from` versions, with
    `dedicated_nodes` nodes of its own (those labelled and tainted for the run: rehearsal/nodes.py), and with
    `events_per_second` the simulated data plane's modelled event rate (local: the live load's, so the indexer lag
    the engine gates on is the lag of this load, not of the model's default rate). An object, handed to deploy and
    the target as it is: nothing re-resolves it by name."""
    document = env.model_dump(mode="json")
    document["name"] = run_env_name
    document["description"] = f"rehearsal {run_env_name} of {env.name}"
    document["platform"]["namespace"] = run_env_name
    if dedicated_nodes:
        document["platform"]["kubernetes"].update(dedicated=run_env_name, node_selector="")
    if events_per_second is not None:
        document["sim"] = {**document.get("sim", {}), "events_per_second": events_per_second}
    for component, version in from_versions.items():
        document["platform"][component]["version"] = version
    if kubeconfig:
        document["kubeconfig"] = kubeconfig
    return from_document(document)


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise UsageError(f"rehearsal: timed out after {timeout:.0f} s waiting for {what}")


def _rehearse_real(
    env: Environment,
    from_versions: dict[str, str],
    to_versions: dict[str, str],
    options: RehearsalOptions,
    on_event: Callable[[Event], None] | None,
) -> RehearsalReport:
    import yaml

    from toolkit.provision.deploy import deploy_platform
    from toolkit.rehearsal import liveload, observed
    from toolkit.rehearsal import nodes as run_nodes
    from toolkit.targets import clusters
    from toolkit.targets.kube.client import api_client_for
    from toolkit.targets.real import open_real_target

    if options.injections:
        raise UsageError(
            "--inject is a sim fault injection: it is refused on local and kind (the faults there are real)"
        )
    if env.kind == "local":
        # real toolkit-worker processes against the single-node peer: both come with the local extra; checked
        # before anything starts, so a missing part costs nothing
        require_extra("local", f"a rehearsal on {env.name} (real workers and the single-node peer, noida-db)")
    run_id = new_run_id()
    run_env_name = run_id.lower()
    folder = env.state_dir() / "rehearsals" / run_id
    envs_dir = folder / "envs"
    envs_dir.mkdir(parents=True, exist_ok=True)
    if env.kind == "local" and env.kubeconfig:
        kubeconfig: str | None = env.kubeconfig  # a control plane started elsewhere (e.g. the test session's)
    else:
        clusters.up(env)  # starts it, or reuses the running one; never deleted by a rehearsal
        kubeconfig = str(env.state_dir() / "kubeconfig") if env.kind == "local" else env.kubeconfig
    rolls_nodes = "kubernetes" in to_versions
    run_env = run_environment(
        env,
        run_env_name,
        from_versions,
        kubeconfig,
        dedicated_nodes=rolls_nodes,
        events_per_second=options.syslog_rate if env.kind == "local" else None,
    )
    (envs_dir / f"{run_env_name}.yaml").write_text(yaml.safe_dump(run_env.model_dump(mode="json"), sort_keys=False))
    api = api_client_for(kubeconfig, env.kube_context)
    events: list[Event] = []
    cleanup = contextlib.ExitStack()
    notes: list[str] = []
    config: Any = None
    record = observed.Record()  # the data plane at every observation the engine makes
    try:
        node_change = (
            run_nodes.plan(api, run_env_name, run_env.platform.zones, options.node_image, env.name)
            if rolls_nodes
            else None
        )
        liveload.create_run_namespace(api, run_env_name, run_id, run_env_name)
        if not options.keep:
            cleanup.callback(liveload.delete_run_namespaces, api, run_id)
        if node_change is not None:
            if not options.keep:
                cleanup.callback(run_nodes.remove_groups, api, run_env_name)
            added = run_nodes.add_groups(api, node_change, run_env.platform.zones)
            _wait(
                lambda: run_nodes.ready(api, node_change, added),
                run_nodes.READY_TIMEOUT,
                f"nodes {', '.join(added)} registered and Ready (is the node agent running? `toolkit cluster status`)",
            )
        cluster_state: Path | None = None
        if env.kind == "local":
            assert kubeconfig is not None
            cluster_state = Path(kubeconfig).parent
            _require_peer_operator(cluster_state, env)
        deployed = deploy_platform(run_env)
        if not deployed.ok:
            raise UsageError(
                f"rehearsal {run_id}: deploying the --from versions failed: "
                + "; ".join(f"{t.task}: {t.message}" for t in deployed.failures)
            )
        local = cluster_state is not None
        if cluster_state is not None:
            from toolkit.targets.local.network import network_of

            config, access_env = _local_load_config(run_env, cluster_state, api, folder)
            network = network_of(cluster_state)
            _wait(
                lambda: _local_workers_serving(api, network, run_env, env.name),
                ROLLOUT_TIMEOUT,
                "the worker Deployments to roll out with every pod running toolkit-worker",
            )
        else:
            config, access_env = _prepare_kind(run_env, api, folder)
        config.rate, config.syslog_rate = options.rate, options.syslog_rate
        config.max_seconds = options.settings.step_timeout * 10 + options.drain_timeout + 600
        load = liveload.LiveLoad(config)
        load.start()
        cleanup.callback(load.close)
        time.sleep(LIVE_WARMUP_SECONDS)
        pids_before = liveload.worker_pids(network, api, run_env_name) if local else {}
        load_started = load.started_at

        def collect(event: Event) -> None:
            events.append(event)
            if on_event is not None:
                on_event(event)

        settings = replace(options.settings, skip_gates=options.unsafe_skip_gates)
        outcome, reason = "completed", ""
        result: RunResult | None = None
        records: list[Any] = []
        if options.rotate_certs:  # hook: the change is a certificate rotation (toolkit.rehearsal.certs)
            from toolkit.rehearsal import certs as rotation_change

            def follow(phase: str) -> None:  # the load takes the phase's trust and identity, as any client must
                load.reconnect(*_admin_access(api, access_env, folder / f"access-{phase}"))

            try:
                outcome, reason, records, rotation_notes = rotation_change.rotate_real(
                    run_env, settings, f"rehearsal/{run_id}", collect, follow
                )
                notes += rotation_notes
            except Exception as exc:  # the load must still stop, drain and be reported
                outcome, reason = "crashed", f"{type(exc).__name__}: {exc}"
        else:
            if node_change is not None:  # the change: a new node image for the run's node groups
                run_nodes.publish(api, node_change)
                notes.append(
                    f"node image {node_change.from_image} -> {node_change.to_image} on the run's own node groups "
                    f"{', '.join(node_change.groups)} (labelled and tainted {DEDICATED}={run_env_name})"
                )
            with open_real_target(run_env, kubernetes=node_change is not None, on_observe=record) as target:
                executor = Executor(
                    target, catalog_mod.load(), to_versions, settings, holder=f"rehearsal/{run_id}", on_event=collect
                )
                try:
                    result = executor.run()
                    outcome, reason = result.outcome, result.reason
                except Exception as exc:  # the load must still stop, drain and be reported
                    outcome, reason = "crashed", f"{type(exc).__name__}: {exc}"
                records = result.steps if result else executor.records
        time.sleep(LIVE_WARMUP_SECONDS)  # the rolled workers carry load before it stops
        pids_after = liveload.worker_pids(network, api, run_env_name) if local else {}
        load.stop()
        drained = load.drain(options.drain_timeout)
        store = load.verify()
        summary = load.summary(store)
        details = load.details(store)
    finally:
        cleanup.close()
        api.close()
    verdict = judge(summary, outcome, options.max_unavailable_bound)
    reasons = list(verdict.reasons)
    if not drained:
        reasons.append(f"the load did not drain within {options.drain_timeout:.0f} s after the upgrade")
    if summary["stored"] != summary["accepted"]:
        reasons.append(
            f"Elasticsearch holds {summary['stored']} events of the run, Kafka accepted {summary['accepted']}"
        )
    if details["tcp_written_not_accepted"]:
        reasons.append(
            f"{details['tcp_written_not_accepted']} TCP syslog events were written to a receiver that stopped before "
            "handing them to Kafka"
        )
    if details["thread_errors"]:
        reasons.append("load driver errors: " + "; ".join(details["thread_errors"]))
    data_plane = record.summary() if record.samples else None
    if data_plane is not None:
        reasons += observed.reasons(data_plane, DATA_PLANE_WHAT[env.kind == "local"])
    if env.kind == "local":
        notes.append(LOCAL_DATA_PLANE_NOTE)
        restarted = sorted(p for p in pids_before if p not in pids_after)
        notes.append(
            f"worker processes (pod: pid) before the upgrade {pids_before}, after {pids_after} ({restarted} gone)"
        )
        if config is not None:
            notes.append(
                f"load clients: Kafka {config.kafka.bootstrap}, Elasticsearch {config.elasticsearch.url}, both TLS "
                f"verified against the platform CA (Secret {run_env_name}/{run_env.wiring.secrets.ca}) with hostname "
                f"verification on, as identity {run_env.wiring.admin.name}"
            )
    notes.append(
        f"load {details['load_seconds']:.0f} s, drain {details['drain_seconds']:.1f} s, "
        f"{summary['acknowledged'] / max(details['load_seconds'], 1):.0f} probe msg/s acknowledged, "
        f"{summary['syslog_sent'] / max(details['load_seconds'], 1):.0f} syslog events/s sent"
        + (f"; {details['lag_sample_gaps']} lag sample(s) could not be read" if details["lag_sample_gaps"] else "")
    )
    restarts = [
        (round(e.at - load_started, 2), e.message.split()[1])
        for e in events
        if e.kind == "act" and e.message.startswith(("restart ", "roll ", "evict "))
    ]
    return _report(
        run_id, env, False, from_versions, to_versions, options, outcome, reason, reasons, summary,
        [r.as_dict() for r in records], restarts, load.timeline, notes, data_plane,
    )  # fmt: skip


def _require_peer_operator(cluster_state: Path, env: Environment) -> None:
    """local: the cluster's peer operator runs (it serves the run namespace's Kafka and Elasticsearch); UsageError
    naming how to start it otherwise, before anything is deployed."""
    from toolkit.targets.local import status

    if not status(cluster_state).peer_operator.running:
        start = (
            f"`toolkit cluster up --env {env.name}` starts it"
            if not env.kubeconfig
            else "start it as `toolkit cluster up` does: python -m toolkit.targets.local.peeroperator --kubeconfig "
            f"{cluster_state / 'kubeconfig'}"
        )
        raise UsageError(
            f"rehearsal on {env.name}: the local cluster in {cluster_state} runs no peer operator (the Kafka and "
            f"Elasticsearch of its platform namespaces); {start}"
        )


def _local_load_config(env: Environment, cluster_state: Path, api: Any, folder: Path) -> tuple[Any, Environment]:
    """local: the run namespace's Kafka and Elasticsearch as the cluster's peer operator serves them (their loopback
    addresses in this network namespace, which has no cluster names), reached as the platform's admin identity: its
    CA and credentials discovered from the run namespace's Secrets, as for any environment. Waits until the operator
    reports the namespace ready (both Services published, topics and write alias made)."""
    from toolkit.rehearsal import liveload
    from toolkit.targets.local import status
    from toolkit.targets.local.peeroperator import OperatorError, wait_namespace_ready

    wiring = env.wiring
    try:
        served = wait_namespace_ready(
            cluster_state, wiring.namespace, ROLLOUT_TIMEOUT, alive=lambda: status(cluster_state).peer_operator.running
        )
    except OperatorError as exc:
        raise UsageError(f"rehearsal on {env.name}: {exc}") from None
    assert served.kafka is not None and served.elasticsearch is not None
    document = env.model_dump(mode="json")
    document["access"] = {
        "kafka": {"bootstrap": served.kafka["loopback"]},
        "elasticsearch": {"url": f"https://{served.elasticsearch['loopback']}"},
    }
    access_env = from_document(document)
    kafka, elasticsearch = _admin_access(api, access_env, folder / "access")
    config = liveload.LiveLoadConfig(
        run_tag=wiring.namespace,
        kafka=kafka,
        elasticsearch=elasticsearch,
        events_topic=wiring.events_topic,
        indexer_group=wiring.indexer_group,
        write_alias=wiring.write_alias,
        receivers=liveload.local_receivers(api, wiring.namespace),
    )
    return config, access_env


def _admin_access(api: Any, env: Environment, folder: Path) -> tuple[Any, Any]:
    """The load's connections to the run's Kafka and Elasticsearch as the platform's admin identity, its CA and
    credentials discovered from the run namespace's Secrets as they stand now, written under `folder` (also as
    connections.json)."""
    from toolkit.targets.discovery import discover

    found = discover(api, env, folder, identity=env.wiring.admin)
    if found.kafka is None or found.elasticsearch is None:
        raise UsageError(f"rehearsal on {env.name}: " + "; ".join(found.missing.values()))
    (folder / "connections.json").write_text(
        json.dumps({"kafka": found.kafka.model_dump(), "elasticsearch": found.elasticsearch.model_dump()}, indent=2)
    )
    return found.kafka, found.elasticsearch


def _local_workers_serving(api: Any, network: Any, env: Environment, base_env: str) -> bool:
    """The worker Deployments rolled out, each pod running `toolkit-worker`; UsageError when a pod the rollout
    counts runs no process (the node agent simulates it: its image is not mapped to a directory)."""
    from toolkit.rehearsal import liveload

    namespace = env.wiring.namespace
    if not liveload.deployments_rolled_out(api, namespace):
        return False
    idle = sorted(name for name, pid in liveload.worker_processes(network, api, namespace).items() if pid is None)
    if idle:
        image = catalog_mod.load().component("workers").image
        raise UsageError(
            f"worker pods {', '.join(idle)} in {namespace} are Ready but run no {liveload.WORKER_EXECUTABLE}: the node "
            f"agent of this cluster does not run image {image} (it was started without --run-image {image}=DIR); "
            f"restart it with `toolkit cluster down --env {base_env}` then `toolkit cluster up --env {base_env}`, "
            f"which maps {image} to this installation's bin/"
        )
    return True


def _prepare_kind(env: Environment, api: Any, folder: Path) -> tuple[Any, Environment]:
    """kind: the run platform's real Kafka and Elasticsearch at the environment's NodePorts, reached as the platform's
    admin identity (its CA and credentials read from the run namespace's Secrets: `env` is the run's environment),
    the receivers behind the syslog Service's NodePorts, the chart's topic, group and alias (all from the wiring)."""
    from toolkit.rehearsal import liveload

    wiring = env.wiring
    namespace = wiring.namespace
    kafka, elasticsearch = _admin_access(api, env, folder / "access")
    _wait(lambda: liveload.deployments_rolled_out(api, namespace), ROLLOUT_TIMEOUT, "the worker Deployments")
    brokers = env.platform.kafka.brokers
    config = liveload.LiveLoadConfig(
        run_tag=namespace,
        kafka=kafka,
        elasticsearch=elasticsearch,
        events_topic=wiring.events_topic,
        indexer_group=wiring.indexer_group,
        write_alias=wiring.write_alias,
        receivers=liveload.kind_receivers(api, namespace, wiring.syslog.name),
        probe_replication=min(3, brokers),
        probe_min_insync=2 if brokers >= 3 else 1,
    )
    return config, env
