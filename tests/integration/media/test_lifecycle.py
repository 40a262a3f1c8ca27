"""The worker process life: heartbeats with load, graceful drain on stop."""

from __future__ import annotations

import asyncio
import json
import socket
import struct

import pytest

from proto import subjects
from proto.messages import (
    Ack,
    Heartbeat,
    MediaAllocate,
    MediaAllocation,
    MediaRelease,
    MediaStats,
    MediaUpdate,
)
from services.common.bus import Bus
from services.common.errors import BusError
from services.common.service import serve
from services.media.main import Media
from services.media.settings import MediaSettings

REGION = "test-1"


async def test_heartbeat_and_graceful_drain(bus: Bus, media_settings: MediaSettings) -> None:
    media_settings.heartbeat_interval = 0.1
    media_settings.shutdown_grace = 4.0
    beats: list[Heartbeat] = []

    async def on_beat(msg) -> None:  # type: ignore[no-untyped-def]
        beats.append(Heartbeat.model_validate(json.loads(msg.data)))

    await bus.nc.subscribe(subjects.heartbeat("media", REGION, media_settings.node_id), cb=on_beat)
    stop = asyncio.Event()
    server = asyncio.create_task(serve("media", media_settings, lambda b, s: Media(b, s), stop=stop))
    alloc = None
    for _ in range(100):
        try:
            alloc = await bus.request(subjects.media_allocate(REGION), MediaAllocate(call_id="d1", region=REGION),
                                      MediaAllocation, timeout=0.2)
            break
        except BusError:
            await asyncio.sleep(0.05)
    assert alloc is not None
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    other.setblocking(False)
    worker = subjects.media_worker(alloc.worker_id, "update")
    for leg, s in (("a", peer), ("b", other)):
        await bus.request(worker, MediaUpdate(call_id="d1", leg=leg, remote_address="127.0.0.1",
                                              remote_port=s.getsockname()[1]), Ack)
    while not any(b.load == 1 for b in beats):
        await asyncio.sleep(0.05)
    pairs = len(range(media_settings.port_min, media_settings.port_max, 2))
    assert beats[-1].capacity == pairs // 2  # calls: two port pairs each

    stop.set()  # SIGTERM
    # Draining: no new calls here...
    for _ in range(50):
        try:
            await bus.request(subjects.media_allocate(REGION), MediaAllocate(call_id="d2", region=REGION),
                              MediaAllocation, timeout=0.2)
        except BusError:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("a draining worker still takes allocations")
    # ...but the call in progress still flows.
    loop = asyncio.get_running_loop()
    peer.sendto(struct.pack("!BBHII", 0x80, 0, 1, 0, 7) + b"\xff" * 160, ("127.0.0.1", alloc.a.port))
    data, _ = await asyncio.wait_for(loop.sock_recvfrom(other, 2048), 2)
    assert data[12:] == b"\xff" * 160
    assert not server.done()
    stats = await bus.request(subjects.media_worker(alloc.worker_id, "release"), MediaRelease(call_id="d1"),
                              MediaStats)
    assert stats.a.packets_in == 1
    await asyncio.wait_for(server, 5)  # the last call ended: the worker stops
    peer.close()
    other.close()
