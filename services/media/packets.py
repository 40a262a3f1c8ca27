"""RTP, RTCP and RFC 4733 telephone-event packets: sans-IO dataclasses.

Each has `parse(data)` (raises PacketError on malformed input) and `__bytes__`. The relay's
hot path does not build these objects (it reads the few header bytes it needs); they are for
DTMF, RTCP rewriting, tests and tools.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .errors import PacketError

RTP_VERSION = 2
RTP_HEADER = struct.Struct("!BBHII")

# RTCP packet types (RFC 3550 §12.1).
RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204


def is_rtcp(data: bytes) -> bool:
    """RTP/RTCP demultiplexing on one port (RFC 5761 §4): the second octet of RTCP is its
    packet type 192..223, which an RTP packet only has with a PT of 64..95 (not used)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


@dataclass
class RtpPacket:
    """RFC 3550 §5.1 fixed header, CSRCs, header extension (§5.3.1) and padding."""

    payload_type: int = 0
    sequence_number: int = 0
    timestamp: int = 0
    ssrc: int = 0
    marker: bool = False
    csrc: list[int] = field(default_factory=list)
    extension_profile: int | None = None
    """None when the X bit is clear."""
    extension: bytes = b""
    payload: bytes = b""
    padding_size: int = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        if len(data) < 12:
            raise PacketError(f"RTP packet too short: {len(data)} bytes")
        b0, b1, seq, ts, ssrc = RTP_HEADER.unpack_from(data)
        if b0 >> 6 != RTP_VERSION:
            raise PacketError(f"not RTP version 2: {b0 >> 6}")
        cc = b0 & 0x0F
        pos = 12 + 4 * cc
        if len(data) < pos:
            raise PacketError("RTP packet truncated in its CSRC list")
        csrc = list(struct.unpack_from(f"!{cc}I", data, 12))
        ext_profile = None
        ext = b""
        if b0 & 0x10:
            if len(data) < pos + 4:
                raise PacketError("RTP header extension truncated")
            ext_profile, ext_words = struct.unpack_from("!HH", data, pos)
            pos += 4
            ext = bytes(data[pos : pos + 4 * ext_words])
            if len(ext) != 4 * ext_words:
                raise PacketError("RTP header extension truncated")
            pos += 4 * ext_words
        end = len(data)
        padding = 0
        if b0 & 0x20:
            padding = data[-1]
            if padding == 0 or end - padding < pos:
                raise PacketError("bad RTP padding length")
            end -= padding
        return cls(
            payload_type=b1 & 0x7F, sequence_number=seq, timestamp=ts, ssrc=ssrc,
            marker=bool(b1 & 0x80), csrc=csrc, extension_profile=ext_profile, extension=ext,
            payload=bytes(data[pos:end]), padding_size=padding,
        )

    def __bytes__(self) -> bytes:
        b0 = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding_size:
            b0 |= 0x20
        if self.extension_profile is not None:
            b0 |= 0x10
        b1 = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        out = RTP_HEADER.pack(b0, b1, self.sequence_number & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc)
        out += b"".join(struct.pack("!I", c) for c in self.csrc)
        if self.extension_profile is not None:
            if len(self.extension) % 4:
                raise PacketError("RTP header extension must be a whole number of 32-bit words")
            out += struct.pack("!HH", self.extension_profile, len(self.extension) // 4) + self.extension
        out += self.payload
        if self.padding_size:
            out += b"\x00" * (self.padding_size - 1) + bytes([self.padding_size])
        return out


# --- RFC 4733 telephone-event -------------------------------------------------------

DTMF_DIGITS = "0123456789*#ABCD"
"""RFC 4733 §3.2: events 0-15 are the DTMF digits in this order."""


def digit_to_event(digit: str) -> int:
    d = digit.upper()
    i = DTMF_DIGITS.find(d)
    if i < 0 or len(d) != 1:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return i


def event_to_digit(event: int) -> str | None:
    return DTMF_DIGITS[event] if 0 <= event < len(DTMF_DIGITS) else None


@dataclass
class TelephoneEvent:
    """RFC 4733 §2.3 payload: event, E bit, volume (-dBm0), duration in timestamp units."""

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    @classmethod
    def parse(cls, data: bytes) -> TelephoneEvent:
        if len(data) < 4:
            raise PacketError(f"telephone-event payload too short: {len(data)} bytes")
        # Only the first event block counts; redundant blocks (RFC 2198) are not negotiated.
        event, flags, duration = struct.unpack_from("!BBH", data)
        # §2.3.3: the R bit is ignored by the receiver.
        return cls(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)

    def __bytes__(self) -> bytes:
        if not 0 <= self.volume <= 63:
            raise PacketError("telephone-event volume is 0..63")
        if not 0 <= self.duration <= 0xFFFF:
            raise PacketError("telephone-event duration is 16 bits")
        return struct.pack("!BBH", self.event, (0x80 if self.end else 0) | self.volume, self.duration)


# --- RTCP (RFC 3550 §6.4-6.6) --------------------------------------------------------


@dataclass
class ReportBlock:
    ssrc: int
    fraction_lost: int = 0
    packets_lost: int = 0
    """Cumulative, a signed 24-bit number (§6.4.1)."""
    highest_sequence: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0

    LEN = 24

    @classmethod
    def parse(cls, data: bytes, pos: int) -> ReportBlock:
        ssrc, lost_word, high, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", data, pos)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 1 << 24
        return cls(ssrc, lost_word >> 24, lost, high, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        lost = self.packets_lost & 0xFFFFFF
        return struct.pack(
            "!IIIIII", self.ssrc, (self.fraction_lost << 24) | lost, self.highest_sequence,
            self.jitter, self.lsr, self.dlsr,
        )


@dataclass
class RtcpSenderReport:
    ssrc: int
    ntp_timestamp: int = 0
    rtp_timestamp: int = 0
    packet_count: int = 0
    octet_count: int = 0
    reports: list[ReportBlock] = field(default_factory=list)
    packet_type = RTCP_SR

    def _body(self) -> tuple[int, bytes]:
        body = struct.pack("!IQIII", self.ssrc, self.ntp_timestamp, self.rtp_timestamp,
                           self.packet_count, self.octet_count)
        return len(self.reports), body + b"".join(bytes(r) for r in self.reports)


@dataclass
class RtcpReceiverReport:
    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)
    packet_type = RTCP_RR

    def _body(self) -> tuple[int, bytes]:
        return len(self.reports), struct.pack("!I", self.ssrc) + b"".join(bytes(r) for r in self.reports)


@dataclass
class SdesChunk:
    ssrc: int
    items: list[tuple[int, bytes]] = field(default_factory=list)
    """(type, value): 1 CNAME, 2 NAME, ... (§6.5)."""


@dataclass
class RtcpSdes:
    chunks: list[SdesChunk] = field(default_factory=list)
    packet_type = RTCP_SDES

    def _body(self) -> tuple[int, bytes]:
        out = b""
        for c in self.chunks:
            chunk = struct.pack("!I", c.ssrc)
            for t, v in c.items:
                chunk += struct.pack("!BB", t, len(v)) + v
            # A chunk's item list ends with a null octet and pads to 32 bits (§6.5).
            chunk += b"\x00" * (4 - len(chunk) % 4)
            out += chunk
        return len(self.chunks), out


@dataclass
class RtcpBye:
    sources: list[int] = field(default_factory=list)
    reason: bytes = b""
    packet_type = RTCP_BYE

    def _body(self) -> tuple[int, bytes]:
        out = b"".join(struct.pack("!I", s) for s in self.sources)
        if self.reason:
            r = struct.pack("!B", len(self.reason)) + self.reason
            out += r + b"\x00" * (-len(r) % 4)
        return len(self.sources), out


@dataclass
class RtcpOther:
    """APP, XR, feedback...: kept as bytes so a relay passes them on unchanged."""

    packet_type: int
    count: int = 0
    body: bytes = b""

    def _body(self) -> tuple[int, bytes]:
        return self.count, self.body


RtcpPacket = RtcpSenderReport | RtcpReceiverReport | RtcpSdes | RtcpBye | RtcpOther


def _rtcp_bytes(p: RtcpPacket) -> bytes:
    count, body = p._body()
    if len(body) % 4:
        raise PacketError("RTCP body must be a whole number of 32-bit words")
    return struct.pack("!BBH", (RTP_VERSION << 6) | count, p.packet_type, len(body) // 4) + body


def serialize_rtcp(packets: list[RtcpPacket]) -> bytes:
    """A compound RTCP packet (§6.1)."""
    return b"".join(_rtcp_bytes(p) for p in packets)


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP packet; raises PacketError on anything malformed."""
    out: list[RtcpPacket] = []
    pos = 0
    if len(data) < 4:
        raise PacketError("RTCP packet too short")
    while pos < len(data):
        if len(data) - pos < 4:
            raise PacketError("RTCP header truncated")
        b0, pt, words = struct.unpack_from("!BBH", data, pos)
        if b0 >> 6 != RTP_VERSION:
            raise PacketError(f"not RTCP version 2: {b0 >> 6}")
        end = pos + 4 + 4 * words
        if end > len(data):
            raise PacketError("RTCP length exceeds the datagram")
        count = b0 & 0x1F
        body_end = end
        if b0 & 0x20:  # padding, only allowed on the last packet (§6.4.1)
            pad = data[end - 1]
            if pad == 0 or end - pad < pos + 4:
                raise PacketError("bad RTCP padding")
            body_end = end - pad
        body = bytes(data[pos + 4 : body_end])
        out.append(_parse_one(pt, count, body))
        pos = end
    return out


def _parse_one(pt: int, count: int, body: bytes) -> RtcpPacket:
    try:
        if pt == RTCP_SR:
            ssrc, ntp, rtp_ts, pc, oc = struct.unpack_from("!IQIII", body)
            reports = [ReportBlock.parse(body, 24 + i * 24) for i in range(count)]
            return RtcpSenderReport(ssrc, ntp, rtp_ts, pc, oc, reports)
        if pt == RTCP_RR:
            (ssrc,) = struct.unpack_from("!I", body)
            return RtcpReceiverReport(ssrc, [ReportBlock.parse(body, 4 + i * 24) for i in range(count)])
        if pt == RTCP_SDES:
            chunks = []
            p = 0
            for _ in range(count):
                (ssrc,) = struct.unpack_from("!I", body, p)
                p += 4
                items = []
                while True:
                    t = body[p]
                    if t == 0:
                        p += 1
                        break
                    n = body[p + 1]
                    value = body[p + 2 : p + 2 + n]
                    if len(value) != n:
                        raise PacketError("SDES item truncated")
                    items.append((t, value))
                    p += 2 + n
                p += -p % 4
                chunks.append(SdesChunk(ssrc, items))
            return RtcpSdes(chunks)
        if pt == RTCP_BYE:
            sources = list(struct.unpack_from(f"!{count}I", body))
            reason = b""
            if len(body) > 4 * count:
                n = body[4 * count]
                reason = body[4 * count + 1 : 4 * count + 1 + n]
            return RtcpBye(sources, reason)
    except (struct.error, IndexError) as e:
        raise PacketError(f"RTCP packet type {pt} truncated") from e
    return RtcpOther(pt, count, body)
