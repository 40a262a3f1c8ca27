"""The client leg (B), run: the I/O of `client_fsm.ClientLegMachine` — each target's INVITE,
the digest challenge, PRACK, the answer, and the client's own in-dialog requests.

It reports to a `LegPeer` — the carrier's side of the call. On one node that is the Call
itself; across regions it is a proxy over the bus (`remote.py`), so a leg originated in
another region runs exactly this code."""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from proto import nat
from proto.events import (
    AttemptFailed,
    AuthFailed,
    CallEventBody,
    Challenged,
    Dialing,
    Hold,
    MediaRefresh,
    NatDetected,
    Ringing,
    RingTimeout,
    SendDigits,
    SendDigitsFailed,
)
from proto.messages import MediaAllocation, MediaDtmf, RoutingDecision, SipTarget

from .. import metrics
from ..errors import CallSetupError
from ..sip.digest import answer_challenge
from ..sip.headers import Reason
from ..sip.message import Request, Response
from ..sip.sdp import NegotiatedMedia, SdpRejection, SessionDescription, build_offer, validate_answer
from ..sip.uri import SipUri, parse_uri
from ..transport import Addr, ClientTlsOptions
from . import pbx, session_timer
from .client_fsm import ClientLegMachine, Do, Input
from .context import LegContext, LegPeer
from .helpers import ALLOW_UAC, SDP, answer_refresh, bye_with_reason, media_update, send_info
from .policy import Attempt, Result, attempt, classify
from .runner import FollowUp, Runner

if TYPE_CHECKING:
    from ..endpoint import ClientRequest, IncomingRequest

log = logging.getLogger("switchboard.signaling.client_leg")

In = Input


@dataclass(frozen=True)
class Provisional:
    response: Response
    media: NegotiatedMedia | None  # usable SDP in it: early media


