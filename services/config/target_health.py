"""Target health from OPTIONS pinging (issue 15): config lists the targets to ping for the
signaling nodes (`routing.pinged_targets`), and takes their verdicts
(`TargetHealthChanged`): every instance's resolver routes around a down target at once; one
instance (queue group) keeps the verdict in `target_health` for the API and the console."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import async_sessionmaker

from proto import subjects
from proto.messages import PingTargets, PingTargetsRequest, TargetHealthChanged
from services.common.bus import Bus

from .db.models import SipTargetRow, TargetHealthRow
from .resolver import Resolver

log = logging.getLogger("switchboard.config.target_health")


class TargetHealth:
    def __init__(self, bus: Bus, resolver: Resolver, sessionmaker: async_sessionmaker) -> None:  # type: ignore[type-arg]
        self.bus = bus
        self.resolver = resolver
        self.sessionmaker = sessionmaker

    async def start(self) -> None:
        await self.bus.subscribe(subjects.target_health(), self.on_change, TargetHealthChanged, concurrent=False)
        await self.bus.subscribe(subjects.target_health(), self.store, TargetHealthChanged,
                                 queue=subjects.CONFIG_QUEUE, concurrent=False)
        await self.bus.subscribe(subjects.routing_pinged_targets(), self.listed, PingTargetsRequest,
                                 queue=subjects.CONFIG_QUEUE)

    async def listed(self, req: PingTargetsRequest) -> PingTargets:
        return PingTargets(targets=self.resolver.pinged_targets())

    async def on_change(self, ev: TargetHealthChanged) -> None:
        self.resolver.health[ev.target_id] = ev.health

    async def store(self, ev: TargetHealthChanged) -> None:
        async with self.sessionmaker() as session:
            if await session.get(SipTargetRow, ev.target_id) is None:
                return  # removed meanwhile
            row = await session.get(TargetHealthRow, ev.target_id)
            if row is None:
                row = TargetHealthRow(target_id=ev.target_id)
                session.add(row)
            row.health = ev.health
            row.changed_at = datetime.fromtimestamp(ev.ts, UTC)
            row.node = ev.node[:64]
            await session.commit()
        log.info("target %s is %s (%s, from %s)", ev.target_id, ev.health, ev.reason, ev.node)
