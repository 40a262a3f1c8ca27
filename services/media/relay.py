"""The RTP/SRTP relay: calls, their two legs, the packet path.

Leg A is the carrier, leg B the customer's SIP client. Each leg owns an even RTP port and
the odd RTCP port above it; what arrives on one leg goes out of the other leg's sockets (so
each peer sees packets come from the port it sends to, RFC 4961 symmetric RTP).

The packet path runs inside the event loop's reader callback: read until the socket is
empty (bounded per wake-up), unprotect, check the source, filter the payload type,
rewrite the header for the other leg's output stream, protect, `sendto`. No task, no
future, no object per packet.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from proto.events import CallEventBody, Dtmf, MediaTimeout
from proto.messages import Direction, LegStats, MediaStats
from proto.nat import is_private

from . import packets as pk
from .dtmf import Digit, DtmfDetector, plan_dtmf
from .errors import BadRequest, SrtpError
from .pool import PortPool
from .srtp import PacketBuffer, SrtpLeg, generate_key
from .stats import StreamStats, mos

log = logging.getLogger("switchboard.media.relay")

PCMU = 0
CLOCK = 8000
READS_PER_WAKEUP = 64
"""Bounded so one flooded socket cannot starve the others (or the bus)."""
RECV_SIZE = 2048
_HDR = struct.Struct("!BBHII")
_unpack_hdr = _HDR.unpack_from
_pack_hdr = _HDR.pack
_pack_hdr_into = _HDR.pack_into

EmitFn = Callable[[str, CallEventBody], None]
# (call id, the peer's RTCP address, our RTCP port it came to, the parsed compound packet)
RtcpHook = Callable[[str, tuple[str, int], int, "list[pk.RtcpPacket]"], None]


def may_latch(*, secure: bool, authenticated: bool, source: tuple[str, int], signalled_host: str | None,
              nat_host: str | None = None) -> bool:
    """Symmetric RTP (RFC 4961) with a guard against hijacking: on a secure leg only a
    source whose packet passed SRTP authentication (and the replay check) may move the
    latch; on a plain leg only the address signalled in the peer's SDP (any port, for NAT
    port rewriting). A peer found behind a NAT (`nat_host`, its signaling source IP) may
    latch only from that IP or its public signalled one (an SBC's separate media address),
    on either kind of leg: nothing from any other IP."""
    if nat_host is not None and source[0] != nat_host and source[0] != signalled_host:
        return False
    if secure:
        return authenticated
    if nat_host is not None:
        return True
    return signalled_host is not None and source[0] == signalled_host


def bind_pair(host: str, port: int, buffer: int = 0) -> tuple[socket.socket, socket.socket] | None:
    """Bind RTP on `port` and RTCP on `port + 1`, or None if either is taken. No
    SO_REUSEADDR: a port still bound by a previous life of this worker stays taken."""
    socks: list[socket.socket] = []
    try:
        for p in (port, port + 1):
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(s)
            if buffer:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer)
            s.setblocking(False)
            s.bind((host, p))
    except OSError:
        for s in socks:
            s.close()
        return None
    return socks[0], socks[1]


class Leg:
    """One side of a call: our sockets, the peer's address and key, its stats, and the
    state of the RTP stream we send to that peer."""

    def __init__(self, name: str, port: int, socks: tuple[socket.socket, socket.socket], secure: bool,
                 now: float) -> None:
        self.name = name
        self.port = port
        self.rtcp_port = port + 1
        self.rtp_sock, self.rtcp_sock = socks
        self.secure = secure
        self.local_key = generate_key() if secure else None
        self.srtp = SrtpLeg(self.local_key) if self.local_key else None
        self.peer: Leg = self  # set by Call
        # The peer's side, from its SDP (MediaUpdate).
        self.remote: tuple[str, int] | None = None
        self.remote_rtcp: tuple[str, int] | None = None
        self.remote_host: str | None = None
        self.nat_host: str | None = None
        """Set when the peer is behind a NAT: the only IP it may latch from."""
        self.te_pt: int | None = 101
        self.direction: Direction = "sendrecv"
        self.sends = True
        """The peer sends to us (sendrecv/sendonly)."""
        self.receives = True
        """The peer wants our media (sendrecv/recvonly)."""
        self.updated = False
        self.held = 0  # packets from this leg not relayed: the other side is on hold
        self.latched: tuple[str, int] | None = None
        self.latched_rtcp: tuple[str, int] | None = None
        self.dest: tuple[str, int] | None = None
        self.dest_rtcp: tuple[str, int] | None = None
        # What arrives from the peer.
        self.packets_in = 0
        self.bytes_in = 0
        self.packets_out = 0
        self.bytes_out = 0
        self.srtp_failures = 0
        self.dropped = 0
        self.last_rx = 0.0
        self.stream = StreamStats()
        self.detector = DtmfDetector()
        # The stream we send to the peer: our own SSRC, sequence and timestamp, so the peer
        # sees one continuous stream across SSRC changes of the other side and injected DTMF.
        self.out_ssrc = secrets.randbits(32)
        self.src_ssrc: int | None = None
        self.last_in_seq = -1
        self.seq_off = 0
        self.ts_off = 0
        self.last_seq = secrets.randbits(16)
        self.clock_ts = secrets.randbits(32)
        self.clock_time = now
        self.inject_lock = asyncio.Lock()

    def clock_now(self, now: float) -> int:
        """Our output stream's RTP timestamp for wall time `now`."""
        return (self.clock_ts + int((now - self.clock_time) * CLOCK)) & 0xFFFFFFFF

    def _refresh_dest(self) -> None:
        self.dest = self.latched or self.remote
        self.dest_rtcp = self.latched_rtcp or self.remote_rtcp

    def stats(self) -> LegStats:
        return LegStats(
            packets_in=self.packets_in, packets_out=self.packets_out, bytes_in=self.bytes_in,
            bytes_out=self.bytes_out, lost=self.stream.lost, jitter_ms=round(self.stream.jitter_ms(), 3),
            srtp_failures=self.srtp_failures, dropped=self.dropped, held=self.held, direction=self.direction,
            latched=f"{self.latched[0]}:{self.latched[1]}" if self.latched else None,
            nat=self.nat_host is not None,
        )

    def rekey(self, secure: bool) -> None:
        """Fresh media for a new attempt: a new SRTP key (or none), and no peer yet."""
        self.secure = secure
        self.local_key = generate_key() if secure else None
        self.srtp = SrtpLeg(self.local_key) if self.local_key else None
        self.remote = self.remote_rtcp = None
        self.remote_host = self.nat_host = None
        self.latched = self.latched_rtcp = None
        self.updated = False
        self._refresh_dest()


class Call:
    def __init__(self, relay: Relay, call_id: str, a: Leg, b: Leg, timeout: float, now: float) -> None:
        self.relay = relay
        self.call_id = call_id
        self.a = a
        self.b = b
        a.peer, b.peer = b, a
        self.timeout = timeout
        self.created = now
        self.wall_created = time.time()
        self.active_since: float | None = None
        self.timed_out = False
        self.timed_out_at: float | None = None
        self.closed = False
        self.owner: str | None = None
        """The signaling node that owns the call (MediaAllocate.node_id)."""
        self.tasks: set[asyncio.Task[None]] = set()

    def leg(self, name: str) -> Leg:
        return self.a if name == "a" else self.b

    @property
    def on_hold(self) -> bool:
        return not (self.a.sends and self.a.receives and self.b.sends and self.b.receives)

    def stats(self, worker_id: str) -> MediaStats:
        a, b = self.a.stats(), self.b.stats()
        expected = self.a.stream.expected + self.b.stream.expected
        quality = None
        if expected:
            loss = (self.a.stream.lost + self.b.stream.lost) / expected
            quality = mos(loss, max(a.jitter_ms, b.jitter_ms))
        return MediaStats(call_id=self.call_id, worker_id=worker_id, a=a, b=b, mos=quality,
                          duration=round(time.time() - self.wall_created, 3))


class Relay:
    """Every call of one worker. `emit(call_id, body)` publishes call events."""

    def __init__(self, pool: PortPool, *, host: str, emit: EmitFn | None = None, socket_buffer: int = 0,
                 default_timeout: float = 30.0, on_rtcp_report: RtcpHook | None = None) -> None:
        self.pool = pool
        self.on_rtcp_report = on_rtcp_report
        """Sees every RTCP compound packet a peer sent (decrypted, parsed), for HEP capture."""
        self.host = host
        self.emit = emit or (lambda call_id, body: None)
        self.socket_buffer = socket_buffer
        self.default_timeout = default_timeout
        self.calls: dict[str, Call] = {}
        self.loop = asyncio.get_running_loop()
        self._pb = PacketBuffer(RECV_SIZE)
        """The packet path's one buffer (callbacks run one at a time, never across an await)."""
        self._errors_logged = 0
        self.idle = asyncio.Event()
        """Set while no call is up (a draining worker waits on it)."""
        self.idle.set()

    # --- lifecycle ---------------------------------------------------------------------

    def allocate(self, call_id: str, *, a_secure: bool = False, b_secure: bool = False,
                 timeout: float | None = None) -> Call:
        if call_id in self.calls:
            return self.calls[call_id]  # a retried request gets the same ports
        now = self.loop.time()
        legs: list[Leg] = []
        try:
            for name, secure in (("a", a_secure), ("b", b_secure)):
                port, socks = self.pool.allocate(lambda p: bind_pair(self.host, p, self.socket_buffer))
                legs.append(Leg(name, port, socks, secure, now))
        except BaseException:
            for leg in legs:
                self._close_leg(leg)
            raise
        call = Call(self, call_id, legs[0], legs[1], self.default_timeout if timeout is None else timeout, now)
        self.calls[call_id] = call
        self.idle.clear()
        for leg in legs:
            self.loop.add_reader(leg.rtp_sock.fileno(), self._on_rtp_readable, call, leg)
            self.loop.add_reader(leg.rtcp_sock.fileno(), self._on_rtcp_readable, call, leg)
        return call

    def update(self, call: Call, leg_name: str, *, address: str, port: int, rtcp_port: int | None,
               te_pt: int | None, remote_key: bytes | None, direction: Direction,
               latch_host: str | None = None) -> None:
        leg = call.leg(leg_name)
        if leg.srtp is not None:
            if remote_key is None:
                raise BadRequest("a secure leg needs the peer's crypto", {"leg": leg_name})
            leg.srtp.set_remote_key(remote_key)
        try:
            host = socket.getaddrinfo(address, port, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST)[0][4][0]
        except OSError as e:
            raise BadRequest("remote address must be a numeric IP", {"address": address}) from e
        nat_host = None
        if latch_host is not None:
            try:
                nat_host = socket.getaddrinfo(latch_host, port, type=socket.SOCK_DGRAM,
                                              flags=socket.AI_NUMERICHOST)[0][4][0]
            except OSError as e:
                raise BadRequest("latch host must be a numeric IP", {"latch_host": latch_host}) from e
            if is_private(host):
                # A private SDP address is not reachable (and may be one of ours): until the
                # first packet latches, send to the signaling source IP at the signalled
                # port, the guess most NATs (port-preserving) make right.
                host = nat_host
        if (host, port) != leg.remote or nat_host != leg.nat_host:
            # A new signalled address (re-INVITE, transfer): latch afresh (RFC 4961 §3).
            leg.latched = None
            leg.latched_rtcp = None
        leg.remote_host = host
        leg.nat_host = nat_host
        leg.remote = (host, port)
        leg.remote_rtcp = (host, rtcp_port or port + 1)
        leg.te_pt = te_pt
        leg.direction = direction
        leg.sends = direction in ("sendrecv", "sendonly")
        leg.receives = direction in ("sendrecv", "recvonly")
        leg.updated = True
        leg._refresh_dest()
        if call.active_since is None and call.a.updated and call.b.updated:
            call.active_since = self.loop.time()

    def rekey(self, call: Call, leg_name: str, *, secure: bool) -> Leg:
        """A new attempt on `leg_name` (the client leg's next target): its own SRTP key or
        plain RTP; what the previous attempt's peer sends is no longer latched or relayed."""
        leg = call.leg(leg_name)
        leg.rekey(secure)
        call.active_since = None
        return leg

    def release(self, call: Call) -> None:
        if call.closed:
            return
        call.closed = True
        for t in list(call.tasks):
            t.cancel()
        for leg in (call.a, call.b):
            self._flush_digits(call, leg)
            self._close_leg(leg)
        self.calls.pop(call.call_id, None)
        if not self.calls:
            self.idle.set()

    def _close_leg(self, leg: Leg) -> None:
        for s in (leg.rtp_sock, leg.rtcp_sock):
            try:
                self.loop.remove_reader(s.fileno())
            except (ValueError, OSError):
                pass
            s.close()
        self.pool.release(leg.port)

    def close(self) -> None:
        for call in list(self.calls.values()):
            self.release(call)

    # --- timers ------------------------------------------------------------------------

    def tick(self) -> None:
        """Called about once a second: no-media timeouts, DTMF whose end never came."""
        now = self.loop.time()
        for call in list(self.calls.values()):
            for leg in (call.a, call.b):
                if leg.detector.pending and now - leg.detector.last_seen > 1.0:
                    self._flush_digits(call, leg)
            if not call.timeout or call.active_since is None or call.on_hold:
                continue
            last = max(call.a.last_rx, call.b.last_rx, call.active_since)
            if now - last > call.timeout:
                if not call.timed_out:
                    call.timed_out = True
                    call.timed_out_at = now
                    self.emit(call.call_id, MediaTimeout(seconds=round(now - last, 1)))
            else:
                call.timed_out = False
                call.timed_out_at = None

    def orphans(self, lost: Callable[[str, float], float], idle: float,
                grace: float) -> list[tuple[Call, bool]]:
        """Calls nobody will release, with whether their node is lost: those whose
        signaling node is lost (``lost(node, now)``: seconds past its deadline, > 0) and
        that carried no RTP for ``idle`` seconds, or whose node has been lost for ``grace``
        more seconds whatever the media does; and those whose no-media timeout fired
        ``grace`` seconds ago without a release (it was lost with the bus, or the call)."""
        now = self.loop.time()
        out = []
        for call in self.calls.values():
            if call.timed_out_at is not None and now - call.timed_out_at >= grace:
                out.append((call, False))
                continue
            if call.owner is None or (overdue := lost(call.owner, now)) <= 0:
                continue
            last = max(call.a.last_rx, call.b.last_rx, call.created)
            if now - last >= idle or overdue >= grace:
                out.append((call, True))
        return out

    def _flush_digits(self, call: Call, leg: Leg) -> None:
        for d in leg.detector.flush():
            self._digit(call, leg, d)

    def _digit(self, call: Call, leg: Leg, d: Digit) -> None:
        self.emit(call.call_id, Dtmf(digit=d.digit, leg=leg.name, duration_ms=d.duration_ms))

    # --- packet path -------------------------------------------------------------------

    def _on_rtp_readable(self, call: Call, leg: Leg) -> None:
        # Read until the socket is empty (bounded): uvloop does not report a socket again
        # while it still holds data unless more arrives, so reading one datagram per
        # wake-up leaves a backlog that never drains (measured: 2 s queues at 1,000 calls).
        pb = self._pb
        recv = leg.rtp_sock.recvfrom_into
        now = self.loop.time()
        for _ in range(READS_PER_WAKEUP):
            try:
                n, addr = recv(pb.buf, RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error queued on the socket; read on
            try:
                self._rtp_in(call, leg, pb, n, addr, now)
            except Exception:
                self._bug(leg)

    def _on_rtcp_readable(self, call: Call, leg: Leg) -> None:
        recv = leg.rtcp_sock.recvfrom
        for _ in range(READS_PER_WAKEUP):
            try:
                data, addr = recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            try:
                self.on_rtcp(call, leg, data, addr)
            except Exception:
                self._bug(leg)

    def _bug(self, leg: Leg) -> None:
        leg.dropped += 1
        if self._errors_logged < 20:  # bounded: a flood of bad packets must not flood the log
            self._errors_logged += 1
            log.exception("packet handling failed")

    def on_rtp(self, call: Call, leg: Leg, data: bytes, addr: tuple[str, int], now: float) -> None:
        """One RTP packet from `leg`'s peer (what the socket reader does, from bytes)."""
        pb = self._pb
        pb.view[: len(data)] = data
        self._rtp_in(call, leg, pb, len(data), addr, now)

    def _rtp_in(self, call: Call, leg: Leg, pb: PacketBuffer, n: int, addr: tuple[str, int], now: float) -> None:
        """The packet path, in place in `pb`: unprotect, check the source, filter the
        payload type, rewrite the header for the other leg's stream, protect, send."""
        view = pb.view
        if n < 12 or view[0] & 0xC0 != 0x80:
            leg.dropped += 1
            return
        if 192 <= view[1] <= 223:  # RTCP on the RTP port (RFC 5761 §4)
            self.on_rtcp(call, leg, bytes(view[:n]), addr)
            return
        srtp = leg.srtp
        if srtp is not None:
            pb.length[0] = n
            if not srtp.unprotect_in(pb):
                leg.srtp_failures += 1  # forged, replayed or no key yet: never relayed
                return
            n = pb.length[0]
        if addr != leg.latched:
            if not may_latch(secure=srtp is not None, authenticated=True, source=addr,
                             signalled_host=leg.remote_host, nat_host=leg.nat_host):
                leg.dropped += 1
                return
            leg.latched = addr
            leg._refresh_dest()
        leg.packets_in += 1
        leg.bytes_in += n
        leg.last_rx = now
        b0, b1, seq, ts, ssrc = _unpack_hdr(view)
        pt = b1 & 0x7F
        peer = leg.peer
        if pt == PCMU:
            out_pt = PCMU
            leg.stream.update(ssrc, seq, ts, int(now * CLOCK))
        elif pt == leg.te_pt and leg.te_pt is not None:
            leg.stream.update(ssrc, seq, ts, int(now * CLOCK), audio=False)
            hlen = 12 + 4 * (b0 & 0x0F)
            if b0 & 0x10:  # skip a header extension (RFC 3550 §5.3.1)
                hlen += 4 + 4 * int.from_bytes(view[hlen + 2 : hlen + 4], "big")
            try:
                ev = pk.TelephoneEvent.parse(bytes(view[hlen:n]))
            except pk.PacketError:
                leg.dropped += 1
                return
            for d in leg.detector.feed(ssrc, ts, ev, now):
                self._digit(call, leg, d)
            if peer.te_pt is None:
                return  # the other peer did not negotiate telephone-event
            out_pt = peer.te_pt
        else:
            leg.dropped += 1  # only PCMU and telephone-event pass
            return
        dest = peer.dest
        if dest is None:
            return
        if not (leg.sends and peer.receives):
            leg.held += 1  # hold (RFC 3264 §8.4): nothing toward the side that does not want it
            return
        # The other leg's output stream (see Leg.__init__).
        marker = b1 & 0x80
        if ssrc != peer.src_ssrc:
            peer.seq_off = (peer.last_seq + 1 - seq) & 0xFFFF
            peer.ts_off = (peer.clock_now(now) - ts) & 0xFFFFFFFF
            peer.src_ssrc = ssrc
            if pt == PCMU:
                marker = 0x80  # a discontinuity: let the receiver resync (RFC 3550 §5.1)
        elif seq == peer.last_in_seq and peer.srtp is not None:
            # The same packet again (SIPp repeats RFC 4733 end packets with one seq): an SRTP
            # receiver's replay check would drop it, and libsrtp will not encrypt one index
            # twice, so it gets the next sequence number.
            peer.seq_off = (peer.seq_off + 1) & 0xFFFF
        peer.last_in_seq = seq
        oseq = (seq + peer.seq_off) & 0xFFFF
        ots = (ts + peer.ts_off) & 0xFFFFFFFF
        if ((oseq - peer.last_seq) & 0xFFFF) < 0x8000:
            peer.last_seq = oseq
        if pt == PCMU:
            peer.clock_ts = ots
            peer.clock_time = now
        # Only the fixed header changes; CSRCs, extension and payload stay where they are.
        _pack_hdr_into(pb.buf, 0, b0, marker | out_pt, oseq, ots, peer.out_ssrc)
        psrtp = peer.srtp
        if psrtp is not None:
            pb.length[0] = n
            if not psrtp.protect_in(pb):  # a late duplicate of an index already sent
                peer.dropped += 1
                return
            n = pb.length[0]
        try:
            peer.rtp_sock.sendto(view[:n], dest)
        except OSError:  # socket buffer full or unreachable: a lost packet, not an error
            peer.dropped += 1
            return
        peer.packets_out += 1
        peer.bytes_out += n

    def on_rtcp(self, call: Call, leg: Leg, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 8 or data[0] & 0xC0 != 0x80:
            leg.dropped += 1
            return
        if leg.srtp is not None:
            try:
                data = leg.srtp.unprotect_rtcp(data)
            except SrtpError:
                leg.srtp_failures += 1
                return
        if addr != leg.latched_rtcp and addr != leg.latched:
            if not may_latch(secure=leg.srtp is not None, authenticated=True, source=addr,
                             signalled_host=leg.remote_host, nat_host=leg.nat_host):
                leg.dropped += 1
                return
            leg.latched_rtcp = addr
            leg._refresh_dest()
        peer = leg.peer
        dest = peer.dest_rtcp
        if dest is None:
            return
        try:
            report = pk.parse_rtcp(data)
        except pk.PacketError:
            leg.dropped += 1
            return
        if self.on_rtcp_report is not None:
            try:
                self.on_rtcp_report(call.call_id, addr, leg.rtcp_port, report)
            except Exception:  # capture must never break the relay
                log.exception("RTCP report hook failed")
        out = pk.serialize_rtcp([self._rewrite_rtcp(p, leg, peer) for p in report])
        if peer.srtp is not None:
            out = peer.srtp.protect_rtcp(out)
        try:
            peer.rtcp_sock.sendto(out, dest)
        except OSError:
            pass

    @staticmethod
    def _rewrite_rtcp(p: pk.RtcpPacket, leg: Leg, peer: Leg) -> pk.RtcpPacket:
        """Map SSRCs and sequence numbers between the two sides' streams: the sender
        becomes our output SSRC towards the peer, and a report about the stream we send to
        `leg` becomes a report about the stream the peer sends (RFC 3550 §6.4)."""
        if isinstance(p, pk.RtcpSenderReport | pk.RtcpReceiverReport):
            p.ssrc = peer.out_ssrc
            if isinstance(p, pk.RtcpSenderReport):
                p.rtp_timestamp = (p.rtp_timestamp + peer.ts_off) & 0xFFFFFFFF
            for r in p.reports:
                if r.ssrc == leg.out_ssrc and leg.src_ssrc is not None:
                    r.ssrc = leg.src_ssrc
                    hi = r.highest_sequence
                    r.highest_sequence = (hi & 0xFFFF0000) | ((hi - leg.seq_off) & 0xFFFF)
        elif isinstance(p, pk.RtcpSdes):
            for c in p.chunks:
                c.ssrc = peer.out_ssrc
        elif isinstance(p, pk.RtcpBye):
            p.sources = [peer.out_ssrc for _ in p.sources]
        return p

    # --- DTMF injection ---------------------------------------------------------------

    def inject(self, call: Call, leg_name: str, digits: str, duration_ms: int = 160, gap_ms: int = 80) -> None:
        """Send RFC 4733 events for `digits` towards one leg's peer, in the background."""
        steps = plan_dtmf(digits, duration_ms, gap_ms)  # raises ValueError on a bad digit
        leg = call.leg(leg_name)
        task = self.loop.create_task(self._inject(call, leg, steps))
        call.tasks.add(task)
        task.add_done_callback(call.tasks.discard)

    async def _inject(self, call: Call, leg: Leg, steps: list[Any]) -> None:
        async with leg.inject_lock:  # one injection at a time per leg, in request order
            start = self.loop.time()
            base_ts = leg.clock_now(start)
            for step in steps:
                delay = start + step.at - self.loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if call.closed:
                    return
                self.send_event(leg, step.payload(), step.marker, (base_ts + step.ts_offset) & 0xFFFFFFFF)

    def send_event(self, leg: Leg, payload: bytes, marker: bool, ts: int) -> None:
        if leg.dest is None or leg.te_pt is None or not leg.receives:
            return
        # Take the next output sequence number and shift the relayed stream past it.
        oseq = (leg.last_seq + 1) & 0xFFFF
        leg.last_seq = oseq
        leg.seq_off = (leg.seq_off + 1) & 0xFFFF
        out = _pack_hdr(0x80, (0x80 if marker else 0) | leg.te_pt, oseq, ts, leg.out_ssrc) + payload
        if leg.srtp is not None:
            try:
                out = leg.srtp.protect(out)
            except SrtpError:
                leg.dropped += 1
                return
        try:
            leg.rtp_sock.sendto(out, leg.dest)
        except OSError:
            leg.dropped += 1
            return
        leg.packets_out += 1
        leg.bytes_out += len(out)
