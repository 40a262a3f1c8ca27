"""SIP/SIPS URIs (RFC 3261 §19.1, §25.1), tel URIs (RFC 3966) and any other absolute URI.

The one URI parser of the system: the SIP core parses messages with it, config validates
SIP client targets with it (``strict=True``, see :mod:`proto.sip.target`).

Components are kept in their on-the-wire (escaped) form so that ``str(parse_uri(s))``
reproduces ``s`` up to the case of parameter names; :func:`unescape` gives the decoded
value and :func:`uris_equal` implements the comparison rules of RFC 3261 §19.1.4.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field

from .errors import SipUriError

__all__ = [
    "AbsoluteUri",
    "SipUri",
    "TelUri",
    "Uri",
    "escape",
    "parse_uri",
    "split_hostport",
    "unescape",
    "uris_equal",
]

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# Host names: RFC 3261 hostname, liberal about '_' (seen in the wild) and a trailing dot.
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_\-.]*[A-Za-z0-9_.])?")
_IPV4_RE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_OCTET = r"0*(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_STRICT_RE = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")
# RFC 3261 §25.1: user = 1*( unreserved / escaped / user-unreserved )
_USER_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
_PASSWORD_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*")
# paramchar = param-unreserved / unreserved / escaped
_PARAM_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})+")
# hname/hvalue = 1*( hnv-unreserved / unreserved / escaped )
_HCHAR_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*")
# absoluteURI opaque part (RFC 2396 uric): anything printable but space, <, >, ", and DEL.
_OPAQUE_RE = re.compile(r"[!#-;=?-~\x80-\U0010ffff]+")
_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")

# RFC 3261 §25.1 hostname, as a strict parse requires it: labels do not start or end with '-',
# the top label starts with a letter (so `1.2.3` is neither an address nor a name).
_DOMAINLABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?")
_TOPLABEL_RE = re.compile(r"[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?")

# RFC 3261 §19.1.4: these URI parameters must match if present in either URI.
_STRICT_PARAMS = ("user", "ttl", "method", "maddr", "transport")


def unescape(text: str) -> str:
    """Decode %HH escapes (UTF-8, invalid sequences kept as escaped bytes)."""
    if "%" not in text:
        return text
    raw = _ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), text)
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


_USER_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()&=+$,;?/")


def escape(text: str, safe: frozenset[str] = _USER_SAFE) -> str:
    """%-escape every character of ``text`` not in ``safe`` (default: the user part set)."""
    out: list[str] = []
    for ch in text:
        if ch in safe:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def _check_host(host: str) -> str:
    if not host:
        raise SipUriError("Missing host", "host")
    if host.startswith("["):
        if not host.endswith("]"):
            raise SipUriError(f"Unterminated IPv6 reference: {host!r}", "host")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise SipUriError(f"Bad IPv6 reference: {host!r}", "host") from None
        return host
    if _IPV4_RE.fullmatch(host):
        if not _IPV4_STRICT_RE.fullmatch(host):
            raise SipUriError(f"Bad IPv4 address: {host!r}", "host")
        return host
    if not _HOSTNAME_RE.fullmatch(host):
        raise SipUriError(f"Bad host: {host!r}", "host")
    return host


def _check_hostname_strict(host: str) -> None:
    if host.startswith("[") or _IPV4_RE.fullmatch(host):
        return
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253:
        raise SipUriError("Host name longer than 253 characters", "host")
    *labels, top = name.split(".")
    for label in labels:
        if not _DOMAINLABEL_RE.fullmatch(label):
            raise SipUriError(f"Bad host name {host!r} (label {label!r})", "host")
    if not _TOPLABEL_RE.fullmatch(top):
        raise SipUriError(f"Bad host name {host!r} (top label {top!r})", "host")


def _parse_port(text: str) -> int:
    if not text.isdecimal() or not text.isascii() or len(text) > 5 or int(text) > 65535:
        raise SipUriError(f"Bad port: {text!r}", "port")
    return int(text)


@functools.lru_cache(maxsize=4096)  # the same few peers' hosts recur in every message
def split_hostport(text: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (host may be an ``[IPv6]`` reference) and validate both."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipUriError(f"Unterminated IPv6 reference: {text!r}", "host")
        host, rest = text[: end + 1], text[end + 1 :]
        if not rest:
            return _check_host(host), None
        if rest[0] != ":":
            raise SipUriError(f"Bad host: {text!r}", "host")
        return _check_host(host), _parse_port(rest[1:])
    host, sep, port = text.partition(":")
    return _check_host(host), (_parse_port(port) if sep else None)


def _parse_uri_params(text: str, strict: bool = False) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for item in text.split(";"):
        name, sep, value = item.partition("=")
        if not _PARAM_RE.fullmatch(name) or (sep and not _PARAM_RE.fullmatch(value)):
            raise SipUriError(f"Bad URI parameter: {item!r}", "parameters")
        key = name.lower()
        if strict and key in params:
            # §19.1.1: "any given parameter-name MUST NOT appear more than once".
            raise SipUriError(f"URI parameter {name!r} appears twice", "parameters")
        params[key] = value if sep else None
    return params


def _format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass
class SipUri:
    """``sip:`` / ``sips:`` URI. ``user``, ``password``, param values and headers stay escaped.

    ``host`` keeps IPv6 references bracketed (``[2001:db8::1]``); ``params`` keys are
    lower-cased (names are case-insensitive, §19.1.4), values as received, ``None`` for a
    parameter without value (``;lr``).
    """

    host: str
    user: str | None = None
    port: int | None = None
    scheme: str = "sip"
    password: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def transport(self) -> str | None:
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def secure(self) -> bool:
        return self.scheme == "sips"

    @property
    def lr(self) -> bool:
        return "lr" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def user_param(self) -> str | None:
        """The ``user=`` parameter (``phone`` for telephone-subscriber users)."""
        return self.params.get("user")

    @property
    def host_address(self) -> str:
        """Host without IPv6 brackets, for socket use."""
        return self.host[1:-1] if self.host.startswith("[") else self.host

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts += [":", self.password]
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts += [":", str(self.port)]
        if self.params:
            parts.append(_format_params(self.params))
        if self.headers:
            parts += ["?", "&".join(f"{k}={v}" for k, v in self.headers)]
        return "".join(parts)

    def copy(self, **changes: object) -> SipUri:
        new = SipUri(
            self.host, self.user, self.port, self.scheme, self.password, dict(self.params), list(self.headers)
        )
        for key, value in changes.items():
            setattr(new, key, value)
        return new


@dataclass
class TelUri:
    """``tel:`` URI (RFC 3966): ``number`` (global ``+...`` or local) and parameters."""

    number: str
    params: dict[str, str | None] = field(default_factory=dict)
    scheme: str = "tel"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    def __str__(self) -> str:
        return f"tel:{self.number}{_format_params(self.params)}"


@dataclass
class AbsoluteUri:
    """Any other absolute URI (``http:``, ``urn:``, unknown schemes): kept opaque."""

    scheme: str
    opaque: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"


Uri = SipUri | TelUri | AbsoluteUri

_TEL_NUMBER_RE = re.compile(r"\+?[0-9A-Fa-f*#.()\-]+")


def parse_uri(text: str, *, strict: bool = False) -> Uri:
    """Parse any absolute URI; ``sip``/``sips``/``tel`` get typed, others stay opaque.

    Errors are :class:`SipUriError` naming the wrong part. ``strict`` also rejects what the
    grammar forbids but peers send and we tolerate from them: a URI parameter given twice
    (§19.1.1) and host names outside §25.1 (``_``, empty or ``-``-edged labels)."""
    scheme, sep, rest = text.partition(":")
    if not sep or not _SCHEME_RE.fullmatch(scheme):
        raise SipUriError(f"Bad URI: {text[:100]!r}", "scheme")
    lscheme = scheme.lower()
    if not rest:
        raise SipUriError("Missing host", "host") if lscheme in ("sip", "sips") else SipUriError(
            f"Bad URI: {text[:100]!r}", "uri")
    if lscheme in ("sip", "sips"):
        return _parse_sip(lscheme, rest, text, strict)
    if not _OPAQUE_RE.fullmatch(rest):
        raise SipUriError(f"Bad URI: {text[:100]!r}", "uri")
    if lscheme == "tel":
        number, _, ptext = rest.partition(";")
        if _TEL_NUMBER_RE.fullmatch(number):
            return TelUri(number, _parse_uri_params(ptext, strict) if ptext else {})
    return AbsoluteUri(scheme, rest)


def _parse_sip(scheme: str, rest: str, text: str, strict: bool) -> SipUri:
    user: str | None = None
    password: str | None = None
    # The userinfo ends at the first '@' (user/password cannot hold a raw '@', §25.1).
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, sep, pw = userinfo.partition(":")
        if not _USER_RE.fullmatch(user):
            raise SipUriError(f"Bad URI userinfo: {text[:100]!r}", "user")
        if sep and not _PASSWORD_RE.fullmatch(pw):
            raise SipUriError(f"Bad URI userinfo: {text[:100]!r}", "password")
        if sep:
            password = pw
    headers: list[tuple[str, str]] = []
    q = rest.find("?")
    if q >= 0:
        rest, htext = rest[:q], rest[q + 1 :]
        for item in htext.split("&"):
            name, sep, value = item.partition("=")
            if not name or not sep or not _HCHAR_RE.fullmatch(name) or not _HCHAR_RE.fullmatch(value):
                raise SipUriError(f"Bad URI header: {item[:100]!r}", "headers")
            headers.append((name, value))
    if rest.startswith("["):
        end = rest.find("]")
        semi = rest.find(";", end if end > 0 else 0)
    else:
        semi = rest.find(";")
    params: dict[str, str | None] = {}
    if semi >= 0:
        rest, ptext = rest[:semi], rest[semi + 1 :]
        params = _parse_uri_params(ptext, strict)
    host, port = split_hostport(rest)
    if strict:
        _check_hostname_strict(host)
    return SipUri(host, user, port, scheme, password, params, headers)


def _unescape_lower(text: str) -> str:
    return unescape(text).lower()


def uris_equal(a: Uri, b: Uri) -> bool:
    """URI equivalence per RFC 3261 §19.1.4 (sip/sips), RFC 3966 §4 (tel) roughly, else text."""
    if isinstance(a, SipUri) and isinstance(b, SipUri):
        if a.scheme != b.scheme:
            return False
        # userinfo is case-sensitive, compared after unescaping
        if (a.user is None) != (b.user is None) or (a.user is not None and unescape(a.user) != unescape(b.user or "")):
            return False
        if (a.password is None) != (b.password is None) or unescape(a.password or "") != unescape(b.password or ""):
            return False
        if a.host.lower() != b.host.lower() or a.port != b.port:
            return False
        ap = {_unescape_lower(k): v for k, v in a.params.items()}
        bp = {_unescape_lower(k): v for k, v in b.params.items()}
        for name in _STRICT_PARAMS:
            if (name in ap) != (name in bp):
                return False
        for name in ap.keys() & bp.keys():
            av, bv = ap[name], bp[name]
            if (av is None) != (bv is None):
                return False
            if av is not None and bv is not None and unescape(av).lower() != unescape(bv).lower():
                return False
        # §19.1.4: header components are never ignored; compared case-insensitively by name.
        ah = sorted((_unescape_lower(k), unescape(v)) for k, v in a.headers)
        bh = sorted((_unescape_lower(k), unescape(v)) for k, v in b.headers)
        return ah == bh
    if isinstance(a, TelUri) and isinstance(b, TelUri):
        strip = str.maketrans("", "", "-.()")
        return a.number.translate(strip).lower() == b.number.translate(strip).lower() and {
            k: (v.lower() if v else v) for k, v in a.params.items()
        } == {k: (v.lower() if v else v) for k, v in b.params.items()}
    if isinstance(a, AbsoluteUri) and isinstance(b, AbsoluteUri):
        return a.scheme.lower() == b.scheme.lower() and a.opaque == b.opaque
    return False
