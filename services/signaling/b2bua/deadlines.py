"""The one timer task of the legs' deadlines (ring timeout, CANCEL grace, BYE wait, session
expiry, max call duration), as ``SipEndpoint`` has one for the SIP timers: it sleeps until
the earliest deadline of the registered legs and tells the due ones. A leg calls
``update(leg)`` after each input (its deadlines may have changed); a heap keeps that cheap
with many calls (stale entries are skipped when they come up)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from typing import Protocol

log = logging.getLogger("switchboard.signaling.deadlines")


class Timed(Protocol):
    def next_timer(self) -> float | None:
        """The earliest deadline (loop time), None when none runs or one is being handled."""
        ...

    def timer_due(self) -> None:
        """A deadline is due: the leg fires it (``handle_timer(now)``) in its own task."""
        ...


class Deadlines:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timed]] = []
        self._pushed: dict[Timed, float] = {}  # each leg's deadline as last pushed
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._sleeping_until: float | None = None
        self._task: asyncio.Task[None] | None = None

    def add(self, leg: Timed) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        self.update(leg)

    def discard(self, leg: Timed) -> None:
        self._pushed.pop(leg, None)

    def update(self, leg: Timed) -> None:
        """The leg's earliest deadline may have changed."""
        deadline = leg.next_timer()
        if deadline is None:
            self._pushed.pop(leg, None)
            return
        if self._pushed.get(leg) == deadline:
            return
        self._pushed[leg] = deadline
        heapq.heappush(self._heap, (deadline, next(self._seq), leg))
        if self._sleeping_until is None or deadline < self._sleeping_until:
            self._wake.set()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _head(self) -> float | None:
        heap = self._heap
        while heap and self._pushed.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)  # stale: moved, stopped or fired
        return heap[0][0] if heap else None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            self._sleeping_until = head = self._head()
            timeout = None if head is None else max(0.0, head - loop.time())
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
                continue  # an earlier deadline came: recompute
            except TimeoutError:
                pass
            now = loop.time()
            while (head := self._head()) is not None and head <= now:
                _, _, leg = heapq.heappop(self._heap)
                del self._pushed[leg]
                try:
                    leg.timer_due()
                except Exception:
                    log.exception("deadline handling failed")
