"""A node over its limits answers a new INVITE with 503 and Retry-After before it asks the bus
anything: no trunk check, no routing, no media, no event (RFC 7339's early refusal)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.msg import Msg

from services.common.bus import Bus
from services.common.looplag import LoopLag
from services.signaling.b2bua.b2bua import B2BUA
from services.signaling.settings import SignalingSettings
from tests.helpers.stack import sip_free_port

INVITE = (
    "INVITE sip:+15551234567@127.0.0.1:{port} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{src};branch=z9hG4bK-{n}\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:+15550001111@127.0.0.1>;tag=c{n}\r\n"
    "To: <sip:+15551234567@127.0.0.1>\r\n"
    "Call-ID: overload-{n}@127.0.0.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:carrier@127.0.0.1:{src}>\r\n"
    "Content-Length: 0\r\n\r\n"
)


class Carrier:
    """A UDP socket that sends INVITEs and reads the final answer to each."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    async def invite(self, to_port: int, n: int) -> str:
        loop = asyncio.get_running_loop()
        self.sock.sendto(INVITE.format(port=to_port, src=self.port, n=n).encode(), ("127.0.0.1", to_port))
        async with asyncio.timeout(10):
            while True:
                data = (await loop.sock_recv(self.sock, 65535)).decode()
                if f"overload-{n}@" in data and not data.startswith("SIP/2.0 100"):
                    return data


@pytest.fixture
async def seen(bus: Bus) -> AsyncIterator[list[str]]:
    """Every subject published on the bus while the test runs, from anyone."""
    subjects: list[str] = []

    async def record(m: Msg) -> None:
        subjects.append(m.subject)

    sub = await bus.nc.subscribe(">", cb=record)
    yield subjects
    await sub.unsubscribe()


async def node(bus: Bus, lag: LoopLag | None = None, **settings: Any) -> B2BUA:
    b2bua = B2BUA(bus, SignalingSettings(nats_url="", sip_port=sip_free_port(), sip_tls_port=0, bus_timeout=0.5,
                                         **settings), lag)
    await b2bua.start()
    return b2bua


async def test_calls_in_setup_over_the_limit_get_503_without_touching_the_bus(bus: Bus, seen: list[str]) -> None:
    b2bua = await node(bus, max_in_setup=0)
    try:
        carrier = Carrier()
        answer = await carrier.invite(b2bua.listening[0].port, 1)
        await bus.nc.flush()
        assert answer.startswith("SIP/2.0 503 Overloaded\r\n"), answer
        assert "\r\nRetry-After: 5\r\n" in answer
        # No trunk check, no routing, no media, and no call event: nothing at all on the bus
        # (but the node's one look, at start, at whether the CALLS stream exists).
        startup = ("$SRV", "_INBOX", "$JS.API.STREAM.INFO.", "$JS.EVENT.ADVISORY.API")
        assert [s for s in seen if not s.startswith(startup)] == []
    finally:
        await b2bua.stop()


async def test_a_lagging_node_refuses_until_its_loop_catches_up(bus: Bus, seen: list[str]) -> None:
    lag = LoopLag()
    b2bua = await node(bus, lag, overload_lag=0.25, overload_retry_after=3, overload_lag_min_in_setup=0)
    try:
        carrier = Carrier()
        port = b2bua.listening[0].port
        lag.sample(0.4, elapsed=10.0)  # the loop fell 400 ms behind and stayed there
        answer = await carrier.invite(port, 1)
        assert answer.startswith("SIP/2.0 503 Overloaded\r\n") and "\r\nRetry-After: 3\r\n" in answer, answer
        await bus.nc.flush()
        assert [s for s in seen if s.startswith("call.")] == []

        lag.sample(0.1, elapsed=10.0)  # better, but not yet under a fifth of the limit: still refused
        assert (await carrier.invite(port, 2)).startswith("SIP/2.0 503 Overloaded\r\n")

        lag.sample(0.0, elapsed=10.0)  # caught up: the next call is taken and asks for its trunk check
        answer = await carrier.invite(port, 3)
        assert not answer.startswith("SIP/2.0 503 Overloaded"), answer
        await bus.nc.flush()
        assert any(s.startswith("call.") for s in seen), seen
    finally:
        await b2bua.stop()


async def test_a_refused_invites_retransmission_is_not_admitted_again(bus: Bus, seen: list[str]) -> None:
    b2bua = await node(bus, max_in_setup=0)
    try:
        carrier = Carrier()
        port = b2bua.listening[0].port
        first = await carrier.invite(port, 7)
        again = await carrier.invite(port, 7)  # the same INVITE: the transaction answers it again
        assert first == again and first.startswith("SIP/2.0 503 Overloaded")
        assert b2bua.calls == {} and b2bua.in_setup == 0
        assert b2bua._by_sip_call_id == {}  # nothing left behind for a call that never was
    finally:
        await b2bua.stop()
