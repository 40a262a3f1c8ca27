"""The whole Switchboard in one test: a real nats-server, and registry, config, media and
signaling each served as they are in production (`services.common.service.serve`:
nats.micro registration and heartbeats included), in the test's event loop.

Provisioning goes through the real HTTP API, as an operator's script would."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from proto import subjects
from proto.messages import CallEvent
from services.common.bus import Bus
from services.common.callstream import read_call_events
from services.common.natsserver import NatsServer, free_port
from services.common.service import serve

ADMIN = "test-admin-token"


def sip_free_port() -> int:
    """A port free for both UDP and TCP (a SIP listener takes both), chosen below the
    kernel's ephemeral range (32768+) so that no outgoing connection of another test can
    take it between this check and the service's bind."""
    import random
    import socket

    for _ in range(200):
        port = random.randrange(23000, 32000)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free for both UDP and TCP in 23000-32000")


def udp_free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    nats: NatsServer
    bus: Bus
    api: str
    sip_port: int
    sip_tls_port: int
    data_dir: Path
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    stops: dict[str, asyncio.Event] = field(default_factory=dict)
    events: list[CallEvent] = field(default_factory=list)
    tls_cert: str | None = None

    def http(self, token: str = ADMIN) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.api, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    async def provision(self, number: str, targets: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        """An account, a receiving number dialling these SIP targets, a tracking number."""
        async with self.http() as c:
            r = await c.post("/v1/accounts", json={"name": f"acct-{number}"})
            assert r.status_code == 201, r.text
            account = r.json()["id"]
            body = {"name": f"rn-{number}", "dial_sip_client": True, "sip_targets": targets,
                    "account_id": account} | extra
            r = await c.post("/v1/receiving-numbers", json=body)
            assert r.status_code == 201, r.text
            rn = r.json()["id"]
            r = await c.post("/v1/tracking-numbers", json={"number": number, "receiving_number_id": rn,
                                                          "account_id": account})
            assert r.status_code == 201, r.text
            return {"account_id": account, "receiving_number_id": rn}

    async def call_events(self, call_id: str) -> list[CallEvent]:
        return await read_call_events(self.bus, call_id)

    def kinds(self, kind: str) -> list[CallEvent]:
        return [e for e in self.events if e.kind == kind]

    async def wait_event(self, kind: str, timeout: float = 15.0, **match: Any) -> CallEvent:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            for e in self.events:
                if e.kind == kind and all(e.payload.get(k) == v for k, v in match.items()):
                    return e
            await asyncio.sleep(0.05)
        seen = [(e.kind, {k: e.payload.get(k) for k in ('sip_status', 'reason', 'target')}) for e in self.events
                if e.kind not in ("sip_in", "sip_out")]
        raise AssertionError(f"no {kind} event {match} within {timeout}s; saw {seen}")

    async def stop_service(self, name: str) -> None:
        """Stop a service as SIGTERM would, and wait until the registry has its goodbye, so
        what the test does next meets the topology without that node."""
        self.stops[name].set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.tasks[name], 20)
        if "registry" in self.tasks and not self.tasks["registry"].done() and name != "registry":
            node_id = name.replace("_", "-")
            deadline = asyncio.get_running_loop().time() + 10
            while node_id in await self._live_nodes():
                assert asyncio.get_running_loop().time() < deadline, f"the registry still lists {node_id}"
                await asyncio.sleep(0.05)

    async def _live_nodes(self) -> set[str]:
        from proto.messages import RegistryQuery, RegistryReply

        reply = await self.bus.request(subjects.registry_query("regions"), RegistryQuery(), RegistryReply, timeout=2)
        return {n["node_id"] for r in reply.data for n in r.get("live_nodes", [])}


def _settings(kind: str, base: dict[str, Any]) -> Any:
    if kind == "registry":
        from services.registry.settings import RegistrySettings as S
    elif kind == "config":
        from services.config.settings import ConfigSettings as S  # type: ignore[assignment]
    elif kind == "media":
        from services.media.settings import MediaSettings as S  # type: ignore[assignment]
    else:
        from services.signaling.settings import SignalingSettings as S  # type: ignore[assignment]
    return S(**base)


def _factory(kind: str) -> Any:
    if kind == "registry":
        from services.registry.main import Registry

        return Registry
    if kind == "config":
        from services.config.main import Config

        return Config
    if kind == "media":
        from services.media.main import Media

        return Media
    from services.signaling.main import Signaling

    return Signaling


