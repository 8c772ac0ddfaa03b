"""The alerts, scrape objects and dashboards the charts ship: when they render, that they are valid objects, that
promtool accepts the rules and that each alert fires and stays quiet where it should, and that every metric a rule
or a dashboard reads is one that something really exports.

Where the metric names come from:
- the workers: their own registry (toolkit/worker/observability.py), imported here, never a list in this file;
- Kafka: the kafka chart's JMX exporter rules (rendered jmx-exporter.yaml) applied to Kafka's MBeans, as the agent
  applies them (the MBean object names below are Kafka's documented broker and controller metrics);
- Elasticsearch: the standard elasticsearch_exporter, scraped for real against the single-node peer in
  tests/wire/monitoring/test_elasticsearch_exporter.py (this file checks the rules' labels and clusterName).

promtool comes from Debian's `prometheus` package, installed by scripts/test-tools.sh (run by `make test`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from chart_render import CHARTS, deep_merge, injected_values, render_manifests
from monitoring_support import (
    POD_MONITOR_SCHEMA,
    PROMETHEUS_RULE_SCHEMA,
    SOURCE_ON,
    dashboard_exprs,
    dashboards,
    jmx_exporter_names,
    metric_names,
    of_kind,
    render,
    rule_exprs,
    worker_metrics,
)

from toolkit.provision.helm import DeployError

PROMTOOL_TESTS = Path(__file__).parent / "promtool"
# the series labels a PodMonitor scrape adds to every sample (Prometheus Operator's relabelling)
TARGET_LABELS = {"namespace", "pod", "container", "endpoint", "job", "instance", "service"}
ALL_ON = {"metrics": {"prometheusRule": {"enabled": True}, "dashboard": {"enabled": True}}}

# Kafka's broker and controller MBeans (Kafka documentation, "Monitoring"), as (object name, attribute)
KAFKA_MBEANS = [
    ("kafka.server:type=KafkaServer,name=BrokerState", "Value"),
    *(
        ("kafka.server:type=ReplicaManager,name=" + name, "Value")
        for name in (
            "UnderReplicatedPartitions", "UnderMinIsrPartitionCount", "AtMinIsrPartitionCount",
            "OfflineReplicaCount", "PartitionCount", "LeaderCount", "ReassigningPartitions",
        )
    ),
    *(
        ("kafka.server:type=ReplicaManager,name=" + name, attribute)
        for name in ("IsrShrinksPerSec", "IsrExpandsPerSec")
        for attribute in ("Count", "OneMinuteRate", "MeanRate")
    ),
    *(
        ("kafka.controller:type=KafkaController,name=" + name, "Value")
        for name in (
            "ActiveControllerCount", "OfflinePartitionsCount", "ActiveBrokerCount", "FencedBrokerCount",
            "GlobalPartitionCount", "GlobalTopicCount", "PreferredReplicaImbalanceCount",
        )
    ),
    *(
        (f"kafka.server:type=BrokerTopicMetrics,name={name}{topic}", attribute)
        for name in (
            "BytesInPerSec", "BytesOutPerSec", "MessagesInPerSec", "FailedProduceRequestsPerSec",
            "FailedFetchRequestsPerSec", "TotalProduceRequestsPerSec",
        )
        for topic in ("", ",topic=security-events")
        for attribute in ("Count", "OneMinuteRate")
    ),
    ("kafka.network:type=RequestMetrics,name=RequestsPerSec,request=Produce,version=9", "Count"),
    ("kafka.server:type=raft-metrics", "current-leader"),
]  # fmt: skip


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, (
        "promtool is missing: run `bash scripts/test-tools.sh` (make test does), it installs Debian's prometheus"
    )
    return found


# ------------------------------------------------------------------------------------------------ when they render


@pytest.mark.parametrize("chart", CHARTS)
def test_auto_renders_rules_only_where_the_operator_api_is_served_and_metrics_exist(chart: str) -> None:
    on = SOURCE_ON[chart]
    served = render(chart, on, served=True)
    assert len(of_kind(served, "PrometheusRule")) == 1
    assert of_kind(render(chart, on, served=False), "PrometheusRule") == []
    off = deep_merge(on, {"metrics": {"prometheusRule": {"enabled": False}}})
    assert of_kind(render(chart, off, served=True), "PrometheusRule") == []
    forced = deep_merge(on, {"metrics": {"prometheusRule": {"enabled": True}}})
    assert len(of_kind(render(chart, forced, served=False), "PrometheusRule")) == 1  # offline rendering, GitOps
    if chart != "ingest-workers":  # the workers always export; Kafka's and Elasticsearch's exporters are opt-in
        assert of_kind(render(chart, None, served=True), "PrometheusRule") == []
        assert dashboards(render(chart, None, served=True)) == []
    assert len(dashboards(served)) == 1


@pytest.mark.parametrize("chart", ["kafka", "ingest-workers"])
def test_pod_monitor_follows_the_same_rule(chart: str) -> None:
    assert len(of_kind(render(chart, SOURCE_ON[chart], served=True), "PodMonitor")) == 1
    assert of_kind(render(chart, SOURCE_ON[chart], served=False), "PodMonitor") == []


def test_the_default_install_of_every_chart_renders_no_operator_object() -> None:
    """A cluster without the Prometheus Operator (the local 1.20 control plane) must never be sent a CRD object."""
    for chart in CHARTS:
        docs = render(chart, None, served=False)
        assert not of_kind(docs, "PrometheusRule") and not of_kind(docs, "PodMonitor"), chart


# ------------------------------------------------------------------------------------------------------- validity


@pytest.mark.parametrize("chart", CHARTS)
def test_operator_objects_have_the_crd_shape_and_the_rest_validates_strictly(chart: str) -> None:
    docs = render(chart, deep_merge(SOURCE_ON[chart], ALL_ON), served=True)
    failures = []
    for doc in docs:
        schema = {"PrometheusRule": PROMETHEUS_RULE_SCHEMA, "PodMonitor": POD_MONITOR_SCHEMA}.get(doc["kind"])
        try:
            if schema is not None:
                jsonschema.validate(doc, schema)
            else:
                kubernetes_validate.validate(doc, "1.33", strict=True)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as err:
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {err.message}")
    assert failures == []


def test_the_shape_check_refuses_what_an_apiserver_would_prune() -> None:
    rule = render("ingest-workers", ALL_ON, served=True)
    doc = of_kind(rule, "PrometheusRule")[0]
    doc["spec"]["groups"][0]["rules"][0]["for"] = "ten minutes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, PROMETHEUS_RULE_SCHEMA)
    doc["spec"]["groups"][0]["rules"][0]["for"] = "10m"
    doc["spec"]["groups"][0]["rules"][0]["severity"] = "critical"  # a label put at the wrong level
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, PROMETHEUS_RULE_SCHEMA)


@pytest.mark.parametrize("chart", CHARTS)
def test_dashboard_is_grafana_json_the_sidecar_picks_up(chart: str) -> None:
    (config_map,) = dashboards(render(chart, deep_merge(SOURCE_ON[chart], ALL_ON), served=False))
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    ((name, text),) = config_map["data"].items()
    assert name.endswith(".json")
    board = json.loads(text)
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    assert next(v["name"] for v in board["templating"]["list"]) == "datasource"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) and all(p["targets"] for p in board["panels"])
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


def test_kafka_exporter_is_wired_into_the_broker_jvm_only() -> None:
    docs = render("kafka", SOURCE_ON["kafka"], served=True)
    (pod_monitor,) = of_kind(docs, "PodMonitor")
    config = yaml.safe_load(
        next(d for d in docs if d["metadata"]["name"].endswith("-config"))["data"]["jmx-exporter.yaml"]
    )
    assert config["rules"]
    for sts in of_kind(docs, "StatefulSet"):
        spec = sts["spec"]["template"]["spec"]
        kafka = next(c for c in spec["containers"] if c["name"] == "kafka")
        opts = next(e["value"] for e in kafka["env"] if e["name"] == "KAFKA_OPTS")
        agent, port, config_path = re.fullmatch(r"-javaagent:(\S+\.jar)=(\d+):(\S+)", opts).groups()  # type: ignore[union-attr]
        assert config_path == "/opt/toolkit/config/jmx-exporter.yaml"
        assert {"name": "metrics", "containerPort": int(port)} in kafka["ports"]
        assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
        copier = next(c for c in spec["initContainers"] if c["name"] == "jmx-exporter-agent")
        assert copier["command"][-1] == agent
        assert all(e["name"] != "KAFKA_OPTS" for c in spec["initContainers"] for e in c.get("env", []))
    scripts = next(d for d in docs if d["metadata"]["name"].endswith("-scripts"))["data"]
    for name, text in scripts.items():  # every script that runs a Kafka tool inside a broker resets KAFKA_OPTS
        if "/opt/kafka/bin/kafka-" in text and name != "prepare.sh":
            assert 'KAFKA_OPTS=""' in text, name


def test_kafka_exporter_without_an_agent_jar_is_refused_with_the_way_out() -> None:
    values = deep_merge(injected_values("kafka", "production"), {"metrics": {"jmxExporter": {"enabled": True}}})
    with pytest.raises(DeployError, match="does not ship the JMX exporter javaagent jar"):
        render_manifests("kafka", values, kube="1.33")


# -------------------------------------------------------------------------------------------------------- promtool


def _rules_files(chart: str, folder: Path, keep_annotations: bool) -> Path:
    (doc,) = of_kind(render(chart, deep_merge(SOURCE_ON[chart], ALL_ON), served=True), "PrometheusRule")
    groups = doc["spec"]["groups"]
    if not keep_annotations:  # the unit tests compare alert labels; annotation templates are checked by check rules
        groups = [
            {**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]} for g in groups
        ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return folder / "rules.yaml"


@pytest.mark.parametrize("chart", CHARTS)
def test_promtool_check_rules_accepts_the_rendered_rules(chart: str, tmp_path: Path) -> None:
    rules = _rules_files(chart, tmp_path, keep_annotations=True)
    done = subprocess.run([promtool(), "check", "rules", str(rules)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"SUCCESS: \d+ rules found", done.stdout + done.stderr)


@pytest.mark.parametrize("chart", CHARTS)
def test_promtool_unit_tests_pass_and_cover_each_alert_firing_and_quiet(chart: str, tmp_path: Path) -> None:
    _rules_files(chart, tmp_path, keep_annotations=False)
    shutil.copy(PROMTOOL_TESTS / f"{chart}.yaml", tmp_path / "tests.yaml")
    done = subprocess.run([promtool(), "test", "rules", str(tmp_path / "tests.yaml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    cases = yaml.safe_load((PROMTOOL_TESTS / f"{chart}.yaml").read_text())["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    alerts = set(rule_exprs(render(chart, deep_merge(SOURCE_ON[chart], ALL_ON), served=True)))
    firing = {c["alertname"] for c in checks if c["exp_alerts"]}
    quiet = {c["alertname"] for c in checks if not c["exp_alerts"]}
    assert alerts - firing == set(), "alerts never shown firing"
    assert alerts - quiet == set(), "alerts never shown quiet"


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """A threshold moved in the rendered rules (lag bound 10x higher) makes the unit tests fail: they test the rules."""
    values = deep_merge(ALL_ON, {"metrics": {"prometheusRule": {"consumerLagThreshold": 500000}}})
    (doc,) = of_kind(render("ingest-workers", values, served=True), "PrometheusRule")
    groups = [
        {**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
        for g in doc["spec"]["groups"]
    ]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    shutil.copy(PROMTOOL_TESTS / "ingest-workers.yaml", tmp_path / "tests.yaml")
    done = subprocess.run([promtool(), "test", "rules", str(tmp_path / "tests.yaml")], capture_output=True, text=True)
    assert done.returncode != 0 and "IngestIndexerConsumerLag" in done.stdout + done.stderr


# ------------------------------------------------------------------------------------ every metric is exported


def _used(chart: str) -> dict[str, set[str]]:
    """metric name -> where it is used (alert names, dashboard panel titles), for the rendered chart."""
    docs = render(chart, deep_merge(SOURCE_ON[chart], ALL_ON), served=True)
    used: dict[str, set[str]] = {}
    for alert, expr in rule_exprs(docs).items():
        for name in metric_names(expr):
            used.setdefault(name, set()).add(f"alert {alert}")
    (config_map,) = dashboards(docs)
    board = json.loads(next(iter(config_map["data"].values())))
    for expr in dashboard_exprs(board):
        for name in metric_names(expr):
            used.setdefault(name, set()).add(f"dashboard {board['uid']}")
    return used


def _grouping_labels(expr: str) -> set[str]:
    return {
        label.strip()
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
        for label in group.split(",")
        if label.strip()
    }


def test_every_worker_metric_a_rule_or_panel_reads_is_in_the_workers_registry() -> None:
    exported = worker_metrics()
    used = _used("ingest-workers")
    assert used, "no metric found in the workers' rules and dashboard"
    unknown = {name: sorted(where) for name, where in used.items() if name not in exported}
    assert unknown == {}, f"not exported by toolkit/worker/observability.py: {unknown}"
    # and every label the rules group by is one those series carry (or the scrape adds)
    docs = render("ingest-workers", ALL_ON, served=True)
    for alert, expr in rule_exprs(docs).items():
        labels = set().union(*(exported[name] for name in metric_names(expr))) | TARGET_LABELS
        assert _grouping_labels(expr) <= labels, alert


def test_the_worker_metric_check_sees_a_renamed_metric() -> None:
    """The check above is not vacuous: a name the registry does not hold is reported."""
    assert "toolkit_indexer_consumer_lag_events" not in worker_metrics()
    assert "toolkit_indexer_consumer_lag" in worker_metrics()
    assert metric_names("sum(toolkit_indexer_consumer_lag_events{a='b'})") == {"toolkit_indexer_consumer_lag_events"}


def test_every_kafka_metric_a_rule_or_panel_reads_is_made_by_the_charts_exporter_rules() -> None:
    docs = render("kafka", SOURCE_ON["kafka"], served=True)
    config = yaml.safe_load(
        next(d for d in docs if d["metadata"]["name"].endswith("-config"))["data"]["jmx-exporter.yaml"]
    )
    exported = jmx_exporter_names(config, KAFKA_MBEANS)
    used = _used("kafka")
    unknown = {name: sorted(where) for name, where in used.items() if name not in exported}
    assert unknown == {}, f"no rule of jmx-exporter.yaml exports: {unknown}"
    # a per-topic meter and a rate attribute never land on an aggregate name
    assert "Count: 1" in exported["kafka_server_brokertopicmetrics_bytesinpersec_total"]
    assert "topic=" not in exported["kafka_server_brokertopicmetrics_bytesinpersec_total"]
    assert not any("raft" in name or "requestmetrics" in name for name in exported)


def test_the_exported_broker_state_is_the_one_the_toolkit_gates_read() -> None:
    from toolkit.targets.kafka_admin import BROKER_STATE_METRIC

    docs = render("kafka", SOURCE_ON["kafka"], served=True)
    config = yaml.safe_load(
        next(d for d in docs if d["metadata"]["name"].endswith("-config"))["data"]["jmx-exporter.yaml"]
    )
    exported = jmx_exporter_names(config, KAFKA_MBEANS)
    brokerstate = [name for name, line in exported.items() if "name=BrokerState" in line]
    assert brokerstate and BROKER_STATE_METRIC.search(f'{brokerstate[0]}{{pod="x"}} 3.0\n')


def test_elasticsearch_rules_select_this_clusters_name() -> None:
    values = deep_merge(ALL_ON, {"clusterName": "soc-eu"})
    exprs = rule_exprs(render("elasticsearch", values, served=True))
    assert exprs and all('cluster="soc-eu"' in expr for expr in exprs.values())
    assert all(name.startswith("elasticsearch_cluster_health_") for e in exprs.values() for name in metric_names(e))


def elasticsearch_metrics_used() -> dict[str, set[str]]:
    """For the wire test that scrapes the real exporter."""
    return _used("elasticsearch")
