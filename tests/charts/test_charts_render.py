"""The three charts, rendered with every ci/ value set: lint, schema validation, API versions, security defaults,
labels, catalog images and secret hygiene. Renders are shared through the session `renders` fixture."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml
from chart_render import (
    CHARTS,
    CHARTS_DIR,
    REPO,
    VALUE_SETS,
    all_containers,
    catalog_values,
    ci_values,
    deep_merge,
    documents,
    injected_values,
    pod_specs,
    render_manifests,
)

from toolkit.provision.helm import DeployError

CHART_SETS = [(chart, value_set) for chart in CHARTS for value_set in VALUE_SETS]
TOOLKIT_COMPONENT = {"kafka": "kafka", "elasticsearch": "elasticsearch", "ingest-workers": "workers"}


@pytest.mark.parametrize(("chart", "value_set"), CHART_SETS)
def test_lint_passes_without_warnings(chart: str, value_set: str) -> None:
    report = helm_python.lint(CHARTS_DIR / chart, injected_values(chart, value_set), strict=True)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], problems or report["errors"]


@pytest.mark.parametrize("kube", ["1.25", "1.33"])
@pytest.mark.parametrize(("chart", "value_set"), CHART_SETS)
def test_manifests_validate_strictly(renders: Any, chart: str, value_set: str, kube: str) -> None:
    docs = renders.docs(chart, value_set, kube)
    assert docs, f"{chart}/{value_set} rendered nothing"
    failures = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, kube, strict=True)
        except kubernetes_validate.ValidationError as err:
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {err.message} at {list(err.path)}")
    assert failures == []


@pytest.mark.parametrize(("chart", "value_set"), CHART_SETS)
def test_pdb_api_version_follows_capabilities(renders: Any, chart: str, value_set: str) -> None:
    old = [d for d in renders.docs(chart, value_set, "1.20") if d["kind"] == "PodDisruptionBudget"]
    new = [d for d in renders.docs(chart, value_set, "1.25") if d["kind"] == "PodDisruptionBudget"]
    assert old and len(old) == len(new)
    assert {d["apiVersion"] for d in old} == {"policy/v1beta1"}
    assert {d["apiVersion"] for d in new} == {"policy/v1"}
    assert all(d["spec"]["maxUnavailable"] == 1 for d in new)


@pytest.mark.parametrize("value_set", ["production", "tls-sasl"])
def test_hpa_api_version_follows_capabilities(renders: Any, value_set: str) -> None:
    old = [d for d in renders.docs("ingest-workers", value_set, "1.20") if d["kind"] == "HorizontalPodAutoscaler"]
    new = [d for d in renders.docs("ingest-workers", value_set, "1.25") if d["kind"] == "HorizontalPodAutoscaler"]
    assert old and {d["apiVersion"] for d in old} == {"autoscaling/v2beta2"}
    assert {d["apiVersion"] for d in new} == {"autoscaling/v2"}


@pytest.mark.parametrize(("chart", "value_set"), CHART_SETS)
def test_every_container_has_the_security_defaults(renders: Any, chart: str, value_set: str) -> None:
    problems = []
    specs = list(pod_specs(renders.docs(chart, value_set)))
    assert specs
    for where, spec in specs:
        pod_ctx = spec.get("securityContext", {})
        if pod_ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault" or pod_ctx.get("runAsNonRoot") is not True:
            problems.append(f"{where}: pod securityContext lacks runAsNonRoot/seccomp RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: the service account token is mounted into every container")
        for container in all_containers(spec):
            name = f"{where}/{container['name']}"
            ctx = container.get("securityContext", {})
            expected = {
                "runAsNonRoot": True,
                "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False,
            }
            for key, want in expected.items():
                if ctx.get(key) is not want:
                    problems.append(f"{name}: {key} is {ctx.get(key)!r}, want {want!r}")
            if ctx.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{name}: capabilities.drop is not [ALL]")
            if ctx.get("capabilities", {}).get("add"):
                problems.append(f"{name}: adds capabilities")
            if ctx.get("privileged"):
                problems.append(f"{name}: privileged")
            if ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
                problems.append(f"{name}: seccompProfile is not RuntimeDefault")
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(resources.get(part, {})):
                    problems.append(f"{name}: resources.{part} lacks cpu or memory")
    assert problems == []


@pytest.mark.parametrize(("chart", "value_set"), CHART_SETS)
def test_images_are_exactly_the_catalog_refs(renders: Any, chart: str, value_set: str) -> None:
    from toolkit.catalog import load

    catalog = load()
    own = catalog.component(TOOLKIT_COMPONENT[chart])
    toolkit = catalog.component("workers")
    allowed = {own.image_ref(own.default), toolkit.image_ref(toolkit.default)}
    images = {c["image"] for _, spec in pod_specs(renders.docs(chart, value_set)) for c in all_containers(spec)}
    assert own.image_ref(own.default) in images
    assert images <= allowed, images - allowed


@pytest.mark.parametrize(("chart", "value_set"), CHART_SETS)
def test_workloads_and_pods_carry_the_engine_labels(renders: Any, chart: str, value_set: str) -> None:
    from toolkit.catalog import load

    version = load().component(TOOLKIT_COMPONENT[chart]).default
    workloads = [d for d in renders.docs(chart, value_set) if d["kind"] in {"StatefulSet", "Deployment"}]
    assert workloads
    components = set()
    for doc in workloads:
        for labels in (doc["metadata"]["labels"], doc["spec"]["template"]["metadata"]["labels"]):
            assert labels["app.kubernetes.io/name"] == chart
            assert labels["app.kubernetes.io/instance"] == "platform"
            assert labels["app.kubernetes.io/version"] == version
            assert labels["toolkit.io/component"] == TOOLKIT_COMPONENT[chart]
            components.add(labels["app.kubernetes.io/component"])
        if doc["kind"] == "StatefulSet":
            assert doc["spec"]["updateStrategy"] == {"type": "OnDelete"}
        else:
            assert doc["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    if chart == "kafka":
        expected = {"combined"} if value_set == "minimal" else {"controller", "broker"}
        assert components == expected
        for doc in workloads:
            base = doc["metadata"]["annotations"]["toolkit.io/kafka-node-id-base"]
            assert base == ("100" if doc["metadata"]["labels"]["app.kubernetes.io/component"] == "broker" else "0")
    elif chart == "elasticsearch":
        node_sets = {s["name"]: s.get("tier", "none") for s in ci_values(chart, value_set)["nodeSets"]}
        assert components == set(node_sets)
        for doc in workloads:
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert labels["toolkit.io/es-tier"] == node_sets[labels["app.kubernetes.io/component"]]
    else:
        assert components == {"syslog-receiver", "indexer"}


def _secretish_keys(node: Any, path: str = "") -> list[str]:
    """Paths of keys that would carry a credential by their name, with a non-empty literal value."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if key == "envNames":
                continue  # a map of environment-variable names, not values
            lowered = str(key).lower()
            credential_name = re.search(r"(password|passwd|token|apikey|privatekey|clusterid)$", lowered)
            if credential_name and isinstance(value, str | int) and str(value):
                found.append(here)
            found.extend(_secretish_keys(value, here))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found.extend(_secretish_keys(item, f"{path}[{index}]"))
    return found


