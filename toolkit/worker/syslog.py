"""Syslog message parsing (RFC 5424, RFC 3164); stream framing lives in `toolkit.worker.framing`.

Parsing
-------
`parse(raw, received)` never raises and never drops: it returns a `SyslogMessage` whose `parse_error` is None
for a well-formed message and a short reason otherwise; the raw text is always kept by the caller as
`event.original`. The order of attempts:

1. `<PRI>` must open the message, PRI in 0..191 (facility * 8 + severity). Without it the line is kept whole
   as the message with parse_error "no <PRI> header".
2. `<PRI>VERSION SP` with VERSION a digit 1..99 -> RFC 5424: TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
   separated by one space, `-` meaning nil, then STRUCTURED-DATA (`-` or one or more `[id param="value"...]`
   elements, with `\\"`, `\\]` and `\\\\` escapes), then an optional SP MSG (a UTF-8 BOM is removed).
3. Otherwise RFC 3164 ("BSD syslog"): `Mmm dd hh:mm:ss` (or the ISO 8601 timestamp rsyslog forwards), then
   HOSTNAME, then `TAG[PID]: ` and the message. A token that looks like a tag (ends with `:` or holds `[`) in
   the hostname position means the sender left the hostname out. RFC 3164 timestamps carry neither year nor
   zone: the zone is configured, the year is the reception year, minus one when that would put the event more
   than a month in the future (a December event received in January).
A 5424/3164 header that matches but holds an impossible value (month 13, hour 25) is a parse error, and the
parser then keeps what it could read (priority) with the rest of the line as the message.

"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

FACILITY_NAMES: tuple[str, ...] = (
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
)
SEVERITY_NAMES: tuple[str, ...] = (
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "informational",
    "debug",
)

_MONTH_ABBREVIATIONS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {abbreviation: number for number, abbreviation in enumerate(_MONTH_ABBREVIATIONS, start=1)}

_PRI = re.compile(r"<(\d{1,3})>")
_RFC5424_HEADER = re.compile(r"<(\d{1,3})>([1-9]\d?) (\S+) (\S+) (\S+) (\S+) (\S+) ")
_SD_ELEMENT = re.compile(r'\[([^\s=\]"]+)((?:\s+[^\s=\]"]+="(?:[^"\\]|\\.)*")*)\s*\]')
_SD_PARAM = re.compile(r'([^\s=\]"]+)="((?:[^"\\]|\\.)*)"')
_SD_UNESCAPE = re.compile(r'\\(["\]\\])')
_RFC3164_HEADER = re.compile(
    r"<(\d{1,3})>"
    r"(?:([A-Z][a-z]{2}) {1,2}(\d{1,2}) (?:(\d{4}) )?(\d\d):(\d\d):(\d\d)"
    r"|(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?))"
    r" ?"
)
_TAG = re.compile(r"([^\s\[\]:]{1,128})(?:\[([^\]\s]{1,32})\])?: ?")


@dataclass(slots=True)
class SyslogMessage:
    """One parsed syslog message; fields the sender left out (or sent as nil `-`) are None."""

    syntax: str  # "rfc5424", "rfc3164" or "unparsed"
    priority: int | None
    timestamp: datetime | None
    hostname: str | None
    app_name: str | None
    proc_id: str | None
    msg_id: str | None
    structured_data: dict[str, dict[str, str]] | None
    message: str
    parse_error: str | None = None
    timestamp_text: str | None = None  # the sender's RFC 3339 text when it was valid (kept verbatim)

    @property
    def facility(self) -> int | None:
        return None if self.priority is None else self.priority >> 3

    @property
    def severity(self) -> int | None:
        return None if self.priority is None else self.priority & 7


def _nil(token: str) -> str | None:
    return None if token == "-" else token


def _parse_rfc3339(token: str) -> datetime:
    stamp = datetime.fromisoformat(token)
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _parse_structured_data(text: str) -> tuple[dict[str, dict[str, str]] | None, str, str | None]:
    """Structured data at the start of `text` -> (elements, rest after it, error)."""
    if text.startswith("-"):
        return None, text[1:], None
    elements: dict[str, dict[str, str]] = {}
    position = 0
    while position < len(text) and text[position] == "[":
        match = _SD_ELEMENT.match(text, position)
        if match is None:
            return elements or None, text[position:], "malformed STRUCTURED-DATA element"
        params = elements.setdefault(match.group(1), {})
        for name, value in _SD_PARAM.findall(match.group(2)):
            params[name] = _SD_UNESCAPE.sub(r"\1", value) if "\\" in value else value
        position = match.end()
    if position == 0:
        return None, text, "STRUCTURED-DATA must be '-' or start with '['"
    return elements, text[position:], None


def _parse_rfc5424(text: str, header: re.Match[str], priority: int) -> SyslogMessage:
    stamp_token, host, app, proc, msg_id = header.group(3, 4, 5, 6, 7)
    error: str | None = None
    timestamp: datetime | None = None
    if stamp_token != "-":
        try:
            timestamp = _parse_rfc3339(stamp_token)
        except ValueError:
            error = f"invalid RFC 5424 TIMESTAMP {stamp_token[:40]!r}"
    structured, rest, sd_error = _parse_structured_data(text[header.end() :])
    error = error or sd_error
    if rest.startswith(" "):
        rest = rest[1:]
    if rest.startswith("\ufeff"):
        rest = rest[1:]
    return SyslogMessage(
        "rfc5424",
        priority,
        timestamp,
        _nil(host),
        _nil(app),
        _nil(proc),
        _nil(msg_id),
        structured,
        rest,
        error,
        stamp_token if timestamp is not None else None,
    )


def _rfc3164_timestamp(match: re.Match[str], received: datetime, zone: tzinfo) -> datetime:
    iso = match.group(8)
    if iso is not None:
        stamp = datetime.fromisoformat(iso)
        return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=zone)
    month = _MONTHS.get(match.group(2))
    if month is None:
        raise ValueError(f"unknown month {match.group(2)!r}")
    day, hour, minute, second = (int(g) for g in match.group(3, 5, 6, 7))
    explicit_year = match.group(4)
    local_received = received.astimezone(zone)
    year = int(explicit_year) if explicit_year else local_received.year
    stamp = datetime(year, month, day, hour, minute, second, tzinfo=zone)
    if not explicit_year and stamp - local_received > timedelta(days=31):
        stamp = stamp.replace(year=year - 1)
    return stamp


def _parse_rfc3164(text: str, header: re.Match[str], priority: int, received: datetime, zone: tzinfo) -> SyslogMessage:
    try:
        timestamp: datetime | None = _rfc3164_timestamp(header, received, zone)
        error = None
    except ValueError as exc:
        timestamp, error = None, f"invalid RFC 3164 TIMESTAMP: {exc}"
    rest = text[header.end() :]
    hostname: str | None = None
    space = rest.find(" ")
    first = rest if space < 0 else rest[:space]
    if first and not first.endswith(":") and "[" not in first and space > 0:
        hostname, rest = first, rest[space + 1 :]
    app = proc = None
    tag = _TAG.match(rest)
    if tag is not None:
        app, proc = tag.group(1), tag.group(2)
        rest = rest[tag.end() :]
    return SyslogMessage("rfc3164", priority, timestamp, hostname, app, proc, None, None, rest, error)


def parse(text: str, received: datetime, zone: tzinfo = UTC) -> SyslogMessage:
    """Parse one syslog message (without its framing). Never raises; see the module docstring."""
    if text.endswith("\n"):
        text = text.rstrip("\r\n")
    pri = _PRI.match(text)
    if pri is None:
        return SyslogMessage("unparsed", None, None, None, None, None, None, None, text, "no <PRI> header")
    priority = int(pri.group(1))
    if priority > 191:
        return SyslogMessage("unparsed", None, None, None, None, None, None, None, text, f"PRI {priority} is above 191")
    header = _RFC5424_HEADER.match(text)
    if header is not None:
        return _parse_rfc5424(text, header, priority)
    header = _RFC3164_HEADER.match(text)
    if header is not None:
        return _parse_rfc3164(text, header, priority, received, zone)
    return SyslogMessage(
        "unparsed",
        priority,
        None,
        None,
        None,
        None,
        None,
        None,
        text[pri.end() :],
        "header is neither RFC 5424 nor RFC 3164",
    )


# The pieces the indexer's fast path (`toolkit.worker.ecs.normalise`) reuses, so both paths share one grammar.
RFC5424_HEADER = _RFC5424_HEADER
RFC3164_HEADER = _RFC3164_HEADER
TAG = _TAG
parse_structured_data = _parse_structured_data
parse_rfc3339 = _parse_rfc3339
rfc3164_timestamp = _rfc3164_timestamp
