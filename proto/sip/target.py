"""What a SIP client target URI may be (config validates what users provision with this,
signaling dials it): a ``sip:``/``sips:`` URI as the SIP core's own parser reads it in
strict mode, plus the rules of a target. Every error names the part that is wrong."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import SipUriError, TargetError
from .uri import SipUri, parse_uri

TRANSPORTS = ("udp", "tcp", "tls")
MAX_LENGTH = 512


@dataclass(frozen=True)
class TargetUri:
    """A valid target URI (what ``proto.messages.SipTarget.uri`` holds). ``host`` is lower-cased (host names are case-insensitive,
    RFC 3261 §19.1.4), the ``transport`` parameter's value too."""

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
        t = self.params.get("transport") or "udp"
        return t if t in TRANSPORTS else "udp"

    @property
    def secure(self) -> bool:
        return self.transport == "tls"


def parse_target(value: str) -> TargetUri:
    """Validate a SIP client target URI. Stricter than the grammar where a target needs it:
    no password in the URI (it has its own field), no `?headers`, port 1-65535, transport
    udp/tcp/tls, and not sips: over UDP."""
    if len(value) > MAX_LENGTH:
        raise TargetError("uri", f"longer than {MAX_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) > 0x7E for c in value):
        raise TargetError("uri", "contains spaces, control or non-ASCII characters (escape them with %XX)")
    scheme = value.partition(":")[0].lower()
    if ":" not in value or scheme not in ("sip", "sips"):
        raise TargetError("scheme", "must start with sip: or sips:")
    try:
        uri = parse_uri(value, strict=True)
    except SipUriError as e:
        raise TargetError(e.part, e.reason) from None
    assert isinstance(uri, SipUri)  # the scheme is sip or sips
    if uri.password is not None:
        raise TargetError("password", "do not put the password in the URI; use the password field")
    if uri.headers:
        raise TargetError("headers", "URI headers (?...) are not allowed in a target URI")
    if uri.port == 0:
        raise TargetError("port", "0 is out of range 1-65535")
    params = dict(uri.params)
    if "transport" in params:
        t = (params["transport"] or "").lower()
        if t not in TRANSPORTS:
            raise TargetError("transport", f"transport={params['transport']} is not supported (use udp, tcp or tls)")
        if scheme == "sips" and t == "udp":
            # RFC 5630 §3.1.3: SIPS means TLS on every hop; UDP cannot carry it.
            raise TargetError("transport", "sips: cannot use transport=udp (sips means TLS)")
        params["transport"] = t
    return TargetUri(scheme=uri.scheme, user=uri.user, host=uri.host.lower(), port=uri.port, params=params)
