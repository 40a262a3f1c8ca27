"""baresip as the customer's SIP client over TLS with mandatory SRTP, auto-answering:
SIPp carrier -> Switchboard -> TLS/SRTP -> baresip. The carrier's tone is what baresip
hears, baresip's tone comes back to the carrier, and a DTMF digit pressed at baresip is a
call event."""

from __future__ import annotations

import asyncio
import math
import socket
import struct
from pathlib import Path

import pytest

from tests.helpers.g711 import lin2ulaw, ulaw2lin
from tests.helpers.peers import dominant_frequency, needs_baresip, needs_sipp
from tests.helpers.sipp import NUMBER, SCENARIOS, finish, sipp
from tests.helpers.stack import running_stack, udp_free_port

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]


def ulaw_tone(freq: float, seconds: float) -> list[bytes]:
    """20 ms PCMU frames of a sine tone."""
    n = int(8000 * seconds)
    pcm = b"".join(struct.pack("<h", int(9000 * math.sin(2 * math.pi * freq * i / 8000))) for i in range(n))
    ulaw = lin2ulaw(pcm)
    return [ulaw[i:i + 160] for i in range(0, len(ulaw) - 159, 160)]


def dominant(ulaw: bytes, candidates: tuple[float, ...] = (600.0, 1000.0)) -> float:
    pcm = ulaw2lin(ulaw)
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)

    def power(f: float) -> float:
        k = 2 * math.cos(2 * math.pi * f / 8000)
        s1 = s2 = 0.0
        for x in samples:
            s1, s2 = x + k * s1 - s2, s1
        return s1 * s1 + s2 * s2 - k * s1 * s2

    return max(candidates, key=power)


@needs_sipp
@needs_baresip
async def test_tls_srtp_client_two_way_audio_and_dtmf(tmp_path: Path, baresip, test_ca_and_tls) -> None:
    ca, tls_files = test_ca_and_tls
    bob = await baresip("bob", tls=tls_files, mediaenc="srtp-mand", auto_answer=True, tone_hz=600,
                        call_seconds=30).start()
    async with running_stack(tmp_path) as stack:
        await stack.provision(NUMBER, [{"uri": f"sips:bob@127.0.0.1:{bob.tls_port}",
                                        "tls": {"verify": True, "ca_pem": Path(tls_files.ca_file).read_text()}}],
                              ring_timeout=15, send_digits="w12")
        media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        media.bind(("127.0.0.1", 0))
        media.setblocking(False)
        carrier = await sipp(tmp_path, "carrier", "-sf", str(SCENARIOS / "carrier_call.xml"),
                             "-set", "caller", "15550001111", "-set", "rtp_ip", "127.0.0.1",
                             "-set", "rtp_port", str(media.getsockname()[1]), "-d", "4000",
                             "-s", NUMBER.lstrip("+"), "-p", str(udp_free_port()), "-m", "1",
                             f"127.0.0.1:{stack.sip_port}")
        allocated = await stack.wait_event("media_allocated")
        assert allocated.payload["secure"] is True
        answered = await stack.wait_event("answered")
        assert answered.payload["secure"] is True
        await bob.wait_for_event("CALL_ESTABLISHED")
        menc = await bob.wait_for_event("CALL_MENC")
        assert "AES_CM_128_HMAC_SHA1_80" in menc["param"]

        # The carrier sends a 1 kHz tone for 2 s; meanwhile baresip's 600 Hz comes back.
        heard = bytearray()
        dest = ("127.0.0.1", allocated.payload["a_port"])
        for i, frame in enumerate(ulaw_tone(1000, 2.0)):
            media.sendto(struct.pack("!BBHII", 0x80, 0, i + 1, i * 160, 0xC0FFEE) + frame, dest)
            if i == 50:
                await bob.send_dtmf("5")
            await asyncio.sleep(0.02)
            while True:
                try:
                    pkt = media.recv(2048)
                except BlockingIOError:
                    break
                if pkt[1] & 0x7F == 0:
                    heard += pkt[12:]
        media.close()
        # The receiving number's send-digits were played to the client after the answer.
        assert await bob.wait_for_dtmf(2) == "12"
        dtmf = await stack.wait_event("dtmf", digit="5")
        assert dtmf.payload["leg"] == "b"
        assert await finish(carrier, tmp_path, "carrier") == 0
        await bob.wait_for_event("CALL_CLOSED")
        await stack.wait_event("ended")

        # Both directions carried real audio: what each side heard is the other's tone.
        assert len(heard) > 8000, "less than a second of audio reached the carrier"
        assert dominant(bytes(heard[1600:])) == 600
        assert dominant_frequency(bob.recorded_wav("dec")) == 1000, bob.log_tail()
        # SIP went over TLS to baresip, with RTP/SAVP.
        sip_out = [e for e in stack.events if e.kind == "sip_out" and e.payload["first_line"].startswith("INVITE sips:")]
        assert sip_out and sip_out[0].payload["transport"] == "tls"
        assert "RTP/SAVP" in sip_out[0].payload["message"] and "AES_CM_128_HMAC_SHA1_80" in sip_out[0].payload["message"]
        stats = (await stack.wait_event("ended")).payload["media"]
        # baresip sends as soon as it answers; the few packets that reach the worker before
        # its 200 OK has been processed (and its key is known) cannot be authenticated.
        assert stats["b"]["packets_in"] > 50
        assert stats["b"]["srtp_failures"] <= 10, stats["b"]


