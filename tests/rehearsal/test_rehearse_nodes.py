"""A local Kubernetes-roll rehearsal's parts that need no cluster: the run environment's dedicated nodes as the charts
render them, the node images the roll goes between, and the data plane figures taken from the engine's
observations. The roll itself under live load is tests/cluster/test_rehearse_local_nodes.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from toolkit.config.environments import resolve
from toolkit.config.platform import DEDICATED, KubernetesSpec
from toolkit.errors import UsageError
from toolkit.model import EsNode, EsState, Health, KafkaState, Partition, PlatformState, Topic
from toolkit.provision.deploy import render_platform
from toolkit.rehearsal import observed
from toolkit.rehearsal.nodes import node_images
from toolkit.rehearsal.run import run_environment

RUN = "rh-20261207t083951z-abc123"


def pod_templates(directory: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(directory.glob("*.yaml")):
        if path.name.endswith(".values.yaml"):
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] in ("StatefulSet", "Deployment", "Job", "DaemonSet"):
                out[f"{doc['kind']}/{doc['metadata']['name']}"] = doc["spec"]["template"]["spec"]
    return out


def test_the_run_environment_pins_every_rendered_pod_to_the_runs_own_nodes(tmp_path: Path) -> None:
    base = resolve("local")
    run_env = run_environment(base, RUN, {}, None, dedicated_nodes=True)
    assert run_env.platform.kubernetes.platform_nodes == f"{DEDICATED}={RUN}"  # what the roll covers
    render_platform(run_env, tmp_path / "run")
    templates = pod_templates(tmp_path / "run")
    assert {"StatefulSet", "Deployment"} <= {name.split("/")[0] for name in templates}
    toleration = {"key": DEDICATED, "operator": "Equal", "value": RUN, "effect": "NoSchedule"}
    for name, spec in templates.items():
        assert spec.get("nodeSelector") == {DEDICATED: RUN}, name
        assert toleration in spec.get("tolerations", []), name
    # without dedicated nodes nothing is pinned (the base environment is unchanged)
    render_platform(run_environment(base, RUN, {}, None), tmp_path / "plain")
    for name, spec in pod_templates(tmp_path / "plain").items():
        assert DEDICATED not in (spec.get("nodeSelector") or {}), name
        assert not any(t.get("key") == DEDICATED for t in spec.get("tolerations") or []), name


def test_dedicated_nodes_and_a_node_selector_together_are_refused() -> None:
    with pytest.raises(ValueError, match="remove node_selector"):
        KubernetesSpec(version="1.20", dedicated="team-a", node_selector="role=x")
    with pytest.raises(ValueError):
        KubernetesSpec(version="1.20", dedicated="not a label value")


def pool(running: str, published: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    groups = {f"local-{z}": {"zone": z, "image": published, "labels": {}} for z in ("zone-a", "zone-b")}
    nodes = {f"local-node-{i}": {"group": f"local-zone-{z}", "image": running} for i, z in ((1, "a"), (2, "b"))}
    groups.update(extra or {})
    return {"groups": groups, "nodes": nodes}


def test_the_roll_rehearsed_is_the_one_the_cluster_faces_or_the_one_asked_for() -> None:
    assert node_images(pool("local-1", "local-2"), None, "local") == ("local-1", "local-2")
    assert node_images(pool("local-1", "local-1"), "local-3", "local") == ("local-1", "local-3")
    other_run = {"rh-x-zone-a": {"zone": "zone-a", "image": "other", "labels": {DEDICATED: "rh-x"}}}
    assert node_images(pool("local-1", "local-2", other_run), None, "local") == ("local-1", "local-2")
    with pytest.raises(UsageError, match="the same image their groups launch: a roll would replace nothing"):
        node_images(pool("local-1", "local-1"), None, "local")
    with pytest.raises(UsageError, match="the same image --node-image names"):
        node_images(pool("local-1", "local-2"), "local-1", "local")
    with pytest.raises(UsageError, match="no node in its node pool"):
        node_images({"groups": {}, "nodes": {}}, None, "local")


def state(at: float, isr: tuple[int, ...], health: Health) -> PlatformState:
    partitions = (Partition("events", 0, (0, 1, 2), isr, isr[0] if isr else None),)
    kafka = KafkaState(topics=(Topic("events", 3, 2),), partitions=partitions)
    return PlatformState(
        environment="e",
        observed_at=at,
        simulated=True,
        kafka=kafka,
        elasticsearch=EsState(health=health, nodes=(EsNode("es-0", ("master",), "8.18.3"),)),
    )


def test_the_data_plane_figures_integrate_what_each_observation_saw_until_the_next() -> None:
    record = observed.Record()
    for at, isr, health in (
        (0.0, (0, 1, 2), Health.GREEN),
        (1.0, (0, 1), Health.GREEN),  # one replica out: still at min ISR
        (2.0, (0,), Health.GREEN),  # under min ISR from here ...
        (4.5, (), Health.GREEN),  # ... offline from here ...
        (5.0, (0, 1, 2), Health.RED),  # ... back; Elasticsearch red for 1 s
        (6.0, (0, 1, 2), Health.YELLOW),
    ):
        record(state(at, isr, health))
    figures = record.summary()
    assert figures["observations"] == 6 and figures["interval_seconds"] == 1.0
    assert (figures["max_under_min_isr"], figures["under_min_isr_seconds"]) == (1, 2.5)
    assert (figures["max_offline"], figures["offline_seconds"]) == (1, 0.5)
    assert (figures["ever_red"], figures["red_seconds"]) == (True, 1.0)
    reasons = observed.reasons(figures, "the simulated data plane")
    assert reasons[0].startswith("the simulated data plane had up to 1 partition(s) under min.insync.replicas for")
    assert reasons[2] == "the simulated data plane: Elasticsearch was red for 1 s"
    clean = observed.summarise([observed.sample(state(t, (0, 1, 2), Health.GREEN)) for t in (0.0, 1.0)])
    assert observed.reasons(clean, "x") == []
