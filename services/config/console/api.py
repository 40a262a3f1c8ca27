"""The console is a client of the /v1 API: each page calls the same app's routes in-process
(httpx over ASGI) with the signed-in user's key, so validation, authorization and errors
are exactly the API's."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI


class ApiProblem(Exception):
    """An RFC 9457 problem the API answered (status >= 400)."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail
        self.errors = errors or []
        self.headers = headers or {}

    def by_field(self) -> dict[str, str]:
        """Field path (as the form's input names use it) -> message."""
        out: dict[str, str] = {}
        for e in self.errors:
            name = str(e.get("field") or "")
            if name:
                out.setdefault(name, str(e.get("message") or "invalid"))
        return out

    @classmethod
    def of(cls, r: httpx.Response) -> ApiProblem:
        try:
            body = r.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        headers = {k: v for k, v in r.headers.items() if k.lower() == "retry-after"}
        return cls(r.status_code, str(body.get("detail") or body.get("title") or r.reason_phrase),
                   body.get("errors") if isinstance(body.get("errors"), list) else None, headers)


class Api:
    def __init__(self, app: FastAPI, key: str) -> None:
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.internal",
                                         headers={"Authorization": f"Bearer {key}"}, timeout=30)

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def raw(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                  json: Any = None) -> httpx.Response:
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        return await self._client.request(method, path, params=clean or None, json=json)

    async def call(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> Any:
        r = await self.raw(method, path, params=params, json=json)
        if r.status_code >= 400:
            raise ApiProblem.of(r)
        if r.status_code == 204 or not r.content:
            return None
        return r.json()

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params=params)

    async def post(self, path: str, body: Any = None) -> Any:
        return await self.call("POST", path, json=body)

    async def patch(self, path: str, body: Any) -> Any:
        return await self.call("PATCH", path, json=body)

    async def delete(self, path: str) -> None:
        await self.call("DELETE", path)