@needs_sipp
@needs_baresip
async def test_tls_with_media_encryption_none_connects_with_plain_rtp(tmp_path: Path, baresip, test_ca_and_tls) -> None:
    """A PBX with TLS but no SRTP: `media_encryption: none` on a sips: target offers RTP/AVP
    over TLS, and baresip (no media encryption) answers it with two-way audio."""
    ca, tls_files = test_ca_and_tls
    bob = await baresip("bob", tls=tls_files, mediaenc=None, auto_answer=True, tone_hz=600, call_seconds=30).start()
    async with running_stack(tmp_path) as stack:
        await stack.provision(NUMBER, [{"uri": f"sips:bob@127.0.0.1:{bob.tls_port}", "media_encryption": "none",
                                        "tls": {"verify": True, "ca_pem": Path(tls_files.ca_file).read_text()}}],
                              ring_timeout=15)
        media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        media.bind(("127.0.0.1", 0))
        media.setblocking(False)
        carrier = await sipp(tmp_path, "carrier", "-sf", str(SCENARIOS / "carrier_call.xml"),
                             "-set", "caller", "15550001111", "-set", "rtp_ip", "127.0.0.1",
                             "-set", "rtp_port", str(media.getsockname()[1]), "-d", "3000",
                             "-s", NUMBER.lstrip("+"), "-p", str(udp_free_port()), "-m", "1",
                             f"127.0.0.1:{stack.sip_port}")
        allocated = await stack.wait_event("media_allocated")
        assert allocated.payload["secure"] is False
        answered = await stack.wait_event("answered")
        assert answered.payload["secure"] is False
        await bob.wait_for_event("CALL_ESTABLISHED")
        heard = bytearray()
        dest = ("127.0.0.1", allocated.payload["a_port"])
        for i, frame in enumerate(ulaw_tone(1000, 2.0)):
            media.sendto(struct.pack("!BBHII", 0x80, 0, i + 1, i * 160, 0xC0FFEE) + frame, dest)
            await asyncio.sleep(0.02)
            while True:
                try:
                    pkt = media.recv(2048)
                except BlockingIOError:
                    break
                if pkt[1] & 0x7F == 0:
                    heard += pkt[12:]
        media.close()
        assert await finish(carrier, tmp_path, "carrier") == 0
        await bob.wait_for_event("CALL_CLOSED")
        await stack.wait_event("ended")
        assert len(heard) > 8000, "less than a second of audio reached the carrier"
        assert dominant(bytes(heard[1600:])) == 600
        assert dominant_frequency(bob.recorded_wav("dec")) == 1000, bob.log_tail()
        invite = next(e for e in stack.events if e.kind == "sip_out" and e.payload["first_line"].startswith("INVITE sips:"))
        assert invite.payload["transport"] == "tls"
        assert "RTP/AVP" in invite.payload["message"] and "a=crypto" not in invite.payload["message"]
