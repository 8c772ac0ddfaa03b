"""Probes as the kubelet runs them: one attempt (`run_probe`) and the threshold bookkeeping (`ProbeTracker`).

An attempt, from the node (the root network namespace), against the pod's IP:
- httpGet: GET `scheme://host:port/path` (host defaults to the pod IP; port a number or a container port's name;
  httpHeaders sent; HTTPS without certificate verification, as the kubelet does); success is a status in
  [200, 400); redirects are not followed (a 3xx is a success);
- tcpSocket: a TCP connection opens within timeoutSeconds;
- exec: the command runs inside the container (its namespaces, user and environment) and exits 0 within
  timeoutSeconds (enforced, as the kubelet does since 1.20).

`ProbeTracker` (one per probe and container start): the first attempt is due at start + initialDelaySeconds, then
one every periodSeconds. The result flips only after successThreshold consecutive successes or failureThreshold
consecutive failures. Initial results are the kubelet's: readiness and startup start as failure (not ready, not
started), liveness as success.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from toolkit.targets.local.podspec import ConfigError, ProbeSpec, container_port

ExecRunner = Callable[[list[str], float], int]  # (argv, timeout seconds) -> exit code; raises TimeoutError


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    message: str


def run_probe(spec: ProbeSpec, container: Mapping[str, Any], pod_ip: str, exec_runner: ExecRunner) -> ProbeResult:
    """One attempt of `spec` (see the module docstring)."""
    action = spec.action
    try:
        if spec.kind == "exec":
            command = [str(part) for part in action.get("command") or []]
            code = exec_runner(command, spec.timeout)
            return ProbeResult(code == 0, f"exec {command} exited with {code}")
        port = container_port(container, action.get("port", 0))
        host = str(action.get("host") or pod_ip)
        if spec.kind == "tcpSocket":
            with socket.create_connection((host, port), timeout=spec.timeout):
                return ProbeResult(True, f"tcp {host}:{port} open")
        return _http_probe(action, host, port, spec.timeout)
    except ConfigError as error:
        return ProbeResult(False, str(error))
    except TimeoutError:
        return ProbeResult(False, f"{spec.kind} probe timed out after {spec.timeout:g}s")
    except OSError as error:
        return ProbeResult(False, f"{spec.kind} probe failed: {error}")


def _http_probe(action: Mapping[str, Any], host: str, port: int, timeout: float) -> ProbeResult:
    scheme = str(action.get("scheme") or "HTTP").upper()
    path = str(action.get("path") or "/")
    if not path.startswith("/"):
        path = "/" + path
    connection: http.client.HTTPConnection
    if scheme == "HTTPS":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"User-Agent": "kube-probe/1.20"}
    headers.update({str(h["name"]): str(h["value"]) for h in action.get("httpHeaders") or []})
    try:
        connection.request("GET", path, headers=headers)
        status = connection.getresponse().status
    except (http.client.HTTPException, ssl.SSLError) as error:
        return ProbeResult(False, f"GET {scheme.lower()}://{host}:{port}{path}: {error}")
    finally:
        connection.close()
    return ProbeResult(200 <= status < 400, f"GET {scheme.lower()}://{host}:{port}{path}: HTTP {status}")


class ProbeTracker:
    """Schedule and thresholds of one probe for one run of a container (see the module docstring)."""

    def __init__(self, spec: ProbeSpec, started_at: float, initial: bool) -> None:
        self.spec = spec
        self.result = initial
        self.next_due = started_at + spec.initial_delay
        self.successes = 0
        self.failures = 0
        self.last_message = ""

    def due(self, now: float) -> bool:
        return now >= self.next_due

    def record(self, outcome: ProbeResult, now: float) -> bool:
        """Count one attempt; return True when the probe's result changed."""
        self.next_due = now + self.spec.period
        self.last_message = outcome.message
        if outcome.ok:
            self.successes += 1
            self.failures = 0
            if not self.result and self.successes >= self.spec.success_threshold:
                self.result = True
                return True
        else:
            self.failures += 1
            self.successes = 0
            if self.result and self.failures >= self.spec.failure_threshold:
                self.result = False
                return True
        return False

    @property
    def failed_out(self) -> bool:
        """failureThreshold consecutive failures (liveness and startup: the container is killed)."""
        return self.failures >= self.spec.failure_threshold
