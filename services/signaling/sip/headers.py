"""Typed views of SIP header field values (RFC 3261 §20, §25.1; RFC 3581; RFC 3326).

Each class has ``parse(text)`` (raising :class:`SipParseError` on bad input) and
``__str__`` giving the wire form. Header parameters are kept in a ``dict`` whose keys are
lower-cased names and whose values are the raw text (quoted values keep their quotes; use
:func:`unquote`), ``None`` for a parameter without ``=value``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import SipParseError
from .uri import SipUri, Uri, parse_uri, split_hostport

__all__ = [
    "AuthHeader",
    "CSeq",
    "ContentType",
    "NameAddress",
    "Reason",
    "RetryAfter",
    "Via",
    "format_params",
    "is_token",
    "parse_params",
    "quote",
    "split_list",
    "unquote",
]

TOKEN_CHARS = "A-Za-z0-9\\-.!%*_+`'~"
_TOKEN_RE = re.compile(f"[{TOKEN_CHARS}]+")
# A parameter value: token, host (IPv4/IPv6, possibly bracketed) or quoted string.
_PVALUE_RE = re.compile(f"[{TOKEN_CHARS}:\\[\\]]+")
# RFC 3261 display-name = *(token LWS) / quoted-string. Non-ASCII accepted (UTF-8 in the wild).
_DISPLAY_RE = re.compile(f"[{TOKEN_CHARS}\\x80-\\U0010ffff]+(?:\\s+[{TOKEN_CHARS}\\x80-\\U0010ffff]+)*")
_COLON_WS_RE = re.compile(r"\s*:\s*")


def is_token(text: str) -> bool:
    return _TOKEN_RE.fullmatch(text) is not None


def _quoted_end(text: str, start: int) -> int:
    """Index just past the quoted-string opening at ``text[start] == '"'``."""
    i = start + 1
    n = len(text)
    while i < n:
        j = text.find('"', i)
        k = text.find("\\", i)
        if k >= 0 and (j < 0 or k < j):
            i = k + 2  # quoted-pair: skip the escaped character
            continue
        if j < 0:
            break
        return j + 1
    raise SipParseError("Unterminated quoted string")


def unquote(value: str) -> str:
    """Strip the quotes of a quoted-string and resolve its quoted-pairs; tokens unchanged."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        inner = value[1:-1]
        if "\\" not in inner:
            return inner
        out: list[str] = []
        i = 0
        while i < len(inner):
            ch = inner[i]
            if ch == "\\" and i + 1 < len(inner):
                out.append(inner[i + 1])
                i += 2
            else:
                out.append(ch)
                i += 1
        return "".join(out)
    return value


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _split_unquoted(text: str, sep: str, angles: bool = False) -> list[str]:
    """Split on ``sep`` outside quoted strings (and outside ``<...>`` if ``angles``)."""
    parts: list[str] = []
    start = 0
    i = 0
    n = len(text)
    in_angle = False
    while i < n:
        ch = text[i]
        if ch == '"' and not in_angle:
            i = _quoted_end(text, i)
            continue
        if angles:
            if ch == "<":
                if in_angle:
                    raise SipParseError("Nested '<'")
                in_angle = True
            elif ch == ">":
                in_angle = False
        if ch == sep and not in_angle:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if in_angle:
        raise SipParseError("Unterminated '<'")
    parts.append(text[start:])
    return parts


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value (RFC 3261 §7.3.1), respecting quotes and <>.

    Empty elements are an error (RFC 4475 §3.1.2.1): ``Via: a;;,;,,`` is rejected.
    """
    if '"' in value or "<" in value:
        items = _split_unquoted(value, ",", angles=True)
    else:
        items = value.split(",")
    out = [item.strip() for item in items]
    if len(out) > 1 and not all(out):
        raise SipParseError("Empty element in header list")
    return out


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``*( SEMI generic-param )``; LWS allowed around ``;`` and ``=``."""
    params: dict[str, str | None] = {}
    text = text.strip()
    if not text:
        return params
    if text[0] != ";":
        raise SipParseError(f"Unexpected text before parameters: {text[:60]!r}")
    pieces = _split_unquoted(text[1:], ";") if '"' in text else text[1:].split(";")
    for piece in pieces:
        name, sep, value = piece.partition("=")
        name = name.strip()
        if not _TOKEN_RE.fullmatch(name):
            raise SipParseError(f"Bad parameter: {piece.strip()[:60]!r}")
        if sep:
            value = value.strip()
            if value.startswith('"'):
                if _quoted_end(value, 0) != len(value):
                    raise SipParseError(f"Bad quoted parameter value: {value[:60]!r}")
            elif not _PVALUE_RE.fullmatch(value):
                raise SipParseError(f"Bad parameter value: {value[:60]!r}")
            params[name.lower()] = value
        else:
            params[name.lower()] = None
    return params


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass
class NameAddress:
    """``name-addr`` or ``addr-spec`` with header params: From, To, Contact, Route, Record-Route...

    ``display_name`` is the decoded display name (quotes and escapes removed), ``None`` if
    absent. Serialization always uses ``<...>`` and quotes a display name.
    """

    uri: Uri
    display_name: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @tag.setter
    def tag(self, value: str | None) -> None:
        if value is None:
            self.params.pop("tag", None)
        else:
            self.params["tag"] = value

    @property
    def expires(self) -> int | None:
        """Contact ``expires`` parameter (None if absent or not a number)."""
        value = self.params.get("expires")
        if value is None or not value.isdecimal() or len(value) > 10:
            return None
        return int(value)

    @property
    def q(self) -> float | None:
        value = self.params.get("q")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

    @property
    def sip_uri(self) -> SipUri:
        """The URI as a :class:`SipUri`; raises SipParseError (416) if it is not sip/sips."""
        if not isinstance(self.uri, SipUri):
            raise SipParseError(f"Not a SIP URI: {self.uri}", 416)
        return self.uri

    @classmethod
    def parse(cls, text: str) -> NameAddress:
        s = text.strip()
        if not s:
            raise SipParseError("Empty address")
        display: str | None = None
        if s[0] == '"':
            end = _quoted_end(s, 0)
            display = unquote(s[:end])
            lt = s.find("<", end)
            if lt < 0 or s[end:lt].strip():
                raise SipParseError("Quoted display name not followed by <URI>")
        else:
            lt = s.find("<")
            if lt > 0:
                disp = s[:lt].strip()
                if disp:
                    # RFC 4475 §3.1.2.15: "Bell, Alexander <...>" is not a display name.
                    if not _DISPLAY_RE.fullmatch(disp):
                        raise SipParseError(f"Bad display name: {disp[:60]!r}")
                    display = disp
        if lt >= 0:
            gt = s.find(">", lt)
            if gt < 0:
                raise SipParseError("Unterminated '<' in address")
            # Spaces inside <> are tolerated (RFC 4475 §3.1.2.14 lets us be liberal).
            uri_text = s[lt + 1 : gt].strip()
            ptext = s[gt + 1 :]
            if "<" in uri_text:
                raise SipParseError("Nested '<' in address")
        else:
            semi = s.find(";")
            uri_text, ptext = (s[:semi].rstrip(), s[semi:]) if semi >= 0 else (s, "")
            # §20: a URI with ',', '?' or ';' must be in name-addr form (RFC 4475 §3.1.2.13).
            if "?" in uri_text or "," in uri_text or ">" in uri_text:
                raise SipParseError("URI with headers or comma must be enclosed in <>")
        return cls(parse_uri(uri_text), display, parse_params(ptext))

    def __str__(self) -> str:
        uri = f"<{self.uri}>"
        if self.display_name is not None:
            uri = f"{quote(self.display_name)} {uri}"
        return uri + format_params(self.params) if self.params else uri


