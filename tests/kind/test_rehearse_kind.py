"""`toolkit rehearse --env kind` on a real kind cluster: the --from versions deployed into the run's namespace, real
Kafka and Elasticsearch at the NodePorts of kind-config.yaml, receivers behind the syslog Service's NodePorts, the
upgrade through the engine under live load. Skips where kind or Docker is missing (naming it), and unless
TOOLKIT_KIND=1 (it creates, or reuses, the cluster kind-toolkit). The worker images toolkit-worker:0.1.0 and 0.2.0
must be loaded into the cluster (`kind load docker-image`), as the upgrade-rehearsal workflow does.
"""

from __future__ import annotations

import pytest
from kind_support import kind_missing

from toolkit.model import Component, UpgradeSettings

pytestmark = pytest.mark.kind


def test_kind_rehearsal_upgrades_every_component_and_loses_nothing() -> None:
    missing = kind_missing()
    if missing:
        pytest.skip(missing)
    from toolkit.config.environments import resolve
    from toolkit.rehearsal.run import RehearsalOptions, rehearse

    settings = UpgradeSettings(poll_interval=2, gate_timeout=600, step_timeout=900)
    options = RehearsalOptions(rate=200, syslog_rate=200, drain_timeout=300, settings=settings)
    report = rehearse(
        resolve("kind"),
        {Component.KAFKA: "4.0.1", Component.ELASTICSEARCH: "8.18.3", Component.WORKERS: "0.1.0"},
        {Component.KAFKA: "4.1.0", Component.ELASTICSEARCH: "8.19.3", Component.WORKERS: "0.2.0"},
        options,
    )
    doc = report.as_dict()
    assert not report.simulated
    assert report.outcome == "completed", report.outcome_reason
    assert doc["lost_by_path"]["acknowledged_not_consumed"] == 0 and doc["duplicated"] == 0
    assert doc["syslog"]["stored"] == doc["syslog"]["accepted"] > 0
    assert not doc["elasticsearch_ever_red"]
    assert report.passed, report.reasons
