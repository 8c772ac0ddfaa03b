"""Stream framing under honest and hostile senders (RFC 6587 on TCP, RFC 5425 on TLS), and the Kafka key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.worker.framing import Cut, FrameDecoder, source_host
from toolkit.worker.syslog import parse

MESSAGES = [b"<13>1 - host%d app - - - message %d" % (n, n) for n in range(4000)]


def octet(messages: list[bytes]) -> bytes:
    return b"".join(b"%d %s" % (len(m), m) for m in messages)


def lines(messages: list[bytes]) -> bytes:
    return b"".join(m + b"\n" for m in messages)


def decode(stream: bytes, chunk: int | None = None, **options) -> tuple[list[bytes], FrameDecoder]:
    decoder = FrameDecoder(**options)
    size = chunk or max(1, len(stream))
    frames: list[bytes] = []
    for start in range(0, len(stream), size):
        frames += decoder.feed(stream[start : start + size])
        assert decoder.buffered <= decoder.max_frame_bytes + len(str(decoder.max_frame_bytes)) + 2
    frames += decoder.finish()
    return frames, decoder


CHUNKS = [None, 65536, 1000, 7, 1]


# --- honest senders ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", CHUNKS)
def test_both_methods_and_mixing_decode_the_same_in_any_read_size(chunk):
    stream = lines(MESSAGES[:40]) + octet(MESSAGES[40:80]) + b"<14>newline after octet\n" + octet(MESSAGES[80:90])
    frames, decoder = decode(stream, chunk)
    assert frames == [*MESSAGES[:80], b"<14>newline after octet", *MESSAGES[80:90]]
    assert decoder.violations == [] and decoder.discarded_bytes == 0


def test_newline_framing_with_crlf_nul_and_blank_lines():
    frames, _ = decode(b"<13>one\r\n\n\x00<13>two\n<13>thr", None)
    assert frames == [b"<13>one", b"<13>two", b"<13>thr"]


def test_octet_counting_keeps_embedded_newlines_and_a_trailing_lf_is_allowed():
    body = b"<13>1 - h a - - - line one\nline two"
    frames, decoder = decode(b"%d %s\n" % (len(body), body) + b"10 <13>second", 3)
    assert frames == [body, b"<13>second"] and decoder.violations == []


def test_stream_end_returns_the_last_line_and_flags_a_cut_octet_frame():
    decoder = FrameDecoder()
    assert decoder.feed(b"<13>last line without newline") == []
    assert decoder.finish() == [b"<13>last line without newline"]
    decoder.feed(b"100 <13>only part")
    [frame] = decoder.finish()
    assert frame == b"<13>only part" and isinstance(frame, Cut)


# --- the cases of issue 14 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("framing", [octet, lines])
def test_a_lying_length_in_front_of_4000_messages_costs_only_the_length(chunk, framing):
    frames, decoder = decode(b"999999999 " + framing(MESSAGES), chunk)
    assert frames == MESSAGES
    assert [(v.reason, v.data, v.length) for v in decoder.violations] == [("count_above_maximum", b"999999999 ", 10)]


@pytest.mark.parametrize("chunk", CHUNKS)
def test_lines_starting_with_digits_and_a_space_are_lines_not_counts(chunk):
    messages = [b"<13>Oct 11 22:14:15 host su: line %d" % n for n in range(21)]
    messages[3] = b"404 Not Found from upstream"
    messages[9] = b"12 monkeys"
    messages[15] = b"7 <b>bold</b> is not a count either when the frame it declares is followed by garbage"
    frames, decoder = decode(lines(messages), chunk)
    assert frames == messages and decoder.violations == []


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("delta", [-5, 1, 2, 3, 7, 40, 500])
def test_a_plausible_but_false_count_loses_at_most_its_declared_length_then_framing_resumes(chunk, delta):
    honest = octet(MESSAGES[:400])
    liar = b"%d %s" % (len(MESSAGES[10]) + delta, MESSAGES[10])
    stream = honest.replace(b"%d %s" % (len(MESSAGES[10]), MESSAGES[10]), liar, 1)
    frames, decoder = decode(stream, chunk)
    kept = set(frames) & set(MESSAGES[:400])
    lost = [m for m in MESSAGES[:400] if m not in kept]
    declared = len(liar) + delta  # header + the length it declares
    longest = max(len(m) + 4 for m in MESSAGES[:400])
    assert sum(len(m) + 3 for m in lost) <= declared + longest, "loss bounded by the declared length (+ the frame"
    " it ends inside)"
    assert lost and MESSAGES[10] in lost and frames[-1] == MESSAGES[399], "framing resumed"
    dead = sum(v.length for v in decoder.violations)
    odd = sum(len(f) for f in frames if f not in kept)  # a false count ending exactly at a read end is forwarded
    assert dead + odd >= sum(len(m) for m in lost), "what was not kept whole is forwarded or dead-lettered"
    assert all(len(v.data) <= decoder.max_frame_bytes for v in decoder.violations)


def test_oversize_lines_are_cut_tagged_and_the_next_frame_is_kept():
    decoder = FrameDecoder(max_frame_bytes=480)
    long_line = b"<13>" + b"a" * 1000 + b"\n"
    frames = []
    for part in (long_line[:600], long_line[600:], b"<13>ok\n"):
        frames += decoder.feed(part)
    assert [(len(f), isinstance(f, Cut)) for f in frames] == [(480, True), (6, False)]
    assert decoder.discarded_bytes == 1000 + 4 - 480 and decoder.buffered == 0


def test_an_oversize_count_is_a_broken_count_and_its_body_is_cut_as_a_line():
    frames, decoder = decode(b"5000 <13>" + b"b" * 4991 + b"\n<13>ok\n", 100, max_frame_bytes=480)
    assert [(len(f), isinstance(f, Cut)) for f in frames] == [(480, True), (6, False)]
    assert [v.reason for v in decoder.violations] == ["count_above_maximum"]


def test_a_desynchronised_octet_stream_does_not_swallow_good_frames_as_a_line():
    stream = octet(MESSAGES[:10]) + b"garbage that is no frame" + octet(MESSAGES[10:200])
    frames, decoder = decode(stream, 1000)
    # the frame just before the garbage cannot be told from a false count: it is dead-lettered, not lost
    assert frames == MESSAGES[:9] + MESSAGES[10:200]
    assert [(v.reason, v.data) for v in decoder.violations] == [
        ("count_false", b"%d %s" % (len(MESSAGES[9]), MESSAGES[9])),
        ("unframed_bytes", b"garbage that is no frame"),
    ]


# --- TLS: RFC 5425 octet counting only ----------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", CHUNKS)
def test_tls_accepts_octet_counting_only(chunk):
    frames, decoder = decode(octet(MESSAGES[:50]), chunk, octet_only=True)
    assert frames == MESSAGES[:50] and decoder.violations == []
    frames, decoder = decode(lines(MESSAGES[:50]) + octet(MESSAGES[50:60]), chunk, octet_only=True)
    assert frames == MESSAGES[50:60]
    assert {v.reason for v in decoder.violations} == {"not_octet_counted"}
    assert sum(v.length for v in decoder.violations) == len(lines(MESSAGES[:50]))


def test_tls_lying_length_in_front_costs_only_the_length():
    frames, decoder = decode(b"999999999 " + octet(MESSAGES[:100]), 4096, octet_only=True)
    assert frames == MESSAGES[:100]
    assert [v.reason for v in decoder.violations] == ["count_above_maximum"]


# --- properties ----------------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    messages=st.lists(
        st.binary(max_size=120).map(lambda b: b"<13>" + b.replace(b"\n", b"_").replace(b" <", b"_<")), max_size=30
    ),
    methods=st.lists(st.booleans(), min_size=30, max_size=30),
    cuts=st.lists(st.integers(min_value=1, max_value=50), max_size=20),
)
def test_honest_streams_decode_exactly_in_any_read_size(messages, methods, cuts):
    """Any mix of octet-counted frames and LF lines (syslog: they start with `<`) comes back exactly, however the
    stream is cut into reads (a line loses the CR before its LF, as RFC 6587 allows)."""
    stream = b"".join((b"%d %s" % (len(m), m)) if methods[i] else m + b"\n" for i, m in enumerate(messages))
    decoder = FrameDecoder(max_frame_bytes=480)
    frames: list[bytes] = []
    position = 0
    for size in [*cuts, len(stream)]:
        frames += decoder.feed(stream[position : position + size])
        position += size
    frames += decoder.finish()
    expected = [m if methods[i] or not m.endswith(b"\r") else m[:-1] for i, m in enumerate(messages)]
    assert frames == expected
    assert decoder.violations == [] and decoder.discarded_bytes == 0


@settings(max_examples=300, deadline=None)
@given(stream=st.binary(max_size=3000), octet_only=st.booleans(), size=st.integers(min_value=1, max_value=700))
def test_any_bytes_are_decoded_within_bounds_and_accounted_for(stream, octet_only, size):
    frames, decoder = decode(stream, size, max_frame_bytes=480, octet_only=octet_only)
    assert all(len(f) <= 480 for f in frames)
    assert all(len(v.data) <= 480 for v in decoder.violations)
    accounted = sum(len(f) for f in frames) + sum(v.length for v in decoder.violations) + decoder.discarded_bytes
    assert accounted <= len(stream)


# --- the key ---------------------------------------------------------------------------------------------------------

SAMPLES = [
    b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 - msg",
    b"<13>1 - - app - - - nil host",
    b"<13>1 - -host app - - - dash-prefixed host",
    b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed",
    b"<34>Oct  1 22:14:15 su: no host",
    b"<34>Oct 11 22:14:15 su[12]: no host, tag with pid",
    b"<34>Oct 11 2024 22:14:15 host tag: explicit year",
    b"<13>2024-05-01T10:00:00.5+02:00 isohost app: rsyslog iso",
    b"<13>2024-05-01T10:00:00Zglued app: no space",
    b"<192>1 - host app - - - PRI too large",
    b"<007>1 - zeros app - - - leading zeros",
    b"<13>garbage after pri",
    b"no pri at all",
    b"<13>Oct 11 22:14:15 hostonly",
    b"<13>Foo 11 22:14:15 host app: unknown month still has a host",
]


def test_a_hostname_longer_than_rfc_5424_allows_is_no_key():
    assert source_host(b"<13>1 - " + b"h" * 255 + b" app - - - x") == b"h" * 255
    assert source_host(b"<13>1 - " + b"h" * 256 + b" app - - - x") is None
    assert source_host(b"<13>Oct 11 22:14:15 " + b"h" * 256 + b" app: x") is None


@pytest.mark.parametrize("raw", SAMPLES)
def test_the_key_is_the_hostname_the_indexer_parses(raw):
    parsed = parse(raw.decode(), datetime(2024, 5, 1, tzinfo=UTC)).hostname
    assert source_host(raw) == (parsed.encode() if parsed is not None else None)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80).map(lambda t: "<13>" + t),
        st.from_regex(r"<1[0-9]{0,2}>1 [ -~]{1,20} [!-~]{1,10} [ -~]{0,40}", fullmatch=True),
        st.from_regex(
            r"<[0-9]{1,3}>[A-Z][a-z]{2} {1,2}[0-9]{1,2} [0-9]{2}:[0-9]{2}:[0-9]{2} ?[ -~]{0,40}", fullmatch=True
        ),
    )
)
def test_the_key_matches_the_full_parser_on_ascii(text):
    parsed = parse(text, datetime(2024, 5, 1, tzinfo=UTC)).hostname
    expected = parsed.encode() if parsed is not None and len(parsed.encode()) <= 255 else None
    assert source_host(text.encode()) == expected
