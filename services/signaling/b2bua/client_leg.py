"""The client leg (B): each target in turn, the digest challenge, the ring timeout, PRACK,
the answer, and the client's own in-dialog requests.

It reports to a `LegPeer` — the carrier's side of the call. On one node that is the Call
itself; across regions it is a proxy over the bus (`remote.py`), so a leg originated in
another region runs exactly this code."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import TYPE_CHECKING, Any, Protocol, cast

from proto.events import (
    AttemptFailed,
    AuthFailed,
    CallEventBody,
    Challenged,
    Dialing,
    Hold,
    MediaRefresh,
    Ringing,
    RingTimeout,
    SendDigits,
    SendDigitsFailed,
)
from proto.messages import (
    Direction,
    MediaAllocation,
    MediaDtmf,
    MediaLeg,
    MediaUpdate,
    RoutingDecision,
    SipTarget,
    SrtpCrypto,
)

from .. import metrics
from ..errors import CallSetupError
from ..sip.digest import answer_challenge
from ..sip.headers import Reason
from ..sip.message import Request, Response
from ..sip.sdp import (
    Crypto,
    NegotiatedMedia,
    SdpRejection,
    SessionDescription,
    answer_offer,
    build_offer,
    validate_answer,
)
from ..sip.uri import SipUri, parse_uri
from ..transport import Addr, ClientTlsOptions
from .policy import Attempt, Result, classify, should_move_on

if TYPE_CHECKING:
    from ..endpoint import ClientRequest, IncomingRequest
    from .b2bua import B2BUA

log = logging.getLogger("switchboard.signaling.client_leg")

SDP = "application/sdp"


class LegPeer(Protocol):
    """What the client leg tells the carrier's side of the call."""

    async def progress(self, status: int, early_media: bool) -> None: ...

    async def answered(self, target: str, secure: bool) -> bool:
        """The client answered; False when the carrier is gone (the leg then hangs up)."""
        ...

    async def client_ended(self, reason: str) -> None:
        """The client hung up an answered call."""
        ...

    async def relay_info(self, request: Request) -> int:
        """An INFO from the client (e.g. application/dtmf-relay), for the carrier: the
        status of the carrier's answer."""
        ...


def srtp_of(crypto: Crypto | None) -> SrtpCrypto | None:
    if crypto is None:
        return None
    return SrtpCrypto(tag=crypto.tag, key_salt_b64=base64.b64encode(crypto.key_salt).decode())


def media_update(call_id: str, leg: str, media: NegotiatedMedia) -> MediaUpdate:
    return MediaUpdate(
        call_id=call_id, leg="a" if leg == "a" else "b", remote_address=media.remote_address,
        remote_port=media.remote_port, remote_rtcp_port=media.remote_rtcp_port,
        telephone_event_pt=media.telephone_event_pt, remote_crypto=srtp_of(media.remote_crypto),
        direction=cast(Direction, media.direction))