@pytest.mark.parametrize("chart", CHARTS)
def test_no_secret_in_plain_values(chart: str) -> None:
    files = [CHARTS_DIR / chart / "values.yaml", *sorted((CHARTS_DIR / chart / "ci").glob("*.yaml"))]
    leaks = {str(f.relative_to(REPO)): _secretish_keys(yaml.safe_load(f.read_text())) for f in files}
    assert {f: keys for f, keys in leaks.items() if keys} == {}


@pytest.mark.parametrize(("chart", "value_set"), CHART_SETS)
def test_no_secret_value_reaches_configmaps_or_env(renders: Any, chart: str, value_set: str) -> None:
    docs = renders.docs(chart, value_set)
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            for key, text in doc["data"].items():
                literal = re.findall(r"(?<![A-Za-z_])password\s*[=:]\s*(?![\"']?\$)[^\s\]]+", text, flags=re.IGNORECASE)
                assert literal == [], f"ConfigMap {doc['metadata']['name']}/{key} holds {literal}"
        if doc["kind"] == "Secret":
            assert doc["metadata"]["name"].endswith("-cluster-id"), "only the generated cluster id may be rendered"
    for where, spec in pod_specs(docs):
        secret_volumes = {v["name"] for v in spec.get("volumes", []) if "secret" in v}
        for container in all_containers(spec):
            # secrets reach a process as files only: never as an environment variable's value
            mounted = {
                m["mountPath"].rstrip("/") for m in container.get("volumeMounts", []) if m["name"] in secret_volumes
            }
            for env in container.get("env", []):
                assert "secretKeyRef" not in env.get("valueFrom", {}), f"{where}: {env['name']} carries a Secret value"
                if re.search(r"PASSWORD|TOKEN|SECRET|_KEY_FILE", env["name"]):
                    assert env["name"].endswith("_FILE"), f"{where}: {env['name']} must name a file, not hold a secret"
                    path = env.get("value", "")
                    assert any(path.startswith(m + "/") for m in mounted), (
                        f"{where}: {env['name']}={path} is not a file of a mounted Secret ({sorted(mounted)})"
                    )


