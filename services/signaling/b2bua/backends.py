"""The B2BUA's view of the other services: routing, region selection, media — over the bus.

Every bus failure becomes a CallSetupError with the status the carrier should get, so the
call code reads as the flow it is."""

from __future__ import annotations

import asyncio
import logging
import time

from proto import subjects
from proto.messages import (
    Ack,
    MediaAllocate,
    MediaAllocation,
    MediaDtmf,
    MediaLeg,
    MediaRekey,
    MediaRelease,
    MediaStats,
    MediaUpdate,
    RegionSelect,
    RegionSelection,
    RoutingDecision,
    RoutingRequest,
    TrunkCheck,
    TrunkCheckResult,
)
from services.common.bus import Bus
from services.common.errors import BusError, BusTimeout, NoResponders, RemoteError

from ..errors import CallSetupError

log = logging.getLogger("switchboard.signaling.backends")

RETRY_AFTER = 30


class Backends:
    def __init__(self, bus: Bus, *, timeout: float = 2.0, local_mode: bool = False,
                 trunk_cache: float = 5.0, node_id: str | None = None) -> None:
        self.bus = bus
        self.node_id = node_id
        self.timeout = timeout
        self.local_mode = local_mode
        self.trunk_cache = trunk_cache
        self._trunks: dict[str, tuple[bool, float]] = {}  # address -> (allowed, until)

    async def is_trunk(self, address: str) -> bool:
        """Is this source a carrier trunk? Answers are kept a few seconds: a carrier sends
        many calls from one address, and a trunk change still takes effect within that."""
        now = time.monotonic()
        cached = self._trunks.get(address)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            r = await self.bus.request(subjects.registry_trunk_check(), TrunkCheck(address=address),
                                       TrunkCheckResult, timeout=self.timeout)
            if len(self._trunks) > 10_000:
                self._trunks = {a: v for a, v in self._trunks.items() if v[1] > now}
            self._trunks[address] = (r.allowed, now + self.trunk_cache)
            return r.allowed
        except BusError as e:
            if self.local_mode and address.startswith("127."):
                return True  # `switchboard up` on one machine: loopback is the carrier
            raise CallSetupError(503, f"registry unavailable ({e})", retry_after=RETRY_AFTER) from e

    async def resolve(self, req: RoutingRequest) -> RoutingDecision:
        try:
            decision = await self.bus.request(subjects.routing_resolve(), req, RoutingDecision, timeout=self.timeout)
        except (NoResponders, BusTimeout) as e:
            raise CallSetupError(503, f"routing unavailable ({e})", retry_after=RETRY_AFTER) from e
        except BusError as e:
            raise CallSetupError(500, f"routing failed ({e})") from e
        if not decision.ok:
            raise CallSetupError(decision.status or 404, decision.reason or "No route")
        if not decision.targets:
            raise CallSetupError(480, "Receiving number has no enabled SIP target")
        return decision

    async def select_region(self, preferred: str | None, exclude: list[str]) -> RegionSelection:
        try:
            return await self.bus.request(subjects.registry_select(),
                                          RegionSelect(preferred=preferred, exclude=exclude, need=["media"]),
                                          RegionSelection, timeout=self.timeout)
        except BusError as e:
            # Without the registry we can still try our own region's media workers.
            log.warning("region selection failed (%s); trying the preferred region", e)
            return RegionSelection(ok=bool(preferred), region=preferred, preferred=preferred,
                                   reason="registry unavailable")

    async def allocate(self, region: str, call_id: str, b_secure: bool) -> MediaAllocation:
        try:
            return await self.bus.request(subjects.media_allocate(region),
                                          MediaAllocate(call_id=call_id, region=region, b_secure=b_secure,
                                                        node_id=self.node_id),
                                          MediaAllocation, timeout=self.timeout)
        except RemoteError as e:
            raise CallSetupError(503, f"media in {region}: {e.error}", retry_after=RETRY_AFTER) from e
        except BusError as e:
            raise CallSetupError(503, f"no media worker in {region} ({type(e).__name__})",
                                 retry_after=RETRY_AFTER) from e

    async def update(self, worker_id: str, update: MediaUpdate) -> None:
        try:
            await self.bus.request(subjects.media_worker(worker_id, "update"), update, Ack, timeout=self.timeout)
        except BusError as e:
            raise CallSetupError(503, f"media worker {worker_id} did not take the update ({e})",
                                 retry_after=RETRY_AFTER) from e

    async def rekey(self, worker_id: str, call_id: str, secure: bool) -> MediaLeg:
        """The client leg's side of the worker, fresh for the next target (MediaRekey)."""
        try:
            return await self.bus.request(subjects.media_worker(worker_id, "rekey"),
                                          MediaRekey(call_id=call_id, leg="b", secure=secure), MediaLeg,
                                          timeout=self.timeout)
        except BusError as e:
            raise CallSetupError(503, f"media worker {worker_id} did not re-key ({e})",
                                 retry_after=RETRY_AFTER) from e

    async def dtmf(self, worker_id: str, req: MediaDtmf) -> None:
        await self.bus.request(subjects.media_worker(worker_id, "dtmf"), req, Ack, timeout=self.timeout)

    async def release(self, worker_id: str, call_id: str, reason: str) -> MediaStats | None:
        for attempt in range(3):
            try:
                return await self.bus.request(subjects.media_worker(worker_id, "release"),
                                              MediaRelease(call_id=call_id, reason=reason), MediaStats,
                                              timeout=self.timeout)
            except (BusTimeout, NoResponders) as e:
                # Lost on the way (a NATS server of the cluster died, the bus reconnects):
                # the worker holds the ports until it is told, so tell it again.
                if attempt == 2:
                    log.warning("media release failed: %s", e, extra={"call_id": call_id})
                    return None
                await asyncio.sleep(0.5)
            except BusError as e:
                log.warning("media release failed: %s", e, extra={"call_id": call_id})
                return None
        return None
