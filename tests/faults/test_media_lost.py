"""A media worker killed mid-call (SIGKILL: no drain, no goodbye): signaling notices that its
heartbeats stopped and ends the call with a BYE and a Reason to both legs, instead of dead
air until the carrier hangs up; the record says the worker was lost; the region's other
worker takes the next call."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proto import subjects
from tests.helpers.sipp import NUMBER, SCENARIOS, carrier, finish, sipp
from tests.helpers.stack import running_stack, start_service, udp_free_port

pytestmark = [
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed (.ci/run installs sip-tester)"),
    pytest.mark.timeout(120),
]


def media_process(nats_url: str, data_dir: Path, node_id: str, port_min: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(SWITCHBOARD_NATS_URL=nats_url, SWITCHBOARD_REGION="us1", SWITCHBOARD_NODE_ID=node_id,
               SWITCHBOARD_HEARTBEAT_INTERVAL="0.2", SWITCHBOARD_DATA_DIR=str(data_dir),
               SWITCHBOARD_PORT_MIN=str(port_min), SWITCHBOARD_PORT_MAX=str(port_min + 98),
               SWITCHBOARD_NO_MEDIA_TIMEOUT="0")
    return subprocess.Popen([sys.executable, "-m", "services.media"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


async def test_killed_media_worker_ends_the_call_with_bye_both_ways(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        # The only worker of the region is a real process, so that it can really die.
        beats = await stack.bus.nc.subscribe(subjects.heartbeat("media", "us1", "media-victim"))
        victim = media_process(stack.nats.url, tmp_path / "victim", "media-victim", 24000)
        try:
            await beats.next_msg(timeout=30)  # it is up and takes allocations (it subscribes first)
            await beats.unsubscribe()
            await stack.stop_service("media_us1")
            pbx_port = udp_free_port()
            await stack.provision(NUMBER, [{"uri": f"sip:100@127.0.0.1:{pbx_port}", "priority": 1}])
            pbx = await sipp(tmp_path, "pbx", "-sf", str(SCENARIOS / "client_answer.xml"), "-p", str(pbx_port),
                             "-mp", str(udp_free_port()), "-m", "1")
            # Both SIPp peers wait 30-60 s for a BYE: only ours can end them in time.
            c = await carrier(stack, tmp_path, "carrier_call_until_bye.xml")
            allocated = await stack.wait_event("media_allocated", timeout=30)
            assert allocated.payload["worker_id"] == "media-victim"
            await stack.wait_event("answered", timeout=30)
            # The worker that takes the next calls.
            await start_service(stack, "media_b", "media", port_min=24200, port_max=24298, no_media_timeout=0)

            killed = time.monotonic()
            victim.send_signal(signal.SIGKILL)
            assert await finish(c, tmp_path, "carrier") == 0  # it got our BYE and answered it
            assert await finish(pbx, tmp_path, "pbx") == 0
            ended = await stack.wait_event("ended")
            byes = [e for e in stack.events if e.kind == "sip_out" and e.payload["first_line"].startswith("BYE")]
            print(f"BYE to both legs {time.monotonic() - killed:.1f} s after SIGKILL of the media worker")
        finally:
            victim.kill()
            victim.wait()

        assert len(byes) == 2
        for bye in byes:  # RFC 3326: the legs are told why
            assert 'Reason: SIP;cause=503;text="media worker media-victim lost"' in bye.payload["message"]
        assert ended.payload["reason"] == "media worker media-victim lost" and ended.payload["by"] == "switchboard"

        async with stack.http() as api:
            deadline = asyncio.get_running_loop().time() + 15
            while True:
                r = await api.get(f"/v1/calls/{ended.call_id}")
                if r.status_code == 200 and r.json()["result"]:
                    break
                assert asyncio.get_running_loop().time() < deadline, r.text
                await asyncio.sleep(0.1)
        record = r.json()
        assert record["reason"] == "media worker media-victim lost" and record["media"] is None

        # The next call goes through the region's other worker.
        stack.events.clear()
        pbx = await sipp(tmp_path, "pbx2", "-sf", str(SCENARIOS / "client_answer.xml"), "-p", str(pbx_port),
                         "-mp", str(udp_free_port()), "-m", "1")
        c = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "200", name="next")
        assert await finish(c, tmp_path, "next") == 0
        assert await finish(pbx, tmp_path, "pbx2") == 0
        assert (await stack.wait_event("media_allocated")).payload["worker_id"] == "media-b"
