"""One runnable pod from admission to removal, on its own thread: what a kubelet's pod worker does.

Steps:
1. Sandbox (retried every 2 s until it works, the pod waiting with the reason meanwhile): a pod IP (the one in the
   pod's status when it has one, else a free one of its node's subnet), the network namespace on the cluster
   bridge (network.py), the Service rules, hosts file and advertised-address listener of its namespace
   (services.py), the volumes (volumes.py; Secrets and ConfigMaps read from the apiserver at this moment).
   A host that cannot make sandboxes leaves every container waiting in CreatePodSandboxError naming what is
   missing; the pod never runs in any other way.
2. Init containers one after another, each to exit 0 (container.py restarts failed ones per restartPolicy); then
   all app containers, each driven by its ContainerRunner every tick (0.1 s): processes, probes, back-off.
3. Status: PodScheduled, Initialized, ContainersReady, Ready; phase by the kubelet's rules; podIP/podIPs, hostIP,
   startTime; container statuses from the runners. Written (strategic-merge patch of the status subresource
   carrying metadata.uid, so it never lands on a re-created pod of the same name) whenever it changes.
   A pod that reached Succeeded or Failed gives back its network (its processes are gone).
4. Graceful deletion: each running container gets preStop, SIGTERM, SIGKILL when the pod's grace period
   (deletionGracePeriodSeconds) ends; then the sandbox is removed (listener, processes left in the namespace,
   veth, namespace, pod files except logs) and `on_removed` deletes the pod object with a UID precondition.
   `kill()` (agent stopping, or the pod object gone) does the same at once, without touching the API.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes.client.rest import ApiException

from toolkit.targets.local import podspec, volumes
from toolkit.targets.local.container import Backoff, ContainerRunner, StartFailure
from toolkit.targets.local.launcher import ContainerLauncher, PodFiles, RunnableImages
from toolkit.targets.local.network import HostNetwork, NetworkError
from toolkit.targets.local.probes import ProbeResult, run_probe
from toolkit.targets.local.services import SandboxView, ServiceProxy
from toolkit.targets.local.stunnel import TerminatorError

LOG = logging.getLogger(__name__)
JsonDict = dict[str, Any]
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
SETUP_RETRY_SECONDS = 2.0


@dataclass
class PodContext:
    """What every pod worker of one agent shares."""

    core: Any
    host: HostNetwork | None
    proxy: ServiceProxy | None
    images: RunnableImages
    allocate_ip: Callable[[str, str, str | None], str]  # (uid, node, preferred) -> IP
    release_ip: Callable[[str], None]
    node_ip: Callable[[str], str]
    allocatable: Mapping[str, str]
    state_dir: Any  # Path
    backoff: Backoff
    problem: str | None  # why this host cannot make sandboxes (None: it can)
    on_removed: Callable[[str, str, str], None]  # (namespace, name, uid): delete the pod object
    on_finished: Callable[[str], None]  # (uid): the worker is done, its sandbox and address are gone
    tick_seconds: float = 0.1


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _condition(kind: str, true: bool, reason: str = "", message: str = "") -> JsonDict:
    condition: JsonDict = {"type": kind, "status": "True" if true else "False", "lastTransitionTime": _now()}
    if not true and reason:
        condition.update(reason=reason, message=message)
    return condition


def _succeeded(runner: ContainerRunner) -> bool:
    return runner.done and runner.state.get("terminated", {}).get("exitCode") == 0


class PodWorker:
    """See the module docstring."""

    def __init__(self, context: PodContext, pod: JsonDict) -> None:
        self.ctx = context
        metadata = pod["metadata"]
        self.uid, self.namespace, self.name = metadata["uid"], metadata["namespace"], metadata["name"]
        self.label = f"{self.name}_{self.namespace}({self.uid})"
        self._pod = pod
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._grace: float | None = None
        self._killed = False
        self._kill_grace = 0.0
        self.pod_ip = ""
        self.netns = ""
        self.files = PodFiles(
            context.state_dir / "pods" / f"{self.namespace}_{self.name}_{self.uid}",
            context.state_dir / "logs" / "pods" / f"{self.namespace}_{self.name}_{self.uid}",
        )
        self._volumes: dict[str, volumes.Volume] = {}
        self._runners: list[ContainerRunner] = []
        self._init_runners: list[ContainerRunner] = []
        self._sandbox_waiting: JsonDict | None = None
        self._last_status = ""
        self._transitions: dict[str, tuple[str, str]] = {}
        self._network_released = False
        self._thread = threading.Thread(target=self._run, name=f"pod-{self.namespace}-{self.name}", daemon=True)

    # -- control from the agent --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def update(self, pod: JsonDict) -> None:
        with self._lock:
            self._pod = pod

    def terminate(self, grace: float) -> None:
        with self._lock:
            if self._grace is None:
                self._grace = grace
        self._wake.set()

    def kill(self, grace: float = 0.0) -> None:
        """Stop the processes (SIGTERM, SIGKILL after `grace`) and remove the sandbox; no API writes."""
        with self._lock:
            if not self._killed:
                self._kill_grace = grace
            self._killed = True
        self._wake.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def pod(self) -> JsonDict:
        with self._lock:
            return self._pod

    # -- the worker thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        removed = False
        try:
            removed = self._live()
        except Exception:
            LOG.exception("pod %s/%s: worker failed", self.namespace, self.name)
        finally:
            for runner in [*self._init_runners, *self._runners]:
                runner.kill_now()
            self._teardown()
            self.ctx.on_finished(self.uid)
        if removed:
            self.ctx.on_removed(self.namespace, self.name, self.uid)

    def _terminating(self) -> bool:
        return self._grace is not None

    def _live(self) -> bool:
        """Run the pod until it is deleted (True: remove the object) or killed (False)."""
        while True:
            if self._killed:
                return False
            if self._terminating():
                return True  # deleted before it ever ran
            if self._ready_sandbox():
                break
            self._wake.wait(SETUP_RETRY_SECONDS)
            self._wake.clear()
        self._make_runners()
        runners = [*self._init_runners, *self._runners]
        stopping = False
        while True:
            if not stopping and (self._killed or self._terminating()):
                stopping = True
                killed = self._killed
                grace = self._kill_grace if killed else float(self._grace or 0)
                for runner in runners:
                    runner.stop(grace, None if killed else self._pre_stop)
            self._drive(time.monotonic())
            if not self._killed:
                status = self._status()
                self._report(status)
                if status["phase"] in ("Succeeded", "Failed") and not self._network_released:
                    self._release_network()
            if stopping and all(r.stopped for r in runners):
                return not self._killed
            self._wake.wait(self.ctx.tick_seconds)
            self._wake.clear()

    def _drive(self, now: float) -> None:
        pending_init = [r for r in self._init_runners if not _succeeded(r)]
        if pending_init:
            pending_init[0].step(now)
            for runner in self._runners:  # only to carry out a stop: nothing starts before init completes
                if runner.stopping:
                    runner.step(now)
            return
        for runner in self._runners:
            runner.step(now)

    # -- sandbox -----------------------------------------------------------------------------------------
    def _ready_sandbox(self) -> bool:
        if self.ctx.problem is not None or self.ctx.host is None or self.ctx.proxy is None:
            self._sandbox_waiting = {
                "reason": "CreatePodSandboxError",
                "message": self.ctx.problem or "the local pod runtime is not available",
            }
            self._report(self._status())
            return False
        try:
            self._make_sandbox(self.ctx.host, self.ctx.proxy)
        except (NetworkError, TerminatorError) as error:
            self._sandbox_waiting = {"reason": "CreatePodSandboxError", "message": str(error)}
        except podspec.ConfigError as error:
            self._sandbox_waiting = {"reason": error.reason, "message": str(error)}
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            message = f"{type(error).__name__}: {error}"
            self._sandbox_waiting = {"reason": "CreateContainerConfigError", "message": message}
        else:
            self._sandbox_waiting = None
            return True
        LOG.info("pod %s/%s: %s", self.namespace, self.name, self._sandbox_waiting["message"])
        self._report(self._status())
        return False

    def _make_sandbox(self, host: HostNetwork, proxy: ServiceProxy) -> None:
        pod = self.pod()
        if not self.pod_ip:
            preferred = (pod.get("status") or {}).get("podIP")
            self.pod_ip = self.ctx.allocate_ip(self.uid, pod["spec"]["nodeName"], preferred)
            self.netns = host.network.sandbox_name(self.pod_ip)
            self._network_released = False
        proxy.remove_sandbox(self.uid)
        host.create_sandbox(self.netns, self.pod_ip)
        self.files.etc.mkdir(parents=True, exist_ok=True)
        launcher = self._launcher()
        (self.files.etc / "hostname").write_text(launcher.hostname() + "\n")
        if not proxy.wait_synced(30):
            raise NetworkError("the Service and Endpoints lists did not arrive from the apiserver within 30 s")
        view = SandboxView(
            uid=self.uid, namespace=self.namespace, netns=self.netns, pod=pod, pod_ip=self.pod_ip,
            hosts=self.files.etc / "hosts", resolv=self.files.etc / "resolv.conf", directory=self.files.directory,
        )  # fmt: skip
        proxy.add_sandbox(view)
        sources = volumes.VolumeSources(self._secret, self._config_map_bytes, self._token)
        node = pod["spec"]["nodeName"]
        self._volumes = volumes.materialise(
            pod, self.files.volumes, sources, self.pod_ip, self.ctx.node_ip(node), self.ctx.allocatable
        )

    def _release_network(self) -> None:
        self._network_released = True
        if self.ctx.proxy is not None:
            self.ctx.proxy.remove_sandbox(self.uid)
        if self.ctx.host is not None and self.netns:
            self.ctx.host.delete_sandbox(self.netns)

    def _teardown(self) -> None:
        try:
            self._release_network()
        except NetworkError as error:
            LOG.warning("pod %s/%s: removing its sandbox: %s", self.namespace, self.name, error)
        if self.pod_ip:
            self.ctx.release_ip(self.uid)
        shutil.rmtree(self.files.directory, ignore_errors=True)

    # -- containers --------------------------------------------------------------------------------------
    def _launcher(self) -> ContainerLauncher:
        return ContainerLauncher(
            self.pod, self.ctx.images, self.files, self.netns, self._env_for, lambda: self._volumes
        )

    def _make_runners(self) -> None:
        pod = self.pod()
        spec = pod["spec"]
        launcher = self._launcher()
        policy = spec.get("restartPolicy") or "Always"
        grace = float(spec.get("terminationGracePeriodSeconds", 30))
        previous = {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses") or []}

        def runner(container: JsonDict, init: bool) -> ContainerRunner:
            restarts = 0 if init else int(previous.get(container["name"], {}).get("restartCount", 0))
            return ContainerRunner(
                container, self.label, policy, launcher, lambda: self.pod_ip, grace, self.ctx.backoff, init, restarts
            )

        self._init_runners = [runner(c, True) for c in spec.get("initContainers") or []]
        self._runners = [runner(c, False) for c in spec.get("containers") or []]

    def _env_for(self, container: JsonDict) -> dict[str, str]:
        pod = self.pod()
        sources = podspec.Sources(self._secret, self._config_map_text)
        services = self.ctx.proxy.services() if self.ctx.proxy is not None else []
        node = pod["spec"]["nodeName"]
        return podspec.container_env(
            pod, container, sources, services, self.pod_ip, self.ctx.node_ip(node), self.ctx.allocatable
        )

    def _pre_stop(self, container: JsonDict, pid: int, grace: float) -> None:
        handler = (container.get("lifecycle") or {}).get("preStop") or {}
        if handler.get("exec"):
            self._launcher().exec_in(container, pid, [str(p) for p in handler["exec"].get("command") or []], grace)
        elif handler.get("httpGet"):
            spec = podspec.ProbeSpec("httpGet", handler["httpGet"], 0, 1, grace, 1, 1)
            result: ProbeResult = run_probe(spec, container, self.pod_ip, lambda argv, timeout: 0)
            LOG.info("pod %s/%s: preStop %s", self.namespace, self.name, result.message)

    # -- API reads ---------------------------------------------------------------------------------------
    def _read(self, kind: str, name: str) -> JsonDict | None:
        call = self.ctx.core.read_namespaced_secret if kind == "secret" else self.ctx.core.read_namespaced_config_map
        try:
            response = call(name, self.namespace, _preload_content=False, _request_timeout=(5, 15))
        except ApiException as error:
            if error.status == 404:
                return None
            message = f"reading {kind} {self.namespace}/{name}: {error.status} {error.reason}"
            raise podspec.ConfigError(message) from None
        data: JsonDict = json.loads(response.data)
        return data

    def _secret(self, name: str) -> dict[str, bytes] | None:
        found = self._read("secret", name)
        if found is None:
            return None
        return {key: base64.b64decode(value) for key, value in (found.get("data") or {}).items()}

    def _config_map_text(self, name: str) -> dict[str, str] | None:
        found = self._read("configmap", name)
        return None if found is None else dict(found.get("data") or {})

    def _config_map_bytes(self, name: str) -> dict[str, bytes] | None:
        found = self._read("configmap", name)
        if found is None:
            return None
        data = {key: value.encode() for key, value in (found.get("data") or {}).items()}
        data.update({key: base64.b64decode(value) for key, value in (found.get("binaryData") or {}).items()})
        return data

    def _token(self, account: str, audience: str, expiration: int) -> str:
        body = {
            "spec": {
                "audiences": [audience] if audience else [],
                "expirationSeconds": expiration,
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": self.name, "uid": self.uid},
            }
        }
        try:
            answer = self.ctx.core.create_namespaced_service_account_token(account, self.namespace, body)
        except ApiException as error:
            raise podspec.ConfigError(
                f"requesting a token for service account {self.namespace}/{account}: {error.status} {error.reason}"
            ) from None
        return str(answer.status.token)

    # -- status ------------------------------------------------------------------------------------------
    def _status(self) -> JsonDict:
        if self._sandbox_waiting is not None or not self._runners:
            return self._waiting_status(self._sandbox_waiting or {"reason": "ContainerCreating"})
        return self._running_status()

    def _waiting_status(self, waiting: JsonDict) -> JsonDict:
        """No container runs yet: every container waits with the sandbox's reason."""
        pod = self.pod()
        spec = pod["spec"]

        def waiting_on(container: JsonDict) -> JsonDict:
            return {
                "name": container["name"], "image": container.get("image", ""), "imageID": "", "ready": False,
                "started": False, "restartCount": 0, "state": {"waiting": waiting},
            }  # fmt: skip

        message = str(waiting.get("message", waiting["reason"]))
        status: JsonDict = {
            "phase": "Pending",
            "conditions": [
                _condition("PodScheduled", True),
                _condition("Initialized", not spec.get("initContainers"), "ContainersNotInitialized", message),
                _condition("ContainersReady", False, "ContainersNotReady", message),
                _condition("Ready", False, "ContainersNotReady", message),
            ],
            "containerStatuses": [waiting_on(c) for c in spec.get("containers") or []],
            "hostIP": self.ctx.node_ip(spec["nodeName"]),
            "startTime": (pod.get("status") or {}).get("startTime") or _now(),
        }
        if spec.get("initContainers"):
            status["initContainerStatuses"] = [waiting_on(c) for c in spec["initContainers"]]
        return status

    def _running_status(self) -> JsonDict:
        pod = self.pod()
        spec = pod["spec"]
        init_done = all(_succeeded(r) for r in self._init_runners)
        statuses = {}
        for runner in self._runners:
            status_one = runner.status()
            if not init_done:
                status_one["state"] = {"waiting": {"reason": "PodInitializing"}}
            statuses[runner.name] = status_one
        init_statuses = {r.name: r.status() for r in self._init_runners}
        phase = podspec.pod_phase(spec, statuses, init_statuses)
        not_ready = [r.name for r in self._runners if not r.ready]
        ready = init_done and not not_ready and phase == "Running" and not self._terminating()
        if phase in ("Succeeded", "Failed"):
            reason, message = "PodCompleted", ""
        else:
            reason, message = "ContainersNotReady", f"containers with unready status: [{' '.join(not_ready)}]"
        pending_init = [r.name for r in self._init_runners if not r.done]
        initializing = f"containers with incomplete status: [{' '.join(pending_init)}]"
        status = {
            "phase": phase,
            "conditions": [
                _condition("PodScheduled", True),
                _condition("Initialized", init_done, "ContainersNotInitialized", initializing),
                _condition("ContainersReady", ready, reason, message),
                _condition("Ready", ready, reason, message),
            ],
            "containerStatuses": list(statuses.values()),
            "hostIP": self.ctx.node_ip(spec["nodeName"]),
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": (pod.get("status") or {}).get("startTime") or _now(),
        }
        if init_statuses:
            status["initContainerStatuses"] = list(init_statuses.values())
        return status

    def _report(self, status: JsonDict) -> None:
        fingerprint = json.dumps(
            {**status, "conditions": [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                                      for c in status["conditions"]]},
            sort_keys=True,
        )  # fmt: skip
        if fingerprint == self._last_status:
            return
        for condition in status["conditions"]:  # a transition time moves only when the condition flips
            previous = self._transitions.get(condition["type"])
            if previous is not None and previous[0] == condition["status"]:
                condition["lastTransitionTime"] = previous[1]
            self._transitions[condition["type"]] = (condition["status"], condition["lastTransitionTime"])
        try:
            self.ctx.core.patch_namespaced_pod_status(
                self.name, self.namespace, {"metadata": {"uid": self.uid}, "status": status},
                _content_type=STRATEGIC_MERGE,
            )  # fmt: skip
            self._last_status = fingerprint
        except ApiException as error:
            if error.status in (404, 409, 422):  # gone, or the name belongs to another pod now
                LOG.info("pod %s/%s: no longer there (%s); stopping it", self.namespace, self.name, error.status)
                self._killed = True
                return
            LOG.warning("pod %s/%s: status update failed: %s %s", self.namespace, self.name, error.status, error.reason)
        except (urllib3.exceptions.HTTPError, OSError) as error:
            LOG.warning("pod %s/%s: status update failed (%s); retrying", self.namespace, self.name, error)


__all__ = ["PodContext", "PodWorker", "StartFailure"]
