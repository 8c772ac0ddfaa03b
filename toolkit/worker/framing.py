"""Syslog stream framing that a hostile sender cannot trick (RFC 6587 on plain TCP, RFC 5425 on TLS), and the
little the receiver reads from each message (the source's HOSTNAME, the Kafka key).

Framing rules, applied at every frame start (after skipping LF, CR, NUL and SP between frames)
-------------------------------------------------------------------------------------------
A frame is OCTET-COUNTED only when its header is plausible: a non-zero digit, digits, SP, then `<PRI>` (`<`, one
to three digits, `>`: the start of the message it counts), and the count is no larger than the maximum frame
size. Then exactly that many bytes are the frame. Otherwise:
- a count-like token (`[1-9][0-9]* SP`) whose count is above the maximum and that is followed by `<` or by
  another digit is a BROKEN COUNT (`count_above_maximum`): the token is dead-lettered and skipped, and framing goes
  on right after it (so `999999999 ` in front of valid messages costs nothing but the token);
- on plain TCP anything else is NON-TRANSPARENT framing: the frame ends at LF (a CR before it is removed), so a
  line such as `404 Not Found` is one frame, never a count. Senders may mix the two methods, but once a connection
  is octet counting, a frame start that is neither a plausible count nor `<` is a violation (`unframed_bytes`),
  not a line: it is how a desynchronised octet stream looks, and reading it as a line would swallow up to the
  maximum frame size of good frames;
- on TLS (RFC 5425 allows octet counting only) anything else is a violation (`not_octet_counted`) and the decoder
  resynchronises.
A plausible count can still be false. After an octet-counted frame, the next bytes must be able to start a frame
(a plausible count header, `<` on TCP, or LF/CR/NUL); if they cannot, the count was false (`count_false`): that
one declared frame is dead-lettered (so the loss is bounded by the declared length, at most the maximum frame
size) and the decoder resynchronises. A false count whose end happens to land on a frame start cannot be
detected; it costs at most that one declared length, and framing resumes after it.

RESYNCHRONISATION skips bytes up to the next LF (TCP: the next frame starts after it) or the next plausible
octet-counting header (TCP and TLS) whose declared frame is itself followed by a frame start (when those bytes are
already here). The skipped bytes of a violation are dead-lettered as one `unframed_bytes`
violation holding at most the maximum frame size of them, and counted whole.

OVERSIZE: a non-transparent frame longer than the maximum is cut at the maximum, returned as a `Cut` (the receiver
tags it truncated) and its tail is skipped (counted in `discarded_bytes`) by the same resynchronisation.

Bounds: the decoder holds at most one partial frame (maximum + its header) per connection; a read that cannot
complete the pending frame is appended without rescanning what was already scanned, so a sender trickling bytes
costs O(bytes), not O(bytes^2).

The key
-------
`source_host(frame)` returns the HOSTNAME the indexer's full parser (`toolkit.worker.syslog.parse`) reads from the
same message, using one bytes regex built on the same header grammar (RFC 5424 header, else RFC 3164 header and
the "first token is a host unless it looks like a tag" rule), or None (nil `-`, no PRI, PRI above 191, no
hostname). The differences: a HOSTNAME longer than 255 bytes (RFC 5424's limit) is not taken, and the full parser
decodes UTF-8 first, so for a hostname holding non-ASCII whitespace the two may cut differently (the key then only
picks another partition).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LF, _CR, _NUL, _SP, _LT = 0x0A, 0x0D, 0x00, 0x20, 0x3C
_SEPARATORS = frozenset(b"\n\r\x00 ")
_COUNT = re.compile(rb"[1-9][0-9]*")
_PRI = re.compile(rb"<[0-9]{1,3}>")
_PRI_PREFIX = re.compile(rb"<[0-9]{0,3}")
_HEADER_PREFIX = re.compile(rb"[1-9][0-9]*(?: (?:<[0-9]{0,3})?)?")
_RESYNC_HOPS = 4
_COUNT_TOKEN_DIGITS = 20  # a digit run this long at the end of a read is waited for (it may be a broken count)
VIOLATION_REASONS = ("count_above_maximum", "count_false", "not_octet_counted", "unframed_bytes")

_SOURCE_HOST = re.compile(
    rb"<(?:1[0-8][0-9]|19[01]|0[0-9][0-9]|[0-9]{1,2})>"
    rb"(?:[1-9][0-9]? \S+ (?!- )(\S{1,255}) \S+ \S+ \S+ "
    rb"|(?:[A-Z][a-z]{2} {1,2}[0-9]{1,2} (?:[0-9]{4} )?[0-9]{2}:[0-9]{2}:[0-9]{2}"
    rb"|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?) ?"
    rb"([^ \[]{0,254}[^ \[:]) )"
)
source_host_match = _SOURCE_HOST.match


def source_host(frame: bytes) -> bytes | None:
    """The sender's HOSTNAME or None; see the module docstring."""
    match = _SOURCE_HOST.match(frame)
    if match is None:
        return None
    host: bytes = match[1] or match[2]
    return host