class ClientLeg(Runner[Input, Do]):
    def __init__(self, ctx: LegContext, call_id: str, decision: RoutingDecision, allocation: MediaAllocation,
                 caller: str | None, caller_name: str | None, peer: LegPeer,
                 carrier_headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(ctx, ClientLegMachine([t.uri for t in decision.targets], decision.ring_timeout))
        self.machine: ClientLegMachine
        self.ep = ctx.endpoint
        self.settings = ctx.settings
        self.id = call_id
        self.decision = decision
        self.targets = list(decision.targets)  # and the Contacts of 3xx answers, after the one redirected
        self._redirects = 0
        self._se_interval = session_timer.REQUESTED  # what the INVITE asks (a 422 raises it once)
        self._se_retried = False
        self.session: session_timer.SessionTimer | None = None  # what the PBX's 2xx set
        self._last_refresh = 0.0
        self.allocation = allocation
        self.caller = caller
        self.caller_name = caller_name
        self.peer = peer
        self.carrier_headers = carrier_headers or []  # picked by pbx.carrier_headers on the carrier's node
        self.detached = False  # being transferred away from (REFER): its hang-up does not end the call
        self.sip_call_id = ""
        self._sip_call_ids: list[str] = []
        self.local_sdp: SessionDescription | None = None
        self.media: NegotiatedMedia | None = None
        self.sdp_version = 1
        self.handle: ClientRequest | None = None
        self.tls: ClientTlsOptions | None = None
        self.server_name: str | None = None
        self._candidates: list[Addr] = []
        self._realms: set[str] = set()
        self._tx_attempts: list[str] = []
        self._offered = False
        """The worker's B side went into an offer already: the next target gets it fresh."""
        self._nat_dest: Addr | None = None
        """Where in-dialog requests go when the client's Contact is private (proto.nat)."""
        self._nat_reported = False
        self._error: CallSetupError | None = None
        self._outcome: asyncio.Future[list[Attempt] | None] = asyncio.get_running_loop().create_future()

    @property
    def answered(self) -> bool:
        return self._outcome.done() and not self._outcome.cancelled() and self._outcome.exception() is None \
            and self._outcome.result() is None

    @property
    def ended(self) -> bool:
        return self.machine.terminal

    @property
    def target(self) -> SipTarget:
        return self.targets[self.machine.index]

    async def emit(self, body: CallEventBody) -> None:
        await self.ctx.events.emit(self.id, body)

    @property
    def _source(self) -> Addr | None:
        """Where the client's signaling comes from: the address its INVITE transaction
        reached, the one its responses come from."""
        target = getattr(self.handle, "target", None)
        return target if isinstance(target, Addr) else None

    async def update_media(self, media: NegotiatedMedia) -> None:
        source = self._source
        latch = nat.latch_host(self.decision.nat, media.remote_address, source.host if source else None)
        if latch is not None and source is not None and not self._nat_reported:
            self._nat_reported = True
            await self.emit(NatDetected(leg="b", sdp_address=media.remote_address, source=f"{source.host}:{source.port}"))
        await self.ctx.backends.update(self.allocation.worker_id, media_update(self.id, "b", media, latch))

    def _fix_contact(self, remote_target: str) -> Addr | None:
        """A private Contact cannot be reached from here: send in-dialog requests (and
        the ACK) to where the responses came from, as Kamailio's fix_nated_contact does."""
        source = self._source
        try:
            contact = parse_uri(remote_target)
        except Exception:
            return None
        host = contact.host if isinstance(contact, SipUri) else None
        if source is None or not nat.contact_is_nated(self.decision.nat, host, source.host):
            return None
        return source

    # -- what the carrier's side calls (ClientLegHandle)

    async def run(self) -> list[Attempt] | None:
        """Every target until one answers (None) or the attempts say stop (the attempts)."""
        await self.send(In.START)
        return await self._outcome

    async def failed(self, e: Exception) -> None:
        """The carrier's side ends the call (e.g. the worker is gone): it gets the error."""
        log.warning("client leg failed: %r", e, extra={"call_id": self.id})
        if not self._outcome.done():
            self._outcome.set_exception(e)
        await self._abort()

    async def _abort(self) -> None:
        """The leg's task is over by an error: leave nothing up at the client."""
        h = self.handle
        try:
            if h is not None and not h.done:
                await h.cancel(Reason("SIP", 503, "failed"))
            elif h is not None and h.dialog is not None and not h.dialog.terminated and self.answered:
                await self.ep.request(bye_with_reason(h.dialog, 503, "failed"), self._nat_dest, tls=self.tls,
                                      server_name=self.server_name)
        except Exception as e:
            log.info("client leg not cleaned up: %s", e)

    async def wait_ended(self) -> None:
        if self.active:
            await self.over.wait()

    async def cancel(self) -> None:
        await self.send(In.PEER_CANCEL)

    async def hang_up(self, reason: str, cause: int = 200) -> None:
        """BYE the answered client (RFC 3326 Reason), or CANCEL a client still ringing."""
        await self.send(In.HANG_UP, (cause, reason))

    async def relay_info(self, request: Request) -> int:
        """Pass the carrier's INFO on to the client (RFC 6086: in the dialog, same body)."""
        h = self.handle
        if h is None or h.dialog is None or h.dialog.terminated:
            return 481
        return await send_info(self.ep, h.dialog, request, tls=self.tls, server_name=self.server_name,
                               dest=self._nat_dest)

    def release(self) -> None:
        for sip_call_id in self._sip_call_ids:
            self.ctx.directory.unbind(sip_call_id)

    # -- the client's own requests in the dialog

    async def on_request(self, incoming: IncomingRequest) -> None:
        m = incoming.method
        if m == "ACK":
            return
        current = incoming.request.call_id == self.sip_call_id
        if m == "BYE":
            incoming.respond(200)
            if current:
                await self.send(In.RECV_BYE)
            return
        if m in ("INVITE", "UPDATE"):
            if current and not self.machine.terminal:
                await self.send(In.RECV_REFRESH, incoming)
            else:
                incoming.respond(481)
            return
        if m == "INFO":
            incoming.respond(await self.peer.relay_info(incoming.request))
            return
        if m == "OPTIONS":
            incoming.respond(200)
            return
        if m == "REFER":
            if not current or self.machine.state.name != "CONFIRMED":
                incoming.respond(481)
            else:
                await self.peer.refer(self, incoming)
            return
        incoming.respond(405, headers=[("Allow", ALLOW_UAC)])

    def unprocessed(self, item: object) -> None:
        assert isinstance(item, tuple)
        payload = item[1]
        if payload is not None and hasattr(payload, "respond") and not payload.answered:
            payload.respond(481)

    # -- the machine's commands

    async def do(self, do: Do, payload: object) -> FollowUp:  # noqa: C901 - one branch per command
        m = self.machine
        if do is Do.DIAL:
            return await self._dial()
        if do in (Do.ABANDON, Do.SEND_CANCEL):
            if self.handle is not None:
                cause, text = m.reason
                await self.handle.cancel(Reason("SIP", cause, text[:60]))
            if do is Do.ABANDON:
                self._gen += 1  # its responses no longer count
        elif do is Do.PRACK:
            assert isinstance(payload, Provisional)
            if "100rel" in {v.strip().lower() for v in payload.response.headers.values("Require")}:
                await self._prack(payload.response)
        elif do is Do.RINGING:
            assert isinstance(payload, Provisional)
            await self.emit(Ringing(status=payload.response.status, early_media=payload.media is not None))
        elif do is Do.EARLY_MEDIA:
            # 183 with SDP: early media through the worker (and no crank-back after it).
            assert isinstance(payload, Provisional) and payload.media is not None
            self.media = payload.media
            await self.update_media(payload.media)
        elif do is Do.PROGRESS:
            assert isinstance(payload, Provisional)
            await self.peer.progress(payload.response.status, payload.media is not None)
        elif do is Do.ANSWER_CHALLENGE:
            assert isinstance(payload, Response)
            return await self._answer_challenge(payload)
        elif do is Do.AUTH_FAILED_EVENT:
            assert isinstance(payload, Attempt)
            await self.emit(AuthFailed(target=payload.target, status=payload.status or 0, reason=payload.reason))
        elif do is Do.ATTEMPT_FAILED:
            assert isinstance(payload, Attempt)
            tried = [] if payload.result == Result.MEDIA_FAILED else self._tx_attempts  # addresses of this INVITE
            await self.emit(AttemptFailed(target=payload.target, sip_status=payload.status or 0, reason=payload.reason,
                                          result=payload.result, attempts=tried))
        elif do is Do.RING_TIMEOUT_EVENT:
            timed_out = m.attempts[-1]  # the machine may be on the next target already
            await self.emit(RingTimeout(target=timed_out.target, rang=timed_out.result == Result.NO_ANSWER))
        elif do is Do.FAILOVER:
            metrics.FAILOVERS.labels("target").inc()
        elif do is Do.ACK:
            if self.handle is not None:
                if self.handle.dialog is not None:
                    self._nat_dest = self._fix_contact(self.handle.dialog.remote_target)
                await self._ack(self.handle)
        elif do is Do.CHECK_ANSWER:
            assert isinstance(payload, Response)
            return await self._check_answer(payload)
        elif do is Do.ASK_PEER:
            assert self.media is not None
            ok = await self.peer.answered(m.target, self.media.secure)
            return (In.PEER_ACCEPTED if ok else In.PEER_REFUSED), None
        elif do is Do.BYE_ANSWER:
            if self.handle is not None and self.handle.dialog is not None:
                self.spawn(self._bye(bye_with_reason(self.handle.dialog, *m.reason), report=False))
        elif do is Do.SEND_BYE:
            h = self.handle
            if h is None or h.dialog is None or h.dialog.terminated:
                return In.BYE_DONE, None
            self.spawn(self._bye(bye_with_reason(h.dialog, *m.reason), report=True))
        elif do is Do.SEND_DIGITS:
            if self.decision.send_digits:
                self.spawn(self._send_digits(self.decision.send_digits))
        elif do is Do.PEER_ENDED:
            if not self.detached:
                await self.peer.client_ended("normal clearing")
        elif do is Do.ANSWER_REFRESH:
            assert payload is not None
            await self.answering(payload, self._refresh(payload))  # type: ignore[arg-type]
        elif do is Do.REJECT_481:
            payload.respond(481)  # type: ignore[attr-defined]
        elif do is Do.REPORT_ANSWERED:
            self._settle(None)
            self.spawn(self._key_lifetime())
            if self.session is not None:
                self.spawn(self._session_timer())
        elif do is Do.REPORT_FAILED:
            self._settle(list(m.attempts))
        elif do is Do.RAISE:
            if not self._outcome.done():
                self._outcome.set_exception(self._error or CallSetupError(503, "media unavailable"))
        else:  # pragma: no cover - the table only uses the commands above
            raise AssertionError(do)
        return None

    def _settle(self, outcome: list[Attempt] | None) -> None:
        if not self._outcome.done():
            self._outcome.set_result(outcome)

    # -- one target

    def _invite(self, target: SipTarget, first: Addr, offer: bytes) -> Request:
        host = self.settings.public_address
        user = self.caller or "anonymous"
        disp = f'"{self.caller_name}" ' if self.caller_name else ""
        # RFC 3262: we PRACK reliable provisionals (some PBXs require it, 421 otherwise);
        # RFC 4028: we take part in session timers.
        headers: list[tuple[str, str]] = [("Supported", "100rel, timer")]
        pai = f"<sip:{user}@{host}>" if self.settings.p_asserted_identity else None
        parts = pbx.client_invite(target.uri, self.decision, self.id, host, self.carrier_headers, pai)
        headers += session_timer.request_headers(self._se_interval)
        return self.ep.create_request(
            "INVITE", parts.request_uri, from_=f"{disp}<sip:{user}@{host}>", to=parts.to,
            transport=first.transport, body=offer, content_type=SDP, headers=headers + parts.headers)

    async def _dial(self) -> FollowUp:
        """The target's offer and RFC 3263 candidates (the endpoint fails over between
        them), then its INVITE."""
        target = self.target
        b = self.allocation.b
        if self._offered or b.secure != target.secure_media:
            # Each attempt gets the media it needs: its own SRTP key, or plain RTP; what an
            # earlier target's answer told the worker is forgotten (no mixed-target 503s).
            try:
                b = await self.ctx.backends.rekey(self.allocation.worker_id, self.id, target.secure_media)
            except CallSetupError as e:
                return In.UNUSABLE, attempt(target.uri, Result.MEDIA_FAILED, reason=e.reason)
            self.allocation.b = b
        self._offered = True
        self._nat_dest = None
        self._nat_reported = False
        key = base64.b64decode(b.crypto.key_salt_b64) if (b.secure and b.crypto) else None
        if target.secure_media and key is None:
            return In.UNUSABLE, attempt(target.uri, Result.MEDIA_FAILED,
                                        reason="SRTP required but the worker gave no key")
        offer = build_offer(b.address, b.port, srtp_key=key if target.secure_media else None,
                            telephone_event_pt=b.telephone_event_pt)
        self.local_sdp = offer
        try:
            uri = parse_uri(target.uri)
            candidates = await self.ep.locator(target.uri)
        except Exception as e:
            return In.UNUSABLE, attempt(target.uri, Result.UNREACHABLE, reason=f"cannot resolve: {e}")
        if not candidates:
            return In.UNUSABLE, attempt(target.uri, Result.UNREACHABLE, reason="no address for the target")
        self.tls = ClientTlsOptions(verify=target.tls.verify, ca_pem=target.tls.ca_pem,
                                    client_cert_pem=target.tls.client_cert_pem,
                                    client_key_pem=target.tls.client_key_pem)
        self.server_name = uri.host if isinstance(uri, SipUri) else None
        self._candidates = candidates
        self._realms = set()
        self._se_interval, self._se_retried = session_timer.REQUESTED, False
        request = self._invite(target, candidates[0], bytes(offer))
        self.sip_call_id = request.call_id
        self._sip_call_ids.append(request.call_id)
        self.ctx.directory.bind(request.call_id, self)
        await self.emit(Dialing(target=target.uri, transport=candidates[0].transport,
                                dest=f"{candidates[0].host}:{candidates[0].port}", candidates=len(candidates)))
        await self._send(request)
        return In.DIALED, None

    async def _send(self, request: Request) -> None:
        self._gen += 1
        handle = await self.ep.request(request, self._candidates, tls=self.tls, server_name=self.server_name)
        self.handle = handle
        self.spawn(self._read(handle, self._gen))

    async def _read(self, handle: ClientRequest, gen: int) -> None:
        """The INVITE's responses as the machine's inputs."""
        target = self.target
        async for resp in handle:
            if gen != self._gen:
                return
            if resp.status == 100:
                await self.send(In.RECV_100, resp, gen=gen)
            elif resp.status < 200:
                media = None
                if resp.body and self.local_sdp is not None:
                    checked = validate_answer(self.local_sdp, resp.body)
                    media = checked if isinstance(checked, NegotiatedMedia) else None
                await self.send(In.RECV_1XX_SDP if media else In.RECV_1XX, Provisional(resp, media), gen=gen)
            elif resp.is_success:
                await self.send(In.RECV_2XX, resp, gen=gen)
            elif resp.status in (401, 407):
                await self.send(In.RECV_CHALLENGE, resp, gen=gen)
            elif resp.status == 422 and not self._se_retried and session_timer.min_se(resp):
                # RFC 4028 §7.2: once more with the PBX's Min-SE; a new INVITE as for a challenge.
                await self.send(In.RECV_CHALLENGE, resp, gen=gen)
            else:
                rang = any(100 < r.status < 200 for r in handle.responses)
                result = classify(resp.status, rang=rang)
                if handle.error:  # a local 408/503: no response at all, or transport failure
                    result = Result.UNREACHABLE
                elif 300 <= resp.status < 400 and self._redirect(resp):
                    result = Result.REDIRECTED
                retry = resp.retry_after.seconds if resp.retry_after else None
                tried = attempt(target.uri, result, resp.status, handle.error or resp.reason, retry_after=retry)
                self._tx_attempts = [f"{a.transport}:{a.host}:{a.port} {o}" for a, o in handle.attempts]
                await self.send(ClientLegMachine.final_input(tried), tried, gen=gen)
            if resp.status >= 200:
                return

    def _redirect(self, resp: Response) -> bool:
        """A 3xx: its Contacts become the next targets, as the receiving number allows."""
        if self._redirects >= pbx.MAX_REDIRECTS:
            return False
        tried = [t.uri for t in self.targets[: self.machine.index + 1]]
        new = pbx.redirect_targets(resp.contacts, self.target, self.decision.pbx.follow_redirects, tried,
                                   self.decision.targets)
        if not new:
            return False
        self._redirects += 1
        at = self.machine.index + 1
        self.targets[at:at] = new
        self.machine.targets[at:at] = [t.uri for t in new]
        return True

    async def _answer_challenge(self, challenge: Response) -> FollowUp:
        """A new INVITE with credentials (§22.2), or the attempt's end when we cannot."""
        assert self.handle is not None
        target = self.target
        if challenge.status == 422:
            return await self._retry_interval(challenge)
        if not target.username:
            return In.AUTH_FAILED, attempt(target.uri, Result.AUTH_FAILED, challenge.status,
                                           "challenged but no SIP credentials are configured")
        # Retry the exact request we sent (minus its Via); a new CSeq for the new transaction (§8.1.3.5).
        sent = self.handle.original
        request = Request(sent.method, sent.uri, sent.headers.copy(), sent.body)
        answer = answer_challenge(challenge, request, username=target.username, password=target.password or "")
        if answer is None:
            return In.AUTH_FAILED, attempt(target.uri, Result.AUTH_FAILED, challenge.status,
                                           "no supported digest challenge")
        realm = answer.challenge.realm or ""
        if realm in self._realms and not answer.stale:
            # The same credentials were refused for this realm: stop, do not loop (§22.2).
            return In.AUTH_FAILED, attempt(target.uri, Result.AUTH_FAILED, challenge.status,
                                           f"credentials refused for realm {realm!r}")
        self._realms.add(realm)
        request.headers.remove(answer.header)
        request.headers.add(answer.header, answer.value)
        cseq = request.cseq
        request.headers.set("CSeq", f"{cseq.seq + 1} {cseq.method}")
        request.headers.remove("Via")
        metrics.AUTH_CHALLENGES.labels(str(challenge.status)).inc()
        await self.emit(Challenged(target=target.uri, status=challenge.status, realm=realm,
                                   algorithm=answer.challenge.algorithm or "MD5", stale=answer.stale))
        await self._send(request)
        return In.CHALLENGE_ANSWERED, None

    async def _retry_interval(self, too_small: Response) -> FollowUp:
        """RFC 4028 §7.2: the INVITE again with Session-Expires and Min-SE set to the 422's
        Min-SE, a new CSeq (§8.1.3.5); once per target."""
        assert self.handle is not None
        minimum = session_timer.min_se(too_small) or session_timer.REQUESTED
        self._se_retried = True
        self._se_interval = max(minimum, session_timer.MIN_SE)
        sent = self.handle.original
        request = Request(sent.method, sent.uri, sent.headers.copy(), sent.body)
        for name, value in session_timer.request_headers(self._se_interval, self._se_interval):
            request.headers.set(name, value)
        cseq = request.cseq
        request.headers.set("CSeq", f"{cseq.seq + 1} {cseq.method}")
        request.headers.remove("Via")
        await self._send(request)
        return In.CHALLENGE_ANSWERED, None

    async def _prack(self, resp: Response) -> None:
        """Acknowledge a reliable provisional response (RFC 3262 §7.2): PRACK in its early
        dialog with RAck = RSeq, CSeq number and method of the INVITE."""
        handle = self.handle
        rseq = (resp.headers.get("RSeq") or "").strip()
        if handle is None or not rseq.isdecimal():
            return
        dialog = next((d for d in handle.early_dialogs if d.id.remote_tag == resp.to.tag), None)
        if dialog is None:
            return
        cseq = resp.cseq
        prack = dialog.create_request("PRACK", headers=[("RAck", f"{rseq} {cseq.seq} {cseq.method}")])
        try:
            await self.ep.request(prack, self._fix_contact(dialog.remote_target), tls=self.tls,
                                  server_name=self.server_name)
        except Exception as e:  # the INVITE's outcome tells the rest
            log.info("PRACK not sent: %s", e)

    async def _check_answer(self, final: Response) -> FollowUp:
        assert self.local_sdp is not None
        media = validate_answer(self.local_sdp, final.body) if final.body else SdpRejection("200 OK without SDP")
        if isinstance(media, SdpRejection):
            return In.MEDIA_BAD, attempt(self.target.uri, Result.MEDIA_FAILED, 488, media.reason)
        self.media = media
        dialog = self.handle.dialog if self.handle is not None else None
        if dialog is not None:
            self._nat_dest = self._fix_contact(dialog.remote_target)
            if self._nat_dest is not None:
                d = self._nat_dest
                await self.emit(NatDetected(leg="b", sdp_address=media.remote_address, contact=dialog.remote_target,
                                            source=f"{d.host}:{d.port}"))
                self._nat_reported = True
        self.session = session_timer.from_answer(final)
        try:
            await self.update_media(media)
        except CallSetupError as e:
            self._error = e
            return In.MEDIA_ERROR, None
        return In.MEDIA_OK, None

    async def _key_lifetime(self) -> None:
        """Honour the lifetime of the client's SRTP master key (RFC 4568 §6.1: the key
        must not be used past it): if the call could outlive it, end the call shortly
        before it runs out, unless a re-INVITE brought a new key meanwhile. Phones send
        `|2^31` (Grandstream): 497 days at 50 packets/s, never reached."""
        while not self.machine.terminal and self.media is not None and self.media.remote_crypto is not None:
            crypto = self.media.remote_crypto
            packets = crypto.lifetime_packets
            if packets is None:
                return
            seconds = packets * (self.media.ptime or 20) / 1000.0
            limit = self.settings.max_call_duration
            if limit > 0 and seconds > limit:
                return  # the call ends at its maximum duration first
            try:  # until shortly before it runs out, or the end of the call, whichever is first
                await asyncio.wait_for(self.over.wait(), max(0.0, seconds * 0.95 - 1.0))
                return
            except TimeoutError:
                pass
            current = self.media.remote_crypto if self.media is not None else None
            if current is not None and current.key_salt != crypto.key_salt:
                continue  # re-keyed by the client: watch the new key
            if self.machine.terminal:
                return
            log.info("client's SRTP key lifetime (%s) runs out: ending the call", crypto.lifetime,
                     extra={"call_id": self.id})
            await self.send(In.HANG_UP, (200, "SRTP key lifetime reached"))
            await self.peer.client_ended("SRTP key lifetime reached")
            return

    async def _ack(self, handle: ClientRequest) -> None:
        if self._nat_dest is not None:
            await handle.ack(dest=self._nat_dest)
        else:
            await handle.ack()

    async def _bye(self, bye: Request, *, report: bool) -> None:
        """Send a BYE; the leg's own one reports its answer (the machine bounds the wait)."""
        try:
            sent = await self.ep.request(bye, self._nat_dest, tls=self.tls, server_name=self.server_name)
            if report:
                await sent.final()
        except Exception as e:
            log.info("BYE not completed: %s", e)
        if report:
            await self.send(In.BYE_DONE)

    async def _send_digits(self, digits: str) -> None:
        try:
            await asyncio.sleep(0.5)  # let the client's media start before the first digit
            await self.ctx.backends.dtmf(self.allocation.worker_id,
                                         MediaDtmf(call_id=self.id, leg="b", digits=digits))
            await self.emit(SendDigits(digits=digits))
        except Exception as e:
            await self.emit(SendDigitsFailed(digits=digits, reason=str(e)))

    async def _refresh(self, incoming: IncomingRequest) -> None:
        """A re-INVITE or UPDATE from the client (hold, resume, new address, refresh)."""
        self._last_refresh = self.ctx.now()  # RFC 4028 §10: the PBX refreshed the session
        timer = self._answer_timer(incoming.request)
        if await answer_refresh(self, incoming, self.allocation.b, timer):
            assert self.media is not None and self.local_sdp is not None
            await self.update_media(self.media)
            incoming.respond(200, body=bytes(self.local_sdp), content_type=SDP, headers=timer)
            await self.emit(Hold(leg="b", method=incoming.method) if self.media.on_hold
                            else MediaRefresh(leg="b", method=incoming.method))

    # -- session timers (RFC 4028): we are the UAC of the client leg

    def _answer_timer(self, request: Request) -> list[tuple[str, str]]:
        """§9: a refresh from the PBX is answered with its interval, the PBX refreshing."""
        value = request.headers.get("Session-Expires")
        if not value or self.session is None:
            return []
        seconds = value.split(";")[0].strip()
        if seconds.isdecimal() and int(seconds) > 0:
            self.session = session_timer.SessionTimer(int(seconds), we_refresh=False, update=self.session.update)
        return [("Session-Expires", f"{seconds};refresher=uas"), ("Require", "timer")]

    async def _over_within(self, delay: float) -> bool:
        try:
            await asyncio.wait_for(self.over.wait(), max(0.0, delay))
        except TimeoutError:
            return False
        return True

    async def _session_timer(self) -> None:
        """Refresh at half the interval when we are the refresher (§10); otherwise expect the
        PBX's refresh and end both legs when none came in time."""
        self._last_refresh = self.ctx.now()
        while (timer := self.session) is not None and not self.machine.terminal:
            if timer.we_refresh:
                if await self._over_within(timer.refresh_after):
                    return
                if not await self._send_session_refresh(timer):
                    await self._session_expired(408, "session refresh failed")
                    return
            else:
                due = self._last_refresh + timer.expire_after
                if self.ctx.now() >= due:
                    await self._session_expired(408, "session expired: no refresh from the SIP client")
                    return
                if await self._over_within(due - self.ctx.now()):
                    return

    async def _send_session_refresh(self, timer: session_timer.SessionTimer) -> bool:
        """UPDATE without SDP when the PBX allows it, else a re-INVITE with our current SDP
        (§7.4, unchanged: RFC 3264 §8 keeps its version). False when the session is gone
        (408/481, §10); another error keeps the session."""
        h = self.handle
        if h is None or h.dialog is None or h.dialog.terminated or self.local_sdp is None:
            return True
        dialog = h.dialog
        headers = session_timer.refresh_headers(timer)
        if timer.update:
            request = dialog.create_request("UPDATE", headers=headers)
        else:
            request = dialog.create_request("INVITE", headers=headers, body=bytes(self.local_sdp),
                                            content_type=SDP)
        try:
            sent = await self.ep.request(request, tls=self.tls, server_name=self.server_name)
            final = await sent.final()
        except Exception as e:
            log.info("session refresh not sent: %s", e, extra={"call_id": self.id})
            return False
        if request.method == "INVITE":
            if final.is_success:
                await self.ep.send_ack(dialog.create_ack(request), dialog, tls=self.tls, server_name=self.server_name)
                await self._recheck_answer(final)
            dialog.pending_outgoing_invite = None
        if final.is_success:
            self._last_refresh = self.ctx.now()
            self.session = session_timer.from_answer(final)
            if self.session is not None and not self.session.we_refresh:
                self.session = session_timer.SessionTimer(self.session.interval, True, self.session.update)
            return True
        return final.status not in (408, 481)

    async def _recheck_answer(self, final: Response) -> None:
        """The answer to our refresh re-INVITE (RFC 3264 §8): a PBX may move its media (a
        new address, hold) even then; the worker follows it. An unusable answer keeps the
        media as it was (the session itself was refreshed)."""
        if not final.body or self.local_sdp is None:
            return
        media = validate_answer(self.local_sdp, final.body)
        if isinstance(media, SdpRejection):
            log.info("refresh answer not usable (%s): media unchanged", media.reason, extra={"call_id": self.id})
            return
        if self.media is None or (media.remote_address, media.remote_port, media.direction) != (
                self.media.remote_address, self.media.remote_port, self.media.direction):
            self.media = media
            await self.update_media(media)
            await self.emit(Hold(leg="b", method="INVITE") if media.on_hold else MediaRefresh(leg="b", method="INVITE"))

    async def _session_expired(self, cause: int, reason: str) -> None:
        if self.machine.terminal:
            return
        log.info("%s", reason, extra={"call_id": self.id})
        await self.send(In.HANG_UP, (cause, reason))
        await self.peer.client_ended(reason)
