"""What a kubelet derives from a pod spec before it starts a container: pure functions, no I/O.

- `expand(text, lookup)`: `$(VAR)` references as Kubernetes expands them: `$$` is a literal `$`, an unknown or
  unterminated reference stays as written, anything else after `$` is kept verbatim.
- `container_env(...)`: the container's environment exactly as the kubelet builds it (1.20): `envFrom` first (ConfigMap
  then Secret data, `prefix` prepended, invalid names skipped, `optional` honoured), then `env` in order (`value`
  with `$(VAR)` expanded against the variables declared so far and the Service variables; `valueFrom` secretKeyRef,
  configMapKeyRef (`optional` honoured), fieldRef, resourceFieldRef), then the Service variables no one overrode
  (`<SVC>_SERVICE_HOST`, ..., for the `kubernetes` Service always, for the pod's namespace when
  `enableServiceLinks` is not false). A missing Secret, ConfigMap or key raises `ConfigError` with the kubelet's
  wording (the pod then waits in CreateContainerConfigError).
- `container_argv(container, env)`: command + args with `$(VAR)` expanded against the final environment.
- `run_as(pod, container)`: uid, gid, supplementary groups (supplementalGroups + fsGroup), runAsNonRoot check,
  readOnlyRootFilesystem, no_new_privs (allowPrivilegeEscalation: false).
- `probe_spec(raw)`: a probe with the API's defaults; `pod_phase(...)`: the kubelet's phase rules.
- Downward API values (`field_value`, `resource_value`) with the kubelet's rounding (ceil(value / divisor)) and its
  defaulting of missing limits to the node's allocatable.
"""

from __future__ import annotations

import json
import math
import pwd
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

JsonDict = dict[str, Any]
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
SUBSCRIPTED_FIELD = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
MASTER_SERVICE = ("default", "kubernetes")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIXES = {
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18),
}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?))$")


class ConfigError(Exception):
    """The container cannot be configured (the kubelet's CreateContainerConfigError / CreateContainerError)."""

    def __init__(self, message: str, reason: str = "CreateContainerConfigError") -> None:
        super().__init__(message)
        self.reason = reason


# ---------------------------------------------------------------------------------------------- expansion


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Expand `$(NAME)` in `text` as Kubernetes does (see the module docstring)."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            following = text[cursor + 1]
            if following == "$":
                out.append("$")
                advance = 1
            elif following == "(":
                closing = text.find(")", cursor + 2)
                if closing == -1:
                    out.append("$(")
                    advance = 1
                else:
                    name = text[cursor + 2 : closing]
                    value = lookup(name)
                    out.append(f"$({name})" if value is None else value)
                    advance = closing - cursor
            else:
                out.append("$" + following)
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


# ---------------------------------------------------------------------------------------------- quantities


def parse_quantity(text: str | int | float) -> Fraction:
    """A Kubernetes resource quantity ("250m", "1Gi", "1e3", 2) as an exact number."""
    if isinstance(text, int | float):
        return Fraction(text)
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 250m, 1Gi, 2)")
    number, exponent, suffix = match.groups()
    value = Fraction(number)
    if exponent:
        return value * Fraction(10) ** int(exponent[1:])
    if suffix in _BINARY_SUFFIXES:
        return value * _BINARY_SUFFIXES[suffix]
    return value * _DECIMAL_SUFFIXES[suffix or ""]


def _ceil(value: Fraction) -> int:
    return math.ceil(value)


def resource_value(ref: Mapping[str, Any], container: Mapping[str, Any], allocatable: Mapping[str, str]) -> str:
    """A resourceFieldRef's value: ceil(quantity / divisor); CPU in millicores first, as the kubelet rounds. A limit
    the container does not set is the node's allocatable (the kubelet's defaulting)."""
    resource = str(ref.get("resource", ""))
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or name not in ("cpu", "memory", "ephemeral-storage"):
        raise ConfigError(f"unsupported resourceFieldRef resource {resource!r} (container {container.get('name')})")
    resources = container.get("resources") or {}
    limits = dict(resources.get("limits") or {})
    for key in ("cpu", "memory", "ephemeral-storage"):
        limits.setdefault(key, allocatable.get(key, "0"))
    requests = resources.get("requests") or {}
    raw = limits[name] if kind == "limits" else requests.get(name, "0")
    divisor_raw = ref.get("divisor") or "1"
    divisor = parse_quantity(divisor_raw)
    if divisor == 0:
        divisor = Fraction(1)
    quantity = parse_quantity(raw)
    if name == "cpu":
        millis, divisor_millis = _ceil(quantity * 1000), _ceil(divisor * 1000)
        return str(math.ceil(millis / divisor_millis))
    return str(math.ceil(_ceil(quantity) / _ceil(divisor)))


