"""`toolkit rehearse --env local --to kubernetes=1.20` on the session's real control plane: a node image roll under
live load, gated and gate-less.

The rehearsal deploys the platform through the users' deploy path into a namespace of its own AND onto node groups of
its own (one per zone, labelled and tainted `toolkit.io/dedicated=<run>`, launched by the node agent from the
cluster's node image); the charts pin every pod there. Under live load (real toolkit-worker pods, the peer's Kafka
and Elasticsearch) it publishes the next node image to those groups and the engine replaces each node: surge, cordon,
evictions through the Eviction API behind the gates, terminate. The multi-node Kafka/Elasticsearch the engine gates
on is the simulated data plane following the real pods; its state at every engine observation is in the report.

Gated: nothing lost at the senders or in Kafka/Elasticsearch, and the data plane never under min.insync.replicas,
offline or red. Gate-less (`--unsafe-skip-gates`, every group at once as fast as the PDBs allow): the same
rehearsal fails, and says why. Evidence the pods moved by eviction: the apiserver's audit log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from local_cluster_helpers import FAST_DATA_PLANE, audit_events, wait_for
from rehearsal_helpers import rehearse_on_session_cluster
from test_rehearse_local import environment_document

from toolkit.config.platform import DEDICATED
from toolkit.model import UpgradeSettings

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(1800)]  # two rehearsals in one fixture

TO = {"kubernetes": "1.20"}
NEXT_IMAGE = "local-rehearsal-next"
ENV = "rh-nodes"
TOOLKIT = str(Path(sys.executable).with_name("toolkit"))
# catch-up and recovery slow enough that a drain which does not wait for them is seen doing so
DATA_PLANE = {**FAST_DATA_PLANE, "kafka_catchup_seconds": 6, "es_recovery_seconds": 6}


@dataclass
class Placement:
    """Where the run's pods were: pod -> (node, the node's dedicated label, the node's image)."""

    first: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    last: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class Observer:
    """The rehearsal's `on_event`: where the run's pods are at the engine's first and last events."""

    def __init__(self, api_client: Any, state: Path) -> None:
        self.api_client, self.state, self.placement = api_client, state, Placement()

    def namespace(self) -> str:
        (folder,) = (self.state / ENV / "rehearsals").iterdir()
        return folder.name.lower()

    def __call__(self, event: Any) -> None:
        try:
            where = self.where()
            if not self.placement.first:
                self.placement.first = where
            self.placement.last = where
        except Exception as exc:  # kept, never raised into the engine
            self.placement.problems.append(f"{event.kind}: {type(exc).__name__}: {exc}")

    def where(self) -> dict[str, tuple[str, str, str]]:
        from kubernetes import client

        core = client.CoreV1Api(self.api_client)
        nodes = {n.metadata.name: n.metadata.labels or {} for n in core.list_node().items}
        out = {}
        for pod in core.list_namespaced_pod(self.namespace()).items:
            if pod.metadata.deletion_timestamp is None and pod.spec.node_name:
                labels = nodes.get(pod.spec.node_name, {})
                image = labels.get("toolkit.io/node-image", "")
                out[pod.metadata.name] = (pod.spec.node_name, labels.get(DEDICATED, ""), image)
        return out


@dataclass
class Run:
    report: Any
    seconds: float
    placement: Placement


def _rehearse(local_env: Any, folder: Path, unsafe: bool) -> Run:
    from toolkit.rehearsal.run import RehearsalOptions

    observer = Observer(local_env.api_client, folder / "state")
    settings = UpgradeSettings(poll_interval=0.5, confirm_seconds=0.5, gate_timeout=180, step_timeout=240)
    options = RehearsalOptions(
        rate=100, syslog_rate=100, drain_timeout=120, settings=settings, unsafe_skip_gates=unsafe,
        node_image=NEXT_IMAGE,
    )  # fmt: skip
    document = {**environment_document(local_env.cluster.kubeconfig), "sim": DATA_PLANE}
    report, took = rehearse_on_session_cluster(local_env, folder, ENV, document, {}, TO, options, on_event=observer)
    print(
        f"\nlocal node-roll rehearsal ({'UNSAFE' if unsafe else 'gated'}): {took:.0f} s in all, roll "
        f"{sum(s['duration_seconds'] for s in report.steps):.0f} s; data plane {report.data_plane}; "
        f"reasons: {report.reasons}; steps: "
        + "; ".join(f"{s['id']} {s['duration_seconds']:.0f} s {s['gates_waited']}" for s in report.steps)
    )
    return Run(report, took, observer.placement)