@pytest.mark.parametrize("chart", CHARTS)
def test_ci_value_sets_name_no_version(chart: str) -> None:
    for value_set in VALUE_SETS:
        values = ci_values(chart, value_set)
        for key in ("image", "toolkitImage", "metadataVersion"):
            assert key not in values, f"{chart}/ci/{value_set}-values.yaml sets {key}: versions come from the catalog"
    defaults = yaml.safe_load((CHARTS_DIR / chart / "values.yaml").read_text())
    assert defaults["image"]["repository"] == "" and defaults["image"]["tag"] == ""
    metadata = yaml.safe_load((CHARTS_DIR / chart / "Chart.yaml").read_text())
    assert "appVersion" not in metadata, "an appVersion would drift from the catalog"


@pytest.mark.parametrize("chart", CHARTS)
def test_missing_catalog_values_fail_with_one_message_naming_each(chart: str) -> None:
    values = ci_values(chart, "minimal")
    with pytest.raises(DeployError) as caught:
        render_manifests(chart, values)
    message = str(caught.value)
    assert message.count("VALUES VALIDATION") == 1
    assert "image.repository is empty" in message and "image.tag is empty" in message
    if chart == "kafka":
        assert "metadataVersion is empty" in message


INVALID = {
    "kafka": (
        {
            "controller": {"replicas": 2},
            "config": {"defaultReplicationFactor": 4, "minInsyncReplicas": 5},
            "clientAuthentication": {"type": "scram-sha-512"},
            "admin": {"existingSecret": ""},
            "users": [{"name": "syslog-receiver", "role": "receiver"}, {"name": "admin", "role": "indexer"}],
            "topics": {"deadLetters": {"name": "security-events", "partitions": 1}},
            "external": {"enabled": True, "nodePortBase": 32767},
        },
        [
            "controller.replicas is 2",
            "config.defaultReplicationFactor 4 exceeds broker.replicas 3",
            "config.minInsyncReplicas 5 exceeds config.defaultReplicationFactor 4",
            "admin.existingSecret is empty",
            "users[0] (syslog-receiver) has no existingSecret",
            "users[1] (admin) has no existingSecret",
            "users[1] (admin) has role indexer but no consumerGroup",
            "users[1] is named admin like the admin",
            "topics.events.name and topics.deadLetters.name are both",
            "external.nodePortBase 32767 with 3 brokers",
        ],
    ),
    "elasticsearch": (
        {
            "nodeSets": [
                {
                    "name": "Hot_Nodes",
                    "roles": ["data_warm"],
                    "tier": "hot",
                    "replicas": 2,
                    "storageSize": "1Gi",
                    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
                }
            ],
            "auth": {"existingSecret": "", "fileRealmSecret": "", "probeSecret": ""},
            "http": {"nodePort": {"enabled": True, "port": 80}},
        },
        [
            'nodeSets[0].name "Hot_Nodes" is not a DNS label',
            "has tier hot but not the role data_hot",
            "no node set has the master role",
            "auth.existingSecret is empty",
            "auth.fileRealmSecret is empty",
            "auth.probeSecret is empty",
            "http.nodePort.port 80 is outside",
        ],
    ),
    "ingest-workers": (
        {
            "kafka": {"receiver": {"secret": "", "username": "r"}, "deadLetterTopic": "security-events"},
            "elasticsearch": {"url": "https://es:9200", "caSecret": "", "userSecret": ""},
            "shutdown": {"lingerSeconds": 5, "readSeconds": 10, "flushSeconds": 10, "drainSeconds": 30},
            "terminationGracePeriodSeconds": 20,
            "receiver": {"hpa": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}},
        },
        [
            "kafka.receiver.secret is empty",
            "elasticsearch.userSecret is empty",
            "elasticsearch.url is https but elasticsearch.caSecret is empty",
            "kafka.eventsTopic and kafka.deadLetterTopic are both",
            "terminationGracePeriodSeconds 20 does not exceed the receiver's shutdown.lingerSeconds + readSeconds",
            "terminationGracePeriodSeconds 20 does not exceed shutdown.drainSeconds 30",
            "receiver.hpa.minReplicas 5 exceeds maxReplicas 2",
        ],
    ),
}


