"""RTCP reports over HEP: the media worker copies each sender/receiver report a peer sends
to the HEP collector as type 5 (RTCP as JSON), correlated by the call id, so Homer shows
the call's QoS beside its SIP."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest

from services.common import hep
from services.common.bus import Bus
from services.common.pcap import SipPacket, write_pcap
from services.media import packets as pk
from services.media.capture import rtcp_json
from services.media.main import Media
from services.media.settings import MediaSettings

from .conftest import MediaEnv


async def test_rtcp_reports_reach_the_hep_collector_with_the_call_id(bus: Bus, media_settings: MediaSettings) -> None:
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.setblocking(False)
    settings = MediaSettings(**(media_settings.model_dump(exclude={"port_min", "port_max"})
                                | {"port_min": media_settings.port_min, "port_max": media_settings.port_max,
                                   "hep_address": f"127.0.0.1:{collector.getsockname()[1]}",
                                   "hep_capture_id": 77}))
    wbus = await Bus.connect(settings.nats_url, "media-worker")
    worker = Media(wbus, settings)
    await worker.start()
    env = MediaEnv(bus, worker, settings)
    try:
        call = await env.setup_call("hep-rtcp-1", b_secure=True)
        sr = pk.RtcpSenderReport(0xAAAA, (1700000000 << 32) | (1 << 31), 8000, 50, 8000,
                                 [pk.ReportBlock(0x1234, fraction_lost=5, packets_lost=3, highest_sequence=99,
                                                 jitter=40)])
        call.carrier.rtcp.sendto(pk.serialize_rtcp([sr, pk.RtcpSdes([pk.SdesChunk(0xAAAA, [(1, b"c")])])]),
                                 ("127.0.0.1", call.alloc.a.rtcp_port))
        await call.client.recv(rtcp=True)  # relayed as before
        # SRTCP from the client: captured decrypted.
        rr = pk.RtcpReceiverReport(0xBBBB, [pk.ReportBlock(0x5678, packets_lost=1)])
        assert call.client_srtp is not None
        call.client.rtcp.sendto(call.client_srtp.protect_rtcp(pk.serialize_rtcp([rr])),
                                ("127.0.0.1", call.alloc.b.rtcp_port))
        await call.carrier.recv(rtcp=True)
        loop = asyncio.get_running_loop()
        got = [await asyncio.wait_for(loop.sock_recv(collector, 65535), 5) for _ in range(2)]
    finally:
        await worker.stop()
        await wbus.close()
        for p in env.peers:
            p.close()
        collector.close()
    first, second = (hep.decode(g) for g in got)
    for chunks in (first, second):
        assert chunks[hep.PROTO_TYPE] == bytes([hep.PROTO_RTCP_JSON])
        assert chunks[hep.CORRELATION_ID] == b"hep-rtcp-1"
        assert chunks[hep.CAPTURE_ID] == struct.pack("!I", 77)
    assert struct.unpack("!H", first[hep.SRC_PORT])[0] == call.carrier.rtcp_port
    assert struct.unpack("!H", first[hep.DST_PORT])[0] == call.alloc.a.rtcp_port
    report = json.loads(first[hep.PAYLOAD])
    assert report["type"] == 200 and report["ssrc"] == 0xAAAA
    assert report["sender_information"] == {"ntp_timestamp_sec": 1700000000, "ntp_timestamp_usec": 500000,
                                            "rtp_timestamp": 8000, "packets": 50, "octets": 8000}
    assert report["report_blocks"] == [{"source_ssrc": 0x1234, "fraction_lost": 5, "packets_lost": 3,
                                        "highest_seq_no": 99, "ia_jitter": 40, "lsr": 0, "dlsr": 0}]
    rr_json = json.loads(second[hep.PAYLOAD])
    assert rr_json["type"] == 201 and rr_json["ssrc"] == 0xBBBB and rr_json["report_blocks"][0]["packets_lost"] == 1


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (.ci/run installs it)")
def test_tshark_reads_the_rtcp_json(tmp_path: Path) -> None:
    payload = rtcp_json([pk.RtcpReceiverReport(0xBBBB, [pk.ReportBlock(0x5678, packets_lost=4)])])
    assert payload is not None
    packet = hep.encode(hep.HepPacket(("127.0.0.1", 40001), ("127.0.0.1", 20001), 1.0, payload,
                                      proto_type=hep.PROTO_RTCP_JSON, correlation_id="c-9"))
    pcap = tmp_path / "rtcp.pcap"
    write_pcap(pcap, [SipPacket(1.0, ("127.0.0.1", 40000), ("127.0.0.1", 9060), packet)])
    lua = Path(__file__).resolve().parents[2] / "interop" / "hep" / "hep3.lua"
    out = subprocess.run(["tshark", "-n", "-X", f"lua_script:{lua}", "-d", "udp.port==9060,hep3", "-r", str(pcap),
                          "-T", "fields", "-e", "hep3.proto_type", "-e", "hep3.correlation_id",
                          "-e", "json.member_with_value"], capture_output=True, text=True, timeout=60, check=True)
    proto, corr, members = out.stdout.strip().split("\t")
    assert (proto, corr) == ("5", "c-9")
    assert "packets_lost:4" in members and "type:201" in members
