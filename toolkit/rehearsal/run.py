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
   id, the `--from` versions; the namespace is created first, labelled `toolkit.io/rehearsal-run=<run id>`;
3. local only: the TLS data plane (toolkit.targets.local.dataplane): the single-node Kafka + Elasticsearch peer
   (noida-db) in its own network namespace of the cluster network, started before the deploy;
4. `toolkit.provision.deploy.deploy_platform` (the users' deploy path: Ansible + Helm, the charts unmodified) with
   $TOOLKIT_ENVIRONMENTS_DIR pointing at the run's folder for the duration of the call. Local only, while it runs:
   as soon as its first role made the platform's Secrets, the run namespace's Kafka bootstrap and Elasticsearch HTTP
   Services (names and ports from the wiring) are published behind stunnel with the platform's own certificates
   (`kafka-tls` with mutual TLS against the platform CA, `es-tls`), and the topics and the index layout that the
   charts' setup Jobs make on other kinds are created as the admin identity (`_LocalDataPlaneSetup`). The node
   agent's pod runtime runs the worker pods exactly as the chart renders them (the catalog's `toolkit-worker` image
   is mapped to this installation's bin/ by `toolkit cluster up`): their own network namespace, the kubelet's env,
   the Secrets at their mountPaths, the Services' ClusterIPs and names; deploy's own wait for the Deployments (the
   chart's readiness probes) holds, and afterwards every worker pod must run a `toolkit-worker` process;
5. start the load (local: at the publications' loopback addresses, TLS verified against the platform CA with
   hostname verification on, as the admin identity; the receivers at their pod IPs and the chart's container ports),
   warm up, run the upgrade with the engine's `Executor` on the environment's target (local: LocalTarget, whose
   multi-node Kafka/Elasticsearch is a simulated data plane following the real pods; kind: real Kafka/Elasticsearch
   at the environment's endpoints), stop the load, drain, verify, report;
6. clean-up (unless `--keep`): the probe topic, the namespaces labelled with the run id, the CA namespace deploy
   made for each, and the cluster-scoped objects the charts made for them; local: the peer and its publications
   always (with `--keep` the namespace and its workers stay, without a Kafka or Elasticsearch to reach; the peer's
   data stays under the cluster's state directory, network/peer/data). A cluster is never torn down: a kind cluster
   and a local control plane stay for the next run; a `kube` environment is refused (the rehearsal deploys into it).
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
from toolkit.engine.executor import Event, Executor, RunResult
from toolkit.errors import UsageError, require_extra
from toolkit.indices import IndexLayout
from toolkit.model import UpgradeSettings
from toolkit.rehearsal.report import RehearsalReport
from toolkit.rehearsal.verdict import judge

WARMUP_SECONDS = 60.0
LIVE_WARMUP_SECONDS = 5.0
ROLLOUT_TIMEOUT = 300.0
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
    rotate_certs: bool = False  # the change is a certificate rotation, not an upgrade (sim only: rehearsal/certs.py)


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
    env: Environment, run_env_name: str, from_versions: dict[str, str], kubeconfig: str | None
) -> Environment:
    """The per-run environment: the base environment, its own namespace, the `from` versions (an object, handed to
    deploy and the target as it is: nothing re-resolves it by name)."""
    document = env.model_dump(mode="json")
    document["name"] = run_env_name
    document["description"] = f"rehearsal {run_env_name} of {env.name}"
    document["platform"]["namespace"] = run_env_name
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
    from toolkit.rehearsal import liveload
    from toolkit.targets import clusters
    from toolkit.targets.kube import api_client_for
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
    run_env = run_environment(env, run_env_name, from_versions, kubeconfig)
    (envs_dir / f"{run_env_name}.yaml").write_text(yaml.safe_dump(run_env.model_dump(mode="json"), sort_keys=False))
    api = api_client_for(kubeconfig, env.kube_context)
    events: list[Event] = []
    cleanup = contextlib.ExitStack()
    notes: list[str] = []
    config: Any = None
    try:
        liveload.create_run_namespace(api, run_env_name, run_id, run_env_name)
        if not options.keep:
            cleanup.callback(liveload.delete_run_namespaces, api, run_id)
        setup: _LocalDataPlaneSetup | None = None
        if env.kind == "local":
            assert kubeconfig is not None
            setup = _LocalDataPlaneSetup(run_env, Path(kubeconfig).parent, api, folder, cleanup)
            setup.start()  # publishes the run's Kafka and Elasticsearch as soon as deploy made their certificates
        deployed = None
        try:
            deployed = deploy_platform(run_env)
        finally:
            if setup is not None:  # a failed deploy will not make what the setup waits for: stop it at once
                setup.finish(wait=ROLLOUT_TIMEOUT if deployed is not None and deployed.ok else 0)
        if setup is not None and setup.error is not None:
            raise UsageError(f"rehearsal {run_id}: the local data plane could not be set up: {setup.error}")
        if not deployed.ok:
            raise UsageError(
                f"rehearsal {run_id}: deploying the --from versions failed: "
                + "; ".join(f"{t.task}: {t.message}" for t in deployed.failures)
            )
        if setup is not None:
            config = setup.config
            network = setup.plane.network
            _wait(
                lambda: _local_workers_serving(api, network, run_env, env.name),
                ROLLOUT_TIMEOUT,
                "the worker Deployments to roll out with every pod running toolkit-worker",
            )
        else:
            config = _prepare_kind(env, run_env_name, api, folder)
        config.rate, config.syslog_rate = options.rate, options.syslog_rate
        config.max_seconds = options.settings.step_timeout * 10 + options.drain_timeout + 600
        load = liveload.LiveLoad(config)
        load.start()
        cleanup.callback(load.close)
        time.sleep(LIVE_WARMUP_SECONDS)
        pids_before = liveload.worker_pids(network, api, run_env_name) if setup is not None else {}
        load_started = load.started_at

        def collect(event: Event) -> None:
            events.append(event)
            if on_event is not None:
                on_event(event)

        settings = replace(options.settings, skip_gates=options.unsafe_skip_gates)
        outcome, reason = "completed", ""
        result: RunResult | None = None
        with open_real_target(run_env) as target:
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
        pids_after = liveload.worker_pids(network, api, run_env_name) if setup is not None else {}
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
    )
    restarts = [
        (round(e.at - load_started, 2), e.message.split()[1])
        for e in events
        if e.kind == "act" and e.message.startswith(("restart ", "roll "))
    ]
    return _report(
        run_id, env, False, from_versions, to_versions, options, outcome, reason, reasons, summary,
        [r.as_dict() for r in records], restarts, load.timeline, notes,
    )  # fmt: skip


class _LocalDataPlaneSetup:
    """local: the single-node peer (noida-db) behind stunnel with the platform's own certificates, published as the
    run namespace's Kafka and Elasticsearch Services (toolkit.targets.local.dataplane).

    Started before deploy (the peer), it publishes from a thread the moment deploy has made the platform's Secrets
    (its first role), which is when a real cluster's Kafka and Elasticsearch pods could start serving with them:
    - Kafka: the bootstrap Service of the wiring, its port, Secret `kafka-tls`, mutual TLS against the platform CA;
    - Elasticsearch: the HTTP Service of the wiring, its port, Secret `es-tls`.
    `wait_seconds=0`: the node agent applies a publication as soon as its Service appears (the charts make them).
    Then, as the admin identity (discovered from the run namespace's Secrets, at the publications' loopback
    addresses), it creates what the charts' setup Jobs create on other kinds (they need real brokers and nodes, so
    `local` renders them off): the Kafka chart's topics with their partition counts (replication 1: one broker) and
    the index layout of the write alias (replicas 0: one node). So the worker pods deploy starts find Kafka and
    Elasticsearch as on any cluster, and deploy's own wait for their readiness probes holds.
    The peer and every publication stop when `cleanup` closes (or with this process)."""

    def __init__(self, env: Environment, cluster_state_dir: Path, api: Any, folder: Path, cleanup: Any) -> None:
        import threading

        from toolkit.targets.local.dataplane import DataPlaneError, LocalDataPlane
        from toolkit.targets.peer import PeerUnavailable

        self.env, self.api, self.folder = env, api, folder
        self.config: Any = None
        self.error: str | None = None
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._run, name="local-data-plane-setup", daemon=True)
        try:
            self.plane = cleanup.enter_context(LocalDataPlane(cluster_state_dir, api))
            self.plane.start_peer()
        except (DataPlaneError, PeerUnavailable) as exc:
            raise UsageError(
                f"rehearsal on {env.name}: the local TLS data plane did not start: {exc}; it needs root, "
                "scripts/local-data-plane.sh and pip install 'toolkit[local]'"
            ) from None

    def start(self) -> None:
        self._thread.start()

    def finish(self, wait: float) -> None:
        """Wait up to `wait` seconds for the thread (at once when deploy failed and nothing came)."""
        self._thread.join(wait)
        if self._thread.is_alive():
            self._abandon.set()
            self._thread.join(10)
            self.error = self.error or f"not done after {wait:.0f} s"

    def _run(self) -> None:
        try:
            self.config = self._publish_and_prepare()
        except Exception as exc:  # reported by the caller, after deploy returned
            self.error = str(exc) if isinstance(exc, UsageError) else f"{type(exc).__name__}: {exc}"

    def _secrets_made(self, names: list[str]) -> bool:
        from kubernetes import client

        namespace = self.env.wiring.namespace
        present = {s.metadata.name for s in client.CoreV1Api(self.api).list_namespaced_secret(namespace).items}
        return set(names) <= present

    def _publish_and_prepare(self) -> Any:
        import base64

        from kubernetes import client

        from toolkit.rehearsal import liveload
        from toolkit.targets.discovery import discover
        from toolkit.targets.es_admin import client_for
        from toolkit.targets.es_indices import apply_index_management

        wiring = self.env.wiring
        namespace = wiring.namespace
        needed = [wiring.secrets.ca, wiring.secrets.kafka_tls, wiring.secrets.es_tls]
        needed += [wiring.admin.kafka_secret, wiring.admin.es_secret]
        while not self._secrets_made(needed):
            if self._abandon.wait(0.5):
                raise UsageError(f"deploy ended before it made the Secrets {', '.join(needed)} in {namespace}")
        ca = client.CoreV1Api(self.api).read_namespaced_secret(wiring.secrets.ca, namespace).data["ca.crt"]
        kafka = self.plane.publish(
            namespace, wiring.kafka_bootstrap.name, wiring.kafka_bootstrap.port, "kafka",
            f"{namespace}/{wiring.secrets.kafka_tls}", client_ca=base64.b64decode(ca), wait_seconds=0,
        )  # fmt: skip
        es = self.plane.publish(
            namespace, wiring.elasticsearch.name, wiring.elasticsearch.port, "elasticsearch",
            f"{namespace}/{wiring.secrets.es_tls}", wait_seconds=0,
        )  # fmt: skip
        # the addresses this process can reach (the root network namespace has no cluster names); the CA and the
        # admin identity are discovered from the release's Secrets, as for any environment
        document = self.env.model_dump(mode="json")
        document["access"] = {
            "kafka": {"bootstrap": kafka.loopback},
            "elasticsearch": {"url": f"https://{es.loopback}"},
        }
        found = discover(self.api, from_document(document), self.folder / "access", identity=wiring.admin)
        if found.kafka is None or found.elasticsearch is None:
            raise UsageError("; ".join(found.missing.values()))
        (self.folder / "access" / "connections.json").write_text(
            json.dumps({"kafka": found.kafka.model_dump(), "elasticsearch": found.elasticsearch.model_dump()}, indent=2)
        )
        liveload.create_topics(found.kafka, platform_topics(self.env))
        es_client = client_for(found.elasticsearch, request_timeout=30)
        try:
            apply_index_management(es_client, IndexLayout(alias=wiring.write_alias, replicas=0))
        finally:
            es_client.close()
        return liveload.LiveLoadConfig(
            run_tag=namespace,
            kafka=found.kafka,
            elasticsearch=found.elasticsearch,
            events_topic=wiring.events_topic,
            indexer_group=wiring.indexer_group,
            write_alias=wiring.write_alias,
            receivers=liveload.local_receivers(self.api, namespace),
        )


def platform_topics(env: Environment) -> dict[str, int]:
    """The topics the Kafka chart's setup Job creates and their partitions: the chart's defaults overlaid with what
    deploy gives it (toolkit.provision.values), so names and counts have one source each."""
    import yaml

    from toolkit.provision import helm
    from toolkit.provision.values import chart_of, deep_merge

    defaults = yaml.safe_load((helm.CHARTS_DIR / chart_of("kafka") / "values.yaml").read_text())
    topics = deep_merge(defaults["topics"], helm.environment_values(env, "kafka")["topics"])
    return {topics[key]["name"]: int(topics[key]["partitions"]) for key in ("events", "deadLetters")}


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


def _prepare_kind(env: Environment, namespace: str, api: Any, folder: Path) -> Any:
    """kind: the run platform's real Kafka and Elasticsearch at the environment's NodePorts, reached as the platform's
    admin identity (its CA and credentials read from the run namespace's Secrets), the receivers behind the syslog
    Service's NodePorts, the chart's topic, group and alias (all from the wiring)."""
    from toolkit.rehearsal import liveload
    from toolkit.targets.discovery import discover

    wiring = env.wiring
    found = discover(api, env, folder / "access", identity=wiring.admin)
    if found.kafka is None or found.elasticsearch is None:
        raise UsageError(f"rehearsal on {env.name}: " + "; ".join(found.missing.values()))
    _wait(lambda: liveload.deployments_rolled_out(api, namespace), ROLLOUT_TIMEOUT, "the worker Deployments")
    brokers = env.platform.kafka.brokers
    return liveload.LiveLoadConfig(
        run_tag=namespace,
        kafka=found.kafka,
        elasticsearch=found.elasticsearch,
        events_topic=wiring.events_topic,
        indexer_group=wiring.indexer_group,
        write_alias=wiring.write_alias,
        receivers=liveload.kind_receivers(api, namespace, wiring.syslog.name),
        probe_replication=min(3, brokers),
        probe_min_insync=2 if brokers >= 3 else 1,
    )
