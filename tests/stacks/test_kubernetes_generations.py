"""The region stack and a Kubernetes upgrade: node group generations (region:nodeGroupVersions), so that the engine
can surge a replacement of the new version in every zone, and `toolkit region plan NAME --to kubernetes=V`, which
shows the upgrade's infrastructure changes before and after the node roll, offline under Pulumi mocks."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from tests.stacks.conftest import STACKS
from toolkit.cli.region import app
from toolkit.config.region import RegionConfigError, load_region, region_from_document
from toolkit.provision.pulumi import capture_region, kubernetes_upgrade_configs, preview_kubernetes_upgrade

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
runner = CliRunner()


def _groups(resources) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {r.name: r.inputs for r in resources if r.type == NODE_GROUP}


def test_one_generation_by_default_and_two_while_rolling() -> None:
    config = load_region("eu-west-1", STACKS)
    assert config.node_versions == ("1.33",)
    now = _groups(capture_region(config, STACKS))
    assert len(now) == 9 and {g["version"] for g in now.values()} == {"1.33"}
    assert all(name.endswith("-v1-33") for name in now)
    kafka = now["nodes-kafka-eu-west-1a-v1-33"]["scalingConfig"]
    assert (kafka["minSize"], kafka["desiredSize"], kafka["maxSize"]) == (1, 1, 2)
    during, after = kubernetes_upgrade_configs(config, "1.34")
    assert during.kubernetes_version == after.kubernetes_version == "1.34"
    assert during.node_versions == ("1.33", "1.34") and after.node_versions == ("1.34",)
    rolling = _groups(capture_region(during, STACKS))
    assert len(rolling) == 18
    old, new = rolling["nodes-kafka-eu-west-1a-v1-33"], rolling["nodes-kafka-eu-west-1a-v1-34"]
    assert old["version"] == "1.33" and new["version"] == "1.34"
    # the old generation may shrink to nothing (terminate with decrement), the new one starts empty with room
    assert old["scalingConfig"]["minSize"] == 0 and old["scalingConfig"]["desiredSize"] == 1
    assert new["scalingConfig"] == {"minSize": 0, "desiredSize": 0, "maxSize": 2}
    assert new["subnetIds"] == old["subnetIds"] and new["labels"] == {"platform.role": "kafka"}


def test_region_plan_shows_the_changes_to_start_and_to_finish_the_roll() -> None:
    config = load_region("eu-west-1", STACKS)
    preview = preview_kubernetes_upgrade(config, "1.34", STACKS)
    assert not preview.violations
    start = {(c.action, c.name): c for c in preview.to_start}
    assert start[("update", "cluster-eks")].keys == ("version",)
    assert sum(1 for c in preview.to_start if c.action == "create" and c.type == NODE_GROUP) == 9
    assert not any(c.action == "delete" for c in preview.to_start)  # nothing goes before the roll
    finish = [c for c in preview.to_finish if c.action == "delete"]
    assert len(finish) == 9 and all(c.name.endswith("-v1-33") and c.type == NODE_GROUP for c in finish)

    result = runner.invoke(app, ["--stacks-dir", str(STACKS), "plan", "eu-west-1", "--to", "kubernetes=1.34"])
    assert result.exit_code == 0, result.output
    assert 'region:nodeGroupVersions: ["1.33", "1.34"]' in result.output
    assert "+ create  aws:eks/nodeGroup:NodeGroup nodes-kafka-eu-west-1a-v1-34" in result.output
    assert "- delete  aws:eks/nodeGroup:NodeGroup nodes-kafka-eu-west-1a-v1-33" in result.output


@pytest.mark.parametrize(
    ("to", "code", "says"),
    [
        ("kubernetes=1.35", 2, "not an EKS version in the catalog"),
        ("kubernetes=1.32", 2, "no downgrade"),
        ("kafka=4.1.1", 2, "exactly one kubernetes=VERSION"),
    ],
)
def test_region_plan_refuses_what_is_not_a_kubernetes_upgrade(to: str, code: int, says: str) -> None:
    result = runner.invoke(app, ["--stacks-dir", str(STACKS), "plan", "eu-west-1", "--to", to])
    assert result.exit_code == code and says in result.output


def test_region_plan_refuses_two_minors_at_once(stacks_copy) -> None:  # type: ignore[no-untyped-def]
    path = stacks_copy / "Pulumi.eu-west-1.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["region:kubernetesVersion"] = "1.32"
    path.write_text(yaml.safe_dump(document))
    result = runner.invoke(app, ["--stacks-dir", str(stacks_copy), "plan", "eu-west-1", "--to", "kubernetes=1.34"])
    assert result.exit_code == 3 and "plan --to kubernetes=1.33 first" in result.output


@pytest.mark.parametrize(
    ("versions", "says"),
    [
        (["1.34"], "newer than the control plane (1.33)"),
        (["1.29"], "4 minors behind the control plane (1.33)"),
        (["1.31", "1.32", "1.33"], "3 generations"),
        (["1.33", "1.33"], "listed twice"),
    ],
)
def test_node_group_generations_follow_the_skew_policy(versions: list[str], says: str) -> None:
    document = yaml.safe_load((STACKS / "Pulumi.eu-west-1.yaml").read_text())
    document["config"]["region:nodeGroupVersions"] = versions
    with pytest.raises(RegionConfigError) as refused:
        region_from_document("eu-west-1", document)
    assert any(says in p and "region:nodeGroupVersions" in p for p in refused.value.problems), refused.value.problems
