"""Elasticsearch adapter (elasticsearch-py 8.x): observe the cluster into `EsState`, prepare and finish node restarts.

Observation (one round of REST calls per observe)
- health: GET _cluster/health -> status (no answer: Health.UNKNOWN, every expected node not joined).
- nodes: GET _nodes (name, id, roles, version); tier = the hottest data tier role the node has (data_hot, data_warm,
  data_cold, data_frozen; "" for master-only nodes and generic `data` nodes, which hold every tier); the elected
  master: GET _cat/master. Pods the caller expects (`expected_nodes`) that the cluster does not list are reported
  as nodes with `joined=False`.
- shards: GET _cat/shards?format=json (index, shard, prirep, state, node; a relocating shard's node is its source).
- allocation: GET _cluster/settings?flat_settings=true, `cluster.routing.allocation.enable`, transient over
  persistent; absent means the default (None).
- shutdown records and the capability probe: GET _nodes/shutdown. A server with the API answers
  `{"nodes": [ ... ]}` (a list). A server without it answers 404/400 "no handler", or routes the path to the
  nodes-info API (a `nodes` OBJECT, node id filter "shutdown", as the single-node test peer does): both mean
  `supports_shutdown_api=False`, and the engine then uses allocation=primaries + _flush.
- snapshot repositories: GET _snapshot (names).

Actions (node names are pod names; the shutdown API takes node ids, looked up by name)
- prepare_restart(node, "shutdown-api"): PUT _nodes/<id>/shutdown {type: restart, reason, allocation_delay};
  prepare_restart(node, "allocation"): PUT _cluster/settings persistent allocation.enable=primaries, then POST _flush.
- shutdown_complete(node): GET _nodes/<id>/shutdown status == COMPLETE.
- finish_restart: DELETE the shutdown record, or reset allocation (persistent and transient set to null).
- reset_allocation, remove_shutdown: the repairs an interrupted run leaves for the planner.
Transport errors and 429/5xx are retried with backoff (the client's own retries, then ours); what remains becomes
`ActionError` naming the call.

Connection: an `EsConnection` (URL, CA file, and basic auth or an API key read from files; see
`toolkit.targets.discovery` for where they come from). `client_for` is the one place an Elasticsearch client is
built.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from elasticsearch import ApiError, Elasticsearch, TransportError

from toolkit.config.access import EsConnection
from toolkit.engine.ports import ActionError
from toolkit.model import EsNode, EsState, Health, Shard, ShardState, ShutdownRecord

T = TypeVar("T")
TIER_PRECEDENCE = ("data_hot", "data_warm", "data_cold", "data_frozen")
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
SHUTDOWN_REASON = "toolkit rolling upgrade"


class EsConfigError(ValueError):
    """The environment's Elasticsearch endpoint settings are incomplete (message names the setting)."""


