"""Errors of the SIP grammar. Every SIP error carries the SIP status to answer with; the
SIP core (services/signaling/sip/errors.py) adds its own on the same base.

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


class SipUriError(SipParseError):
    """A URI that does not parse. ``part`` names the component that is wrong: ``uri``,
    ``scheme``, ``user``, ``password``, ``host``, ``port``, ``parameters`` or ``headers``."""

    def __init__(self, reason: str, part: str) -> None:
        super().__init__(reason)
        self.part = part


class TargetError(ValueError):
    """A URI that cannot be a SIP client target; ``str()`` is ``"<part>: <why>"`` for an
    API user, ``part`` as in :class:`SipUriError` or ``transport``."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(f"{part}: {message}")
        self.part = part
