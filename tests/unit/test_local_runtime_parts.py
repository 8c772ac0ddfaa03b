"""Parts of the local pod runtime that need no cluster: volume layout and modes, the launcher's path logic, probe
thresholds, restart back-off with real processes, the network registry and pod addresses."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from toolkit.targets.local import volumes
from toolkit.targets.local.container import Backoff, ContainerRunner
from toolkit.targets.local.launcher import RunnableImages, untraversable_dirs
from toolkit.targets.local.network import ClusterNetwork, NetworkError, allocate_network, network_of, release_network
from toolkit.targets.local.podspec import ConfigError, ProbeSpec
from toolkit.targets.local.probes import ProbeResult, ProbeTracker
from toolkit.targets.local.runtime import IpAllocator
from toolkit.targets.local.sandbox import overlay_dirs, resolve_in

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="fsGroup ownership needs root (chown)")


def _sources(secrets: dict, maps: dict | None = None) -> volumes.VolumeSources:
    return volumes.VolumeSources(secrets.get, (maps or {}).get, lambda account, audience, seconds: "token")


LABELS_ITEM = {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}


@root_only
def test_secret_volume_layout_modes_and_fs_group(tmp_path: Path) -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b"}},
        "spec": {
            "securityContext": {"fsGroup": 4242},
            "containers": [{"name": "c"}],
            "volumes": [
                {"name": "tls", "secret": {"secretName": "s", "defaultMode": 0o400,
                                           "items": [{"key": "k", "path": "dir/key.pem", "mode": 0o600}]}},
                {"name": "all", "secret": {"secretName": "s"}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "info", "downwardAPI": {"items": [LABELS_ITEM]}},
            ],
        },
    }  # fmt: skip
    made = volumes.materialise(pod, tmp_path / "v", _sources({"s": {"k": b"K", "other": b"O"}}), "ip", "host", {})
    tls = made["tls"].path
    assert (tls / "..data").is_symlink() and os.readlink(tls / "dir") == "..data/dir"
    key = (tls / "dir" / "key.pem").resolve()
    assert stat.S_IMODE(key.stat().st_mode) == 0o640 and key.stat().st_gid == 4242  # 0600 | 0440 (read-only type)
    assert stat.S_IMODE((made["all"].path / "other").stat().st_mode) == 0o644  # defaultMode 0644 | 0440
    assert sorted(p.name for p in made["all"].path.iterdir() if not p.name.startswith("..")) == ["k", "other"]
    scratch = made["scratch"].path.stat()
    assert stat.S_IMODE(scratch.st_mode) == 0o2777 and scratch.st_gid == 4242 and not made["scratch"].read_only
    assert (made["info"].path / "labels").read_text() == 'a="b"'
    mounts = volumes.mounts(
        {
            "name": "c",
            "volumeMounts": [{"name": "tls", "mountPath": "/etc/tls"}, {"name": "scratch", "mountPath": "/tmp"}],
        },
        made,
    )
    assert [(m.target, m.read_only) for m in mounts] == [("/etc/tls", True), ("/tmp", False)]


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        ({"secret": {"secretName": "gone"}}, 'secret "gone" not found'),
        (
            {"secret": {"secretName": "s", "items": [{"key": "x", "path": "x"}]}},
            "references non-existent secret key: x",
        ),
        ({"configMap": {"name": "gone"}}, 'configmap "gone" not found'),
        ({"persistentVolumeClaim": {"claimName": "data"}}, "volume type 'persistentVolumeClaim' is not supported"),
        ({"secret": {"secretName": "s", "items": [{"key": "k", "path": "../escape"}]}}, "invalid path"),
    ],
)
def test_volume_failures_name_the_volume(tmp_path: Path, volume: dict, message: str) -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"volumes": [{"name": "v", **volume}]}}
    with pytest.raises(ConfigError, match=message) as failure:
        volumes.materialise(pod, tmp_path / "v", _sources({"s": {"k": b"K"}}), "ip", "host", {})
    assert 'volume "v"' in str(failure.value)


def test_optional_missing_secret_gives_an_empty_volume(tmp_path: Path) -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {"volumes": [{"name": "v", "secret": {"secretName": "x", "optional": True}}]},
    }
    made = volumes.materialise(pod, tmp_path / "v", _sources({}), "ip", "host", {})
    assert [p.name for p in made["v"].path.iterdir()] == ["..data"] or list(made["v"].path.iterdir()) != []


def test_paths_resolve_inside_the_container_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "var").mkdir(parents=True)
    (root / "var" / "run").symlink_to("/run")
    (root / "etc").mkdir()
    (root / "etc" / "conf").symlink_to("../opt/conf")
    assert resolve_in(str(root), "/var/run/x/y") == f"{root}/run/x/y"
    assert resolve_in(str(root), "/etc/conf/file") == f"{root}/opt/conf/file"
    assert resolve_in(str(root), "/../../etc") == f"{root}/etc"


def test_overlays_cover_the_nearest_existing_ancestors_once(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    mounts = [
        {"target": f"{tmp_path}/a/new/deep"},
        {"target": f"{tmp_path}/a/b/new"},
        {"target": f"{tmp_path}/a/b"},  # exists: no overlay needed for it
        {"target": "/brand-new-top-level"},  # under `/`: the container's own tmpfs root
    ]
    assert overlay_dirs(mounts, []) == [f"{tmp_path}/a"]
    assert overlay_dirs([], [f"{tmp_path}/a/b", str(tmp_path)]) == [str(tmp_path)]


def test_image_paths_that_others_cannot_traverse(tmp_path: Path) -> None:
    private = tmp_path / "private"
    (private / "bin").mkdir(parents=True)
    interpreter = private / "bin" / "interp"
    interpreter.write_text("")
    private.chmod(0o700)
    image = tmp_path / "image"
    image.mkdir()
    script = image / "tool"
    script.write_text(f"#!{interpreter}\n")
    (image / "link").symlink_to(interpreter)
    assert str(private) in untraversable_dirs(image, script)
    assert str(private) in untraversable_dirs(image, image / "link")
    assert str(private) not in untraversable_dirs(image, None)


def test_runnable_images_by_repository_or_tag(tmp_path: Path) -> None:
    images = RunnableImages({"toolkit-worker": tmp_path / "any", "toolkit-worker:0.1.0": tmp_path / "old"})
    assert images.directory("toolkit-worker:0.1.0") == tmp_path / "old"
    assert images.directory("toolkit-worker:0.2.0") == tmp_path / "any"
    assert images.directory("docker.io/apache/kafka:4.1.0") is None


def test_a_pod_is_runnable_only_when_every_image_is(tmp_path: Path) -> None:
    """A Kafka broker pod of the chart (zone-lookup init container on the toolkit's image, the broker on Kafka's)
    stays simulated as a whole; a worker pod (the toolkit's image only) runs."""
    images = RunnableImages({"toolkit-worker": tmp_path})

    def pod(*images: str, init: tuple[str, ...] = ()) -> dict:
        return {
            "spec": {
                "initContainers": [{"name": f"i{n}", "image": i} for n, i in enumerate(init)],
                "containers": [{"name": f"c{n}", "image": i} for n, i in enumerate(images)],
            }
        }

    assert images.runs_all(pod("toolkit-worker:0.2.0"))
    assert not images.runs_all(pod("docker.io/apache/kafka:4.0.1", init=("toolkit-worker:0.2.0",)))
    assert not images.runs_all(pod("toolkit-worker:0.2.0", "docker.io/apache/kafka:4.0.1"))
    assert not images.runs_all({"spec": {}})


def test_probe_thresholds() -> None:
    spec = ProbeSpec("tcpSocket", {}, initial_delay=5, period=1, timeout=1, success_threshold=2, failure_threshold=3)
    readiness = ProbeTracker(spec, started_at=100.0, initial=False)
    assert not readiness.due(104.9) and readiness.due(105.0)
    ok, bad = ProbeResult(True, ""), ProbeResult(False, "")
    assert readiness.record(ok, 105) is False and readiness.record(ok, 106) is True and readiness.result
    assert [readiness.record(bad, t) for t in (107, 108, 109)] == [False, False, True] and not readiness.result
    liveness = ProbeTracker(spec, started_at=0.0, initial=True)
    liveness.record(bad, 1)
    liveness.record(ok, 2)  # a success resets the count of consecutive failures
    assert [liveness.record(bad, t) for t in (3, 4, 5)] == [False, False, True] and liveness.failed_out


class ShellLauncher:
    """Starts the container's command with /bin/sh on the host (no sandbox): the back-off logic, real processes."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.starts: list[int] = []

    def start(self, container: dict, restart_count: int) -> subprocess.Popen[bytes]:
        self.starts.append(restart_count)
        with open(self.log, "ab") as out:
            return subprocess.Popen(container["command"], stdout=out, start_new_session=True)

    def exec_in(self, container: dict, pid: int, argv: list[str], timeout: float) -> int:
        return subprocess.run(argv, timeout=timeout).returncode


def _drive(runner: ContainerRunner, until, seconds: float) -> list[dict]:
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until():
        if runner.step(time.monotonic()):
            seen.append(json.loads(json.dumps(runner.status())))
        time.sleep(0.02)
    return seen


def test_restart_back_off_counts_and_reasons(tmp_path: Path) -> None:
    launcher = ShellLauncher(tmp_path / "log")
    container = {"name": "c", "image": "x", "command": ["sh", "-c", "exit 3"]}
    runner = ContainerRunner(container, "p_ns(u)", "Always", launcher, lambda: "127.0.0.1", 1.0, Backoff(0.2, 0.8))
    started = time.monotonic()
    seen = _drive(runner, lambda: runner.restart_count >= 4, 10)
    took = time.monotonic() - started
    assert launcher.starts == [0, 1, 2, 3, 4]
    assert took >= 0.2 + 0.4 + 0.8 - 0.1  # immediate first restart, then 0.2, 0.4, 0.8 (the cap)
    waits = [
        s["state"]["waiting"]["message"]
        for s in seen
        if s["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff"
    ]
    assert waits[0].startswith("back-off 0.2s restarting failed container=c pod=p_ns(u)")
    assert all(s["lastState"]["terminated"]["exitCode"] == 3 for s in seen if "lastState" in s)


@pytest.mark.parametrize(
    ("policy", "code", "restarts"), [("Never", 3, False), ("OnFailure", 0, False), ("OnFailure", 1, True)]
)
def test_restart_policy(tmp_path: Path, policy: str, code: int, restarts: bool) -> None:
    launcher = ShellLauncher(tmp_path / "log")
    container = {"name": "c", "image": "x", "command": ["sh", "-c", f"exit {code}"]}
    runner = ContainerRunner(container, "p", policy, launcher, lambda: "", 1.0, Backoff(0.05, 0.1))
    _drive(runner, lambda: runner.done or runner.restart_count > 0, 5)
    assert (runner.restart_count > 0) is restarts
    if not restarts:
        assert runner.state["terminated"]["exitCode"] == code
        assert runner.state["terminated"]["reason"] == ("Completed" if code == 0 else "Error")


def test_stop_sends_sigterm_then_sigkill_after_the_grace(tmp_path: Path) -> None:
    launcher = ShellLauncher(tmp_path / "log")
    container = {
        "name": "c",
        "image": "x",
        "command": ["sh", "-c", "trap 'echo term' TERM; while true; do sleep 0.05; done"],
    }
    runner = ContainerRunner(container, "p", "Always", launcher, lambda: "", 1.0, Backoff())
    _drive(runner, lambda: runner.running, 5)
    time.sleep(0.2)  # the shell has set its trap
    started = time.monotonic()
    runner.stop(0.6)
    _drive(runner, lambda: runner.stopped and runner.done, 5)
    assert 0.6 <= time.monotonic() - started < 2.0
    assert runner.state["terminated"]["exitCode"] == 137 and "term" in (tmp_path / "log").read_text()


def test_network_registry_keeps_a_clusters_index_and_reclaims_stale_ones(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TOOLKIT_LOCAL_NETWORK_REGISTRY", str(tmp_path / "registry"))

    def cluster(name: str, index: int | None = None) -> Path:
        state = tmp_path / name
        state.mkdir(exist_ok=True)
        if index is not None:
            (state / "cluster.json").write_text(json.dumps({"network": {"index": index}}))
        return state

    first = allocate_network(cluster("a"))
    (tmp_path / "a" / "cluster.json").write_text(json.dumps({"network": first.as_record()}))
    second = allocate_network(cluster("b"))
    assert first != second
    assert allocate_network(tmp_path / "a") == first  # restart: same network
    assert network_of(tmp_path / "a") == first
    (tmp_path / "a" / "cluster.json").unlink()  # a wiped cluster's claim is stale ...
    assert allocate_network(cluster("c", first.index)) == first  # ... and taken again
    release_network(tmp_path / "c")
    assert not (tmp_path / "registry" / f"{first.index}.json").exists()
    with pytest.raises(ValueError, match="out of range"):
        ClusterNetwork(48)


def test_addresses_are_unique_prefer_the_reported_one_and_run_out_loudly() -> None:
    network = ClusterNetwork(3)
    allocator = IpAllocator({"n1": network.node_subnet_prefix(1)})
    assert allocator.claim("a", "n1") == "10.131.1.2"
    assert allocator.claim("b", "n1", preferred="10.131.1.2") == "10.131.1.3"  # held by a
    assert allocator.claim("c", "n1", preferred="10.131.1.77") == "10.131.1.77"
    assert network.sandbox_name("10.131.1.77") == "tkl3-01-4d" and len(network.sandbox_name("10.131.250.254")) <= 15
    for index in range(251):  # 3 held + 250 = all 253; the 251st must fail
        try:
            allocator.claim(f"x{index}", "n1")
        except NetworkError as error:
            assert "all 253 pod addresses of 10.131.1.0/24 are held" in str(error)
            break
    else:
        pytest.fail("the allocator handed out more addresses than the subnet has")