def client_for(connection: EsConnection, request_timeout: float = 10.0) -> Elasticsearch:
    """The Elasticsearch client for `connection`: certificates verified against its CA, basic auth or an API key
    read from their files (never from the environment)."""
    kwargs: dict[str, Any] = {"request_timeout": request_timeout, "max_retries": 2, "retry_on_timeout": True}
    if connection.ca_file:
        if not os.path.isfile(connection.ca_file):
            raise EsConfigError(f"elasticsearch CA file {connection.ca_file} does not exist")
        kwargs["ca_certs"] = connection.ca_file
    if connection.api_key_file:
        kwargs["api_key"] = _secret_file(connection.api_key_file, "elasticsearch API key file")
    elif connection.username:
        if not connection.password_file:
            raise EsConfigError(f"elasticsearch user {connection.username} has no password file")
        kwargs["basic_auth"] = (
            connection.username,
            _secret_file(connection.password_file, "elasticsearch password file"),
        )
    return Elasticsearch(connection.url, **kwargs)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        return f"HTTP {exc.meta.status}: {exc.message}"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _secret_file(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().removesuffix("\n")
    except OSError as exc:
        raise EsConfigError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None


def tier_of(roles: list[str] | tuple[str, ...]) -> str:
    """The node's data tier: "" for a generic `data` node (it holds every tier) or a node without data roles;
    otherwise the hottest tier role it has (a node in several tiers restarts with the hottest, i.e. later)."""
    if "data" in roles:
        return ""
    for role in TIER_PRECEDENCE:
        if role in roles:
            return role.removeprefix("data_")
    return ""


def _status(exc: BaseException) -> int | None:
    if isinstance(exc, ApiError):
        return int(exc.meta.status)
    return None


class EsAdmin:
    """One Elasticsearch cluster (see the module docstring)."""

    def __init__(self, es: Elasticsearch, retry_seconds: float = 30.0) -> None:
        self.es = es
        self.retry_seconds = retry_seconds
        self._ids: dict[str, str] = {}  # node name -> node id, from the last observation
        self._answered = False  # has the cluster answered this adapter at least once?

    @classmethod
    def connect(cls, connection: EsConnection) -> EsAdmin:
        return cls(client_for(connection))

    def close(self) -> None:
        self.es.close()

    # ------------------------------------------------------------------ plumbing

    def _call(self, what: str, call: Callable[[], T]) -> T:
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.2
        while True:
            try:
                return call()
            except ApiError as exc:
                if exc.meta.status not in RETRYABLE_STATUS or time.monotonic() + delay > deadline:
                    raise ActionError(f"elasticsearch: {what} failed: HTTP {exc.meta.status} {exc.message}") from None
            except TransportError as exc:
                if time.monotonic() + delay > deadline:
                    raise ActionError(f"elasticsearch: {what} failed: {exc}") from None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    # ------------------------------------------------------------------ observation

    def observe(self, expected_nodes: tuple[str, ...] = ()) -> EsState:
        try:
            health = self.es.cluster.health()
            info = self.es.nodes.info()
            master = self.es.cat.master(format="json")
            shards = self.es.cat.shards(format="json", h="index,shard,prirep,state,node")
            settings = self.es.cluster.get_settings(flat_settings=True)
        except (ApiError, TransportError) as exc:
            unobserved = ""
            if not self._answered:
                where = getattr(self.es.transport.node_pool.get(), "base_url", "elasticsearch")
                unobserved = (
                    f"elasticsearch at {where} does not answer this orchestrator ({_reason(exc)}): check that the "
                    "address is reachable from here (in the cluster, run the orchestrator Job: `toolkit upgrade job`), "
                    "and that the CA and the orchestrator's credentials are the platform's"
                )
            return EsState(
                health=Health.UNKNOWN,
                nodes=tuple(EsNode(name, (), "", "", joined=False) for name in expected_nodes),
                unobserved=unobserved,
            )
        self._answered = True
        nodes: list[EsNode] = []
        self._ids = {}
        for node_id, node in (info.body.get("nodes") or {}).items():
            roles = tuple(node.get("roles") or ())
            self._ids[node["name"]] = node_id
            nodes.append(EsNode(node["name"], roles, str(node.get("version", "")), tier_of(roles), joined=True))
        listed = {n.name for n in nodes}
        nodes.extend(EsNode(name, (), "", "", joined=False) for name in expected_nodes if name not in listed)
        rows: list[Any] = master.body if isinstance(master.body, list) else []
        elected = next((str(m["node"]) for m in rows if isinstance(m, dict) and m.get("node")), None)
        shutdowns, supported = self._shutdowns()
        return EsState(
            health=_health(str(health.body.get("status", ""))),
            nodes=tuple(sorted(nodes, key=lambda n: n.name)),
            shards=tuple(parse_cat_shards(shards.body)),
            elected_master=elected,
            allocation_enable=allocation_enable(settings.body),
            shutdowns=shutdowns,
            snapshot_repositories=self._repositories(),
            supports_shutdown_api=supported,
        )

    def _shutdowns(self) -> tuple[tuple[ShutdownRecord, ...], bool]:
        try:
            resp = self.es.shutdown.get_node()
        except ApiError as exc:
            if exc.meta.status in (400, 404, 405):
                return (), False
            raise
        return parse_shutdowns(resp.body, {v: k for k, v in self._ids.items()})

    def _repositories(self) -> tuple[str, ...]:
        try:
            repos = self.es.snapshot.get_repository()
        except ApiError:
            return ()
        return tuple(sorted(repos.body))

    # ------------------------------------------------------------------ actions

    def node_id(self, node: str) -> str:
        if node not in self._ids:
            info = self._call("list nodes", lambda: self.es.nodes.info(metric="_none"))
            self._ids = {n.get("name", nid): nid for nid, n in (info.body.get("nodes") or {}).items()}
        if node not in self._ids:
            raise ActionError(
                f"elasticsearch node {node} is not in the cluster (known: {', '.join(sorted(self._ids))})"
            )
        return self._ids[node]

    def prepare_restart(self, node: str, method: str) -> None:
        if method == "shutdown-api":
            node_id = self.node_id(node)
            self._call(
                f"PUT _nodes/{node_id}/shutdown (restart {node})",
                lambda: self.es.shutdown.put_node(
                    node_id=node_id, type="restart", reason=SHUTDOWN_REASON, allocation_delay="10m"
                ),
            )
            return
        self._call(
            "set cluster.routing.allocation.enable=primaries",
            lambda: self.es.cluster.put_settings(persistent={"cluster.routing.allocation.enable": "primaries"}),
        )
        self._call("POST _flush", lambda: self.es.indices.flush())

    def shutdown_complete(self, node: str) -> bool:
        node_id = self.node_id(node)
        resp = self._call(f"GET _nodes/{node_id}/shutdown", lambda: self.es.shutdown.get_node(node_id=node_id))
        records, _ = parse_shutdowns(resp.body, {node_id: node})
        return any(r.node == node and r.status == "COMPLETE" for r in records)

    def finish_restart(self, node: str, method: str) -> None:
        if method == "shutdown-api":
            self.remove_shutdown(node)
        else:
            self.reset_allocation()

    def reset_allocation(self) -> None:
        self._call(
            "reset cluster.routing.allocation.enable",
            lambda: self.es.cluster.put_settings(
                persistent={"cluster.routing.allocation.enable": None},
                transient={"cluster.routing.allocation.enable": None},
            ),
        )

    def remove_shutdown(self, node: str) -> None:
        node_id = self.node_id(node)
        try:
            self.es.shutdown.delete_node(node_id=node_id)
        except ApiError as exc:
            if exc.meta.status == 404:
                return  # no record: nothing to remove
            self._call(f"DELETE _nodes/{node_id}/shutdown", lambda: self.es.shutdown.delete_node(node_id=node_id))
        except TransportError:
            self._call(f"DELETE _nodes/{node_id}/shutdown", lambda: self.es.shutdown.delete_node(node_id=node_id))

    def flush(self) -> None:
        self._call("POST _flush", lambda: self.es.indices.flush())


# ---------------------------------------------------------------------------------------------- parsing


def _health(status: str) -> Health:
    try:
        return Health(status.lower())
    except ValueError:
        return Health.UNKNOWN


def parse_cat_shards(rows: Any) -> list[Shard]:
    out = []
    for row in rows or []:
        node = row.get("node")
        if node:
            node = str(node).split(" ->", 1)[0].strip() or None  # RELOCATING: "source -> ip id target"
        try:
            state = ShardState(str(row.get("state", "")).upper())
        except ValueError:
            state = ShardState.UNASSIGNED
        out.append(Shard(str(row["index"]), int(row["shard"]), row.get("prirep") == "p", state, node or None))
    return out


def allocation_enable(settings: dict[str, Any]) -> str | None:
    key = "cluster.routing.allocation.enable"
    for scope in ("transient", "persistent"):
        value = (settings.get(scope) or {}).get(key)
        if value is not None:
            return str(value)
    return None


def parse_shutdowns(body: Any, name_of: dict[str, str]) -> tuple[tuple[ShutdownRecord, ...], bool]:
    """Records of a GET _nodes/shutdown answer, and whether it came from the shutdown API at all (see module doc)."""
    nodes = body.get("nodes") if isinstance(body, dict) else None
    if not isinstance(nodes, list):
        return (), False
    records = tuple(
        ShutdownRecord(
            node=name_of.get(str(r.get("node_id")), str(r.get("node_id"))),
            type=str(r.get("type", "")).lower(),
            status=str(r.get("status", "")).upper(),
        )
        for r in nodes
    )
    return records, True
