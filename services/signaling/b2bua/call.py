"""One tracked call: the carrier's leg (A), the SIP client's leg (B), the media between them.

The flow is DESIGN.md's: 100 Trying, trunk check, routing, region and media, then each
target in turn (digest challenge answered once per realm, ring timeout -> CANCEL), the
client's answer relayed to the carrier with the media worker's address, and BYE from
either side ending both. Every step is a `call.<id>.<kind>` event."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from proto.messages import (
    MediaAllocation,
    MediaDtmf,
    MediaUpdate,
    RoutingDecision,
    RoutingRequest,
    SipTarget,
    SrtpCrypto,
)
from services.common.logging import call_context

from ..errors import CallSetupError
from ..sip.digest import answer_challenge
from ..sip.headers import NameAddress, Reason
from ..sip.message import Request, Response
from ..sip.sdp import (
    Crypto,
    NegotiatedMedia,
    SdpRejection,
    SessionDescription,
    answer_offer,
    build_offer,
    parse_sdp,
    validate_answer,
)
from ..sip.uri import SipUri, parse_uri
from ..transport import Addr, ClientTlsOptions
from .numbers import NotANumber, caller_of, tracking_number
from .policy import Attempt, Result, carrier_status, classify, record_result, should_move_on

if TYPE_CHECKING:
    from ..endpoint import ClientRequest, IncomingRequest
    from .b2bua import B2BUA

log = logging.getLogger("switchboard.signaling.call")

SDP = "application/sdp"
MIN_SE = 90  # RFC 4028 §4: the smallest session interval we accept


def _srtp(crypto: Crypto | None) -> SrtpCrypto | None:
    if crypto is None:
        return None
    return SrtpCrypto(tag=crypto.tag, key_salt_b64=base64.b64encode(crypto.key_salt).decode())


def _target_log(t: SipTarget) -> dict[str, Any]:
    return {"uri": t.uri, "transport": t.transport, "priority": t.priority, "weight": t.weight,
            "secure_media": t.secure_media, "has_credentials": bool(t.username)}


@dataclass
class Leg:
    """What we know of one side: its dialog's SIP Call-ID and the media it negotiated."""

    sip_call_id: str = ""
    media: NegotiatedMedia | None = None
    sdp_version: int = 1
    local_sdp: SessionDescription | None = None


@dataclass
class CallState:
    started: float = field(default_factory=time.time)
    answered_at: float | None = None
    ended_at: float | None = None
    attempts: list[Attempt] = field(default_factory=list)


