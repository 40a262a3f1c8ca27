"""Hold both ways (RFC 3264 §8.4) on a real worker: RTP toward the side that holds (its SDP
says sendonly or inactive) stops, the other way goes on (music on hold), the stats say how
many packets were held, and resuming (sendrecv) relays again. No timing: the worker relays
each packet as it reads it, so once its counter shows a packet read, it was relayed or held."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from proto.messages import Ack, Direction, MediaUpdate

from .test_relay import recv_plain, release


async def read(media, call, leg: str, count: int) -> None:  # type: ignore[no-untyped-def]
    """Until the worker has read `count` packets from that leg."""
    legs = media.worker.relay.calls[call.call_id]

    async def poll() -> None:
        while legs.leg(leg).packets_in < count:
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), 5.0)


def nothing_waiting(peer) -> bool:  # type: ignore[no-untyped-def]
    peer.sock.setblocking(False)
    try:
        peer.sock.recv(2048)
    except BlockingIOError:
        return True
    return False


async def direction(media, call, leg: str, d: Direction) -> None:  # type: ignore[no-untyped-def]
    peer = call.carrier if leg == "a" else call.client
    await media.bus.request(media.subject("update"), MediaUpdate(
        call_id=call.call_id, leg=leg, remote_address="127.0.0.1", remote_port=peer.port,
        remote_rtcp_port=peer.rtcp_port, telephone_event_pt=101 if leg == "a" else 96, direction=d), Ack)


async def test_client_hold_stops_rtp_toward_it_and_resume_restores(media, make_rtp: Callable[..., bytes]) -> None:  # type: ignore[no-untyped-def]
    call = await media.setup_call("hold-1", b_secure=False)
    audio = os.urandom(160)
    call.carrier.send(make_rtp(1, 0, 0x11, audio), call.a_port)
    assert (await recv_plain(call.client)).payload == audio  # flowing before the hold

    await direction(media, call, "b", "sendonly")  # the PBX holds: it sends music, wants nothing
    for i in range(2, 12):
        call.carrier.send(make_rtp(i, 160 * i, 0x11, audio), call.a_port)
    await read(media, call, "a", 11)
    assert nothing_waiting(call.client), "RTP reached the side on hold"
    music = os.urandom(160)
    call.client.send(make_rtp(1, 0, 0x22, music), call.b_port)
    assert (await recv_plain(call.carrier)).payload == music  # music on hold still reaches the carrier

    await direction(media, call, "b", "sendrecv")  # resume
    call.carrier.send(make_rtp(12, 160 * 12, 0x11, audio), call.a_port)
    assert (await recv_plain(call.client)).payload == audio
    stats = await release(media, call)
    assert stats.a.held == 10 and stats.b.held == 0 and stats.b.direction == "sendrecv"


async def test_inactive_stops_both_ways(media, make_rtp: Callable[..., bytes]) -> None:  # type: ignore[no-untyped-def]
    call = await media.setup_call("hold-2", b_secure=False)
    await direction(media, call, "a", "inactive")  # the carrier holds with a=inactive
    for i in range(5):
        call.carrier.send(make_rtp(i, 160 * i, 0x11, b"\x01" * 160), call.a_port)
        call.client.send(make_rtp(i, 160 * i, 0x22, b"\x02" * 160), call.b_port)
    await read(media, call, "a", 5)
    await read(media, call, "b", 5)
    assert nothing_waiting(call.client) and nothing_waiting(call.carrier)
    stats = await release(media, call)
    assert (stats.a.held, stats.b.held, stats.a.direction) == (5, 5, "inactive")
