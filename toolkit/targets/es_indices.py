"""Apply the syslog index layout (`toolkit.indices`) to a real Elasticsearch through the 8.x client.

`apply_index_management` is idempotent and runs, in order:
1. detect the rollover mode by capability (unless forced): `GET _ilm/policy` answering means `ilm`; a 400/404
   "no handler" (the single-node peer, or a cluster without the ILM feature) means `alias`;
2. `ilm` only: `PUT _ilm/policy/<alias>-policy` (hot rollover by primary shard size/docs, optional delete);
3. `PUT _index_template/<alias>-template` (mappings, settings, and the rollover mode and conditions in
`_meta`,
   which is how the indexers learn them);
4. bootstrap: when the alias does not exist, create `<alias>-000001` with the alias as its write index. An
   existing alias is left as it is (its write index keeps going; the new template applies from the next
   rollover). A concrete index named like the alias is refused: the alias could never be created.
`rollover(es, alias, conditions)` asks for a conditional (or, without conditions, immediate) rollover.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError

from toolkit.indices import (
    IndexLayout,
    RolloverMode,
    first_index_name,
    ilm_policy_body,
    index_template_body,
    policy_name,
    template_name,
)


class IndexManagementError(RuntimeError):
    """The cluster refused the layout; the message names the object and the way out."""


class Unreachable(RuntimeError):
    """Elasticsearch did not answer (connection, TLS or authentication failure)."""


@dataclass
class ApplyResult:
    mode: RolloverMode
    template: str
    policy: str | None
    write_alias: str
    write_index: str
    created_first_index: bool
    actions: list[str] = field(default_factory=list)


def detect_rollover_mode(es: Elasticsearch) -> RolloverMode:
    try:
        es.ilm.get_lifecycle()
    except ApiError as exc:
        if exc.meta.status in (400, 404, 405, 410):
            return "alias"
        raise IndexManagementError(
            f"cannot tell whether the cluster has ILM: GET _ilm/policy answered {exc.meta.status} "
            f"({exc.message}); give the user the monitor/manage_ilm privileges or pass --mode alias"
        ) from exc
    return "ilm"


def write_index_of(es: Elasticsearch, alias: str) -> str | None:
    try:
        aliases = es.indices.get_alias(name=alias).body
    except ApiError as exc:
        if exc.meta.status == 404:
            return None
        raise
    for index, entry in aliases.items():
        flag = entry.get("aliases", {}).get(alias, {}).get("is_write_index")
        if flag or (flag is None and len(aliases) == 1):
            return str(index)
    return None


def apply_index_management(es: Elasticsearch, layout: IndexLayout, mode: RolloverMode | None = None) -> ApplyResult:
    chosen: RolloverMode = mode or detect_rollover_mode(es)
    actions: list[str] = []
    alias = layout.alias
    policy: str | None = None
    try:
        if chosen == "ilm":
            policy = policy_name(alias)
            es.ilm.put_lifecycle(name=policy, policy=ilm_policy_body(layout.policy)["policy"])
            actions.append(f"put ILM policy {policy}")
        body = index_template_body(layout, chosen)
        es.indices.put_index_template(
            name=template_name(alias),
            index_patterns=body["index_patterns"],
            priority=body["priority"],
            template=body["template"],
            meta=body["meta"],
        )
        actions.append(f"put index template {template_name(alias)} (pattern {body['index_patterns'][0]})")
        write_index = write_index_of(es, alias)
        created = False
        if write_index is None:
            if es.indices.exists(index=alias):
                raise IndexManagementError(
                    f"a concrete index named {alias!r} exists, "
                    f"so the write alias {alias!r} cannot be created: "
                    "reindex it into the alias's indices and delete it, or choose another --alias"
                )
            write_index = first_index_name(alias)
            es.indices.create(index=write_index, aliases={alias: {"is_write_index": True}})
            created = True
            actions.append(f"created {write_index} with write alias {alias}")
        else:
            actions.append(f"alias {alias} already writes to {write_index}: left as it is")
    except ApiError as exc:
        if exc.meta.status in (401, 403):
            raise Unreachable(f"HTTP {exc.meta.status}: {exc.message} (check the user and its role)") from None
        raise IndexManagementError(
            f"Elasticsearch refused the index layout for alias {alias!r}: {exc.meta.status} {exc.message}"
        ) from exc
    except TransportError as exc:
        raise Unreachable(str(exc)) from None
    return ApplyResult(chosen, template_name(alias), policy, alias, write_index, created, actions)


def rollover(es: Elasticsearch, alias: str, conditions: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = es.indices.rollover(alias=alias, conditions=conditions) if conditions else es.indices.rollover(alias=alias)
    return dict(answer.body)
