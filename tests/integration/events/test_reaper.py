"""Issue 14 item 4: no record stays `in-progress` for ever. A call whose signaling node
stopped heartbeating is closed as `lost`, naming the node; a call of a live node is left
alone."""

from __future__ import annotations

import asyncio
import time

from proto import events as pe
from proto import subjects
from proto.messages import CallEvent, Heartbeat
from services.config.reaper import RecordReaper

from .conftest import TRACKING, CallEnv


def started(call_id: str, node: str) -> list[CallEvent]:
    t = time.time() - 30
    return [pe.envelope(call_id, pe.Received(tracking_number=TRACKING, caller="+15550001111", caller_name=None,
                                             source="10.0.0.9:5060", transport="udp", sip_call_id=f"{call_id}@x"),
                        ts=t, node=node, service="signaling", seq=1)]


async def test_open_records_of_a_dead_node_are_closed_as_lost(calls: CallEnv) -> None:
    await calls.recorder()
    await calls.publish(started("c0dead01", "sig-gone") + started("c0a11ve1", "sig-live"))
    await calls.wait_record("c0dead01", lambda r: r.node == "sig-gone")
    await calls.wait_record("c0a11ve1", lambda r: r.node == "sig-live")

    async def live_node() -> None:
        while True:
            await calls.bus.publish(subjects.heartbeat("signaling", "us1", "sig-live"),
                                    Heartbeat(service="signaling", node_id="sig-live", region="us1", interval=0.1))
            await asyncio.sleep(0.1)

    beating = asyncio.create_task(live_node())
    reaper = RecordReaper(calls.bus, calls.env.ctx.sessionmaker, lost_after=1.0, interval=0.2)
    await reaper.start()
    try:
        rec = await calls.wait_record("c0dead01", lambda r: r.result is not None)
        assert (rec.result, rec.reason, rec.ended_by) == ("lost", "signaling node sig-gone lost", "switchboard")
        await reaper.reap()  # a round more: the live node's call is still open
        assert (await calls.record("c0a11ve1")).result is None  # type: ignore[union-attr]
    finally:
        beating.cancel()
        await reaper.stop()
    r = await calls.client.get("/v1/calls/c0dead01", headers=calls.env.admin())
    assert r.status_code == 200 and r.json()["result"] == "lost"