class ClientLeg:
    def __init__(self, b2bua: B2BUA, call_id: str, decision: RoutingDecision, allocation: MediaAllocation,
                 caller: str | None, caller_name: str | None, peer: LegPeer) -> None:
        self.b2bua = b2bua
        self.ep = b2bua.endpoint
        self.settings = b2bua.settings
        self.id = call_id
        self.decision = decision
        self.allocation = allocation
        self.caller = caller
        self.caller_name = caller_name
        self.peer = peer
        self.cancelled = asyncio.Event()  # the carrier gave up
        self.sip_call_id = ""
        self.local_sdp: SessionDescription | None = None
        self.media: NegotiatedMedia | None = None
        self.sdp_version = 1
        self.handle: ClientRequest | None = None
        self.tls: ClientTlsOptions | None = None
        self.server_name: str | None = None
        self.early_media = False
        self.answered = False
        self.finished = asyncio.Event()  # hung up, by either side

    @property
    def ended(self) -> bool:
        return self.finished.is_set()

    async def emit(self, body: CallEventBody) -> None:
        await self.b2bua.events.emit(self.id, body)

    async def update_media(self, media: NegotiatedMedia) -> None:
        await self.b2bua.backends.update(self.allocation.worker_id, media_update(self.id, "b", media))

    # -- the targets

    async def run(self) -> list[Attempt] | None:
        """Every target until one answers (None) or the attempts say stop (the attempts)."""
        attempts: list[Attempt] = []
        for target in self.decision.targets:
            attempt = await self._try_target(target)
            if attempt is None:
                return None
            attempts.append(attempt)
            if self.cancelled.is_set() or not should_move_on(attempt):
                break
            metrics.FAILOVERS.labels("target").inc()
        return attempts

    def _invite(self, target: SipTarget, first: Addr, offer: bytes) -> Request:
        host = self.settings.public_address
        user = self.caller or "anonymous"
        disp = f'"{self.caller_name}" ' if self.caller_name else ""
        # RFC 3262: we PRACK reliable provisionals (some PBXs require it, 421 otherwise);
        # RFC 4028: we take part in session timers.
        headers: list[tuple[str, str]] = [("Supported", "100rel, timer")]
        if self.settings.p_asserted_identity:
            headers.append(("P-Asserted-Identity", f"<sip:{user}@{host}>"))
        return self.ep.create_request(
            "INVITE", target.uri, from_=f"{disp}<sip:{user}@{host}>", to=f"<{target.uri}>",
            transport=first.transport, body=offer, content_type=SDP, headers=headers)

    async def _try_target(self, target: SipTarget) -> Attempt | None:
        """One target: its RFC 3263 candidates in order (the endpoint fails over), the
        digest challenge, the ring timeout. None when the client answered."""
        b = self.allocation.b
        key = base64.b64decode(b.crypto.key_salt_b64) if (b.secure and b.crypto) else None
        if target.secure_media and key is None:
            return Attempt(target.uri, Result.MEDIA_FAILED, reason="SRTP required but the worker gave no key")
        offer = build_offer(b.address, b.port, srtp_key=key if target.secure_media else None,
                            telephone_event_pt=b.telephone_event_pt, pad_base64=self.settings.srtp_key_padding)
        self.local_sdp = offer
        try:
            uri = parse_uri(target.uri)
            candidates = await self.ep.locator(target.uri)
        except Exception as e:
            return Attempt(target.uri, Result.UNREACHABLE, reason=f"cannot resolve: {e}")
        if not candidates:
            return Attempt(target.uri, Result.UNREACHABLE, reason="no address for the target")
        self.tls = ClientTlsOptions(verify=target.tls.verify, ca_pem=target.tls.ca_pem,
                                    client_cert_pem=target.tls.client_cert_pem,
                                    client_key_pem=target.tls.client_key_pem)
        self.server_name = uri.host if isinstance(uri, SipUri) else None
        request = self._invite(target, candidates[0], bytes(offer))
        self.sip_call_id = request.call_id
        self.b2bua.bind_sip_call_id(request.call_id, self)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.decision.ring_timeout
        realms: set[str] = set()
        await self.emit(Dialing(target=target.uri, transport=candidates[0].transport,
                                dest=f"{candidates[0].host}:{candidates[0].port}", candidates=len(candidates)))
        while True:
            handle = await self.ep.request(request, candidates, tls=self.tls, server_name=self.server_name)
            self.handle = handle
            final, why = await self._await_final(handle, deadline)
            if why == "ring-timeout":
                rang = any(100 < r.status < 200 for r in handle.responses)
                await self.emit(RingTimeout(target=target.uri, rang=rang))
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
                auth = await self._answer(final, request, target, realms)
                if isinstance(auth, Attempt):
                    await self.emit(AuthFailed(target=target.uri, status=final.status, reason=auth.reason))
                    return auth
                request = auth
                continue
            if final.is_success:
                return await self._answered(handle, final, target)
            rang = any(100 < r.status < 200 for r in handle.responses)
            result = classify(final.status, rang=rang)
            if handle.error:  # a local 408/503: no response at all, or transport failure
                result = Result.UNREACHABLE
            retry = final.retry_after.seconds if final.retry_after else None
            reason = handle.error or final.reason
            await self.emit(AttemptFailed(target=target.uri, sip_status=final.status, reason=reason,
                                          result=str(result),
                                          attempts=[f"{a.transport}:{a.host}:{a.port} {o}"
                                                    for a, o in handle.attempts]))
            return Attempt(target.uri, result, final.status, reason, early_media=self.early_media, retry_after=retry)

    async def _answer(self, challenge: Response, sent: Request, target: SipTarget,
                      realms: set[str]) -> Request | Attempt:
        """A new INVITE with credentials (§22.2), or the attempt's end when we cannot."""
        if not target.username:
            return Attempt(target.uri, Result.AUTH_FAILED, challenge.status,
                           "challenged but no SIP credentials are configured")
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
        metrics.AUTH_CHALLENGES.labels(str(challenge.status)).inc()
        await self.emit(Challenged(target=target.uri, status=challenge.status, realm=realm,
                                   algorithm=answer.challenge.algorithm or "MD5", stale=answer.stale))
        return request

    async def _await_final(self, handle: ClientRequest, deadline: float) -> tuple[Response | None, str]:
        """Relay provisional responses until the final one; CANCEL at the ring timeout or
        when the carrier cancels. Returns (final or None, why)."""
        it = handle.__aiter__()
        loop = asyncio.get_running_loop()
        cancel_wait = asyncio.ensure_future(self.cancelled.wait())
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
        if resp.body and self.local_sdp is not None:
            checked = validate_answer(self.local_sdp, resp.body)
            if isinstance(checked, NegotiatedMedia):
                sdp_media = checked
        await self.emit(Ringing(status=resp.status, early_media=sdp_media is not None))
        if sdp_media is not None and not self.early_media:
            # 183 with SDP: early media through the worker (and no crank-back after it).
            self.media = sdp_media
            await self.update_media(sdp_media)
            self.early_media = True
        await self.peer.progress(resp.status, sdp_media is not None)

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
            await self.ep.request(prack, tls=self.tls, server_name=self.server_name)
        except Exception as e:  # the INVITE's outcome tells the rest
            log.info("PRACK not sent: %s", e)

    async def _hang_up_late_answer(self, handle: ClientRequest) -> None:
        """A 2xx that crossed our CANCEL: ACK it and BYE it (§15)."""
        try:
            await handle.ack()
            if handle.dialog is not None:
                bye = handle.dialog.create_request("BYE", headers=[("Reason", 'SIP;cause=487;text="cancelled"')])
                await self.ep.request(bye, tls=self.tls, server_name=self.server_name)
        except Exception as e:
            log.info("could not end a late answer: %s", e)

    async def _answered(self, handle: ClientRequest, final: Response, target: SipTarget) -> Attempt | None:
        await handle.ack()
        assert self.local_sdp is not None
        media = validate_answer(self.local_sdp, final.body) if final.body else SdpRejection("200 OK without SDP")
        if isinstance(media, SdpRejection):
            await self.hang_up(f"unacceptable answer: {media.reason}", cause=488)
            await self.emit(AttemptFailed(target=target.uri, sip_status=488, reason=media.reason,
                                          result=str(Result.MEDIA_FAILED)))
            return Attempt(target.uri, Result.MEDIA_FAILED, 488, media.reason)
        self.media = media
        try:
            await self.update_media(media)
        except CallSetupError:
            await self.hang_up("media unavailable", cause=503)
            raise
        if self.cancelled.is_set() or not await self.peer.answered(target.uri, media.secure):
            await self.hang_up("caller cancelled", cause=487)
            return Attempt(target.uri, Result.CANCELED, 487, "caller cancelled")
        self.answered = True
        if self.decision.send_digits:
            asyncio.get_running_loop().create_task(self._send_digits(self.decision.send_digits))
        return None

    async def _send_digits(self, digits: str) -> None:
        try:
            await asyncio.sleep(0.5)  # let the client's media start before the first digit
            await self.b2bua.backends.dtmf(self.allocation.worker_id,
                                           MediaDtmf(call_id=self.id, leg="b", digits=digits))
            await self.emit(SendDigits(digits=digits))
        except Exception as e:
            await self.emit(SendDigitsFailed(digits=digits, reason=str(e)))

    # -- ending it

    async def cancel(self) -> None:
        """The carrier gave up before the answer."""
        self.cancelled.set()

    async def hang_up(self, reason: str, cause: int = 200) -> None:
        """BYE the answered client (RFC 3326 Reason), or CANCEL a client still ringing."""
        h = self.handle
        if h is None or self.ended:
            return
        if not h.done:
            self.cancelled.set()
            await h.cancel(Reason("SIP", cause, reason[:60]))
            return
        if h.dialog is None or h.dialog.terminated:
            return
        self.finished.set()
        bye = h.dialog.create_request("BYE", headers=[("Reason", f'SIP;cause={cause};text="{reason}"')])
        r = await self.ep.request(bye, tls=self.tls, server_name=self.server_name)
        try:
            await asyncio.wait_for(r.final(), 5.0)
        except Exception:
            pass

    async def relay_info(self, request: Request) -> int:
        """Pass the carrier's INFO on to the client (RFC 6086: in the dialog, same body)."""
        h = self.handle
        if h is None or h.dialog is None or h.dialog.terminated:
            return 481
        return await send_info(self.ep, h.dialog, request, tls=self.tls, server_name=self.server_name)

    def release(self) -> None:
        self.b2bua.unbind_sip_call_id(self.sip_call_id)

    # -- the client's own requests in the dialog

    async def on_request(self, incoming: IncomingRequest) -> None:
        m = incoming.method
        if m == "ACK":
            return
        if m == "BYE":
            incoming.respond(200)
            if not self.ended:
                self.finished.set()
                await self.peer.client_ended("normal clearing")
            return
        if m in ("INVITE", "UPDATE"):
            await self._refresh(incoming)
            return
        if m == "INFO":
            incoming.respond(await self.peer.relay_info(incoming.request))
            return
        if m == "OPTIONS":
            incoming.respond(200)
            return
        incoming.respond(405, headers=[("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, PRACK")])

    async def _refresh(self, incoming: IncomingRequest) -> None:
        """A re-INVITE or UPDATE from the client (hold, resume, new address, refresh)."""
        if await answer_refresh(self, incoming, self.allocation.b, self.settings.srtp_key_padding):
            assert self.media is not None and self.local_sdp is not None
            await self.update_media(self.media)
            incoming.respond(200, body=bytes(self.local_sdp), content_type=SDP)
            await self.emit(Hold(leg="b", method=incoming.method) if self.media.on_hold
                            else MediaRefresh(leg="b", method=incoming.method))


