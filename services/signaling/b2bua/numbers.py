"""Which tracking number a carrier's INVITE is for, in E.164."""

from __future__ import annotations

import ipaddress

import phonenumbers

from ..sip.message import Request
from ..sip.uri import SipUri, TelUri, unescape


class NotANumber(ValueError):
    pass


def normalize(raw: str, default_region: str = "US") -> str:
    """`+1 (555) 123-4567`, `15551234567`, `5551234567` -> `+15551234567`."""
    text = "".join(ch for ch in unescape(raw) if ch not in " -.()")
    if not text or not any(ch.isdigit() for ch in text):
        raise NotANumber(f"{raw!r} is not a phone number")
    if not text.startswith("+") and len(text) == 11 and text.startswith("1"):
        text = "+" + text  # NANP numbers as carriers usually send them, without the +
    try:
        num = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException as e:
        raise NotANumber(f"{raw!r} is not a phone number: {e}") from None
    if not phonenumbers.is_possible_number(num):
        raise NotANumber(f"{raw!r} is not a possible phone number")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


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
