"""Input rules shared by the API models and the resolver: E.164 numbers, SIP URIs, digits.

The SIP URI check is a small validator of RFC 3261 §19.1 / §25.1 grammar written here on
purpose: the full SIP parser belongs to the signaling service, which config must not import.
Every error names the part of the URI that is wrong."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

import phonenumbers

# --- E.164 ----------------------------------------------------------------------------


def normalize_e164(value: str) -> str:
    """`+1 (555) 123-4567` -> `+15551234567`; raise ValueError with the reason otherwise.

    A number is accepted when its length is possible for its country code (not when it is
    assigned: test numbers like +1555... must be usable)."""
    raw = value.strip()
    if not raw.startswith("+"):
        raise ValueError("must be an E.164 number starting with + and the country code, e.g. +15551234567")
    if len(raw) > 32 or not re.fullmatch(r"\+[0-9 ().\-]+", raw):
        raise ValueError("must contain only digits after the + (spaces, dots, dashes, brackets allowed)")
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as e:
        raise ValueError(f"not a phone number: {e}") from None
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        why = {
            phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
            phonenumbers.ValidationResult.TOO_SHORT: "too short for its country code",
            phonenumbers.ValidationResult.TOO_LONG: "too long for its country code",
        }.get(reason, "not a possible number for its country code")
        raise ValueError(f"not a valid E.164 number: {why}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# --- SIP URI (RFC 3261 §19.1.1, §25.1) --------------------------------------------------

_ALNUM = "A-Za-z0-9"
_MARK = r"\-_.!~*'()"
_UNRESERVED = _ALNUM + _MARK
_ESCAPED = r"%[0-9A-Fa-f]{2}"
_USER = re.compile(rf"(?:[{_UNRESERVED}&=+$,;?/]|{_ESCAPED})+")
_PASSWORD = re.compile(rf"(?:[{_UNRESERVED}&=+$,]|{_ESCAPED})*")
_PARAMCHAR = re.compile(rf"(?:[{_UNRESERVED}\[\]/:&+$]|{_ESCAPED})+")
_HNVCHAR = re.compile(rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_ESCAPED})*")
_DOMAINLABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?")
_TOPLABEL = re.compile(r"[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?")
TRANSPORTS = ("udp", "tcp", "tls")


class SipUriError(ValueError):
    def __init__(self, part: str, message: str) -> None:
        super().__init__(f"{part}: {message}")
        self.part = part


@dataclass(frozen=True)
class SipUri:
    scheme: str
    user: str | None
    host: str
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def transport(self) -> str:
        """What the URI asks for: `sips:` or `transport=tls` -> tls (RFC 3261 §26.2)."""
        if self.scheme == "sips":
            return "tls"
        t = (self.params.get("transport") or "udp").lower()
        return t if t in TRANSPORTS else "udp"

    @property
    def secure(self) -> bool:
        return self.transport == "tls"


def _host(host: str) -> str:
    if not host:
        raise SipUriError("host", "missing (expected sip:user@host)")
    if host.startswith("["):
        if not host.endswith("]"):
            raise SipUriError("host", f"unterminated IPv6 reference {host!r}")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise SipUriError("host", f"{host!r} is not a valid IPv6 address") from None
        return host
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise SipUriError("host", f"{host!r} is not a valid IPv4 address") from None
        return host
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253:
        raise SipUriError("host", "host name longer than 253 characters")
    labels = name.split(".")
    for label in labels[:-1]:
        if not _DOMAINLABEL.fullmatch(label):
            raise SipUriError("host", f"{host!r} is not a valid host name (bad label {label!r})")
    if not _TOPLABEL.fullmatch(labels[-1]):
        raise SipUriError("host", f"{host!r} is not a valid host name (bad top label {labels[-1]!r})")
    return host


def parse_sip_uri(value: str) -> SipUri:
    """Validate a SIP client target URI. Stricter than the grammar where a target needs it:
    no password in the URI (it has its own field), no `?headers`, transport udp/tcp/tls."""
    if len(value) > 512:
        raise SipUriError("uri", "longer than 512 characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) > 0x7E for c in value):
        raise SipUriError("uri", "contains spaces, control or non-ASCII characters (escape them with %XX)")
    scheme, sep, rest = value.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in ("sip", "sips"):
        raise SipUriError("scheme", "must start with sip: or sips:")
    if "?" in rest:
        rest, _, headers = rest.partition("?")
        for h in headers.split("&"):
            name, eq, hval = h.partition("=")
            if not name or not eq or not _HNVCHAR.fullmatch(hval):
                raise SipUriError("headers", f"malformed header {h!r}")
        raise SipUriError("headers", "URI headers (?...) are not allowed in a target URI")
    user: str | None = None
    if "@" in rest:
        userinfo, _, rest = rest.partition("@")
        user, colon, password = userinfo.partition(":")
        if not user or not _USER.fullmatch(user):
            raise SipUriError("user", f"{user!r} is not a valid SIP user part")
        if colon:
            if not _PASSWORD.fullmatch(password):
                raise SipUriError("password", "malformed password in the URI")
            raise SipUriError("password", "do not put the password in the URI; use the password field")
    hostport, _, params_s = rest.partition(";")
    port: int | None = None
    if hostport.startswith("["):
        end = hostport.find("]")
        host, tail = (hostport[: end + 1], hostport[end + 1 :]) if end >= 0 else (hostport, "")
    else:
        host, colon, port_s = hostport.partition(":")
        tail = colon + port_s
    if tail:
        if not tail.startswith(":") or not tail[1:].isdigit() or len(tail) > 6:
            raise SipUriError("port", f"{tail[1:]!r} is not a port number")
        port = int(tail[1:])
        if not 1 <= port <= 65535:
            raise SipUriError("port", f"{port} is out of range 1-65535")
    _host(host)
    params: dict[str, str | None] = {}
    if params_s or rest.endswith(";"):
        for p in params_s.split(";"):
            name, eq, pval = p.partition("=")
            if not name or not _PARAMCHAR.fullmatch(name) or (eq and not _PARAMCHAR.fullmatch(pval)):
                raise SipUriError("parameters", f"malformed parameter {p!r}")
            lname = name.lower()
            if lname in params:
                raise SipUriError("parameters", f"parameter {name!r} appears twice")
            params[lname] = pval if eq else None
    if "transport" in params:
        t = (params["transport"] or "").lower()
        if t not in TRANSPORTS:
            raise SipUriError("transport", f"transport={params['transport']} is not supported (use udp, tcp or tls)")
        if scheme == "sips" and t == "udp":
            # RFC 5630 §3.1.3: SIPS means TLS on every hop; UDP cannot carry it.
            raise SipUriError("transport", "sips: cannot use transport=udp (sips means TLS)")
        params["transport"] = t
    return SipUri(scheme=scheme, user=user, host=host.lower(), port=port, params=params)


# --- DTMF digits to send after answer ---------------------------------------------------

SEND_DIGITS = re.compile(r"[0-9A-Da-d*#wW]{1,64}")
SEND_DIGITS_HELP = "digits 0-9, A-D, * and #, with w for a 0.5 s pause (e.g. ww123#), at most 64"


def check_send_digits(value: str) -> str:
    if not SEND_DIGITS.fullmatch(value):
        raise ValueError(f"must be {SEND_DIGITS_HELP}")
    return value


# --- PEM ------------------------------------------------------------------------------

_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n[A-Za-z0-9+/=\r\n]+-----END \1-----\s*")


def check_pem(value: str, kinds: tuple[str, ...]) -> str:
    blocks = list(re.finditer(r"-----BEGIN ([A-Z0-9 ]+)-----", value))
    if not blocks or not re.fullmatch(rf"\s*(?:{_PEM.pattern})+", value):
        raise ValueError(f"must be PEM ({' or '.join(kinds)})")
    for b in blocks:
        if b.group(1) not in kinds:
            raise ValueError(f"PEM block {b.group(1)!r} found; expected {' or '.join(kinds)}")
    return value