# ---------------------------------------------------------------------------------------------- downward API


def _format_map(values: Mapping[str, str]) -> str:
    return "\n".join(f"{key}={json.dumps(values[key])}" for key in sorted(values))


def field_value(pod: Mapping[str, Any], path: str, pod_ip: str, host_ip: str, whole_maps: bool = False) -> str:
    """A fieldRef's value for `pod` (env: whole label/annotation maps are refused, as the API refuses them)."""
    metadata, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", ""),
        "metadata.uid": metadata.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": host_ip,
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
    }
    if path in simple:
        return str(simple[path])
    subscripted = SUBSCRIPTED_FIELD.match(path)
    if subscripted:
        return str((metadata.get(subscripted.group(1)) or {}).get(subscripted.group(2), ""))
    if whole_maps and path in ("metadata.labels", "metadata.annotations"):
        return _format_map(metadata.get(path.split(".", 1)[1]) or {})
    raise ConfigError(f"unsupported fieldRef {path!r} (pod {metadata.get('namespace')}/{metadata.get('name')})")


# ---------------------------------------------------------------------------------------------- environment


@dataclass(frozen=True)
class Sources:
    """Where Secret and ConfigMap data come from: name -> decoded data, or None when the object does not exist."""

    secret: Callable[[str], Mapping[str, bytes] | None]
    config_map: Callable[[str], Mapping[str, str] | None]


def _env_name(service_name: str) -> str:
    return service_name.upper().replace("-", "_")


def service_link_env(services: Iterable[Mapping[str, Any]], namespace: str, enable_links: bool) -> dict[str, str]:
    """The Docker-link style variables of the Services a pod in `namespace` sees (the kubelet's rules)."""
    chosen: dict[str, Mapping[str, Any]] = {}
    for service in services:
        metadata, spec = service.get("metadata") or {}, service.get("spec") or {}
        cluster_ip = spec.get("clusterIP") or ""
        if cluster_ip in ("", "None"):
            continue
        key = (metadata.get("namespace"), metadata.get("name"))
        if key == MASTER_SERVICE:
            chosen.setdefault(str(key[1]), service)
        elif metadata.get("namespace") == namespace and enable_links:
            chosen[str(key[1])] = service
    env: dict[str, str] = {}
    for name, service in chosen.items():
        spec = service["spec"]
        ports = spec.get("ports") or []
        if not ports:
            continue
        prefix = _env_name(name)
        ip = spec["clusterIP"]
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{_env_name(port['name'])}"] = str(port["port"])
        for index, port in enumerate(ports):
            protocol = str(port.get("protocol") or "TCP")
            url = f"{protocol.lower()}://{ip}:{port['port']}"
            if index == 0:
                env[f"{prefix}_PORT"] = url
            port_prefix = f"{prefix}_PORT_{port['port']}_{protocol.upper()}"
            env[port_prefix] = url
            env[f"{port_prefix}_PROTO"] = protocol.lower()
            env[f"{port_prefix}_PORT"] = str(port["port"])
            env[f"{port_prefix}_ADDR"] = ip
    return env


def _pod_ref(pod: Mapping[str, Any]) -> str:
    metadata = pod.get("metadata") or {}
    return f"{metadata.get('namespace')}/{metadata.get('name')}"


