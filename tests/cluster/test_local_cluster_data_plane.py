"""The local cluster owns its data plane: what a new user does first, through the installed `toolkit` command.

`toolkit cluster up --env local` (a cluster of its own, in a temporary $TOOLKIT_STATE_DIR) starts the control plane,
the node agent and the peer operator; `toolkit deploy --env local -n NS` right after it succeeds with both worker
Deployments Available, every worker pod running the real `toolkit-worker` and Ready, readiness being the workers' own
(`/readyz` of each receiver says ok: it reached Kafka and found its topic), and a syslog event sent to a receiver pod
is found in Elasticsearch (the operator published the namespace's Kafka and Elasticsearch Services with the
platform's certificates and made the chart's topics and write alias). A second platform namespace, with a CA of
its own, is served beside the first. The operator killed with SIGKILL: `cluster status` says so, `cluster up`
starts a new one, which removes what the killed one left and publishes everything again; the workers are Ready
again and the pipeline carries events again. Deleting a namespace unpublishes it and stops its peer. `cluster down`
leaves no stunnel, no peer, no network namespace, no veth or bridge and no nft table of the cluster behind.

The tests of this module run in order on one cluster (each step builds on the previous one).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from toolkit.targets.local.controlplane import SETUP_SCRIPT, missing_binaries
from toolkit.targets.local.network import REQUIRED_TOOLS

pytestmark = pytest.mark.cluster

TOOLKIT = str(Path(sys.executable).parent / "toolkit")
ENV = "local"  # the built-in environment, as in the README's walkthrough


@dataclass
class Cluster:
    state: Path  # $TOOLKIT_STATE_DIR
    variables: dict[str, str]
    namespaces: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.state / ENV

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    def toolkit(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        done = subprocess.run(
            [TOOLKIT, *args], env=self.variables, capture_output=True, text=True, timeout=timeout, check=False
        )
        self.timings[" ".join(args[:3])] = time.monotonic() - started
        print(
            f"\n$ toolkit {' '.join(args)}  ({time.monotonic() - started:.1f} s, exit {done.returncode})\n{done.stdout}"
        )
        return done

    def api(self) -> Any:
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def network(self) -> Any:
        from toolkit.targets.local.network import network_of

        return network_of(self.state_dir)

    def operator_pid(self) -> int:
        return int((self.state_dir / "run" / "peeroperator.pid").read_text())

    def served(self, namespace: str) -> Any:
        from toolkit.targets.local.peeroperator import read_status

        status = read_status(self.state_dir)
        return None if status is None else status.namespaces.get(namespace)


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except Exception as exc:  # not there yet
            last = f"{type(exc).__name__}: {exc}"
        else:
            if last:
                return last
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last})")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    missing = missing_binaries()
    if missing:
        pytest.skip(f"local control plane not built: missing {', '.join(missing)}; run `sudo {SETUP_SCRIPT}`")
    import shutil

    absent = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if os.geteuid() != 0 or absent:
        pytest.skip(
            f"the local data plane needs root and {', '.join(absent) or 'its tools'}: run scripts/local-data-plane.sh"
        )
    state = tmp_path_factory.mktemp("cluster-data-plane")
    variables = {**os.environ, "TOOLKIT_STATE_DIR": str(state)}
    variables.pop("TOOLKIT_ENVIRONMENTS_DIR", None)
    found = Cluster(state, variables)
    try:
        yield found
    finally:
        from toolkit.targets.local import down

        down(found.state_dir, wipe=True)
        print("\ntimings: " + ", ".join(f"{what} {seconds:.0f} s" for what, seconds in found.timings.items()))


def fresh_namespace(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def deployments_available(api: Any, namespace: str) -> dict[str, str]:
    from kubernetes import client

    out = {}
    for deployment in client.AppsV1Api(api).list_namespaced_deployment(namespace).items:
        conditions = {c.type: c.status for c in deployment.status.conditions or []}
        ready = deployment.status.ready_replicas or 0
        out[deployment.metadata.name] = (
            f"Available={conditions.get('Available')} ready={ready}/{deployment.spec.replicas}"
        )
    return out


def workers_ready(cluster: Cluster, namespace: str) -> bool:
    """Both worker Deployments Available with every replica Ready, each pod running its own toolkit-worker, and each
    receiver's own readiness endpoint answering ok."""
    from toolkit.config.wiring import RELEASES
    from toolkit.rehearsal import liveload

    api = cluster.api()
    try:
        available = deployments_available(api, namespace)
        workers = {n: s for n, s in available.items() if n.startswith(RELEASES["workers"])}
        if len(workers) != 2 or not all(s.startswith("Available=True") and "ready=2/2" in s for s in workers.values()):
            return False
        processes = liveload.worker_processes(cluster.network(), api, namespace)
        if len(processes) != 4 or any(pid is None for pid in processes.values()):
            return False
        receivers = liveload.local_receivers(api, namespace)()
        for receiver in receivers:
            with urllib.request.urlopen(f"http://{receiver.host}:{receiver.http_port}/readyz", timeout=3) as answer:
                if answer.status != 200 or answer.read().strip() != b"ok":
                    return False
        return len(receivers) == 2
    finally:
        api.close()


