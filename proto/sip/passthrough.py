"""Which of the carrier's INVITE headers go on to the customer's PBX, and which headers a
receiving number may add (`forward_headers`, `sip_headers`). Config validates with these
rules and signaling applies them, so what the API accepts is what goes on the wire."""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import fnmatchcase

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
TOKEN_RE = re.compile(rf"^{_TOKEN}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9\-.!%_+`'~]+$")  # a header name; no '*' (that is the pattern's)
# quoted-string (§25.1): DQUOTE *(qdtext / quoted-pair) DQUOTE, printable ASCII only here.
_QUOTED_RE = re.compile(r'^"(?:[ !#-\[\]-~]|\\[ -~])*"$')

MAX_SIP_HEADERS = 10
MAX_VALUE = 256

# What the B2BUA writes itself on the client INVITE: never copied from the carrier, never
# set by a receiving number (a PBX must be able to trust them).
RESERVED = frozenset(h.lower() for h in (
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Route", "Record-Route",
    "Authorization", "Proxy-Authorization", "Proxy-Require", "Require", "Supported", "Session-Expires",
    "Min-SE", "RSeq", "RAck", "Allow", "Diversion", "Content-Length", "Content-Type", "Content-Encoding",
    "Content-Disposition", "Content-Language",
))
RESERVED_PREFIXES = ("content-", "x-switchboard-")


def reserved(name: str) -> bool:
    low = name.lower()
    return low in RESERVED or low.startswith(RESERVED_PREFIXES)


def check_forward_pattern(pattern: str) -> str:
    """A `forward_headers` entry: a header name, or a prefix ending in `*` (`X-*`)."""
    stem = pattern[:-1] if pattern.endswith("*") else pattern
    if not stem or not _NAME_RE.match(stem):
        raise ValueError(f"{pattern!r} is not a header name (letters, digits, '-'; a trailing '*' matches a prefix)")
    if not pattern.endswith("*") and reserved(stem):
        raise ValueError(f"{pattern} is set by Switchboard itself and is never copied")
    return pattern


def check_sip_header(name: str, value: str) -> None:
    """A `sip_headers` entry: an `X-` name; a token or a quoted-string value."""
    if not _NAME_RE.match(name) or not name.lower().startswith("x-") or len(name) < 3:
        raise ValueError(f"{name!r}: header names must start with X- and be a token")
    if reserved(name):
        raise ValueError(f"{name} is set by Switchboard itself")
    if len(value) > MAX_VALUE or not (TOKEN_RE.match(value) or _QUOTED_RE.match(value)):
        raise ValueError(f"{name}: the value must be a token or a quoted-string (at most {MAX_VALUE} characters)")


def matches(name: str, patterns: Iterable[str]) -> bool:
    low = name.lower()
    return any(fnmatchcase(low, p.lower()) if p.endswith("*") else low == p.lower() for p in patterns)


def select(headers: Iterable[tuple[str, str]], *, forward_pai: bool, forward_identity: bool,
           patterns: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The carrier's header fields that go to the client leg, in their order.

    P-Asserted-Identity and Privacy (RFC 3325 §9.1, RFC 3323) pass as they came when
    `forward_pai`; Identity (STIR/SHAKEN, RFC 8224 §4) unchanged when `forward_identity`:
    it signs the From/To numbers and the date, so it is only useful to a PBX unaltered.
    Then every header a pattern names, never one we set ourselves."""
    pats = list(patterns)
    out: list[tuple[str, str]] = []
    for name, value in headers:
        low = name.lower()
        if low in ("p-asserted-identity", "privacy"):
            keep = forward_pai
        elif low == "identity":
            keep = forward_identity
        else:
            keep = not reserved(name) and matches(name, pats)
        if keep:
            out.append((name, value))
    return out
