"""One tracked call, from the carrier's side: the carrier's leg (A), routing, media, and the
client leg (B) — run here (`ClientLeg`) or by a node of the region whose media carries the
call (`RemoteClientLeg`).

The flow is DESIGN.md's: 100 Trying, trunk check, routing, region and media, then the client
leg's targets; the client's answer relayed to the carrier with the media worker's address,
and BYE from either side ending both. Every step is a `call.<id>.<kind>` event. The
carrier leg's state is `carrier_fsm.CarrierLegMachine`; this runs it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from proto import nat
from proto.events import (
    Answered,
    CallEventBody,
    Ended,
    Failed,
    Hold,
    MediaAllocated,
    MediaFailover,
    MediaRefresh,
    NatDetected,
    OriginatedRemotely,
    Received,
    Resolved,
    TargetSummary,
)
from proto.messages import MediaAllocation, Originate, RoutingDecision, RoutingRequest
from services.common.logging import call_context

from .. import metrics
from ..errors import CallSetupError
from ..sip.message import REASON_PHRASES, Request
from ..sip.sdp import (
    NegotiatedMedia,
    SdpRejection,
    SessionDescription,
    answer_offer,
    build_offer,
    parse_sdp,
    validate_answer,
)
from ..sip.uri import SipUri, parse_uri
from ..transport import Addr
from . import pbx
from .carrier_fsm import CarrierLegMachine, Do, Input, State
from .client_leg import ClientLeg
from .context import ClientLegHandle, DialogOwner, LegContext
from .helpers import (
    ALLOW,
    SDP,
    answer_refresh,
    bye_with_reason,
    media_update,
    media_warning,
    reason_header,
    send_info,
)
from .numbers import NotANumber, caller_of, tracking_number
from .policy import record_result
from .remote import RemoteClientLeg
from .runner import FollowUp, Runner
from .transfer import Transfer

if TYPE_CHECKING:
    from ..endpoint import IncomingRequest

log = logging.getLogger("switchboard.signaling.call")

MIN_SE = 90  # RFC 4028 §4: the smallest session interval we accept
In = Input


def _crash(e: Exception) -> tuple[int, str, int | None, list[tuple[str, str]]]:
    return (500, f"internal error: {type(e).__name__}", None, [])


def _setup_error(e: CallSetupError) -> tuple[int, str, int | None, list[tuple[str, str]]]:
    return (e.status, e.reason, e.retry_after, e.extra_headers)


class Call(Runner[Input, Do]):
    """The carrier's side of a call, and the LegPeer its client leg reports to."""

    def __init__(self, ctx: LegContext, call_id: str, incoming: IncomingRequest) -> None:
        super().__init__(ctx, CarrierLegMachine(max_duration=ctx.settings.max_call_duration))
        self.machine: CarrierLegMachine
        self.ep = ctx.endpoint
        self.backends = ctx.backends
        self.settings = ctx.settings
        self.id = call_id
        self.incoming = incoming
        self.invite = incoming.request
        self.sip_call_id = self.invite.call_id
        self.started = time.time()
        self.answered_at: float | None = None
        self.decision: RoutingDecision | None = None
        self.allocation: MediaAllocation | None = None
        self.media_lost = False  # its worker stopped heartbeating: nothing to release there
        self.carrier_offer: SessionDescription | None = None
        self._nat_reported = False
        self.local_sdp: SessionDescription | None = None  # what we sent the carrier
        self.media: NegotiatedMedia | None = None  # the carrier's side, as negotiated
        self.sdp_version = 1
        self.leg: ClientLegHandle | None = None
        self._cancel_sent = False
        self._released = asyncio.Event()
        self.setup_over = False
        """Routing and media are done (or gave up): the node's admission counts it no more."""
        self.on_setup_over: Callable[[], None] | None = None

    @property
    def connected(self) -> bool:
        """The carrier got our 200 OK."""
        return self.machine.answered

    async def emit(self, body: CallEventBody) -> None:
        await self.ctx.events.emit(self.id, body)

    # -- the whole call

    async def run(self) -> None:
        with call_context(self.id):
            watcher = asyncio.get_running_loop().create_task(self._watch_carrier_cancel())
            try:
                try:
                    await self._setup()
                except CallSetupError as e:
                    await self.send(In.SETUP_FAILED, _setup_error(e))
            except Exception as e:  # a bug must end this call cleanly, not the node
                log.exception("call failed")
                await self.send(In.CRASH, _crash(e))
            try:
                await self.over.wait()  # the machine's deadlines bound it
            finally:
                watcher.cancel()
                await self._release()

    async def failed(self, e: Exception) -> None:
        log.exception("call failed", exc_info=e)
        try:  # end it as cleanly as the table says
            await self._step((In.CRASH, _crash(e), None))
        except Exception:
            log.exception("call cleanup failed")

    async def _setup(self) -> None:
        try:
            await self._route_and_dial()
        finally:
            self.end_setup()

    async def _route_and_dial(self) -> None:
        # 100 Trying went out already: the INVITE server transaction sends it at once (§17.2.1).
        inv = self.invite
        caller, caller_name = caller_of(inv)
        source = self.incoming.source
        try:
            number: str | None = tracking_number(inv)
        except NotANumber:
            number = None
        await self.emit(Received(tracking_number=number, caller=caller, caller_name=caller_name,
                                 source=f"{source.host}:{source.port}", transport=source.transport,
                                 sip_call_id=inv.call_id))
        if not await self.backends.is_trunk(source.host):
            metrics.REFUSED.labels("not a carrier trunk").inc()
            raise CallSetupError(403, f"{source.host} is not a carrier trunk")
        if number is None:
            raise CallSetupError(404, "No tracking number in the request")
        self.machine.session_expires = self._read_session_timer()
        if inv.body:
            try:
                self.carrier_offer = parse_sdp(inv.body)
            except Exception as e:  # SdpError: the offer is unusable as a whole
                raise CallSetupError(getattr(e, "status", 400), f"Bad SDP: {e}") from None
            probe = answer_offer(self.carrier_offer, "127.0.0.1", 9)
            if isinstance(probe, SdpRejection):
                raise CallSetupError(probe.status, probe.reason, extra_headers=[media_warning(probe.reason)])

        self.decision = decision = await self.backends.resolve(RoutingRequest(
            call_id=self.id, tracking_number=number, caller=caller, caller_name=caller_name,
            source=f"{source.host}:{source.port}", region=self.settings.region))
        await self.emit(Resolved(ok=True, account_id=decision.account_id,
                                 receiving_number_id=decision.receiving_number_id,
                                 targets=[TargetSummary.of(t) for t in decision.targets],
                                 ring_timeout=decision.ring_timeout, region=decision.region_preference,
                                 secure_media=decision.secure_media))
        if self.machine.terminal:
            return  # the CANCEL ended it

        # The first target's media; the client leg re-keys the worker's B side for each
        # next target that needs other media (SRTP with its own key, or plain RTP).
        await self._allocate_media(decision.region_preference or self.settings.region, decision.targets[0].secure_media)
        if self.machine.terminal:
            return
        await self._prepare_a_leg()
        self.leg = leg = await self._client_leg(caller, caller_name)
        if self.machine.terminal:  # cancelled or hung up meanwhile
            self.spawn(leg.cancel())
            return
        metrics.PDD.observe(time.time() - self.started)  # the client leg dials now
        await self.send(In.DIALING)
        self.spawn(self._run_leg(leg))

    def end_setup(self) -> None:
        if not self.setup_over:
            self.setup_over = True
            if self.on_setup_over is not None:
                self.on_setup_over()

    async def _run_leg(self, leg: ClientLegHandle) -> None:
        try:
            attempts = await leg.run()
        except CallSetupError as e:
            await self.send(In.LEG_ERROR, _setup_error(e))
            return
        except Exception as e:
            log.error("client leg failed", exc_info=e)
            await self.send(In.CRASH, _crash(e))
            return
        await self.send(In.LEG_RESULT, attempts)

    async def _client_leg(self, caller: str | None, caller_name: str | None) -> ClientLegHandle:
        """Here, or — when the media is in another region — by a signaling node there, if
        that region has one (the same code runs either way)."""
        assert self.decision is not None and self.allocation is not None
        region = self.allocation.region
        if region != self.settings.region:
            remote = RemoteClientLeg(self.ctx, self.id, region, self)
            order = Originate(call_id=self.id, decision=self.decision, allocation=self.allocation,
                              caller=caller, caller_name=caller_name, carrier_headers=self._forwarded())
            # The other node may ring (or even answer) before its reply to the order arrives:
            # a CANCEL or BYE meanwhile must reach that leg.
            self.leg = remote
            try:
                taken = await remote.start(order)
            finally:
                self.leg = None
            if taken:
                await self.emit(OriginatedRemotely(region=region, node=remote.node))
                return remote
        return ClientLeg(self.ctx, self.id, self.decision, self.allocation, caller, caller_name, self,
                         carrier_headers=self._forwarded())

    def _forwarded(self) -> list[tuple[str, str]]:
        assert self.decision is not None
        return pbx.carrier_headers(self.invite.headers, self.decision.pbx)

    async def _cancel_seen(self) -> None:
        if not self._cancel_sent:
            self._cancel_sent = True
            await self.send(In.CARRIER_CANCEL)

    async def _watch_carrier_cancel(self) -> None:
        await self.incoming.cancelled.wait()
        await self._cancel_seen()

    def _read_session_timer(self) -> int | None:
        value = self.invite.headers.get("Session-Expires")  # also its compact form "x"
        if not value:
            return None
        try:
            seconds = int(value.split(";")[0].strip())
        except ValueError:
            raise CallSetupError(400, "Bad Session-Expires") from None
        if seconds < MIN_SE:
            # §6: an interval below our minimum is refused with 422 and our Min-SE.
            raise CallSetupError(422, "Session Interval Too Small", extra_headers=[("Min-SE", str(MIN_SE))])
        return seconds

    # -- media

    async def _allocate_media(self, preferred: str, secure: bool) -> None:
        tried: list[str] = []
        last: CallSetupError | None = None
        for _ in range(4):
            sel = await self.backends.select_region(preferred, tried)
            if not sel.ok or not sel.region:
                break
            try:
                self.allocation = await self.backends.allocate(sel.region, self.id, secure)
            except CallSetupError as e:
                last = e
                tried.append(sel.region)
                metrics.FAILOVERS.labels("region").inc()
                await self.emit(MediaFailover(region=sel.region, reason=e.reason))
                continue
            a = self.allocation
            await self.emit(MediaAllocated(worker_id=a.worker_id, region=a.region,
                                           failed_over=bool(tried) or sel.failed_over, a_port=a.a.port,
                                           b_port=a.b.port, secure=a.b.secure))
            return
        if last is not None:
            raise last
        raise CallSetupError(503, "No region with media available", retry_after=30)

    async def _update_media(self, media: NegotiatedMedia) -> None:
        assert self.allocation is not None
        # A carrier's media gateways often send from other public IPs than its proxies: only
        # a private SDP address counts as NAT on this leg (mismatch=False).
        source = self.incoming.source.host
        latch = nat.latch_host(self.settings.carrier_nat, media.remote_address, source, mismatch=False)
        if latch is not None and not self._nat_reported:
            self._nat_reported = True
            await self.emit(NatDetected(leg="a", sdp_address=media.remote_address,
                                        source=f"{source}:{self.incoming.source.port}"))
        await self.backends.update(self.allocation.worker_id, media_update(self.id, "a", media, latch))

    @property
    def _carrier_dest(self) -> Addr | None:
        """The carrier's source address when its Contact is private (proto.nat)."""
        dialog = self.incoming.dialog
        if dialog is None:
            return None
        try:
            contact = parse_uri(dialog.remote_target)
        except Exception:
            return None
        host = contact.host if isinstance(contact, SipUri) else None
        src = self.incoming.source
        return src if nat.contact_is_nated(self.settings.carrier_nat, host, src.host) else None

    async def _prepare_a_leg(self) -> None:
        """Answer the carrier's offer with the worker's A side now, so the worker knows
        where the carrier's media comes from before the client answers."""
        assert self.allocation is not None
        if self.carrier_offer is None:
            return
        a = self.allocation.a
        result = answer_offer(self.carrier_offer, a.address, a.port)
        if isinstance(result, SdpRejection):
            raise CallSetupError(result.status, result.reason)
        self.local_sdp = result.sdp
        self.media = result.media
        await self._update_media(result.media)

    # -- what the client leg reports (LegPeer)

    async def progress(self, status: int, early_media: bool) -> None:
        await self.send(In.LEG_EARLY if early_media else In.LEG_PROGRESS, (status, early_media))

    async def answered(self, target: str, secure: bool) -> bool:
        if self.incoming.cancelled.is_set():
            await self._cancel_seen()  # before the answer: the CANCEL wins (§9.2)
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self.send(In.LEG_ANSWERED, (target, secure, answer))
        if not answer.done():  # the table absorbed the answer: the carrier is gone
            answer.set_result(False)
        return answer.result()

    async def relay_info(self, request: Request) -> int:
        """The client's INFO, passed on to the carrier."""
        dialog = self.incoming.dialog
        if dialog is None or dialog.terminated:
            return 481
        return await send_info(self.ep, dialog, request, dest=self._carrier_dest)

    async def client_ended(self, reason: str) -> None:
        await self.send(In.LEG_ENDED, reason)

    async def refer(self, leg: DialogOwner, incoming: IncomingRequest) -> None:
        """A REFER from the client leg (RFC 3515): 202 and a transfer when the receiving
        number allows it (`transfer`), else the refusal's status."""
        current: object = self.leg
        if not isinstance(leg, ClientLeg) or leg is not current or self.decision is None or not self.connected:
            incoming.respond(481 if leg is not current else 491)
            return
        target = pbx.transfer_target(incoming.request.headers.get("Refer-To"), self.decision.pbx.transfer,
                                     leg.target, self.decision.targets)
        if isinstance(target, pbx.TransferRefused):
            incoming.respond(target.status, target.reason)
            return
        incoming.respond(202)  # §2.4.2: accepted; the NOTIFYs tell how it goes
        self.spawn(Transfer(self, leg, incoming, target).run())

    # -- from the B2BUA

    async def hang_up(self, reason: str, *, by: str, cause: int = 200) -> None:
        """End the call from our side: BYE to both legs with a Reason (RFC 3326); waits
        until the call is over (our BYE's deadline bounds it)."""
        await self.send(In.HANG_UP, (cause, reason, by))
        await self._released.wait()

    async def on_media_timeout(self) -> None:
        await self.send(In.MEDIA_TIMEOUT)

    async def on_request(self, incoming: IncomingRequest) -> None:
        """An in-dialog request from the carrier."""
        m = incoming.method
        if m == "ACK":
            await self.send(In.CARRIER_ACK, incoming)
            return
        if m == "BYE":
            incoming.respond(200)
            await self.send(In.CARRIER_BYE)
            return
        if m in ("INVITE", "UPDATE"):
            if self.machine.terminal:
                incoming.respond(481)
            else:
                await self.send(In.CARRIER_REFRESH, incoming)
            return
        if m == "INFO":
            incoming.respond(await self.leg.relay_info(incoming.request) if self.leg is not None else 481)
            return
        if m == "OPTIONS":
            incoming.respond(200)
            return
        incoming.respond(405, headers=[("Allow", ALLOW)])

    def unprocessed(self, item: object) -> None:
        assert isinstance(item, tuple)
        inp, payload = item[0], item[1]
        if inp is In.CARRIER_REFRESH and not payload.answered:
            payload.respond(481)

    # -- the machine's commands

    async def do(self, do: Do, payload: object) -> FollowUp:  # noqa: C901 - one branch per command
        m = self.machine
        if do is Do.PROGRESS:
            assert isinstance(payload, tuple)
            status, early = payload
            if self.incoming.answered:
                return None
            if early and self.carrier_offer is not None and self.local_sdp is not None:
                self.incoming.respond(183, body=bytes(self.local_sdp), content_type=SDP)
            else:
                self.incoming.respond(180 if status in (180, 183) else status)
        elif do is Do.ANSWER:
            assert isinstance(payload, tuple)
            await self._answer(*payload)
        elif do is Do.REJECT:
            await self._fail()
        elif do is Do.ANSWER_487:
            if not self.incoming.answered:
                self.incoming.respond(487)
        elif do is Do.REJECT_481:
            payload.respond(481)  # type: ignore[attr-defined]
        elif do is Do.TELL_LEG_CANCEL:
            if self.leg is not None:
                self.spawn(self.leg.cancel())
        elif do is Do.TELL_LEG_BYE:
            if self.leg is not None:
                self.spawn(self.leg.hang_up(m.end[0] or "normal clearing", m.cause))
        elif do is Do.ABANDON_LEG:
            # The call failed on our side: leave nothing up on the client's side either.
            if self.leg is not None:
                self.spawn(self.leg.hang_up(m.end[0] or "failed", cause=503))
        elif do is Do.SEND_BYE:
            dialog = self.incoming.dialog
            if dialog is None or dialog.terminated:
                return In.BYE_DONE, None
            self.spawn(self._bye(bye_with_reason(dialog, m.cause, m.end[0])))
        elif do is Do.TAKE_ACK_ANSWER:
            return await self.answering(payload, self._take_ack(payload))  # type: ignore[arg-type, no-any-return]
        elif do is Do.ANSWER_REFRESH:
            await self.answering(payload, self._refresh(payload))  # type: ignore[arg-type]
        else:  # pragma: no cover - the table only uses the commands above
            raise AssertionError(do)
        return None

    async def _answer(self, target: str, secure: bool, answer: asyncio.Future[bool]) -> None:
        assert self.allocation is not None
        if self.carrier_offer is None:
            # Delayed offer: we offer in the 200 OK, the carrier answers in its ACK (§13.2.1).
            a = self.allocation.a
            self.local_sdp = build_offer(a.address, a.port, telephone_event_pt=a.telephone_event_pt)
        assert self.local_sdp is not None
        self.incoming.respond(200, body=bytes(self.local_sdp), content_type=SDP,
                              headers=self._session_timer_headers())
        self.answered_at = time.time()
        answer.set_result(True)
        await self.emit(Answered(target=target, secure=secure,
                                 pdd_ms=round((self.answered_at - self.started) * 1000)))

    async def _bye(self, bye: Request) -> None:
        try:
            sent = await self.ep.request(bye, self._carrier_dest)
            await sent.final()
        except Exception as e:
            log.info("BYE not completed: %s", e)
        await self.send(In.BYE_DONE)

    async def _take_ack(self, incoming: IncomingRequest) -> FollowUp:
        if incoming.request.body and self.local_sdp is not None and self.media is None:
            media = validate_answer(self.local_sdp, incoming.request.body)
            if isinstance(media, NegotiatedMedia):
                self.media = media
                await self._update_media(media)
            else:
                return In.HANG_UP, (488, f"unacceptable answer in ACK: {media.reason}", "switchboard")
        return None

    # -- session timers (RFC 4028): we are the UAS on the carrier's leg

    def _session_timer_headers(self) -> list[tuple[str, str]]:
        """§9: when the carrier asked for a session timer, accept its interval with the
        carrier as refresher; the machine expects a refresh (re-INVITE or UPDATE) in time."""
        se = self.machine.session_expires
        if se is None:
            return []
        headers = [("Session-Expires", f"{se};refresher=uac")]
        if "timer" in {v.strip().lower() for v in self.invite.headers.values("Supported")}:
            headers.append(("Require", "timer"))
        return headers

    async def _refresh(self, incoming: IncomingRequest) -> None:
        """A re-INVITE or UPDATE from the carrier (hold, resume, new address, session
        refresh), answered from the worker's A side. The client's leg keeps its media: the
        worker bridges both."""
        assert self.allocation is not None
        timer_headers = self._session_timer_headers()
        if await answer_refresh(self, incoming, self.allocation.a, timer_headers):
            assert self.media is not None and self.local_sdp is not None
            await self._update_media(self.media)
            incoming.respond(200, body=bytes(self.local_sdp), content_type=SDP, headers=timer_headers)
            await self.emit(Hold(leg="a", method=incoming.method) if self.media.on_hold
                            else MediaRefresh(leg="a", method=incoming.method))

    # -- the end

    async def _fail(self) -> None:
        final = self.machine.final
        assert final is not None
        status, reason, retry_after, extra = final
        if not self.incoming.answered:
            headers: list[tuple[str, str]] = list(extra)
            if retry_after:
                headers.append(("Retry-After", str(retry_after)))
            # RFC 3326: say why, so the carrier's logs show our reason too.
            headers.append(reason_header(status, reason[:100]))
            # The reason phrase is for humans reading traces: the standard one when there is one.
            self.incoming.respond(status, REASON_PHRASES.get(status, reason[:60] or "Failed"), headers=headers)
        result = record_result(self.machine.attempts, answered=False)
        metrics.CALLS.labels(result).inc()
        await self.emit(Failed(sip_status=status, reason=reason, result=result, attempts=list(self.machine.attempts)))

    async def _release(self) -> None:
        leg = self.leg
        if leg is not None:
            try:
                await asyncio.wait_for(leg.wait_ended(), 15.0)  # bounded by its own deadlines
            except Exception:
                pass
            leg.release()
        try:
            await self._report_end()
        finally:
            self._released.set()

    async def _report_end(self) -> None:
        m = self.machine
        reason, by = m.end
        stats = None
        if self.allocation is not None and not self.media_lost:
            stats = await self.backends.release(self.allocation.worker_id, self.id, reason or "normal")
        if m.answered:
            ended_at = time.time()
            duration = ended_at - (self.answered_at or ended_at)
            metrics.CALLS.labels("completed").inc()
            await self.emit(Ended(by=by or "switchboard", reason=reason or "normal clearing",
                                  duration=round(duration, 3), result="completed", media=stats))
        elif m.canceled:
            metrics.CALLS.labels("canceled").inc()
            await self.emit(Ended(by="caller", reason="caller cancelled", duration=0, result="canceled"))


__all__ = ["Call", "State"]