@dataclass
class Via:
    """One Via value (§20.42): ``SIP/2.0/<transport> host[:port];params``."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    _RE = re.compile(r"\s*([^\s/]+)\s*/\s*([^\s/]+)\s*/\s*([^\s/;]+)\s+([^;]+?)\s*(;.*)?", re.S)

    @classmethod
    def parse(cls, text: str) -> Via:
        m = cls._RE.fullmatch(text)
        if m is None:
            raise SipParseError(f"Bad Via: {text[:80]!r}")
        name, version, transport, sent_by, ptext = m.groups()
        if not _TOKEN_RE.fullmatch(name) or not _TOKEN_RE.fullmatch(version) or not _TOKEN_RE.fullmatch(transport):
            raise SipParseError(f"Bad Via protocol: {text[:80]!r}")
        if " " in sent_by or "\t" in sent_by:
            sent_by = _COLON_WS_RE.sub(":", sent_by)  # sent-by = host [ COLON port ], COLON = SWS ":" SWS
        host, port = split_hostport(sent_by)
        params = parse_params(ptext) if ptext else {}
        return cls(transport.upper(), host, port, params, f"{name.upper()}/{version}")

    def __str__(self) -> str:
        hostport = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{self.protocol}/{self.transport} {hostport}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def is_rfc3261_branch(self) -> bool:
        """Branch starts with the magic cookie and has an identifier after it (§8.1.1.7)."""
        b = self.branch
        return b is not None and b.startswith("z9hG4bK") and len(b) > 7

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The filled-in ``rport`` value (RFC 3581), None if absent or empty."""
        value = self.params.get("rport")
        return int(value) if value is not None and value.isdecimal() and len(value) <= 5 else None

    @property
    def rport_requested(self) -> bool:
        return "rport" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    def stamp(self, source_ip: str, source_port: int) -> None:
        """Add ``received``/``rport`` for a request from ``source_ip:source_port``.

        RFC 3261 §18.2.1: add received when sent-by differs from the source address;
        RFC 3581 §4: if rport is present, fill it and always add received.
        """
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        if self.rport_requested:
            self.params["rport"] = str(source_port)
            self.params["received"] = source_ip
        elif host != source_ip:
            self.params["received"] = source_ip

    def response_address(self, default_port: int = 5060) -> tuple[str, int]:
        """Where to send responses over an unreliable transport (§18.2.2, RFC 3581 §4)."""
        host = self.maddr or self.received or self.host_address
        port = self.rport or self.port or default_port
        if self.received and self.rport:
            return self.received, self.rport
        return host, port

    @property
    def host_address(self) -> str:
        return self.host[1:-1] if self.host.startswith("[") else self.host


