"""linphonec (Debian linphone-cli) as the customer's SIP client: SIPp carrier -> Switchboard
-> linphone over UDP with plain RTP. A tone each way, checked by frequency at the far end,
and DTMF both ways.

Not over TLS: liblinphone's SIP stack (belle-sip) accepts no incoming TLS connection — its
TLS listening point closes every one ("New connection arriving on TLS, not handled !",
belle-sip's tls_listening_point.c); a linphone phone only ever connects out to its proxy.
A call *to* linphone over TLS cannot be set up, and SDES SRTP over UDP is refused by design
(the key would cross in clear), so TLS + SRTP is covered by pjsua2 and baresip instead."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.linphone import Linphone, needs_linphone
from tests.helpers.peers import dominant_frequency, needs_sipp
from tests.helpers.sipp import NUMBER, finish, media_carrier
from tests.helpers.stack import running_stack
from tests.helpers.tone import dominant, exchange_tone

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]


@pytest.fixture
async def linphone(tmp_path: Path) -> AsyncIterator[Any]:
    made: list[Linphone] = []

    async def factory(**kw: Any) -> Linphone:
        ua = Linphone(tmp_path, **kw)
        made.append(ua)
        return await ua.start()

    yield factory
    for ua in made:
        await ua.stop()


async def call_through(tmp_path: Path, ua: Linphone, target: dict[str, Any], secure: bool) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.provision(NUMBER, [target], ring_timeout=15, send_digits="w12")
        media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        media.bind(("127.0.0.1", 0))
        media.setblocking(False)
        carrier = await media_carrier(stack, tmp_path, media.getsockname()[1], hold_ms=4000)
        allocated = await stack.wait_event("media_allocated")
        answered = await stack.wait_event("answered")
        assert allocated.payload["secure"] is secure and answered.payload["secure"] is secure

        heard = await exchange_tone(media, ("127.0.0.1", allocated.payload["a_port"]), 2.5,
                                    at_frame={50: lambda: ua.send_dtmf("5")})
        media.close()
        await ua.wait_for(lambda: ua.digits == "12", "send-digits 12")
        dtmf = await stack.wait_event("dtmf", digit="5")
        assert dtmf.payload["leg"] == "b"
        assert await finish(carrier, tmp_path, "carrier") == 0
        ended = await stack.wait_event("ended")
        await ua.stop()  # closes the recording

        assert len(heard) > 8000, "less than a second of audio reached the carrier"
        assert dominant(bytes(heard[2400:])) == 600
        assert dominant_frequency(ua.recording, (600.0, 1000.0)) == 1000
        invite = next(e for e in stack.events if e.kind == "sip_out" and e.payload["first_line"].startswith("INVITE"))
        assert invite.payload["transport"] == ("tls" if secure else "udp")
        assert ("RTP/SAVP" if secure else "RTP/AVP") in invite.payload["message"]
        b = ended.payload["media"]["b"]
        assert b["packets_in"] > 50 and b["srtp_failures"] <= 10, b


@needs_sipp
@needs_linphone
async def test_linphone_udp_rtp_two_way_audio_and_dtmf(tmp_path: Path, linphone) -> None:
    ua = await linphone(srtp=False)
    await call_through(tmp_path, ua, {"uri": ua.uri}, secure=False)
