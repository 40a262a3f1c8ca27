"""Errors of the signaling service (the asyncio side; the SIP wire layer has sip/errors.py)."""

from __future__ import annotations


class SignalingError(Exception):
    """Base of the signaling service's own errors."""


class TransportError(SignalingError):
    """A message could not be sent, or a connection failed.

    ``reason`` is a short phrase naming the cause, stable enough to match on and to put in
    a call event: ``"connection refused"``, ``"timeout"``, ``"tls: unknown CA"``,
    ``"tls: wrong host name"``, ``"tls: certificate expired"``,
    ``"tls: handshake failed: ..."``. ``detail`` carries the underlying error text.
    """

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(f"{reason} ({detail})" if detail else reason)
        self.reason = reason
        self.detail = detail

    def __repr__(self) -> str:
        return f"TransportError({self.reason!r})"


class CallSetupError(SignalingError):
    """A call cannot proceed; ``status`` is the SIP final response for the carrier and
    ``reason`` what the call record says (RFC 3326 Reason text)."""

    def __init__(self, status: int, reason: str, *, retry_after: int | None = None,
                 extra_headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        self.extra_headers = extra_headers or []


class LegStateError(SignalingError):
    """A call leg's state machine got an input its table does not allow in the current
    state: a bug in the caller (every input a peer can cause is in the tables)."""