@pytest.mark.parametrize("chart", CHARTS)
def test_invalid_values_fail_listing_every_problem(chart: str) -> None:
    overrides, expected = INVALID[chart]
    base = "tls-sasl" if chart == "kafka" else "minimal"
    values = deep_merge(injected_values(chart, base), overrides)
    with pytest.raises(DeployError) as caught:
        render_manifests(chart, values)
    message = str(caught.value)
    missing = [fragment for fragment in expected if fragment not in message]
    assert missing == [], message
    assert f"{len(expected)} problem(s)" in message, message


@pytest.mark.parametrize("chart", CHARTS)
def test_schema_rejects_a_misspelt_top_level_key(chart: str) -> None:
    with helm_python.Chart.load(CHARTS_DIR / chart) as loaded:
        loaded.validate_schema(injected_values(chart, "minimal"))
        with pytest.raises(helm_python.HelmValuesError, match="imagee"):
            loaded.validate_schema({**injected_values(chart, "minimal"), "imagee": {"tag": "x"}})


def test_readme_parameter_tables_are_generated_from_values() -> None:
    """Every `## @param` of every values.yaml is in its README, with its current default (scripts/chart_readme.py)."""
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "chart_readme.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _script_texts(docs: list[dict[str, Any]]) -> dict[str, str]:
    return {
        f"{d['metadata']['name']}/{key}": text
        for d in docs
        if d["kind"] == "ConfigMap"
        for key, text in d["data"].items()
        if key.endswith((".sh", ".py"))
    }


@pytest.mark.parametrize(("chart", "value_set"), [(c, v) for c in ("kafka", "elasticsearch") for v in VALUE_SETS])
def test_embedded_scripts_parse(renders: Any, chart: str, value_set: str, tmp_path: Any) -> None:
    scripts = _script_texts(renders.docs(chart, value_set))
    assert scripts
    for name, text in scripts.items():
        if name.endswith(".sh"):
            result = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True, check=False)
            assert result.returncode == 0, f"{name}: {result.stderr}"
        else:
            compile(text, name, "exec")


