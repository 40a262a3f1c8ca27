"""SipEndpoint over real loopback sockets: two endpoints, or an endpoint and a raw socket.

Timers are shortened (T1 = 10 ms) so timeouts and retransmissions happen quickly; no test
asserts on timing.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from services.signaling.endpoint import IncomingRequest, SipEndpoint, redact
from services.signaling.sip.headers import Reason
from services.signaling.sip.message import Request, Response, make_request, parse_message
from services.signaling.sip.transaction import Timers
from services.signaling.transport import Addr

FAST = Timers(t1=0.01, t2=0.04, t4=0.05, d=0.1)


def uac_invite(ep: SipEndpoint, target: Addr) -> Request:
    return ep.create_request(
        "INVITE",
        f"sip:bob@{target.hostport};transport={target.transport}",
        from_='"Alice" <sip:alice@example.org>',
        to="<sip:bob@example.com>",
        transport=target.transport,
        body=b"v=0\r\n",
        content_type="application/sdp",
    )


class Uas:
    """A UAS endpoint whose behaviour per method is a coroutine set by the test."""

    def __init__(self, **kwargs: object) -> None:
        self.seen: list[IncomingRequest] = []
        self.invite_behaviour = self.answer
        self.ep = SipEndpoint(on_request=self.on_request, timers=FAST, **kwargs)  # type: ignore[arg-type]

    async def answer(self, incoming: IncomingRequest) -> None:
        incoming.respond(180)
        await asyncio.sleep(0.01)
        incoming.respond(200, body=b"v=0\r\n", content_type="application/sdp")

    async def on_request(self, incoming: IncomingRequest) -> None:
        self.seen.append(incoming)
        if incoming.method == "INVITE":
            await self.invite_behaviour(incoming)
        elif incoming.method in ("BYE", "OPTIONS", "INFO"):
            incoming.respond(200)


@pytest.fixture
async def pair():
    uas = Uas()
    uac_in: list[tuple[object, Addr]] = []
    uac_out: list[tuple[object, Addr]] = []
    uac = SipEndpoint(
        timers=FAST,
        on_message_in=lambda m, a: uac_in.append((m, a)),
        on_message_out=lambda m, a: uac_out.append((m, a)),
    )
    yield uas, uac, uac_in, uac_out
    await uac.close()
    await uas.ep.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_call_setup_and_teardown(pair, transport: str) -> None:
    uas, uac, uac_in, uac_out = pair
    target = await uas.ep.listen(transport, "127.0.0.1", 0)
    await uac.listen(transport, "127.0.0.1", 0)
    call = await uac.request(uac_invite(uac, target), target)
    statuses = [r.status async for r in call]
    assert statuses == [100, 180, 200]
    assert call.dialog is not None and call.dialog.state.value == "confirmed"
    # Via: our transport, sent-by and rport (RFC 3581 §3).
    via = call.request.top_via
    assert via.transport == transport.upper() and via.rport_requested and via.port is not None
    # The UAS stamped received/rport on what it got (RFC 3581 §4).
    got = uas.seen[0].request.top_via
    assert got.received == "127.0.0.1" and (transport != "udp" or got.rport == via.port)
    await call.ack()
    await asyncio.sleep(0.05)
    assert [i.method for i in uas.seen] == ["INVITE", "ACK"]
    assert uas.seen[1].dialog is uas.seen[0].dialog  # the ACK found its dialog
    bye = await uac.request(call.dialog.create_request("BYE"), target)
    assert (await bye.final()).status == 200
    assert len(uac.dialogs) == 0 and len(uas.ep.dialogs) == 0
    assert [getattr(m, "method", None) for m, _ in uac_out] == ["INVITE", "ACK", "BYE"]
    assert all(isinstance(m, Response) for m, _ in uac_in)


async def test_failover_on_connection_refused_and_timeout(pair) -> None:
    uas, uac, _, _ = pair
    good = await uas.ep.listen("udp", "127.0.0.1", 0)
    await uac.listen("udp", "127.0.0.1", 0)
    refused = Addr("tcp", "127.0.0.1", _closed_port())
    silent_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent_sock.bind(("127.0.0.1", 0))  # receives, never answers: Timer B
    silent = Addr("udp", "127.0.0.1", silent_sock.getsockname()[1])
    try:
        call = await uac.request(uac_invite(uac, good), [refused, silent, good])
        final = await call.final()
        assert final.status == 200 and call.target == good
        assert [(a, why) for a, why in call.attempts] == [
            (refused, "connection refused"),
            (silent, "timeout"),
        ]
        await call.ack()
    finally:
        silent_sock.close()


async def test_all_candidates_fail_gives_local_408(pair) -> None:
    _, uac, _, _ = pair
    await uac.listen("udp", "127.0.0.1", 0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        target = Addr("udp", "127.0.0.1", sock.getsockname()[1])
        opts = uac.create_request("OPTIONS", f"sip:{target.hostport}", from_="<sip:a@x>", to="<sip:b@y>")
        call = await uac.request(opts, target)
        final = await call.final()
        assert final.status == 408 and call.error == "timeout"
    finally:
        sock.close()


async def test_failover_on_503(pair) -> None:
    uas, uac, _, _ = pair
    busy = Uas()

    async def unavailable(incoming: IncomingRequest) -> None:
        incoming.respond(503, headers=[("Retry-After", "5")])

    busy.invite_behaviour = unavailable
    first = await busy.ep.listen("udp", "127.0.0.1", 0)
    second = await uas.ep.listen("udp", "127.0.0.1", 0)
    await uac.listen("udp", "127.0.0.1", 0)
    try:
        call = await uac.request(uac_invite(uac, first), [first, second])
        assert [r.status async for r in call][-1] == 200
        assert call.attempts == [(first, "503")]
        await call.ack()
    finally:
        await busy.ep.close()


async def test_cancel_on_ring_timeout(pair) -> None:
    uas, uac, _, _ = pair
    cancelled = asyncio.Event()

    async def ring_forever(incoming: IncomingRequest) -> None:
        incoming.respond(180)
        await incoming.cancelled.wait()
        cancelled.set()

    uas.invite_behaviour = ring_forever
    target = await uas.ep.listen("udp", "127.0.0.1", 0)
    await uac.listen("udp", "127.0.0.1", 0)
    call = await uac.request(uac_invite(uac, target), target)
    async for response in call:
        if response.status == 180:
            await call.cancel(Reason("SIP", 480, "ring timeout"))
    assert call.final_response is not None and call.final_response.status == 487
    await asyncio.wait_for(cancelled.wait(), 5)
    assert call.dialog is None


async def test_cancel_before_any_provisional_is_held(pair) -> None:
    uas, uac, _, _ = pair
    target = await uas.ep.listen("udp", "127.0.0.1", 0)
    await uac.listen("udp", "127.0.0.1", 0)

    async def slow(incoming: IncomingRequest) -> None:
        await incoming.cancelled.wait()

    uas.invite_behaviour = slow
    call = await uac.request(uac_invite(uac, target), target)
    await call.cancel()  # before the 100 Trying arrives: sent after it (§9.1)
    assert (await call.final()).status == 487


async def test_in_dialog_request_for_unknown_dialog_gets_481(pair) -> None:
    uas, uac, _, _ = pair
    target = await uas.ep.listen("udp", "127.0.0.1", 0)
    await uac.listen("udp", "127.0.0.1", 0)
    bye = uac.create_request("BYE", f"sip:bob@{target.hostport}", from_="<sip:a@x>", to="<sip:b@y>;tag=gone")
    call = await uac.request(bye, target)
    assert (await call.final()).status == 481
    assert uas.seen == []  # answered before the TU


async def test_2xx_retransmitted_until_ack_and_stray_ack(pair) -> None:
    uas, _, _, _ = pair
    target = await uas.ep.listen("udp", "127.0.0.1", 0)
    raw = await RawPeer.open()
    try:
        invite = make_request(
            "INVITE",
            f"sip:bob@{target.hostport}",
            from_="<sip:raw@127.0.0.1>;tag=rawtag",
            to="<sip:bob@127.0.0.1>",
            call_id="raw-call",
            cseq=7,
            via=f"SIP/2.0/UDP 127.0.0.1:{raw.port};branch=z9hG4bKraw1;rport",
            contact=f"<sip:raw@127.0.0.1:{raw.port}>",
        )
        raw.send(invite, target)
        oks = [await raw.expect(200) for _ in range(3)]  # 2xx retransmitted (§13.3.1.4)
        ok = oks[0]
        assert ok.top_via.received == "127.0.0.1" and ok.top_via.rport == raw.port
        assert ok.headers.get("Contact") is not None and ok.to.tag
        ack = make_request(
            "ACK",
            ok.contacts[0].uri.__str__(),
            from_="<sip:raw@127.0.0.1>;tag=rawtag",
            to=ok.headers.get("To") or "",
            call_id="raw-call",
            cseq=7,
            via=f"SIP/2.0/UDP 127.0.0.1:{raw.port};branch=z9hG4bKraw2;rport",
        )
        raw.send(ack, target)
        await asyncio.sleep(0.3)
        raw.drain()
        await asyncio.sleep(0.3)
        assert [m for m in raw.drain() if isinstance(m, Response) and m.status == 200] == []
        assert [i.method for i in uas.seen] == ["INVITE", "ACK"]
    finally:
        raw.close()


async def test_malformed_request_gets_400_and_garbage_is_counted(pair) -> None:
    uas, _, _, _ = pair
    target = await uas.ep.listen("udp", "127.0.0.1", 0)
    raw = await RawPeer.open()
    try:
        bad = (
            "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{raw.port};branch=z9hG4bKbad;rport\r\n"
            "From: <sip:raw@127.0.0.1>;tag=x\r\nTo: <sip:bob@127.0.0.1>\r\n"
            "Call-ID: bad-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"  # no Max-Forwards
        ).encode()
        raw.transport.sendto(bad, (target.host, target.port))
        response = await raw.expect(400)
        assert "Max-Forwards" in response.reason
        raw.transport.sendto(b"\x00\x01garbage\r\n\r\n", (target.host, target.port))
        await asyncio.sleep(0.1)
        assert uas.ep.stats["malformed_answered"] == 1 and uas.ep.stats["malformed_dropped"] == 1
        assert uas.seen == []
    finally:
        raw.close()


def test_redact_credentials() -> None:
    req = make_request(
        "INVITE",
        "sip:bob@example.com",
        from_="<sip:a@x>;tag=1",
        to="<sip:b@y>",
        call_id="c",
        cseq=1,
        via="SIP/2.0/UDP h;branch=z9hG4bKx",
        headers=[
            (
                "Authorization",
                'Digest username="alice", realm="r", nonce="n", uri="sip:b@y", response="6629fae49393a05397450978507c4ef1"',
            ),
            ("Proxy-Authorization", "Basic YWxpY2U6c2VjcmV0"),
        ],
    )
    out = redact(req)
    assert 'response="<redacted>"' in out.headers.get("Authorization")
    assert 'username="alice"' in out.headers.get("Authorization")
    assert out.headers.get("Proxy-Authorization") == "Basic <redacted>"
    assert "6629fae4" in req.headers.get("Authorization")  # the original is untouched
    assert b"6629fae4" not in bytes(out) and b"YWxpY2U6" not in bytes(out)


# ---------------------------------------------------------------------------- helpers


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class RawPeer(asyncio.DatagramProtocol):
    """A bare UDP socket speaking SIP by hand."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Request | Response] = asyncio.Queue()

    @classmethod
    async def open(cls) -> RawPeer:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(cls, local_addr=("127.0.0.1", 0))
        proto.transport = transport
        proto.port = transport.get_extra_info("sockname")[1]
        return proto

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.queue.put_nowait(parse_message(data))

    def send(self, msg: Request | Response, dest: Addr) -> None:
        self.transport.sendto(bytes(msg), (dest.host, dest.port))

    async def expect(self, status: int) -> Response:
        while True:
            msg = await asyncio.wait_for(self.queue.get(), 5)
            if isinstance(msg, Response) and msg.status == status:
                return msg

    def drain(self) -> list[Request | Response]:
        out = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out

    def close(self) -> None:
        self.transport.close()
