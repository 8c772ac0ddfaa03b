"""The kubelet's derivations the local pod runtime reproduces (toolkit.targets.local.podspec and kubeproxy), on plain
objects: $(VAR) expansion, env from every source with its errors, downward API rounding, identity, phase, Service
rules and cluster names."""

from __future__ import annotations

from fractions import Fraction

import pytest

from toolkit.targets.local import kubeproxy
from toolkit.targets.local.podspec import (
    ConfigError,
    Sources,
    container_argv,
    container_env,
    expand,
    image_repository,
    parse_quantity,
    pod_phase,
    resource_value,
    run_as,
    service_link_env,
)

ALLOCATABLE = {"cpu": "32", "memory": "128Gi", "ephemeral-storage": "200Gi"}


def lookup(values: dict[str, str]):
    return values.get


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "alpha"),
        ("x-$(A)-y", "x-alpha-y"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$alpha"),
        ("$(MISSING)", "$(MISSING)"),
        ("$(A", "$(A"),
        ("$A", "$A"),
        ("$", "$"),
        ("a$", "a$"),
        ("$()", "$()"),
        ("$(A)$(B)", "alphabeta"),
    ],
)
def test_expansion_follows_kubernetes(text: str, expected: str) -> None:
    assert expand(text, lookup({"A": "alpha", "B": "beta"})) == expected


@pytest.mark.parametrize(
    ("text", "value"),
    [("250m", Fraction(1, 4)), ("1Gi", 2**30), ("64Mi", 64 * 2**20), ("2", 2), ("1e3", 1000), ("1.5k", 1500)],
)
def test_quantities(text: str, value: Fraction) -> None:
    assert parse_quantity(text) == value


def test_resource_field_refs_round_up_and_default_limits_to_the_node() -> None:
    container = {"name": "c", "resources": {"requests": {"cpu": "250m", "memory": "100M"}, "limits": {"memory": "1Gi"}}}
    assert resource_value({"resource": "requests.cpu", "divisor": "1m"}, container, ALLOCATABLE) == "250"
    assert resource_value({"resource": "requests.cpu"}, container, ALLOCATABLE) == "1"  # ceil(0.25)
    assert resource_value({"resource": "limits.cpu"}, container, ALLOCATABLE) == "32"  # the node's allocatable
    assert resource_value({"resource": "limits.memory", "divisor": "1Mi"}, container, ALLOCATABLE) == "1024"
    assert resource_value({"resource": "requests.memory", "divisor": "1Mi"}, container, ALLOCATABLE) == "96"
    with pytest.raises(ConfigError, match="unsupported resourceFieldRef"):
        resource_value({"resource": "limits.gpu"}, container, ALLOCATABLE)


POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "web"}},
    "spec": {"nodeName": "node-1", "serviceAccountName": "default", "containers": []},
}


def sources(secrets: dict | None = None, maps: dict | None = None) -> Sources:
    secrets = secrets or {}
    maps = maps or {}
    return Sources(secret=secrets.get, config_map=maps.get)


def test_env_from_every_source_in_kubelet_order() -> None:
    container = {
        "name": "c",
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}, {"secretRef": {"name": "s"}}],
        "env": [
            {"name": "A", "value": "$(password)-$(WEB_SERVICE_HOST)"},
            {"name": "password", "value": "overridden"},
            {"name": "B", "value": "$(password)"},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
            {"name": "M", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "mode"}}},
            {"name": "O", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "none", "optional": True}}},
            {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "E", "value": ""},
        ],
    }
    services = [
        {"metadata": {"namespace": "ns", "name": "web"}, "spec": {"clusterIP": "10.0.0.5", "ports": [{"port": 80}]}},
        {"metadata": {"namespace": "ns", "name": "headless"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}},
    ]
    env = container_env(
        POD, container, sources({"s": {"password": b"pw", "9x": b"bad"}}, {"cm": {"mode": "fast"}}), services,
        "10.1.1.2", "10.240.1.1", ALLOCATABLE,
    )  # fmt: skip
    assert env["A"] == "pw-10.0.0.5" and env["B"] == "overridden" and env["password"] == "overridden"
    assert (env["S"], env["M"], env["CM_mode"], env["N"], env["IP"], env["E"]) == (
        "pw",
        "fast",
        "fast",
        "web",
        "10.1.1.2",
        "",
    )
    assert "O" not in env and "9x" not in env and "HEADLESS_SERVICE_HOST" not in env
    assert env["WEB_PORT_80_TCP"] == "tcp://10.0.0.5:80"


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        ({"secretKeyRef": {"name": "gone", "key": "k"}}, 'secret "gone" not found'),
        ({"secretKeyRef": {"name": "s", "key": "k"}}, "couldn't find key k in Secret ns/s"),
        ({"configMapKeyRef": {"name": "gone", "key": "k"}}, 'configmap "gone" not found'),
        ({"fieldRef": {"fieldPath": "metadata.labels"}}, "unsupported fieldRef"),
    ],
)
def test_missing_references_fail_with_the_kubelets_words(variable: dict, message: str) -> None:
    container = {"name": "c", "env": [{"name": "X", "valueFrom": variable}]}
    with pytest.raises(ConfigError, match=message):
        container_env(POD, container, sources({"s": {}}), [], "ip", "host", ALLOCATABLE)