class Call:
    def __init__(self, b2bua: B2BUA, call_id: str, incoming: IncomingRequest) -> None:
        self.b2bua = b2bua
        self.ep = b2bua.endpoint
        self.backends = b2bua.backends
        self.settings = b2bua.settings
        self.id = call_id
        self.incoming = incoming
        self.invite = incoming.request
        self.a = Leg(sip_call_id=self.invite.call_id)
        self.b = Leg()
        self.state = CallState()
        self.decision: RoutingDecision | None = None
        self.allocation: MediaAllocation | None = None
        self.carrier_offer: SessionDescription | None = None
        self.a_answer: SessionDescription | None = None
        self.b_handle: ClientRequest | None = None
        self.b_target: SipTarget | None = None
        self.b_tls: ClientTlsOptions | None = None
        self.b_server_name: str | None = None
        self.early_media = False
        self.answered = False
        self.ended = asyncio.Event()
        self.end_reason = ""
        self.ended_by = ""
        self.tracking_number: str | None = None
        self.session_expires: int | None = None
        self._session_timer: asyncio.TimerHandle | None = None

    # -- events

    async def emit(self, kind: str, **payload: Any) -> None:
        await self.b2bua.events.emit(self.id, kind, **payload)

    # -- the whole call

    async def run(self) -> None:
        with call_context(self.id):
            try:
                await self._run()
            except CallSetupError as e:
                await self._abandon_b(e.reason)
                await self._fail(e.status, e.reason, retry_after=e.retry_after, extra=e.extra_headers)
            except Exception as e:  # a bug must end this call cleanly, not the node
                log.exception("call failed")
                await self._abandon_b("internal error")
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
        await self.emit("received", tracking_number=number, caller=caller, caller_name=caller_name,
                        source=f"{source.host}:{source.port}", transport=source.transport,
                        sip_call_id=inv.call_id)
        if not await self.backends.is_trunk(source.host):
            self.b2bua.count("rejected_not_trunk")
            raise CallSetupError(403, f"{source.host} is not a carrier trunk")
        if number is None:
            raise CallSetupError(404, "No tracking number in the request")
        self.tracking_number = number
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
        await self.emit("resolved", ok=True, account_id=decision.account_id,
                        receiving_number_id=decision.receiving_number_id,
                        targets=[_target_log(t) for t in decision.targets], ring_timeout=decision.ring_timeout,
                        region=decision.region_preference, secure_media=decision.secure_media)
        if self.incoming.cancelled.is_set():
            return await self._carrier_cancelled()

        secure = decision.secure_media or any(t.secure_media for t in decision.targets)
        await self._allocate_media(decision.region_preference or self.settings.region, secure)
        await self._prepare_a_leg()

        for target in decision.targets:
            attempt = await self._try_target(target, caller, caller_name)
            if attempt is None:  # answered
                await self._in_call()
                return
            self.state.attempts.append(attempt)
            if self.incoming.cancelled.is_set():
                return await self._carrier_cancelled()
            if not should_move_on(attempt):
                break
        status, reason = carrier_status(self.state.attempts)
        last = self.state.attempts[-1] if self.state.attempts else None
        retry = last.retry_after if last and status == 503 else None
        await self._fail(status, reason, retry_after=retry)

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
                await self.emit("media_failover", region=sel.region, reason=e.reason)
                continue
            a = self.allocation
            await self.emit("media_allocated", worker_id=a.worker_id, region=a.region,
                            failed_over=bool(tried) or sel.failed_over, a_port=a.a.port, b_port=a.b.port,
                            secure=a.b.secure)
            return
        if last is not None:
            raise last
        raise CallSetupError(503, "No region with media available", retry_after=30)

    async def _update_media(self, leg: str, media: NegotiatedMedia) -> None:
        assert self.allocation is not None
        await self.backends.update(self.allocation.worker_id, MediaUpdate(
            call_id=self.id, leg="a" if leg == "a" else "b", remote_address=media.remote_address,
            remote_port=media.remote_port, remote_rtcp_port=media.remote_rtcp_port,
            telephone_event_pt=media.telephone_event_pt, remote_crypto=_srtp(media.remote_crypto),
            direction="inactive" if media.on_hold and media.direction == "inactive" else media.direction))

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
        self.a_answer = result.sdp
        self.a.media = result.media
        self.a.local_sdp = result.sdp
        await self._update_media("a", result.media)

    # -- the client leg

    def _client_invite(self, target: SipTarget, caller: str | None, caller_name: str | None,
                       first: Addr, offer: bytes) -> Request:
        host = self.settings.public_address
        user = caller or "anonymous"
        disp = f'"{caller_name}" ' if caller_name else ""
        # RFC 3262: we PRACK reliable provisionals (some PBXs require it, 421 otherwise);
        # RFC 4028: we take part in session timers.
        headers: list[tuple[str, str]] = [("Supported", "100rel, timer")]
        if self.settings.p_asserted_identity:
            headers.append(("P-Asserted-Identity", f"<sip:{user}@{host}>"))
        return self.ep.create_request(
            "INVITE", target.uri, from_=f"{disp}<sip:{user}@{host}>", to=f"<{target.uri}>",
            transport=first.transport, body=offer, content_type=SDP, headers=headers)

    async def _try_target(self, target: SipTarget, caller: str | None, caller_name: str | None) -> Attempt | None:
        """One target: its RFC 3263 candidates in order (the endpoint fails over), the
        digest challenge, the ring timeout. None when the client answered."""
        assert self.allocation is not None and self.decision is not None
        b = self.allocation.b
        key = base64.b64decode(b.crypto.key_salt_b64) if (b.secure and b.crypto) else None
        if target.secure_media and key is None:
            return Attempt(target.uri, Result.MEDIA_FAILED, reason="SRTP required but the worker gave no key")
        offer = build_offer(b.address, b.port, srtp_key=key if target.secure_media else None,
                            telephone_event_pt=b.telephone_event_pt, pad_base64=self.settings.srtp_key_padding)
        self.b.local_sdp = offer
        try:
            uri = parse_uri(target.uri)
            candidates = await self.ep.locator(target.uri)
        except Exception as e:
            return Attempt(target.uri, Result.UNREACHABLE, reason=f"cannot resolve: {e}")
        if not candidates:
            return Attempt(target.uri, Result.UNREACHABLE, reason="no address for the target")
        self.b_tls = ClientTlsOptions(verify=target.tls.verify, ca_pem=target.tls.ca_pem,
                                      client_cert_pem=target.tls.client_cert_pem,
                                      client_key_pem=target.tls.client_key_pem)
        self.b_server_name = uri.host if isinstance(uri, SipUri) else None
        request = self._client_invite(target, caller, caller_name, candidates[0], bytes(offer))
        self.b.sip_call_id = request.call_id
        self.b2bua.bind_sip_call_id(request.call_id, self)
        self.b_target = target

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.decision.ring_timeout
        realms: set[str] = set()
        await self.emit("dialing", target=target.uri, transport=candidates[0].transport,
                        dest=f"{candidates[0].host}:{candidates[0].port}", candidates=len(candidates))
        while True:
            handle = await self.ep.request(request, candidates, tls=self.b_tls, server_name=self.b_server_name)
            self.b_handle = handle
            final, why = await self._await_final(handle, deadline)
            if why == "ring-timeout":
                rang = any(100 < r.status < 200 for r in handle.responses)
                await self.emit("ring_timeout", target=target.uri, rang=rang)
                if final is not None and final.is_success:
                    await self._hang_up_late_answer(handle)
                return Attempt(target.uri, Result.NO_ANSWER if rang else Result.UNREACHABLE,
                               reason="ring timeout", early_media=self.early_media)
            if why == "carrier-cancel":
                if final is not None and final.is_success:
                    await self._hang_up_late_answer(handle)
                return Attempt(target.uri, Result.CANCELED, 487, "caller cancelled")
            assert final is not None
            if final.status in (401, 407):
                auth = self._answer(final, request, target, realms)
                if isinstance(auth, Attempt):
                    await self.emit("auth_failed", target=target.uri, status=final.status, reason=auth.reason)
                    return auth
                request = auth
                continue
            if final.is_success:
                ok = await self._client_answered(handle, final, target)
                return None if ok is None else ok
            rang = any(100 < r.status < 200 for r in handle.responses)
            result = classify(final.status, rang=rang)
            if handle.error:  # a local 408/503: no response at all, or transport failure
                result = Result.UNREACHABLE
            retry = final.retry_after.seconds if final.retry_after else None  # type: ignore[union-attr]
            reason = handle.error or final.reason
            await self.emit("attempt_failed", target=target.uri, sip_status=final.status, reason=reason,
                            result=str(result), attempts=[f"{a.transport}:{a.host}:{a.port} {o}" for a, o in handle.attempts])
            return Attempt(target.uri, result, final.status, reason, early_media=self.early_media, retry_after=retry)

    def _answer(self, challenge: Response, sent: Request, target: SipTarget, realms: set[str]) -> Request | Attempt:
        """A new INVITE with credentials (§22.2), or the attempt's end when we cannot."""
        if not target.username:
            return Attempt(target.uri, Result.AUTH_FAILED, challenge.status, "challenged but no SIP credentials are configured")
        # Retry the exact request we sent (minus its Via); a new CSeq for the new transaction (§8.1.3.5).
        request = Request(sent.method, sent.uri, sent.headers.copy(), sent.body)
        answer = answer_challenge(challenge, request, username=target.username, password=target.password or "")
        if answer is None:
            return Attempt(target.uri, Result.AUTH_FAILED, challenge.status, "no supported digest challenge")
        realm = answer.challenge.realm or ""
        if realm in realms and not answer.stale:
            # The same credentials were refused for this realm: stop, do not loop (§22.2).
            return Attempt(target.uri, Result.AUTH_FAILED, challenge.status, f"credentials refused for realm {realm!r}")
        realms.add(realm)
        request.headers.remove(answer.header)
        request.headers.add(answer.header, answer.value)
        cseq = request.cseq
        request.headers.set("CSeq", f"{cseq.seq + 1} {cseq.method}")
        request.headers.remove("Via")
        self.b2bua.count("auth_challenges")
        asyncio.get_running_loop().create_task(
            self.emit("challenged", target=target.uri, status=challenge.status, realm=realm,
                      algorithm=answer.challenge.algorithm or "MD5", stale=answer.stale))
        return request

    async def _await_final(self, handle: ClientRequest, deadline: float) -> tuple[Response | None, str]:
        """Relay provisional responses until the final one; CANCEL at the ring timeout or
        when the carrier cancels. Returns (final or None, why)."""
        it = handle.__aiter__()
        loop = asyncio.get_running_loop()
        cancel_wait = asyncio.ensure_future(self.incoming.cancelled.wait())
        why = ""
        try:
            while True:
                timeout = max(0.0, deadline - loop.time()) if not why else 5.0
                nxt = asyncio.ensure_future(anext(it))
                done, _ = await asyncio.wait({nxt, cancel_wait}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if nxt not in done:
                    nxt.cancel()
                    if why:  # cancelled and no final within the grace: abandon the transaction
                        return None, why
                    why = "carrier-cancel" if cancel_wait in done else "ring-timeout"
                    await handle.cancel(Reason("SIP", 487, "caller cancelled" if why == "carrier-cancel" else "ring timeout"))
                    if not any(100 <= r.status < 200 for r in handle.responses) and why == "ring-timeout":
                        return None, why  # no 1xx: nothing to CANCEL yet (§9.1); move on
                    if cancel_wait in done:
                        cancel_wait = asyncio.ensure_future(asyncio.Event().wait())
                    continue
                try:
                    resp = nxt.result()
                except StopAsyncIteration:
                    return handle.final_response, why or "final"
                if resp.status >= 200:
                    return resp, why or "final"
                if not why:
                    await self._provisional(resp)
        finally:
            cancel_wait.cancel()

    async def _provisional(self, resp: Response) -> None:
        if resp.status == 100:
            return
        if "100rel" in {v.strip().lower() for v in resp.headers.values("Require")}:
            await self._prack(resp)
        sdp_media: NegotiatedMedia | None = None
        if resp.body and self.b.local_sdp is not None:
            checked = validate_answer(self.b.local_sdp, resp.body)
            if isinstance(checked, NegotiatedMedia):
                sdp_media = checked
        await self.emit("ringing", status=resp.status, early_media=sdp_media is not None)
        if self.incoming.answered:
            return
        if sdp_media is not None and self.a_answer is not None:
            # 183 with SDP: early media through the worker (and no crank-back after it).
            self.b.media = sdp_media
            await self._update_media("b", sdp_media)
            self.early_media = True
            self.incoming.respond(183, body=bytes(self.a_answer), content_type=SDP)
        else:
            self.incoming.respond(180 if resp.status in (180, 183) else resp.status)

    async def _prack(self, resp: Response) -> None:
        """Acknowledge a reliable provisional response (RFC 3262 §7.2): PRACK in its early
        dialog with RAck = RSeq, CSeq number and method of the INVITE."""
        handle = self.b_handle
        rseq = (resp.headers.get("RSeq") or "").strip()
        if handle is None or not rseq.isdecimal():
            return
        dialog = next((d for d in handle.early_dialogs if d.id.remote_tag == resp.to.tag), None)
        if dialog is None:
            return
        cseq = resp.cseq
        prack = dialog.create_request("PRACK", headers=[("RAck", f"{rseq} {cseq.seq} {cseq.method}")])
        try:
            await self.ep.request(prack, tls=self.b_tls, server_name=self.b_server_name)
        except Exception as e:  # the INVITE's outcome tells the rest
            log.info("PRACK not sent: %s", e)

    async def _hang_up_late_answer(self, handle: ClientRequest) -> None:
        """A 2xx that crossed our CANCEL: ACK it and BYE it (§15)."""
        try:
            await handle.ack()
            if handle.dialog is not None:
                bye = handle.dialog.create_request("BYE", headers=[("Reason", 'SIP;cause=487;text="cancelled"')])
                await self.ep.request(bye, tls=self.b_tls, server_name=self.b_server_name)
        except Exception as e:
            log.info("could not end a late answer: %s", e)

    async def _client_answered(self, handle: ClientRequest, final: Response, target: SipTarget) -> Attempt | None:
        await handle.ack()
        assert self.b.local_sdp is not None
        media = validate_answer(self.b.local_sdp, final.body) if final.body else SdpRejection("200 OK without SDP")
        if isinstance(media, SdpRejection):
            await self._bye_b(f"unacceptable answer: {media.reason}", cause=488)
            await self.emit("attempt_failed", target=target.uri, sip_status=488, reason=media.reason,
                            result=str(Result.MEDIA_FAILED))
            return Attempt(target.uri, Result.MEDIA_FAILED, 488, media.reason)
        self.b.media = media
        await self._update_media("b", media)
        if self.incoming.cancelled.is_set():
            await self._bye_b("caller cancelled", cause=487)
            return Attempt(target.uri, Result.CANCELED, 487, "caller cancelled")
        assert self.allocation is not None
        if self.a_answer is not None:
            body = bytes(self.a_answer)
        else:  # delayed offer: we offer in the 200 OK, the carrier answers in its ACK (§13.2.1)
            a = self.allocation.a
            self.a.local_sdp = build_offer(a.address, a.port, telephone_event_pt=a.telephone_event_pt)
            body = bytes(self.a.local_sdp)
        self.incoming.respond(200, body=body, content_type=SDP, headers=self._session_timer_headers())
        self.answered = True
        self.state.answered_at = time.time()
        await self.emit("answered", target=target.uri, secure=media.secure,
                        pdd_ms=round((self.state.answered_at - self.state.started) * 1000))
        self.b2bua.count("answered")
        if self.decision and self.decision.send_digits:
            asyncio.get_running_loop().create_task(self._send_digits(self.decision.send_digits))
        return None

    def _session_timer_headers(self) -> list[tuple[str, str]]:
        """RFC 4028 §9: when the carrier asked for a session timer, accept its interval with
        the carrier as refresher, and expect a refresh (re-INVITE or UPDATE) in time."""
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
        over and we send BYE both ways (RFC 4028 §10, at the expiry itself)."""
        if self.session_expires is None:
            return
        if self._session_timer is not None:
            self._session_timer.cancel()
        loop = asyncio.get_running_loop()
        self._session_timer = loop.call_later(
            self.session_expires, lambda: loop.create_task(self.hang_up("session expired", by="switchboard", cause=408)))

    async def _send_digits(self, digits: str) -> None:
        assert self.allocation is not None
        try:
            await asyncio.sleep(0.5)  # let the client's media start before the first digit
            await self.backends.dtmf(self.allocation.worker_id, MediaDtmf(call_id=self.id, leg="b", digits=digits))
            await self.emit("send_digits", digits=digits)
        except Exception as e:
            await self.emit("send_digits_failed", digits=digits, reason=str(e))

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
        await asyncio.gather(self._bye_a(reason, cause), self._bye_b(reason, cause), return_exceptions=True)
        self.ended.set()

    async def _abandon_b(self, reason: str) -> None:
        """The call failed on our side: leave nothing up on the client's side either."""
        h = self.b_handle
        if h is None:
            return
        if not h.done:
            await h.cancel(Reason("SIP", 503, reason[:60]))
        elif h.dialog is not None:
            await self._bye_b(reason, cause=503)

    async def _bye_a(self, reason: str, cause: int = 200) -> None:
        dialog = self.incoming.dialog
        if dialog is None or dialog.terminated:
            return
        bye = dialog.create_request("BYE", headers=[("Reason", f'SIP;cause={cause};text="{reason}"')])
        h = await self.ep.request(bye)
        await self._bounded(h.final())

    async def _bye_b(self, reason: str, cause: int = 200) -> None:
        h = self.b_handle
        if h is None or h.dialog is None or h.dialog.terminated:
            return
        bye = h.dialog.create_request("BYE", headers=[("Reason", f'SIP;cause={cause};text="{reason}"')])
        r = await self.ep.request(bye, tls=self.b_tls, server_name=self.b_server_name)
        await self._bounded(r.final())

    @staticmethod
    async def _bounded(aw: Awaitable[Any], timeout: float = 5.0) -> None:
        try:
            await asyncio.wait_for(aw, timeout)
        except (TimeoutError, Exception):
            pass

    async def on_request(self, incoming: IncomingRequest, leg: str) -> None:
        """An in-dialog request from either side."""
        m = incoming.method
        if m == "ACK":
            if leg == "a" and incoming.request.body and self.a.local_sdp is not None and self.a.media is None:
                media = validate_answer(self.a.local_sdp, incoming.request.body)
                if isinstance(media, NegotiatedMedia):
                    self.a.media = media
                    await self._update_media("a", media)
                else:
                    await self.hang_up(f"unacceptable answer in ACK: {media.reason}", by="switchboard", cause=488)
            return
        if m == "BYE":
            incoming.respond(200)
            if self.ended.is_set():
                return
            self.end_reason, self.ended_by = "normal clearing", "caller" if leg == "a" else "callee"
            await (self._bye_b("normal clearing") if leg == "a" else self._bye_a("normal clearing"))
            self.ended.set()
            return
        if m in ("INVITE", "UPDATE"):
            await self._refresh(incoming, leg)
            return
        if m in ("OPTIONS", "INFO"):
            incoming.respond(200)
            return
        incoming.respond(405, headers=[("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO")])

    async def _refresh(self, incoming: IncomingRequest, leg: str) -> None:
        """A re-INVITE or UPDATE from one side (hold, resume, new address, session refresh):
        answered here from that leg's worker side, the worker updated (RFC 3264 §8).
        The other leg keeps its media: the worker bridges both."""
        side = self.a if leg == "a" else self.b
        timer_headers = self._session_timer_headers() if leg == "a" else []
        if not incoming.request.body:
            body = bytes(side.local_sdp) if side.local_sdp is not None else b""
            incoming.respond(200, body=body, content_type=SDP if body else None, headers=timer_headers)
            return
        assert self.allocation is not None
        ours = self.allocation.a if leg == "a" else self.allocation.b
        key = None
        if ours.secure and ours.crypto is not None:
            key = base64.b64decode(ours.crypto.key_salt_b64)
        result = answer_offer(incoming.request.body, ours.address, ours.port, srtp_key=key,
                              require_srtp=leg == "b" and ours.secure, pad_base64=self.settings.srtp_key_padding)
        if isinstance(result, SdpRejection):
            incoming.respond(result.status, result.reason)
            return
        side.sdp_version += 1
        origin = result.sdp.origin
        if origin is not None and side.local_sdp is not None and side.local_sdp.origin is not None:
            origin.session_id = side.local_sdp.origin.session_id
            origin.session_version = side.sdp_version
            result.sdp.set_origin(origin)
        side.local_sdp = result.sdp
        side.media = result.media
        await self._update_media(leg, result.media)
        incoming.respond(200, body=bytes(result.sdp), content_type=SDP, headers=timer_headers)
        await self.emit("hold" if result.media.on_hold else "media_refresh", leg=leg, method=incoming.method)

    async def on_media_timeout(self) -> None:
        if self.answered:
            await self.hang_up("media timeout", by="switchboard", cause=408)

    # -- the end

    async def _carrier_cancelled(self) -> None:
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
            self.incoming.respond(status, _phrase(status, reason), headers=headers)
        self.end_reason = reason
        self.b2bua.count(f"failed_{status}")
        await self.emit("failed", sip_status=status, reason=reason,
                        result=record_result(self.state.attempts, answered=False),
                        attempts=[{"target": a.target, "result": str(a.result), "status": a.status,
                                   "reason": a.reason} for a in self.state.attempts])

    async def _release(self) -> None:
        if self._session_timer is not None:
            self._session_timer.cancel()
        stats = None
        if self.allocation is not None:
            stats = await self.backends.release(self.allocation.worker_id, self.id, self.end_reason or "normal")
        if self.answered:
            self.state.ended_at = time.time()
            duration = self.state.ended_at - (self.state.answered_at or self.state.ended_at)
            await self.emit("ended", by=self.ended_by or "switchboard", reason=self.end_reason or "normal clearing",
                            duration=round(duration, 3), result="completed",
                            media=stats.model_dump(exclude={"schema_version"}) if stats else None)
        elif self.state.attempts and self.state.attempts[-1].result == Result.CANCELED:
            await self.emit("ended", by="caller", reason="caller cancelled", duration=0, result="canceled")


def _phrase(status: int, reason: str) -> str:
    # The reason phrase is for humans reading traces: keep the standard one when we have it.
    from ..sip.message import REASON_PHRASES

    return REASON_PHRASES.get(status, reason[:60] or "Failed")


__all__ = ["Call", "Callable", "NameAddress"]
