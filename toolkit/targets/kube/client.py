"""Client plumbing shared by the Kubernetes adapters: API clients for a kubeconfig or the pod's service account,
retries of transient API errors, the real clock and the pod watch that wakes it.

`retrying` retries conflicts (409, unless a precondition was meant), throttling (429), server errors (5xx) and
connection errors with exponential backoff for up to `RetryPolicy.deadline_seconds`; what remains raises the
caller's error (`ActionError` by default) naming the call and the cause (`_describe`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from toolkit.engine.ports import ActionError
from toolkit.targets.process import wait_or_wake, wake_also

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
RETRYABLE_STATUS = frozenset({409, 429, 500, 502, 503, 504})
USER_AGENT = "toolkit-orchestrator"

T = TypeVar("T")


class ObserveError(RuntimeError):
    """The cluster could not be observed (after retries); the message names the call and the cause."""


class RealClock:
    """Monotonic seconds and a real sleep: the one place where a real run waits. A stop request (Ctrl-C, SIGTERM)
    ends a wait at once (`toolkit.targets.process.wake`); the engine then checks why it woke."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            wait_or_wake(seconds)

    def wait(self, seconds: float) -> None:
        self.sleep(seconds)


class PodWatch:
    """Wakes the engine as soon as a pod of the namespace changes, so waiting follows the cluster's own
    notifications instead of fixed sleeps (the engine's poll interval is only the longest wait).

    A background thread keeps one watch on the namespace's pods: resumed from the last resourceVersion it saw,
    re-listed on 410 Gone (the resourceVersion is too old), reconnected with backoff when the apiserver goes away
    (a restart), and stopped with the target. Observation itself stays a fresh LIST: the watch only says *when*.
    """

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._changed = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pod-watch-{namespace}", daemon=True)
        self.events = 0
        self.relists = 0
        self.reconnects = 0

    def start(self) -> PodWatch:
        wake_also(self._changed)  # a stop request wakes the engine's wait like a pod change does
        self._thread.start()
        return self

    def stop(self) -> None:
        wake_also(self._changed, listen=False)
        self._stopping.set()
        self._thread.join(timeout=5)

    def wait(self, seconds: float) -> bool:
        """Block until a pod changed or `seconds` passed; True when woken by a change."""
        woke = self._changed.wait(max(0.0, seconds))
        self._changed.clear()
        return woke

    def _run(self) -> None:
        resource_version: str | None = None
        delay = 0.2
        while not self._stopping.is_set():
            try:
                if resource_version is None:
                    listed = self._core.list_namespaced_pod(self._namespace)
                    resource_version = listed.metadata.resource_version
                    self.relists += 1
                stream = watch.Watch()
                for event in stream.stream(
                    self._core.list_namespaced_pod,
                    self._namespace,
                    resource_version=resource_version,
                    timeout_seconds=30,
                    _request_timeout=40,
                ):
                    if self._stopping.is_set():
                        stream.stop()
                        break
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        code = obj.get("code") if isinstance(obj, dict) else None
                        if code == 410:
                            resource_version = None
                            break
                        continue
                    resource_version = obj.metadata.resource_version
                    self.events += 1
                    self._changed.set()
                delay = 0.2
            except ApiException as exc:
                if exc.status == 410:
                    resource_version = None
                    continue
                self.reconnects += 1
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)
            except Exception:  # connection refused or reset while the apiserver restarts
                self.reconnects += 1
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)


class WatchingClock(RealClock):
    """A real clock whose `wait` returns as soon as the pod watch reports a change."""

    def __init__(self, pod_watch: PodWatch) -> None:
        self._watch = pod_watch

    def wait(self, seconds: float) -> None:
        self._watch.wait(seconds)


@dataclass(frozen=True)
class RetryPolicy:
    first_delay: float = 0.2
    max_delay: float = 5.0
    deadline_seconds: float = 60.0


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        reason = exc.reason or ""
        try:
            body = json.loads(exc.body or "{}")
            reason = body.get("message") or reason
        except (TypeError, ValueError):
            pass
        return f"HTTP {exc.status}: {reason}"
    return f"{type(exc).__name__}: {exc}"


