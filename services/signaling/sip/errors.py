"""Errors of the SIP wire layer. Every one carries the SIP status to answer with.

A bad message never raises anything but :class:`SipParseError` from the parsers
(``parse_message``, ``split_stream``, the URI/header/SDP/digest parsers), so a caller can
answer it (requests) or drop it (responses, RFC 3261 §18.1.2) and go on.
"""

from __future__ import annotations

# The base and the parse error live with the URI grammar in proto/ (config validates targets
# with the same parser); every SIP core module keeps importing them from here.
from proto.sip.errors import SipError, SipParseError, SipUriError

__all__ = ["DigestError", "SdpError", "SipError", "SipParseError", "SipUriError", "TransactionStateError"]


class SdpError(SipError):
    """An SDP body that cannot be parsed or negotiated; 488 Not Acceptable Here."""

    default_status = 488


class DigestError(SipError):
    """A challenge or credentials that cannot be used (unsupported scheme/algorithm...)."""

    default_status = 400


class TransactionStateError(SipError):
    """An input a transaction or dialog state machine does not allow in its current state
    (e.g. the TU sends a second final response). A programming error in the caller, never
    caused by what a peer sends; status 500 if it must be answered."""

    default_status = 500
