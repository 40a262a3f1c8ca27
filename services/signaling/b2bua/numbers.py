"""Which tracking number a carrier's INVITE is for, in E.164."""

from __future__ import annotations

import ipaddress

from proto.e164 import normalize_e164
from proto.errors import InvalidNumber as NotANumber

from ..sip.message import Request
from ..sip.uri import SipUri, TelUri, unescape

__all__ = ["NotANumber", "caller_of", "normalize", "tracking_number"]


def normalize(raw: str, default_region: str = "US") -> str:
    """A SIP user part as carriers send it: `+1 (555) 123-4567`, `15551234567`, `5551234567`,
    `%2B15551234567` -> `+15551234567` (the E.164 rules config provisions numbers with)."""
    return normalize_e164(unescape(raw), region=default_region)


def _user_of(uri: object) -> str | None:
    if isinstance(uri, SipUri):
        return uri.user
    if isinstance(uri, TelUri):
        return uri.number
    return None


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def tracking_number(invite: Request) -> str:
    """The Request-URI's user part; the To user when the Request-URI is only our address
    (some trunks send `INVITE sip:203.0.113.10` with the dialled number in To)."""
    uri = invite.parsed_uri()
    user = _user_of(uri)
    if not user or (isinstance(uri, SipUri) and user and not any(c.isdigit() for c in user)):
        user = _user_of(invite.to.uri)
    if not user:
        raise NotANumber("no number in the Request-URI or To")
    return normalize(user)


def caller_of(invite: Request) -> tuple[str | None, str | None]:
    """(caller number or user, display name) from From."""
    frm = invite.from_
    user = _user_of(frm.uri)
    try:
        number = normalize(user) if user else None
    except NotANumber:
        number = user
    return number, (frm.display_name or None)
