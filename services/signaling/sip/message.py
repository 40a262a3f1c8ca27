"""SIP messages: parse from bytes, serialize back (RFC 3261 §7, §18.3, §25).

``parse_message(data)`` returns a :class:`Request` or :class:`Response`; anything wrong
raises :class:`SipParseError` (never another exception) carrying the status to answer
with. Header fields are kept in order, as (name, value) pairs, with compact names expanded
and well-known names in canonical case; values are unfolded and stripped but otherwise
untouched. Typed accessors (``msg.vias``, ``msg.cseq``, ``msg.to`` ...) parse on demand.
``bytes(msg)`` writes ``Content-Length`` equal to the body length, always.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import SipParseError
from .headers import (
    AuthHeader,
    ContentType,
    CSeq,
    NameAddress,
    Reason,
    RetryAfter,
    Via,
    is_token,
    split_list,
)
from .uri import SipUri, Uri, parse_uri

__all__ = [
    "COMPACT_FORMS",
    "MAX_HEADERS",
    "MAX_HEADER_LENGTH",
    "MAX_MESSAGE_SIZE",
    "REASON_PHRASES",
    "Headers",
    "Message",
    "Request",
    "Response",
    "make_ack",
    "make_cancel",
    "make_request",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_message",
    "split_stream",
]

MAX_MESSAGE_SIZE = 65535  # a UDP datagram; streams use the same bound per message
MAX_HEADERS = 256
MAX_HEADER_LENGTH = 16384

# RFC 3261 §7.3.3 and later RFCs (3265, 3515, 3841, 3892, 4028, 4474).
COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}
_KNOWN = [
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Authentication-Info",
    "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition", "Content-Encoding",
    "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date", "Error-Info", "Expires",
    "From", "In-Reply-To", "Max-Forwards", "MIME-Version", "Min-Expires", "Organization", "Priority",
    "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "Record-Route", "Reply-To",
    "Require", "Retry-After", "Route", "Server", "Subject", "Supported", "Timestamp", "To",
    "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate", "Reason", "RSeq", "RAck",
    "Event", "Allow-Events", "Subscription-State", "Refer-To", "Referred-By", "Session-Expires",
    "Min-SE", "Path", "Service-Route", "P-Asserted-Identity", "P-Preferred-Identity", "Privacy",
    "Identity", "Identity-Info", "Accept-Contact", "Reject-Contact", "Request-Disposition",
    "Diversion", "Remote-Party-ID", "History-Info", "Replaces", "Security-Client",
]  # fmt: skip
# lower-case name (full or compact) -> (key, canonical name); key is the canonical lower-cased.
_CANON: dict[str, tuple[str, str]] = {n.lower(): (n.lower(), n) for n in _KNOWN}
_CANON.update({c: (n.lower(), n) for c, n in COMPACT_FORMS.items()})
_CANON.update({c.upper(): (n.lower(), n) for c, n in COMPACT_FORMS.items()})
for _n in _KNOWN:
    _CANON[_n] = (_n.lower(), _n)

# Headers whose values are comma-separated lists that may be split over lines (§7.3.1).
LIST_HEADERS = frozenset(
    k.lower()
    for k in (
        "Via", "Contact", "Route", "Record-Route", "Allow", "Supported", "Require", "Proxy-Require",
        "Unsupported", "Accept", "Accept-Encoding", "Accept-Language", "Content-Encoding",
        "Content-Language", "Alert-Info", "Call-Info", "Error-Info", "In-Reply-To", "Warning",
        "Path", "Service-Route", "Reason", "Allow-Events", "P-Asserted-Identity", "History-Info",
        "Diversion", "Accept-Contact", "Reject-Contact", "Security-Client",
    )
)  # fmt: skip
# Single-valued headers that must not be repeated (RFC 4475 §3.3.8, §3.3.9).
_SINGLE = frozenset({"to", "from", "call-id", "cseq", "max-forwards", "content-length"})

_FOLD_RE = re.compile(r"[ \t]*\r\n[ \t]+")
_VERSION_RE = re.compile(r"SIP/([0-9]+)\.([0-9]+)", re.I)
_CL_RE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$", re.I | re.M)
_LWS_BYTES_RE = re.compile(rb"[ \t]*\r\n[ \t]+")

REASON_PHRASES = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated", 200: "OK", 202: "Accepted",
    204: "No Notification", 300: "Multiple Choices", 301: "Moved Permanently",
    302: "Moved Temporarily", 305: "Use Proxy", 380: "Alternative Service", 400: "Bad Request",
    401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 410: "Gone", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type", 416: "Unsupported URI Scheme",
    420: "Bad Extension", 421: "Extension Required", 422: "Session Interval Too Small",
    423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    494: "Security Agreement Required", 500: "Server Internal Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large", 580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
    607: "Unwanted",
}  # fmt: skip


def _canon(name: str) -> tuple[str, str]:
    found = _CANON.get(name) or _CANON.get(name.lower())
    if found is not None:
        return found
    name = name.strip(" \t")
    found = _CANON.get(name.lower())
    if found is not None:
        return found
    if not is_token(name):
        raise SipParseError(f"Bad header name: {name[:60]!r}")
    return name.lower(), name


class Headers:
    """Ordered header fields. Names are matched case-insensitively and compact forms
    (``v``, ``i``...) are the same as their full names. Iteration yields (name, value)."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str, str]] = []
        for name, value in items:
            self.add(name, value)

    @staticmethod
    def _checked(value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("header value must not contain CR or LF")
        return value.strip(" \t")

    def add(self, name: str, value: str) -> None:
        """Append a header field."""
        key, canon = _canon(name)
        self._items.append((key, canon, self._checked(value)))

    def add_first(self, name: str, value: str) -> None:
        """Insert before the first field of that name (or at the top): e.g. a new Via."""
        key, canon = _canon(name)
        for i, item in enumerate(self._items):
            if item[0] == key:
                self._items.insert(i, (key, canon, self._checked(value)))
                return
        self._items.insert(0, (key, canon, self._checked(value)))

    def set(self, name: str, value: str) -> None:
        """Replace all fields of that name by one (at the first one's position)."""
        key, canon = _canon(name)
        value = self._checked(value)
        for i, item in enumerate(self._items):
            if item[0] == key:
                self._items[i] = (key, canon, value)
                self._items[i + 1 :] = [it for it in self._items[i + 1 :] if it[0] != key]
                return
        self._items.append((key, canon, value))

    def remove(self, name: str) -> int:
        """Remove every field of that name; returns how many were removed."""
        key = _canon(name)[0]
        before = len(self._items)
        self._items = [it for it in self._items if it[0] != key]
        return before - len(self._items)

    def get(self, name: str, default: str | None = None) -> str | None:
        """Value of the first field of that name."""
        key = _canon(name)[0]
        for item in self._items:
            if item[0] == key:
                return item[2]
        return default

    def get_all(self, name: str) -> list[str]:
        """Values of every field of that name, one per header line."""
        key = _canon(name)[0]
        return [item[2] for item in self._items if item[0] == key]

    def values(self, name: str) -> list[str]:
        """Like :meth:`get_all`, but comma-separated list headers are split into elements."""
        key = _canon(name)[0]
        lines = [item[2] for item in self._items if item[0] == key]
        if key not in LIST_HEADERS:
            return lines
        out: list[str] = []
        for line in lines:
            out.extend(split_list(line))
        return out

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _canon(name)[0]
        return any(item[0] == key for item in self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((item[1], item[2]) for item in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({[(n, v) for _, n, v in self._items]!r})"

    def copy(self) -> Headers:
        new = Headers()
        new._items = list(self._items)
        return new

    def _write(self, out: list[str], body_len: int) -> None:
        has_cl = False
        for key, name, value in self._items:
            if key == "content-length":
                if has_cl:
                    continue
                has_cl = True
                value = str(body_len)
            out.append(f"{name}: {value}\r\n")
        if not has_cl:
            out.append(f"Content-Length: {body_len}\r\n")
        out.append("\r\n")


class Message:
    """Typed accessors shared by requests and responses. They parse the header on every
    call (values are validated when a message is parsed, so they do not fail on parsed
    messages for Via/From/To/Call-ID/CSeq/Max-Forwards/Contact)."""

    headers: Headers
    body: bytes

    def _need(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"Missing {name} header")
        return value

    @property
    def call_id(self) -> str:
        return self._need("Call-ID")

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self._need("CSeq"))

    @property
    def from_(self) -> NameAddress:
        return NameAddress.parse(self._need("From"))

    @property
    def to(self) -> NameAddress:
        return NameAddress.parse(self._need("To"))

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.values("Via")]

    @property
    def top_via(self) -> Via:
        values = self.headers.values("Via")
        if not values:
            raise SipParseError("Missing Via header")
        return Via.parse(values[0])

    def set_top_via(self, via: Via) -> None:
        """Replace the first Via element (e.g. after :meth:`Via.stamp`), keeping the others."""
        items = self.headers._items
        for i, (key, name, value) in enumerate(items):
            if key == "via":
                rest = split_list(value)[1:]
                items[i] = (key, name, ", ".join([str(via), *rest]))
                return
        self.headers.add_first("Via", str(via))

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("Max-Forwards")
        return None if value is None else _parse_max_forwards(value)

    @property
    def contact_is_star(self) -> bool:
        return self.headers.values("Contact") == ["*"]

    @property
    def contacts(self) -> list[NameAddress]:
        """Contact values; empty for ``Contact: *`` (see :attr:`contact_is_star`)."""
        return [NameAddress.parse(v) for v in self.headers.values("Contact") if v != "*"]

    @property
    def routes(self) -> list[NameAddress]:
        return [NameAddress.parse(v) for v in self.headers.values("Route")]

    @property
    def record_routes(self) -> list[NameAddress]:
        return [NameAddress.parse(v) for v in self.headers.values("Record-Route")]

    @property
    def content_type(self) -> ContentType | None:
        value = self.headers.get("Content-Type")
        return None if value is None else ContentType.parse(value)

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return None if value is None else _parse_content_length(value, MAX_MESSAGE_SIZE)

    @property
    def expires(self) -> int | None:
        value = self.headers.get("Expires")
        if value is None or not value.isdecimal() or len(value) > 10:
            return None
        return int(value)

    @property
    def retry_after(self) -> RetryAfter | None:
        value = self.headers.get("Retry-After")
        return None if value is None else RetryAfter.parse(value)

    @property
    def reasons(self) -> list[Reason]:
        return [Reason.parse(v) for v in self.headers.values("Reason")]

    def auth_headers(self, name: str) -> list[AuthHeader]:
        """Parsed WWW-Authenticate / Proxy-Authenticate / (Proxy-)Authorization fields."""
        return [AuthHeader.parse(v) for v in self.headers.get_all(name)]


@dataclass(eq=True)
class Request(Message):
    """A SIP request. ``uri`` is the Request-URI exactly as sent on the wire."""

    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def parsed_uri(self) -> Uri:
        return parse_uri(self.uri)

    def __bytes__(self) -> bytes:
        out = [f"{self.method} {self.uri} SIP/2.0\r\n"]
        self.headers._write(out, len(self.body))
        return "".join(out).encode("utf-8", "surrogateescape") + self.body

    @classmethod
    def parse(cls, data: bytes, **options: Any) -> Request:
        msg = parse_message(data, **options)
        if not isinstance(msg, Request):
            raise SipParseError("Expected a request", is_request=False)
        return msg

    def stamp_received(self, source_ip: str, source_port: int) -> None:
        """Add received/rport to the top Via as a server transport does (§18.2.1, RFC 3581)."""
        via = self.top_via
        via.stamp(source_ip, source_port)
        self.set_top_via(via)


@dataclass(eq=True)
class Response(Message):
    status: int
    reason: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def __bytes__(self) -> bytes:
        out = [f"SIP/2.0 {self.status} {self.reason}\r\n"]
        self.headers._write(out, len(self.body))
        return "".join(out).encode("utf-8", "surrogateescape") + self.body

    @classmethod
    def parse(cls, data: bytes, **options: Any) -> Response:
        msg = parse_message(data, **options)
        if not isinstance(msg, Response):
            raise SipParseError("Expected a response", is_request=True)
        return msg

    @property
    def is_provisional(self) -> bool:
        return self.status < 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300


def _parse_max_forwards(value: str) -> int:
    # Leading zeros are legal (RFC 4475 §3.1.1.1: "0068"); §20.22 range 0-255.
    if not value.isdecimal() or not value.isascii() or len(value) > 10 or int(value) > 255:
        raise SipParseError(f"Bad Max-Forwards: {value[:40]!r}")
    return int(value)


def _parse_content_length(value: str, limit: int) -> int:
    if not value.isdecimal() or not value.isascii():
        raise SipParseError(f"Bad Content-Length: {value[:40]!r}")
    if len(value) > 10 or int(value) > limit:
        raise SipParseError("Content-Length too large", 513)
    return int(value)


def parse_message(
    data: bytes,
    *,
    max_size: int = MAX_MESSAGE_SIZE,
    max_headers: int = MAX_HEADERS,
    max_header_length: int = MAX_HEADER_LENGTH,
    rfc2543: bool = False,
) -> Request | Response:
    """Parse one message from a datagram (or from ``split_stream`` output).

    Without Content-Length the body is the rest of the data (§18.3, datagrams); with it,
    extra octets after the body are ignored (RFC 4475 §3.1.1.8). ``rfc2543=True`` accepts a
    request without Max-Forwards (RFC 4475 §3.4.1 backward compatibility).
    """
    if len(data) > max_size:
        raise SipParseError("Message Too Large", 513)
    start = 0
    while data.startswith(b"\r\n", start):  # §7.5: ignore CRLFs before the start line
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end >= 0:
        body_start = end + 4
    elif data.endswith(b"\r\n") and len(data) > start:
        # Datagram whose empty line is missing (RFC 4475 baddn.dat): headers end here.
        end = len(data) - 2
        body_start = len(data)
    else:
        raise SipParseError("Incomplete header section")
    head = data[start:end].decode("utf-8", "surrogateescape")
    if "\r\n " in head or "\r\n\t" in head:
        head = _FOLD_RE.sub(" ", head)  # §7.3.1 line folding is equivalent to one SP
    if head.count("\r") != head.count("\n"):
        raise SipParseError("Bare CR or LF in header section")
    lines = head.split("\r\n")
    if len(lines) - 1 > max_headers:
        raise SipParseError("Too many header fields", 513)

    start_line = lines[0]
    is_request = start_line[:4].upper() != "SIP/"
    items: list[tuple[str, str, str]] = []
    try:
        for line in lines[1:]:
            if len(line) > max_header_length:
                raise SipParseError("Header field too long", 513)
            name, sep, value = line.partition(":")
            if not sep:
                raise SipParseError(f"Malformed header line: {line[:60]!r}")
            found = _CANON.get(name)
            if found is None:
                found = _canon(name)
            items.append((found[0], found[1], value.strip(" \t")))
    except SipParseError as exc:
        exc.is_request = is_request
        raise
    headers = Headers()
    headers._items = items
    try:
        if is_request:
            msg: Request | Response = _parse_request_line(start_line, headers)
        else:
            msg = _parse_status_line(start_line, headers)
        content_length = _validate(msg, max_size, rfc2543)
    except SipParseError as exc:
        exc.headers = tuple((n, v) for _, n, v in items)
        exc.is_request = is_request
        raise
    if content_length is None:
        msg.body = data[body_start:]
    else:
        if body_start + content_length > len(data):
            raise SipParseError(
                "Content-Length larger than body",
                headers=tuple((n, v) for _, n, v in items),
                is_request=is_request,
            )
        msg.body = data[body_start : body_start + content_length]
    return msg


def _check_version(version: str) -> None:
    if version == "SIP/2.0":
        return
    m = _VERSION_RE.fullmatch(version)
    if m is None:
        raise SipParseError(f"Bad SIP version: {version[:20]!r}")
    if (int(m.group(1)), int(m.group(2))) != (2, 0):
        raise SipParseError("Version Not Supported", 505)


def _parse_request_line(line: str, headers: Headers) -> Request:
    # Extra SP between elements and at the end are tolerated (RFC 4475 §3.1.2.9/10, "may be
    # liberal"); we never forward them since we re-serialize.
    parts = line.split(" ")
    if len(parts) != 3:
        parts = [p for p in parts if p]
    if len(parts) != 3:
        raise SipParseError("Malformed Request-Line")
    method, uri, version = parts
    if not is_token(method):
        raise SipParseError(f"Bad method: {method[:40]!r}")
    _check_version(version)
    if uri.startswith("<"):
        raise SipParseError("Request-URI must not be enclosed in <>")  # RFC 4475 §3.1.2.7
    parsed = parse_uri(uri)
    if isinstance(parsed, SipUri) and parsed.headers:
        # §19.1.1 Table 1: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
        raise SipParseError("Headers not allowed in Request-URI")
    return Request(method, uri, headers)


def _parse_status_line(line: str, headers: Headers) -> Response:
    parts = line.split(" ", 2)
    if len(parts) < 2:
        raise SipParseError("Malformed Status-Line")
    _check_version(parts[0])
    code = parts[1]
    if len(code) != 3 or not code.isdecimal() or not code.isascii() or not 100 <= int(code) <= 699:
        raise SipParseError(f"Bad status code: {code[:20]!r}")
    return Response(int(code), parts[2] if len(parts) == 3 else "", headers)


def _validate(msg: Request | Response, max_size: int, rfc2543: bool) -> int | None:
    """Check the headers every element relies on; returns the Content-Length (or None)."""
    single: dict[str, str] = {}
    vias: list[str] = []
    contacts: list[str] = []
    for key, name, value in msg.headers._items:
        if key in _SINGLE:
            if key in single:
                raise SipParseError(f"Multiple {name} headers")  # RFC 4475 §3.3.8, §3.3.9
            single[key] = value
        elif key == "via":
            vias.append(value)
        elif key == "contact":
            contacts.append(value)
    for key, label in (("to", "To"), ("from", "From"), ("call-id", "Call-ID"), ("cseq", "CSeq")):
        if key not in single:
            raise SipParseError(f"Missing {label} header")
    if not vias:
        raise SipParseError("Missing Via header")
    what = "Via"
    try:
        for value in vias:
            for element in split_list(value):
                Via.parse(element)
        what = "From"
        NameAddress.parse(single["from"])
        what = "To"
        NameAddress.parse(single["to"])
        what = "Contact"
        for value in contacts:
            elements = split_list(value)
            if elements != ["*"]:
                for element in elements:
                    NameAddress.parse(element)
        what = "CSeq"
        cseq = CSeq.parse(single["cseq"])
    except SipParseError as exc:
        raise SipParseError(f"Bad {what} header: {exc.reason}", exc.status) from None
    call_id = single["call-id"]
    if not call_id or " " in call_id or "\t" in call_id:
        raise SipParseError("Bad Call-ID header")
    if isinstance(msg, Request):
        if cseq.method != msg.method:
            raise SipParseError("CSeq method does not match Request-Line")  # §8.1.1.5
        mf = single.get("max-forwards")
        if mf is None:
            if not rfc2543:
                raise SipParseError("Missing Max-Forwards header")  # §8.1.1.6
        else:
            _parse_max_forwards(mf)
    elif "max-forwards" in single:
        _parse_max_forwards(single["max-forwards"])
    cl = single.get("content-length")
    return None if cl is None else _parse_content_length(cl, max_size)


def split_stream(buffer: bytes, *, max_size: int = MAX_MESSAGE_SIZE) -> tuple[bytes | None, bytes]:
    """Frame one message off a stream buffer (TCP/TLS, §18.3).

    Returns ``(message_bytes, rest)`` when a whole message (headers + Content-Length octets)
    is buffered, else ``(None, buffer_without_leading_crlfs)``. Leading CRLFs (keep-alives,
    RFC 5626 §3.5.1, and §7.5) are discarded. A missing Content-Length counts as 0. Raises
    :class:`SipParseError` when the framing cannot be recovered (bad, negative or
    conflicting Content-Length, or more than ``max_size`` octets without a message): the
    caller must close the connection (RFC 4475 §3.1.2.2, §3.1.2.3, §3.3.9). A framed but
    garbled message is returned as is; :func:`parse_message` will reject it.
    """
    i = 0
    n = len(buffer)
    while i < n and buffer[i] in (13, 10):
        i += 1
    if i:
        buffer = buffer[i:]
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > max_size:
            raise SipParseError("Message Too Large", 513)
        return None, buffer
    head = buffer[:end]
    if b"\r\n " in head or b"\r\n\t" in head:
        head = _LWS_BYTES_RE.sub(b" ", head)
    lengths = {m.group(1) for m in _CL_RE.finditer(head, head.find(b"\n") + 1)}
    if not lengths:
        length = 0
    elif len(lengths) > 1:
        raise SipParseError("Conflicting Content-Length headers")
    else:
        value = lengths.pop()
        if not value.isdigit():
            raise SipParseError("Bad Content-Length")
        if len(value) > 10 or int(value) > max_size:
            raise SipParseError("Message Too Large", 513)
        length = int(value)
    total = end + 4 + length
    if total > max_size:
        raise SipParseError("Message Too Large", 513)
    if len(buffer) < total:
        return None, buffer
    return buffer[:total], buffer[total:]


# ---------------------------------------------------------------------------- builders


def new_branch() -> str:
    """A fresh RFC 3261 branch (magic cookie + random, §8.1.1.7)."""
    return "z9hG4bK" + secrets.token_hex(10)


def new_tag() -> str:
    """A fresh From/To tag (§19.3: at least 32 bits of randomness)."""
    return secrets.token_hex(6)


def new_call_id(host: str | None = None) -> str:
    token = secrets.token_hex(12)
    return f"{token}@{host}" if host else token


def _addr(value: NameAddress | str) -> str:
    return str(value)


def make_request(
    method: str,
    uri: str | Uri,
    *,
    from_: NameAddress | str,
    to: NameAddress | str,
    call_id: str,
    cseq: int,
    via: Via | str,
    max_forwards: int = 70,
    contact: NameAddress | str | None = None,
    route: Iterable[NameAddress | str] = (),
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Request:
    """Build a request with the mandatory headers of §8.1.1 in the customary order."""
    h = Headers()
    h.add("Via", str(via))
    h.add("Max-Forwards", str(max_forwards))
    for r in route:
        h.add("Route", _addr(r))
    h.add("From", _addr(from_))
    h.add("To", _addr(to))
    h.add("Call-ID", call_id)
    h.add("CSeq", f"{cseq} {method}")
    if contact is not None:
        h.add("Contact", _addr(contact))
    for name, value in headers:
        h.add(name, value)
    if content_type is not None:
        h.add("Content-Type", content_type)
    h.add("Content-Length", str(len(body)))
    return Request(method, str(uri), h, body)


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """Build a response to ``request`` per §8.2.6.2: Via (all, in order), From, To (with
    ``to_tag`` added if the request had none), Call-ID and CSeq copied; Record-Route copied
    for 101-299 (§12.1.1); Timestamp echoed in 100 (§8.2.6.1)."""
    src = request.headers
    h = Headers()
    for v in src.get_all("Via"):
        h.add("Via", v)
    if 100 < status < 300:
        for rr in src.get_all("Record-Route"):
            h.add("Record-Route", rr)
    h.add("From", src.get("From") or "")
    to_value = src.get("To") or ""
    if to_tag is not None and status != 100:
        to = NameAddress.parse(to_value)
        if to.tag is None:
            to.tag = to_tag
            to_value = str(to)
    h.add("To", to_value)
    h.add("Call-ID", src.get("Call-ID") or "")
    h.add("CSeq", src.get("CSeq") or "")
    if status == 100 and "Timestamp" in src:
        h.add("Timestamp", src.get("Timestamp") or "")
    for name, value in headers:
        h.add(name, value)
    if content_type is not None:
        h.add("Content-Type", content_type)
    h.add("Content-Length", str(len(body)))
    return Response(status, REASON_PHRASES.get(status, "") if reason is None else reason, h, body)


def make_ack(invite: Request, response: Response) -> Request:
    """ACK for a non-2xx final response, built by the client transaction (§17.1.1.3):
    same Request-URI, top Via only, To from the response, CSeq number with ACK, Route kept."""
    src = invite.headers
    h = Headers()
    h.add("Via", split_list(src.get("Via") or "")[0])
    h.add("Max-Forwards", src.get("Max-Forwards") or "70")
    for r in src.get_all("Route"):
        h.add("Route", r)
    h.add("From", src.get("From") or "")
    h.add("To", response.headers.get("To") or "")
    h.add("Call-ID", src.get("Call-ID") or "")
    h.add("CSeq", f"{invite.cseq.seq} ACK")
    h.add("Content-Length", "0")
    return Request("ACK", invite.uri, h)


def make_cancel(request: Request) -> Request:
    """CANCEL for a pending request (§9.1): same Request-URI, Call-ID, To, From, CSeq
    number and top Via (same branch); Route copied."""
    src = request.headers
    h = Headers()
    h.add("Via", split_list(src.get("Via") or "")[0])
    h.add("Max-Forwards", src.get("Max-Forwards") or "70")
    for r in src.get_all("Route"):
        h.add("Route", r)
    h.add("From", src.get("From") or "")
    h.add("To", src.get("To") or "")
    h.add("Call-ID", src.get("Call-ID") or "")
    h.add("CSeq", f"{request.cseq.seq} CANCEL")
    h.add("Content-Length", "0")
    return Request("CANCEL", request.uri, h)
