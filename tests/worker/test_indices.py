"""Index template, rollover policy, plan-indices arithmetic and refusals, and the `toolkit es` commands."""

import json
import math
import re

import pytest
from typer.testing import CliRunner

from toolkit.cli.es import app
from toolkit.indices import (
    IndexLayout,
    IndexPlanInputs,
    PlanRefused,
    RolloverPolicy,
    ilm_policy_body,
    index_template_body,
    plan_indices,
    rollover_from_meta,
)
from toolkit.indices.sizing import GB

runner = CliRunner()


def _leaf_types(mapping, prefix=""):
    for name, spec in mapping["properties"].items():
        path = f"{prefix}{name}"
        if "properties" in spec:
            yield from _leaf_types(spec, path + ".")
        else:
            yield path, spec


def test_template_maps_each_ecs_field_once_without_text_keyword_doubling():
    body = index_template_body(IndexLayout(alias="syslog-events", primary_shards=3, replicas=1), "alias")
    assert body["index_patterns"] == ["syslog-events-*"] and body["priority"] > 100
    settings = body["template"]["settings"]
    assert settings["index.codec"] == "best_compression"
    assert settings["index.refresh_interval"] == "30s"
    assert settings["index.number_of_shards"] == 3 and "index.lifecycle.name" not in settings
    mappings = body["template"]["mappings"]
    assert mappings["dynamic"] is False
    leaves = dict(_leaf_types(mappings))
    assert leaves["@timestamp"]["type"] == "date" and leaves["source.ip"]["type"] == "ip"
    assert leaves["process.pid"]["type"] == "long" and leaves["log.syslog.severity.code"]["type"] == "short"
    assert leaves["event.original"] == {"type": "keyword", "index": False, "doc_values": False}
    assert not any("fields" in spec for spec in leaves.values()), "no multi-field (text+keyword) doubling"
    assert rollover_from_meta(body["meta"]) == (
        "alias",
        {"max_primary_shard_size": "40gb", "max_primary_shard_docs": 180_000_000},
    )


def test_ilm_mode_names_the_policy_and_the_policy_rolls_over_and_deletes():
    layout = IndexLayout(alias="a", policy=RolloverPolicy(30, 100_000_000, max_age_days=7, delete_after_days=90))
    settings = index_template_body(layout, "ilm")["template"]["settings"]
    assert settings["index.lifecycle.name"] == "a-policy" and settings["index.lifecycle.rollover_alias"] == "a"
    phases = ilm_policy_body(layout.policy)["policy"]["phases"]
    assert phases["hot"]["actions"]["rollover"] == {
        "max_primary_shard_size": "30gb",
        "max_primary_shard_docs": 100_000_000,
        "max_age": "7d",
    }
    assert phases["delete"] == {"min_age": "90d", "actions": {"delete": {}}}


def test_rollover_policy_refuses_shards_outside_the_rules():
    with pytest.raises(ValueError, match=r"outside 1\.\.50 GB"):
        RolloverPolicy(max_primary_shard_size_gb=80)
    with pytest.raises(ValueError, match=r"1\.\.199,999,999"):
        RolloverPolicy(max_primary_shard_docs=200_000_000)
    assert rollover_from_meta({"other": 1}) is None and rollover_from_meta(None) is None


def test_seed_platform_rate_plan():
    # 35 M events/hour (~9,700/s) of 600 bytes, 30 days, 1 replica, 12 nodes of 6 TB
    plan = plan_indices(IndexPlanInputs(9_700, 600, 30, 1, 12, 6_000))
    daily = 9_700 * 86_400 * 600
    assert plan.daily_primary_gb == pytest.approx(daily / GB)
    assert plan.primary_shards_per_index == min(12, math.ceil(daily / (40 * GB)))  # 13 -> capped at 12 nodes
    assert plan.rollover_max_primary_shard_size_gb == 40
    assert plan.indices_kept == math.ceil(daily * 30 / (12 * 40 * GB)) + 1
    assert plan.total_shards == plan.indices_kept * 12 * 2
    assert plan.shards_per_node == math.ceil(plan.total_shards / 12) <= 1_000
    expected_disk = (daily * 30 + 12 * 40 * GB) * 2 / 12 / 0.85 / GB
    assert plan.disk_needed_per_node_gb == pytest.approx(expected_disk)
    assert plan.warnings == []


def test_small_events_hit_the_document_bound_first():
    plan = plan_indices(IndexPlanInputs(20_000, 40, 7, 1, 3, 2_000))
    assert plan.rollover_max_primary_shard_size_gb == 7  # 180 M x 40 bytes = 7.2 GB
    assert plan.rollover_max_primary_shard_docs == 180_000_000
    assert any("document bound wins" in warning for warning in plan.warnings)


def test_tiny_volume_is_one_primary_and_says_why():
    plan = plan_indices(IndexPlanInputs(10, 500, 30, 1, 3, 100))
    assert plan.primary_shards_per_index == 1 and plan.indices_kept == 2
    assert any("fits under one shard target" in warning for warning in plan.warnings)


@pytest.mark.parametrize(
    ("inputs", "fragments"),
    [
        (IndexPlanInputs(1_000, 500, 30, 3, 3, 10_000), ["3 replica(s) need at least 4 nodes"]),
        (IndexPlanInputs(9_700, 600, 90, 1, 3, 2_000), ["each node needs", "use at least 54 nodes"]),
        (IndexPlanInputs(50_000, 30, 3650, 1, 3, 10_000_000), ["per node, above 1,000"]),
        (IndexPlanInputs(0, -1, 30, -1, 0, 0), ["--events-per-second", "--event-bytes", "--nodes", "--replicas"]),
    ],
)
def test_refusals_name_the_rule_and_the_way_out(inputs, fragments):
    with pytest.raises(PlanRefused) as caught:
        plan_indices(inputs)
    text = " | ".join(caught.value.reasons)
    for fragment in fragments:
        assert fragment in text


def test_plan_indices_command_table_json_and_refusal():
    args = [
        "plan-indices",
        "--events-per-second",
        "9700",
        "--event-bytes",
        "600",
        "--retention-days",
        "30",
        "--replicas",
        "1",
        "--nodes",
        "12",
        "--disk-per-node-gb",
        "6000",
    ]
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    assert re.search(r"primary shards per index\s+12\n", table.output)
    assert "apply with: toolkit es apply-templates --shards 12 --replicas 1 --rollover-size-gb 40" in table.output
    as_json = runner.invoke(app, [*args, "--output", "json"])
    assert json.loads(as_json.output)["primary_shards_per_index"] == 12
    refused = runner.invoke(app, [*args[:-1], "500"])
    assert refused.exit_code == 3
    assert "refused: these inputs do not fit" in refused.output and "use at least" in refused.output


def test_apply_templates_without_a_reachable_cluster_is_a_usage_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLKIT_ENVIRONMENTS_DIR", str(tmp_path))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    (tmp_path / "noes.yaml").write_text("kind: kube\nkube_context: x\n")
    result = runner.invoke(app, ["apply-templates", "--env", "noes"])
    assert result.exit_code == 2
    assert "environment noes: cannot configure a Kubernetes client" in result.output and "context x" in result.output


def test_cli_module_keeps_heavy_imports_out_of_import_time():
    import subprocess
    import sys

    code = (
        "import sys, toolkit.cli.es; print(sorted(m for m in ('elasticsearch', 'confluent_kafka') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
