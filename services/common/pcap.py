"""Write SIP messages as a pcap file (LINKTYPE_RAW: IPv4/IPv6 + UDP), so Wireshark,
tshark and sngrep can open a call's signaling. Messages that went over TCP or TLS are
written as UDP datagrams too: one message a packet is what these tools need to show a
call flow, and TLS payloads are only known to us in clear."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

LINKTYPE_RAW = 101


@dataclass(frozen=True)
class SipPacket:
    ts: float
    src: tuple[str, int]
    dst: tuple[str, int]
    data: bytes


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def _packet(p: SipPacket) -> bytes:
    src_ip, dst_ip = ipaddress.ip_address(p.src[0]), ipaddress.ip_address(p.dst[0])
    udp_len = 8 + len(p.data)
    udp = struct.pack("!HHHH", p.src[1], p.dst[1], udp_len, 0) + p.data
    if src_ip.version == 4 and dst_ip.version == 4:
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0,
                          src_ip.packed, dst_ip.packed)
        hdr = hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:]
        return hdr + udp
    s6 = src_ip if src_ip.version == 6 else ipaddress.IPv6Address(f"::ffff:{src_ip}")
    d6 = dst_ip if dst_ip.version == 6 else ipaddress.IPv6Address(f"::ffff:{dst_ip}")
    return struct.pack("!IHBB16s16s", 6 << 28, udp_len, 17, 64, s6.packed, d6.packed) + udp


def write_pcap(path: Path, packets: Iterable[SipPacket]) -> int:
    n = 0
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW))
        for p in packets:
            raw = _packet(p)
            sec = int(p.ts)
            f.write(struct.pack("<IIII", sec, int((p.ts - sec) * 1e6), len(raw), len(raw)))
            f.write(raw)
            n += 1
    return n


def split_hostport(value: str) -> tuple[str, int]:
    """'1.2.3.4:5060' or '[::1]:5060' -> (host, port)."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)
