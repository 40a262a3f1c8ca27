"""One tracked call, from the carrier's side: the carrier's leg (A), routing, media, and the
client leg (B) — run here (`ClientLeg`) or by a node of the region whose media carries the
call (`RemoteClientLeg`).

The flow is DESIGN.md's: 100 Trying, trunk check, routing, region and media, then the client
leg's targets; the client's answer relayed to the carrier with the media worker's address,
and BYE from either side ending both. Every step is a `call.<id>.<kind>` event."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from proto.events import (
    Answered,
    CallEventBody,
    Ended,
    Failed,
    Hold,
    MediaAllocated,
    MediaFailover,
    MediaRefresh,
    OriginatedRemotely,
    Received,
    Resolved,
    TargetSummary,
)
from proto.messages import (
    AttemptRecord,
    MediaAllocation,
    Originate,
    RoutingDecision,
    RoutingRequest,
    SipTarget,
)
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
from .client_leg import ClientLeg, answer_refresh, media_update, send_info
from .numbers import NotANumber, caller_of, tracking_number
from .policy import Attempt, Result, carrier_status, record_result
from .remote import RemoteClientLeg

if TYPE_CHECKING:
    from ..endpoint import IncomingRequest
    from .b2bua import B2BUA

log = logging.getLogger("switchboard.signaling.call")

SDP = "application/sdp"
MIN_SE = 90  # RFC 4028 §4: the smallest session interval we accept


def _target_log(t: SipTarget) -> dict[str, Any]:
    return {"uri": t.uri, "transport": t.transport, "priority": t.priority, "weight": t.weight,
            "secure_media": t.secure_media, "has_credentials": bool(t.username)}


@dataclass
class CallState:
    started: float = field(default_factory=time.time)
    answered_at: float | None = None
    ended_at: float | None = None
    attempts: list[Attempt] = field(default_factory=list)


class Call:
    """The carrier's side of a call, and the LegPeer its client leg reports to."""

    def __init__(self, b2bua: B2BUA, call_id: str, incoming: IncomingRequest) -> None:
        self.b2bua = b2bua
        self.ep = b2bua.endpoint
        self.backends = b2bua.backends
        self.settings = b2bua.settings
        self.id = call_id
        self.incoming = incoming
        self.invite = incoming.request
        self.sip_call_id = self.invite.call_id
        self.state = CallState()
        self.decision: RoutingDecision | None = None
        self.allocation: MediaAllocation | None = None
        self.carrier_offer: SessionDescription | None = None
        self.local_sdp: SessionDescription | None = None  # what we sent the carrier
        self.media: NegotiatedMedia | None = None  # the carrier's side, as negotiated
        self.sdp_version = 1
        self.leg: ClientLeg | RemoteClientLeg | None = None
        self.connected = False  # the carrier got our 200 OK
        self.ended = asyncio.Event()
        self.end_reason = ""
        self.ended_by = ""
        self.session_expires: int | None = None
        self._session_timer: asyncio.TimerHandle | None = None

    async def emit(self, body: CallEventBody) -> None:
        await self.b2bua.events.emit(self.id, body)

    # -- the whole call

    async def run(self) -> None:
        with call_context(self.id):
            try:
                await self._run()
            except CallSetupError as e:
                await self._abandon_leg(e.reason)
                await self._fail(e.status, e.reason, retry_after=e.retry_after, extra=e.extra_headers)
            except Exception as e:  # a bug must end this call cleanly, not the node
                log.exception("call failed")
                await self._abandon_leg("internal error")
                await self._fail(500, f"internal error: {type(e).__name__}")
            finally:
                await self._release()
                self.b2bua.forget(self)

    async def _run(self) -> None:
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
        self._read_session_timer()
        if inv.body:
            try:
                self.carrier_offer = parse_sdp(inv.body)
            except Exception as e:  # SdpError: the offer is unusable as a whole
                raise CallSetupError(getattr(e, "status", 400), f"Bad SDP: {e}") from None
            probe = answer_offer(self.carrier_offer, "127.0.0.1", 9)
            if isinstance(probe, SdpRejection):
                raise CallSetupError(probe.status, probe.reason)

        self.decision = decision = await self.backends.resolve(RoutingRequest(
            call_id=self.id, tracking_number=number, caller=caller, caller_name=caller_name,
            source=f"{source.host}:{source.port}", region=self.settings.region))
        await self.emit(Resolved(ok=True, account_id=decision.account_id,
                                 receiving_number_id=decision.receiving_number_id,
                                 targets=[TargetSummary.of(t) for t in decision.targets],
                                 ring_timeout=decision.ring_timeout, region=decision.region_preference,
                                 secure_media=decision.secure_media))
        if self.incoming.cancelled.is_set():
            return self._carrier_cancelled()

        secure = decision.secure_media or any(t.secure_media for t in decision.targets)
        await self._allocate_media(decision.region_preference or self.settings.region, secure)
        await self._prepare_a_leg()
        self.leg = await self._client_leg(caller, caller_name)

        metrics.PDD.observe(time.time() - self.state.started)  # the client leg dials now
        watcher = asyncio.get_running_loop().create_task(self._watch_carrier_cancel())
        try:
            attempts = await self.leg.run()
        finally:
            watcher.cancel()
        if attempts is None:  # answered
            await self._in_call()
            return
        self.state.attempts.extend(attempts)
        if self.incoming.cancelled.is_set():
            return self._carrier_cancelled()
        status, reason = carrier_status(self.state.attempts)
        last = self.state.attempts[-1] if self.state.attempts else None
        retry = last.retry_after if last and status == 503 else None
        await self._fail(status, reason, retry_after=retry)

    async def _client_leg(self, caller: str | None, caller_name: str | None) -> ClientLeg | RemoteClientLeg:
        """Here, or — when the media is in another region — by a signaling node there, if
        that region has one (the same code runs either way)."""
        assert self.decision is not None and self.allocation is not None
        region = self.allocation.region
        if region != self.settings.region:
            remote = RemoteClientLeg(self.b2bua, self.id, region, self)
            order = Originate(call_id=self.id, decision=self.decision, allocation=self.allocation,
                              caller=caller, caller_name=caller_name)
            if await remote.start(order):
                await self.emit(OriginatedRemotely(region=region, node=remote.node))
                return remote
        return ClientLeg(self.b2bua, self.id, self.decision, self.allocation, caller, caller_name, self)

    async def _watch_carrier_cancel(self) -> None:
        await self.incoming.cancelled.wait()
        if self.leg is not None:
            await self.leg.cancel()

    def _read_session_timer(self) -> None:
        value = self.invite.headers.get("Session-Expires")  # also its compact form "x"
        if not value:
            return
        try:
            seconds = int(value.split(";")[0].strip())
        except ValueError:
            raise CallSetupError(400, "Bad Session-Expires") from None
        if seconds < MIN_SE:
            # §6: an interval below our minimum is refused with 422 and our Min-SE.
            raise CallSetupError(422, "Session Interval Too Small", extra_headers=[("Min-SE", str(MIN_SE))])
        self.session_expires = seconds

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
        await self.backends.update(self.allocation.worker_id, media_update(self.id, "a", media))

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
        if self.incoming.answered:
            return
        if early_media and self.carrier_offer is not None and self.local_sdp is not None:
            self.incoming.respond(183, body=bytes(self.local_sdp), content_type=SDP)
        else:
            self.incoming.respond(180 if status in (180, 183) else status)

    async def answered(self, target: str, secure: bool) -> bool:
        if self.incoming.cancelled.is_set() or self.incoming.answered:
            return False
        assert self.allocation is not None
        if self.carrier_offer is None:
            # Delayed offer: we offer in the 200 OK, the carrier answers in its ACK (§13.2.1).
            a = self.allocation.a
            self.local_sdp = build_offer(a.address, a.port, telephone_event_pt=a.telephone_event_pt)
        assert self.local_sdp is not None
        self.incoming.respond(200, body=bytes(self.local_sdp), content_type=SDP, headers=self._session_timer_headers())
        self.connected = True
        self.state.answered_at = time.time()
        await self.emit(Answered(target=target, secure=secure,
                                 pdd_ms=round((self.state.answered_at - self.state.started) * 1000)))
        return True

    async def relay_info(self, request: Request) -> int:
        """The client's INFO, passed on to the carrier."""
        dialog = self.incoming.dialog
        if dialog is None or dialog.terminated:
            return 481
        return await send_info(self.ep, dialog, request)

    async def client_ended(self, reason: str) -> None:
        if self.ended.is_set():
            return
        self.end_reason, self.ended_by = reason, "callee"
        await self._bye_a(reason)
        self.ended.set()

    # -- session timers (RFC 4028): we are the UAS on the carrier's leg

    def _session_timer_headers(self) -> list[tuple[str, str]]:
        """§9: when the carrier asked for a session timer, accept its interval with the
        carrier as refresher, and expect a refresh (re-INVITE or UPDATE) in time."""
        se = self.session_expires
        if se is None:
            return []
        self._touch_session()
        headers = [("Session-Expires", f"{se};refresher=uac")]
        if "timer" in {v.strip().lower() for v in self.invite.headers.values("Supported")}:
            headers.append(("Require", "timer"))
        return headers

    def _touch_session(self) -> None:
        """(Re)arm the session timer: without a refresh within the interval, the session is
        over and we send BYE both ways (§10, at the expiry itself)."""
        if self.session_expires is None:
            return
        if self._session_timer is not None:
            self._session_timer.cancel()
        loop = asyncio.get_running_loop()
        self._session_timer = loop.call_later(
            self.session_expires, lambda: loop.create_task(self.hang_up("session expired", by="switchboard", cause=408)))

    # -- in the call

    async def _in_call(self) -> None:
        limit = self.settings.max_call_duration
        try:
            await asyncio.wait_for(self.ended.wait(), timeout=limit if limit > 0 else None)
        except TimeoutError:
            await self.hang_up("max call duration", by="switchboard", cause=200)

    async def hang_up(self, reason: str, *, by: str, cause: int = 200) -> None:
        """End an established call from our side: BYE to both legs with a Reason (RFC 3326)."""
        if self.ended.is_set():
            return
        self.end_reason, self.ended_by = reason, by
        leg = self.leg
        await asyncio.gather(self._bye_a(reason, cause), leg.hang_up(reason, cause) if leg else asyncio.sleep(0),
                             return_exceptions=True)
        self.ended.set()

    async def _abandon_leg(self, reason: str) -> None:
        """The call failed on our side: leave nothing up on the client's side either."""
        if self.leg is not None:
            await self.leg.hang_up(reason, cause=503)

    async def _bye_a(self, reason: str, cause: int = 200) -> None:
        dialog = self.incoming.dialog
        if dialog is None or dialog.terminated:
            return
        bye = dialog.create_request("BYE", headers=[("Reason", f'SIP;cause={cause};text="{reason}"')])
        h = await self.ep.request(bye)
        try:
            await asyncio.wait_for(h.final(), 5.0)
        except Exception:
            pass

    async def on_request(self, incoming: IncomingRequest) -> None:
        """An in-dialog request from the carrier."""
        m = incoming.method
        if m == "ACK":
            if incoming.request.body and self.local_sdp is not None and self.media is None:
                media = validate_answer(self.local_sdp, incoming.request.body)
                if isinstance(media, NegotiatedMedia):
                    self.media = media
                    await self._update_media(media)
                else:
                    await self.hang_up(f"unacceptable answer in ACK: {media.reason}", by="switchboard", cause=488)
            return
        if m == "BYE":
            incoming.respond(200)
            if self.ended.is_set():
                return
            self.end_reason, self.ended_by = "normal clearing", "caller"
            if self.leg is not None:
                await self.leg.hang_up("normal clearing")
            self.ended.set()
            return
        if m in ("INVITE", "UPDATE"):
            await self._refresh(incoming)
            return
        if m == "INFO":
            incoming.respond(await self.leg.relay_info(incoming.request) if self.leg is not None else 481)
            return
        if m == "OPTIONS":
            incoming.respond(200)
            return
        incoming.respond(405, headers=[("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO")])

    async def _refresh(self, incoming: IncomingRequest) -> None:
        """A re-INVITE or UPDATE from the carrier (hold, resume, new address, session
        refresh), answered from the worker's A side. The client's leg keeps its media: the
        worker bridges both. A refresh also re-arms the session timer (RFC 4028)."""
        assert self.allocation is not None
        timer_headers = self._session_timer_headers()
        if await answer_refresh(self, incoming, self.allocation.a, self.settings.srtp_key_padding, timer_headers):
            assert self.media is not None and self.local_sdp is not None
            await self._update_media(self.media)
            incoming.respond(200, body=bytes(self.local_sdp), content_type=SDP, headers=timer_headers)
            await self.emit(Hold(leg="a", method=incoming.method) if self.media.on_hold
                            else MediaRefresh(leg="a", method=incoming.method))

    async def on_media_timeout(self) -> None:
        if self.connected:
            await self.hang_up("media timeout", by="switchboard", cause=408)

    # -- the end

    def _carrier_cancelled(self) -> None:
        if not any(a.result == Result.CANCELED for a in self.state.attempts):
            self.state.attempts.append(Attempt("", Result.CANCELED, 487, "caller cancelled"))
        self.end_reason, self.ended_by = "caller cancelled", "caller"

    async def _fail(self, status: int, reason: str, *, retry_after: int | None = None,
                    extra: list[tuple[str, str]] | None = None) -> None:
        if not self.incoming.answered:
            headers: list[tuple[str, str]] = list(extra or [])
            if retry_after:
                headers.append(("Retry-After", str(retry_after)))
            # RFC 3326: say why, so the carrier's logs show our reason too.
            headers.append(("Reason", f'SIP;cause={status};text="{reason[:100]}"'))
            # The reason phrase is for humans reading traces: the standard one when there is one.
            self.incoming.respond(status, REASON_PHRASES.get(status, reason[:60] or "Failed"), headers=headers)
        self.end_reason = reason
        result = record_result(self.state.attempts, answered=False)
        metrics.CALLS.labels(result).inc()
        await self.emit(Failed(sip_status=status, reason=reason, result=result,
                               attempts=[AttemptRecord(target=a.target, result=str(a.result), status=a.status,
                                                       reason=a.reason) for a in self.state.attempts]))

    async def _release(self) -> None:
        if self._session_timer is not None:
            self._session_timer.cancel()
        if self.leg is not None:
            self.leg.release()
        stats = None
        if self.allocation is not None:
            stats = await self.backends.release(self.allocation.worker_id, self.id, self.end_reason or "normal")
        if self.connected:
            self.state.ended_at = time.time()
            duration = self.state.ended_at - (self.state.answered_at or self.state.ended_at)
            metrics.CALLS.labels("completed").inc()
            await self.emit(Ended(by=self.ended_by or "switchboard", reason=self.end_reason or "normal clearing",
                                  duration=round(duration, 3), result="completed", media=stats))
        elif any(a.result == Result.CANCELED for a in self.state.attempts):
            metrics.CALLS.labels("canceled").inc()
            await self.emit(Ended(by="caller", reason="caller cancelled", duration=0, result="canceled"))
