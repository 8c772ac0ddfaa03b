"""Smoke check: one probe event through every hop of a deployed platform, each hop reported.

Inputs are EXPLICIT endpoints (`SmokeTarget`): the syslog receiver (TCP, optionally TLS against a CA), the Kafka
bootstrap with its client TLS/SASL settings, the Elasticsearch URL with its CA and credentials, the events topic
the receivers write and the write alias the indexers write. Nothing is discovered here; whoever calls this
(`toolkit region up`, a CI job) says where the platform answers.

Algorithm (the I/O is toolkit.targets.smoke_probe; this module decides and reports):
1. note the events topic's end offset per partition (so step 3 reads only what arrives after it; a topic that
   does not exist fails the `kafka` hop before anything is sent);
2. `syslog`: open a TCP connection to the receiver (TLS when asked: the server's certificate is verified against
   the CA and the host name), send one RFC 5424 event, octet-counted (RFC 6587/5425), whose HOSTNAME is the
   probe id `smoke-<12 hex>`, and close the connection cleanly;
3. `kafka`: read the events topic from the noted offsets until a record holding the probe id appears, within
   `hop_timeout` seconds;
4. `elasticsearch`: search the write alias for `host.name: <probe id>` (refreshing the alias first when the
   user may) until a document appears, within `hop_timeout` seconds.
The first hop that fails ends the check: later hops are reported as not reached. The report is ok only when
every hop is; a failed hop's detail names the endpoint, what was and was not seen, and where to look next.
The probe document stays in the index (searchable as `host.name: smoke-*`; it is one event, tagged `smoke`).
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from toolkit.model.smoke import ElasticsearchTarget, KafkaTarget, SmokeTarget, SyslogTarget

HOPS = ("syslog", "kafka", "elasticsearch")
PROBE_APP = "toolkit-smoke"


@dataclass(frozen=True)
class Hop:
    name: str
    ok: bool
    seconds: float
    detail: str
    reached: bool = True

    def line(self) -> str:
        mark = "ok" if self.ok else ("FAIL" if self.reached else "--")
        return f"[{mark:>4}] {self.name:<13} {self.seconds:6.2f}s  {self.detail}"


@dataclass(frozen=True)
class SmokeReport:
    probe_id: str
    hops: tuple[Hop, ...]

    @property
    def ok(self) -> bool:
        return len(self.hops) == len(HOPS) and all(h.ok for h in self.hops)

    @property
    def failed_hop(self) -> Hop | None:
        return next((h for h in self.hops if h.reached and not h.ok), None)

    def lines(self) -> list[str]:
        return [h.line() for h in self.hops]

    def summary(self) -> str:
        failed = self.failed_hop
        if failed is None:
            total = sum(h.seconds for h in self.hops)
            return f"probe {self.probe_id} went syslog -> Kafka -> Elasticsearch in {total:.2f}s"
        return f"probe {self.probe_id} stopped at hop {failed.name}: {failed.detail}"


def probe_id() -> str:
    return f"smoke-{secrets.token_hex(6)}"


def probe_event(probe: str, now: dt.datetime | None = None) -> bytes:
    """One RFC 5424 event (facility user, severity info) whose HOSTNAME is the probe id, octet-counted."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = f"<14>1 {stamp} {probe} {PROBE_APP} - smoke - toolkit smoke probe {probe}".encode()
    return b"%d %s" % (len(body), body)


def run_smoke(
    target: SmokeTarget,
    hop_timeout: float = 60.0,
    *,
    clock: Callable[[], float] = time.monotonic,
    probe: str | None = None,
) -> SmokeReport:
    """Send one probe through syslog -> Kafka -> Elasticsearch and report each hop (see the module docstring)."""
    from toolkit.targets import smoke_probe

    probe = probe or probe_id()
    hops: list[Hop] = []

    def not_reached(after: str) -> SmokeReport:
        for name in HOPS[len(hops) :]:
            hops.append(Hop(name, False, 0.0, f"not reached (stopped at {after})", reached=False))
        return SmokeReport(probe, tuple(hops))

    started = clock()
    try:
        offsets = smoke_probe.end_offsets(target.kafka, target.events_topic)
    except smoke_probe.ProbeError as error:
        hops.append(Hop("syslog", False, 0.0, "not sent: the events topic must be readable first", reached=False))
        hops.append(Hop("kafka", False, clock() - started, str(error)))
        return not_reached("kafka")

    started = clock()
    try:
        smoke_probe.send_syslog(target.syslog, probe_event(probe), timeout=min(hop_timeout, 30.0))
    except smoke_probe.ProbeError as error:
        hops.append(Hop("syslog", False, clock() - started, f"receiver {target.syslog}: {error}"))
        return not_reached("syslog")
    hops.append(Hop("syslog", True, clock() - started, f"sent {probe} to receiver {target.syslog}"))

    started = clock()
    try:
        found = smoke_probe.find_in_kafka(target.kafka, target.events_topic, offsets, probe, hop_timeout)
    except smoke_probe.ProbeError as error:
        hops.append(Hop("kafka", False, clock() - started, str(error)))
        return not_reached("kafka")
    if found is None:
        hops.append(
            Hop(
                "kafka",
                False,
                clock() - started,
                f"{probe} did not appear in topic {target.events_topic} at {target.kafka.bootstrap} within "
                f"{hop_timeout:g}s after receiver {target.syslog} took it: the receiver accepted the connection but "
                "did not produce to Kafka (see its /readyz and its logs)",
            )
        )
        return not_reached("kafka")
    partition, offset = found
    hops.append(
        Hop("kafka", True, clock() - started, f"in {target.events_topic} partition {partition} offset {offset}")
    )

    started = clock()
    try:
        document = smoke_probe.find_in_elasticsearch(target.elasticsearch, target.write_alias, probe, hop_timeout)
    except smoke_probe.ProbeError as error:
        hops.append(Hop("elasticsearch", False, clock() - started, str(error)))
        return not_reached("elasticsearch")
    if document is None:
        hops.append(
            Hop(
                "elasticsearch",
                False,
                clock() - started,
                f"{probe} reached Kafka ({target.events_topic} partition {partition} offset {offset}) but no document "
                f"with host.name {probe} appeared under {target.write_alias} at {target.elasticsearch.url} within "
                f"{hop_timeout:g}s: the indexers are not consuming or cannot write (see the indexer group's lag and "
                "the indexers' logs)",
            )
        )
        return not_reached("elasticsearch")
    found_in = f"found as {document} by a search of {target.write_alias}"
    hops.append(Hop("elasticsearch", True, clock() - started, found_in))
    return SmokeReport(probe, tuple(hops))


