"""The web console: server-rendered pages at `/` over the same app's /v1 API."""

from .routes import mount

__all__ = ["mount"]
