"""The index template and rollover policy of the syslog indices (pure data; `toolkit.targets.es_indices`
applies them, the indexer reads the policy back from the template's `_meta`).

Layout
------
For a write alias `A` (default `syslog-events`): concrete indices `A-000001`, `A-000002`, ... match the
template `A-template` (pattern `A-*`, priority 300 so it wins over the built-in `logs-*-*` data-stream
template). `A-000001` is created with `A` as its write alias (`is_write_index: true`). Rollover creates the
next index and moves the write flag; readers search the alias, which spans every generation.

Rollover, by primary shard size (plus the documents-per-shard bound), in one of two modes chosen by
capability:
- `ilm`: the cluster has index lifecycle management: a policy `A-policy` with a hot-phase rollover action and,
  when a retention is given, a delete phase; the template names the policy and the rollover alias.
- `alias`: no ILM (the single-node peer): the template's `_meta.toolkit.rollover` carries the conditions, and
  the indexers call `_rollover` with them periodically (Elasticsearch evaluates the conditions itself, so
  concurrent callers cannot roll twice on the same state).

Mappings: explicit ECS fields only, `dynamic: false` (unknown fields stay in `_source`, unindexed: no
text+keyword doubling), `message` as `match_only_text` (no norms or positions), `event.original` stored but
not
indexed, structured data as `flattened`. Settings: `index.codec: best_compression`, `refresh_interval` 30 s
(ingest-heavy, search tolerates 30 s of delay).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

RolloverMode = Literal["ilm", "alias"]
GB = 1024**3

DEFAULT_WRITE_ALIAS = "syslog-events"
META_KEY = "toolkit"


def template_name(alias: str) -> str:
    return f"{alias}-template"


def policy_name(alias: str) -> str:
    return f"{alias}-policy"


def index_pattern(alias: str) -> str:
    return f"{alias}-*"


def first_index_name(alias: str) -> str:
    return f"{alias}-000001"


@dataclass(frozen=True)
class RolloverPolicy:
    """When the write index rolls over: the first condition met wins."""

    max_primary_shard_size_gb: int = 40
    max_primary_shard_docs: int = 180_000_000
    max_age_days: int | None = None
    delete_after_days: int | None = None  # ILM mode only: the delete phase

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.max_primary_shard_size_gb <= 50:
            problems.append(
                f"max_primary_shard_size_gb={self.max_primary_shard_size_gb} is outside 1..50 GB "
                "(shards above 50 GB recover and relocate slowly)"
            )
        if not 1 <= self.max_primary_shard_docs < 200_000_000:
            problems.append(f"max_primary_shard_docs={self.max_primary_shard_docs} must be 1..199,999,999")
        if self.max_age_days is not None and self.max_age_days < 1:
            problems.append("max_age_days must be at least 1")
        if self.delete_after_days is not None and self.delete_after_days < 1:
            problems.append("delete_after_days must be at least 1")
        if problems:
            raise ValueError("rollover policy: " + "; ".join(problems))

    def conditions(self) -> dict[str, Any]:
        conditions: dict[str, Any] = {
            "max_primary_shard_size": f"{self.max_primary_shard_size_gb}gb",
            "max_primary_shard_docs": self.max_primary_shard_docs,
        }
        if self.max_age_days is not None:
            conditions["max_age"] = f"{self.max_age_days}d"
        return conditions


@dataclass(frozen=True)
class IndexLayout:
    alias: str = DEFAULT_WRITE_ALIAS
    primary_shards: int = 1
    replicas: int = 1
    refresh_interval: str = "30s"
    policy: RolloverPolicy = field(default_factory=RolloverPolicy)


def _keyword(ignore_above: int | None = 1024) -> dict[str, Any]:
    return {"type": "keyword", "ignore_above": ignore_above} if ignore_above else {"type": "keyword"}


def mappings() -> dict[str, Any]:
    """The ECS fields the indexer writes (see `toolkit.worker.ecs`), each mapped once."""
    code_name = {"properties": {"code": {"type": "short"}, "name": _keyword(64)}}
    return {
        "dynamic": False,
        "date_detection": False,
        "properties": {
            "@timestamp": {"type": "date"},
            "message": {"type": "match_only_text"},
            "tags": _keyword(256),
            "event": {
                "properties": {
                    "original": {"type": "keyword", "index": False, "doc_values": False},
                    "created": {"type": "date"},
                    "id": _keyword(None),
                    "kind": _keyword(64),
                }
            },
            "host": {"properties": {"name": _keyword()}},
            "log": {
                "properties": {
                    "level": _keyword(64),
                    "syslog": {
                        "properties": {
                            "priority": {"type": "short"},
                            "facility": code_name,
                            "severity": code_name,
                            "version": _keyword(8),
                            "appname": _keyword(),
                            "procid": _keyword(128),
                            "msgid": _keyword(128),
                            "hostname": _keyword(),
                            "structured_data": {"type": "flattened", "ignore_above": 1024},
                        }
                    },
                }
            },
            "process": {"properties": {"name": _keyword(), "pid": {"type": "long"}}},
            "observer": {"properties": {"hostname": _keyword()}},
            "source": {"properties": {"ip": {"type": "ip"}, "port": {"type": "integer"}}},
            "network": {"properties": {"transport": _keyword(16), "protocol": _keyword(16)}},
            "tls": {"properties": {"established": {"type": "boolean"}}},
            "error": {"properties": {"message": {"type": "match_only_text"}, "type": _keyword(64)}},
        },
    }


def index_template_body(layout: IndexLayout, mode: RolloverMode) -> dict[str, Any]:
    """Arguments of `PUT _index_template/<template_name(alias)>`."""
    settings: dict[str, Any] = {
        "index.number_of_shards": layout.primary_shards,
        "index.number_of_replicas": layout.replicas,
        "index.codec": "best_compression",
        "index.refresh_interval": layout.refresh_interval,
        "index.translog.durability": "request",
        "index.mapping.total_fields.limit": 200,
    }
    if mode == "ilm":
        settings["index.lifecycle.name"] = policy_name(layout.alias)
        settings["index.lifecycle.rollover_alias"] = layout.alias
    return {
        "index_patterns": [index_pattern(layout.alias)],
        "priority": 300,
        "template": {"settings": settings, "mappings": mappings()},
        "meta": {
            META_KEY: {
                "write_alias": layout.alias,
                "rollover": {"mode": mode, "conditions": layout.policy.conditions()},
            }
        },
    }


def ilm_policy_body(policy: RolloverPolicy) -> dict[str, Any]:
    """Arguments of `PUT _ilm/policy/<policy_name(alias)>`."""
    phases: dict[str, Any] = {
        "hot": {
            "min_age": "0ms",
            "actions": {"rollover": policy.conditions(), "set_priority": {"priority": 100}},
        }
    }
    if policy.delete_after_days is not None:
        phases["delete"] = {"min_age": f"{policy.delete_after_days}d", "actions": {"delete": {}}}
    return {"policy": {"phases": phases, "_meta": {"managed_by": "toolkit"}}}


def rollover_from_meta(meta: dict[str, Any] | None) -> tuple[RolloverMode, dict[str, Any]] | None:
    """(mode, conditions) recorded by `index_template_body`, or None when the template is not ours."""
    section = (meta or {}).get(META_KEY)
    if not isinstance(section, dict):
        return None
    rollover = section.get("rollover")
    if not isinstance(rollover, dict) or rollover.get("mode") not in ("ilm", "alias"):
        return None
    conditions = rollover.get("conditions")
    return rollover["mode"], dict(conditions) if isinstance(conditions, dict) else {}