_CSEQ_RE = re.compile(r"\s*([0-9]+)\s+(\S+)\s*")
MAX_CSEQ = 2**31 - 1  # RFC 3261 §8.1.1.5: the sequence number MUST be less than 2**31


@dataclass
class CSeq:
    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        m = _CSEQ_RE.fullmatch(text)
        if m is None or not _TOKEN_RE.fullmatch(m.group(2)):
            raise SipParseError(f"Bad CSeq: {text[:60]!r}")
        digits = m.group(1)
        if len(digits) > 10 or int(digits) > MAX_CSEQ:
            raise SipParseError("CSeq number out of range")
        return cls(int(digits), m.group(2))

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


@dataclass
class ContentType:
    type: str
    subtype: str
    params: dict[str, str | None] = field(default_factory=dict)

    _RE = re.compile(f"\\s*([{TOKEN_CHARS}]+)\\s*/\\s*([{TOKEN_CHARS}]+)\\s*(;.*)?", re.S)

    @property
    def mime(self) -> str:
        """``type/subtype`` lower-cased, e.g. ``application/sdp``."""
        return f"{self.type}/{self.subtype}".lower()

    @classmethod
    def parse(cls, text: str) -> ContentType:
        m = cls._RE.fullmatch(text)
        if m is None:
            raise SipParseError(f"Bad Content-Type: {text[:60]!r}")
        return cls(m.group(1), m.group(2), parse_params(m.group(3) or ""))

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}{format_params(self.params)}"


