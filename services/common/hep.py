"""HEP v3 (the Homer Encapsulation Protocol): a copy of each SIP message, with its addresses,
time and a correlation id, sent over UDP to a capture server (Homer, heplify-server) so
operators see our calls next to their Kamailio/OpenSIPS traffic.

`encode()` is sans-IO (bytes out, nothing else); `HepSender` is the thin asyncio edge. The
sender never waits: a datagram the kernel will not take, or a collector that is away (ICMP
port unreachable shows up as an error on the next send), is dropped and counted, so
capture can never slow a call.

Packet layout (HEP v3, sipcapture's HEP spec): "HEP3", a 16-bit total length, then chunks
of (vendor id 16, type id 16, length 16 including these 6 bytes, value), big endian.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import struct
from dataclasses import dataclass

from prometheus_client import Counter

log = logging.getLogger("switchboard.hep")

MAGIC = b"HEP3"

# Generic chunk types (vendor 0).
IP_FAMILY = 0x01
IP_PROTO = 0x02
SRC_IP4 = 0x03
DST_IP4 = 0x04
SRC_IP6 = 0x05
DST_IP6 = 0x06
SRC_PORT = 0x07
DST_PORT = 0x08
TS_SEC = 0x09
TS_USEC = 0x0A
PROTO_TYPE = 0x0B
CAPTURE_ID = 0x0C
AUTH_KEY = 0x0E
PAYLOAD = 0x0F
CORRELATION_ID = 0x11
NODE_NAME = 0x13

AF_INET, AF_INET6 = 2, 10
IPPROTO_TCP, IPPROTO_UDP = 6, 17
# Payload types: 1 = SIP; 5 = an RTCP report as JSON (what captagent sends and Homer charts).
PROTO_SIP = 1
PROTO_RTCP_JSON = 5

HEP_PACKETS = Counter("switchboard_hep_packets_total", "HEP packets to the capture server", ["outcome"])


@dataclass(frozen=True)
class HepPacket:
    src: tuple[str, int]
    dst: tuple[str, int]
    ts: float
    payload: bytes
    transport: str = "udp"
    """The message's own transport; TLS and WS count as TCP (HEP has IP protocol numbers)."""
    proto_type: int = PROTO_SIP
    capture_id: int = 0
    correlation_id: str = ""
    auth_key: str = ""
    node_name: str = ""


def _chunk(type_id: int, value: bytes) -> bytes:
    return struct.pack("!HHH", 0, type_id, 6 + len(value)) + value


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(host)
    except ValueError:  # a name or an empty host: keep the packet, with an unspecified address
        return ipaddress.IPv4Address(0)


def encode(p: HepPacket) -> bytes:
    src, dst = _ip(p.src[0]), _ip(p.dst[0])
    if src.version != dst.version:  # one family per packet: map the IPv4 one into IPv6
        src, dst = (ipaddress.IPv6Address(f"::ffff:{a}") if a.version == 4 else a for a in (src, dst))
    v6 = src.version == 6
    sec = int(p.ts)
    usec = min(999_999, int(round((p.ts - sec) * 1e6)))
    chunks = [
        _chunk(IP_FAMILY, bytes([AF_INET6 if v6 else AF_INET])),
        _chunk(IP_PROTO, bytes([IPPROTO_UDP if p.transport.lower() == "udp" else IPPROTO_TCP])),
        _chunk(SRC_IP6 if v6 else SRC_IP4, src.packed),
        _chunk(DST_IP6 if v6 else DST_IP4, dst.packed),
        _chunk(SRC_PORT, struct.pack("!H", p.src[1] & 0xFFFF)),
        _chunk(DST_PORT, struct.pack("!H", p.dst[1] & 0xFFFF)),
        _chunk(TS_SEC, struct.pack("!I", sec)),
        _chunk(TS_USEC, struct.pack("!I", usec)),
        _chunk(PROTO_TYPE, bytes([p.proto_type])),
        _chunk(CAPTURE_ID, struct.pack("!I", p.capture_id & 0xFFFFFFFF)),
    ]
    if p.auth_key:
        chunks.append(_chunk(AUTH_KEY, p.auth_key.encode()))
    if p.correlation_id:
        chunks.append(_chunk(CORRELATION_ID, p.correlation_id.encode()))
    if p.node_name:
        chunks.append(_chunk(NODE_NAME, p.node_name.encode()))
    chunks.append(_chunk(PAYLOAD, p.payload))
    body = b"".join(chunks)
    if 6 + len(body) > 0xFFFF:
        raise ValueError("HEP packet longer than 65535 bytes")
    return MAGIC + struct.pack("!H", 6 + len(body)) + body


