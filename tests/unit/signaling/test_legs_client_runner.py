"""The client leg's runner against a fake endpoint (no sockets): the machine's commands
become the SIP requests they should be — CANCEL on the ring timeout, ACK then BYE for a 2xx
that crossed our CANCEL, the next target's INVITE; each target's own media (SRTP or plain)
and a client behind a NAT."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any, cast

from proto.messages import MediaAllocation, MediaLeg, MediaUpdate, RoutingDecision, SipTarget, SrtpCrypto
from services.signaling.b2bua.client_leg import ClientLeg
from services.signaling.b2bua.context import LegContext
from services.signaling.b2bua.deadlines import Deadlines
from services.signaling.b2bua.policy import Result
from services.signaling.settings import SignalingSettings
from services.signaling.sip.headers import Reason
from services.signaling.sip.message import Request, Response, make_request, make_response
from services.signaling.sip.sdp import SdpRejection, answer_offer
from services.signaling.transport import Addr

A, B = "sip:100@127.0.0.1:5071", "sip:100@127.0.0.1:5072"


class FakeDialog:
    def __init__(self, handle: FakeHandle) -> None:
        self.handle = handle
        self.terminated = False

    def create_request(self, method: str, headers: Any = (), **_: Any) -> Request:
        return make_request(method, self.handle.original.uri, from_="<sip:a@b>", to="<sip:c@d>",
                            call_id=self.handle.original.call_id, cseq=2,
                            via="SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx", headers=headers)


class FakeHandle:
    """A ClientRequest: the test feeds its responses."""

    def __init__(self, ep: FakeEndpoint, request: Request) -> None:
        self.ep = ep
        self.original = self.request = request
        self.responses: list[Response] = []
        self.queue: asyncio.Queue[Response | None] = asyncio.Queue()
        self.done = False
        self.error: str | None = None
        self.attempts: list[tuple[Addr, str]] = []
        self.early_dialogs: list[Any] = []
        self.dialog: FakeDialog | None = None
        self.cancelled: Reason | None = None
        self.acked = False
        self.ack_dest: Addr | None = None
        self.target = Addr("udp", "127.0.0.1", int(str(request.uri).rsplit(":", 1)[1].split(";")[0]))
        self.contact = f"sip:pbx@127.0.0.1:{self.target.port}"

    def __aiter__(self) -> AsyncIterator[Response]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Response]:
        while (resp := await self.queue.get()) is not None:
            yield resp

    def respond(self, status: int, body: bytes = b"") -> None:
        resp = make_response(self.original, status, to_tag="callee", body=body,
                             content_type="application/sdp" if body else None)
        self.responses.append(resp)
        if 200 <= status < 300:
            self.dialog = FakeDialog(self)
            self.dialog.remote_target = self.contact
        self.queue.put_nowait(resp)
        if status >= 200:
            self.done = True
            self.queue.put_nowait(None)

    async def cancel(self, reason: Reason | None = None) -> None:
        self.cancelled = reason
        self.ep.log.append(("CANCEL", self.original.uri))
        self.ep.changed.set()

    async def ack(self, dest: Addr | None = None) -> None:
        self.acked = True
        self.ack_dest = dest
        self.ep.log.append(("ACK", self.original.uri))

    async def final(self) -> Response:
        return self.responses[-1]


class FakeEndpoint:
    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.invites: list[FakeHandle] = []
        self.changed = asyncio.Event()
        self.dests: list[tuple[str, Any]] = []

    async def locator(self, uri: str) -> list[Addr]:
        return [Addr("udp", "127.0.0.1", int(uri.rsplit(":", 1)[1]))]

    def create_request(self, method: str, uri: str, *, from_: str, to: str, transport: str, body: bytes,
                       content_type: str, headers: Any) -> Request:
        return make_request(method, uri, from_=from_, to=to, call_id=f"c{len(self.invites)}", cseq=1,
                            via="SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKy", headers=headers, body=body,
                            content_type=content_type)

    async def request(self, request: Request, candidates: Any = None, **_: Any) -> Any:
        self.log.append((request.method, str(request.uri)))
        if request.method != "INVITE":
            self.dests.append((request.method, candidates))
        if request.method == "INVITE":
            handle = FakeHandle(self, request)
            self.invites.append(handle)
            self.changed.set()
            return handle
        done = FakeHandle(self, request)
        done.respond(200)
        self.changed.set()
        return done

    async def next_invite(self, n: int) -> FakeHandle:
        while len(self.invites) < n:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 5.0)
        return self.invites[n - 1]

    async def until(self, entry: tuple[str, str]) -> None:
        while entry not in self.log:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 5.0)


class Peer:
    def __init__(self) -> None:
        self.answers: list[str] = []
        self.rings: list[int] = []
        self.ended: list[str] = []

    async def progress(self, status: int, early_media: bool) -> None:
        self.rings.append(status)

    async def answered(self, target: str, secure: bool) -> bool:
        self.answers.append(target)
        return True

    async def client_ended(self, reason: str) -> None:
        self.ended.append(reason)

    async def relay_info(self, request: Request) -> int:
        return 200


class Nothing:
    """Events, backends, directory: everything a leg tells the rest is accepted."""

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> None:
            return None

        def sync(*args: Any, **kwargs: Any) -> None:
            return None

        return sync if name in ("bind", "unbind") else call


class Media(Nothing):
    """The media worker: re-keys the B side (a new key each time) and keeps the updates."""

    def __init__(self) -> None:
        self.rekeys: list[bool] = []
        self.updates: list[MediaUpdate] = []

    async def rekey(self, worker_id: str, call_id: str, secure: bool) -> MediaLeg:
        self.rekeys.append(secure)
        n = len(self.rekeys)
        crypto = SrtpCrypto(key_salt_b64=base64.b64encode(bytes([n]) * 30).decode()) if secure else None
        return MediaLeg(address="127.0.0.1", port=4000, rtcp_port=4001, secure=secure, crypto=crypto)

    async def update(self, worker_id: str, update: MediaUpdate) -> None:
        self.updates.append(update)


def client_leg(ep: FakeEndpoint, ring_timeout: float, targets: list[SipTarget] | None = None,
               b: MediaLeg | None = None, nat: str = "auto") -> ClientLeg:
    leg = MediaLeg(address="127.0.0.1", port=4000, rtcp_port=4001)
    allocation = MediaAllocation(call_id="call", worker_id="w", region="us1", a=leg, b=b or leg)
    decision = RoutingDecision(ok=True, targets=targets or [SipTarget(uri=A), SipTarget(uri=B)],
                               ring_timeout=ring_timeout, nat=nat)  # type: ignore[arg-type]
    ctx = LegContext(endpoint=cast(Any, ep), backends=cast(Any, Media()), events=cast(Any, Nothing()),
                     settings=SignalingSettings(), bus=cast(Any, None), directory=cast(Any, Nothing()),
                     deadlines=Deadlines())
    return ClientLeg(ctx, "call", decision, allocation, None, None, Peer())


def answer_to(invite: FakeHandle) -> bytes:
    result = answer_offer(invite.original.body, "127.0.0.1", 5004)
    assert not isinstance(result, SdpRejection)
    return bytes(result.sdp)


async def test_ring_timeout_cancels_and_the_next_target_answers() -> None:
    ep = FakeEndpoint()
    leg = client_leg(ep, ring_timeout=0.05)
    run = asyncio.ensure_future(leg.run())
    first = await ep.next_invite(1)
    first.respond(180)
    await ep.until(("CANCEL", A))  # the ring timeout, from the one deadline task
    assert first.cancelled == Reason("SIP", 487, "ring timeout")
    first.respond(487)
    second = await ep.next_invite(2)
    assert str(second.original.uri) == B
    second.respond(200, answer_to(second))
    assert await asyncio.wait_for(run, 5.0) is None  # answered
    assert second.acked and cast(Peer, leg.peer).answers == [B]
    assert [m for m, _ in ep.log] == ["INVITE", "CANCEL", "INVITE", "ACK"]
    leg.ctx.deadlines.close()


async def test_a_2xx_that_crossed_the_carriers_cancel_is_acked_then_byed() -> None:
    ep = FakeEndpoint()
    leg = client_leg(ep, ring_timeout=30)
    run = asyncio.ensure_future(leg.run())
    first = await ep.next_invite(1)
    first.respond(180)
    await leg.cancel()
    assert first.cancelled == Reason("SIP", 487, "caller cancelled")
    first.respond(200, answer_to(first))
    attempts = await asyncio.wait_for(run, 5.0)
    assert attempts is not None and [a.result for a in attempts] == [Result.CANCELED]
    await ep.until(("BYE", A))
    assert [m for m, _ in ep.log] == ["INVITE", "CANCEL", "ACK", "BYE"]  # §15: ACK, then BYE
    assert len(ep.invites) == 1  # no other target after the carrier gave up
    assert cast(Peer, leg.peer).answers == []
    leg.ctx.deadlines.close()


async def test_ring_timeout_without_a_provisional_moves_on_at_once() -> None:
    """§9.1: no 1xx, no CANCEL on the wire yet (the endpoint holds it); the next target rings."""
    ep = FakeEndpoint()
    leg = client_leg(ep, ring_timeout=0.05)
    run = asyncio.ensure_future(leg.run())
    await ep.next_invite(1)
    second = await ep.next_invite(2)
    assert str(second.original.uri) == B
    second.respond(486)
    attempts = await asyncio.wait_for(run, 5.0)
    assert attempts is not None
    assert [(a.target, a.result) for a in attempts] == [(A, Result.UNREACHABLE), (B, Result.BUSY)]
    leg.ctx.deadlines.close()


def answer_from(invite: FakeHandle, address: str) -> bytes:
    """The client's answer, with `address` in its c= line."""
    crypto = invite.original.body and b"a=crypto" in invite.original.body
    result = answer_offer(invite.original.body, address, 5004, srtp_key=bytes(30) if crypto else None)
    assert not isinstance(result, SdpRejection)
    return bytes(result.sdp)