def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    sources: Sources,
    services: Iterable[Mapping[str, Any]],
    pod_ip: str,
    host_ip: str,
    allocatable: Mapping[str, str],
) -> dict[str, str]:
    """The environment the kubelet gives `container` (see the module docstring); raises ConfigError."""
    namespace = str((pod.get("metadata") or {}).get("namespace", ""))
    enable_links = (pod.get("spec") or {}).get("enableServiceLinks") is not False
    service_env = service_link_env(services, namespace, enable_links)
    secrets: dict[str, Mapping[str, bytes]] = {}
    config_maps: dict[str, Mapping[str, str]] = {}

    def secret(name: str, optional: bool) -> Mapping[str, bytes] | None:
        if name not in secrets:
            found = sources.secret(name)
            if found is None:
                if optional:
                    return None
                raise ConfigError(f'secret "{name}" not found')
            secrets[name] = found
        return secrets[name]

    def config_map(name: str, optional: bool) -> Mapping[str, str] | None:
        if name not in config_maps:
            found = sources.config_map(name)
            if found is None:
                if optional:
                    return None
                raise ConfigError(f'configmap "{name}" not found')
            config_maps[name] = found
        return config_maps[name]

    declared: dict[str, str] = {}
    for env_from in container.get("envFrom") or []:
        prefix = env_from.get("prefix") or ""
        if env_from.get("configMapRef"):
            ref = env_from["configMapRef"]
            items: Mapping[str, str] | None = config_map(ref["name"], bool(ref.get("optional")))
        elif env_from.get("secretRef"):
            ref = env_from["secretRef"]
            data = secret(ref["name"], bool(ref.get("optional")))
            items = None if data is None else {k: v.decode("utf-8", "surrogateescape") for k, v in data.items()}
        else:
            continue
        for key, value in (items or {}).items():
            if ENV_NAME.match(prefix + key):
                declared[prefix + key] = value

    def lookup(name: str) -> str | None:
        return declared.get(name, service_env.get(name))

    for variable in container.get("env") or []:
        name = variable["name"]
        value = variable.get("value") or ""
        source = variable.get("valueFrom")
        if value:
            value = expand(value, lookup)
        elif source:
            resolved = _value_from(pod, container, source, secret, config_map, pod_ip, host_ip, allocatable)
            if resolved is None:
                continue  # optional and absent: the variable is not set at all
            value = resolved
        service_env.pop(name, None)
        declared[name] = value
    return {**{k: v for k, v in service_env.items() if k not in declared}, **declared}