def decode(data: bytes) -> dict[int, bytes]:
    """Chunk type -> value of a HEP v3 packet (vendor 0 chunks; for tests and tools)."""
    if data[:4] != MAGIC or len(data) < 6:
        raise ValueError("not a HEP3 packet")
    (total,) = struct.unpack("!H", data[4:6])
    if total != len(data):
        raise ValueError(f"HEP3 length {total} but {len(data)} bytes")
    out: dict[int, bytes] = {}
    i = 6
    while i < total:
        vendor, type_id, length = struct.unpack("!HHH", data[i:i + 6])
        if length < 6 or i + length > total:
            raise ValueError(f"bad HEP3 chunk length {length} at {i}")
        if vendor == 0:
            out[type_id] = data[i + 6:i + length]
        i += length
    return out


def parse_address(value: str) -> tuple[str, int]:
    """'homer:9060', '10.0.0.5:9060' or '[2001:db8::1]:9060' -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"HEP address {value!r} is not host:port")
    return host.strip("[]"), int(port)


class _Protocol(asyncio.DatagramProtocol):
    def error_received(self, exc: Exception) -> None:
        # The collector's port is closed (ICMP unreachable): that packet is gone, count it.
        HEP_PACKETS.labels("dropped").inc()


class HepSender:
    """Sends HEP packets to one collector over UDP, never blocking the caller."""

    def __init__(self, address: str, *, capture_id: int = 0, auth_key: str = "", node_name: str = "") -> None:
        self.address = parse_address(address)
        self.capture_id = capture_id
        self.auth_key = auth_key
        self.node_name = node_name
        self.transport: asyncio.DatagramTransport | None = None
        self.sent = 0
        self.dropped = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(_Protocol, remote_addr=self.address)
        except OSError as e:  # no route or no such host: capture off, calls go on
            log.error("HEP collector %s:%d unreachable, capture off: %s", *self.address, e.strerror or e)
            return
        self.transport = transport
        log.info("HEP capture to %s:%d (capture id %d)", *self.address, self.capture_id)

    def send(self, src: tuple[str, int], dst: tuple[str, int], ts: float, payload: bytes, *,
             transport: str = "udp", correlation_id: str = "", proto_type: int = PROTO_SIP) -> bool:
        if self.transport is None or self.transport.is_closing():
            self._drop()
            return False
        try:
            data = encode(HepPacket(src, dst, ts, payload, transport, proto_type, self.capture_id,
                                    correlation_id, self.auth_key, self.node_name))
        except ValueError:
            self._drop()
            return False
        # A full socket buffer would make asyncio queue the datagram; past a little backlog
        # drop instead, so a stalled collector costs memory no more than it costs time.
        backlog = getattr(self.transport, "get_write_buffer_size", None)  # asyncio has it; typeshed not
        if backlog is not None and backlog() > 256 * 1024:
            self._drop()
            return False
        try:
            self.transport.sendto(data)
        except OSError:
            self._drop()
            return False
        self.sent += 1
        HEP_PACKETS.labels("sent").inc()
        return True

    def _drop(self) -> None:
        self.dropped += 1
        HEP_PACKETS.labels("dropped").inc()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