async def test_each_target_gets_its_own_media_sips_fails_then_sip_answers_with_plain_rtp() -> None:
    """A sips: target and a sip: one: the first INVITE offers SRTP with the allocation's
    key, the next one plain RTP (the worker's B side re-keyed), so the plain target that
    answers connects instead of the worker refusing an answer without crypto."""
    ep = FakeEndpoint()
    key = SrtpCrypto(key_salt_b64=base64.b64encode(bytes(range(30))).decode())
    secure_b = MediaLeg(address="127.0.0.1", port=4000, rtcp_port=4001, secure=True, crypto=key)
    # (The fake locator reads the port off the end: the TLS-ness is the target's secure_media.)
    sips, plain, sips2 = "sips:100@127.0.0.1:5071", "sip:100@127.0.0.1:5072", "sips:100@127.0.0.1:5073"
    leg = client_leg(ep, 30, [SipTarget(uri=sips, secure_media=True), SipTarget(uri=sips2, secure_media=True),
                              SipTarget(uri=plain)], b=secure_b)
    media = cast(Media, leg.ctx.backends)
    run = asyncio.ensure_future(leg.run())
    first = await ep.next_invite(1)
    assert b"RTP/SAVP" in first.original.body and key.key_salt_b64.encode() in first.original.body
    first.respond(503)
    second = await ep.next_invite(2)
    # Another SRTP target: a key of its own, not the one the first target saw.
    assert b"RTP/SAVP" in second.original.body and key.key_salt_b64.encode() not in second.original.body
    second.respond(480)
    third = await ep.next_invite(3)
    assert b"RTP/AVP" in third.original.body and b"a=crypto" not in third.original.body
    third.respond(200, answer_from(third, "198.51.100.9"))
    assert await asyncio.wait_for(run, 5.0) is None
    assert media.rekeys == [True, False]
    (update,) = media.updates
    assert update.remote_crypto is None and update.remote_address == "198.51.100.9"
    assert leg.allocation.b.secure is False
    leg.ctx.deadlines.close()


