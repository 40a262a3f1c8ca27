"""baresip as the customer's SIP client over TLS with mandatory SRTP, auto-answering:
SIPp carrier -> Switchboard -> TLS/SRTP -> baresip. The carrier's tone is what baresip
hears, baresip's tone comes back to the carrier, and a DTMF digit pressed at baresip is a
call event."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.helpers.peers import dominant_frequency, needs_baresip, needs_sipp
from tests.helpers.sipp import NUMBER, finish, media_carrier
from tests.helpers.stack import running_stack
from tests.helpers.tone import dominant, exchange_tone

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]


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
        carrier = await media_carrier(stack, tmp_path, media.getsockname()[1], hold_ms=4000)
        allocated = await stack.wait_event("media_allocated")
        assert allocated.payload["secure"] is True
        answered = await stack.wait_event("answered")
        assert answered.payload["secure"] is True
        await bob.wait_for_event("CALL_ESTABLISHED")
        menc = await bob.wait_for_event("CALL_MENC")
        assert "AES_CM_128_HMAC_SHA1_80" in menc["param"]

        # The carrier sends a 1 kHz tone for 2 s; meanwhile baresip's 600 Hz comes back.
        heard = await exchange_tone(media, ("127.0.0.1", allocated.payload["a_port"]), 2.0,
                                    at_frame={50: lambda: bob.send_dtmf("5")})
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
        carrier = await media_carrier(stack, tmp_path, media.getsockname()[1], hold_ms=3000)
        allocated = await stack.wait_event("media_allocated")
        assert allocated.payload["secure"] is False
        answered = await stack.wait_event("answered")
        assert answered.payload["secure"] is False
        await bob.wait_for_event("CALL_ESTABLISHED")
        heard = await exchange_tone(media, ("127.0.0.1", allocated.payload["a_port"]), 2.0)
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
