"""Registry test rig: registries and heartbeat publishers on a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from proto import subjects
from proto.messages import Heartbeat, RegionSelect, RegionSelection, RegionStatus
from services.common.bus import Bus
from services.common.natsserver import NatsServer
from services.registry.main import Registry
from services.registry.settings import RegistrySettings

INTERVAL = 0.2
PATIENCE = 10.0
"""Upper bound for a condition to become true; never a timing assertion, just a hang guard."""


class Beater:
    """A node that heartbeats like `services.common.service` does, on its own connection."""

    def __init__(self, bus: Bus, service: str, region: str, node_id: str, address: str = "127.0.0.1") -> None:
        self.bus = bus
        self.hb = Heartbeat(service=service, node_id=node_id, region=region, addresses=[address],
                            capacity=100, load=5, interval=INTERVAL, version="test")
        self.task: asyncio.Task[None] | None = None

    def start(self) -> Beater:
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        subject = subjects.heartbeat(self.hb.service, self.hb.region, self.hb.node_id)
        while True:
            try:
                await self.bus.publish(subject, self.hb)
            except Exception:
                pass  # NATS down: keep beating, like the real runner
            await asyncio.sleep(INTERVAL)

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
            self.task = None


async def eventually(cond: Callable[[], Awaitable[Any]], what: str, patience: float = PATIENCE) -> Any:
    deadline = asyncio.get_running_loop().time() + patience
    while True:
        result = await cond()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never happened within {patience}s: {what}")
        await asyncio.sleep(0.05)


async def select(bus: Bus, preferred: str, **kw: Any) -> RegionSelection:
    return await bus.request(subjects.registry_select(), RegionSelect(preferred=preferred, **kw),
                             RegionSelection, timeout=2.0)


class Rig:
    def __init__(self, server: NatsServer) -> None:
        self.server = server
        self.buses: list[Bus] = []
        self.registries: list[Registry] = []
        self.beaters: list[Beater] = []
        self.close_timeouts: list[str] = []

    async def connect(self, name: str) -> Bus:
        b = await Bus.connect(self.server.url, name)
        self.buses.append(b)
        return b

    async def registry(self, node_id: str = "reg-a", **overrides: Any) -> Registry:
        settings = RegistrySettings(nats_url=self.server.url, node_id=node_id, heartbeat_interval=INTERVAL,
                                    trunk_refresh=0.2, **overrides)
        reg = Registry(await self.connect(f"registry-{node_id}"), settings)
        await reg.start()
        self.registries.append(reg)
        return reg

    async def stop_registry(self, reg: Registry) -> None:
        await reg.stop()
        await reg.bus.close()
        self.registries.remove(reg)
        self.buses.remove(reg.bus)

    async def node(self, service: str, region: str, node_id: str, address: str = "127.0.0.1") -> Beater:
        b = Beater(await self.connect(f"node-{node_id}"), service, region, node_id, address).start()
        self.beaters.append(b)
        return b

    async def statuses(self) -> list[RegionStatus]:
        """Collect every RegionStatus announced from now on."""
        seen: list[RegionStatus] = []
        bus = await self.connect("status-watcher")

        async def on(st: RegionStatus) -> None:
            seen.append(st)

        await bus.subscribe(subjects.region_status_all(), on, RegionStatus, concurrent=False)
        await bus.nc.flush()
        return seen

    eventually = staticmethod(eventually)
    select = staticmethod(select)

    async def close(self) -> None:
        for b in self.beaters:
            await b.stop()
        for r in self.registries:
            await asyncio.wait_for(r.stop(), 10)
        for bus in self.buses:
            # nats-py's drain can hang after a server restart; the test is over, just close.
            try:
                await asyncio.wait_for(bus.close(), 5)
            except TimeoutError:
                self.close_timeouts.append(bus.name)
                await bus.nc.close()


@pytest.fixture
async def rig(nats_server: NatsServer) -> AsyncIterator[Rig]:
    r = Rig(nats_server)
    yield r
    await r.close()
    if r.close_timeouts:
        print(f"bus drain timed out for {r.close_timeouts}")
