"""The bus goes away in the middle of the day: calls get a 503 with Retry-After (never a
crash or a hang), and once NATS is back the same processes route calls again."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.helpers.sipp import NUMBER, SCENARIOS, carrier, finish, sipp
from tests.helpers.stack import running_stack, udp_free_port

pytestmark = [
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed (.ci/run installs sip-tester)"),
    pytest.mark.timeout(120),
]


async def test_calls_fail_cleanly_without_nats_and_work_again_after(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        port = udp_free_port()
        await stack.provision(NUMBER, [{"uri": f"sip:100@127.0.0.1:{port}", "priority": 1}])

        stack.nats.stop()
        c = await carrier(stack, tmp_path, "carrier_rejected.xml", "-trace_msg", name="down")
        assert await finish(c, tmp_path, "down") == 0  # it got a final error response and ACKed it
        # What the carrier saw (SIPp's message log): 503 with Retry-After, no silence.
        received = "".join(p.read_text() for p in tmp_path.glob("carrier_rejected_*_messages.log"))
        assert "SIP/2.0 503" in received and "Retry-After:" in received, received[-2000:]

        stack.nats.start()  # same port, same JetStream store
        pbx = await sipp(tmp_path, "pbx", "-sf", str(SCENARIOS / "client_answer.xml"), "-p", str(port),
                         "-mp", str(udp_free_port()), "-m", "1")
        deadline = asyncio.get_running_loop().time() + 40
        while True:  # the services reconnect on their own; the registry judges again
            c = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "200", name="up")
            if await finish(c, tmp_path, "up") == 0:
                break
            assert asyncio.get_running_loop().time() < deadline, "no call connected after NATS came back"
            await asyncio.sleep(1)
        assert await finish(pbx, tmp_path, "pbx") == 0
