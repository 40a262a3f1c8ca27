"""Publishing call events: `call.<id>.<kind>` with a per-call sequence number."""

from __future__ import annotations

import logging
from typing import Any

from proto import subjects
from proto.messages import CallEvent

from .bus import Bus

log = logging.getLogger("switchboard.events")


# SIP traces are not numbered: they are many, consumers of the call's state skip them
# (the call-records consumer does not even receive them), and their order is the stream's.
UNNUMBERED = frozenset({"sip_in", "sip_out"})


class CallEventPublisher:
    """Numbers each call's events from 1 on this node so a reader can tell a gap
    (SIP traces excepted: seq 0)."""

    def __init__(self, bus: Bus, service: str, region: str, node: str) -> None:
        self.bus = bus
        self.service = service
        self.region = region
        self.node = node
        self._seq: dict[str, int] = {}

    async def emit(self, call_id: str, kind: str, **payload: Any) -> CallEvent:
        if kind in UNNUMBERED:
            seq = 0
        else:
            seq = self._seq.get(call_id, 0) + 1
            self._seq[call_id] = seq
        ev = CallEvent(
            call_id=call_id, kind=kind, region=self.region, node=self.node, service=self.service,
            seq=seq, payload=payload,
        )
        try:
            await self.bus.publish(subjects.call_event(call_id, kind), ev)
        except Exception as e:  # the call goes on without its event; say so
            log.warning("event %s not published: %s", kind, e, extra={"call_id": call_id})
        return ev

    def forget(self, call_id: str) -> None:
        self._seq.pop(call_id, None)
