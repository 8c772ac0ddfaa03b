"""The Elasticsearch adapter over the wire against the single-node peer (noida-db, reports ES 8.15): every
observation it serves, the allocation + flush restart method, and the fallback when the node shutdown API is missing.
"""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest
from elasticsearch import Elasticsearch

from toolkit.config.access import EsConnection
from toolkit.engine.gates import elasticsearch as es_gates
from toolkit.engine.ports import ActionError
from toolkit.model import Health, ShardState
from toolkit.targets.es_admin import EsAdmin

pytestmark = pytest.mark.wire


def rest(url: str, method: str, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{url}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read() or b"{}")


@pytest.fixture
def admin(peer):
    es_admin = EsAdmin.connect(EsConnection(url=peer.elasticsearch_url))
    yield es_admin
    es_admin.reset_allocation()
    es_admin.close()


def test_observes_health_nodes_master_and_settings(admin):
    state = admin.observe(expected_nodes=("noida-db", "es-hot-1"))
    assert state.health in (Health.GREEN, Health.YELLOW)
    node = state.node("noida-db")
    assert node is not None and node.joined and node.master_eligible and node.holds_data
    assert node.version == "8.15.3"
    assert node.tier == ""  # a generic `data` node holds every tier
    missing = state.node("es-hot-1")
    assert missing is not None and not missing.joined
    assert state.elected_master == "noida-db"
    assert state.allocation_enable is None


def test_shards_of_a_new_index_primaries_started_replicas_unassigned(admin, peer):
    index = f"events-{uuid.uuid4().hex[:6]}"
    rest(peer.elasticsearch_url, "PUT", f"/{index}", {"settings": {"number_of_shards": 2, "number_of_replicas": 1}})
    state = admin.observe()
    mine = [s for s in state.shards if s.index == index]
    assert sorted((s.number, s.primary, s.state, s.node) for s in mine) == [
        (0, False, ShardState.UNASSIGNED, None),
        (0, True, ShardState.STARTED, "noida-db"),
        (1, False, ShardState.UNASSIGNED, None),
        (1, True, ShardState.STARTED, "noida-db"),
    ]
    assert state.health is Health.YELLOW
    verdict = es_gates.health_allows_restart(state)
    assert verdict.ok, verdict.reason  # yellow with every primary started and nothing moving


def test_shutdown_api_missing_falls_back_to_allocation_and_flush(admin):
    state = admin.observe()
    assert state.supports_shutdown_api is False
    assert state.shutdowns == ()
    assert es_gates.restart_method("8.15.3", state) == "allocation"
    admin.prepare_restart("noida-db", "allocation")
    assert admin.observe().allocation_enable == "primaries"
    admin.finish_restart("noida-db", "allocation")
    assert admin.observe().allocation_enable is None


def test_shutdown_api_call_on_a_server_without_it_is_an_action_error_naming_the_call(admin):
    with pytest.raises(ActionError, match=r"_nodes/.+/shutdown"):
        admin.prepare_restart("noida-db", "shutdown-api")


def test_reset_allocation_clears_a_left_over_restriction(admin, peer):
    rest(
        peer.elasticsearch_url,
        "PUT",
        "/_cluster/settings",
        {"persistent": {"cluster.routing.allocation.enable": "none"}},
    )
    assert admin.observe().allocation_enable == "none"
    admin.reset_allocation()
    assert admin.observe().allocation_enable is None


def test_flush_and_snapshot_repositories(admin, peer, tmp_path):
    admin.flush()
    rest(peer.elasticsearch_url, "PUT", "/_snapshot/nightly", {"type": "fs", "settings": {"location": str(tmp_path)}})
    assert "nightly" in admin.observe().snapshot_repositories


def test_unknown_node_is_an_action_error_listing_the_known_ones(admin):
    admin.observe()
    with pytest.raises(ActionError, match=r"es-hot-9 is not in the cluster.*noida-db"):
        admin.node_id("es-hot-9")


def test_no_answer_is_unknown_health_and_every_expected_node_not_joined():
    dead = EsAdmin(Elasticsearch("http://127.0.0.1:9", request_timeout=1, max_retries=0))
    state = dead.observe(expected_nodes=("es-master-0",))
    assert state.health is Health.UNKNOWN
    assert [(n.name, n.joined) for n in state.nodes] == [("es-master-0", False)]
