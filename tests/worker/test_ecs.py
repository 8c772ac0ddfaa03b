"""ECS normalisation, the document id scheme and bulk encoding."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.worker.ecs import (
    INVALID_UTF8_TAG,
    PARSE_FAILURE_TAG,
    TRUNCATED_TAG,
    KafkaRecord,
    document_id,
    encode_create,
    normalise,
    normalise_parsed,
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


# --- one parse: the fast path gives the same documents as the full parser ---------------------------------------

EQUIVALENCE_SAMPLES = [
    b'<165>1 2024-05-01T10:00:00.123Z web-1.example.com nginx 1000 REQ [req@1 method="GET" status="200"] GET /a',
    b"<38>May  1 10:00:00 bastion-1 sshd[1001]: Accepted publickey for deploy from 10.0.0.1 port 52222",
    b"<14>1 2024-05-01T10:00:00Z db-1 postgres 77 - - checkpoint complete",
    b"<14>1 - - - - - -",
    b"<14>1 - - - - - - \xef\xbb\xbfBOM message",
    b'<14>2 2024-05-01T10:00:00+02:00 h a p m [a@1 x="1"][b@2 y="\\"q\\]"] version two',
    b"<14>1 2024-13-45T99:00:00Z host app - - - bad stamp",
    b'<14>1 - host app - - [unterminated a="1" text',
    b"<14>1 - host app - - nosd text",
    b"<14>1 - host app 12x - - non-numeric procid",
    b"<192>1 - host app - - - PRI too large",
    b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed",
    b"<34>Oct  1 22:14:15 su: no host",
    b"<34>Dec 31 23:59:59 host cron[12]: december",
    b"<34>Oct 11 2023 22:14:15 host tag: explicit year",
    b"<13>2024-05-01T10:00:00.5+02:00 isohost app: iso",
    b"<13>Feb 30 22:14:15 host app: impossible date",
    b"<13>Foo 11 22:14:15 host app: unknown month",
    b"<13>Oct 11 22:14:15 hostonly",
    b"<13>Oct 11 22:14:15 host plain text without tag",
    b"<13>garbage after pri",
    b"no pri at all",
    b"<13>1 - host app - - - trailing newline\n",
    b"<13>1 - h\xff app - - - invalid utf-8",
    b"<13>1 - h app \xc2\xb2 - - superscript digit procid",
]


@pytest.mark.parametrize("raw", EQUIVALENCE_SAMPLES)
@pytest.mark.parametrize("truncated", [False, True])
def test_fast_documents_equal_the_full_parsers(raw, truncated):
    headers = dict(HEADERS) | ({"truncated": b"1"} if truncated else {})
    record = KafkaRecord("t", 1, 2, raw, headers)
    try:
        reference = normalise_parsed(record)
    except ValueError:  # the full parser's int() of a non-ASCII digit: create_operation keeps such events raw
        with pytest.raises(ValueError):
            normalise(record)
        return
    assert normalise(record) == reference


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.from_regex(
            r"<[0-9]{1,3}>[1-9] "
            r"(-|2024-0[1-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9](\.[0-9]{1,6})?(Z|[+-]0[0-9]:00))"
            r" [!-~]{1,8} [!-~]{1,8} [!-~]{1,8} [!-~]{1,8} "
            r"(-|\[[a-z@0-9]{1,6}( [a-z]{1,3}=\"[ -~]{0,5}\")*\])[ -~]{0,30}",
            fullmatch=True,
        ),
        st.from_regex(
            r"<[0-9]{1,3}>(Jan|Feb|Mar|Dec|Foo) {1,2}[0-3]?[0-9] ([0-9]{4} )?[0-2][0-9]:[0-5][0-9]:[0-6][0-9] ?"
            r"[ -~]{0,40}",
            fullmatch=True,
        ),
    ),
    st.sampled_from([b"1714557600000", b"1704067200000", b"1735689599000"]),
)
def test_fast_documents_equal_the_full_parsers_on_generated_syslog(text, received_ms):
    record = KafkaRecord("t", 0, 1, text.encode(), dict(HEADERS) | {"received_ms": received_ms})
    assert normalise(record) == normalise_parsed(record)