class Cut(bytes):
    """A frame cut at the maximum frame size (its tail was not forwarded)."""


@dataclass(slots=True)
class Violation:
    """Bytes of the stream that broke the framing rules: `data` holds at most the maximum frame size of them (what
    is dead-lettered), `length` how many there were."""

    reason: str
    data: bytes
    length: int


class FrameDecoder:
    """Incremental decoder for one stream connection; `octet_only` for TLS (RFC 5425). See the module docstring.

    `feed` returns the completed frames in stream order (`Cut` instances for cut ones, `cut` says how many in the
    last call); violations found are appended to `violations` (the caller takes them); `discarded_bytes` counts
    oversize tails skipped."""

    __slots__ = (
        "_digits",
        "_header",
        "_octet_mode",
        "_pending",
        "_plain_header",
        "_resync_head",
        "_resync_length",
        "_resync_reason",
        "_scanned",
        "_wait_octets",
        "cut",
        "discarded_bytes",
        "max_frame_bytes",
        "octet_only",
        "violations",
    )

    def __init__(self, max_frame_bytes: int = 65536, octet_only: bool = False) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.octet_only = octet_only
        self._digits = len(str(max_frame_bytes))
        limit = self._digits - 1
        header = rb"([1-9][0-9]{0,%d}) <[0-9]{1,3}>" % limit
        self._header = re.compile(header if octet_only else rb"\n|" + header)
        self._plain_header = re.compile(header)
        self._octet_mode = octet_only  # the last frame of this connection was octet-counted
        self._pending = bytearray()
        self._wait_octets = 0  # > 0: the pending bytes are an octet frame needing this many bytes in all
        self._scanned = 0  # pending bytes known to hold no LF (a partial non-transparent frame)
        self._resync_reason: str | None = None
        self._resync_head = bytearray()
        self._resync_length = 0
        self.violations: list[Violation] = []
        self.discarded_bytes = 0
        self.cut = 0

    @property
    def buffered(self) -> int:
        return len(self._pending)

    # --- resynchronisation ------------------------------------------------------------------------------------
    def _start_resync(self, reason: str) -> None:
        self._resync_reason = reason
        self._resync_head = bytearray()
        self._resync_length = 0

    def _skip(self, data: bytes, start: int, stop: int) -> None:
        if stop <= start:
            return
        self._resync_length += stop - start
        room = self.max_frame_bytes - len(self._resync_head)
        if room > 0 and self._resync_reason != "oversize_tail":
            self._resync_head += data[start : min(stop, start + room)]

    def _end_resync(self) -> None:
        reason, length = self._resync_reason, self._resync_length
        self._resync_reason = None
        if length:
            if reason == "oversize_tail":
                self.discarded_bytes += length
            else:
                self.violations.append(Violation(reason or "unframed_bytes", bytes(self._resync_head), length))
        self._resync_head = bytearray()
        self._resync_length = 0

    def _next_start(self, data: bytes, pos: int, n: int) -> tuple[int, int]:
        """The first place at or after `pos` where a frame can start, as (index, kind): kind -1, TCP, just after an
        LF; kind 1, a plausible count header whose declared frame is followed by a frame start; kind 2, a header
        that cannot be checked yet (its frame is still arriving): wait at index; kind 0, none (index -1).

        Message text may end in digits right before the next header (octet frames have no separator), so the
        digits in front of ` <` are tried from the longest run to the shortest suffix."""
        search = self._header.search
        maximum = self.max_frame_bytes
        while True:
            match = search(data, pos)
            if match is None:
                return -1, 0
            if match.group() == b"\n":
                return match.end(), -1
            space = match.end(1)
            waiting = -1
            for start in range(match.start(), space):
                if data[start] == 0x30:
                    continue
                length = int(data[start:space])
                if length > maximum:
                    continue
                end = space + 1 + length
                if end >= n:
                    waiting = start if waiting < 0 else waiting
                elif self._can_follow(data, end, n, _RESYNC_HOPS):
                    return start, 1
            if waiting >= 0:
                return waiting, 2
            pos = space + 1

    def _resync(self, data: bytes, pos: int, n: int) -> int:
        """Skip to the next frame start; return where framing resumes, or n (waiting, tail kept pending)."""
        start, kind = self._next_start(data, pos, n)
        if kind == 0 or kind == 2:
            keep = n - start if kind == 2 else min(n - pos, self._digits + 1)  # a header may be arriving
            self._skip(data, pos, n - keep)
            self._pending = bytearray(data[n - keep : n])
            return n
        self._skip(data, pos, start - 1 if kind == -1 else start)  # the LF ending a line is no lost byte
        self._end_resync()
        return start

    def _can_follow(self, data: bytes, end: int, n: int, hops: int = 1) -> bool:
        """Whether the bytes at `end` can start the frame after an octet-counted one: LF, CR or NUL (some senders
        end octet frames with one), `<` (TCP), or a plausible count header (or the start of one cut by the end of
        the bytes read so far). With `hops` > 1 the frame that header declares must itself be followed by a frame
        start, and so on (resynchronisation uses 4 hops: text ending in digits in front of a real header must not
        pass for a header)."""
        byte = data[end]
        if byte == _LT:
            return not self.octet_only
        if byte in (_LF, _CR, _NUL):
            return True
        if not 0x31 <= byte <= 0x39:
            return False
        match = self._plain_header.match(data, end)
        if match is None:
            # the start of a header cut by the end of the bytes read so far
            return _HEADER_PREFIX.fullmatch(data, end, min(n, end + self._digits + 6)) is not None and end + 16 > n
        length = int(match.group(1))
        if length > self.max_frame_bytes:
            return False
        following = match.end(1) + 1 + length
        if hops <= 1 or following >= n:
            return True
        return self._can_follow(data, following, n, hops - 1)

    # --- decoding -----------------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes read from the stream; return the frames they completed, in stream order."""
        self.cut = 0
        pending = self._pending
        if pending:
            if self._wait_octets:
                if len(pending) + len(data) < self._wait_octets:
                    pending += data
                    return []
            elif (
                self._scanned
                and self._resync_reason is None
                and not self._octet_mode
                and data.find(b"\n") < 0
                and len(pending) + len(data) <= self.max_frame_bytes
            ):
                pending += data
                self._scanned = len(pending)
                return []
            data = b"".join((pending, data))
            self._pending = bytearray()
        self._wait_octets = 0
        scanned, self._scanned = self._scanned, 0
        frames: list[bytes] = []
        append = frames.append
        n = len(data)
        pos = 0
        maximum = self.max_frame_bytes
        octet_only = self.octet_only
        while pos < n:
            if self._resync_reason is not None:
                pos = self._resync(data, pos, n)
                continue
            first = data[pos]
            if first == _LT and not octet_only:  # non-transparent frame
                if self._octet_mode:
                    # after octet frames, a line is taken only if its LF comes before any plausible count header
                    start, kind = self._next_start(data, pos + max(1, scanned if pos == 0 else 0), n)
                    if kind == 1:
                        self.violations.append(Violation("unframed_bytes", data[pos:start], start - pos))
                        pos = start
                        continue
                    if kind == 2 and n - pos <= maximum + self._digits + 1:
                        self._pending = bytearray(data[pos:])
                        self._scanned = start - pos
                        break
                    newline = start - 1 if kind == -1 else -1
                else:
                    newline = data.find(b"\n", pos + scanned if pos == 0 else pos)
                    if newline >= 0 and newline - pos <= maximum:
                        # a run of LF-framed messages (the common case), taken without the general dispatch
                        find = data.find
                        while True:
                            append(data[pos : newline - 1 if data[newline - 1] == _CR else newline])
                            pos = newline + 1
                            if pos >= n or data[pos] != _LT:
                                break
                            newline = find(b"\n", pos)
                            if newline < 0 or newline - pos > maximum:
                                break
                        continue
                if newline < 0:
                    if self._octet_mode and n - pos > maximum:
                        self._start_resync("unframed_bytes")
                        continue
                    if n - pos > maximum:
                        append(Cut(data[pos : pos + maximum]))
                        self.cut += 1
                        self._start_resync("oversize_tail")
                        pos += maximum
                        continue
                    self._pending = bytearray(data[pos:])
                    # what is known to hold no frame start (in octet mode a header may still be arriving at the end)
                    self._scanned = max(0, n - pos - self._digits - 2) if self._octet_mode else n - pos
                    break
                stop = newline - 1 if newline > pos and data[newline - 1] == _CR else newline
                if stop - pos > maximum:
                    append(Cut(data[pos : pos + maximum]))
                    self.cut += 1
                    self.discarded_bytes += stop - pos - maximum
                else:
                    append(data[pos:stop])
                self._octet_mode = False
                pos = newline + 1
                continue
            if 0x31 <= first <= 0x39:  # a count, a broken count, or a line starting with digits
                digits_end = _COUNT.match(data, pos).end()  # type: ignore[union-attr]
                if digits_end == n:
                    if digits_end - pos <= _COUNT_TOKEN_DIGITS:
                        self._pending = bytearray(data[pos:])
                        break  # the count is still arriving
                elif data[digits_end] == _SP:
                    body = digits_end + 1
                    if body == n:
                        self._pending = bytearray(data[pos:])
                        break  # need the byte after the SP
                    after = data[body]
                    length = int(data[pos:digits_end]) if digits_end - pos <= self._digits else maximum + 1
                    if after == _LT and length <= maximum and _PRI.match(data, body) is None:
                        if _PRI_PREFIX.fullmatch(data, body) is not None:
                            self._pending = bytearray(data[pos:])
                            break  # the <PRI> after the count is still arriving
                        after = 0  # "<" but no <PRI>: not a count
                    if after == _LT and length <= maximum:
                        end = body + length
                        if end > n:
                            self._pending = bytearray(data[pos:])
                            self._wait_octets = end - pos
                            break
                        if end < n and not self._can_follow(data, end, n):
                            self.violations.append(Violation("count_false", data[pos:end], end - pos))
                            self._start_resync("unframed_bytes")
                            pos = end
                            continue
                        append(data[body:end])
                        self._octet_mode = True
                        pos = end
                        continue
                    if length > maximum and (after == _LT or 0x31 <= after <= 0x39):
                        self.violations.append(Violation("count_above_maximum", data[pos:body], body - pos))
                        pos = body
                        continue
            elif first in _SEPARATORS:
                pos += 1
                continue
            if octet_only:
                self._start_resync("not_octet_counted")
                continue
            if self._octet_mode:
                self._start_resync("unframed_bytes")
                continue
            # non-transparent frame that does not start with "<" (kept: the indexer tags what it cannot parse)
            newline = data.find(b"\n", pos + scanned if pos == 0 else pos)
            if newline < 0:
                if n - pos > maximum:
                    append(Cut(data[pos : pos + maximum]))
                    self.cut += 1
                    self._start_resync("oversize_tail")
                    pos += maximum
                    continue
                self._pending = bytearray(data[pos:])
                self._scanned = n - pos
                break
            stop = newline - 1 if newline > pos and data[newline - 1] == _CR else newline
            if stop - pos > maximum:
                append(Cut(data[pos : pos + maximum]))
                self.cut += 1
                self.discarded_bytes += stop - pos - maximum
            else:
                append(data[pos:stop])
            pos = newline + 1
        return frames

    def finish(self) -> list[bytes]:
        """End of stream: the partial frame left, if any (an octet frame that ended early comes back as a `Cut`)."""
        self.cut = 0
        frames: list[bytes] = []
        pending = bytes(self._pending)
        self._pending = bytearray()
        if self._resync_reason is not None:
            self._skip(pending, 0, len(pending))
            self._end_resync()
        elif pending:
            match = re.match(rb"([1-9][0-9]*) (<.*)", pending, re.DOTALL)
            if self._wait_octets and match is not None:
                frames.append(Cut(match.group(2)))
                self.cut = 1
            elif self.octet_only:
                self.violations.append(Violation("not_octet_counted", pending[: self.max_frame_bytes], len(pending)))
            else:
                text = pending.rstrip(b"\r\x00")
                if text:
                    frames.append(text)
        self._wait_octets = 0
        self._scanned = 0
        return frames
