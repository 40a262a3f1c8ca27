"""Two real UDP peers exchange RTP/SRTP through a real worker driven over a real NATS."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable

import pytest

from proto import subjects
from proto.messages import (
    Ack,
    MediaAllocate,
    MediaAllocation,
    MediaDtmf,
    MediaLeg,
    MediaRekey,
    MediaRelease,
    MediaStats,
    MediaUpdate,
)
from services.common.errors import RemoteError
from services.media import packets as pk
from services.media.dtmf import DtmfDetector
from services.media.srtp import SrtpLeg, crypto_line, generate_key

REGION = "test-1"


async def recv_plain(peer, timeout: float = 2.0) -> pk.RtpPacket:  # type: ignore[no-untyped-def]
    data, _ = await peer.recv(timeout)
    return pk.RtpPacket.parse(data)


async def recv_srtp(call, timeout: float = 2.0) -> pk.RtpPacket:  # type: ignore[no-untyped-def]
    data, _ = await call.client.recv(timeout)
    return pk.RtpPacket.parse(call.client_srtp.unprotect(data))


async def release(media, call) -> MediaStats:  # type: ignore[no-untyped-def]
    return await media.bus.request(media.subject("release"), MediaRelease(call_id=call.call_id), MediaStats)


async def wait_for_event(call, kind: str, timeout: float = 3.0) -> None:  # type: ignore[no-untyped-def]
    async def poll() -> None:
        while not any(e.kind == kind for e in call.events):
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def test_allocation_legs(media) -> None:  # type: ignore[no-untyped-def]
    call = await media.setup_call("alloc-1")
    a, b = call.alloc.a, call.alloc.b
    assert call.alloc.worker_id == media.settings.node_id and call.alloc.region == REGION
    for leg in (a, b):
        assert leg.port % 2 == 0 and leg.rtcp_port == leg.port + 1
        assert media.settings.port_min <= leg.port < media.settings.port_max
        assert leg.address == media.settings.public_address
    assert a.port != b.port
    assert not a.secure and a.crypto is None
    assert b.secure and b.crypto is not None and b.crypto.suite == "AES_CM_128_HMAC_SHA1_80"
    again = await media.bus.request(subjects.media_allocate(REGION),
                                    MediaAllocate(call_id="alloc-1", region=REGION, b_secure=True), MediaAllocation)
    assert again.a.port == a.port and again.b.crypto == b.crypto  # a retry gets the same call
    other = await media.setup_call("alloc-2")
    assert {other.a_port, other.b_port}.isdisjoint({a.port, b.port})
    hb = media.worker.heartbeat()
    assert hb.load == 2 and hb.capacity == 20 // 2 and hb.service == "media"


async def test_audio_both_ways_rtp_to_srtp(media, make_rtp: Callable[..., bytes]) -> None:  # type: ignore[no-untyped-def]
    call = await media.setup_call("audio-1")
    audio = [os.urandom(160) for _ in range(10)]
    # Carrier (plain) -> client (SRTP).
    out_seqs, out_ts, ssrcs = [], [], set()
    for i, payload in enumerate(audio):
        call.carrier.send(make_rtp(1000 + i, 160 * i, 0x1111, payload), call.a_port)
        p = await recv_srtp(call)
        assert p.payload == payload and p.payload_type == 0
        out_seqs.append(p.sequence_number)
        out_ts.append(p.timestamp)
        ssrcs.add(p.ssrc)
    # Client (SRTP) -> carrier (plain).
    for i, payload in enumerate(audio):
        call.client.send(call.client_srtp.protect(make_rtp(7 + i, 999 + 160 * i, 0x2222, payload)), call.b_port)
        p = await recv_plain(call.carrier)
        assert p.payload == payload and p.payload_type == 0
    # The carrier changes SSRC and sequence mid-call: the client still sees one stream.
    call.carrier.send(make_rtp(40000, 5_000_000, 0x3333, audio[0]), call.a_port)
    p = await recv_srtp(call)
    assert p.payload == audio[0] and p.ssrc in ssrcs and p.marker
    out_seqs.append(p.sequence_number)
    assert len(ssrcs) == 1
    assert [(s - out_seqs[0]) & 0xFFFF for s in out_seqs] == list(range(11))
    assert p.timestamp - out_ts[-1] > 0
    stats = await release(media, call)
    assert stats.a.packets_in == 11 and stats.b.packets_out == 11
    assert stats.b.packets_in == 10 and stats.a.packets_out == 10
    assert stats.b.srtp_failures == 0 and stats.a.lost == 0 and stats.b.lost == 0
    assert stats.a.latched == f"127.0.0.1:{call.carrier.port}"
    assert stats.mos is not None and stats.mos > 4


async def test_forged_and_replayed_srtp_not_relayed(media, make_rtp: Callable[..., bytes]) -> None:  # type: ignore[no-untyped-def]
    call = await media.setup_call("forge-1")
    good = call.client_srtp.protect(make_rtp(1, 160, 0x42, b"A" * 160))
    call.client.send(good, call.b_port)
    assert (await recv_plain(call.carrier)).payload == b"A" * 160
    forger = SrtpLeg(local_key=generate_key())
    call.client.send(forger.protect(make_rtp(2, 320, 0x42, b"F" * 160)), call.b_port)  # wrong key
    call.client.send(good, call.b_port)  # replayed
    tampered = bytearray(call.client_srtp.protect(make_rtp(3, 480, 0x42, b"T" * 160)))
    tampered[20] ^= 0xFF
    call.client.send(bytes(tampered), call.b_port)  # bit flipped
    call.client.send(make_rtp(4, 640, 0x42, b"P" * 160), call.b_port)  # plain RTP on a secure leg
    call.client.send(call.client_srtp.protect(make_rtp(5, 800, 0x42, b"S" * 160)), call.b_port)  # sentinel
    assert (await recv_plain(call.carrier)).payload == b"S" * 160  # nothing forged came before it
    stats = await release(media, call)
    assert stats.b.srtp_failures == 4 and stats.a.packets_out == 2


async def test_stranger_cannot_move_the_latch(media, make_rtp: Callable[..., bytes]) -> None:  # type: ignore[no-untyped-def]
    call = await media.setup_call("latch-1")
    stranger = media.peer("127.0.0.2")  # another host: not the signalled 127.0.0.1
    call.carrier.send(make_rtp(1, 0, 1, b"c" * 160), call.a_port)
    await recv_srtp(call)
    stranger.send(make_rtp(50, 0, 9, b"x" * 160), call.a_port)  # plain leg: not the signalled host
    same_host = media.peer()  # on a secure leg even the signalled host needs the key
    same_host.send(SrtpLeg(generate_key()).protect(make_rtp(60, 0, 9, b"y" * 160)), call.b_port)
    call.carrier.send(make_rtp(2, 160, 1, b"d" * 160), call.a_port)
    assert (await recv_srtp(call)).payload == b"d" * 160  # the stranger's packet was not relayed
    # Answers still go to the latched carrier, not to the stranger.
    call.client.send(call.client_srtp.protect(make_rtp(1, 0, 2, b"e" * 160)), call.b_port)
    assert (await recv_plain(call.carrier)).payload == b"e" * 160
    # A packet the client's key authenticates from a new port (NAT rebinding) moves its latch.
    moved = media.peer()
    moved.send(call.client_srtp.protect(make_rtp(2, 160, 2, b"f" * 160)), call.b_port)
    assert (await recv_plain(call.carrier)).payload == b"f" * 160
    call.carrier.send(make_rtp(3, 320, 1, b"g" * 160), call.a_port)
    data, _ = await moved.recv()
    assert pk.RtpPacket.parse(call.client_srtp.unprotect(data)).payload == b"g" * 160
    stats = await release(media, call)
    assert stats.a.latched == f"127.0.0.1:{call.carrier.port}"
    assert stats.b.latched == f"127.0.0.1:{moved.port}"
    assert stats.a.dropped == 1 and stats.b.srtp_failures == 1


async def test_only_pcmu_and_telephone_event_pass(media, make_rtp: Callable[..., bytes]) -> None:  # type: ignore[no-untyped-def]
    call = await media.setup_call("pt-1", b_secure=False)
    for pt in (8, 18, 96, 13):
        call.carrier.send(make_rtp(pt, 0, 1, b"z" * 160, pt=pt), call.a_port)
    call.carrier.send(make_rtp(100, 0, 1, b"u" * 160), call.a_port)
    p = await recv_plain(call.client)
    assert p.payload == b"u" * 160 and p.payload_type == 0
    stats = await release(media, call)
    assert stats.a.dropped == 4


async def test_dtmf_detected_once_and_relayed_with_pt_rewrite(media, make_rtp: Callable[..., bytes]) -> None:  # type: ignore[no-untyped-def]
    call = await media.setup_call("dtmf-1")  # carrier PT 101, client PT 96
    seq = 100

    def digit(event: int, ts: int, same_seq_ends: bool) -> list[bytes]:
        nonlocal seq
        out = []
        for k, dur in enumerate((0, 320, 640, 960)):
            out.append(make_rtp(seq, ts, 0x77, bytes(pk.TelephoneEvent(event, False, 10, dur)), pt=101,
                                marker=k == 0))
            seq += 1
        for _ in range(3):  # SIPp repeats the end with one sequence number; others advance it
            out.append(make_rtp(seq, ts, 0x77, bytes(pk.TelephoneEvent(event, True, 10, 1280)), pt=101))
            if not same_seq_ends:
                seq += 1
        seq += 1
        return out

    sent = digit(5, 8000, True) + digit(11, 16000, False) + digit(5, 24000, False)
    for data in sent:
        call.carrier.send(data, call.a_port)
    got = [await recv_srtp(call) for _ in sent]
    assert all(p.payload_type == 96 for p in got)
    assert [pk.TelephoneEvent.parse(p.payload) for p in got] == [pk.TelephoneEvent.parse(d[12:]) for d in sent]
    assert got[0].marker and len({p.timestamp for p in got}) == 3
    # The client presses "2" back (PT 96), which the carrier gets as PT 101.
    for k, (dur, end) in enumerate(((160, False), (480, True), (480, True), (480, True))):
        call.client.send(call.client_srtp.protect(
            make_rtp(10 + k, 4000, 0x88, bytes(pk.TelephoneEvent(2, end, 10, dur)), pt=96)), call.b_port)
    back = [await recv_plain(call.carrier) for _ in range(4)]
    assert {p.payload_type for p in back} == {101}
    await release(media, call)
    await wait_for_event(call, "media_stats")
    dtmf = [e.payload for e in call.events if e.kind == "dtmf"]
    assert dtmf == [
        {"digit": "5", "leg": "a", "duration_ms": 160}, {"digit": "#", "leg": "a", "duration_ms": 160},
        {"digit": "5", "leg": "a", "duration_ms": 160}, {"digit": "2", "leg": "b", "duration_ms": 60},
    ]
    seqs = [e.seq for e in call.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_injection_produces_rfc4733_packets(media, make_rtp: Callable[..., bytes]) -> None:  # type: ignore[no-untyped-def]
    call = await media.setup_call("inject-1")
    call.carrier.send(make_rtp(1, 0, 5, b"\xff" * 160), call.a_port)
    audio = await recv_srtp(call)
    await media.bus.request(media.subject("dtmf"), MediaDtmf(call_id=call.call_id, leg="b", digits="1#",
                                                              duration_ms=60, gap_ms=40), Ack)
    got = [await recv_srtp(call) for _ in range(2 * (3 + 3))]  # per digit: 3 updates + 3 ends
    assert {p.payload_type for p in got} == {96} and {p.ssrc for p in got} == {audio.ssrc}
    assert [(p.sequence_number - audio.sequence_number) & 0xFFFF for p in got] == list(range(1, 13))
    events = [pk.TelephoneEvent.parse(p.payload) for p in got]
    for first in (0, 6):
        chunk, evs = got[first : first + 6], events[first : first + 6]
        assert [p.marker for p in chunk] == [True] + [False] * 5
        assert len({p.timestamp for p in chunk}) == 1
        assert [e.duration for e in evs] == [160, 320, 480, 480, 480, 480]
        assert [e.end for e in evs] == [False] * 3 + [True] * 3
    assert got[6].timestamp - got[0].timestamp >= (6 * 20 + 40) * 8 - 160
    d = DtmfDetector()
    digits = [x.digit for p, e in zip(got, events, strict=True) for x in d.feed(p.ssrc, p.timestamp, e)]
    assert digits == ["1", "#"]
    # The relayed stream continues after the injected packets.
    call.carrier.send(make_rtp(2, 160, 5, b"\xfe" * 160), call.a_port)
    after = await recv_srtp(call)
    assert after.sequence_number == (got[-1].sequence_number + 1) & 0xFFFF
    with pytest.raises(RemoteError) as e:
        await media.bus.request(media.subject("dtmf"), MediaDtmf(call_id=call.call_id, digits="12x"), Ack)
    assert e.value.code == 400
    await release(media, call)


async def test_rtcp_relayed_with_ssrc_mapping(media, make_rtp: Callable[..., bytes]) -> None:  # type: ignore[no-untyped-def]
    call = await media.setup_call("rtcp-1")
    call.carrier.send(make_rtp(1, 0, 0xAAAA, b"\xff" * 160), call.a_port)
    towards_client = await recv_srtp(call)
    call.client.send(call.client_srtp.protect(make_rtp(1, 0, 0xBBBB, b"\xff" * 160)), call.b_port)
    towards_carrier = await recv_plain(call.carrier)
    sr = pk.RtcpSenderReport(0xAAAA, 1, 0, 1, 160, [pk.ReportBlock(towards_carrier.ssrc, highest_sequence=0)])
    call.carrier.rtcp.sendto(pk.serialize_rtcp([sr, pk.RtcpSdes([pk.SdesChunk(0xAAAA, [(1, b"carrier")])])]),
                             ("127.0.0.1", call.alloc.a.rtcp_port))
    data, addr = await call.client.recv(rtcp=True)
    assert addr[1] == call.alloc.b.rtcp_port
    got = pk.parse_rtcp(call.client_srtp.unprotect_rtcp(data))
    assert isinstance(got[0], pk.RtcpSenderReport) and got[0].ssrc == towards_client.ssrc
    assert got[0].reports[0].ssrc == 0xBBBB  # about the stream the client sends
    assert isinstance(got[1], pk.RtcpSdes) and got[1].chunks[0].items == [(1, b"carrier")]
    # SRTCP from the client reaches the carrier in the clear.
    rr = pk.RtcpReceiverReport(0xBBBB, [pk.ReportBlock(towards_client.ssrc)])
    call.client.rtcp.sendto(call.client_srtp.protect_rtcp(pk.serialize_rtcp([rr])),
                            ("127.0.0.1", call.alloc.b.rtcp_port))
    data, _ = await call.carrier.recv(rtcp=True)
    (rr2,) = pk.parse_rtcp(data)
    assert isinstance(rr2, pk.RtcpReceiverReport) and rr2.ssrc == towards_carrier.ssrc
    assert rr2.reports[0].ssrc == 0xAAAA
    await release(media, call)


async def test_unknown_call_and_bad_requests(media) -> None:  # type: ignore[no-untyped-def]
    for verb, msg, reply in (
        ("update", MediaUpdate(call_id="nope", leg="a", remote_address="127.0.0.1", remote_port=4000), Ack),
        ("release", MediaRelease(call_id="nope"), MediaStats),
        ("dtmf", MediaDtmf(call_id="nope", digits="1"), Ack),
    ):
        with pytest.raises(RemoteError) as e:
            await media.bus.request(media.subject(verb), msg, reply)
        assert e.value.code == 404
    await media.bus.request(subjects.media_allocate(REGION),
                            MediaAllocate(call_id="bad-1", region=REGION, b_secure=True), MediaAllocation)
    for upd in (
        MediaUpdate(call_id="bad-1", leg="b", remote_address="127.0.0.1", remote_port=4000),  # no key
        MediaUpdate(call_id="bad-1", leg="a", remote_address="not-an-ip", remote_port=4000),
        MediaUpdate(call_id="bad-1", leg="b", remote_address="127.0.0.1", remote_port=4000,
                    remote_crypto=crypto_line(b"short")),
    ):
        with pytest.raises(RemoteError) as e:
            await media.bus.request(media.subject("update"), upd, Ack)
        assert e.value.code == 400


async def test_pool_exhaustion_is_503_and_release_frees(media) -> None:  # type: ignore[no-untyped-def]
    capacity = media.worker.pool.capacity // 2
    for i in range(capacity):
        await media.setup_call(f"full-{i}", b_secure=False)
    with pytest.raises(RemoteError) as e:
        await media.bus.request(subjects.media_allocate(REGION), MediaAllocate(call_id="one-too-many", region=REGION),
                                MediaAllocation)
    assert e.value.code == 503
    stats = await media.bus.request(media.subject("release"), MediaRelease(call_id="full-0"), MediaStats)
    assert stats.call_id == "full-0"
    with pytest.raises(RemoteError):  # quarantined for a moment
        await media.bus.request(subjects.media_allocate(REGION), MediaAllocate(call_id="again", region=REGION),
                                MediaAllocation)


async def test_ports_still_bound_are_skipped(media) -> None:  # type: ignore[no-untyped-def]
    """A port bound by someone else (e.g. the previous life of this worker) is never handed out."""
    held = []
    for p in range(media.settings.port_min, media.settings.port_min + 8):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((media.settings.media_host, p))
            held.append(s)
        except OSError:
            s.close()
    try:
        call = await media.setup_call("skip-1", b_secure=False)
        assert call.a_port >= media.settings.port_min + 8 and call.b_port >= media.settings.port_min + 8
    finally:
        for s in held:
            s.close()


async def test_a_timed_out_call_never_released_frees_its_ports(media) -> None:  # type: ignore[no-untyped-def]
    """Issue 14 item 4: the release was lost (NATS away when the call ended, its node gone):
    once the no-media timeout fired and `signaling_lost_after` more passed, the worker frees
    the ports itself and reports the call's media stats."""
    media.worker.settings.signaling_lost_after = 0.5
    call = await media.setup_call("leak-1", b_secure=False, timeout=0.2)
    await wait_for_event(call, "media_timeout")
    await wait_for_event(call, "media_stats", timeout=5.0)
    assert "leak-1" not in media.worker.relay.calls
    for port in (call.a_port, call.b_port):  # the sockets are closed
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((media.settings.media_host, port))
    assert not any(e.kind == "lost" for e in call.events)  # its node was never said to be gone


