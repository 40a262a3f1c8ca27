"""The media worker process: the relay on the bus.

Answers `media.<region>.allocate` in the region's queue group and
`media.worker.<id>.{update,release,dtmf}` addressed to itself; publishes `dtmf`,
`media_timeout` and `media_stats` call events; heartbeats its load (calls) and capacity
(calls its port range can hold).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Coroutine
from typing import Any

from nats.aio.subscription import Subscription

from proto import subjects
from proto.events import CallEventBody, Lost, MediaStatsReport
from proto.messages import (
    Ack,
    Heartbeat,
    MediaAllocate,
    MediaAllocation,
    MediaDtmf,
    MediaLeg,
    MediaRekey,
    MediaRelease,
    MediaStats,
    MediaUpdate,
)
from services.common.bus import Bus
from services.common.events import CallEventPublisher
from services.common.hep import PROTO_RTCP_JSON, HepSender
from services.common.liveness import Liveness
from services.common.service import Component, run
from services.common.settings import load

from . import metrics
from .capture import rtcp_json
from .errors import BadKey, BadRequest, Draining, PoolExhausted, UnknownCall
from .packets import RtcpPacket
from .pool import PortPool
from .relay import Call, Leg, Relay
from .settings import MediaSettings
from .srtp import crypto_line, key_from_crypto

log = logging.getLogger("switchboard.media")

TICK = 0.5


def raise_fd_limit() -> None:
    """Four sockets per call: 1,000 calls need more than the usual 1,024 descriptors."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass


