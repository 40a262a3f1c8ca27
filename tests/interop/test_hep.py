"""HEP v3 to a capture server (Homer): what Switchboard sends decodes in tshark.

Debian's tshark 4.0 has no HEP dissector, so tests/interop/hep/hep3.lua (ours) decodes the
HEP chunks and hands the payload to tshark's own SIP dissector: the SIP fields the tests read
(sip.Method, sip.Call-ID, sip.Status-Code) are Wireshark's parse of what we sent."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from services.common import hep
from services.common.pcap import SipPacket, write_pcap
from tests.helpers.sipp import NUMBER, client, finish
from tests.helpers.sipp import media_carrier as carrier
from tests.helpers.stack import running_stack, udp_free_port

LUA = Path(__file__).with_name("hep") / "hep3.lua"
FIELDS = ("hep3.correlation_id", "hep3.capture_id", "hep3.src_ip", "hep3.src_port", "hep3.dst_ip",
          "hep3.dst_port", "hep3.ip_proto", "hep3.proto_type", "sip.Method", "sip.Status-Code", "sip.Call-ID")

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (.ci/run installs it)"),
    pytest.mark.timeout(90),
]


def tshark_fields(pcap: Path, port: int) -> list[dict[str, str]]:
    """Each packet's fields as tshark decodes them (one dict a packet)."""
    cmd = ["tshark", "-n", "-X", f"lua_script:{LUA}", "-d", f"udp.port=={port},hep3", "-r", str(pcap),
           "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"]
    for name in FIELDS:
        cmd += ["-e", name]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    return [dict(zip(FIELDS, line.split("\t"), strict=True)) for line in out.splitlines() if line.strip()]


INVITE = (b"INVITE sip:100@10.0.0.9:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
          b"From: <sip:+15550001111@10.0.0.1>;tag=1\r\nTo: <sip:100@10.0.0.9>\r\nCall-ID: abc@10.0.0.1\r\n"
          b"CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


def test_encoded_packets_decode_in_tshark(tmp_path: Path) -> None:
    packets = [
        hep.encode(hep.HepPacket(("10.0.0.1", 5060), ("10.0.0.9", 5070), 1700000000.25, INVITE,
                                 capture_id=2001, correlation_id="call-1")),
        hep.encode(hep.HepPacket(("2001:db8::1", 5061), ("2001:db8::2", 40000), 1700000000.5,
                                 b"SIP/2.0 180 Ringing\r\nCall-ID: abc@10.0.0.1\r\nCSeq: 1 INVITE\r\n"
                                 b"Via: SIP/2.0/TLS 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
                                 b"To: <sip:c@d>;tag=2\r\nContent-Length: 0\r\n\r\n",
                                 transport="tls", capture_id=7, correlation_id="call-1")),
    ]
    pcap = tmp_path / "hep.pcap"
    write_pcap(pcap, [SipPacket(1700000000.0 + i, ("127.0.0.1", 40001), ("127.0.0.1", 9060), p)
                      for i, p in enumerate(packets)])
    invite, ringing = tshark_fields(pcap, 9060)
    assert invite["hep3.correlation_id"] == "call-1" and invite["hep3.capture_id"] == "2001"
    assert (invite["hep3.src_ip"], invite["hep3.src_port"]) == ("10.0.0.1", "5060")
    assert (invite["hep3.dst_ip"], invite["hep3.dst_port"]) == ("10.0.0.9", "5070")
    assert invite["hep3.ip_proto"] == "17" and invite["hep3.proto_type"] == "1"
    assert invite["sip.Method"] == "INVITE" and invite["sip.Call-ID"] == "abc@10.0.0.1"
    assert ringing["sip.Status-Code"] == "180" and ringing["hep3.ip_proto"] == "6"
    assert ringing["hep3.capture_id"] == "7"
    # Our own decoder agrees, chunk by chunk.
    chunks = hep.decode(packets[1])
    assert chunks[hep.SRC_IP6] == socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    assert chunks[hep.TS_SEC] == (1700000000).to_bytes(4, "big")
    assert chunks[hep.TS_USEC] == (500000).to_bytes(4, "big")


async def test_sender_drops_and_counts_when_no_collector_listens() -> None:
    port = udp_free_port()  # nothing listens there: the kernel answers ICMP port unreachable
    sender = hep.HepSender(f"127.0.0.1:{port}")
    await sender.start()
    try:
        for _ in range(20):
            sender.send(("127.0.0.1", 1), ("127.0.0.1", 2), 0.0, INVITE)
            await asyncio.sleep(0)  # let the loop see the ICMP errors
        assert sender.sent + sender.dropped == 20
    finally:
        sender.close()
    # No socket at all (closed): a drop, never an exception into the call.
    assert sender.send(("127.0.0.1", 1), ("127.0.0.1", 2), 0.0, INVITE) is False


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed (.ci/run installs sip-tester)")
async def test_a_sipp_call_decodes_in_tshark_with_both_legs_under_one_correlation_id(tmp_path: Path) -> None:
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.setblocking(False)
    hep_port = collector.getsockname()[1]
    received: list[bytes] = []
    try:
        async with running_stack(tmp_path, signaling={"hep_address": f"127.0.0.1:{hep_port}",
                                                      "hep_capture_id": 4242}) as stack:
            client_proc, client_port = await client(tmp_path)
            await stack.provision(NUMBER, [{"uri": f"sip:100@127.0.0.1:{client_port}", "username": "alice",
                                            "password": "s3cret"}])
            carrier_proc = await carrier(stack, tmp_path, udp_free_port(), hold_ms=300)
            assert await finish(carrier_proc, tmp_path, "carrier") == 0
            assert await finish(client_proc, tmp_path, "client") == 0
            ended = await stack.wait_event("ended")
            sip_events = [e for e in await stack.call_events(ended.call_id) if e.kind in ("sip_in", "sip_out")]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while len(received) < len(sip_events) and loop.time() < deadline:
                try:
                    received.append(collector.recv(65535))
                except BlockingIOError:
                    await asyncio.sleep(0.05)
    finally:
        collector.close()

    pcap = tmp_path / "hep.pcap"
    write_pcap(pcap, [SipPacket(float(i), ("127.0.0.1", 40000), ("127.0.0.1", hep_port), d)
                      for i, d in enumerate(received)])
    rows = [r for r in tshark_fields(pcap, hep_port) if r["hep3.correlation_id"] == ended.call_id]
    # Every SIP message of the call's timeline was copied to the collector, in and out.
    assert len(rows) == len(sip_events), (len(rows), len(sip_events))
    assert {r["hep3.capture_id"] for r in rows} == {"4242"}
    # Both legs: two SIP Call-IDs (the carrier's and ours to the client) under one correlation id.
    call_ids = {r["sip.Call-ID"] for r in rows}
    assert len(call_ids) == 2, call_ids
    invites = [r for r in rows if r["sip.Method"] == "INVITE"]
    assert {r["sip.Call-ID"] for r in invites} == call_ids
    assert "401" in {r["sip.Status-Code"] for r in rows}
    client_side = {r["hep3.dst_port"] for r in rows if r["sip.Method"] == "INVITE"} | {
        r["hep3.src_port"] for r in rows if r["sip.Method"] == "INVITE"}
    assert str(client_port) in client_side and str(stack.sip_port) in client_side