def _value_from(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    source: Mapping[str, Any],
    secret: Callable[[str, bool], Mapping[str, bytes] | None],
    config_map: Callable[[str, bool], Mapping[str, str] | None],
    pod_ip: str,
    host_ip: str,
    allocatable: Mapping[str, str],
) -> str | None:
    namespace = (pod.get("metadata") or {}).get("namespace")
    if source.get("fieldRef"):
        return field_value(pod, source["fieldRef"]["fieldPath"], pod_ip, host_ip)
    if source.get("resourceFieldRef"):
        ref = source["resourceFieldRef"]
        named = ref.get("containerName") or container.get("name")
        target = next((c for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name") == named), container)
        return resource_value(ref, target, allocatable)
    if source.get("configMapKeyRef"):
        ref = source["configMapKeyRef"]
        optional = bool(ref.get("optional"))
        data = config_map(ref["name"], optional)
        if data is None:
            return None
        if ref["key"] not in data:
            if optional:
                return None
            raise ConfigError(f"couldn't find key {ref['key']} in ConfigMap {namespace}/{ref['name']}")
        return data[ref["key"]]
    if source.get("secretKeyRef"):
        ref = source["secretKeyRef"]
        optional = bool(ref.get("optional"))
        secret_data = secret(ref["name"], optional)
        if secret_data is None:
            return None
        if ref["key"] not in secret_data:
            if optional:
                return None
            raise ConfigError(f"couldn't find key {ref['key']} in Secret {namespace}/{ref['name']}")
        return secret_data[ref["key"]].decode("utf-8", "surrogateescape")
    raise ConfigError(f"pod {_pod_ref(pod)}: unsupported valueFrom {sorted(source)}")


def container_argv(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """command + args with `$(VAR)` expanded against the final environment (the kubelet's rule)."""

    def lookup(name: str) -> str | None:
        return env.get(name)

    command = [expand(str(part), lookup) for part in container.get("command") or []]
    args = [expand(str(part), lookup) for part in container.get("args") or []]
    return command + args


# ---------------------------------------------------------------------------------------------- identity


@dataclass(frozen=True)
class RunAs:
    """Who the container's process is and what it may do."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str
    read_only_root: bool
    no_new_privs: bool


def run_as(pod: Mapping[str, Any], container: Mapping[str, Any]) -> RunAs:
    """The process identity from the pod and container securityContext (container wins); raises ConfigError for
    runAsNonRoot with a root user, with the kubelet's message."""
    pod_context = (pod.get("spec") or {}).get("securityContext") or {}
    context = container.get("securityContext") or {}

    def pick(key: str) -> Any:
        return context[key] if context.get(key) is not None else pod_context.get(key)

    uid = int(pick("runAsUser") or 0)
    gid = int(pick("runAsGroup") or 0)
    if pick("runAsNonRoot") and uid == 0:
        metadata = pod.get("metadata") or {}
        raise ConfigError(
            f'container has runAsNonRoot and image will run as root (pod: "{metadata.get("name")}_'
            f'{metadata.get("namespace")}({metadata.get("uid")})", container: {container.get("name")})'
        )
    groups = [int(g) for g in pod_context.get("supplementalGroups") or []]
    if pod_context.get("fsGroup") is not None:
        groups.append(int(pod_context["fsGroup"]))
    try:
        home = pwd.getpwuid(uid).pw_dir
    except KeyError:
        home = "/"
    return RunAs(
        uid=uid,
        gid=gid,
        groups=tuple(dict.fromkeys(groups)),
        home=home,
        read_only_root=bool(context.get("readOnlyRootFilesystem")),
        no_new_privs=context.get("allowPrivilegeEscalation") is False,
    )


def fs_group(pod: Mapping[str, Any]) -> int | None:
    value = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
    return None if value is None else int(value)


# ---------------------------------------------------------------------------------------------- probes


@dataclass(frozen=True)
class ProbeSpec:
    """One probe with the API's defaults applied."""

    kind: str  # httpGet | tcpSocket | exec
    action: Mapping[str, Any]
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int


def probe_spec(raw: Mapping[str, Any] | None) -> ProbeSpec | None:
    if not raw:
        return None
    kind = next((k for k in ("httpGet", "tcpSocket", "exec") if raw.get(k)), None)
    if kind is None:
        raise ConfigError(f"probe {sorted(raw)} has no httpGet, tcpSocket or exec handler", "CreateContainerError")
    return ProbeSpec(
        kind=kind,
        action=raw[kind],
        initial_delay=float(raw.get("initialDelaySeconds") or 0),
        period=float(raw.get("periodSeconds") or 10),
        timeout=float(raw.get("timeoutSeconds") or 1),
        success_threshold=int(raw.get("successThreshold") or 1),
        failure_threshold=int(raw.get("failureThreshold") or 3),
    )


def container_port(container: Mapping[str, Any], port: int | str) -> int:
    """A probe's port: a number, a numeric string, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if str(port).isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ConfigError(f"container {container.get('name')} has no port named {port!r}", "CreateContainerError")


# ---------------------------------------------------------------------------------------------- phase


def pod_phase(spec: Mapping[str, Any], statuses: Mapping[str, Mapping[str, Any]], init: Mapping[str, Any]) -> str:
    """The kubelet's pod phase from the container statuses (name -> status) and init container statuses."""
    policy = spec.get("restartPolicy") or "Always"
    pending_init = failed_init = 0
    for container in spec.get("initContainers") or []:
        status = init.get(container["name"])
        state = (status or {}).get("state") or {}
        last = ((status or {}).get("lastState") or {}).get("terminated")
        if status is None or "running" in state:
            pending_init += 1
        elif "terminated" in state:
            failed_init += state["terminated"].get("exitCode", 0) != 0
        elif "waiting" in state and last is not None:
            failed_init += last.get("exitCode", 0) != 0
        else:
            pending_init += 1
    unknown = running = waiting = stopped = succeeded = 0
    for container in spec.get("containers") or []:
        status = statuses.get(container["name"])
        if status is None:
            unknown += 1
            continue
        state = status.get("state") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"].get("exitCode", 0) == 0
        elif "waiting" in state:
            if (status.get("lastState") or {}).get("terminated") is not None:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1
    if failed_init and policy == "Never":
        return "Failed"
    if pending_init or waiting:
        return "Pending"
    if running and not unknown:
        return "Running"
    if not running and stopped and not unknown:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


def image_repository(image: str) -> tuple[str, str]:
    """(repository, tag) of an image reference; tag "" when none (a digest counts as no tag)."""
    reference = image.split("@", 1)[0]
    head, _, last = reference.rpartition("/")
    if ":" in last:
        name, tag = last.rsplit(":", 1)
        return (f"{head}/{name}" if head else name), tag
    return reference, ""
