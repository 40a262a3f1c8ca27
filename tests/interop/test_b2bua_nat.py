"""PBXs behind NAT, and targets with different media, through the whole stack with SIPp.

The PBX (SIPp) answers with its private address in the Contact and in `c=` (192.168.77.10);
its RTP really comes from loopback (a socket of the test, on another port than its SDP
says). Two-way audio is checked by tone frequency; a stranger on another address sends
too and must not take the media."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

import pytest

from tests.helpers.peers import needs_sipp
from tests.helpers.sipp import NUMBER, SCENARIOS, finish, media_carrier, sipp
from tests.helpers.stack import running_stack, udp_free_port
from tests.helpers.tone import SSRC, dominant, ulaw_tone

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

PRIVATE = "192.168.77.10"


def udp(host: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.setblocking(False)
    return s


def drain(sock: socket.socket, into: bytearray) -> None:
    while True:
        try:
            pkt = sock.recv(2048)
        except BlockingIOError:
            return
        if pkt[1] & 0x7F == 0:
            into += pkt[12:]


async def talk(pairs: list[tuple[socket.socket, tuple[str, int], float]], heard: dict[socket.socket, bytearray],
               seconds: float = 2.0) -> None:
    """Each socket sends its tone to its destination for `seconds`; what each receives is kept."""
    frames = {s: ulaw_tone(f, seconds) for s, _, f in pairs}
    for i in range(int(seconds * 50)):
        for n, (s, dest, _) in enumerate(pairs):
            s.sendto(struct.pack("!BBHII", 0x80, 0, i + 1, i * 160, SSRC + n) + frames[s][i], dest)
        await asyncio.sleep(0.02)
        for s in heard:
            drain(s, heard[s])


@needs_sipp
async def test_pbx_behind_nat_two_way_audio_and_a_stranger_cannot_take_the_media(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        pbx_port = udp_free_port()
        pbx = await sipp(tmp_path, "pbx", "-sf", str(SCENARIOS / "client_answer_nat.xml"), "-p", str(pbx_port),
                         "-set", "private_ip", PRIVATE, "-set", "sdp_port", str(udp_free_port()), "-m", "1")
        await stack.provision(NUMBER, [{"uri": f"sip:100@127.0.0.1:{pbx_port}"}], ring_timeout=15)
        carrier_media = udp()
        carrier = await media_carrier(stack, tmp_path, carrier_media.getsockname()[1], hold_ms=5000)
        allocated = await stack.wait_event("media_allocated")
        await stack.wait_event("answered")
        nat = await stack.wait_event("nat_detected", leg="b")
        assert nat.payload["sdp_address"] == PRIVATE and nat.payload["source"] == f"127.0.0.1:{pbx_port}"
        assert nat.payload["contact"].startswith(f"sip:pbx@{PRIVATE}:5060")

        pbx_media, stranger = udp(), udp("127.0.0.2")
        pbx_rtp = f"127.0.0.1:{pbx_media.getsockname()[1]}"
        heard = {carrier_media: bytearray(), pbx_media: bytearray(), stranger: bytearray()}
        a = ("127.0.0.1", allocated.payload["a_port"])
        b = ("127.0.0.1", allocated.payload["b_port"])
        # The stranger starts first, on another address: with NAT detected only the PBX's
        # signaling IP may latch, so it gets nothing and its 400 Hz reaches no one.
        await talk([(stranger, b, 400.0)], heard, 0.4)
        await talk([(carrier_media, a, 1000.0), (pbx_media, b, 600.0), (stranger, b, 400.0)], heard, 2.0)
        for s in heard:
            s.close()
        assert await finish(carrier, tmp_path, "carrier") == 0
        # The BYE (and the ACK before it) reached the PBX at its real address, not its private Contact.
        assert await finish(pbx, tmp_path, "pbx") == 0
        ended = await stack.wait_event("ended")

        assert len(heard[carrier_media]) > 8000 and len(heard[pbx_media]) > 8000
        assert dominant(bytes(heard[carrier_media][1600:]), (400.0, 600.0, 1000.0)) == 600
        assert dominant(bytes(heard[pbx_media][1600:]), (400.0, 600.0, 1000.0)) == 1000
        assert not heard[stranger]
        stats = ended.payload["media"]["b"]
        assert stats["nat"] is True and stats["latched"] == pbx_rtp
        assert stats["dropped"] >= 100  # the stranger's packets, all of them
        acks = [e for e in stack.events if e.kind == "sip_out" and e.payload["first_line"].startswith(("ACK", "BYE"))]
        assert acks and all(e.payload["dst"] == f"127.0.0.1:{pbx_port}" for e in acks)


@needs_sipp
async def test_sips_target_fails_then_a_sip_target_answers_with_plain_rtp(tmp_path: Path) -> None:
    """The receiving number's first target is TLS + SRTP and unreachable; the second, plain
    SIP, answers: its INVITE offers plain RTP (the worker's client side re-keyed) and the
    call has two-way audio, not a 503 after the answer."""
    async with running_stack(tmp_path) as stack:
        pbx_port, dead_tls = udp_free_port(), udp_free_port()
        pbx = await sipp(tmp_path, "pbx", "-sf", str(SCENARIOS / "client_answer.xml"), "-p", str(pbx_port),
                         "-mp", str(udp_free_port()), "-rtp_echo", "-m", "1")
        await stack.provision(NUMBER, [{"uri": f"sips:100@127.0.0.1:{dead_tls}", "priority": 1,
                                        "tls": {"verify": False}},
                                       {"uri": f"sip:100@127.0.0.1:{pbx_port}", "priority": 2}], ring_timeout=15)
        carrier_media = udp()
        carrier = await media_carrier(stack, tmp_path, carrier_media.getsockname()[1], hold_ms=4000)
        allocated = await stack.wait_event("media_allocated")
        assert allocated.payload["secure"] is True  # for the first target
        answered = await stack.wait_event("answered")
        assert answered.payload["target"] == f"sip:100@127.0.0.1:{pbx_port}" and answered.payload["secure"] is False
        invites = [e.payload["message"] for e in stack.events
                   if e.kind == "sip_out" and e.payload["first_line"].startswith("INVITE sip:100@")]
        assert invites and "RTP/AVP" in invites[-1] and "a=crypto" not in invites[-1]
        heard = {carrier_media: bytearray()}
        # SIPp echoes what the worker sends it: the carrier hears its own tone back.
        await talk([(carrier_media, ("127.0.0.1", allocated.payload["a_port"]), 1000.0)], heard, 1.5)
        carrier_media.close()
        assert await finish(carrier, tmp_path, "carrier") == 0
        assert await finish(pbx, tmp_path, "pbx") == 0
        ended = await stack.wait_event("ended")
        assert len(heard[carrier_media]) > 4000
        assert dominant(bytes(heard[carrier_media][1600:]), (600.0, 1000.0)) == 1000
        assert ended.payload["media"]["b"]["srtp_failures"] == 0


@needs_sipp
async def test_carrier_with_a_private_sdp_address_gets_its_audio_at_its_signaling_ip(tmp_path: Path) -> None:
    """The carrier's SDP says 192.168.77.20 (an SBC behind NAT), its RTP comes from
    loopback: the worker latches to its signaling IP; the PBX (SIPp) echoes the audio back."""
    async with running_stack(tmp_path) as stack:
        pbx_port = udp_free_port()
        pbx = await sipp(tmp_path, "pbx", "-sf", str(SCENARIOS / "client_answer.xml"), "-p", str(pbx_port),
                         "-mp", str(udp_free_port()), "-rtp_echo", "-m", "1")
        await stack.provision(NUMBER, [{"uri": f"sip:100@127.0.0.1:{pbx_port}"}], ring_timeout=15)
        carrier = await sipp(tmp_path, "carrier", "-sf", str(SCENARIOS / "carrier_call.xml"),
                             "-set", "caller", "15550001111", "-set", "rtp_ip", "192.168.77.20",
                             "-set", "rtp_port", str(udp_free_port()), "-d", "4000", "-s", NUMBER.lstrip("+"),
                             "-p", str(udp_free_port()), "-m", "1", f"127.0.0.1:{stack.sip_port}")
        allocated = await stack.wait_event("media_allocated")
        nat = await stack.wait_event("nat_detected", leg="a")
        assert nat.payload["sdp_address"] == "192.168.77.20" and nat.payload["source"].startswith("127.0.0.1:")
        await stack.wait_event("answered")
        carrier_media = udp()
        heard = {carrier_media: bytearray()}
        await talk([(carrier_media, ("127.0.0.1", allocated.payload["a_port"]), 1000.0)], heard, 1.5)
        carrier_media.close()
        assert await finish(carrier, tmp_path, "carrier") == 0
        assert await finish(pbx, tmp_path, "pbx") == 0
        ended = await stack.wait_event("ended")
        assert len(heard[carrier_media]) > 4000
        assert dominant(bytes(heard[carrier_media][1600:]), (600.0, 1000.0)) == 1000
        assert ended.payload["media"]["a"]["nat"] is True
