"""One container of a runnable pod across its restarts: process, probes, back-off and the status a kubelet reports.

State machine (`step(now)` advances it; the pod's thread calls it every tick):
    waiting(ContainerCreating) --start--> running --exit--> restart? --yes, first time or back-off over--> running
          |  start fails: waiting(CreateContainerConfigError | CreateContainerError | StartError), retried        |
          |                                                       --yes, in back-off--> waiting(CrashLoopBackOff)
          |                                                       --no (restartPolicy)--> terminated (final)
- Restart rules: restartPolicy Always restarts every exit; OnFailure only a non-zero exit; Never none. Init
  containers restart on failure unless the policy is Never, and are done after exit 0.
- Back-off is the kubelet's: the first restart is immediate; after each later exit the container waits the
  current back-off counted from the exit (initial, doubled each restart, capped), shown as waiting
  CrashLoopBackOff with the kubelet's message; a back-off not renewed for 2 x the cap starts over.
- Probes (probes.py): startupProbe first (liveness and readiness wait for it); failureThreshold failures of the
  startup or liveness probe kill the container (SIGTERM to its process group, SIGKILL after the pod's grace
  period) and it restarts under the same rules; readiness decides `ready`. No readiness probe: ready while
  running and started.
- `restartCount` counts restarts done (it grows when the new run starts, as the kubelet's does, so a container
  waiting in CrashLoopBackOff shows the count of its last run); each run logs to `<restartCount>.log`;
  `lastState.terminated` keeps the previous run's exit (code 128+signal for a process killed by a signal, reason
  Completed for 0, Error otherwise).
- `stop(grace)` (pod deletion): preStop hook (exec or httpGet) first, then SIGTERM, SIGKILL when `grace` runs
  out; `stopped` is True once the process is gone. Nothing restarts after `stop`.
The container never touches the API: the pod's worker reads `status()` and patches the pod.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from toolkit.targets.local.podspec import ConfigError, ProbeSpec, probe_spec
from toolkit.targets.local.probes import ProbeResult, ProbeTracker, run_probe

JsonDict = dict[str, Any]
CONTAINER_ID_SCHEME = "toolkit-local://"


class StartFailure(Exception):
    """The process could not be started (a reason of the kubelet's vocabulary and a message)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Launcher(Protocol):
    """What the pod offers its containers: start one, run a command inside a running one."""

    def start(self, container: JsonDict, restart_count: int) -> subprocess.Popen[bytes]: ...

    def exec_in(self, container: JsonDict, pid: int, argv: list[str], timeout: float) -> int: ...


@dataclass(frozen=True)
class Backoff:
    initial: float = 10.0
    maximum: float = 300.0


def _rfc3339(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


class ContainerRunner:
    """See the module docstring."""

    def __init__(
        self,
        container: JsonDict,
        pod_label: str,
        restart_policy: str,
        launcher: Launcher,
        pod_ip: Callable[[], str],
        grace_seconds: float,
        backoff: Backoff,
        init: bool = False,
        restart_count: int = 0,
    ) -> None:
        self.container = container
        self.name = str(container["name"])
        self.pod_label = pod_label
        self.restart_policy = restart_policy
        self.launcher = launcher
        self.pod_ip = pod_ip
        self.grace_seconds = grace_seconds
        self.backoff = backoff
        self.init = init
        self.restart_count = restart_count
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0  # wall clock of the current run
        self.state: JsonDict = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: JsonDict = {}
        self.ready = False
        self.started = False
        self.done = False  # terminated for good (no restart follows)
        self.stopping = False
        self.kill_at: float | None = None  # monotonic deadline of a SIGTERM in progress
        self.kill_reason = ""
        self.retry_at = 0.0  # monotonic: next start attempt (back-off or configuration retry)
        self._backoff_delay: float | None = None
        self._backoff_updated = 0.0
        self._exited_at = 0.0
        self._restart_pending = False
        self._probes: dict[str, ProbeSpec | None] = {}
        self._trackers: dict[str, ProbeTracker] = {}
        self.probe_log: list[str] = []

    # -- status ------------------------------------------------------------------------------------------
    def status(self) -> JsonDict:
        image = str(self.container.get("image", ""))
        status: JsonDict = {
            "name": self.name,
            "image": image,
            "imageID": f"{CONTAINER_ID_SCHEME}{image}",
            "containerID": f"{CONTAINER_ID_SCHEME}{self.pod_label}/{self.name}/{self.restart_count}",
            "ready": self.ready,
            "started": self.started and "running" in self.state,
            "restartCount": self.restart_count,
            "state": self.state,
        }
        if self.last_state:
            status["lastState"] = self.last_state
        return status

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.running and self.process is not None else None

    # -- driving -----------------------------------------------------------------------------------------
    def step(self, now: float) -> bool:
        """Advance the state machine once (see the module docstring); True when the status changed."""
        before = repr(self.status())
        if self.process is not None:
            if self.process.poll() is not None:
                self._on_exit(now)
            elif self.kill_at is not None and now >= self.kill_at:
                self._signal(signal.SIGKILL)
            elif not self.stopping and self.kill_at is None:
                self._probe(now)
        elif not self.done and not self.stopping and now >= self.retry_at:
            self._start(now)
        return repr(self.status()) != before

    def _start(self, now: float) -> None:
        stale = self._exited_at - self._backoff_updated > 2 * self.backoff.maximum
        if self._backoff_delay is not None and self._exited_at and stale:
            self._backoff_delay = None
        try:
            kinds = ("startupProbe", "livenessProbe", "readinessProbe")
            self._probes = {kind: probe_spec(self.container.get(kind)) for kind in kinds}
            count = self.restart_count + 1 if self._restart_pending else self.restart_count
            self.process = self.launcher.start(self.container, count)
        except (ConfigError, StartFailure) as error:
            self.state = {"waiting": {"reason": error.reason, "message": str(error)}}
            self.retry_at = now + 2.0
            return
        self.restart_count = count
        self._restart_pending = False
        if self._exited_at:  # a restart: the back-off grows for the next one
            if self._backoff_delay is None:
                self._backoff_delay = self.backoff.initial
            else:
                self._backoff_delay = min(self._backoff_delay * 2, self.backoff.maximum)
            self._backoff_updated = now
        self.started_at = time.time()
        self.state = {"running": {"startedAt": _rfc3339(self.started_at)}}
        self.kill_at = None
        self.kill_reason = ""
        startup = self._probes["startupProbe"]
        self._trackers = {}
        if startup is not None:
            self._trackers["startupProbe"] = ProbeTracker(startup, now, initial=False)
        self.started = startup is None
        self._arm_after_startup(now)

    def _arm_after_startup(self, now: float) -> None:
        if not self.started:
            self.ready = False
            return
        readiness, liveness = self._probes["readinessProbe"], self._probes["livenessProbe"]
        if readiness is not None:
            self._trackers["readinessProbe"] = ProbeTracker(readiness, now, initial=False)
        if liveness is not None:
            self._trackers["livenessProbe"] = ProbeTracker(liveness, now, initial=True)
        self.ready = readiness is None and not self.init

    def _attempt(self, spec: ProbeSpec) -> ProbeResult:
        pid = self.pid

        def exec_runner(argv: list[str], timeout: float) -> int:
            if pid is None:
                raise OSError("container is not running")
            return self.launcher.exec_in(self.container, pid, argv, timeout)

        return run_probe(spec, self.container, self.pod_ip(), exec_runner)

    def _probe(self, now: float) -> None:
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            tracker = self._trackers.get(kind)
            if tracker is None or not tracker.due(now):
                continue
            outcome = self._attempt(tracker.spec)
            changed = tracker.record(outcome, time.monotonic())
            if not outcome.ok:
                self.probe_log.append(f"{kind} failed: {outcome.message}")
                del self.probe_log[:-20]
            if kind == "startupProbe":
                if changed and tracker.result:
                    self.started = True
                    del self._trackers["startupProbe"]
                    self._arm_after_startup(now)
                    return
                if tracker.failed_out:
                    self._kill(f"Startup probe failed: {outcome.message}")
                    return
            elif kind == "livenessProbe" and changed and not tracker.result:
                self._kill(f"Liveness probe failed: {outcome.message}")
                return
            elif kind == "readinessProbe" and changed:
                self.ready = tracker.result

    def _kill(self, why: str) -> None:
        self.kill_reason = why
        self.ready = False
        self._signal(signal.SIGTERM)
        self.kill_at = time.monotonic() + self.grace_seconds

    def _signal(self, signum: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def _on_exit(self, now: float) -> None:
        assert self.process is not None
        code = exit_code(self.process.returncode)
        self.process = None
        self._exited_at = now
        self.kill_at = None
        self.ready = False
        self.started = False
        self._trackers = {}
        terminated: JsonDict = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": _rfc3339(self.started_at),
            "finishedAt": _rfc3339(time.time()),
            "containerID": f"{CONTAINER_ID_SCHEME}{self.pod_label}/{self.name}/{self.restart_count}",
        }
        if self.kill_reason:
            terminated["message"] = self.kill_reason
        self.kill_reason = ""
        if self.stopping or not self._restarts_after(code):
            self.state = {"terminated": terminated}
            self.done = True
            return
        self.last_state = {"terminated": terminated}
        self._restart_pending = True
        wait = 0.0 if self._backoff_delay is None else self._backoff_delay
        if self._backoff_delay is not None and now - self._backoff_updated > 2 * self.backoff.maximum:
            wait = 0.0
        self.retry_at = now + wait
        if wait > 0:
            self.state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {wait:g}s restarting failed container={self.name} pod={self.pod_label}",
                }
            }
        else:
            self.state = {"waiting": {"reason": "ContainerCreating"}}

    def _restarts_after(self, code: int) -> bool:
        if self.init:
            return code != 0 and self.restart_policy != "Never"
        return self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and code != 0)

    # -- stopping ----------------------------------------------------------------------------------------
    def stop(self, grace: float, pre_stop: Callable[[JsonDict, int, float], None] | None = None) -> None:
        """Begin a graceful stop: preStop (bounded by `grace`), SIGTERM, SIGKILL at the deadline (see `step`)."""
        self.stopping = True
        self.ready = False
        if self.process is None or self.process.poll() is not None:
            if self.process is None and not self.done:
                self.done = True
            return
        deadline = time.monotonic() + grace
        if pre_stop is not None and self.container.get("lifecycle", {}).get("preStop"):
            with contextlib.suppress(Exception):
                pre_stop(self.container, self.process.pid, grace)
        self._signal(signal.SIGTERM)
        self.kill_at = deadline

    @property
    def stopped(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def kill_now(self) -> None:
        """SIGKILL and reap (the agent stops, or the pod was removed without grace)."""
        self.stopping = True
        if self.process is not None:
            self._signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
