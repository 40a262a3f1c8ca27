"""Publishing call events: `call.<id>.<kind>` with a per-call sequence number.

Publishers hand a typed body (`proto.events`); the subject's kind and the payload come from
it, so no call site spells a kind or a payload key."""

from __future__ import annotations

import logging

from proto import subjects
from proto.events import CallEventBody, envelope
from proto.messages import CallEvent

from .bus import Bus

log = logging.getLogger("switchboard.events")


class CallEventPublisher:
    """Numbers each call's events from 1 on this node so a reader can tell a gap.

    SIP traces are not numbered (seq 0, `NUMBERED = False` on their model): they are many,
    consumers of the call's state skip them (the call-records consumer does not even receive
    them), and their order is the stream's."""

    def __init__(self, bus: Bus, service: str, region: str, node: str) -> None:
        self.bus = bus
        self.service = service
        self.region = region
        self.node = node
        self._seq: dict[str, int] = {}

    async def emit(self, call_id: str, body: CallEventBody) -> CallEvent:
        if body.NUMBERED:
            seq = self._seq.get(call_id, 0) + 1
            self._seq[call_id] = seq
        else:
            seq = 0
        ev = envelope(call_id, body, region=self.region, node=self.node, service=self.service, seq=seq)
        try:
            await self.bus.publish(subjects.call_event(call_id, ev.kind), ev)
        except Exception as e:  # the call goes on without its event; say so
            log.warning("event %s not published: %s", ev.kind, e, extra={"call_id": call_id})
        return ev

    def forget(self, call_id: str) -> None:
        self._seq.pop(call_id, None)
