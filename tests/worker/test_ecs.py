"""ECS normalisation, the document id scheme and bulk encoding."""

import json

from toolkit.worker.ecs import (
    INVALID_UTF8_TAG,
    PARSE_FAILURE_TAG,
    TRUNCATED_TAG,
    KafkaRecord,
    document_id,
    encode_create,
    normalise,
)

HEADERS = {
    "src_ip": b"10.1.2.3",
    "src_port": b"40000",
    "transport": b"tls",
    "received_ms": b"1714564800000",  # 2024-05-01T12:00:00Z
    "observer": b"receiver-0",
}


def record(value: bytes, headers=HEADERS, offset=7) -> KafkaRecord:
    return KafkaRecord("syslog-raw", 3, offset, value, dict(headers))


def test_rfc5424_event_becomes_ecs_fields():
    raw = b'<165>1 2003-10-11T22:14:15.003Z mymachine evntslog 1234 ID47 [ex@1 k="v"] hello'
    doc = normalise(record(raw))
    assert doc["@timestamp"] == "2003-10-11T22:14:15.003Z"
    assert doc["message"] == "hello"
    assert doc["event"] == {
        "original": raw.decode(),
        "created": "2024-05-01T12:00:00.000+00:00",
        "id": "syslog-raw-3-7",
        "kind": "event",
    }
    assert doc["host"] == {"name": "mymachine"}
    syslog = doc["log"]["syslog"]
    assert syslog["priority"] == 165
    assert syslog["facility"] == {"code": 20, "name": "local4"}
    assert syslog["severity"] == {"code": 5, "name": "notice"}
    assert (syslog["appname"], syslog["procid"], syslog["msgid"], syslog["version"]) == (
        "evntslog",
        "1234",
        "ID47",
        "1",
    )
    assert syslog["structured_data"] == {"ex@1": {"k": "v"}}
    assert doc["log"]["level"] == "notice"
    assert doc["process"] == {"name": "evntslog", "pid": 1234}
    assert doc["observer"] == {"hostname": "receiver-0"}
    assert doc["source"] == {"ip": "10.1.2.3", "port": 40000}
    assert doc["network"] == {"transport": "tcp", "protocol": "syslog"}
    assert doc["tls"] == {"established": True}
    assert "tags" not in doc and "error" not in doc


def test_rfc3164_event_and_udp_transport():
    headers = dict(HEADERS, transport=b"udp")
    doc = normalise(record(b"<34>Oct 11 22:14:15 mymachine su[230]: failed", headers))
    assert doc["@timestamp"] == "2023-10-11T22:14:15.000+00:00"
    assert doc["process"] == {"name": "su", "pid": 230}
    assert doc["network"]["transport"] == "udp" and "tls" not in doc
    assert "appname" not in doc["log"]["syslog"]  # RFC 5424-only fields stay out


def test_unparseable_event_is_kept_raw_with_flag_and_reception_time():
    doc = normalise(record(b"just some text"))
    assert doc["message"] == "just some text" and doc["event"]["original"] == "just some text"
    assert doc["tags"] == [PARSE_FAILURE_TAG]
    assert doc["error"] == {"message": "no <PRI> header", "type": "syslog_parse"}
    assert doc["@timestamp"] == "2024-05-01T12:00:00.000+00:00"
    assert "log" not in doc and "host" not in doc


def test_invalid_utf8_and_truncation_are_tagged():
    doc = normalise(record(b"<13>1 - h app - - - caf\xe9", dict(HEADERS, truncated=b"1")))
    assert doc["message"] == "caf\ufffd"
    assert doc["tags"] == [INVALID_UTF8_TAG, TRUNCATED_TAG]


def test_non_numeric_procid_is_not_a_pid():
    doc = normalise(record(b"<13>1 - h app worker-7 - - x"))
    assert doc["process"] == {"name": "app"} and doc["log"]["syslog"]["procid"] == "worker-7"


def test_record_without_receiver_headers_still_becomes_a_document():
    doc = normalise(record(b"<13>1 - h app - - - x", headers={}))
    assert doc["message"] == "x" and "source" not in doc and "observer" not in doc
    assert doc["@timestamp"].endswith("+00:00")


def test_document_id_is_unique_per_record_and_stable_across_redelivery():
    ids = {document_id("t", p, o) for p in range(3) for o in range(1000)}
    assert len(ids) == 3000
    assert document_id("t", 1, 5) == document_id("t", 1, 5) == "t-1-5"
    assert document_id("t", 1, 15) != document_id("t", 11, 5)


def test_encode_create_is_two_ndjson_lines():
    payload = encode_create("idx-000001", "t-0-1", {"message": 'é "q"\n'})
    action, source, end = payload.split(b"\n")
    assert end == b""
    assert json.loads(action) == {"create": {"_index": "idx-000001", "_id": "t-0-1"}}
    assert json.loads(source) == {"message": 'é "q"\n'}


def test_bulk_encoding_keeps_integers_orjson_refuses() -> None:
    from toolkit.worker.ecs import encode_create

    body = encode_create("idx", "t-0-1", {"process": {"pid": 2**70}, "message": "x"})
    assert b'"pid":1180591620717411303424' in body
