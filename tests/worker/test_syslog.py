"""Syslog parsing (RFC 5424, RFC 3164, malformed input)."""

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from toolkit.worker.syslog import parse

RECEIVED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_rfc5424_full_message_with_structured_data_and_bom():
    raw = (
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 "
        '[exampleSDID@32473 iut="3" eventSource="App\\"lication\\]" eventID="1011"][meta@1 seq="7"] '
        "\ufeffAn application event"
    )
    message = parse(raw, RECEIVED)
    assert message.syntax == "rfc5424"
    assert message.parse_error is None
    assert (message.priority, message.facility, message.severity) == (165, 20, 5)
    assert message.timestamp == datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)
    assert message.timestamp_text == "2003-10-11T22:14:15.003Z"
    assert (message.hostname, message.app_name, message.proc_id, message.msg_id) == (
        "mymachine.example.com",
        "evntslog",
        "1234",
        "ID47",
    )
    assert message.structured_data == {
        "exampleSDID@32473": {"iut": "3", "eventSource": 'App"lication]', "eventID": "1011"},
        "meta@1": {"seq": "7"},
    }
    assert message.message == "An application event"


def test_rfc5424_nil_fields_and_offset_timestamp():
    message = parse("<13>1 2024-05-01T10:00:00.123456+02:00 - - - - - ", RECEIVED)
    assert message.syntax == "rfc5424" and message.parse_error is None
    assert message.hostname is message.app_name is message.proc_id is message.msg_id is None
    assert message.structured_data is None
    assert message.timestamp.utcoffset() == timedelta(hours=2)
    assert message.message == ""


def test_rfc5424_nil_timestamp_leaves_it_to_the_reception_time():
    message = parse("<14>1 - host app - - - text", RECEIVED)
    assert message.timestamp is None and message.parse_error is None and message.message == "text"


def test_rfc5424_bad_timestamp_and_bad_structured_data_are_flagged_not_dropped():
    bad_time = parse("<14>1 2024-13-45T99:00:00Z host app - - - text", RECEIVED)
    assert bad_time.parse_error is not None and "TIMESTAMP" in bad_time.parse_error
    assert bad_time.hostname == "host" and bad_time.message == "text"
    bad_sd = parse('<14>1 - host app - - [unterminated a="1" text', RECEIVED)
    assert bad_sd.parse_error is not None and "STRUCTURED-DATA" in bad_sd.parse_error


def test_rfc3164_with_hostname_tag_and_pid():
    message = parse("<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed", RECEIVED)
    assert message.syntax == "rfc3164" and message.parse_error is None
    assert (message.facility, message.severity) == (4, 2)
    assert message.timestamp == datetime(2023, 10, 11, 22, 14, 15, tzinfo=UTC)  # Oct 2024 is in the future
    assert (message.hostname, message.app_name, message.proc_id) == ("mymachine", "su", "230")
    assert message.message == "'su root' failed"


def test_rfc3164_same_year_when_not_in_the_future_and_configured_zone():
    paris = ZoneInfo("Europe/Paris")
    message = parse("<13>Feb  5 17:32:18 10.0.0.99 myapp: hello", RECEIVED, paris)
    assert message.timestamp == datetime(2024, 2, 5, 17, 32, 18, tzinfo=paris)
    assert message.hostname == "10.0.0.99" and message.app_name == "myapp" and message.proc_id is None


def test_rfc3164_without_hostname_and_with_iso_timestamp():
    no_host = parse("<13>Feb  5 17:32:18 sshd[123]: Accepted key", RECEIVED)
    assert no_host.hostname is None
    assert (no_host.app_name, no_host.proc_id, no_host.message) == ("sshd", "123", "Accepted key")
    iso = parse("<30>2024-05-01T11:59:00.5+01:00 web01 nginx: GET /", RECEIVED)
    assert iso.syntax == "rfc3164" and iso.timestamp == datetime(
        2024, 5, 1, 11, 59, 0, 500000, tzinfo=timezone(timedelta(hours=1))
    )
    assert (iso.hostname, iso.app_name, iso.message) == ("web01", "nginx", "GET /")


def test_rfc3164_december_event_received_in_january_belongs_to_last_year():
    message = parse("<13>Dec 31 23:59:59 h app: x", datetime(2024, 1, 1, 0, 0, 5, tzinfo=UTC))
    assert message.timestamp.year == 2023


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("no priority at all", "no <PRI> header"),
        ("<999>1 - - - - - - x", "PRI 999 is above 191"),
        ("<13>garbage after pri", "header is neither RFC 5424 nor RFC 3164"),
        ("<13>Foo 11 22:14:15 host app: x", "unknown month"),
        ("<13>Feb 30 22:14:15 host app: x", "invalid RFC 3164 TIMESTAMP"),
    ],
)
def test_malformed_lines_are_kept_with_a_reason(raw, reason):
    message = parse(raw, RECEIVED)
    assert message.parse_error is not None and reason in message.parse_error
    assert message.message  # the text is kept, never emptied


def test_trailing_newline_is_not_part_of_the_message():
    assert parse("<13>1 - h a - - - text\r\n", RECEIVED).message == "text"
