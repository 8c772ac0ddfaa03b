"""`toolkit rehearse --env kind` on a real kind cluster: the --from versions deployed into the run's namespace, real
Kafka and Elasticsearch at the NodePorts of kind-config.yaml, receivers behind the syslog Service's NodePorts, the
upgrade through the engine under live load. Skips where kind or Docker is missing (naming it), and unless
TOOLKIT_KIND=1 (it creates, or reuses, the cluster kind-toolkit). The worker images toolkit-worker:0.1.0 and 0.2.0
must be loaded into the cluster (`kind load docker-image`), as the upgrade-rehearsal workflow does.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from toolkit.model import Component, UpgradeSettings

pytestmark = pytest.mark.kind


def _missing() -> str | None:
    if shutil.which("kind") is None:
        return "kind is not installed (no `kind` on PATH; https://kind.sigs.k8s.io/docs/user/quick-start/)"
    if shutil.which("docker") is None:
        return "docker is not installed (no `docker` on PATH)"
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
        return "the docker daemon does not answer (`docker info` failed)"
    if os.environ.get("TOOLKIT_KIND") != "1":
        return "kind and docker are present, but TOOLKIT_KIND=1 is not set (it creates/uses cluster kind-toolkit)"
    return None


def test_kind_rehearsal_upgrades_every_component_and_loses_nothing() -> None:
    missing = _missing()
    if missing:
        pytest.skip(missing)
    from toolkit.rehearsal.run import RehearsalOptions, rehearse

    settings = UpgradeSettings(poll_interval=2, gate_timeout=600, step_timeout=900)
    options = RehearsalOptions(rate=200, syslog_rate=200, drain_timeout=300, settings=settings)
    report = rehearse(
        "kind",
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
