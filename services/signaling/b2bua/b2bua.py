"""The B2BUA: listens for carriers' INVITEs, runs one Call each, routes in-dialog requests
to their leg, and publishes every SIP message in and out as a call event. It owns the calls,
the SIP Call-ID directory and draining; the legs get a `LegContext`, and nothing in the
package imports this module (import-linter's layers contract)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proto import subjects
from proto.events import Failed, Received, SipIn, SipOut
from proto.messages import CallEvent, Heartbeat
from services.common.bus import Bus
from services.common.events import CallEventPublisher
from services.common.liveness import Liveness

from .. import metrics
from ..endpoint import IncomingRequest, SipEndpoint, redact
from ..sip.message import Request, Response
from ..sip.transaction import Timers
from ..transport import Addr, ServerTlsConfig
from .backends import Backends
from .call import Call
from .context import DialogOwner, LegContext
from .deadlines import Deadlines
from .helpers import ALLOW, SDP
from .numbers import NotANumber, caller_of, tracking_number
from .remote import OriginateServer

if TYPE_CHECKING:
    from ..settings import SignalingSettings

log = logging.getLogger("switchboard.signaling")

RETRY_AFTER = "30"


SUPPORTED = "timer"
"""The extensions we honour as a UAS: session timers (RFC 4028)."""


def uas_refusal(req: Request) -> tuple[int, list[tuple[str, str]]] | None:
    """The checks of RFC 3261 §8.2.2 before a request is processed: a Request-URI scheme we
    do not serve is 416 (§8.2.2.1; RFC 4475 unkscm, novelsc), a Require naming an
    extension we do not support is 420 with Unsupported listing it (§8.2.2.3; bext01)."""
    scheme = req.uri.split(":", 1)[0].strip().lower()
    if scheme not in ("sip", "sips", "tel"):
        return 416, []
    supported = {t.strip().lower() for t in SUPPORTED.split(",")}
    # Option tags are tokens (§25.1): the raw lines split on commas, whatever else they hold.
    required = [t.strip() for v in req.headers.get_all("Require") for t in v.split(",") if t.strip()]
    unsupported = [t for t in required if t.lower() not in supported]
    if unsupported and req.method != "CANCEL":  # §9.2: a CANCEL never carries Require
        return 420, [("Unsupported", ", ".join(unsupported))]
    return None


def received(incoming: IncomingRequest) -> Received:
    inv, source = incoming.request, incoming.source
    caller, caller_name = caller_of(inv)
    try:
        number: str | None = tracking_number(inv)
    except NotANumber:
        number = None
    return Received(tracking_number=number, caller=caller, caller_name=caller_name,
                    source=f"{source.host}:{source.port}", transport=source.transport, sip_call_id=inv.call_id)


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens: dict[str, tuple[float, float]] = {}

    def allow(self, key: str, now: float) -> bool:
        tokens, last = self.tokens.get(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self.tokens[key] = (tokens, now)
            return False
        self.tokens[key] = (tokens - 1, now)
        if len(self.tokens) > 10000:  # forget idle sources
            self.tokens = {k: v for k, v in self.tokens.items() if now - v[1] < 60}
        return True


@dataclass
class Route:
    """What a SIP Call-ID leads to: our call id, and the leg that owns its dialog (None while
    the carrier's INVITE is being taken)."""

    call_id: str
    owner: DialogOwner | None = None


class B2BUA:
    def __init__(self, bus: Bus, settings: SignalingSettings) -> None:
        self.bus = bus
        self.settings = settings
        self.backends = Backends(bus, timeout=settings.bus_timeout, local_mode=settings.local_mode,
                                 trunk_cache=settings.trunk_cache, node_id=settings.node_id)
        self.events = CallEventPublisher(bus, "signaling", settings.region, settings.node_id)
        self.endpoint = SipEndpoint(
            on_request=self.on_request,
            on_message_in=self._message_in,
            on_message_out=self._message_out,
            timers=Timers(t1=settings.t1),
            public_host=settings.public_address,
        )
        self.calls: dict[str, Call] = {}  # our call id -> call
        self._by_sip_call_id: dict[str, Route] = {}  # the SIP Call-ID directory
        self.deadlines = Deadlines()
        self.context = LegContext(endpoint=self.endpoint, backends=self.backends, events=self.events,
                                  settings=settings, bus=bus, directory=self, deadlines=self.deadlines)
        self._tasks: set[asyncio.Task[None]] = set()
        self.draining = False
        self.rate = TokenBucket(settings.invite_rate, settings.invite_burst)
        self.listening: list[Addr] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self.media_alive = Liveness(settings.media_lost_after)

    async def start(self) -> None:
        s = self.settings
        for transport in ("udp", "tcp"):
            self.listening.append(await self.endpoint.listen(transport, s.sip_host, s.sip_port))
        if s.sip_tls_port and s.tls_cert and s.tls_key:
            tls = ServerTlsConfig(cert_file=s.tls_cert, key_file=s.tls_key)
            self.listening.append(await self.endpoint.listen("tls", s.sip_host, s.sip_tls_port, tls=tls))
        await self.bus.subscribe(subjects.call_events_of_kind("media_timeout"), self._media_timeout, CallEvent)
        await self.events.start()
        self.media_alive.reset(asyncio.get_running_loop().time())
        await self.bus.subscribe(subjects.heartbeats_of("media"), self._media_heartbeat, Heartbeat, concurrent=False)
        self._spawn(self._watch_media())
        metrics.CALLS_IN_PROGRESS.set_function(lambda: len(self.calls))
        self.originate = OriginateServer(self.context, self._accepts)
        await self.originate.start()
        log.info("SIP on %s", ", ".join(f"{a.transport}:{a.host}:{a.port}" for a in self.listening))

    async def drain(self) -> None:
        self.draining = True
        await self._idle.wait()

    async def stop(self) -> None:
        await asyncio.gather(*(call.hang_up("node shutting down", by="switchboard", cause=503)
                               for call in list(self.calls.values())), return_exceptions=True)
        self.events.stop()
        for t in list(self._tasks):
            t.cancel()
        self.deadlines.close()
        await self.endpoint.close()

    def _accepts(self, remote_legs: int) -> bool:
        return not self.draining and len(self.calls) + remote_legs < self.settings.max_calls

    # -- the SIP Call-ID directory (context.Directory)

    def bind(self, sip_call_id: str, owner: DialogOwner) -> None:
        self._by_sip_call_id[sip_call_id] = Route(owner.id, owner)

    def unbind(self, sip_call_id: str) -> None:
        self._by_sip_call_id.pop(sip_call_id, None)

    def forget(self, call: Call) -> None:
        self.calls.pop(call.id, None)
        if not self.calls:
            self._idle.set()
        self._by_sip_call_id.pop(call.sip_call_id, None)
        self.events.forget(call.id)

    def _call_id_for(self, msg: Request | Response, incoming: bool) -> str | None:
        try:
            sip_call_id = msg.call_id
        except Exception:
            return None
        route = self._by_sip_call_id.get(sip_call_id)
        if route is not None:
            return route.call_id
        if incoming and isinstance(msg, Request) and msg.method == "INVITE" and msg.to.tag is None:
            # A new call: its id is made here so that its first INVITE is in its timeline.
            call_id = uuid.uuid4().hex
            self._by_sip_call_id[sip_call_id] = Route(call_id)
            return call_id
        return None

    # -- SIP messages as events

    def _message_in(self, msg: Request | Response, source: Addr) -> None:
        self._publish_sip(msg, source, incoming=True)

    def _message_out(self, msg: Request | Response, dest: Addr) -> None:
        self._publish_sip(msg, dest, incoming=False)

    def _publish_sip(self, msg: Request | Response, peer: Addr, *, incoming: bool) -> None:
        call_id = self._call_id_for(msg, incoming)
        if call_id is None:
            return
        local = self.endpoint.local_addr(peer.transport)
        here = f"{local.host}:{local.port}" if local else "0.0.0.0:0"
        there = f"{peer.host}:{peer.port}"
        if isinstance(msg, Request):
            first = f"{msg.method} {msg.uri} SIP/2.0"
            metrics.SIP_MESSAGES.labels("in" if incoming else "out", msg.method, peer.transport).inc()
        else:
            first = f"SIP/2.0 {msg.status} {msg.reason}"
            metrics.SIP_MESSAGES.labels("in" if incoming else "out", str(msg.status), peer.transport).inc()
        text = bytes(redact(msg)).decode("utf-8", "replace")
        trace = SipIn if incoming else SipOut
        self._spawn(self.events.emit(call_id, trace(transport=peer.transport, first_line=first,
                                                    src=there if incoming else here,
                                                    dst=here if incoming else there, message=text)))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # -- requests

    async def on_request(self, incoming: IncomingRequest) -> None:
        req = incoming.request
        route = self._by_sip_call_id.get(req.call_id)
        if route is not None and route.owner is not None and (req.to.tag is not None or req.method == "ACK"):
            await route.owner.on_request(incoming)
            return
        if req.method != "ACK" and (refusal := uas_refusal(req)) is not None:
            incoming.respond(refusal[0], headers=refusal[1])
            return
        if req.method == "INVITE" and req.to.tag is None:
            await self._new_call(incoming)
            return
        if req.method == "OPTIONS":
            # §11.2: what we support, as an INVITE would learn it.
            incoming.respond(200, headers=[("Allow", ALLOW), ("Accept", SDP), ("Supported", SUPPORTED),
                                           ("Accept-Language", "en")])
            return
        if req.method == "ACK":
            return
        if req.to.tag is not None:
            incoming.respond(481)  # §12.2.2: no such call here
            return
        incoming.respond(405, headers=[("Allow", ALLOW)])

    async def _new_call(self, incoming: IncomingRequest) -> None:
        source = incoming.source.host
        refusal: tuple[int, str] | None = None
        if self.draining:
            refusal = (503, "Node draining")
        elif len(self.calls) >= self.settings.max_calls:
            refusal = (503, "Too many calls on this node")
        elif not self.rate.allow(source, time.monotonic()):
            refusal = (503, "Rate limit")
        call_id = self._call_id_for(incoming.request, True) or uuid.uuid4().hex
        if refusal is not None:
            metrics.REFUSED.labels(refusal[1].lower()).inc()
            incoming.respond(refusal[0], refusal[1], headers=[("Retry-After", RETRY_AFTER)])
            # The number dialled, so the refusal lands in that account's call records; only
            # from a carrier trunk: a stranger's INVITEs are nobody's calls.
            if await self._from_trunk(source):
                await self.events.emit(call_id, received(incoming))
            await self.events.emit(call_id, Failed(sip_status=refusal[0], reason=refusal[1], result="failed"))
            self._by_sip_call_id.pop(incoming.request.call_id, None)
            self.events.forget(call_id)
            return
        call = Call(self.context, call_id, incoming)
        self.calls[call_id] = call
        self._idle.clear()
        self.bind(incoming.request.call_id, call)
        try:
            await call.run()
        finally:
            self.forget(call)

    async def _from_trunk(self, source: str) -> bool:
        try:
            return await self.backends.is_trunk(source)  # kept a few seconds per address
        except Exception:
            return False

    async def _media_heartbeat(self, hb: Heartbeat) -> None:
        self.media_alive.seen(hb.node_id, asyncio.get_running_loop().time(), hb.interval)

    async def _watch_media(self) -> None:
        """End the calls whose media worker stopped heartbeating (killed, host gone): BYE
        to both legs with a Reason instead of dead air until the carrier gives up."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.25)
            now = loop.time()
            if not self.bus.connected:
                self.media_alive.reset(now)  # our outage, not theirs
                continue
            for call in list(self.calls.values()):
                a = call.allocation
                if a is not None and not call.media_lost and self.media_alive.lost(a.worker_id, now):
                    log.warning("media worker %s lost: ending the call", a.worker_id, extra={"call_id": call.id})
                    call.media_lost = True
                    self._spawn(call.hang_up(f"media worker {a.worker_id} lost", by="switchboard", cause=503))

    async def _media_timeout(self, ev: CallEvent) -> None:
        call = self.calls.get(ev.call_id)
        if call is not None:
            await call.on_media_timeout()
