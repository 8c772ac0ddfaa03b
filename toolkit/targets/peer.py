"""The single-node Kafka + Elasticsearch peer (PyPI `noida-db`): started on free loopback ports, stopped by pid.

Used by the wire tests and by the `local` environment's real workers. The `noida-db` console script is a Python
wrapper that runs the server binary as a child, so stopping the wrapper by pid would leave the server running: the
binary inside the package is started directly.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path


class PeerUnavailable(RuntimeError):
    """The peer is not installed, or did not come up."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_binary() -> Path | None:
    try:
        binary = files("noida_db").joinpath("noida-db")
    except ModuleNotFoundError:
        return None
    return Path(str(binary)) if binary.is_file() else None


@dataclass(frozen=True)
class Peer:
    kafka_bootstrap: str
    elasticsearch_url: str
    pid: int
    started_seconds: float
    log: Path


def _answers(url: str) -> bool:
    try:
        return bool(urllib.request.urlopen(url, timeout=1).status == 200)
    except OSError:
        return False


def _listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def running_peer(data_dir: Path, timeout: float = 30.0) -> Iterator[Peer]:
    binary = server_binary()
    if binary is None:
        raise PeerUnavailable("noida-db (the single-node Kafka + Elasticsearch peer, PyPI noida-db) is not installed")
    data_dir.mkdir(parents=True, exist_ok=True)
    kafka_port, es_port = free_port(), free_port()
    log = data_dir / "noida.log"
    started = time.monotonic()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(binary), "start", "--data-dir", str(data_dir / "data"), "--host", "127.0.0.1",
             "--only", "kafka,elasticsearch", "--kafka-port", str(kafka_port), "--elasticsearch-port", str(es_port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        es_url = f"http://127.0.0.1:{es_port}"
        while not (_answers(es_url + "/") and _listens(kafka_port)):
            if process.poll() is not None:
                raise PeerUnavailable(f"noida-db exited with {process.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise PeerUnavailable(f"noida-db did not answer within {timeout:.0f} s; see {log}")
            time.sleep(0.05)
        yield Peer(f"127.0.0.1:{kafka_port}", es_url, process.pid, time.monotonic() - started, log)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