def send_and_find(cluster: Cluster, namespace: str, timeout: float = 120) -> str:
    """One syslog event over TCP to a receiver pod (octet counting), found in Elasticsearch by its HOSTNAME, read as
    the platform's admin through the operator's loopback address, TLS verified against the platform CA."""
    import base64

    from elasticsearch import Elasticsearch
    from kubernetes import client

    from toolkit.config.wiring import WRITE_ALIAS
    from toolkit.rehearsal import liveload
    from toolkit.targets.local.peeroperator import platform_wiring

    wiring = platform_wiring(namespace)
    api = cluster.api()
    core = client.CoreV1Api(api)
    ca = base64.b64decode(core.read_namespaced_secret(wiring.secrets.ca, namespace).data["ca.crt"])
    admin = core.read_namespaced_secret(wiring.admin.es_secret, namespace).data
    receivers = liveload.local_receivers(api, namespace)()
    api.close()
    tag = f"acceptance-{uuid.uuid4().hex[:8]}"
    line = f"<134>1 2026-01-01T00:00:00Z {tag} acceptance - a1 - one event through the local data plane".encode()
    with socket.create_connection((receivers[0].host, receivers[0].tcp_port), timeout=5) as sender:
        sender.sendall(b"%d %s" % (len(line), line))
    ca_file = cluster.state / f"{namespace}-ca.crt"
    ca_file.write_bytes(ca)
    served = cluster.served(namespace)
    es = Elasticsearch(
        f"https://{served.elasticsearch['loopback']}",
        ca_certs=str(ca_file),
        basic_auth=(base64.b64decode(admin["username"]).decode(), base64.b64decode(admin["password"]).decode()),
        request_timeout=10,
    )
    try:

        def stored() -> bool:
            es.indices.refresh(index=WRITE_ALIAS)
            return int(es.count(index=WRITE_ALIAS, query={"term": {"host.name": tag}})["count"]) == 1

        wait_for(stored, timeout, f"the event {tag} in {WRITE_ALIAS} of {namespace}")
    finally:
        es.close()
    return tag


def our_processes(cluster: Cluster) -> list[str]:
    """Processes whose command line names this cluster's state directory (stunnel's configs, noida-db's data, the
    agent's and the operator's kubeconfig, the workers' volumes)."""
    marker = str(cluster.state).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in command:
            text = command.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {text[:160]}")
    return found


def host_objects(cluster: Cluster, network: Any) -> list[str]:
    """Network namespaces, links and nft tables of this cluster on the host (by its names, network.py)."""
    prefix = network.name_prefix
    namespaces = (
        [p.name for p in Path("/run/netns").iterdir() if p.name.startswith(prefix)]
        if Path("/run/netns").is_dir()
        else []
    )
    links = [p.name for p in Path("/sys/class/net").iterdir() if p.name == network.bridge or p.name.startswith(prefix)]
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False).stdout.split("\n")
    return namespaces + links + [t for t in tables if t.strip().endswith(network.root_table)]


# ---------------------------------------------------------------------------------------------- the steps


def test_deploy_right_after_cluster_up_has_its_workers_ready(cluster: Cluster) -> None:
    up = cluster.toolkit("cluster", "up", "--env", ENV)
    assert up.returncode == 0, up.stderr
    assert "data plane: no platform namespace yet (`toolkit deploy` makes one)" in up.stdout
    namespace = fresh_namespace("first")
    deployed = cluster.toolkit("deploy", "--env", ENV, "-n", namespace)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    cluster.namespaces.append(namespace)
    # deploy waited for the chart's readiness; it all holds now, and is real
    assert workers_ready(cluster, namespace), deployments_available(cluster.api(), namespace)
    served = cluster.served(namespace)
    assert served is not None and served.ready, served
    assert served.kafka["mutual_tls"] and set(served.topics) == {"security-events", "security-events-dead-letters"}
    send_and_find(cluster, namespace)
    status = cluster.toolkit("cluster", "status", "--env", ENV)
    assert status.returncode == 0
    assert (
        "peeroperator: running" in status.stdout
        and f"namespace {namespace}: Kafka kafka-bootstrap:9094" in status.stdout
    )


