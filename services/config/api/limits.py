"""A request body over the limit is refused with 413 before anything parses it: a 64 MB
JSON document must not be read into memory to be told it is invalid."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _detail(limit: int) -> str:
    return f"request body larger than {limit} bytes (SWITCHBOARD_MAX_BODY_BYTES)"


class BodyLimit:
    """Pure ASGI middleware: a Content-Length over ``limit`` is answered at once; a body
    without one (chunked) is counted as it arrives and cut off at ``limit``."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.limit:
                    await self._refuse(scope, send)
                    return
        seen = 0
        over = False
        limit = self.limit

        async def counted() -> Message:
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Stop reading here; whatever the app makes of the cut body, the answer
                    # is replaced by the 413 below (an exception raised from here would
                    # reach FastAPI wrapped by the middleware's task group, as a 400).
                    over = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def replaced(message: Message) -> None:
            if not over:
                await send(message)
            elif message["type"] == "http.response.start":
                await self._refuse(scope, send)

        await self.app(scope, counted, replaced)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body: dict[str, Any] = {"type": "about:blank", "title": "Content too large", "status": 413,
                                "detail": _detail(self.limit), "instance": scope.get("path", "")}
        data = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/problem+json"),
                                (b"content-length", str(len(data)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": data})