async def test_no_media_timeout_event(media, make_rtp: Callable[..., bytes]) -> None:  # type: ignore[no-untyped-def]
    call = await media.setup_call("quiet-1", b_secure=False, timeout=0.2)
    await wait_for_event(call, "media_timeout")
    ev = next(e for e in call.events if e.kind == "media_timeout")
    assert ev.service == "media" and ev.payload["seconds"] >= 0.2
    await release(media, call)


async def test_natted_client_latches_only_from_its_signaling_ip(media, make_rtp: Callable[..., bytes]) -> None:  # type: ignore[no-untyped-def]
    """The client's SDP says 192.168.77.10 (behind a NAT); its SIP came from 127.0.0.1. The
    worker takes media from any port of 127.0.0.1 and sends there; a stranger on another
    address (127.0.0.2), or the private address, never moves the latch."""
    call = await media.setup_call("nat-1", b_secure=False)
    await media.bus.request(media.subject("update"), MediaUpdate(
        call_id="nat-1", leg="b", remote_address="192.168.77.10", remote_port=call.client.port,
        telephone_event_pt=96, latch_host="127.0.0.1"), Ack)
    # Before any packet from it: sent to its signaling IP at the signalled port, never to the private one.
    call.carrier.send(make_rtp(1, 0, 1, b"a" * 160), call.a_port)
    assert (await recv_plain(call.client)).payload == b"a" * 160
    natted = media.peer()  # the NAT's mapping: same IP, another port
    natted.send(make_rtp(1, 0, 2, b"b" * 160), call.b_port)
    assert (await recv_plain(call.carrier)).payload == b"b" * 160
    stranger = media.peer("127.0.0.2")
    stranger.send(make_rtp(70, 0, 9, b"x" * 160), call.b_port)
    natted.send(make_rtp(2, 160, 2, b"c" * 160), call.b_port)
    assert (await recv_plain(call.carrier)).payload == b"c" * 160  # the stranger's was not relayed
    call.carrier.send(make_rtp(2, 160, 1, b"d" * 160), call.a_port)
    assert (await recv_plain(natted)).payload == b"d" * 160  # sent to the latch, not the stranger
    stats = await release(media, call)
    assert stats.b.nat and stats.b.latched == f"127.0.0.1:{natted.port}" and stats.b.dropped == 1
    assert not stats.a.nat