class SmokeTargetError(ValueError):
    """A smoke endpoints file that cannot be used; the message names the key and the way out."""


def _text(section: dict[str, object], key: str, where: str, required: bool = False) -> str | None:
    value = section.get(key)
    if value is None:
        if required:
            raise SmokeTargetError(f"{where}.{key} is required")
        return None
    if not isinstance(value, str) or not value:
        raise SmokeTargetError(f"{where}.{key} must be a non-empty string (got {value!r})")
    return value


def _secret(section: dict[str, object], key: str, where: str, environ: dict[str, str]) -> str | None:
    """A secret is named by the environment variable that holds it (`<key>_env`), never written in the file."""
    if key in section:
        raise SmokeTargetError(f"{where}.{key}: secrets never go in the file; name the variable in {key}_env")
    name = _text(section, f"{key}_env", where)
    if name is None:
        return None
    value = environ.get(name)
    if not value:
        raise SmokeTargetError(f"{where}.{key}_env names {name}, which is not set; export it")
    return value


def target_from_document(document: object, environ: dict[str, str]) -> SmokeTarget:
    """A SmokeTarget from a parsed endpoints file (format in the README); raises SmokeTargetError."""
    if not isinstance(document, dict):
        raise SmokeTargetError("the smoke endpoints file must be a mapping with syslog, kafka and elasticsearch")
    sections: dict[str, dict[str, object]] = {}
    for name in ("syslog", "kafka", "elasticsearch"):
        section = document.get(name)
        if not isinstance(section, dict):
            raise SmokeTargetError(f"{name}: missing or not a mapping")
        sections[name] = section
    unknown = set(document) - {"syslog", "kafka", "elasticsearch", "events_topic", "write_alias"}
    if unknown:
        raise SmokeTargetError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    syslog, kafka, es = sections["syslog"], sections["kafka"], sections["elasticsearch"]
    port = syslog.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise SmokeTargetError(f"syslog.port must be a port number (got {port!r})")
    tls = syslog.get("tls", False)
    if not isinstance(tls, bool):
        raise SmokeTargetError(f"syslog.tls must be true or false (got {tls!r})")
    kafka_tls = kafka.get("tls", False)
    if not isinstance(kafka_tls, bool):
        raise SmokeTargetError(f"kafka.tls must be true or false (got {kafka_tls!r})")
    return SmokeTarget(
        syslog=SyslogTarget(
            host=str(_text(syslog, "host", "syslog", required=True)),
            port=port,
            tls=tls,
            ca_file=_text(syslog, "ca_file", "syslog"),
            server_name=_text(syslog, "server_name", "syslog"),
        ),
        kafka=KafkaTarget(
            bootstrap=str(_text(kafka, "bootstrap", "kafka", required=True)),
            tls=kafka_tls,
            ca_file=_text(kafka, "ca_file", "kafka"),
            client_cert=_text(kafka, "client_cert", "kafka"),
            client_key=_text(kafka, "client_key", "kafka"),
            sasl_username=_secret(kafka, "sasl_username", "kafka", environ),
            sasl_password=_secret(kafka, "sasl_password", "kafka", environ),
        ),
        elasticsearch=ElasticsearchTarget(
            url=str(_text(es, "url", "elasticsearch", required=True)),
            ca_file=_text(es, "ca_file", "elasticsearch"),
            username=_secret(es, "username", "elasticsearch", environ),
            password=_secret(es, "password", "elasticsearch", environ),
            api_key=_secret(es, "api_key", "elasticsearch", environ),
        ),
        events_topic=str(_text(dict(document), "events_topic", "file", required=True)),
        write_alias=str(_text(dict(document), "write_alias", "file", required=True)),
    )


def smoke_with(resolve_target: Callable[[Any], SmokeTarget], hop_timeout: float = 60.0) -> Callable[[Any], Any]:
    """The smoke step of `toolkit region up` (toolkit.provision.region_up) over the endpoints `resolve_target(ctx)`
    returns, resolved when the step runs, after deploy (load balancer addresses exist only then)."""
    from toolkit.provision.region_up import StepOutcome

    def run(ctx: Any) -> StepOutcome:
        report = run_smoke(resolve_target(ctx), hop_timeout=hop_timeout)
        return StepOutcome(report.ok, report.summary(), tuple(report.lines()))

    return run


__all__ = [
    "ElasticsearchTarget",
    "KafkaTarget",
    "SmokeTarget",
    "SyslogTarget",
    "run_smoke",
    "smoke_with",
    "target_from_document",
]
