"""Fixtures of the console's handler tests: the config app (SQLite, a stand-in registry) over
httpx's ASGI transport, and browser-like clients that keep the console's cookie."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from proto.messages import RegistryReply
from services.config.api.app import create_app
from services.config.api.context import AppContext
from services.config.db.engine import make_engine, migrate, sessionmaker
from services.config.secrets import SecretBox, generate_key_spec
from services.config.settings import ConfigSettings

ADMIN = "console-admin-token"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Browser:
    """An httpx client that behaves like a browser on the console: keeps its cookie, reads
    the CSRF token from the last page, posts forms."""

    def __init__(self, app: Any) -> None:
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        self.csrf = ""
        self.last: httpx.Response | None = None

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        r = await self.http.get(path, **kw)
        if m := CSRF.search(r.text):
            self.csrf = m.group(1)
        self.last = r
        return r

    async def post(self, path: str, data: dict[str, Any] | list[tuple[str, str]], *, csrf: bool = True,
                   follow: bool = True) -> httpx.Response:
        items = list(data.items()) if isinstance(data, dict) else list(data)
        if csrf:
            items.append(("csrf", self.csrf))
        r = await self.http.post(path, content=urlencode(items), follow_redirects=follow,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
        if m := CSRF.search(r.text):
            self.csrf = m.group(1)
        self.last = r
        return r

    async def sign_in(self, key: str) -> httpx.Response:
        await self.get("/")
        return await self.post("/sign-in", {"api_key": key})


@dataclass
class Console:
    app: Any
    api: httpx.AsyncClient
    registry_calls: list[tuple[str, dict[str, Any]]]
    ctx: Any = None

    def browser(self) -> Browser:
        return Browser(self.app)

    async def account(self, name: str = "Acme") -> tuple[str, str]:
        """A new account and an API key of it."""
        h = {"Authorization": f"Bearer {ADMIN}"}
        r = await self.api.post("/v1/accounts", json={"name": name}, headers=h)
        assert r.status_code == 201, r.text
        acc = r.json()["id"]
        r = await self.api.post(f"/v1/accounts/{acc}/api-keys", headers=h)
        assert r.status_code == 201, r.text
        return acc, r.json()["key"]


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'console.db'}"
    engine = make_engine(url)
    await migrate(engine)
    s = ConfigSettings(database_url=url, admin_token=ADMIN, data_dir=tmp_path / "data",
                       secret_key=generate_key_spec("t1"), console_signin_attempts=3)
    calls: list[tuple[str, dict[str, Any]]] = []

    async def registry(verb: str, params: dict[str, Any]) -> RegistryReply:
        calls.append((verb, params))
        if verb == "allowlist":
            fmt = params.get("format")
            if fmt == "csv":
                return RegistryReply(text="kind,address,ports\nsignaling,203.0.113.10,5060-5061\n",
                                     content_type="text/csv")
            if fmt == "json":
                return RegistryReply(data={"signaling": ["203.0.113.10"]})
            return RegistryReply(text=f"# {fmt}\n", content_type="text/plain")
        if verb == "regions":
            return RegistryReply(data=[{"code": "us1", "name": "Virginia", "kind": "signaling",
                                        "failover": ["us2"], "media_regions": ["us1"], "health": "up",
                                        "healthy": True, "reason": "", "live_nodes": [{}]}])
        return RegistryReply(data=[])

    ctx = AppContext(settings=s, engine=engine, sessionmaker=sessionmaker(engine),
                     secrets=SecretBox.from_spec(s.secret_key), registry_call=registry)
    app = create_app(ctx)
    api = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    yield Console(app, api, calls, ctx)
    await api.aclose()
    await engine.dispose()
