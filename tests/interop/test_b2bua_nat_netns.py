"""A PBX behind a real NAT: a network namespace for the PBX (192.168.77.10) behind a router
namespace that masquerades it (nftables, random source ports) and forwards SIP port 5060 to
it. Switchboard listens on the router's "internet" side (198.18.0.1, RFC 2544 test space).
The PBX (SIPp) signals its private address; its RTP (a small sender/recorder in its
namespace) leaves through the NAT on a port the NAT picks. Needs root, `ip` and `nft`;
everything it makes is removed at the end."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.peers import needs_sipp
from tests.helpers.sipp import NUMBER, SCENARIOS, finish, media_carrier
from tests.helpers.stack import running_stack
from tests.helpers.tone import dominant
from tests.interop.test_b2bua_nat import talk

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90),
              pytest.mark.skipif(os.geteuid() != 0 or not (shutil.which("ip") and shutil.which("nft")),
                                 reason="needs root, ip and nft (nftables) for network namespaces")]

PUBLIC, ROUTER, PBX = "198.18.0.1", "198.18.0.2", "192.168.77.10"
PBX_SIP = 5070

RTP_PEER = r'''
import socket, struct, sys, time, math
dest, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("192.168.77.10", 0))
s.setblocking(False)
heard = bytearray()
def ulaw(x):
    sign = 0x80 if x < 0 else 0
    x = min(abs(x), 32635) + 132
    exp = max(0, x.bit_length() - 8)
    return ~(sign | (exp << 4) | ((x >> (exp + 3)) & 0x0F)) & 0xFF
frame = lambda i: bytes(ulaw(int(9000 * math.sin(2 * math.pi * 600 * (i * 160 + n) / 8000))) for n in range(160))
for i in range(125):
    s.sendto(struct.pack("!BBHII", 0x80, 0, i + 1, i * 160, 0xBEEF) + frame(i), (dest, port))
    time.sleep(0.02)
    while True:
        try:
            pkt = s.recv(2048)
        except BlockingIOError:
            break
        if pkt[1] & 0x7F == 0:
            heard += pkt[12:]
open(out, "wb").write(bytes(heard))
'''


def sh(*args: str, input: str | None = None) -> None:
    subprocess.run(args, check=True, input=input, text=True, capture_output=True)


@pytest.fixture
def natted_lan() -> Iterator[str]:
    """The PBX's namespace name, behind the router's NAT; torn down afterwards."""
    p = "sb" + uuid.uuid4().hex[:6]
    pbx, rtr = p + "pbx", p + "rtr"
    try:
        sh("ip", "netns", "add", pbx)
        sh("ip", "netns", "add", rtr)
        sh("ip", "link", "add", p + "a", "type", "veth", "peer", "name", p + "b")
        sh("ip", "link", "add", p + "c", "type", "veth", "peer", "name", p + "d")
        sh("ip", "link", "set", p + "a", "netns", pbx)
        sh("ip", "link", "set", p + "b", "netns", rtr)
        sh("ip", "link", "set", p + "c", "netns", rtr)
        sh("ip", "netns", "exec", pbx, "sh", "-c", f"ip link set lo up && ip addr add {PBX}/24 dev {p}a && "
           f"ip link set {p}a up && ip route add default via 192.168.77.1")
        sh("ip", "netns", "exec", rtr, "sh", "-c", f"ip link set lo up && ip addr add 192.168.77.1/24 dev {p}b && "
           f"ip link set {p}b up && ip addr add {ROUTER}/24 dev {p}c && ip link set {p}c up && "
           "sysctl -qw net.ipv4.ip_forward=1")
        sh("ip", "addr", "add", f"{PUBLIC}/24", "dev", p + "d")
        sh("ip", "link", "set", p + "d", "up")
        sh("ip", "netns", "exec", rtr, "nft", "-f", "-", input=f"""
table ip nat {{
  chain pre {{
    type nat hook prerouting priority dstnat;
    iifname "{p}c" udp dport 5060 dnat to {PBX}:{PBX_SIP}
  }}
  chain post {{
    type nat hook postrouting priority srcnat;
    oifname "{p}c" masquerade random
  }}
}}
""")
        yield pbx
    finally:
        for ns in (pbx, rtr):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", p + "d"], capture_output=True)


@needs_sipp
async def test_pbx_behind_a_real_nat_two_way_audio(tmp_path: Path, natted_lan: str) -> None:
    async with running_stack(tmp_path, signaling={"sip_host": "0.0.0.0", "public_address": PUBLIC},
                             media={"media_host": "0.0.0.0", "public_address": PUBLIC}) as stack:
        pbx = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", natted_lan, "sipp", "-sf", str(SCENARIOS / "client_answer.xml"), "-i", PBX,
            "-p", str(PBX_SIP), "-mp", "30000", "-m", "1", "-nostdin", "-timeout", "40s", "-timeout_error",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        await stack.provision(NUMBER, [{"uri": f"sip:100@{ROUTER}:5060"}], ring_timeout=15)
        carrier_media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        carrier_media.bind(("127.0.0.1", 0))
        carrier_media.setblocking(False)
        carrier = await media_carrier(stack, tmp_path, carrier_media.getsockname()[1], hold_ms=5000)
        allocated = await stack.wait_event("media_allocated")
        await stack.wait_event("answered")
        nat = await stack.wait_event("nat_detected", leg="b")
        assert nat.payload["sdp_address"] == PBX and nat.payload["source"] == f"{ROUTER}:5060"

        heard_file = tmp_path / "pbx-heard.ulaw"
        peer = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", natted_lan, sys.executable, "-c", RTP_PEER, PUBLIC, str(allocated.payload["b_port"]),
            str(heard_file))
        heard = {carrier_media: bytearray()}
        await talk([(carrier_media, ("127.0.0.1", allocated.payload["a_port"]), 1000.0)], heard, 2.5)
        carrier_media.close()
        assert await asyncio.wait_for(peer.wait(), 20) == 0
        assert await finish(carrier, tmp_path, "carrier") == 0
        assert await finish(pbx, tmp_path, "pbx") == 0  # ACK and BYE came through the NAT's SIP forward
        ended = await stack.wait_event("ended")

        pbx_heard = heard_file.read_bytes()
        assert len(heard[carrier_media]) > 8000 and len(pbx_heard) > 8000
        assert dominant(bytes(heard[carrier_media][1600:]), (600.0, 1000.0)) == 600
        assert dominant(pbx_heard[1600:], (600.0, 1000.0)) == 1000
        b = ended.payload["media"]["b"]
        assert b["nat"] is True and b["latched"].startswith(f"{ROUTER}:"), b
