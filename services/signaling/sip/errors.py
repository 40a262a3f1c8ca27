"""Errors of the SIP wire layer. Every one carries the SIP status to answer with.

A bad message never raises anything but :class:`SipParseError` from the parsers
(``parse_message``, ``split_stream``, the URI/header/SDP/digest parsers), so a caller can
answer it (requests) or drop it (responses, RFC 3261 §18.1.2) and go on.
"""

from __future__ import annotations


class SipError(Exception):
    """Base class: ``status`` is the SIP response code to send, ``reason`` its phrase."""

    default_status = 400

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = self.default_status if status is None else status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.reason!r})"


class SipParseError(SipError):
    """A message, header, URI or body could not be parsed or violates RFC 3261.

    ``status`` is 400 unless a more specific code applies: 505 (bad SIP version),
    513 (message, header count or header line over the configured bounds), 420/416 are
    left to the layers above. ``headers`` holds the header fields (name, value) when the
    header section itself could be split, so a stateless 400 can still be built from
    Via/From/To/Call-ID/CSeq when they are usable; ``is_request`` says what the start line
    looked like (None if unknown). For responses the status is informational: a bad
    response is dropped, never answered (RFC 4475 §3.1.2.19).
    """

    def __init__(
        self,
        reason: str,
        status: int | None = None,
        *,
        headers: tuple[tuple[str, str], ...] | None = None,
        is_request: bool | None = None,
    ) -> None:
        super().__init__(reason, status)
        self.headers = headers
        self.is_request = is_request


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
