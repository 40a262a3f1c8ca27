"""Liveness judged fairly: a node that says goodbye is gone at once; a node that says it is
busy (its loop runs late) keeps its region up through heartbeats that come late."""

from __future__ import annotations

import asyncio

from proto import subjects
from proto.messages import Heartbeat

LONG = 30.0
"""A heartbeat interval so long that no node can expire while a test runs."""


async def test_a_nodes_goodbye_fails_its_region_over_at_once(rig) -> None:
    await rig.registry()
    asker = await rig.connect("asker")
    beat = await rig.connect("node")
    sig = Heartbeat(service="signaling", region="us1", node_id="sig-1", addresses=["127.0.0.1"], interval=LONG)
    media = Heartbeat(service="media", region="us1", node_id="media-1", addresses=["127.0.0.1"], interval=LONG)
    for hb in (sig, media):
        await beat.publish(subjects.heartbeat(hb.service, hb.region, hb.node_id), hb)

    async def selected() -> bool:
        sel = await rig.select(asker, "us1")
        return sel.ok and sel.region == "us1"

    await rig.eventually(selected, "us1 up")
    media.leaving = True  # SIGTERM: the worker's last heartbeat
    await beat.publish(subjects.heartbeat("media", "us1", "media-1"), media)

    async def down() -> bool:
        return not await selected()

    # Its heartbeats would keep it for 3 x 30 s: only the goodbye can end it within the test.
    await rig.eventually(down, "us1 down right after its only media worker left")


async def test_a_busy_nodes_late_heartbeats_keep_its_region_up(rig) -> None:
    """Heartbeats every 0.2 s, then 1.5 s of silence (3 x 0.2 s would expire it) from a worker
    that said its loop runs 2 s late: the registry waits 3 x (0.2 + 2) s for it."""
    statuses = await rig.statuses()
    await rig.registry()
    asker = await rig.connect("asker")
    sig = await rig.node("signaling", "us1", "sig-1")
    media = await rig.node("media", "us1", "media-1")
    media.hb.lag = 2.0

    async def selected() -> bool:
        sel = await rig.select(asker, "us1")
        return sel.ok and sel.region == "us1"

    await rig.eventually(selected, "us1 up")
    await rig.eventually(lambda: _true(any(st.code == "us1" and st.healthy for st in statuses)), "us1 up announced")
    since = len(statuses)
    await media.stop()  # busy: nothing for a while
    await asyncio.sleep(1.5)
    assert await selected()
    media.start()
    await asyncio.sleep(0.5)
    assert [st for st in statuses[since:] if st.code == "us1" and not st.healthy] == []
    await sig.stop()


async def _true(value: bool) -> bool:
    return value
