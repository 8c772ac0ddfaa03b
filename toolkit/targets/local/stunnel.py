"""TLS terminators (Debian's stunnel4) in a chosen network namespace: configuration, start, readiness, stop.

A `Terminator` is one stunnel process with one or more `TlsService`s (accept TLS on an address, forward plaintext
to another). With `client_ca` set, the terminator requires a client certificate that chains to that CA
(`verifyChain` + `requireCert`): stunnel ends the handshake with an alert otherwise, so mutual TLS is enforced by
the terminator, not by the backend. TLS 1.2 is the minimum.

`start()` runs `stunnel4 <config>` in the foreground (inside the namespace through `nsenter --net`, in its own
session) and waits until every accept address is in LISTEN state in that namespace, read from
`/proc/<pid>/net/tcp` (the socket table of the process's own network namespace), or raises `TerminatorError` with
the tail of its log. `stop()` terminates the process group (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from toolkit.targets.local.network import nsenter_argv, process_alive

STUNNEL = "stunnel4"
LISTEN = "0A"


class TerminatorError(RuntimeError):
    """A terminator did not start; the message says which and why."""


@dataclass(frozen=True)
class TlsService:
    """Accept TLS on `accept`, forward plaintext to `connect`."""

    name: str
    accept: tuple[str, int]
    connect: tuple[str, int]
    cert: Path  # server certificate (chain), PEM
    key: Path  # its private key, PEM
    client_ca: Path | None = None  # require client certificates that chain to this CA


def render_config(services: Sequence[TlsService]) -> str:
    lines = ["foreground = yes", "pid =", "syslog = no", "debug = notice", ""]
    for service in services:
        lines += [
            f"[{service.name}]",
            f"accept = {service.accept[0]}:{service.accept[1]}",
            f"connect = {service.connect[0]}:{service.connect[1]}",
            f"cert = {service.cert}",
            f"key = {service.key}",
            "sslVersionMin = TLSv1.2",
        ]
        if service.client_ca is not None:
            lines += [f"CAfile = {service.client_ca}", "verifyChain = yes", "requireCert = yes"]
        lines.append("")
    return "\n".join(lines)


def _hex_address(host: str, port: int) -> str:
    octets = [int(o) for o in host.split(".")]
    return "".join(f"{o:02X}" for o in reversed(octets)) + f":{port:04X}"


def listening(pid: int, addresses: Sequence[tuple[str, int]]) -> bool:
    """True when process `pid` is stunnel itself (so `nsenter` has entered the namespace and exec'd) and every
    address is a LISTEN socket in its network namespace."""
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() != STUNNEL:
            return False
        table = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    bound = {fields[1] for fields in (line.split() for line in table) if len(fields) > 3 and fields[3] == LISTEN}
    return all(_hex_address(h, p) in bound or f"00000000:{p:04X}" in bound for h, p in addresses)


class Terminator:
    """One stunnel process (see the module docstring)."""

    def __init__(self, name: str, directory: Path, services: Sequence[TlsService], netns: str | None = None) -> None:
        self.name = name
        self.directory = directory
        self.services = tuple(services)
        self.netns = netns
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.directory / f"{self.name}.conf"

    @property
    def log(self) -> Path:
        return self.directory / f"{self.name}.log"

    @property
    def config_text(self) -> str:
        return render_config(self.services)

    def start(self, timeout: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config.write_text(self.config_text)
        argv = [STUNNEL, str(self.config)]
        if self.netns is not None:
            argv = nsenter_argv(self.netns, argv)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        addresses = [s.accept for s in self.services]
        while not listening(self.process.pid, addresses):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                where = self.netns or "the root network namespace"
                raise TerminatorError(
                    f"TLS terminator {self.name} in {where} did not listen on "
                    f"{', '.join(f'{h}:{p}' for h, p in addresses)}; last log lines:\n{self.log_tail()}"
                )
            time.sleep(0.02)

    @property
    def running(self) -> bool:
        return self.process is not None and process_alive(self.process.pid) and self.process.poll() is None

    def stop(self, grace: float = 3.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no log at {self.log})"
