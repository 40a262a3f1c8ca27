"""The B2BUA: listens for carriers' INVITEs, runs one Call each, routes in-dialog requests
to their leg, and publishes every SIP message in and out as a call event. It owns the calls,
the SIP Call-ID directory and draining; the legs get a `LegContext`, and nothing in the
package imports this module (import-linter's layers contract)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proto import subjects
from proto.events import Failed, Received, SipIn, SipOut
from proto.messages import CallEvent, Heartbeat
from services.common.bus import Bus
from services.common.events import CallEventPublisher
from services.common.hep import HepSender
from services.common.liveness import Liveness
from services.common.looplag import LoopLag

from .. import metrics
from ..endpoint import IncomingRequest, SipEndpoint, redact
from ..sip.message import Request, Response
from ..sip.transaction import Timers
from ..transport import Addr, ServerTlsConfig
from .admission import Admission, Limits, Load, Refusal
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

RETRY_AFTER = 30
REFUSED_LOG_EVERY = 1.0
REFUSED_KEPT = 32.0  # Timer H with the default T1 (§17.2.1)


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
    refusal: Refusal | None = None
    """Set when the INVITE was refused on arrival: it gets its 503 and nothing else."""


class B2BUA:
    def __init__(self, bus: Bus, settings: SignalingSettings, loop_lag: LoopLag | None = None) -> None:
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
        self._refused: dict[str, Route] = {}  # INVITEs refused on arrival, by SIP Call-ID
        self._refused_at: deque[tuple[float, str]] = deque()
        self.deadlines = Deadlines()
        self.context = LegContext(endpoint=self.endpoint, backends=self.backends, events=self.events,
                                  settings=settings, bus=bus, directory=self, deadlines=self.deadlines)
        self._tasks: set[asyncio.Task[None]] = set()
        self.draining = False
        self.rate = TokenBucket(settings.invite_rate, settings.invite_burst)
        self.loop_lag = loop_lag or LoopLag()
        self.admission = Admission(Limits(
            max_calls=settings.max_calls, max_in_setup=settings.max_in_setup,
            lag_high=settings.overload_lag, lag_low=settings.overload_lag / 5, lag_min_in_setup=settings.overload_lag_min_in_setup,
            retry_after=RETRY_AFTER, overload_retry_after=settings.overload_retry_after))
        self.in_setup = 0
        """Calls not yet dialing their client: routing and media are still being asked."""
        self._overload_refused = 0
        self._overload_logged = 0.0
        self.listening: list[Addr] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self.media_alive = Liveness(settings.media_lost_after)
        self.hep = (HepSender(settings.hep_address, capture_id=settings.hep_capture_id, node_name=settings.node_id)
                    if settings.hep_address else None)

    async def start(self) -> None:
        s = self.settings
        self.loop_lag.start()
        if self.hep is not None:
            await self.hep.start()
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
        await self.loop_lag.stop()
        if self.hep is not None:
            self.hep.close()

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

    def _call_id_for(self, msg: Request | Response, incoming: bool, source: Addr | None = None) -> str | None:
        try:
            sip_call_id = msg.call_id
        except Exception:
            return None
        route = self._by_sip_call_id.get(sip_call_id) or self._refused.get(sip_call_id)
        if route is None and incoming and isinstance(msg, Request) and msg.method == "INVITE" and msg.to.tag is None:
            route = self._admit(sip_call_id, source)
        if route is None or (route.refusal is not None and route.refusal.kind == "overload"):
            return None  # not ours, or shed without a trace
        return route.call_id

    def _admit(self, sip_call_id: str, source: Addr | None) -> Route:
        """A new call: admitted (or not) here, before anything is spent on it; its id is made
        here too, so that its first INVITE is in its timeline."""
        now = time.monotonic()
        refusal = self.admission.decide(Load(
            calls=len(self.calls), in_setup=self.in_setup, lag=self.loop_lag.lag, draining=self.draining,
            rate_ok=source is None or self.rate.allow(source.host, now)))
        route = Route(uuid.uuid4().hex, refusal=refusal)
        if refusal is None:
            self._by_sip_call_id[sip_call_id] = route
            return route
        # Kept while the INVITE's retransmissions may still come (Timer H, §17.2.1), so that
        # they are neither admitted again nor traced; oldest first, so pruning is cheap.
        self._refused[sip_call_id] = route
        self._refused_at.append((now, sip_call_id))
        while self._refused_at and now - self._refused_at[0][0] > REFUSED_KEPT:
            self._refused.pop(self._refused_at.popleft()[1], None)
        return route

    # -- SIP messages as events

    def _message_in(self, msg: Request | Response, source: Addr) -> None:
        self._publish_sip(msg, source, incoming=True)

    def _message_out(self, msg: Request | Response, dest: Addr) -> None:
        self._publish_sip(msg, dest, incoming=False)

    def _publish_sip(self, msg: Request | Response, peer: Addr, *, incoming: bool) -> None:
        call_id = self._call_id_for(msg, incoming, peer if incoming else None)
        if call_id is None and self.hep is None:
            return
        local = self.endpoint.local_addr(peer.transport)
        wire = bytes(redact(msg))
        if self.hep is not None:
            # Our call id correlates both legs in Homer (their SIP Call-IDs differ); a
            # wildcard listener is shown at the address peers use.
            host = local.host if local and local.host not in ("0.0.0.0", "::") else self.settings.public_address
            here_addr = (host, local.port if local else 0)
            there_addr = (peer.host, peer.port)
            self.hep.send(there_addr if incoming else here_addr, here_addr if incoming else there_addr,
                          time.time(), wire, transport=peer.transport, correlation_id=call_id or "")
        if call_id is None:
            return
        here = f"{local.host}:{local.port}" if local else "0.0.0.0:0"
        there = f"{peer.host}:{peer.port}"
        if isinstance(msg, Request):
            first = f"{msg.method} {msg.uri} SIP/2.0"
            metrics.SIP_MESSAGES.labels("in" if incoming else "out", msg.method, peer.transport).inc()
        else:
            first = f"SIP/2.0 {msg.status} {msg.reason}"
            metrics.SIP_MESSAGES.labels("in" if incoming else "out", str(msg.status), peer.transport).inc()
        text = wire.decode("utf-8", "replace")
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
        req = incoming.request
        # Admitted or refused when its first copy arrived (_publish_sip).
        route = self._by_sip_call_id.get(req.call_id) or self._refused.get(req.call_id)
        if route is None:
            route = self._admit(req.call_id, incoming.source)
        if route.refusal is not None:
            await self._refuse(incoming, route)
            return
        call = Call(self.context, route.call_id, incoming)
        self.calls[route.call_id] = call
        self._idle.clear()
        self.bind(req.call_id, call)
        self.in_setup += 1
        call.on_setup_over = self._setup_over
        try:
            await call.run()
        finally:
            call.end_setup()  # a no-op unless it was cancelled before its setup ran
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

    def _setup_over(self) -> None:
        self.in_setup -= 1

    async def _refuse(self, incoming: IncomingRequest, route: Route) -> None:
        refusal = route.refusal
        assert refusal is not None
        metrics.REFUSED.labels(refusal.reason.lower()).inc()
        incoming.respond(refusal.status, refusal.reason, headers=[("Retry-After", str(refusal.retry_after))])
        if refusal.kind == "overload":
            self._overload_refused += 1
            now = time.monotonic()
            if now - self._overload_logged >= REFUSED_LOG_EVERY:
                log.warning("overloaded: refused %d new calls with 503 (loop lag %.0f ms, %d calls in setup, %d calls)",
                            self._overload_refused, self.loop_lag.lag * 1000, self.in_setup, len(self.calls))
                self._overload_refused, self._overload_logged = 0, now
            return
        # The number dialled, so the refusal lands in that account's call records; only
        # from a carrier trunk: a stranger's INVITEs are nobody's calls.
        if await self._from_trunk(incoming.source.host):
            await self.events.emit(route.call_id, received(incoming))
        await self.events.emit(route.call_id, Failed(sip_status=refusal.status, reason=refusal.reason, result="failed"))
        self.events.forget(route.call_id)

    async def _media_timeout(self, ev: CallEvent) -> None:
        call = self.calls.get(ev.call_id)
        if call is not None:
            await call.on_media_timeout()