def test_kafka_prepare_script_formats_once_and_writes_per_pod_settings(renders: Any, tmp_path: Any) -> None:
    """Run prepare.sh with a fake kafka-storage.sh: it formats only when meta.properties is absent."""
    docs = renders.docs("kafka", "tls-sasl")
    script = _script_texts(docs)["platform-kafka-scripts/prepare.sh"]
    common = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "platform-kafka-config")
    broker = next(d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"].endswith("-broker"))
    prepare = next(c for c in broker["spec"]["template"]["spec"]["initContainers"] if c["name"] == "prepare")
    env = {e["name"]: e["value"] for e in prepare["env"] if "value" in e}
    root = tmp_path
    for sub in ("config", "zone", "data/data", "bin", "tls-in", "tls-out", "cluster-id"):
        (root / sub).mkdir(parents=True)
    (root / "cluster-id" / "cluster-id").write_text("MkU3OEVBNTcwNTJENDM2Qg")
    (root / "common.properties").write_text(common["data"]["common.properties"])
    (root / "zone" / "zone").write_text("zone-b")
    (root / "tls-in" / "tls.key").write_text("KEY\n")
    (root / "tls-in" / "tls.crt").write_text("CRT\n")
    calls = root / "calls.txt"
    (root / "bin" / "kafka-storage.sh").write_text(f'#!/bin/bash\necho "$@" >> {calls}\n')
    (root / "bin" / "kafka-storage.sh").chmod(0o755)
    paths = {
        "/var/run/kafka/config": str(root / "config"),
        "/var/run/kafka/zone": str(root / "zone"),
        "/opt/toolkit/config/common.properties": str(root / "common.properties"),
        "/etc/kafka/tls": str(root / "tls-in"),
        "/var/run/kafka/tls": str(root / "tls-out"),
        "/var/lib/kafka": str(root / "data"),
        "/opt/kafka/bin": str(root / "bin"),
        "/etc/kafka/cluster-id": str(root / "cluster-id"),
    }
    for original, replacement in paths.items():
        script = script.replace(original, replacement)
    run_env = {
        **env,
        "PATH": "/usr/bin:/bin",
        "POD_NAME": "platform-kafka-broker-2",
        "POD_NAMESPACE": "platform",
    }
    run_env["CLUSTER_ID_FILE"] = run_env["CLUSTER_ID_FILE"].replace("/etc/kafka/cluster-id", str(root / "cluster-id"))
    for _ in range(2):
        subprocess.run(["bash", "-c", script], env=run_env, check=True, capture_output=True, text=True)
        (root / "data" / "data" / "meta.properties").write_text("formatted\n")
    props = dict(
        line.split("=", 1) for line in (root / "config" / "server.properties").read_text().splitlines() if "=" in line
    )
    assert props["node.id"] == "102"
    assert props["process.roles"] == "broker"
    assert props["broker.rack"] == "zone-b"
    fqdn = "platform-kafka-broker-2.platform-kafka-broker-headless.platform.svc.cluster.local"
    assert props["advertised.listeners"] == f"INTERNAL://{fqdn}:9092,CLIENT://{fqdn}:9094,EXTERNAL://127.0.0.1:30094"
    format_calls = calls.read_text().splitlines()
    assert len(format_calls) == 1, "storage must be formatted exactly once"
    assert f"--release-version {catalog_values('kafka')['metadataVersion']}" in format_calls[0]
    assert "--cluster-id MkU3OEVBNTcwNTJENDM2Qg" in format_calls[0]
    assert "--add-scram" not in format_calls[0]  # mutual TLS: no SCRAM credential is bootstrapped
    assert (root / "tls-out" / "keystore.pem").read_text() == "KEY\nCRT\n"


def test_kafka_format_uses_the_catalog_metadata_version(renders: Any) -> None:
    expected = catalog_values("kafka")["metadataVersion"]
    for value_set in VALUE_SETS:
        for doc in renders.docs("kafka", value_set):
            if doc["kind"] != "StatefulSet":
                continue
            prepare = next(c for c in doc["spec"]["template"]["spec"]["initContainers"] if c["name"] == "prepare")
            assert {"name": "METADATA_VERSION", "value": expected} in prepare["env"]
    config = next(d for d in renders.docs("kafka", "production") if d["metadata"]["name"].endswith("-config"))
    assert "metadata.version" not in config["data"]["common.properties"]


def test_kafka_cluster_id_is_a_valid_kraft_id_and_kept(renders: Any) -> None:
    secret = next(d for d in renders.docs("kafka", "minimal") if d["kind"] == "Secret")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    cluster_id = base64.b64decode(secret["data"]["cluster-id"]).decode()
    assert len(cluster_id) == 22
    raw = base64.urlsafe_b64decode(cluster_id + "==")
    assert len(raw) == 16 and base64.urlsafe_b64encode(raw).decode().rstrip("=") == cluster_id


def test_kafka_defaults_are_safe(renders: Any) -> None:
    config = next(d for d in renders.docs("kafka", "production") if d["metadata"]["name"].endswith("-config"))
    props = config["data"]["common.properties"]
    for line in (
        "default.replication.factor=3",
        "min.insync.replicas=2",
        "unclean.leader.election.enable=false",
        "auto.create.topics.enable=false",
        "allow.everyone.if.no.acl.found=false",
    ):
        assert line in props.splitlines()
    broker = next(
        d
        for d in renders.docs("kafka", "production")
        if d["kind"] == "StatefulSet" and d["metadata"]["name"].endswith("-broker")
    )
    spec = broker["spec"]["template"]["spec"]
    assert spec["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert "requiredDuringSchedulingIgnoredDuringExecution" in spec["affinity"]["podAntiAffinity"]
    kafka = next(c for c in spec["containers"] if c["name"] == "kafka")
    heap = next(e["value"] for e in kafka["env"] if e["name"] == "KAFKA_HEAP_OPTS")
    assert "-XX:MaxRAMPercentage=40" in heap and "-Xmx" not in heap
    assert kafka["readinessProbe"]["exec"]["command"][-1].endswith("broker-ready.sh")
    assert broker["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "encrypted-gp3"


def test_kafka_external_listener_has_one_nodeport_per_broker(renders: Any) -> None:
    services = [
        d for d in renders.docs("kafka", "tls-sasl") if d["kind"] == "Service" and d["spec"].get("type") == "NodePort"
    ]
    assert sorted(s["spec"]["ports"][0]["nodePort"] for s in services) == [30092, 30093, 30094]
    assert sorted(s["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] for s in services) == [
        f"platform-kafka-broker-{i}" for i in range(3)
    ]


def test_kafka_setup_job_creates_topics_users_and_acls(renders: Any) -> None:
    scripts = _script_texts(renders.docs("kafka", "tls-sasl"))["platform-kafka-scripts/setup-platform.sh"]
    assert 'create_topic "security-events" 12' in scripts
    assert 'create_topic "security-events-dead-letters" 3' in scripts
    assert '--operation Read --group "indexer"' in scripts
    job = next(d for d in renders.docs("kafka", "tls-sasl") if d["kind"] == "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"


def test_elasticsearch_zone_awareness_and_no_mmap(renders: Any) -> None:
    config = next(d for d in renders.docs("elasticsearch", "production") if d["kind"] == "ConfigMap")
    settings = yaml.safe_load(config["data"]["elasticsearch.yml"].replace("${POD_NAME}", "pod"))
    assert settings["node.store.allow_mmap"] is False
    assert settings["cluster.routing.allocation.awareness.attributes"] == "zone"
    assert settings["xpack.security.transport.ssl.enabled"] is True
    for _, spec in pod_specs(renders.docs("elasticsearch", "production")):
        assert "zone-lookup" in [c["name"] for c in spec.get("initContainers", [])]


def test_elasticsearch_initial_masters_only_on_install_and_dropping_them_restarts_no_pod() -> None:
    """The bootstrap-only setting is in the first install's config and not in an upgrade's; the pod template's
    config checksum leaves it out, so the upgrade that drops it (deploy's second pass) makes no new revision: right
    after a deploy every pod is on its StatefulSet's current revision. Any other config change still changes it."""
    values = injected_values("elasticsearch", "production")
    installed = documents(render_manifests("elasticsearch", values))
    upgraded = documents(render_manifests("elasticsearch", values, is_upgrade=True))
    changed = documents(
        render_manifests("elasticsearch", deep_merge(values, {"clusterName": "another"}), is_upgrade=True)
    )

    def config(docs: list[dict]) -> str:
        return next(d for d in docs if d["kind"] == "ConfigMap")["data"]["elasticsearch.yml"]

    def checksums(docs: list[dict]) -> list[str]:
        return [
            d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for d in docs
            if d["kind"] == "StatefulSet"
        ]

    assert "cluster.initial_master_nodes:" in config(installed)
    assert "cluster.initial_master_nodes:" not in config(upgraded)
    assert checksums(installed) == checksums(upgraded) and len(checksums(installed)) >= 2
    assert config(changed) != config(upgraded) and checksums(changed) != checksums(upgraded)


def test_elasticsearch_templates_job_is_behind_a_value() -> None:
    values = deep_merge(injected_values("elasticsearch", "minimal"), {"templatesJob": {"enabled": True}})
    docs = documents(render_manifests("elasticsearch", values, kube="1.33"))
    job = next(d for d in docs if d["kind"] == "Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:3] == ["toolkit", "es", "apply-templates"]
    assert "--password-file=/etc/toolkit/es-bootstrap/password" in container["command"]
    from toolkit.catalog import load

    workers = load().component("workers")
    assert container["image"] == workers.image_ref(workers.default)
    for doc in docs:
        kubernetes_validate.validate(doc, "1.33", strict=True)
    assert not [
        d
        for d in documents(render_manifests("elasticsearch", injected_values("elasticsearch", "minimal")))
        if d["kind"] == "Job"
    ]


def test_workers_run_the_worker_with_its_probes_and_a_long_enough_grace(renders: Any) -> None:
    for _, spec in pod_specs(renders.docs("ingest-workers", "tls-sasl")):
        container = spec["containers"][0]
        assert container["command"][0] == "toolkit-worker"
        assert all(e["name"].startswith("TOOLKIT_WORKER_") for e in container["env"])
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert spec["terminationGracePeriodSeconds"] > 35


def test_workers_network_policies_allow_only_platform_flows(renders: Any) -> None:
    policies = {
        d["metadata"]["name"]: d["spec"]
        for d in renders.docs("ingest-workers", "production")
        if d["kind"] == "NetworkPolicy"
    }
    receiver = policies["platform-ingest-workers-syslog-receiver"]
    indexer = policies["platform-ingest-workers-indexer"]
    egress_ports = lambda spec: sorted(p["port"] for rule in spec["egress"] for p in rule["ports"])  # noqa: E731
    assert egress_ports(receiver) == [53, 53, 9094]
    assert egress_ports(indexer) == [53, 53, 9094, 9200]
    assert receiver["ingress"][0]["from"] == [{"ipBlock": {"cidr": "10.0.0.0/8"}}]
    assert sorted(p["port"] for p in receiver["ingress"][0]["ports"]) == [1514, 1601, 6514]


def test_kind_config_maps_every_external_port() -> None:
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    nodes = config["nodes"]
    assert [n["role"] for n in nodes] == ["control-plane", "worker", "worker", "worker"]
    zones = [n["labels"]["topology.kubernetes.io/zone"] for n in nodes if n["role"] == "worker"]
    assert zones == ["zone-a", "zone-b", "zone-c"]
    mapped = {m["containerPort"]: m["hostPort"] for n in nodes for m in n.get("extraPortMappings", [])}
    kafka = yaml.safe_load((CHARTS_DIR / "kafka" / "ci" / "tls-sasl-values.yaml").read_text())
    base = kafka["external"]["nodePortBase"]
    wanted = [base + i for i in range(kafka["broker"]["replicas"])]
    es = yaml.safe_load((CHARTS_DIR / "elasticsearch" / "ci" / "tls-sasl-values.yaml").read_text())
    wanted.append(es["http"]["nodePort"]["port"])
    assert {port: mapped.get(port) for port in wanted} == {port: port for port in wanted}
