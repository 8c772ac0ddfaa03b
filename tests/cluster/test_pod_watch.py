"""The engine's waits on a real cluster follow a pod watch: they end as soon as a pod changes, and the watch
survives an apiserver restart (reconnect, resume or re-list)."""

from __future__ import annotations

import time

import pytest
from kubernetes import client
from local_cluster_helpers import pod_template

from toolkit.targets.kube.client import PodWatch

pytestmark = pytest.mark.cluster


def make_pod(core: client.CoreV1Api, namespace: str, name: str) -> None:
    template = pod_template(name, "registry.local/app:1.0")
    core.create_namespaced_pod(
        namespace, {"metadata": {"name": name, **template["metadata"]}, "spec": template["spec"]}
    )


def test_wait_ends_on_a_pod_change_and_the_watch_survives_an_apiserver_restart(local_env, namespace):
    core = client.CoreV1Api(local_env.api_client)
    watch = PodWatch(local_env.api_client, namespace).start()
    try:
        time.sleep(1.0)
        watch.wait(0)  # forget anything seen while starting
        started = time.monotonic()
        assert not watch.wait(1.0), "woken without any change"
        assert time.monotonic() - started >= 0.9

        started = time.monotonic()
        make_pod(core, namespace, "first")
        assert watch.wait(30.0), "no wake-up for a created pod"
        first_wake = time.monotonic() - started
        assert first_wake < 5.0

        local_env.control_plane.stop_component("kube-apiserver", grace_seconds=5.0)
        time.sleep(1.0)
        local_env.control_plane.start_component("kube-apiserver")
        watch.wait(0)
        started = time.monotonic()
        make_pod(core, namespace, "second")
        deadline = time.monotonic() + 40
        woke = False
        while time.monotonic() < deadline and not woke:
            woke = watch.wait(2.0) and any(
                p.metadata.name == "second" for p in core.list_namespaced_pod(namespace).items
            )
        assert woke, "the watch did not resume after the apiserver restart"
        assert watch.reconnects + watch.relists >= 2
        print(
            f"\npod watch: first wake {first_wake:.2f} s; after restart {time.monotonic() - started:.2f} s; "
            f"{watch.events} events, {watch.reconnects} reconnects, {watch.relists} lists"
        )
    finally:
        watch.stop()