async def start_service(stack: Stack, name: str, kind: str, **overrides: Any) -> None:
    base: dict[str, Any] = {"nats_url": stack.nats.url, "region": "us1", "node_id": name.replace("_", "-"),
                            "data_dir": stack.data_dir / name, "heartbeat_interval": 0.2, "shutdown_grace": 3.0}
    base.update(overrides)
    settings = _settings(kind, base)
    stop = asyncio.Event()
    factory = _factory(kind)
    task = asyncio.create_task(serve(kind, settings, lambda bus, s: factory(bus, s), stop=stop))
    stack.tasks[name], stack.stops[name] = task, stop


@contextlib.asynccontextmanager
async def running_stack(tmp_path: Path, *, tls_cert: tuple[str, str] | None = None,
                        media_regions: tuple[str, ...] = ("us1",), ring_t1: float = 0.1,
                        local_mode: bool = True, signaling: dict[str, Any] | None = None,
                        other_signaling_regions: tuple[str, ...] = (),
                        media: dict[str, Any] | None = None,
                        nats: Any = None) -> AsyncIterator[Stack]:
    """``nats``: a started server or cluster (``url``, ``stop()``) instead of a new one."""
    if nats is None:
        nats = NatsServer(store_dir=tmp_path / "nats")
        nats.start()
    bus = await Bus.connect(nats.url, "test-stack")
    await bus.ensure_calls_stream()
    stack = Stack(nats=nats, bus=bus, api="", sip_port=sip_free_port(), sip_tls_port=sip_free_port(), data_dir=tmp_path)

    async def collect(ev: CallEvent) -> None:
        stack.events.append(ev)

    await bus.subscribe(subjects.call_events_all(), collect, CallEvent, concurrent=False)
    http_port = free_port()
    stack.api = f"http://127.0.0.1:{http_port}"
    try:
        await start_service(stack, "registry", "registry", warmup=0.0, local_mode=local_mode)
        await start_service(stack, "config", "config", http_port=http_port, admin_token=ADMIN,
                            webhook_allow_private=True,
                            database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
        base_port = 21000
        for i, region in enumerate(media_regions):
            await start_service(stack, f"media_{region}", "media", region=region,
                                port_min=base_port + i * 1000, port_max=base_port + i * 1000 + 998,
                                no_media_timeout=0, **(media or {}))
        sig: dict[str, Any] = {"sip_port": stack.sip_port, "sip_tls_port": stack.sip_tls_port, "t1": ring_t1,
                               **(signaling or {})}
        if tls_cert:
            sig.update(tls_cert=tls_cert[0], tls_key=tls_cert[1])
        else:
            sig.update(sip_tls_port=0)
        await start_service(stack, "signaling", "signaling", **sig)
        for region in other_signaling_regions:
            # Another region's signaling node, on its own SIP port (it originates client legs).
            await start_service(stack, f"signaling_{region}", "signaling", region=region, sip_port=sip_free_port(),
                                sip_tls_port=0, t1=ring_t1)
        await _wait_ready(stack, media_regions)
        yield stack
    finally:
        for name in reversed(list(stack.tasks)):
            stack.stops[name].set()
        await asyncio.gather(*stack.tasks.values(), return_exceptions=True)
        await bus.close()
        nats.stop()


async def _wait_ready(stack: Stack, media_regions: tuple[str, ...], timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = {"signaling", "media", "config", "registry"}
    while pending and loop.time() < deadline:
        for name in list(pending):
            with contextlib.suppress(Exception):
                await stack.bus.nc.request(subjects.micro_ping(name), b"", timeout=0.3)
                pending.discard(name)
        for name, task in stack.tasks.items():
            if task.done():
                task.result()  # raises the service's start-up error
                raise AssertionError(f"{name} stopped during start-up")
        await asyncio.sleep(0.1)
    assert not pending, f"not ready: {pending}"
    async with httpx.AsyncClient(base_url=stack.api) as c:
        while loop.time() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await c.get("/healthz")).status_code == 200:
                    break
            await asyncio.sleep(0.1)
    # The registry must have seen the region's nodes before calls are placed.
    from proto.messages import RegionSelect, RegionSelection

    while loop.time() < deadline:
        with contextlib.suppress(Exception):
            sel = await stack.bus.request(subjects.registry_select(), RegionSelect(preferred=media_regions[0]),
                                          RegionSelection, timeout=1)
            if sel.ok and sel.region == media_regions[0]:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("registry never saw the region healthy")
