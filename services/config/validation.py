"""Input rules shared by the API models and the resolver: E.164 numbers, SIP URIs, digits.

E.164 numbers and SIP client targets are checked by the pure rules in proto/ that signaling
uses too (proto/e164.py; proto/sip/target.py over the SIP core's own URI parser), so config
never accepts a number or a URI that signaling reads differently. Every URI error names the
part of the URI that is wrong."""

from __future__ import annotations

import re

from proto.e164 import normalize_e164
from proto.sip.errors import TargetError as SipUriError
from proto.sip.target import TargetUri
from proto.sip.target import parse_target as parse_sip_uri

__all__ = ["SipUriError", "TargetUri", "check_pem", "check_send_digits", "normalize_e164", "parse_sip_uri"]

# --- DTMF digits to send after answer ---------------------------------------------------

SEND_DIGITS = re.compile(r"[0-9A-Da-d*#wW]{1,64}")
SEND_DIGITS_HELP = "digits 0-9, A-D, * and #, with w for a 0.5 s pause (e.g. ww123#), at most 64"


def media_encryption(uri: TargetUri, chosen: str | None) -> str:
    """A target's media encryption: what was chosen, else SRTP on TLS targets (sips: or
    transport=tls) and plain RTP otherwise."""
    return chosen or ("srtp" if uri.secure else "none")


def check_media_encryption(uri: TargetUri, chosen: str | None) -> str | None:
    """Why `chosen` cannot be used with this target, or None. SDES (RFC 4568 §8.3) puts
    the SRTP key in the SDP: over UDP or TCP anyone on the path would read it."""
    if chosen == "srtp" and not uri.secure:
        return (f"srtp needs a TLS target (sips: or transport=tls): over {uri.transport} the SDES key "
                "would cross the network in clear")
    return None


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
