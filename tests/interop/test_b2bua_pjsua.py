"""PJSUA2 (pjsip) as the customer's SIP client: SIPp carrier -> Switchboard -> pjsua2, over
TLS with mandatory SRTP and over UDP with plain RTP. Each direction carries a tone checked by
frequency at the far end, and DTMF goes both ways (the receiving number's send-digits to
pjsua2, a digit pressed at pjsua2 to the call's events)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.peers import dominant_frequency, needs_sipp
from tests.helpers.pjsua import Pjsua, needs_pjsua2
from tests.helpers.sipp import NUMBER, finish, media_carrier
from tests.helpers.stack import running_stack
from tests.helpers.tone import dominant, exchange_tone

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]


@pytest.fixture
def pjsua(tmp_path: Path) -> Iterator[Any]:
    made: list[Pjsua] = []

    def factory(**kw: Any) -> Pjsua:
        ua = Pjsua(tmp_path, **kw)
        made.append(ua)
        return ua

    yield factory
    for ua in made:
        ua.close()


async def call_through(tmp_path: Path, ua: Pjsua, target: dict[str, Any], secure: bool) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.provision(NUMBER, [target], ring_timeout=15, send_digits="w12")
        media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        media.bind(("127.0.0.1", 0))
        media.setblocking(False)
        carrier = await media_carrier(stack, tmp_path, media.getsockname()[1], hold_ms=4000)
        allocated = await stack.wait_event("media_allocated")
        answered = await stack.wait_event("answered")
        assert allocated.payload["secure"] is secure and answered.payload["secure"] is secure
        await ua.wait(ua.media_active.is_set, "active media")

        heard = await exchange_tone(media, ("127.0.0.1", allocated.payload["a_port"]), 2.0,
                                    at_frame={50: lambda: ua.send_dtmf("5")})
        media.close()
        await ua.wait(lambda: "".join(ua.digits) == "12", "send-digits 12")
        dtmf = await stack.wait_event("dtmf", digit="5")
        assert dtmf.payload["leg"] == "b"
        assert await finish(carrier, tmp_path, "carrier") == 0
        await ua.wait(ua.disconnected.is_set, "BYE")
        ended = await stack.wait_event("ended")

        assert len(heard) > 8000, "less than a second of audio reached the carrier"
        assert dominant(bytes(heard[1600:])) == 600
        assert dominant_frequency(ua.finish_recording(), (600.0, 1000.0)) == 1000
        invite = next(e for e in stack.events if e.kind == "sip_out" and e.payload["first_line"].startswith("INVITE"))
        assert invite.payload["transport"] == ("tls" if secure else "udp")
        assert ("RTP/SAVP" if secure else "RTP/AVP") in invite.payload["message"]
        b = ended.payload["media"]["b"]
        assert b["packets_in"] > 50 and b["srtp_failures"] <= 10, b


@needs_sipp
@needs_pjsua2
async def test_pjsua_tls_srtp_two_way_audio_and_dtmf(tmp_path: Path, pjsua, test_ca_and_tls) -> None:
    ca, _ = test_ca_and_tls
    cert = ca.issue("127.0.0.1", "localhost")
    ua = pjsua(tls_cert=cert.cert_file, tls_key=cert.key_file, ca_file=str(ca.cert_file), srtp=True)
    await call_through(tmp_path, ua, {"uri": ua.uri, "tls": {"verify": True, "ca_pem": Path(ca.cert_file).read_text()}},
                       secure=True)


@needs_sipp
@needs_pjsua2
async def test_pjsua_udp_rtp_two_way_audio_and_dtmf(tmp_path: Path, pjsua) -> None:
    ua = pjsua(srtp=False)
    await call_through(tmp_path, ua, {"uri": ua.uri}, secure=False)
