"""No call record stays `in-progress` for ever: a record whose signaling node stopped
heartbeating (killed, host gone, its NATS never came back) is closed as `lost` with the node
named. The media worker closes the calls it carried the same way (a `lost` event); this
catches the rest (a call that died before it had media), and records left open by a node
that died while this service was down (judged afresh after a restart)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from proto import subjects
from proto.messages import Heartbeat
from services.common.bus import Bus
from services.common.liveness import Liveness
from services.common.tasks import cancel_and_wait

from .db.models import CallRecord
from .records import CALL_RECORDS, to_dt
from .webhooks import enqueue_for_record

log = logging.getLogger("switchboard.config.reaper")


class RecordReaper:
    def __init__(self, bus: Bus, sm: async_sessionmaker[Any], *, lost_after: float = 60.0, interval: float = 10.0,
                 on_commit: Any = None) -> None:
        self.bus = bus
        self.sm = sm
        self.lost_after = lost_after
        self.interval = interval
        self.on_commit = on_commit
        self.nodes = Liveness(lost_after)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.nodes.reset(asyncio.get_running_loop().time())
        await self.bus.subscribe(subjects.heartbeats_of("signaling"), self._beat, Heartbeat, concurrent=False)
        self._task = asyncio.create_task(self._run(), name="record-reaper")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])

    async def _beat(self, hb: Heartbeat) -> None:
        self.nodes.seen(hb.node_id, asyncio.get_running_loop().time(), hb.interval)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if not self.bus.connected:
                self.nodes.reset(asyncio.get_running_loop().time())  # our outage, not theirs
                continue
            try:
                await self.reap()
            except Exception as e:  # the database may be away; next round
                log.warning("record reaper round failed: %s", e)

    async def reap(self) -> int:
        now = asyncio.get_running_loop().time()
        cutoff = to_dt(time.time() - self.lost_after)  # stored as the records store times
        closed = 0
        async with self.sm() as session:
            open_records = (await session.execute(
                select(CallRecord).where(CallRecord.result.is_(None), CallRecord.node.is_not(None),
                                         CallRecord.started_at < cutoff).limit(500))).scalars().all()
            for rec in open_records:
                if rec.node is None or not self.nodes.lost(rec.node, now):
                    continue
                rec.final_kind = "ended"
                rec.result = "lost"
                rec.reason = f"signaling node {rec.node} lost"
                rec.ended_by = "switchboard"
                rec.ended_at = to_dt(time.time())
                rec.duration = 0.0
                await enqueue_for_record(session, rec)
                CALL_RECORDS.labels("lost").inc()
                closed += 1
                log.warning("call %s closed as lost: its node %s is gone", rec.id, rec.node,
                            extra={"call_id": rec.id})
            if closed:
                await session.commit()
                if self.on_commit:
                    self.on_commit()
        return closed
