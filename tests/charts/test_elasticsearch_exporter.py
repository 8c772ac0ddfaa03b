"""The Elasticsearch alerts and dashboard read only what the standard elasticsearch_exporter really exports: Debian's
`prometheus-elasticsearch-exporter` (installed by scripts/test-tools.sh) run against the single-node peer's
Elasticsearch REST API (noida-db), its /metrics scraped, and every metric name and grouping label of the
elasticsearch chart's rules and dashboard looked up in that scrape.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from chart_render import deep_merge
from monitoring_support import SOURCE_ON, metric_names, render, rule_exprs
from test_monitoring import ALL_ON, _grouping_labels, _used

from toolkit.targets.peer import PeerUnavailable, free_port, running_peer

pytestmark = pytest.mark.wire

EXPORTER = "prometheus-elasticsearch-exporter"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+\S+", re.M)


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which(EXPORTER)
    assert binary, f"{EXPORTER} is missing: run `bash scripts/test-tools.sh` (make test does)"
    try:
        peer_context = running_peer(tmp_path_factory.mktemp("noida"))
        peer = peer_context.__enter__()
    except PeerUnavailable as exc:
        pytest.skip(str(exc))
    port = free_port()
    log = Path(tmp_path_factory.mktemp("exporter")) / "exporter.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [binary, f"--es.uri={peer.elasticsearch_url}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        text, deadline = "", time.monotonic() + 30
        while "elasticsearch_cluster_health_status{" not in text:
            assert time.monotonic() < deadline, f"no cluster health scraped in 30 s: {log.read_text()[-2000:]}"
            time.sleep(0.3)
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                continue
        yield text
    finally:
        process.terminate()
        process.wait(timeout=10)
        peer_context.__exit__(None, None, None)


def exported(text: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, labels in SAMPLE.findall(text):
        keys = {pair.split("=", 1)[0].strip() for pair in labels.split(",") if "=" in pair}
        found.setdefault(name, set()).update(keys)
    return found


def test_every_elasticsearch_metric_a_rule_or_panel_reads_is_exported(scrape: str) -> None:
    names = exported(scrape)
    used = _used("elasticsearch")
    assert used
    unknown = {name: sorted(where) for name, where in used.items() if name not in names}
    assert unknown == {}, f"not exported by elasticsearch_exporter: {unknown}"


def test_the_labels_the_rules_select_and_group_by_are_on_those_series(scrape: str) -> None:
    names = exported(scrape)
    values = deep_merge(SOURCE_ON["elasticsearch"], ALL_ON)
    for alert, expr in rule_exprs(render("elasticsearch", values, served=True)).items():
        labels = set().union(*(names[name] for name in metric_names(expr)))
        selected = set(re.findall(r"(\w+)\s*=~?\s*\"", expr))
        assert (selected | _grouping_labels(expr)) <= labels, alert
    assert {"cluster", "color"} <= names["elasticsearch_cluster_health_status"]