async def test_a_client_behind_nat_gets_its_media_latched_and_requests_at_its_source() -> None:
    """SDP and Contact say 192.168.77.10; the responses came from where we sent the INVITE:
    the worker is told to latch to that IP only, and ACK and BYE go there (not to the
    private Contact)."""
    ep = FakeEndpoint()
    leg = client_leg(ep, 30, [SipTarget(uri=A)])
    media = cast(Media, leg.ctx.backends)
    run = asyncio.ensure_future(leg.run())
    invite = await ep.next_invite(1)
    invite.contact = "sip:pbx@192.168.77.10:5060"
    invite.respond(200, answer_from(invite, "192.168.77.10"))
    assert await asyncio.wait_for(run, 5.0) is None
    (update,) = media.updates
    assert (update.remote_address, update.latch_host) == ("192.168.77.10", "127.0.0.1")
    assert invite.ack_dest == invite.target
    await leg.hang_up("done")
    await ep.until(("BYE", str(invite.original.uri)))
    assert ("BYE", invite.target) in ep.dests
    leg.ctx.deadlines.close()


async def test_nat_off_trusts_the_clients_sdp_and_contact() -> None:
    ep = FakeEndpoint()
    leg = client_leg(ep, 30, [SipTarget(uri=A)], nat="off")
    media = cast(Media, leg.ctx.backends)
    run = asyncio.ensure_future(leg.run())
    invite = await ep.next_invite(1)
    invite.contact = "sip:pbx@192.168.77.10:5060"
    invite.respond(200, answer_from(invite, "192.168.77.10"))
    assert await asyncio.wait_for(run, 5.0) is None
    assert media.updates[0].latch_host is None and invite.ack_dest is None
    leg.ctx.deadlines.close()


