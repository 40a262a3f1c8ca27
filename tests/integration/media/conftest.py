"""A real media worker on a real nats-server, and UDP peers on loopback."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from proto import subjects
from proto.messages import Ack, CallEvent, MediaAllocate, MediaAllocation, MediaUpdate
from services.common.bus import Bus
from services.common.natsserver import NatsServer
from services.media.main import Media
from services.media.settings import MediaSettings
from services.media.srtp import SrtpLeg, crypto_line, generate_key, key_from_crypto

REGION = "test-1"


class Peer:
    """A UDP endpoint on loopback (a carrier, a SIP client or a stranger)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtcp.setblocking(False)
        try:
            self.rtcp.bind((host, self.port + 1))
        except OSError:
            self.rtcp.bind((host, 0))
        self.rtcp_port = self.rtcp.getsockname()[1]
        self.srtp: SrtpLeg | None = None

    def send(self, data: bytes, port: int, host: str = "127.0.0.1") -> None:
        self.sock.sendto(data, (host, port))

    async def recv(self, timeout: float = 2.0, rtcp: bool = False) -> tuple[bytes, tuple[str, int]]:
        loop = asyncio.get_running_loop()
        data, addr = await asyncio.wait_for(loop.sock_recvfrom(self.rtcp if rtcp else self.sock, 2048), timeout)
        return data, addr

    def close(self) -> None:
        self.sock.close()
        self.rtcp.close()


def rtp(seq: int, ts: int, ssrc: int, payload: bytes, pt: int = 0, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


@dataclass
class CallSetup:
    """One call set up like the signaling service would: allocate, then both updates."""

    call_id: str
    alloc: MediaAllocation
    carrier: Peer
    client: Peer
    client_key: bytes
    client_srtp: SrtpLeg | None
    events: list[CallEvent] = field(default_factory=list)

    @property
    def a_port(self) -> int:
        return self.alloc.a.port

    @property
    def b_port(self) -> int:
        return self.alloc.b.port


@dataclass
class MediaEnv:
    bus: Bus
    worker: Media
    settings: MediaSettings
    peers: list[Peer] = field(default_factory=list)

    def subject(self, verb: str) -> str:
        return subjects.media_worker(self.settings.node_id, verb)

    def peer(self, host: str = "127.0.0.1") -> Peer:
        p = Peer(host)
        self.peers.append(p)
        return p

    async def setup_call(self, call_id: str, *, b_secure: bool = True, a_te_pt: int | None = 101,
                         b_te_pt: int | None = 96, timeout: float | None = None) -> CallSetup:
        events: list[CallEvent] = []

        async def on_event(msg) -> None:  # type: ignore[no-untyped-def]
            events.append(CallEvent.model_validate(json.loads(msg.data)))

        await self.bus.nc.subscribe(subjects.call_events(call_id), cb=on_event)
        await self.bus.nc.flush()
        alloc = await self.bus.request(
            subjects.media_allocate(REGION), MediaAllocate(call_id=call_id, region=REGION, b_secure=b_secure,
                                                           timeout=timeout), MediaAllocation)
        carrier, client = self.peer(), self.peer()
        client_key = generate_key()
        await self.bus.request(self.subject("update"), MediaUpdate(
            call_id=call_id, leg="a", remote_address="127.0.0.1", remote_port=carrier.port,
            remote_rtcp_port=carrier.rtcp_port, telephone_event_pt=a_te_pt), Ack)
        await self.bus.request(self.subject("update"), MediaUpdate(
            call_id=call_id, leg="b", remote_address="127.0.0.1", remote_port=client.port,
            remote_rtcp_port=client.rtcp_port, telephone_event_pt=b_te_pt,
            remote_crypto=crypto_line(client_key) if b_secure else None), Ack)
        client_srtp = None
        if b_secure:
            assert alloc.b.crypto is not None
            client_srtp = SrtpLeg(local_key=client_key, remote_key=key_from_crypto(alloc.b.crypto))
        return CallSetup(call_id, alloc, carrier, client, client_key, client_srtp, events)


@pytest.fixture
def media_settings(tmp_path: Path, nats_server: NatsServer) -> MediaSettings:
    base = random.randrange(21000, 59000, 100)
    return MediaSettings(
        nats_url=nats_server.url, region=REGION, node_id=f"mw-{base}", data_dir=tmp_path / "data",
        port_min=base, port_max=base + 39, quarantine=0.5, no_media_timeout=0, shutdown_grace=2.0,
    )


@pytest.fixture
async def media(bus: Bus, media_settings: MediaSettings) -> AsyncIterator[MediaEnv]:
    wbus = await Bus.connect(media_settings.nats_url, "media-worker")
    worker = Media(wbus, media_settings)
    await worker.start()
    env = MediaEnv(bus, worker, media_settings)
    yield env
    await worker.stop()
    await wbus.close()
    for p in env.peers:
        p.close()


@pytest.fixture
def make_rtp() -> Callable[..., bytes]:
    return rtp