class Media(Component[MediaSettings]):
    service = "media"

    def __init__(self, bus: Bus, settings: MediaSettings) -> None:
        super().__init__(bus, settings)
        problem = settings.apply_region_range()
        if problem:
            raise SystemExit(problem)
        self.events = CallEventPublisher(bus, "media", settings.region, settings.node_id)
        self.pool = PortPool(
            settings.port_min, settings.port_max, quarantine=settings.quarantine,
            state_path=settings.data_dir / "media" / f"ports-{settings.media_host}-{settings.port_min}-{settings.port_max}.json",
        )
        self.relay: Relay | None = None
        self.hep = (HepSender(settings.hep_address, capture_id=settings.hep_capture_id, node_name=settings.node_id)
                    if settings.hep_address else None)
        self.draining = False
        self._allocate_sub: Subscription | None = None
        self._subs: list[Subscription] = []
        self._ticker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._released: dict[str, MediaStats] = {}
        """Stats of the calls released lately: a release repeated because its answer was
        lost (a NATS server died on the way) gets the same answer, not "unknown call"."""
        self.owners = Liveness(settings.signaling_lost_after)
        """The signaling nodes of our calls, from their heartbeats."""

    @property
    def worker_id(self) -> str:
        return self.settings.node_id

    # --- life -----------------------------------------------------------------------

    async def start(self) -> None:
        raise_fd_limit()
        s = self.settings
        if self.hep is not None:
            await self.hep.start()
        self.relay = Relay(self.pool, host=s.media_host, emit=self._emit, socket_buffer=s.socket_buffer,
                           default_timeout=s.no_media_timeout,
                           on_rtcp_report=self._capture_rtcp if self.hep is not None else None)
        w = self.worker_id
        self._subs = [
            await self.bus.subscribe(subjects.media_worker(w, "update"), self.on_update, MediaUpdate),
            await self.bus.subscribe(subjects.media_worker(w, "rekey"), self.on_rekey, MediaRekey),
            await self.bus.subscribe(subjects.media_worker(w, "release"), self.on_release, MediaRelease),
            await self.bus.subscribe(subjects.media_worker(w, "dtmf"), self.on_dtmf, MediaDtmf),
        ]
        self._allocate_sub = await self.bus.subscribe(
            subjects.media_allocate(s.region), self.on_allocate, MediaAllocate,
            queue=subjects.media_queue(s.region))
        await self.events.start()
        self.owners.reset(asyncio.get_running_loop().time())
        self._subs.append(await self.bus.subscribe(subjects.heartbeats_of("signaling"), self._signaling_heartbeat,
                                                   Heartbeat, concurrent=False))
        await self.bus.nc.flush()
        self._ticker = asyncio.create_task(self._tick())
        relay = self.relay
        metrics.CALLS_ACTIVE.set_function(lambda: len(relay.calls))
        metrics.PORTS_TOTAL.set(self.pool.capacity)
        metrics.PORTS_AVAILABLE.set_function(lambda: self.pool.available)
        log.info("media worker %s: ports %d-%d on %s (%d calls max)", w, s.port_min, s.port_max,
                 s.media_host, self.pool.capacity // 2)

    async def drain(self) -> None:
        """Stop taking allocations; keep the calls until they are released (the caller
        bounds this by `shutdown_grace`)."""
        self.draining = True
        if self._allocate_sub is not None:
            try:
                await self._allocate_sub.unsubscribe()
            except Exception:
                pass
            self._allocate_sub = None
        if self.relay is not None:
            await self.relay.idle.wait()

    def _capture_rtcp(self, call_id: str, src: tuple[str, int], port: int, report: list[RtcpPacket]) -> None:
        payload = rtcp_json(report)
        if payload is not None and self.hep is not None:
            # Our call id is also the correlation id of the call's SIP in HEP: Homer joins them.
            self.hep.send(src, (self.settings.public_address, port), time.time(), payload,
                          correlation_id=call_id, proto_type=PROTO_RTCP_JSON)

    async def stop(self) -> None:
        self.events.stop()
        if self.hep is not None:
            self.hep.close()
        if self._ticker is not None:
            self._ticker.cancel()
        for sub in self._subs + ([self._allocate_sub] if self._allocate_sub else []):
            try:
                await sub.unsubscribe()
            except Exception:
                pass
        if self.relay is not None:
            self.relay.close()
        for t in list(self._tasks):
            try:
                await asyncio.wait_for(t, 1.0)
            except Exception:
                pass

    def heartbeat(self) -> Heartbeat:
        hb = super().heartbeat()
        hb.load = len(self.relay.calls) if self.relay else 0
        # Two port pairs per call; a draining worker advertises no room.
        hb.capacity = 0 if self.draining else self.pool.capacity // 2
        return hb

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                assert self.relay is not None
                self.relay.tick()
                self._free_orphans()
            except Exception:
                log.exception("media tick failed")

    async def _signaling_heartbeat(self, hb: Heartbeat) -> None:
        self.owners.seen(hb.node_id, asyncio.get_running_loop().time(), hb.interval)

    def _free_orphans(self) -> None:
        """A call whose signaling node died is never released by it: free its ports here
        (and say so in the call's history), instead of holding them for ever."""
        assert self.relay is not None
        if not self.bus.connected:
            self.owners.reset(asyncio.get_running_loop().time())  # our outage says nothing of theirs
            return
        s = self.settings
        for call, node_lost in self.relay.orphans(self.owners.overdue, s.orphan_idle, s.signaling_lost_after):
            node = call.owner or ""
            if node_lost:
                log.warning("signaling node %s lost: freeing the ports of its call", node,
                            extra={"call_id": call.call_id})
            else:
                log.warning("no release after the media timeout: freeing the ports", extra={"call_id": call.call_id})
            self.relay.release(call)
            metrics.CALLS_RELEASED.inc()
            self._spawn(self._report_freed(call, node if node_lost else None))

    async def _report_freed(self, call: Call, lost_node: str | None) -> None:
        await self.events.emit(call.call_id, MediaStatsReport.of(call.stats(self.worker_id)))
        if lost_node is not None:
            await self.events.emit(call.call_id, Lost(node=lost_node, reason=f"signaling node {lost_node} lost"))
        self.events.forget(call.call_id)

    def _emit(self, call_id: str, body: CallEventBody) -> None:
        self._spawn(self.events.emit(call_id, body))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # --- bus handlers ------------------------------------------------------------------

    def _call(self, call_id: str) -> Call:
        assert self.relay is not None
        call = self.relay.calls.get(call_id)
        if call is None:
            raise UnknownCall(call_id)
        return call

    def _leg_info(self, leg: Leg) -> MediaLeg:
        return MediaLeg(
            address=self.settings.public_address, port=leg.port, rtcp_port=leg.rtcp_port, secure=leg.secure,
            crypto=crypto_line(leg.local_key) if leg.local_key else None,
        )

    async def on_allocate(self, req: MediaAllocate) -> MediaAllocation:
        if self.draining:
            metrics.ALLOCATIONS_REFUSED.labels("draining").inc()
            raise Draining()
        assert self.relay is not None
        try:
            call = self.relay.allocate(req.call_id, a_secure=req.a_secure, b_secure=req.b_secure, timeout=req.timeout)
        except PoolExhausted:
            metrics.ALLOCATIONS_REFUSED.labels("ports exhausted").inc()
            raise
        call.owner = req.node_id
        return MediaAllocation(call_id=req.call_id, worker_id=self.worker_id, region=self.settings.region,
                               a=self._leg_info(call.a), b=self._leg_info(call.b))

    async def on_update(self, req: MediaUpdate) -> Ack:
        call = self._call(req.call_id)
        assert self.relay is not None
        try:
            key = key_from_crypto(req.remote_crypto) if req.remote_crypto else None
        except BadKey as e:
            raise BadRequest(str(e), {"leg": req.leg}) from None
        self.relay.update(call, req.leg, address=req.remote_address, port=req.remote_port,
                          rtcp_port=req.remote_rtcp_port, te_pt=req.telephone_event_pt, remote_key=key,
                          direction=req.direction, latch_host=req.latch_host)
        return Ack()

    async def on_rekey(self, req: MediaRekey) -> MediaLeg:
        call = self._call(req.call_id)
        assert self.relay is not None
        return self._leg_info(self.relay.rekey(call, req.leg, secure=req.secure))

    async def on_dtmf(self, req: MediaDtmf) -> Ack:
        call = self._call(req.call_id)
        assert self.relay is not None
        try:
            self.relay.inject(call, req.leg, req.digits, req.duration_ms, req.gap_ms)
        except ValueError as e:
            raise BadRequest(str(e), {"digits": req.digits}) from None
        return Ack()

    async def on_release(self, req: MediaRelease) -> MediaStats:
        assert self.relay is not None
        if req.call_id not in self.relay.calls and req.call_id in self._released:
            return self._released[req.call_id]
        call = self._call(req.call_id)
        assert self.relay is not None
        self.relay.release(call)
        stats = call.stats(self.worker_id)
        self._released[call.call_id] = stats
        while len(self._released) > 1000:  # the oldest go first (dicts keep insertion order)
            self._released.pop(next(iter(self._released)))
        metrics.CALLS_RELEASED.inc()
        for name, leg in (("a", stats.a), ("b", stats.b)):
            metrics.PACKETS.labels(name, "in").inc(leg.packets_in)
            metrics.PACKETS.labels(name, "out").inc(leg.packets_out)
            metrics.PACKETS_LOST.labels(name).inc(max(0, leg.lost))
            metrics.SRTP_FAILURES.labels(name).inc(leg.srtp_failures)
            metrics.DROPPED.labels(name).inc(leg.dropped)
            if leg.packets_in:
                metrics.JITTER_MS.labels(name).observe(leg.jitter_ms)
        if stats.mos is not None:
            metrics.MOS.observe(stats.mos)
        await asyncio.sleep(0)  # let the call's queued events take their sequence numbers first
        await self.events.emit(call.call_id, MediaStatsReport.of(stats))
        self.events.forget(call.call_id)
        return stats


def main() -> None:
    settings = load(MediaSettings)
    problem = settings.apply_region_range()  # before anything else: refuse before connecting
    if problem:
        raise SystemExit(problem)
    run("media", settings, lambda bus, s: Media(bus, s))