async def send_info(ep: Any, dialog: Any, request: Request, *, tls: ClientTlsOptions | None = None,
                    server_name: str | None = None) -> int:
    """An INFO with the body of `request` in `dialog`; the status of the answer (408 when
    none comes)."""
    info = dialog.create_request("INFO", body=request.body, content_type=request.headers.get("Content-Type"))
    for name in ("Info-Package", "Recv-Info"):  # RFC 6086 §7
        for value in request.headers.get_all(name):
            info.headers.add(name, value)
    sent = await ep.request(info, tls=tls, server_name=server_name)
    try:
        final = await asyncio.wait_for(sent.final(), 10.0)
    except TimeoutError:
        return 408
    return int(final.status)


class Side(Protocol):
    """One leg's SDP state, as a re-INVITE changes it."""

    local_sdp: SessionDescription | None
    media: NegotiatedMedia | None
    sdp_version: int


async def answer_refresh(side: Side, incoming: IncomingRequest, ours: MediaLeg, pad_base64: bool,
                         headers: list[tuple[str, str]] | None = None) -> bool:
    """Answer a re-INVITE/UPDATE from the worker's side of this leg (RFC 3264 §8: same
    session id, version counted up). Without an offer, our current SDP is the answer and
    nothing changes (False). With one, the side takes the new media (True): the caller
    updates the worker and sends the 200; an unacceptable offer is refused here (False)."""
    if not incoming.request.body:
        body = bytes(side.local_sdp) if side.local_sdp is not None else b""
        incoming.respond(200, body=body, content_type=SDP if body else None, headers=headers or [])
        return False
    key = base64.b64decode(ours.crypto.key_salt_b64) if (ours.secure and ours.crypto) else None
    result = answer_offer(incoming.request.body, ours.address, ours.port, srtp_key=key,
                          require_srtp=ours.secure, pad_base64=pad_base64)
    if isinstance(result, SdpRejection):
        incoming.respond(result.status, result.reason)
        return False
    side.sdp_version += 1
    keep_origin(result.sdp, side.local_sdp, side.sdp_version)
    side.local_sdp = result.sdp
    side.media = result.media
    return True


def keep_origin(sdp: SessionDescription, previous: SessionDescription | None, version: int) -> None:
    """Our o= line keeps its session id and counts versions up (RFC 3264 §8)."""
    origin = sdp.origin
    if origin is not None and previous is not None and previous.origin is not None:
        origin.session_id = previous.origin.session_id
        origin.session_version = version
        sdp.set_origin(origin)
