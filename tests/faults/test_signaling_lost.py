"""The signaling node of a call killed mid-call (SIGKILL): nobody is left to release the
call's media. The media worker notices (no heartbeat from the call's node, no RTP) and
frees the port pairs itself, and the record is closed as `lost` with the node named; the
carrier's later BYE, reaching another node on the same address, gets 481 (RFC 3261
§12.2.2), not silence."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
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


def signaling_process(nats_url: str, data_dir: Path, node_id: str, sip_port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(SWITCHBOARD_NATS_URL=nats_url, SWITCHBOARD_REGION="us1", SWITCHBOARD_NODE_ID=node_id,
               SWITCHBOARD_HEARTBEAT_INTERVAL="0.2", SWITCHBOARD_DATA_DIR=str(data_dir),
               SWITCHBOARD_SIP_PORT=str(sip_port), SWITCHBOARD_SIP_TLS_PORT="0", SWITCHBOARD_LOCAL_MODE="1",
               SWITCHBOARD_T1="0.1")
    return subprocess.Popen([sys.executable, "-m", "services.signaling"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def test_killed_signaling_node_frees_media_and_is_recorded_lost(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        # The worker judges a silent node quickly here (20 s and 10 s by default).
        await start_service(stack, "media_b", "media", port_min=24400, port_max=24498, no_media_timeout=0,
                            signaling_lost_after=2.0, orphan_idle=1.0)
        await stack.stop_service("media_us1")
        await stack.stop_service("signaling")
        beats = await stack.bus.nc.subscribe(subjects.heartbeat("signaling", "us1", "sig-victim"))
        victim = signaling_process(stack.nats.url, tmp_path / "victim", "sig-victim", stack.sip_port)
        pbx = None
        try:
            await beats.next_msg(timeout=30)  # it is up and heartbeating
            await beats.unsubscribe()
            pbx_port = udp_free_port()
            await stack.provision(NUMBER, [{"uri": f"sip:100@127.0.0.1:{pbx_port}", "priority": 1}])
            pbx = await sipp(tmp_path, "pbx", "-sf", str(SCENARIOS / "client_answer.xml"), "-p", str(pbx_port),
                             "-mp", str(udp_free_port()), "-m", "1")
            # The carrier hangs up 6 s after the answer: by then its node is dead.
            c = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "6000", "-trace_msg", name="carrier")
            try:
                answered = await stack.wait_event("answered", timeout=30)
            except AssertionError:
                err = (tmp_path / "pbx.err").read_text()[-1500:] if (tmp_path / "pbx.err").exists() else ""
                raise AssertionError(f"not answered; the SIPp client exited {pbx.returncode}: {err}") from None
            allocated = next(e for e in stack.events if e.kind == "media_allocated" and e.call_id == answered.call_id)
            ports = [allocated.payload["a_port"], allocated.payload["b_port"]]
            assert allocated.payload["worker_id"] == "media-b" and not any(port_free(p) for p in ports)

            killed = time.monotonic()
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            # Another node takes over the SIP address (a restart, a floating IP).
            await start_service(stack, "signaling_b", "signaling", sip_port=stack.sip_port, sip_tls_port=0, t1=0.1)

            lost = await stack.wait_event("lost", timeout=30)
            freed = time.monotonic() - killed
            assert lost.call_id == answered.call_id and lost.payload["node"] == "sig-victim"
            assert all(port_free(p) for p in ports)
            print(f"ports of the call freed {freed:.1f} s after SIGKILL of its signaling node")

            await finish(c, tmp_path, "carrier")  # its BYE was refused: SIPp counts a failed call
            log = "".join(p.read_text() for p in tmp_path.glob("carrier_call_*_messages.log"))
            bye_answer = log[log.index("BYE sip:"):]
            assert "SIP/2.0 481" in bye_answer, bye_answer[-1500:]
        finally:
            victim.kill()
            victim.wait()
            if pbx is not None and pbx.returncode is None:
                pbx.kill()
                await pbx.wait()

        async with stack.http() as api:
            deadline = asyncio.get_running_loop().time() + 15
            while True:
                r = await api.get(f"/v1/calls/{lost.call_id}")
                if r.status_code == 200 and r.json()["result"]:
                    break
                assert asyncio.get_running_loop().time() < deadline, r.text
                await asyncio.sleep(0.1)
        record = r.json()
        assert (record["result"], record["reason"], record["node"]) == ("lost", "signaling node sig-victim lost",
                                                                        "sig-victim")
