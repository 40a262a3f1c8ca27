"""One advertise address carries a call: with SWITCHBOARD_ADVERTISE_ADDRESS set (127.0.0.2
here, a loopback address that is not 127.0.0.1), the SIP listeners and the media sockets
bind it, Via/Contact and both SDPs name it, and the carrier's RTP sent there comes back
from the SIP client through it."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import struct
from pathlib import Path

import pytest

from tests.helpers.sipp import NUMBER, SCENARIOS, finish, sipp
from tests.helpers.stack import running_stack, udp_free_port

ADDR = "127.0.0.2"
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed (.ci/run installs sip-tester)"),
    pytest.mark.timeout(90),
]


async def test_a_call_through_the_advertised_address(tmp_path: Path) -> None:
    async with running_stack(tmp_path, signaling={"advertise_address": ADDR},
                             media={"advertise_address": ADDR}) as stack:
        client_port = udp_free_port()
        client = await sipp(tmp_path, "client", "-sf", str(SCENARIOS / "client_answer.xml"), "-p", str(client_port),
                            "-mp", str(udp_free_port()), "-rtp_echo", "-m", "1")
        await stack.provision(NUMBER, [{"uri": f"sip:100@127.0.0.1:{client_port}"}])
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        rtp.setblocking(False)
        carrier = await sipp(tmp_path, "carrier", "-sf", str(SCENARIOS / "carrier_call.xml"), "-set", "caller",
                             "15550001111", "-set", "rtp_ip", "127.0.0.1", "-set", "rtp_port",
                             str(rtp.getsockname()[1]), "-d", "1500", "-s", NUMBER.lstrip("+"),
                             "-p", str(udp_free_port()), "-m", "1", f"{ADDR}:{stack.sip_port}")
        allocated = await stack.wait_event("media_allocated")
        await stack.wait_event("answered")
        loop = asyncio.get_running_loop()
        echoed: list[tuple[str, int]] = []
        for seq in range(1, 21):
            rtp.sendto(struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x1234) + b"\xff" * 160,
                       (ADDR, allocated.payload["a_port"]))
            await asyncio.sleep(0.02)
        deadline = loop.time() + 2
        while loop.time() < deadline and len(echoed) < 10:
            try:
                _, src = rtp.recvfrom(2048)
                echoed.append(src)
            except BlockingIOError:
                await asyncio.sleep(0.02)
        rtp.close()
        assert await finish(carrier, tmp_path, "carrier") == 0
        assert await finish(client, tmp_path, "client") == 0

    # RTP came back through the worker's socket on the advertised address.
    assert echoed and {src for src in echoed} == {(ADDR, allocated.payload["a_port"])}
    sip = [e.payload for e in stack.events if e.call_id == allocated.call_id and e.kind == "sip_out"]
    invite = next(m["message"] for m in sip if m["first_line"].startswith("INVITE"))
    ok = next(m["message"] for m in sip if m["first_line"].startswith("SIP/2.0 200") and "INVITE" in m["message"]
              and "m=audio" in m["message"])
    for msg in (invite, ok):
        assert re.search(rf"^Contact: <sips?:(\S+@)?{re.escape(ADDR)}[:;>]", msg, re.M | re.I), msg
        assert f"c=IN IP4 {ADDR}" in msg and "127.0.0.1" not in msg.split("\r\n\r\n", 1)[1]
    assert re.search(rf"^Via: SIP/2.0/UDP {re.escape(ADDR)}:", invite, re.M), invite