async def test_a_public_client_is_not_natted() -> None:
    """The SDP address is where the signaling comes from: plain RFC 4961 latching."""
    ep = FakeEndpoint()
    leg = client_leg(ep, 30, [SipTarget(uri=A)])
    media = cast(Media, leg.ctx.backends)
    run = asyncio.ensure_future(leg.run())
    invite = await ep.next_invite(1)
    invite.respond(200, answer_from(invite, "127.0.0.1"))
    assert await asyncio.wait_for(run, 5.0) is None
    assert media.updates[0].latch_host is None and invite.ack_dest is None
    leg.ctx.deadlines.close()


def secure_leg(ep: FakeEndpoint, **kw: Any) -> ClientLeg:
    key = SrtpCrypto(key_salt_b64=base64.b64encode(bytes(range(30))).decode())
    b = MediaLeg(address="127.0.0.1", port=4000, rtcp_port=4001, secure=True, crypto=key)
    return client_leg(ep, 30, [SipTarget(uri=A, secure_media=True)], b=b, **kw)


async def test_a_short_srtp_key_lifetime_ends_the_call_before_it_runs_out() -> None:
    """The answer's key lives 2^6 packets (1.28 s at 20 ms): the call is ended (BYE to the
    client, the carrier's side told) before the key may no longer be used (RFC 4568 §6.1)."""
    ep = FakeEndpoint()
    leg = secure_leg(ep)
    run = asyncio.ensure_future(leg.run())
    invite = await ep.next_invite(1)
    body = answer_from(invite, "127.0.0.1")
    key = base64.b64encode(bytes(30)).decode().encode()
    invite.respond(200, body.replace(b"inline:" + key, b"inline:" + key + b"|2^6"))
    assert await asyncio.wait_for(run, 5.0) is None
    update = cast(Media, leg.ctx.backends).updates[0]
    assert update.remote_crypto is not None  # the lifetime did not make the answer unusable
    await ep.until(("BYE", A))
    assert cast(Peer, leg.peer).ended == ["SRTP key lifetime reached"]
    leg.ctx.deadlines.close()


async def test_a_long_srtp_key_lifetime_changes_nothing() -> None:
    ep = FakeEndpoint()
    leg = secure_leg(ep)
    run = asyncio.ensure_future(leg.run())
    invite = await ep.next_invite(1)
    key = base64.b64encode(bytes(30)).decode().encode()
    invite.respond(200, answer_from(invite, "127.0.0.1").replace(b"inline:" + key, b"inline:" + key + b"|2^31"))
    assert await asyncio.wait_for(run, 5.0) is None
    await asyncio.sleep(0.05)
    assert ("BYE", A) not in ep.log and cast(Peer, leg.peer).ended == []
    leg.ctx.deadlines.close()


async def test_an_answer_with_an_mki_fails_the_attempt_with_a_clear_reason() -> None:
    ep = FakeEndpoint()
    leg = secure_leg(ep)
    run = asyncio.ensure_future(leg.run())
    invite = await ep.next_invite(1)
    key = base64.b64encode(bytes(30)).decode().encode()
    invite.respond(200, answer_from(invite, "127.0.0.1").replace(b"inline:" + key, b"inline:" + key + b"|2^31|1:4"))
    attempts = await asyncio.wait_for(run, 5.0)
    assert attempts is not None and attempts[-1].result == Result.MEDIA_FAILED and attempts[-1].status == 488
    assert "MKI is not supported" in attempts[-1].reason
    leg.ctx.deadlines.close()