@dataclass
class RetryAfter:
    """Retry-After (§20.33): delta-seconds, optional comment, ``;duration=``."""

    seconds: int
    comment: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    _RE = re.compile(r"\s*([0-9]+)\s*(\(.*\))?\s*(;.*)?", re.S)

    @classmethod
    def parse(cls, text: str) -> RetryAfter:
        m = cls._RE.fullmatch(text)
        if m is None or len(m.group(1)) > 10 or int(m.group(1)) > 2**32 - 1:
            raise SipParseError(f"Bad Retry-After: {text[:60]!r}")
        comment = m.group(2)[1:-1].strip() if m.group(2) else None
        return cls(int(m.group(1)), comment, parse_params(m.group(3) or ""))

    @property
    def duration(self) -> int | None:
        value = self.params.get("duration")
        return int(value) if value is not None and value.isdecimal() and len(value) <= 10 else None

    def __str__(self) -> str:
        comment = f" ({self.comment})" if self.comment else ""
        return f"{self.seconds}{comment}{format_params(self.params)}"


@dataclass
class Reason:
    """Reason (RFC 3326): ``SIP ;cause=487 ;text="Call completed elsewhere"``."""

    protocol: str
    cause: int | None = None
    text: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str) -> Reason:
        protocol, _, rest = value.strip().partition(";")
        protocol = protocol.strip()
        if not _TOKEN_RE.fullmatch(protocol):
            raise SipParseError(f"Bad Reason: {value[:60]!r}")
        params = parse_params(";" + rest) if rest else {}
        cause_text = params.pop("cause", None)
        text = params.pop("text", None)
        cause = int(cause_text) if cause_text and cause_text.isdecimal() and len(cause_text) <= 5 else None
        return cls(protocol, cause, unquote(text) if text is not None else None, params)

    def __str__(self) -> str:
        out = self.protocol
        if self.cause is not None:
            out += f";cause={self.cause}"
        if self.text is not None:
            out += f";text={quote(self.text)}"
        return out + format_params(self.params)


@dataclass
class AuthHeader:
    """WWW-Authenticate / Proxy-Authenticate / Authorization / Proxy-Authorization value.

    ``params`` keys are lower-cased, values unquoted. :mod:`.digest` builds on this.
    """

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> AuthHeader:
        s = text.strip()
        scheme, _, rest = s.partition(" ")
        if not _TOKEN_RE.fullmatch(scheme):
            raise SipParseError(f"Bad auth scheme: {s[:60]!r}")
        params: dict[str, str] = {}
        for piece in _split_unquoted(rest, ","):
            piece = piece.strip()
            if not piece:
                continue
            name, sep, value = piece.partition("=")
            name = name.strip()
            if not _TOKEN_RE.fullmatch(name):
                raise SipParseError(f"Bad auth parameter: {piece[:60]!r}")
            value = value.strip()
            if value.startswith('"') and _quoted_end(value, 0) != len(value):
                raise SipParseError(f"Bad auth parameter value: {value[:60]!r}")
            params[name.lower()] = unquote(value)
        return cls(scheme, params)

    # Parameters sent as tokens, never quoted (RFC 7616 §3.3/§3.4, RFC 3261 §25.1).
    _UNQUOTED = frozenset({"algorithm", "stale", "nc", "userhash"})

    def __str__(self) -> str:
        items = []
        for k, v in self.params.items():
            if k in self._UNQUOTED or (k == "qop" and "," not in v and "response" in self.params):
                items.append(f"{k}={v}")
            else:
                items.append(f"{k}={quote(v)}")
        return f"{self.scheme} " + ", ".join(items)
