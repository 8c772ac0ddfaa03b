"""What kube-proxy and the cluster DNS would make of the cluster's Services: pure functions, no I/O.

Service rules (`service_rules`, `render_ruleset`)
-------------------------------------------------
For every Service with a ClusterIP and every port of it: the Ready endpoint addresses of the port (Endpoints subsets,
matched by port name as kube-proxy matches them), or, when the port is *published* (dataplane.py: a TLS terminator
in front of the single-node peer), exactly the publication's target. The ruleset is one nft table:
    nat/output:     ClusterIP + protocol + port -> DNAT to one backend (numgen random over several, per connection)
    filter/output:  ClusterIP + port with no backend -> reject (TCP reset / ICMP), as kube-proxy rejects
Rules live in the `output` hook of every network namespace that has clients: the root namespace (tests, the
orchestrator, load generators) and each pod's own namespace. The DNAT happens where the connection starts, so the
packets on the bridge already carry the backend's address: no forwarding, no hairpin NAT, no host-wide sysctl.
The table is replaced whole in one `nft -f` transaction (`table` + `delete table` + `table {...}`).

Cluster DNS (`dns_records`, `hosts_file`)
----------------------------------------
A hosts file per pod stands in for CoreDNS (glibc reads /etc/hosts first): for a Service with a ClusterIP, the
ClusterIP under `<svc>.<ns>.svc.cluster.local`, `<svc>.<ns>.svc`, `<svc>.<ns>`, and `<svc>` for pods of the same
namespace; for a headless Service, one line per Ready endpoint address (and not-ready ones with
publishNotReadyAddresses) under the Service names, plus its per-pod name `<hostname>.<svc>.<ns>.svc.cluster.local`
(hostname from the endpoint, else the dashed IP, as CoreDNS answers). The head of the file is the kubelet's own
(localhost lines, the pod's IP under its hostname, hostAliases).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

JsonDict = dict[str, Any]
ObjectKey = tuple[str, str]  # (namespace, name)
PublishedKey = tuple[str, str, int]  # (namespace, service, port)
CLUSTER_DOMAIN = "cluster.local"
PROTOCOLS = ("TCP", "UDP")


@dataclass(frozen=True)
class ServiceRule:
    """One ClusterIP port and where its connections go (empty backends: rejected)."""

    namespace: str
    service: str
    cluster_ip: str
    protocol: str  # TCP | UDP
    port: int
    backends: tuple[tuple[str, int], ...]


def _key(obj: Mapping[str, Any]) -> ObjectKey:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))


def has_cluster_ip(service: Mapping[str, Any]) -> bool:
    return ((service.get("spec") or {}).get("clusterIP") or "None") != "None"


def _port_backends(endpoints: Mapping[str, Any] | None, port_name: str, protocol: str) -> list[tuple[str, int]]:
    backends = []
    for subset in (endpoints or {}).get("subsets") or []:
        port = next(
            (
                p
                for p in subset.get("ports") or []
                if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == protocol
            ),
            None,
        )
        if port is None:
            continue
        backends += [(str(a["ip"]), int(port["port"])) for a in subset.get("addresses") or []]
    return sorted(set(backends))


def service_rules(
    services: Iterable[Mapping[str, Any]],
    endpoints: Mapping[ObjectKey, Mapping[str, Any]],
    published: Mapping[PublishedKey, tuple[str, int]] | None = None,
) -> list[ServiceRule]:
    """The rules for every ClusterIP port (sorted by namespace, service, port)."""
    published = published or {}
    rules = []
    for service in services:
        if not has_cluster_ip(service):
            continue
        namespace, name = _key(service)
        spec = service["spec"]
        for port in spec.get("ports") or []:
            protocol = str(port.get("protocol") or "TCP")
            if protocol not in PROTOCOLS:
                continue
            number = int(port["port"])
            target = published.get((namespace, name, number))
            if target is not None and protocol == "TCP":
                backends = [target]
            else:
                backends = _port_backends(endpoints.get((namespace, name)), str(port.get("name") or ""), protocol)
            rules.append(ServiceRule(namespace, name, str(spec["clusterIP"]), protocol, number, tuple(backends)))
    return sorted(rules, key=lambda r: (r.namespace, r.service, r.port, r.protocol))


def render_ruleset(table: str, rules: Iterable[ServiceRule], inbound: Iterable[str] = ()) -> str:
    """An nft script that replaces table `ip <table>` with the given rules, atomically; `inbound` are extra
    prerouting NAT rules (the root namespace's relay of the apiserver, see services.py)."""
    nat, reject = [], []
    for rule in rules:
        match = f"ip daddr {rule.cluster_ip} {rule.protocol.lower()} dport {rule.port}"
        comment = f'comment "{rule.namespace}/{rule.service}:{rule.port}/{rule.protocol}"'
        if not rule.backends:
            action = "reject with tcp reset" if rule.protocol == "TCP" else "reject"
            reject.append(f"    {match} {action} {comment}")
        elif len(rule.backends) == 1:
            ip, port = rule.backends[0]
            nat.append(f"    {match} dnat to {ip}:{port} {comment}")
        else:
            choices = ", ".join(f"{i} : {ip} . {port}" for i, (ip, port) in enumerate(rule.backends))
            nat.append(f"    {match} dnat ip to numgen random mod {len(rule.backends)} map {{ {choices} }} {comment}")
    lines = [
        f"table ip {table}",
        f"delete table ip {table}",
        f"table ip {table} {{",
        "  chain services_nat {",
        "    type nat hook output priority -100; policy accept;",
        *nat,
        "  }",
        "  chain services_reject {",
        "    type filter hook output priority 0; policy accept;",
        *reject,
        "  }",
    ]
    inbound = list(inbound)
    if inbound:
        lines += ["  chain inbound_nat {", "    type nat hook prerouting priority dstnat; policy accept;"]
        lines += [f"    {rule}" for rule in inbound] + ["  }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- DNS


@dataclass(frozen=True)
class DnsRecord:
    """One address under its names, as seen from namespace `namespace` (short names included there)."""

    address: str
    names: tuple[str, ...]


def _service_names(name: str, namespace: str, own_namespace: str) -> list[str]:
    names = [f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}", f"{name}.{namespace}.svc", f"{name}.{namespace}"]
    if namespace == own_namespace:
        names.append(name)
    return names


def dns_records(
    services: Iterable[Mapping[str, Any]],
    endpoints: Mapping[ObjectKey, Mapping[str, Any]],
    own_namespace: str,
) -> list[DnsRecord]:
    """Every Service name a pod of `own_namespace` can resolve (see the module docstring)."""
    records = []
    for service in sorted(services, key=_key):
        namespace, name = _key(service)
        spec = service.get("spec") or {}
        if spec.get("type") == "ExternalName":
            continue
        names = _service_names(name, namespace, own_namespace)
        if has_cluster_ip(service):
            records.append(DnsRecord(str(spec["clusterIP"]), tuple(names)))
            continue
        include_not_ready = bool(spec.get("publishNotReadyAddresses"))
        addresses: dict[str, str] = {}
        for subset in (endpoints.get((namespace, name)) or {}).get("subsets") or []:
            listed = list(subset.get("addresses") or [])
            if include_not_ready:
                listed += subset.get("notReadyAddresses") or []
            for address in listed:
                addresses[str(address["ip"])] = str(address.get("hostname") or str(address["ip"]).replace(".", "-"))
        for ip in sorted(addresses):
            records.append(DnsRecord(ip, tuple(names)))
        for ip, host in sorted(addresses.items()):
            per_pod = [f"{host}.{n}" for n in names[:3]]
            if namespace == own_namespace:
                per_pod.append(f"{host}.{name}")
            records.append(DnsRecord(ip, tuple(per_pod)))
    return records


def hosts_file(pod: Mapping[str, Any], pod_ip: str, records: Iterable[DnsRecord]) -> str:
    """The pod's /etc/hosts: the kubelet's managed head, then the cluster's Service names."""
    metadata, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    hostname = str(spec.get("hostname") or metadata.get("name", ""))
    subdomain = spec.get("subdomain")
    lines = [
        "# Kubernetes-managed hosts file (toolkit local node agent).",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
    ]
    if subdomain:
        fqdn = f"{hostname}.{subdomain}.{metadata.get('namespace')}.svc.{CLUSTER_DOMAIN}"
        lines.append(f"{pod_ip}\t{fqdn}\t{hostname}")
    else:
        lines.append(f"{pod_ip}\t{hostname}")
    aliases = spec.get("hostAliases") or []
    if aliases:
        lines.append("")
        lines.append("# Entries added by HostAliases.")
        lines += [f"{alias['ip']}\t" + "\t".join(alias.get("hostnames") or []) for alias in aliases]
    lines.append("")
    lines.append("# Cluster DNS (the Services of the cluster; kept current by the node agent).")
    lines += [f"{record.address}\t" + " ".join(record.names) for record in records]
    return "\n".join(lines) + "\n"


def namespace_hosts_file(namespace: str, records: Iterable[DnsRecord]) -> str:
    """The Service names seen from `namespace`, for processes of the root network namespace (bind it over
    /etc/hosts in a private mount namespace: `unshare --mount`)."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", ""]
    lines.append(f"# Cluster DNS as seen from namespace {namespace} (toolkit local node agent).")
    lines += [f"{record.address}\t" + " ".join(record.names) for record in records]
    return "\n".join(lines) + "\n"


def resolv_conf(namespace: str, dns_config: Mapping[str, Any] | None = None) -> str:
    """The pod's resolv.conf: the cluster search path; no nameserver (names come from the hosts file)."""
    searches = [f"{namespace}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN]
    searches += list((dns_config or {}).get("searches") or [])
    options = ["ndots:5"] + [
        f"{o['name']}:{o['value']}" if o.get("value") else str(o["name"])
        for o in (dns_config or {}).get("options") or []
    ]
    return f"search {' '.join(searches)}\noptions {' '.join(options)}\n"
