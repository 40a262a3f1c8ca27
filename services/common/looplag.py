"""How late this process's event loop runs: the one load figure every service can measure
of itself (RFC 7339's idea: a server judges its own load and says so before it falls over).

A task asks to wake every `period` seconds; how much later than asked it wakes is a sample.
`lag` is the time-weighted moving average of the samples over about `tau` seconds: one slow
callback barely moves it, a loop that stays behind (a backlog of work) moves it at once, and
so does a stall long enough to leave such a backlog."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time


class LoopLag:
    def __init__(self, period: float = 0.05, tau: float = 1.0) -> None:
        self.period = period
        self.tau = tau
        self.lag = 0.0
        """Seconds: how late the loop runs, averaged over about `tau` seconds."""
        self._task: asyncio.Task[None] | None = None

    def sample(self, late: float, elapsed: float) -> None:
        """The loop woke `late` seconds late after `elapsed` seconds (tests feed this too)."""
        weight = 1.0 - math.exp(-elapsed / self.tau)
        self.lag += (late - self.lag) * weight

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            start = time.monotonic()
            await asyncio.sleep(self.period)
            elapsed = time.monotonic() - start
            self.sample(max(0.0, elapsed - self.period), elapsed)