async def test_rekey_gives_the_client_leg_plain_rtp_or_a_new_key(media, make_rtp: Callable[..., bytes]) -> None:  # type: ignore[no-untyped-def]
    """A sips: target failed, a sip: one answers: the B side becomes plain RTP; another
    SRTP target would get a key of its own."""
    alloc = await media.bus.request(subjects.media_allocate(REGION),
                                    MediaAllocate(call_id="rekey-1", region=REGION, b_secure=True), MediaAllocation)
    assert alloc.b.secure and alloc.b.crypto is not None
    fresh = await media.bus.request(media.subject("rekey"), MediaRekey(call_id="rekey-1", leg="b", secure=True),
                                    MediaLeg)
    assert fresh.secure and fresh.crypto is not None and fresh.port == alloc.b.port
    assert fresh.crypto.key_salt_b64 != alloc.b.crypto.key_salt_b64
    plain = await media.bus.request(media.subject("rekey"), MediaRekey(call_id="rekey-1", leg="b", secure=False),
                                    MediaLeg)
    assert not plain.secure and plain.crypto is None
    carrier, client = media.peer(), media.peer()
    for leg, peer in (("a", carrier), ("b", client)):  # no crypto needed on B any more
        await media.bus.request(media.subject("update"), MediaUpdate(
            call_id="rekey-1", leg=leg, remote_address="127.0.0.1", remote_port=peer.port), Ack)
    carrier.send(make_rtp(1, 0, 1, b"a" * 160), alloc.a.port)
    assert (await recv_plain(client)).payload == b"a" * 160
    client.send(make_rtp(1, 0, 2, b"b" * 160), alloc.b.port)
    assert (await recv_plain(carrier)).payload == b"b" * 160
    await media.bus.request(media.subject("release"), MediaRelease(call_id="rekey-1"), MediaStats)
