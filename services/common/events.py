"""Publishing call events: `call.<id>.<kind>` with a per-call sequence number.

Publishers hand a typed body (`proto.events`); the subject's kind and the payload come from
it, so no call site spells a kind or a payload key."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from proto import subjects
from proto.events import CallEventBody, envelope
from proto.messages import CallEvent

from .bus import Bus

log = logging.getLogger("switchboard.events")


BACKLOG_MAX = 50_000
"""Numbered events kept for a retry at most (the oldest go first beyond)."""


class CallEventPublisher:
    """Numbers each call's events from 1 on this node so a reader can tell a gap.

    Numbered events (the call's state) are published with JetStream acknowledgements: one
    that was not acknowledged (NATS away, a stream leader being elected after a server of
    the cluster died) is kept, in order, and sent again until it is, so the record is
    complete afterwards. While some wait, new ones queue behind them: a call never waits
    for the bus longer than one acknowledgement timeout.

    SIP traces are not numbered (seq 0, `NUMBERED = False` on their model): they are many,
    consumers of the call's state skip them (the call-records consumer does not even receive
    them), and their order is the stream's."""

    def __init__(self, bus: Bus, service: str, region: str, node: str) -> None:
        self.bus = bus
        self.service = service
        self.region = region
        self.node = node
        self._seq: dict[str, int] = {}
        self._backlog: deque[tuple[str, CallEvent]] = deque()
        self._retrier: asyncio.Task[None] | None = None
        self.ack_timeout = 1.0
        self.acked = False
        """Whether numbered events wait for JetStream's acknowledgement: from `start()` on,
        while the CALLS stream exists (without one nobody would ever acknowledge)."""
        self._checker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.acked = await self.bus.calls_stream_exists()
        self._checker = asyncio.get_running_loop().create_task(self._check_stream())

    def stop(self) -> None:
        """Stop re-checking the stream (a backlog is still sent while the loop runs)."""
        if self._checker is not None:
            self._checker.cancel()

    async def _check_stream(self) -> None:
        while True:
            await asyncio.sleep(30.0)
            if self.bus.connected:
                self.acked = await self.bus.calls_stream_exists()

    async def emit(self, call_id: str, body: CallEventBody) -> CallEvent:
        if body.NUMBERED:
            seq = self._seq.get(call_id, 0) + 1
            self._seq[call_id] = seq
        else:
            seq = 0
        ev = envelope(call_id, body, region=self.region, node=self.node, service=self.service, seq=seq)
        subject = subjects.call_event(call_id, ev.kind)
        if not seq:
            try:
                await self.bus.publish(subject, ev)
            except Exception as e:  # a SIP trace is not worth a retry; say so
                log.warning("event %s not published: %s", ev.kind, e, extra={"call_id": call_id})
            return ev
        if not self.acked and not self._backlog:
            # Not started, or no stream keeps events (a test rig, a tool): nobody would
            # ever acknowledge. (Nothing may be awaited before the publish: the order of
            # concurrent emits is the order they were numbered in.)
            try:
                await self.bus.publish(subject, ev)
            except Exception as e:
                log.warning("event %s not published: %s", ev.kind, e, extra={"call_id": call_id})
            return ev
        if self._backlog or not self.bus.connected:
            self._keep(subject, ev)
            return ev
        try:
            await self.bus.publish_acked(subject, ev, self._msg_id(ev), timeout=self.ack_timeout)
        except Exception as e:
            log.warning("event %s not acknowledged (%s): kept for a retry", ev.kind, e, extra={"call_id": call_id})
            self._keep(subject, ev)
        return ev

    @property
    def backlog(self) -> int:
        """Events waiting for an acknowledgement."""
        return len(self._backlog)

    def _msg_id(self, ev: CallEvent) -> str:
        return f"{ev.node}.{ev.call_id}.{ev.seq}"

    def _keep(self, subject: str, ev: CallEvent) -> None:
        if len(self._backlog) >= BACKLOG_MAX:
            _, dropped = self._backlog.popleft()
            log.warning("event backlog full: event %s dropped", dropped.kind, extra={"call_id": dropped.call_id})
        self._backlog.append((subject, ev))
        if self._retrier is None or self._retrier.done():
            self._retrier = asyncio.get_running_loop().create_task(self._retry())

    async def _retry(self) -> None:
        delay = 0.2
        while self._backlog:
            subject, ev = self._backlog[0]
            try:
                if self.bus.connected:
                    await self.bus.publish_acked(subject, ev, self._msg_id(ev), timeout=2.0)
                    self._backlog.popleft()
                    delay = 0.2
                    continue
            except Exception as e:
                log.debug("event %s still not acknowledged: %s", ev.kind, e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        log.info("event backlog sent")

    def forget(self, call_id: str) -> None:
        self._seq.pop(call_id, None)
