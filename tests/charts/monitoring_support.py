"""Support for the monitoring tests: rendering a chart with the Prometheus Operator's API served, the shape of the two
Prometheus Operator objects the charts ship, the metric names a PromQL expression reads, what each exporter exports.

- `PROMETHEUS_RULE_SCHEMA` / `POD_MONITOR_SCHEMA`: the fields of monitoring.coreos.com/v1 PrometheusRule and
  PodMonitor the charts use, written from the Prometheus Operator's API reference (kubernetes-validate knows no CRD).
  Unknown fields are refused: an apiserver would prune them silently.
- `metric_names`: a small PromQL lexer (strings, label matchers, ranges and grouping clauses removed; an identifier
  not followed by "(" and not a keyword is a metric name). `promtool check rules` separately proves the syntax.
- `worker_metrics`: the names a worker process exports, read from its own registry (toolkit/worker/observability.py)
  as prometheus_client writes them (counters `_total`, histograms `_bucket`/`_sum`/`_count`).
- `jmx_exporter_names`: what the kafka chart's JMX exporter rules make of Kafka's MBeans, applying the agent's
  matching: each attribute becomes "domain<key=value, ...><>Attribute: value", matched by the first rule whose
  pattern (wrapped in ^.*(?: ... ).*$ as the agent does) matches; $n is substituted, then lower-cased.
"""

from __future__ import annotations

import re
from typing import Any

from chart_render import deep_merge, documents, injected_values, render_manifests

MONITORING_API = "monitoring.coreos.com/v1"

_DURATION = "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string", "minLength": 1},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
}
PROMETHEUS_RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": MONITORING_API},
        "kind": {"const": "PrometheusRule"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string", "pattern": _DURATION},
                            "limit": {"type": "integer"},
                            "rules": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["expr"],
                                    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                    "properties": {
                                        "alert": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
                                        "record": {"type": "string", "pattern": "^[a-zA-Z_:][a-zA-Z0-9_:]*$"},
                                        "expr": {"type": ["string", "integer"]},
                                        "for": {"type": "string", "pattern": _DURATION},
                                        "keep_firing_for": {"type": "string", "pattern": _DURATION},
                                        "labels": _STRING_MAP,
                                        "annotations": _STRING_MAP,
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    },
}
POD_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": MONITORING_API},
        "kind": {"const": "PodMonitor"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "podMetricsEndpoints"],
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": _STRING_MAP, "matchExpressions": {"type": "array"}},
                },
                "namespaceSelector": {"type": "object"},
                "podMetricsEndpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["port"],
                        "properties": {
                            "port": {"type": "string", "minLength": 1},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": {"type": "string", "pattern": _DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": _DURATION},
                            "scheme": {"enum": ["http", "https"]},
                        },
                    },
                },
            },
        },
    },
}

# values that switch each chart's metrics source on (the kafka exporter's agent jar from a user-supplied image)
SOURCE_ON: dict[str, dict[str, Any]] = {
    "kafka": {
        "metrics": {
            "jmxExporter": {
                "enabled": True,
                "agent": {"image": {"repository": "registry.example/jmx-agent", "tag": "1"}},
            }
        }
    },
    "elasticsearch": {"metrics": {"exporterDeployed": True}},
    "ingest-workers": {},
}


def render(
    chart: str, overrides: dict[str, Any] | None = None, *, served: bool, value_set: str = "production"
) -> list[dict[str, Any]]:
    """The chart's objects on Kubernetes 1.33, with or without monitoring.coreos.com/v1 served (`served`)."""
    values = deep_merge(injected_values(chart, value_set), overrides or {})
    api = (MONITORING_API,) if served else ()
    return documents(render_manifests(chart, values, kube="1.33", api_versions=api))


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def dashboards(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]


_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "inf", "nan", "atan2",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (Grafana's $variables and label_values(...) queries included)."""
    text = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana variables ($namespace, $__rate_interval)
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', text)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word in _KEYWORDS or re.fullmatch(r"[0-9.]+[smhdwy]?", word):
            continue
        names.add(word)
    # label_values(metric, label): the first argument is a metric
    names |= set(re.findall(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", expr))
    names -= set(re.findall(r"label_values\(\s*[a-zA-Z_:][a-zA-Z0-9_:]*\s*,\s*(\w+)", expr))
    return names


def rule_exprs(docs: list[dict[str, Any]]) -> dict[str, str]:
    """alert name -> expression of every PrometheusRule among `docs`."""
    return {
        rule["alert"]: rule["expr"]
        for doc in of_kind(docs, "PrometheusRule")
        for group in doc["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


def worker_metrics() -> dict[str, set[str]]:
    """Every series name a worker process exports -> its label names, from the worker's own registry
    (toolkit.worker.observability.WorkerMetrics), as prometheus_client writes them."""
    from toolkit.worker.observability import WorkerMetrics

    metrics = WorkerMetrics()
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    exported: dict[str, set[str]] = {}
    described = set()
    for collector in vars(metrics).values():
        if not hasattr(collector, "describe") or not hasattr(collector, "_labelnames"):
            continue
        for family in collector.describe():
            described.add(family.name)
            for suffix in suffixes[family.type]:
                exported[family.name + suffix] = set(collector._labelnames) | ({"le"} if suffix == "_bucket" else set())
    registered = {family.name for family in metrics.registry.collect()}
    assert described == registered, (
        f"collectors not reached through WorkerMetrics' attributes: {registered - described}"
    )
    return exported


def jmx_exporter_names(config: dict[str, Any], mbeans: list[tuple[str, str]]) -> dict[str, str]:
    """Metric name -> the "domain<...><>Attr" string it came from, for every (object name, attribute) of `mbeans`
    that the agent's includeObjectNames lets through and one of its rules names."""
    exported: dict[str, str] = {}
    for object_name, attribute in mbeans:
        domain, properties = object_name.split(":", 1)
        pairs = [p.split("=", 1) for p in properties.split(",")]
        if not any(_object_name_matches(pattern, domain, pairs) for pattern in config.get("includeObjectNames", [])):
            continue
        line = f"{domain}<{', '.join(f'{k}={v}' for k, v in pairs)}><>{attribute}: 1"
        for rule in config["rules"]:
            match = re.fullmatch(f"^.*(?:{rule['pattern']}).*$", line)
            if match is None:
                continue
            name = re.sub(r"\$(\d+)", lambda m, g=match: g.group(int(m.group(1))) or "", rule["name"])
            if config.get("lowercaseOutputName"):
                name = name.lower()
            exported[re.sub(r"[^a-zA-Z0-9:_]", "_", name)] = line
            break
    return exported


def _object_name_matches(pattern: str, domain: str, pairs: list[list[str]]) -> bool:
    """JMX ObjectName pattern `domain:k=v,...[,*]`: the domain and every given key must match; `*` allows more keys."""
    p_domain, p_props = pattern.split(":", 1)
    if p_domain != domain:
        return False
    wanted = [p for p in p_props.split(",") if p != "*"]
    have = {k: v for k, v in pairs}
    if not all(have.get(k) == v for k, v in (w.split("=", 1) for w in wanted)):
        return False
    return "*" in p_props.split(",") or len(wanted) == len(have)
