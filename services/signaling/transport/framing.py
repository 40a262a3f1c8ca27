"""Stream framing for SIP over TCP/TLS (RFC 3261 §18.3), sans-IO.

A :class:`StreamFramer` takes the bytes of one connection as they arrive and returns the
complete messages, using the wire layer's ``split_stream`` (Content-Length framing). On top
of it, it handles what a hostile or broken peer sends:

* CRLF keep-alives (RFC 5626 §3.5.1): a double CRLF "ping" asks for a single CRLF "pong";
  a lone CRLF (a pong, or the §7.5 tolerance for stray CRLFs) is dropped.
* Garbage before a message: bytes up to the next line that looks like a SIP start line are
  dropped and counted, so one bad message does not poison the stream.
* Size: more than ``max_size`` octets without a complete message (an endless header, a huge
  Content-Length) is a framing error; the connection must be closed (RFC 4475 §3.1.2.2).

Time is not handled here: the transport closes connections whose partial message has been
pending too long (slow loris), using :attr:`StreamFramer.pending`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from services.signaling.sip.errors import SipParseError
from services.signaling.sip.message import MAX_MESSAGE_SIZE, split_stream

__all__ = ["FramingError", "FrameResult", "StreamFramer"]

# A request line (method SP Request-URI SP SIP-Version CRLF, §7.1) or a status line
# (SIP-Version SP 3DIGIT SP, §7.2). Other versions are let through so the parser can answer 505.
_START_RE = re.compile(
    rb"(?:[A-Za-z][A-Za-z0-9.!%*_+`'~\-]* [^ \r\n]+ SIP/\d+\.\d+\r?\n|SIP/\d+\.\d+ \d{3}[ \r])",
    re.IGNORECASE,
)
# Longest first line we wait for before deciding it is garbage (a start line is short).
_MAX_START_LINE = 8192


class FramingError(Exception):
    """The stream cannot be framed any more; close the connection. ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class FrameResult:
    messages: list[bytes] = field(default_factory=list)
    pongs: int = 0  # how many "\r\n" pongs to send back (RFC 5626 §3.5.1)
    garbage: int = 0  # octets dropped while resynchronising


class StreamFramer:
    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self.max_size = max_size
        self._buf = b""

    @property
    def pending(self) -> int:
        """Octets of an incomplete message held (0 when between messages)."""
        return len(self._buf)

    def feed(self, data: bytes) -> FrameResult:
        """Add received bytes; return the messages now complete. Raises :class:`FramingError`."""
        result = FrameResult()
        buf = self._buf + data if self._buf else data
        while buf:
            # Keep-alives first (RFC 5626 §3.5.1): "\r\n\r\n" is a ping, a lone "\r\n" a pong.
            if buf[0] in (13, 10):
                if buf.startswith(b"\r\n\r\n"):
                    result.pongs += 1
                    buf = buf[4:]
                    continue
                if b"\r\n\r\n".startswith(buf):
                    break  # maybe the start of a ping split across segments: wait
                # A lone CRLF (or bare LF/CR) followed by something else: drop it.
                i = 0
                while i < len(buf) and buf[i] in (13, 10) and not buf.startswith(b"\r\n\r\n", i):
                    i += 1
                buf = buf[i:]
                continue
            if not _START_RE.match(buf):
                skip = self._garbage_length(buf)
                if skip == 0:
                    break  # first line incomplete: wait for the rest
                result.garbage += skip
                buf = buf[skip:]
                continue
            try:
                message, rest = split_stream(buf, max_size=self.max_size)
            except SipParseError as exc:
                self._buf = b""
                raise FramingError(exc.reason) from None
            if message is None:
                break
            result.messages.append(message)
            buf = rest
        self._buf = buf
        return result

    def _garbage_length(self, buf: bytes) -> int:
        """Octets to drop before the next line that may start a message (0: wait for more)."""
        pos = 0
        while True:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                if len(buf) - pos > _MAX_START_LINE:
                    return len(buf)  # a "line" longer than any start line: all garbage
                return pos
            pos = nl + 1
            if pos >= len(buf) or buf[pos] in (13, 10) or _START_RE.match(buf, pos):
                return pos
            # An incomplete candidate line at the end: keep it, it may complete later.
            if buf.find(b"\n", pos) < 0 and len(buf) - pos <= _MAX_START_LINE:
                return pos
