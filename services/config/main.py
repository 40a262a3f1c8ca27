"""The config service process: database + migrations, the routing resolver, the HTTP API.

uvicorn runs inside the same asyncio loop as the bus (one process, one loop), started and
stopped by the Component rather than by uvicorn's own signal handling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from services.common.bus import Bus
from services.common.service import Component, run
from services.common.settings import load

from .api.app import create_app
from .api.common import purge_idempotency
from .api.context import AppContext
from .db.engine import make_engine, migrate, sessionmaker
from .reaper import RecordReaper
from .records import CallRecorder
from .resolver import Resolver
from .secrets import SecretBox, reseal
from .settings import ConfigSettings
from .target_health import TargetHealth
from .webhooks import WebhookDispatcher, purge_deliveries

log = logging.getLogger("switchboard.config")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The service runner owns SIGTERM/SIGINT and stops us through should_exit.
        yield


class Config(Component[ConfigSettings]):
    service = "config"

    def __init__(self, bus: Bus, settings: ConfigSettings) -> None:
        super().__init__(bus, settings)
        self.engine = make_engine(settings.database_url)
        self.resolver: Resolver | None = None
        self.server: _Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self.ctx: AppContext | None = None
        self.recorder: CallRecorder | None = None
        self.dispatcher: WebhookDispatcher | None = None
        self.reaper: RecordReaper | None = None

    async def start(self) -> None:
        s = self.settings
        if s.migrate_on_start:
            await migrate(self.engine)
        secrets = SecretBox.load(s.secret_key, s.data_dir)
        sm = sessionmaker(self.engine)
        if n := await reseal(sm, secrets):
            log.info("re-sealed %d secret(s) under key %s", n, secrets.primary)
        self.resolver = Resolver(sm, secrets, self.bus, full_reload=s.resolver_full_reload)
        self.ctx = AppContext(settings=s, engine=self.engine, sessionmaker=sm, secrets=secrets, bus=self.bus)
        # This instance's own writes reach its resolver directly, even with NATS away.
        self.ctx.local_listeners.append(self.resolver.on_change)
        self.ctx.ready_checks["resolver"] = lambda: bool(self.resolver and self.resolver.loaded)
        await self.resolver.start()
        await TargetHealth(self.bus, self.resolver, sm).start()
        await self._start_calls(sm, secrets)
        self._housekeeping = asyncio.create_task(self._purge_loop(sm))
        config = uvicorn.Config(create_app(self.ctx), host=s.http_host, port=s.http_port, lifespan="off",
                                log_config=None, access_log=False, server_header=False)
        self.server = _Server(config)
        # Bind here so a taken port is a clear start-up error, not uvicorn's sys.exit.
        try:
            sock = socket.create_server((s.http_host, s.http_port), reuse_port=False)
        except OSError as e:
            raise RuntimeError(f"cannot listen for HTTP on {s.http_host}:{s.http_port}: {e.strerror}; "
                               "choose another with SWITCHBOARD_HTTP_PORT") from None
        sock.setblocking(False)
        self._serving = asyncio.create_task(self.server.serve(sockets=[sock]))
        while not self.server.started:
            if self._serving.done():
                self._serving.result()  # raises the bind error
                raise RuntimeError(f"HTTP server on {s.http_host}:{s.http_port} did not start")
            await asyncio.sleep(0.02)
        log.info("HTTP API on http://%s:%d/v1", s.http_host, self.http_port)

    async def _start_calls(self, sm: Any, secrets: SecretBox) -> None:
        """The call-record consumer and the webhook delivery worker."""
        s = self.settings
        assert self.ctx is not None
        if s.webhooks:
            self.dispatcher = WebhookDispatcher(
                sm, secrets, node=s.node_id, timeout=s.webhook_timeout, backoff_base=s.webhook_backoff_base,
                backoff_cap=s.webhook_backoff_cap, retry_window=s.webhook_retry_window,
                poll_interval=s.webhook_poll_interval, per_endpoint=s.webhook_concurrency,
                allow_private=s.webhook_allow_private)
            self.ctx.on_webhooks_queued = self.dispatcher.wake
            await self.dispatcher.start()
        if s.call_records:
            await self.bus.ensure_calls_stream()
            self.recorder = CallRecorder(self.bus, sm, durable=s.call_records_durable, ack_wait=s.call_records_ack_wait,
                                         on_commit=self.dispatcher.wake if self.dispatcher else None)
            await self.recorder.start()
            self.reaper = RecordReaper(self.bus, sm, lost_after=s.record_lost_after, interval=s.record_reaper_interval,
                                       on_commit=self.dispatcher.wake if self.dispatcher else None)
            await self.reaper.start()

    async def _purge_loop(self, sm: Any) -> None:
        while True:
            try:
                async with sm() as session:
                    await purge_idempotency(session, self.settings.idempotency_ttl)
                async with sm() as session:
                    await purge_deliveries(session, self.settings.webhook_log_retention)
            except Exception as e:  # the database may be away for a while; try next time
                log.debug("idempotency purge failed: %s", e)
            await asyncio.sleep(3600)

    @property
    def http_port(self) -> int:
        """The bound port (differs from the setting when it is 0)."""
        if self.server and self.server.servers:
            return int(self.server.servers[0].sockets[0].getsockname()[1])
        return self.settings.http_port

    async def drain(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self._serving is not None:
            with contextlib.suppress(Exception):
                await self._serving

    async def stop(self) -> None:
        await self.drain()
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        if self.reaper is not None:
            await self.reaper.stop()
        if self.recorder is not None:
            await self.recorder.stop()
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        if self.resolver is not None:
            await self.resolver.stop()
        await self.engine.dispose()


def main() -> None:
    run("config", load(ConfigSettings), lambda bus, s: Config(bus, s))
