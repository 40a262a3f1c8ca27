"""Reading call events back from the CALLS stream: a call's timeline, live tail, replay.

Shared by the CLI (`switchboard calls ...`) and the HTTP API (`/v1/calls/{id}/events`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from proto import subjects
from proto.messages import CallEvent

from .bus import Bus

log = logging.getLogger("switchboard.callstream")


async def read_call_events(bus: Bus, call_id: str, *, batch: int = 256, wait: float = 0.5) -> list[CallEvent]:
    """Every stored event of one call, in stream order (an ephemeral consumer)."""
    js = bus.nc.jetstream()
    sub = await js.pull_subscribe(
        subjects.call_events(call_id),
        stream=subjects.CALLS_STREAM,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=30.0
        ),
    )
    events: list[CallEvent] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(batch, timeout=wait)
            except (TimeoutError, nats.errors.TimeoutError, nats.js.errors.FetchTimeoutError):
                break
            for m in msgs:
                try:
                    events.append(CallEvent.model_validate_json(m.data))
                except ValidationError:
                    log.warning("unreadable event on %s", m.subject)
            if msgs and msgs[-1].metadata.num_pending == 0:
                break
    finally:
        try:
            await sub.unsubscribe()
        except Exception:
            pass
    return events


async def follow_events(bus: Bus, *, new_only: bool = True) -> AsyncIterator[CallEvent]:
    """Every call event as it arrives (for `calls tail`)."""
    js = bus.nc.jetstream()
    queue: asyncio.Queue[CallEvent] = asyncio.Queue()

    async def cb(m: Msg) -> None:
        try:
            queue.put_nowait(CallEvent.model_validate_json(m.data))
        except ValidationError:
            log.warning("unreadable event on %s", m.subject)

    sub = await js.subscribe(
        subjects.call_events_all(),
        cb=cb,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.NEW if new_only else DeliverPolicy.ALL,
    )
    try:
        while True:
            yield await queue.get()
    finally:
        await sub.unsubscribe()
