"""The config service under test: a database on SQLite and on PostgreSQL (each test gets
its own: the ``db_url`` fixture of tests/integration/conftest.py), an app over httpx's
ASGI transport (``make_env``), the API on a real uvicorn (``LiveApi``)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from proto.messages import RegistryReply
from services.common.bus import Bus
from services.config.api.app import create_app
from services.config.api.context import AppContext
from services.config.db.engine import make_engine, migrate, sessionmaker
from services.config.resolver import Resolver
from services.config.secrets import SecretBox, generate_key_spec
from services.config.settings import ConfigSettings

ADMIN = "admin-token-for-tests"

DB_PARAMS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)]


def postgres_url() -> str | None:
    """The PostgreSQL to test against: SWITCHBOARD_TEST_POSTGRES_URL (set by .ci/run)."""
    return os.environ.get("SWITCHBOARD_TEST_POSTGRES_URL")


async def pg_admin(url: str, sql: str) -> None:
    import asyncpg

    u = make_url(url)
    conn = await asyncpg.connect(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username,
                                 password=u.password, database=u.database or "postgres", timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def settings(tmp_path: Path, db_url: str, **kw: Any) -> ConfigSettings:
    kw.setdefault("webhook_allow_private", True)  # the tests' receivers listen on loopback
    return ConfigSettings(database_url=db_url, admin_token=ADMIN, data_dir=tmp_path / "data",
                          secret_key=kw.pop("secret_key", generate_key_spec("t1")), **kw)


@dataclass
class Env:
    ctx: AppContext
    client: httpx.AsyncClient
    resolver: Resolver | None = None
    registry_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN}"}

    async def account(self, name: str = "Acme") -> tuple[str, dict[str, str]]:
        """A new account and headers with a key of it."""
        r = await self.client.post("/v1/accounts", json={"name": name}, headers=self.admin())
        assert r.status_code == 201, r.text
        acc = r.json()["id"]
        r = await self.client.post(f"/v1/accounts/{acc}/api-keys", headers=self.admin())
        assert r.status_code == 201, r.text
        return acc, {"Authorization": f"Bearer {r.json()['key']}"}

    async def receiving(self, headers: dict[str, str], **kw: Any) -> dict[str, Any]:
        body = {"name": "Front desk", "dial_sip_client": True,
                "sip_targets": [{"uri": "sip:100@pbx.example.com;transport=tcp", "username": "100",
                                 "password": "s3cret"}],
                "ring_timeout": 20, "send_digits": "ww123#", "region": "us1"}
        body.update(kw)
        r = await self.client.post("/v1/receiving-numbers", json=body, headers=headers)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def tracking(self, headers: dict[str, str], number: str, rn_id: str) -> dict[str, Any]:
        r = await self.client.post("/v1/tracking-numbers", json={"number": number, "receiving_number_id": rn_id},
                                   headers=headers)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]


async def make_env(tmp_path: Path, db_url: str, bus: Bus | None = None, *, resolver: bool = False,
                   registry: Any = None, **kw: Any) -> tuple[Env, Any]:
    s = settings(tmp_path, db_url, **kw)
    engine = make_engine(db_url)
    await migrate(engine)
    sm = sessionmaker(engine)
    ctx = AppContext(settings=s, engine=engine, sessionmaker=sm, secrets=SecretBox.from_spec(s.secret_key), bus=bus)
    env = Env(ctx=ctx, client=httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(ctx)),
                                                base_url="http://test"))

    async def fake_registry(verb: str, params: dict[str, Any]) -> RegistryReply:
        env.registry_calls.append((verb, params))
        if verb == "allowlist" and params.get("format") == "csv":
            return RegistryReply(text="address,ports\n203.0.113.1,5060\n", content_type="text/csv")
        return RegistryReply(status=201 if verb == "trunks_add" else 200, data={"verb": verb, "params": params})

    if registry == "fake":
        ctx.registry_call = fake_registry
    if resolver:
        env.resolver = Resolver(sm, ctx.secrets, bus)
        ctx.local_listeners.append(env.resolver.on_change)
        await env.resolver.start()

    async def close() -> None:
        await env.client.aclose()
        if env.resolver:
            await env.resolver.stop()
        await engine.dispose()

    return env, close


async def eventually(predicate: Any, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class LiveApi:
    """The API on a real uvicorn in its own thread and loop (for sync clients: the CLI,
    schemathesis), with a SQLite database and a stand-in registry."""

    def __init__(self, tmp: Path, admin: str = ADMIN) -> None:
        import threading

        from services.common.natsserver import free_port

        self.tmp, self.admin, self.port = tmp, admin, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._ready = threading.Event()
        self._server: Any = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        import uvicorn

        url = f"sqlite+aiosqlite:///{self.tmp / 'live.db'}"
        engine = make_engine(url)
        await migrate(engine)
        s = ConfigSettings(database_url=url, admin_token=self.admin, data_dir=self.tmp,
                           secret_key=generate_key_spec())

        async def registry(verb: str, params: dict[str, Any]) -> RegistryReply:
            return RegistryReply(data={"verb": verb, "params": params})

        ctx = AppContext(settings=s, engine=engine, sessionmaker=sessionmaker(engine),
                         secrets=SecretBox.from_spec(s.secret_key), registry_call=registry)
        self._server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=self.port,
                                                     lifespan="off", log_level="warning"))
        task = asyncio.create_task(self._server.serve())
        while not self._server.started and not task.done():
            await asyncio.sleep(0.01)
        self._ready.set()
        await task
        await engine.dispose()

    def __enter__(self) -> LiveApi:
        self._thread.start()
        assert self._ready.wait(20), "API server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(10)
