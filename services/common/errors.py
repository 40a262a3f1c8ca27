"""Errors of the shared bus/settings helpers."""

from __future__ import annotations

from typing import Any


class BusError(Exception):
    """Base of every bus failure a caller may want to handle as one."""


class BusTimeout(BusError):
    def __init__(self, subject: str, timeout: float) -> None:
        super().__init__(f"no answer on {subject!r} within {timeout:.2f}s")
        self.subject = subject
        self.timeout = timeout


class NoResponders(BusError):
    def __init__(self, subject: str) -> None:
        super().__init__(f"no service is listening on {subject!r}")
        self.subject = subject


class RemoteError(BusError):
    """The responder answered with an ErrorReply."""

    def __init__(self, subject: str, code: int, error: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(f"{subject!r} answered error {code}: {error}")
        self.subject = subject
        self.code = code
        self.error = error
        self.detail = detail or {}


class BadReply(BusError):
    """The responder's answer does not parse as the expected message."""


class HandlerError(Exception):
    """Raised by a bus handler to answer a structured error with a code (HTTP-like)."""

    def __init__(self, code: int, error: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(error)
        self.code = code
        self.error = error
        self.detail = detail or {}
