"""Version-path rules: refused before anything moves, allowed where upgrade-gates.md allows."""

from __future__ import annotations

import pytest

from tests.builders import es, platform
from toolkit.catalog import load
from toolkit.engine.paths import metadata_level
from toolkit.engine.planner import rollback_path, upgrade_path
from toolkit.model import Component, KafkaState, PlatformState

CAT = load()
ES, KAFKA, WORKERS = Component.ELASTICSEARCH, Component.KAFKA, Component.WORKERS


def check_upgrade_path(catalog, component, running, target, metadata_version="", state: PlatformState | None = None):
    state = state or platform(KafkaState(metadata_version=metadata_version))
    return upgrade_path(catalog, state, component, target, running=running)


def check_rollback(catalog, component, state, previous):
    return rollback_path(catalog, state, component, previous)


@pytest.mark.parametrize(
    ("component", "running", "target", "rule", "needle"),
    [
        (ES, ["8.17.4"], "9.0.4", "elasticsearch.version-path", "8.18.0"),
        (ES, ["8.18.3"], "9.1.3", "elasticsearch.version-path", "8.19.0"),
        (ES, ["8.19.3"], "8.18.3", "elasticsearch.no-downgrade", "rollback"),
        (ES, ["7.17.25"], "9.0.4", "elasticsearch.major-skip", "skips a major"),
        (ES, ["7.16.3"], "8.19.3", "elasticsearch.version-path", "7.17.0"),
        (ES, ["8.18.3", "9.0.4"], "9.1.3", "elasticsearch.version-path", "8.19.0"),
        (ES, ["7.17.25", "8.19.3"], "9.1.3", "elasticsearch.overlapping-majors", "finish that upgrade"),
        (KAFKA, ["3.2.3"], "4.0.1", "kafka.version-path", "3.3.0"),
        (KAFKA, ["4.1.0"], "4.0.1", "kafka.no-downgrade", "rollback"),
        (KAFKA, ["4.0.1"], "9.9.9", "kafka.unknown-version", "not in the catalog"),
        (WORKERS, ["0.2.0"], "0.1.0", "workers.no-downgrade", "rollback"),
    ],
)
def test_refused_paths(component: Component, running: list[str], target: str, rule: str, needle: str) -> None:
    verdict = check_upgrade_path(CAT, component, running, target)
    assert not verdict.ok and verdict.fatal
    assert verdict.rule == rule
    assert needle in verdict.reason
    assert target in verdict.reason or rule.endswith("no-downgrade")


@pytest.mark.parametrize(
    ("component", "running", "target"),
    [
        (ES, ["8.18.3"], "9.0.4"),
        (ES, ["8.19.3"], "9.1.3"),
        (ES, ["7.17.25"], "8.19.3"),
        (ES, ["8.18.3", "8.19.3"], "8.19.3"),  # resuming a half-finished upgrade
        (KAFKA, ["3.3.2"], "4.0.1"),
        (KAFKA, ["3.9.1"], "4.1.0"),
        (KAFKA, ["4.0.1"], "4.1.0"),
        (WORKERS, ["0.1.0"], "0.3.0"),
        (KAFKA, [], "4.1.0"),
    ],
)
def test_allowed_paths(component: Component, running: list[str], target: str) -> None:
    verdict = check_upgrade_path(CAT, component, running, target)
    assert verdict.ok, verdict.reason


def test_path_is_judged_from_the_lowest_running_version() -> None:
    # one node still on 8.17 makes 9.0 unreachable even though others run 8.18
    verdict = check_upgrade_path(CAT, ES, ["8.17.4", "8.18.3"], "9.0.4")
    assert not verdict.ok and "8.17.4" in verdict.reason


def test_zookeeper_mode_kafka_cannot_reach_4x() -> None:
    verdict = check_upgrade_path(CAT, KAFKA, ["3.2.3"], "4.1.0")
    assert not verdict.ok


def test_target_must_support_finalized_metadata_version() -> None:
    verdict = check_upgrade_path(CAT, KAFKA, ["4.1.0"], "4.1.1", metadata_version="4.1-IV1")
    assert verdict.ok
    refused = check_upgrade_path(CAT, KAFKA, ["4.0.1"], "4.0.1", metadata_version="4.1-IV1")
    assert not refused.ok and refused.rule == "kafka.metadata-version"


def test_metadata_level_parses_and_orders() -> None:
    assert metadata_level("4.0-IV3") < metadata_level("4.1-IV1")
    with pytest.raises(ValueError, match=r"MAJOR\.MINOR-IVn"):
        metadata_level("latest")


def test_kafka_rollback_refused_after_metadata_version_bump() -> None:
    state = platform(KafkaState(metadata_version="4.1-IV1"))
    verdict = check_rollback(CAT, KAFKA, state, "4.0.1")
    assert not verdict.ok and verdict.fatal and "cannot be lowered" in verdict.reason


def test_kafka_rollback_allowed_before_metadata_version_bump() -> None:
    state = platform(KafkaState(metadata_version="4.0-IV3"))
    assert check_rollback(CAT, KAFKA, state, "4.0.1").ok


def test_es_rollback_refused_once_a_newer_node_joined() -> None:
    state = platform(es_state=es([], nodes=[("hot-0", "hot")], version="8.19.3"))
    verdict = check_rollback(CAT, ES, state, "8.18.3")
    assert not verdict.ok and "hot-0" in verdict.reason and "snapshot" in verdict.reason


def test_es_rollback_allowed_while_no_newer_node_joined() -> None:
    state = platform(es_state=es([], nodes=[("hot-0", "hot")], version="8.18.3"))
    assert check_rollback(CAT, ES, state, "8.18.3").ok


def test_rollback_without_recorded_previous_version_is_refused() -> None:
    verdict = check_rollback(CAT, WORKERS, platform(), "")
    assert not verdict.ok and "no recorded previous version" in verdict.reason
