"""Errors of the config service. Each maps to one RFC 9457 problem (HTTP status, title)."""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://switchboard.dev/problems/"


class ConfigError(Exception):
    status = 500
    type = "internal"
    title = "Internal error"

    def __init__(self, detail: str = "", *, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors or []
        self.headers = headers or {}
        self.extra = extra


class Unauthorized(ConfigError):
    status = 401
    type = "unauthorized"
    title = "Missing or invalid API key"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="switchboard"'})


class Forbidden(ConfigError):
    status = 403
    type = "forbidden"
    title = "Not allowed with this key"


class NotFound(ConfigError):
    status = 404
    type = "not-found"
    title = "Not found"


class Conflict(ConfigError):
    status = 409
    type = "conflict"
    title = "Conflict"


class PreconditionFailed(ConfigError):
    status = 412
    type = "precondition-failed"
    title = "The resource changed (If-Match does not match its ETag)"


class InvalidInput(ConfigError):
    status = 422
    type = "validation"
    title = "Invalid input"

    @classmethod
    def field(cls, field: str, message: str) -> InvalidInput:
        return cls(f"{field}: {message}", errors=[field_error(field, message)])


class Unavailable(ConfigError):
    status = 503
    type = "unavailable"
    title = "A service this request needs is unavailable"


class BadGateway(ConfigError):
    status = 502
    type = "bad-gateway"
    title = "The registry answered an error"


class RegistryRejected(ConfigError):
    """The registry refused a forwarded request with a 4xx: passed through as is."""

    type = "registry"
    title = "Registry rejected the request"

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def field_error(field: str, message: str) -> dict[str, str]:
    """One field-level error: a dotted path (`sip_targets[0].uri`), its JSON pointer, why."""
    pointer = "#/" + field.replace("[", ".").replace("]", "").replace(".", "/") if field else "#"
    return {"field": field, "pointer": pointer, "message": message}


class SecretError(Exception):
    """A secret cannot be encrypted or decrypted (unknown key id, tampered ciphertext)."""