def test_optional_absent_objects_leave_the_variable_unset() -> None:
    container = {
        "name": "c",
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}}}],
        "envFrom": [{"secretRef": {"name": "gone", "optional": True}}],
    }
    assert "X" not in container_env(POD, container, sources(), [], "ip", "host", ALLOCATABLE)


def test_service_links_only_for_the_master_service_when_disabled() -> None:
    services = [
        {"metadata": {"namespace": "default", "name": "kubernetes"},
         "spec": {"clusterIP": "10.9.0.1", "ports": [{"name": "https", "port": 443}]}},
        {"metadata": {"namespace": "ns", "name": "my-svc"}, "spec": {"clusterIP": "10.9.0.7", "ports": [{"port": 81}]}},
    ]  # fmt: skip
    assert set(service_link_env(services, "ns", enable_links=False)) == {
        "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBERNETES_SERVICE_PORT_HTTPS", "KUBERNETES_PORT",
        "KUBERNETES_PORT_443_TCP", "KUBERNETES_PORT_443_TCP_PROTO", "KUBERNETES_PORT_443_TCP_PORT",
        "KUBERNETES_PORT_443_TCP_ADDR",
    }  # fmt: skip
    assert service_link_env(services, "ns", enable_links=True)["MY_SVC_SERVICE_HOST"] == "10.9.0.7"


def test_command_and_args_expand_against_the_final_env() -> None:
    container = {"command": ["run", "$(A)"], "args": ["--x=$(B)", "$$(A)", "$(NONE)"]}
    assert container_argv(container, {"A": "1", "B": "2"}) == ["run", "1", "--x=2", "$(A)", "$(NONE)"]


def test_identity_container_wins_and_run_as_non_root_refuses_root() -> None:
    pod = {**POD, "spec": {**POD["spec"], "securityContext": {"runAsUser": 1, "fsGroup": 7, "supplementalGroups": [8]}}}
    identity = run_as(pod, {"name": "c", "securityContext": {"runAsUser": 5, "readOnlyRootFilesystem": True}})
    assert (identity.uid, identity.gid, identity.groups, identity.read_only_root) == (5, 0, (8, 7), True)
    with pytest.raises(
        ConfigError, match=r"container has runAsNonRoot and image will run as root \(pod: \"p_ns\(u-1\)\""
    ):
        run_as(POD, {"name": "c", "securityContext": {"runAsNonRoot": True}})


def _status(state: dict, last: dict | None = None) -> dict:
    return {"state": state, **({"lastState": last} if last else {})}


@pytest.mark.parametrize(
    ("policy", "state", "last", "phase"),
    [
        ("Always", {"running": {}}, None, "Running"),
        ("Always", {"waiting": {"reason": "ContainerCreating"}}, None, "Pending"),
        ("Always", {"waiting": {"reason": "CrashLoopBackOff"}}, {"terminated": {"exitCode": 1}}, "Running"),
        ("Never", {"terminated": {"exitCode": 0}}, None, "Succeeded"),
        ("Never", {"terminated": {"exitCode": 3}}, None, "Failed"),
        ("OnFailure", {"terminated": {"exitCode": 0}}, None, "Succeeded"),
    ],
)
def test_pod_phase(policy: str, state: dict, last: dict | None, phase: str) -> None:
    spec = {"restartPolicy": policy, "containers": [{"name": "c"}]}
    assert pod_phase(spec, {"c": _status(state, last)}, {}) == phase


def test_image_repository() -> None:
    assert image_repository("toolkit-worker:0.2.0") == ("toolkit-worker", "0.2.0")
    assert image_repository("registry:5000/team/worker:1-bad") == ("registry:5000/team/worker", "1-bad")
    assert image_repository("registry:5000/worker") == ("registry:5000/worker", "")
    assert image_repository("worker@sha256:abc") == ("worker", "")


# ---------------------------------------------------------------------------------------------- kube-proxy, DNS