def retrying(
    what: str,
    call: Callable[[], T],
    policy: RetryPolicy = RetryPolicy(),
    retry_conflicts: bool = True,
    error: type[Exception] = ActionError,
    retry_statuses: frozenset[int] = RETRYABLE_STATUS,
) -> T:
    """Run `call`, retrying transient failures with exponential backoff until the policy's deadline.

    Retried: `retry_statuses` (429, 5xx, 409 by default; a 409 only with `retry_conflicts`, otherwise it is returned
    to the caller at once, as is a 429 an eviction must see), connection errors. Anything else, or a transient
    failure past the deadline, raises `error` naming `what`."""
    deadline = time.monotonic() + policy.deadline_seconds
    delay = policy.first_delay
    attempts = 0
    while True:
        attempts += 1
        try:
            return call()
        except ApiException as exc:
            if exc.status not in retry_statuses or (exc.status == 409 and not retry_conflicts):
                raise
            last: BaseException = exc
        except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError, OSError) as exc:
            last = exc
        if time.monotonic() + delay > deadline:
            raise error(f"kubernetes: {what} failed after {attempts} attempts: {_describe(last)}") from None
        time.sleep(delay)
        delay = min(delay * 2, policy.max_delay)


def api_client_for(kubeconfig: str | None, context: str | None) -> client.ApiClient:
    """A client for a kubeconfig file and context; in a pod with neither, the in-cluster service account."""
    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        api = client.ApiClient(in_cluster_configuration())
    else:
        api = config.new_client_from_config(config_file=kubeconfig, context=context)
        _send_bearer_token(api.configuration)
    api.user_agent = USER_AGENT  # the apiserver's audit log tells the orchestrator's calls from others'
    return api


def _send_bearer_token(configuration: client.Configuration) -> client.Configuration:
    """kubernetes 36.0.0's generated client sends the token kept under api_key['BearerToken'], while its own config
    loaders (in-cluster ServiceAccount, a kubeconfig `token:`) keep it under api_key['authorization']
    (kubernetes-client/python#2582, #2584): unbridged, every token-authenticated request goes out without an
    Authorization header, as system:anonymous, and the orchestrator Job is refused everything. Keep both keys equal,
    also after the loaders' refresh hook re-reads a rotated token (an exec plugin's such as EKS's, a projected
    ServiceAccount token): that hook installs itself again each time it runs, so it is wrapped again each time.
    Harmless on a client version that reads either key."""
    loaders: list[Any] = [configuration.refresh_api_key_hook]

    def refresh(conf: Any) -> None:
        if loaders[0] is not None:
            loaders[0](conf)
            if conf.refresh_api_key_hook is not refresh:  # the loader put its own hook back: keep it, wrapped
                loaders[0] = conf.refresh_api_key_hook
                conf.refresh_api_key_hook = refresh
        scheme, _, token = str(conf.api_key.get("authorization") or "").strip().partition(" ")
        if token:  # the in-cluster loader writes `bearer <token>`: sent as the scheme is spelled (RFC 6750)
            conf.api_key["BearerToken"] = f"{scheme.capitalize()} {token.strip()}"

    if configuration.api_key.get("authorization"):
        refresh(configuration)
        configuration.refresh_api_key_hook = refresh
    return configuration


def in_cluster_configuration(
    token_file: str = SERVICE_ACCOUNT_DIR + "/token", ca_file: str = SERVICE_ACCOUNT_DIR + "/ca.crt"
) -> client.Configuration:
    """The pod's service account as a client configuration: the apiserver from KUBERNETES_SERVICE_HOST/PORT, its CA,
    and the account's token sent as `Authorization: Bearer`, re-read as the loader refreshes it."""
    from kubernetes.config.incluster_config import InClusterConfigLoader

    configuration = client.Configuration()
    InClusterConfigLoader(token_filename=token_file, cert_filename=ca_file).load_and_set(configuration)
    return _send_bearer_token(configuration)


# ---------------------------------------------------------------------------------------------- object metadata


def _labels(obj: Any) -> dict[str, str]:
    return dict(obj.metadata.labels or {})


def _annotations(obj: Any) -> dict[str, str]:
    return dict(obj.metadata.annotations or {})
