"""Errors of the media service.

Bus-facing errors are `HandlerError`s so the bus answers an ErrorReply with the code the
signaling service acts on (404 unknown call, 503 no ports: try another region)."""

from __future__ import annotations

from typing import Any

from services.common.errors import HandlerError


class MediaError(Exception):
    """Base of the media service's own errors."""


class PacketError(MediaError, ValueError):
    """Bytes that are not a well-formed RTP/RTCP/telephone-event packet."""


class SrtpError(MediaError):
    """A packet failed SRTP/SRTCP authentication or the replay check (RFC 3711 §3.3)."""


class BadKey(MediaError, ValueError):
    """An SDES key that is not 30 bytes of AES_CM_128_HMAC_SHA1_80 material (RFC 4568)."""


class PoolExhausted(HandlerError):
    """No free RTP/RTCP port pair: signaling answers 503 or tries another region."""

    def __init__(self, detail: dict[str, Any] | None = None) -> None:
        super().__init__(503, "media port pool exhausted", detail)


class UnknownCall(HandlerError):
    def __init__(self, call_id: str) -> None:
        super().__init__(404, "unknown call", {"call_id": call_id})


class Draining(HandlerError):
    """The worker is shutting down and takes no new calls."""

    def __init__(self) -> None:
        super().__init__(503, "media worker draining")


class BadRequest(HandlerError):
    def __init__(self, error: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(400, error, detail)