def _service(name: str, ip: str, ports: list[dict], namespace: str = "ns", **spec: object) -> dict:
    return {"metadata": {"namespace": namespace, "name": name}, "spec": {"clusterIP": ip, "ports": ports, **spec}}


ENDPOINTS = {
    ("ns", "web"): {"subsets": [{
        "addresses": [{"ip": "10.1.1.2"}, {"ip": "10.1.2.2"}],
        "notReadyAddresses": [{"ip": "10.1.3.2"}],
        "ports": [{"name": "http", "port": 8080}],
    }]},
    ("ns", "peers"): {"subsets": [{
        "addresses": [{"ip": "10.1.1.2", "hostname": "member-0"}, {"ip": "10.1.2.2"}],
        "notReadyAddresses": [{"ip": "10.1.3.2", "hostname": "member-2"}],
        "ports": [{"name": "http", "port": 8080}],
    }]},
}  # fmt: skip


def test_rules_send_ready_endpoints_reject_empty_ports_and_honour_publications() -> None:
    services = [
        _service("web", "10.9.0.10", [{"name": "http", "port": 80}, {"name": "udp", "port": 514, "protocol": "UDP"}]),
        _service("kafka", "10.9.0.11", [{"name": "client", "port": 9094}]),
        _service("peers", "None", [{"name": "http", "port": 8080}]),
    ]
    rules = kubeproxy.service_rules(services, ENDPOINTS, {("ns", "kafka", 9094): ("10.128.0.2", 30000)})
    by_port = {(r.service, r.port): r.backends for r in rules}
    assert by_port == {
        ("kafka", 9094): (("10.128.0.2", 30000),),
        ("web", 80): (("10.1.1.2", 8080), ("10.1.2.2", 8080)),
        ("web", 514): (),
    }
    text = kubeproxy.render_ruleset("t", rules)
    spread = "dnat ip to numgen random mod 2 map { 0 : 10.1.1.2 . 8080, 1 : 10.1.2.2 . 8080 }"
    assert f"ip daddr 10.9.0.10 tcp dport 80 {spread}" in text
    assert "ip daddr 10.9.0.11 tcp dport 9094 dnat to 10.128.0.2:30000" in text
    assert "ip daddr 10.9.0.10 udp dport 514 reject" in text
    assert text.startswith("table ip t\ndelete table ip t\n") and "prerouting" not in text
    relay = 'iifname "tkl3" ip daddr 10.131.0.1 tcp dport 6443 dnat to 127.0.0.1:6443'
    assert f"type nat hook prerouting priority dstnat; policy accept;\n    {relay}" in kubeproxy.render_ruleset(
        "t", rules, [relay]
    )


def test_cluster_names_for_services_headless_pods_and_short_names() -> None:
    services = [
        _service("web", "10.9.0.10", [{"port": 80}]),
        _service("peers", "None", [{"port": 8080}], publishNotReadyAddresses=True),
        _service("other", "10.9.0.20", [{"port": 80}], namespace="elsewhere"),
    ]
    records = {r.address + " " + n for r in kubeproxy.dns_records(services, ENDPOINTS, "ns") for n in r.names}
    assert {
        "10.9.0.10 web.ns.svc.cluster.local",
        "10.9.0.10 web.ns.svc",
        "10.9.0.10 web.ns",
        "10.9.0.10 web",
    } <= records
    assert {"10.9.0.20 other.elsewhere.svc.cluster.local", "10.9.0.20 other.elsewhere"} <= records
    assert "10.9.0.20 other" not in records  # short names only within the pod's own namespace
    assert {
        "10.1.1.2 member-0.peers.ns.svc.cluster.local",
        "10.1.2.2 10-1-2-2.peers.ns.svc.cluster.local",
        "10.1.3.2 member-2.peers.ns.svc.cluster.local",
        "10.1.1.2 peers.ns.svc.cluster.local",
    } <= records


def test_hosts_file_head_is_the_kubelets() -> None:
    aliases = [{"ip": "1.2.3.4", "hostnames": ["a"]}]
    pod = {
        "metadata": {"name": "p-0", "namespace": "ns"},
        "spec": {"hostname": "p-0", "subdomain": "peers", "hostAliases": aliases},
    }
    text = kubeproxy.hosts_file(pod, "10.1.1.9", [kubeproxy.DnsRecord("10.9.0.1", ("x.ns.svc.cluster.local",))])
    assert "10.1.1.9\tp-0.peers.ns.svc.cluster.local\tp-0" in text
    assert "1.2.3.4\ta" in text and "10.9.0.1\tx.ns.svc.cluster.local" in text
    assert text.splitlines()[1] == "127.0.0.1\tlocalhost"