def test_a_second_platform_namespace_gets_its_own_kafka_and_elasticsearch(cluster: Cluster) -> None:
    assert cluster.namespaces, "the first step did not deploy"
    namespace = fresh_namespace("second")
    deployed = cluster.toolkit("deploy", "--env", ENV, "-n", namespace)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    cluster.namespaces.append(namespace)
    assert workers_ready(cluster, namespace)
    first, second = (cluster.served(ns) for ns in cluster.namespaces)
    assert first.ready and second.ready
    assert first.peer["netns"] != second.peer["netns"] and first.kafka["loopback"] != second.kafka["loopback"]
    send_and_find(cluster, namespace)


def test_a_killed_operator_is_recovered_by_cluster_up(cluster: Cluster) -> None:
    assert len(cluster.namespaces) == 2, "the earlier steps did not deploy"
    before = {ns: cluster.served(ns).peer["pid"] for ns in cluster.namespaces}
    pid = cluster.operator_pid()
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: not Path(f"/proc/{pid}").exists() or b"Z" in Path(f"/proc/{pid}/stat").read_bytes()[-60:],
        10,
        "the kill",
    )
    status = cluster.toolkit("cluster", "status", "--env", ENV)
    assert "peeroperator: stopped" in status.stdout and "data plane: not running" in status.stdout
    up = cluster.toolkit("cluster", "up", "--env", ENV)
    assert up.returncode == 0, up.stderr
    assert cluster.operator_pid() != pid
    log = (cluster.state_dir / "logs" / "peeroperator.log").read_text()
    assert "removed leftover of an earlier operator: peer namespace" in log
    for namespace in cluster.namespaces:

        def ready(ns: str = namespace) -> Any:
            served = cluster.served(ns)
            return served if served is not None and served.ready else None

        served = wait_for(ready, 60, f"{namespace} published again")
        assert served.peer["pid"] != before[namespace]  # a new peer, the old one's processes are gone
        assert not Path(f"/proc/{before[namespace]}").exists()

        def workers(ns: str = namespace) -> bool:
            return workers_ready(cluster, ns)

        wait_for(workers, 240, f"the workers of {namespace} Ready again")
    send_and_find(cluster, cluster.namespaces[0])


def test_deleting_a_namespace_unpublishes_it(cluster: Cluster) -> None:
    from kubernetes import client

    from toolkit.targets.local.publications import records_dir

    assert len(cluster.namespaces) == 2, "the earlier steps did not deploy"
    kept, deleted = cluster.namespaces
    netns = cluster.served(deleted).peer["netns"]
    api = cluster.api()
    client.CoreV1Api(api).delete_namespace(deleted)
    records = records_dir(cluster.state_dir)
    wait_for(lambda: not (records / f"{deleted}.json").exists(), 120, f"the publication record of {deleted} to go")
    wait_for(lambda: cluster.served(deleted) is None, 120, f"the operator to forget {deleted}")
    assert not (records / deleted).exists()  # its certificates and keys
    assert not Path(f"/run/netns/{netns}").exists()
    assert not [
        p for p in our_processes(cluster) if f"/network/peers/{deleted}/" in p or f"/publications/{deleted}/" in p
    ]
    wait_for(lambda: not (cluster.state_dir / "network" / "peers" / deleted).exists(), 120, f"{deleted}'s peer data")
    assert cluster.served(kept).ready and (records / f"{kept}.json").exists()
    api.close()


def test_cluster_down_leaves_nothing_behind(cluster: Cluster) -> None:
    network = cluster.network()
    assert network is not None
    assert host_objects(cluster, network), "nothing ran before down: the test would prove nothing"
    down = cluster.toolkit("cluster", "down", "--env", ENV)
    assert down.returncode == 0, down.stderr
    assert our_processes(cluster) == []
    assert host_objects(cluster, network) == []
    assert not list((cluster.state_dir / "network" / "publications").glob("*.json"))
    status = cluster.toolkit("cluster", "status", "--env", ENV)
    assert "peeroperator: stopped" in status.stdout
    print(json.dumps(cluster.timings, indent=1))
