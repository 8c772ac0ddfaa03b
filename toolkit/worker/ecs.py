"""From a Kafka record written by the receiver to an Elastic Common Schema document and its `_bulk` lines.

The record
----------
The receiver writes the syslog message exactly as received (the Kafka value, bytes) and what it knew about the
reception in headers: `src_ip`, `src_port`, `transport` (udp, tcp or tls), `received_ms` (epoch milliseconds),
`observer` (the receiver's host name) and `truncated` ("1" when framing cut the message). A record without
these headers (written by something else) still becomes a document.

The document
------------
`@timestamp` is the time the sender wrote in the message, or the reception time when it wrote none or one that
could not be read. `event.original` is the raw text (invalid UTF-8 replaced, and tagged `_invalid_utf8`);
`message` the free text; `host.name` the sender's HOSTNAME; `log.syslog.*` the priority split into facility
and
severity (code and name), the RFC 5424 fields and structured data; `process.name`/`process.pid` from APP-NAME
or
the RFC 3164 tag; `observer.hostname`, `source.ip`/`source.port`, `network.transport`/`network.protocol` from
the headers. A message that could not be parsed is kept whole with `tags: [_syslog_parse_failure]` and the
reason in `error.message`; a cut one carries `_truncated`. Fields that would be empty are left out.

The id
------
`document_id(topic, partition, offset)` is `<topic>-<partition>-<offset>`: unique per Kafka record and the
same
at every redelivery of that record, so a `create` of a record that is already stored answers 409.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

import orjson

from toolkit.worker.syslog import (
    FACILITY_NAMES,
    RFC3164_HEADER,
    RFC5424_HEADER,
    SEVERITY_NAMES,
    TAG,
    SyslogMessage,
    parse,
    parse_rfc3339,
    parse_structured_data,
    rfc3164_timestamp,
)

PARSE_FAILURE_TAG = "_syslog_parse_failure"
TRUNCATED_TAG = "_truncated"
INVALID_UTF8_TAG = "_invalid_utf8"


@dataclass(slots=True, frozen=True)
class KafkaRecord:
    """What the indexer needs from one consumed Kafka message."""

    topic: str
    partition: int
    offset: int
    value: bytes
    headers: dict[str, bytes]


def document_id(topic: str, partition: int, offset: int) -> str:
    return f"{topic}-{partition}-{offset}"


class _ReceptionClock:
    """Reception time from the `received_ms` header, with the last conversion cached (records arrive in runs
    that share a millisecond, and the ISO text is the costly part)."""

    __slots__ = ("_last_iso", "_last_millis", "_last_time")

    def __init__(self) -> None:
        self._last_millis = b""
        self._last_time = datetime.now(tz=UTC)
        self._last_iso = ""

    def read(self, headers: dict[str, bytes]) -> tuple[datetime, str]:
        millis = headers.get("received_ms")
        if millis is not None and millis == self._last_millis:
            return self._last_time, self._last_iso
        received: datetime | None = None
        if millis is not None:
            try:
                received = datetime.fromtimestamp(int(millis) / 1000.0, tz=UTC)
            except (ValueError, OverflowError, OSError):
                received = None
        if received is None:
            now = datetime.now(tz=UTC)
            return now, now.isoformat(timespec="milliseconds")
        self._last_millis, self._last_time = millis or b"", received
        self._last_iso = received.isoformat(timespec="milliseconds")
        return received, self._last_iso


_reception_clock = _ReceptionClock()


_FACILITIES = tuple({"code": code, "name": name} for code, name in enumerate(FACILITY_NAMES))
_SEVERITIES = tuple({"code": code, "name": name} for code, name in enumerate(SEVERITY_NAMES))


def _syslog_fields(parsed: SyslogMessage) -> dict[str, Any]:
    syslog: dict[str, Any] = {}
    priority = parsed.priority
    if priority is not None:
        syslog["priority"] = priority
        syslog["facility"] = _FACILITIES[priority >> 3]
        syslog["severity"] = _SEVERITIES[priority & 7]
    if parsed.syntax == "rfc5424":
        syslog["version"] = "1"
        if parsed.app_name is not None:
            syslog["appname"] = parsed.app_name
        if parsed.proc_id is not None:
            syslog["procid"] = parsed.proc_id
        if parsed.msg_id is not None:
            syslog["msgid"] = parsed.msg_id
        if parsed.structured_data:
            syslog["structured_data"] = parsed.structured_data
    if parsed.hostname is not None:
        syslog["hostname"] = parsed.hostname
    return syslog


_reception_cache: dict[tuple[bytes | None, ...], dict[str, Any]] = {}


def _reception_fields(headers: dict[str, bytes]) -> dict[str, Any]:
    """observer, source, network and tls fields from the headers; the same for every record of a connection,
    so built once per distinct header set (the cache is emptied when it reaches 4,096 entries)."""
    key = (headers.get("observer"), headers.get("src_ip"), headers.get("src_port"), headers.get("transport"))
    fields = _reception_cache.get(key)
    if fields is not None:
        return fields
    observer, source_ip, source_port, transport = key
    fields = {}
    if observer:
        fields["observer"] = {"hostname": observer.decode("utf-8", errors="replace")}
    if source_ip:
        source: dict[str, Any] = {"ip": source_ip.decode("ascii", errors="replace")}
        if source_port and source_port.isdigit():
            source["port"] = int(source_port)
        fields["source"] = source
    if transport:
        name = transport.decode("ascii", errors="replace")
        fields["network"] = {"transport": "udp" if name == "udp" else "tcp", "protocol": "syslog"}
        if name == "tls":
            fields["tls"] = {"established": True}
    if len(_reception_cache) >= 4096:
        _reception_cache.clear()
    _reception_cache[key] = fields
    return fields


_PRIORITIES = tuple(
    (_FACILITIES[priority >> 3], _SEVERITIES[priority & 7], SEVERITY_NAMES[priority & 7]) for priority in range(192)
)
_stamp_valid: dict[str, bool] = {}  # RFC 5424 TIMESTAMP text -> whether it is valid RFC 3339
_stamp_3164: dict[tuple[str, bytes | None, tzinfo], str | None] = {}  # (header, received_ms, zone) -> ISO or None
_CACHE_ENTRIES = 8192


def normalise(record: KafkaRecord, zone: tzinfo = UTC, doc_id: str | None = None) -> dict[str, Any]:
    """One Kafka record -> one ECS document (see the module docstring). Never raises on bad content.

    One parse: a clean RFC 5424 or RFC 3164 message (valid UTF-8, no trailing newline, a valid timestamp and
    structured data) is turned into its document straight from the header match, with timestamp checks cached
    (records of one read share their reception time, and senders repeat their second); everything else goes
    through the full parser (`normalise_parsed`). Both give the same document for the same record (tested)."""
    try:
        original = record.value.decode("utf-8")
    except UnicodeDecodeError:
        return normalise_parsed(record, zone)
    if original.endswith("\n"):
        return normalise_parsed(record, zone)
    if doc_id is None:
        doc_id = f"{record.topic}-{record.partition}-{record.offset}"
    match = RFC5424_HEADER.match(original)
    if match is not None:
        document = _rfc5424_document(record, original, match, doc_id)
    else:
        match = RFC3164_HEADER.match(original)
        document = _rfc3164_document(record, original, match, zone, doc_id) if match is not None else None
    return document if document is not None else normalise_parsed(record, zone)


def _finish(
    record: KafkaRecord,
    doc_id: str,
    original: str,
    timestamp: str | None,
    message: str,
    syslog: dict[str, Any],
    level: str,
    host: str | None,
    process: dict[str, Any] | None,
) -> dict[str, Any]:
    headers = record.headers
    _received, received_iso = _reception_clock.read(headers)
    document: dict[str, Any] = {
        "@timestamp": timestamp or received_iso,
        "message": message,
        "event": {
            "original": original,
            "created": received_iso,
            "id": doc_id,
            "kind": "event",
        },
        "log": {"syslog": syslog, "level": level},
    }
    if host is not None:
        document["host"] = {"name": host}
    if process is not None:
        document["process"] = process
    document.update(_reception_fields(headers))
    if headers.get("truncated") == b"1":
        document["tags"] = [TRUNCATED_TAG]
    return document


def _rfc5424_document(record: KafkaRecord, original: str, match: re.Match[str], doc_id: str) -> dict[str, Any] | None:
    """The document of a clean RFC 5424 message, or None (the full parser decides)."""
    priority = int(match[1])
    if priority > 191:
        return None
    stamp, host, app, proc, msg_id = match.group(3, 4, 5, 6, 7)
    if stamp != "-":
        valid = _stamp_valid.get(stamp)
        if valid is None:
            try:
                parse_rfc3339(stamp)
                valid = True
            except ValueError:
                valid = False
            if len(_stamp_valid) >= _CACHE_ENTRIES:
                _stamp_valid.clear()
            _stamp_valid[stamp] = valid
        if not valid:
            return None
    rest = original[match.end() :]
    if rest[:1] == "-":
        structured, rest = None, rest[1:]
    else:
        structured, rest, error = parse_structured_data(rest)
        if error is not None:
            return None
    if rest[:1] == " ":
        rest = rest[1:]
    if rest[:1] == "\ufeff":
        rest = rest[1:]
    facility, severity, level = _PRIORITIES[priority]
    syslog: dict[str, Any] = {"priority": priority, "facility": facility, "severity": severity, "version": "1"}
    process: dict[str, Any] | None = None
    if app != "-":
        syslog["appname"] = app
        process = {"name": app}
    if proc != "-":
        syslog["procid"] = proc
        if process is None:
            process = {}
        if proc.isdigit():
            process["pid"] = int(proc)
    if msg_id != "-":
        syslog["msgid"] = msg_id
    if structured:
        syslog["structured_data"] = structured
    if host == "-":
        host = None
    else:
        syslog["hostname"] = host
    return _finish(record, doc_id, original, None if stamp == "-" else stamp, rest, syslog, level, host, process)


def _rfc3164_document(
    record: KafkaRecord, original: str, match: re.Match[str], zone: tzinfo, doc_id: str
) -> dict[str, Any] | None:
    """The document of a clean RFC 3164 message, or None (the full parser decides)."""
    priority = int(match[1])
    if priority > 191:
        return None
    millis = record.headers.get("received_ms")
    key = (original[match.end(1) + 1 : match.end()], millis, zone)
    stamp = _stamp_3164.get(key, "")
    if stamp == "":
        received, _iso = _reception_clock.read(record.headers)
        try:
            stamp = rfc3164_timestamp(match, received, zone).isoformat(timespec="milliseconds")
        except ValueError:
            stamp = None
        if millis is not None:  # without a reception time the year is now's: nothing to share
            if len(_stamp_3164) >= _CACHE_ENTRIES:
                _stamp_3164.clear()
            _stamp_3164[key] = stamp
    if stamp is None:
        return None
    rest = original[match.end() :]
    space = rest.find(" ")
    first = rest if space < 0 else rest[:space]
    host: str | None = None
    if first and not first.endswith(":") and "[" not in first and space > 0:
        host, rest = first, rest[space + 1 :]
    facility, severity, level = _PRIORITIES[priority]
    syslog: dict[str, Any] = {"priority": priority, "facility": facility, "severity": severity}
    if host is not None:
        syslog["hostname"] = host
    process: dict[str, Any] | None = None
    tag = TAG.match(rest)
    if tag is not None:
        app, proc = tag.group(1, 2)
        process = {"name": app}
        if proc is not None and proc.isdigit():
            process["pid"] = int(proc)
        rest = rest[tag.end() :]
    return _finish(record, doc_id, original, stamp, rest, syslog, level, host, process)


def normalise_parsed(record: KafkaRecord, zone: tzinfo = UTC) -> dict[str, Any]:
    """`normalise` through the full parser (every syntax, every irregularity)."""
    headers = record.headers
    received, received_iso = _reception_clock.read(headers)
    tags: list[str] = []
    try:
        original = record.value.decode("utf-8")
    except UnicodeDecodeError:
        original = record.value.decode("utf-8", errors="replace")
        tags.append(INVALID_UTF8_TAG)
    parsed = parse(original, received, zone)
    if parsed.timestamp_text is not None:
        timestamp_iso = parsed.timestamp_text
    elif parsed.timestamp is not None:
        timestamp_iso = parsed.timestamp.isoformat(timespec="milliseconds")
    else:
        timestamp_iso = received_iso
    event: dict[str, Any] = {
        "original": original,
        "created": received_iso,
        "id": document_id(record.topic, record.partition, record.offset),
        "kind": "event",
    }
    document: dict[str, Any] = {
        "@timestamp": timestamp_iso,
        "message": parsed.message,
        "event": event,
    }
    syslog = _syslog_fields(parsed)
    if syslog:
        log: dict[str, Any] = {"syslog": syslog}
        if "severity" in syslog:
            log["level"] = syslog["severity"]["name"]
        document["log"] = log
    if parsed.hostname is not None:
        document["host"] = {"name": parsed.hostname}
    if parsed.app_name is not None or parsed.proc_id is not None:
        process: dict[str, Any] = {}
        if parsed.app_name is not None:
            process["name"] = parsed.app_name
        proc_id = parsed.proc_id
        if proc_id is not None and proc_id.isdigit():
            process["pid"] = int(proc_id)
        document["process"] = process
    document.update(_reception_fields(headers))
    if parsed.parse_error is not None:
        tags.append(PARSE_FAILURE_TAG)
        document["error"] = {"message": parsed.parse_error, "type": "syslog_parse"}
    if headers.get("truncated") == b"1":
        tags.append(TRUNCATED_TAG)
    if tags:
        document["tags"] = tags
    return document


def _json(document: dict[str, Any]) -> bytes:
    """orjson for speed; the standard library for what orjson refuses (integers beyond 64 bits), so such an event
    still reaches Elasticsearch and is rejected there with a reason, and goes to the dead-letter topic."""
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError:
        return json.dumps(document, separators=(",", ":")).encode()


def encode_create(index: str, doc_id: str, document: dict[str, Any]) -> bytes:
    """The two `_bulk` lines of a `create` of `document` with id `doc_id` into the concrete index `index`."""
    return b'{"create":{"_index":"%s","_id":"%s"}}\n%s\n' % (
        index.encode(),
        doc_id.encode(),
        _json(document),
    )


def encode_bulk(lines: Iterable[bytes]) -> bytes:
    return b"".join(lines)


_index_bytes: dict[str, bytes] = {}


def create_operation(record: KafkaRecord, index: str, zone: tzinfo = UTC) -> tuple[str, bytes, bool]:
    """One record -> (document id, its `create` lines for `index`, whether it was kept raw as unparseable).
    Never raises: a record whose normalisation fails is kept raw with the reason (counted by the caller)."""
    doc_id = f"{record.topic}-{record.partition}-{record.offset}"
    try:
        document = normalise(record, zone, doc_id)
    except Exception as exc:  # a bad event is counted and kept raw, never fatal
        document = {
            "@timestamp": datetime.now(tz=UTC).isoformat(timespec="milliseconds"),
            "event": {"original": record.value.decode("utf-8", errors="replace")},
            "error": {"message": f"normalisation failed: {exc}", "type": "syslog_parse"},
            "tags": [PARSE_FAILURE_TAG],
        }
    index_bytes = _index_bytes.get(index)
    if index_bytes is None:
        if len(_index_bytes) >= 64:
            _index_bytes.clear()
        index_bytes = _index_bytes[index] = index.encode()
    try:
        source = orjson.dumps(document)
    except orjson.JSONEncodeError:
        source = _json(document)
    operation = b'{"create":{"_index":"%s","_id":"%s"}}\n%s\n' % (index_bytes, doc_id.encode(), source)
    return doc_id, operation, "error" in document
