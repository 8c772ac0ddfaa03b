"""The `up` / `status` / `down` API behind `cluster up|down|status --env local` (node agent and peer operator as
processes)."""

from __future__ import annotations

import os

import pytest
from kubernetes import client, config

from toolkit.targets.local import MissingBinariesError, down, status, up
from toolkit.targets.local.controlplane import SETUP_SCRIPT, missing_binaries

pytestmark = pytest.mark.cluster


def test_up_names_every_missing_binary_and_the_setup_script(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLKIT_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(MissingBinariesError) as missing:
        up(tmp_path / "state")
    message = str(missing.value)
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert name in message
    assert SETUP_SCRIPT in message
    assert not (tmp_path / "state").exists(), "nothing may be written when binaries are missing"


def test_up_status_down_with_the_agent_as_a_process(local_env, tmp_path):
    # local_env is requested so the tier skips (naming the script) exactly when the binaries are missing.
    assert not missing_binaries()
    state_dir = tmp_path / "env"
    try:
        cluster = up(state_dir)
        assert not cluster.reused
        assert cluster.server.startswith("https://127.0.0.1:")
        print(f"\nup(): kube-apiserver start to /readyz {cluster.apiserver_ready_seconds:.1f} s")
        again = up(state_dir)
        assert again.reused and again.server == cluster.server
        report = status(state_dir)
        assert report.running and report.peer_operator.running
        if os.geteuid() == 0:  # elsewhere the operator runs and reports that the data plane needs root
            assert report.data_plane_lines() == ["data plane: no platform namespace yet (`toolkit deploy` makes one)"]
        assert {p.name for p in report.control_plane.processes if p.running} == {
            "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"
        }  # fmt: skip
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig)))
        zones = {
            node.metadata.labels["topology.kubernetes.io/zone"]
            for node in core.list_node(label_selector="toolkit.io/local-node=true").items
        }
        assert zones == {"zone-a", "zone-b", "zone-c"}
    finally:
        down(state_dir)
    after = status(state_dir)
    assert not after.running
    assert not any(p.running for p in after.control_plane.processes)
    assert not after.node_agent.running and not after.peer_operator.running
