"""RTP, RTCP and telephone-event packets: round trips and the shared vectors."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from services.media import packets as pk
from services.media.errors import PacketError
from tests.helpers.testdata import SHARED_TESTDATA

TESTDATA = SHARED_TESTDATA
SIPP_PCAPS = Path("/usr/share/sip-tester")


def test_rtp_round_trip_plain() -> None:
    p = pk.RtpPacket(payload_type=0, sequence_number=0x1234, timestamp=0xDECAFBAD, ssrc=0xCAFEBABE,
                     payload=b"\xff" * 160)
    data = bytes(p)
    assert data[:12] == bytes.fromhex("80001234decafbadcafebabe")
    assert pk.RtpPacket.parse(data) == p


def test_rtp_round_trip_everything() -> None:
    p = pk.RtpPacket(payload_type=101, sequence_number=65535, timestamp=1, ssrc=2, marker=True,
                     csrc=[7, 8], extension_profile=0xBEDE, extension=b"\x10\xaa\x00\x00",
                     payload=b"abc", padding_size=5)
    data = bytes(p)
    assert data[0] == 0x80 | 0x20 | 0x10 | 2 and data[1] == 0x80 | 101
    assert len(data) == 12 + 8 + 4 + 4 + 3 + 5
    assert pk.RtpPacket.parse(data) == p


@pytest.mark.parametrize("data", [
    b"", b"\x80\x00" + b"\x00" * 9,  # short
    b"\x40" + b"\x00" * 11,  # version 1
    b"\x81" + b"\x00" * 11,  # CSRC count beyond the end
    b"\x90" + b"\x00" * 11 + b"\x00\x00\x00\x05",  # extension beyond the end
    b"\xa0" + b"\x00" * 11 + b"\x00\x00\x40",  # padding longer than the packet
])
def test_rtp_malformed(data: bytes) -> None:
    with pytest.raises(PacketError):
        pk.RtpPacket.parse(data)


# RFC 4733 payload vectors (rtp_vectors.md §1, computed table).
EVENT_VECTORS = [
    (1, False, 10, 160, "010a00a0"), (1, False, 10, 320, "010a0140"), (1, True, 10, 480, "018a01e0"),
    (10, False, 10, 400, "0a0a0190"), (11, True, 10, 800, "0b8a0320"), (12, False, 7, 160, "0c0700a0"),
    (15, True, 0, 1600, "0f800640"), (16, True, 10, 1000, "108a03e8"), (9, False, 63, 65535, "093fffff"),
]


@pytest.mark.parametrize(("event", "end", "volume", "duration", "hexed"), EVENT_VECTORS)
def test_telephone_event_vectors(event: int, end: bool, volume: int, duration: int, hexed: str) -> None:
    assert hexed[:2] + " " + hexed[2:4] in (TESTDATA / "rtp_vectors.md").read_text()
    ev = pk.TelephoneEvent(event, end, volume, duration)
    assert bytes(ev).hex() == hexed
    assert pk.TelephoneEvent.parse(bytes.fromhex(hexed)) == ev


def test_telephone_event_ignores_r_bit_and_rejects_short() -> None:
    assert pk.TelephoneEvent.parse(bytes.fromhex("05ca0320")) == pk.TelephoneEvent(5, True, 10, 800)
    with pytest.raises(PacketError):
        pk.TelephoneEvent.parse(b"\x05\x0a\x00")
    with pytest.raises(PacketError):
        bytes(pk.TelephoneEvent(1, volume=64))


def test_full_digit_five_packets() -> None:
    """rtp_vectors.md §1: digit 5, PT 101, SSRC cafebabe, ts 0x00010000."""
    start = bytes.fromhex("80e5123400010000cafebabe050a00a0")
    p = pk.RtpPacket.parse(start)
    assert (p.marker, p.payload_type, p.sequence_number, p.timestamp, p.ssrc) == (True, 101, 0x1234, 0x10000, 0xCAFEBABE)
    assert pk.TelephoneEvent.parse(p.payload) == pk.TelephoneEvent(5, False, 10, 160)
    assert bytes(p) == start
    end = pk.RtpPacket(101, 0x1236, 0x10000, 0xCAFEBABE, payload=bytes(pk.TelephoneEvent(5, True, 10, 800)))
    assert bytes(end).hex() == "80651236000100" + "00cafebabe058a0320"


def test_digit_mapping() -> None:
    assert [pk.digit_to_event(d) for d in "0129*#ABCDabcd"] == [0, 1, 2, 9, 10, 11, 12, 13, 14, 15, 12, 13, 14, 15]
    assert pk.event_to_digit(11) == "#" and pk.event_to_digit(16) is None
    with pytest.raises(ValueError):
        pk.digit_to_event("x")


def read_pcap_udp_payloads(path: Path) -> list[bytes]:
    """Minimal libpcap reader: Ethernet/IPv4/UDP payloads."""
    data = path.read_bytes()
    endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    pos, out = 24, []
    while pos + 16 <= len(data):
        incl = struct.unpack_from(endian + "I", data, pos + 8)[0]
        frame = data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        ihl = (frame[14] & 0x0F) * 4
        out.append(frame[14 + ihl + 8 :])
    return out


@pytest.mark.skipif(not (SIPP_PCAPS / "dtmf_2833_1.pcap").exists(), reason="sip-tester pcaps not installed")
def test_sipp_capture_parses_and_round_trips() -> None:
    payloads = read_pcap_udp_payloads(SIPP_PCAPS / "dtmf_2833_1.pcap")
    assert len(payloads) == 10
    events = []
    for raw in payloads:
        p = pk.RtpPacket.parse(raw)
        assert bytes(p) == raw and not pk.is_rtcp(raw)
        assert p.payload_type == 101 and p.timestamp == 13280
        events.append(pk.TelephoneEvent.parse(p.payload))
    assert [e.duration for e in events[:8]] == [0, 320, 640, 960, 1280, 1600, 1920, 2240]
    assert [e.end for e in events] == [False] * 7 + [True] * 3


def test_rtcp_compound_round_trip() -> None:
    rb = pk.ReportBlock(ssrc=0x11, fraction_lost=12, packets_lost=-3, highest_sequence=70000, jitter=55,
                        lsr=0xAABBCCDD, dlsr=99)
    compound = [
        pk.RtcpSenderReport(0xCAFEBABE, 0x0102030405060708, 1234, 50, 8000, [rb]),
        pk.RtcpSdes([pk.SdesChunk(0xCAFEBABE, [(1, b"user@host")])]),
        pk.RtcpReceiverReport(0x22, [rb, rb]),
        pk.RtcpBye([0xCAFEBABE], b"bye"),
        pk.RtcpOther(204, 1, b"\x00\x00\x00\x01name"),
    ]
    data = pk.serialize_rtcp(compound)
    assert pk.is_rtcp(data) and data[1] == 200
    assert pk.parse_rtcp(data) == compound


def test_rtcp_known_bytes() -> None:
    """The libsrtp RTCP plaintext (srtp_vectors.md §4): an SR header with a body of 0xab."""
    plain = bytes.fromhex("81c8000bcafebabe" + "ab" * 16)
    with pytest.raises(PacketError):  # length 11 words promises 44 bytes; only 24 are there
        pk.parse_rtcp(plain)
    rr = bytes.fromhex("80c90001cafebabe")
    assert pk.parse_rtcp(rr) == [pk.RtcpReceiverReport(0xCAFEBABE, [])]


@pytest.mark.parametrize("data", [b"\x80\xc8", b"\x40\xc9\x00\x01\x00\x00\x00\x00", b"\x81\xc9\x00\x01\x00\x00\x00\x00"])
def test_rtcp_malformed(data: bytes) -> None:
    with pytest.raises(PacketError):
        pk.parse_rtcp(data)


def test_demux() -> None:
    assert pk.is_rtcp(bytes.fromhex("80c90001cafebabe"))
    assert not pk.is_rtcp(bytes.fromhex("80001234decafbadcafebabe"))
    assert not pk.is_rtcp(bytes.fromhex("80e5123400010000cafebabe"))  # PCMU+M and PT 101+M
