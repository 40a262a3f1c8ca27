"""The one timer task of the legs' deadlines (ring timeout, CANCEL grace, BYE wait, session
expiry, max call duration), as ``SipEndpoint`` has one for the SIP timers: it sleeps until
the earliest ``next_timer()`` of the registered legs and tells the due ones."""

from __future__ import annotations

import asyncio
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
        self._legs: set[Timed] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, leg: Timed) -> None:
        self._legs.add(leg)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        self.wake()

    def discard(self, leg: Timed) -> None:
        self._legs.discard(leg)

    def wake(self) -> None:
        """A deadline may have changed: compute the next one again."""
        self._wake.set()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            due = [t for t in (leg.next_timer() for leg in self._legs) if t is not None]
            timeout = max(0.0, min(due) - loop.time()) if due else None
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
                continue  # something changed: recompute
            except TimeoutError:
                pass
            now = loop.time()
            for leg in list(self._legs):
                deadline = leg.next_timer()
                if deadline is not None and deadline <= now:
                    try:
                        leg.timer_due()
                    except Exception:
                        log.exception("deadline handling failed")