@pytest.fixture(scope="module")
def runs(local_env: Any, peer_operator: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    problem = local_env.agent.runtime.problem
    if problem is not None:
        pytest.skip(f"the local pod runtime cannot run here: {problem}")
    gated = _rehearse(local_env, tmp_path_factory.mktemp("rehearse-nodes"), unsafe=False)
    unsafe = _rehearse(local_env, tmp_path_factory.mktemp("rehearse-nodes-unsafe"), unsafe=True)
    gated_roll = sum(s["duration_seconds"] for s in gated.report.steps)
    unsafe_roll = sum(s["duration_seconds"] for s in unsafe.report.steps)
    print(f"\ngated roll {gated_roll:.0f} s, PDB-only drain {unsafe_roll:.0f} s: {gated_roll / unsafe_roll:.2f}x")
    yield {"gated": gated, "unsafe": unsafe}


def test_the_gated_node_roll_under_live_load_loses_nothing_and_the_data_plane_never_suffers(
    runs: dict[str, Run], local_env: Any
) -> None:
    report = runs["gated"].report
    doc = report.as_dict()
    assert report.outcome == "completed", report.outcome_reason
    assert report.passed, report.reasons
    assert [(s["kind"], s["outcome"]) for s in report.steps] == [("replace-node", "done")] * 3
    # the live load: real workers, moved node by node, lost nothing they accepted
    assert doc["acknowledged"] > 0 and doc["consumed"] == doc["acknowledged"] and doc["lost"] == 0
    assert doc["syslog"]["accepted"] > 0 and doc["syslog"]["stored"] == doc["syslog"]["accepted"]
    assert doc["duplicated"] == 0 and doc["out_of_order"] == 0
    # the (simulated) data plane at every observation the engine made: never under min ISR, offline or red
    observed = doc["data_plane_observed"]
    assert observed["simulated"] and observed["observations"] >= 50
    assert (observed["max_under_min_isr"], observed["max_offline"], observed["ever_red"]) == (0, 0, False)
    # every pod of the run started on the run's own nodes at the old image and ended on its replacements
    placement = runs["gated"].placement
    assert not placement.problems, placement.problems
    run = report.run_id.lower()
    assert len(placement.first) >= 12, placement.first  # 3 controllers, 3 brokers, 3 ES nodes, 3 workers
    (before,) = {(dedicated, image) for _node, dedicated, image in placement.first.values()}
    assert before[0] == run and before[1] != NEXT_IMAGE
    assert {(dedicated, image) for _node, dedicated, image in placement.last.values()} == {(run, NEXT_IMAGE)}
    assert not {n for n, _d, _i in placement.first.values()} & {n for n, _d, _i in placement.last.values()}
    # they left by eviction, never by a delete of the orchestrator (the apiserver's audit log)
    events = audit_events(local_env, {run})
    mine = [e for e in events if e.get("userAgent", "").startswith("toolkit-orchestrator")]
    evicted = {
        e["objectRef"]["name"]
        for e in mine
        if e["objectRef"].get("subresource") == "eviction" and e["responseStatus"]["code"] == 201
    }
    assert set(placement.first) <= evicted, set(placement.first) - evicted
    assert not [e for e in mine if e["verb"] in ("delete", "deletecollection")]


def test_the_same_rehearsal_draining_as_fast_as_the_pdbs_allow_fails_and_says_why(runs: dict[str, Run]) -> None:
    report = runs["unsafe"].report
    assert report.outcome == "completed", report.outcome_reason  # the drain itself went through
    assert not report.passed
    observed = report.as_dict()["data_plane_observed"]
    assert observed["max_under_min_isr"] or observed["max_offline"] or observed["ever_red"], observed
    assert any(r.startswith("the simulated data plane") for r in report.reasons), report.reasons


def test_the_runs_node_groups_leave_with_it(runs: dict[str, Run], local_env: Any) -> None:
    from kubernetes import client

    from toolkit.targets.local.nodepool import NodePool

    runs_ = {r.report.run_id.lower() for r in runs.values()}
    document = NodePool(local_env.api_client).read() or {"groups": {}}
    left = [g for g, spec in document["groups"].items() if (spec.get("labels") or {}).get(DEDICATED) in runs_]
    assert not left, left
    core = client.CoreV1Api(local_env.api_client)
    wait_for(
        lambda: not [n for n in core.list_node().items if (n.metadata.labels or {}).get(DEDICATED) in runs_],
        60,
        "the runs' nodes unregistered",
    )


def test_sigterm_mid_rehearsal_removes_the_runs_node_groups_and_namespace(
    local_env: Any, peer_operator: int, tmp_path: Path
) -> None:
    """A real `toolkit rehearse` process, SIGTERMed (a cancelled CI job) once its node groups are up and its deploy
    has begun: it cleans up as Ctrl-C does and exits 4; nothing of the run is left on the cluster."""
    from kubernetes import client

    from toolkit.targets.local.nodepool import NodePool

    envs = tmp_path / "envs"
    envs.mkdir()
    document = {**environment_document(local_env.cluster.kubeconfig), "sim": DATA_PLANE}
    (envs / f"{ENV}.yaml").write_text(yaml.safe_dump(document))
    env = {**os.environ, "TOOLKIT_ENVIRONMENTS_DIR": str(envs), "TOOLKIT_STATE_DIR": str(tmp_path / "state")}
    args = [TOOLKIT, "rehearse", "--env", ENV, "--to", "kubernetes=1.20", "--node-image", NEXT_IMAGE]
    args += ["--rate", "50", "--syslog-rate", "50", "--report", str(tmp_path / "report")]
    core, pool = client.CoreV1Api(local_env.api_client), NodePool(local_env.api_client)

    def run_nodes() -> list[Any]:
        return [n for n in core.list_node().items if (n.metadata.labels or {}).get(DEDICATED, "").startswith("rh-")]

    def run_groups() -> list[str]:
        groups = (pool.read() or {"groups": {}})["groups"]
        return [g for g, spec in groups.items() if (spec.get("labels") or {}).get(DEDICATED, "").startswith("rh-")]

    assert not run_groups(), "a run's node groups were left before this test"
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        nodes = wait_for(
            lambda: len(run_nodes()) == 3 and all(_node_ready(n) for n in run_nodes()) and run_nodes(),
            120,
            "the run's 3 nodes Ready",
        )
        run = nodes[0].metadata.labels[DEDICATED]
        time.sleep(3)  # into the deploy
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 4, out[-2000:] + err[-3000:]
    assert "rehearsal interrupted: what it created (namespaces, node groups, the probe topic) was removed" in err
    assert not run_groups()
    namespace = core.list_namespace(field_selector=f"metadata.name={run}").items
    assert all(ns.status.phase == "Terminating" for ns in namespace), namespace
    wait_for(lambda: not run_nodes(), 60, "the run's nodes unregistered")


def _node_ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
