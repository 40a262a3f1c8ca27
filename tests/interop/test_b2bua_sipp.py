"""SIPp as the carrier -> Switchboard (all four services) -> SIPp as the customer's SIP client.

The client challenges with 401 and checks our digest with SIPp's verifyauth; RTP sent by the
carrier reaches the client through the media worker, and the client's echo comes back."""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
from pathlib import Path

import pytest

from tests.helpers.sipp import NUMBER, client, finish
from tests.helpers.sipp import media_carrier as carrier
from tests.helpers.stack import running_stack, udp_free_port

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed (.ci/run installs sip-tester)"),
    pytest.mark.timeout(90),
]

def rtp(seq: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x1234ABCD) + payload


async def test_call_connects_through_challenge_with_two_way_audio(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        client_proc, client_port = await client(tmp_path)
        await stack.provision(NUMBER, [{"uri": f"sip:100@127.0.0.1:{client_port}", "username": "alice",
                                        "password": "s3cret"}], ring_timeout=15)
        media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        media.bind(("127.0.0.1", 0))
        media.setblocking(False)
        carrier_proc = await carrier(stack, tmp_path, media.getsockname()[1])

        allocated = await stack.wait_event("media_allocated")
        await stack.wait_event("answered")
        loop = asyncio.get_running_loop()
        sent = [bytes([i % 256]) * 160 for i in range(1, 26)]
        echoed: list[bytes] = []
        for i, payload in enumerate(sent):
            media.sendto(rtp(i + 1, payload), ("127.0.0.1", allocated.payload["a_port"]))
            await asyncio.sleep(0.02)
            while True:
                try:
                    data = media.recv(2048)
                except BlockingIOError:
                    break
                echoed.append(data[12:])
        deadline = loop.time() + 2
        while loop.time() < deadline and len(echoed) < len(sent):
            try:
                echoed.append((await loop.sock_recv(media, 2048))[12:])
            except BlockingIOError:
                await asyncio.sleep(0.02)
        media.close()

        assert await finish(carrier_proc, tmp_path, "carrier") == 0
        assert await finish(client_proc, tmp_path, "client") == 0
        ended = await stack.wait_event("ended")
        # The carrier's audio went to the client and came back, unchanged, through the worker.
        assert echoed, "no RTP came back to the carrier"
        assert set(echoed) <= set(sent) and len(echoed) >= len(sent) // 2

        call_id = allocated.call_id
        timeline = [e.kind for e in await stack.call_events(call_id) if e.kind not in ("sip_in", "sip_out")]
        for kind in ("received", "resolved", "media_allocated", "dialing", "challenged", "ringing", "answered", "ended"):
            assert kind in timeline, (kind, timeline)
        assert timeline.index("challenged") < timeline.index("answered") < timeline.index("ended")
        assert ended.payload["by"] == "caller"
        media_stats = ended.payload["media"]
        assert media_stats["a"]["packets_in"] >= len(sent) // 2 and media_stats["b"]["packets_in"] > 0
        # Every SIP message is in the timeline, with the digest response redacted.
        sip = [e for e in stack.events if e.call_id == call_id and e.kind in ("sip_in", "sip_out")]
        firsts = [e.payload["first_line"] for e in sip]
        assert any(f.startswith("SIP/2.0 401") for f in firsts)
        auth = [e.payload["message"] for e in sip if "Authorization: Digest" in e.payload["message"]]
        assert auth and all('response="<redacted>"' in m for m in auth)


def scrape(port: int) -> dict[str, float]:
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def test_metrics_count_the_call(tmp_path: Path) -> None:
    """/metrics on the signaling node's metrics port: the call is counted as completed,
    its SIP messages by method and status, the digest challenge, the post-dial delay."""
    from services.common.natsserver import free_port

    port = free_port()
    async with running_stack(tmp_path, signaling={"metrics_port": port}) as stack:
        client_proc, client_port = await client(tmp_path)
        await stack.provision(NUMBER, [{"uri": f"sip:100@127.0.0.1:{client_port}", "username": "alice",
                                        "password": "s3cret"}])
        before = await asyncio.to_thread(scrape, port)
        carrier_proc = await carrier(stack, tmp_path, udp_free_port(), hold_ms=300)
        assert await finish(carrier_proc, tmp_path, "carrier") == 0
        assert await finish(client_proc, tmp_path, "client") == 0
        await stack.wait_event("ended")
        after = await asyncio.to_thread(scrape, port)

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert delta('switchboard_calls_total{result="completed"}') == 1
    assert delta('switchboard_sip_messages_total{direction="in",message="INVITE",transport="udp"}') == 1
    assert delta('switchboard_sip_messages_total{direction="out",message="INVITE",transport="udp"}') == 2
    assert delta('switchboard_auth_challenges_total{status="401"}') == 1
    assert delta("switchboard_post_dial_delay_seconds_count") == 1
    assert after["switchboard_calls_in_progress"] == 0
