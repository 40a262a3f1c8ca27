"""The asyncio side of a leg machine: one task per leg feeds its inputs in order, carries
out the commands and feeds their results back (a command's follow-up input comes before
any other input). Deadlines are fired here when the one timer task (`deadlines.py`) says
they are due."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

from .context import LegContext
from .fsm import Machine

log = logging.getLogger("switchboard.signaling.runner")

I = TypeVar("I", bound=enum.Enum)  # noqa: E741
D = TypeVar("D", bound=enum.Enum)

FollowUp = tuple[Any, object] | None  # (input, payload)
_TIMER = object()


class Runner(Generic[I, D]):
    def __init__(self, ctx: LegContext, machine: Machine[Any, I, D]) -> None:
        self.ctx = ctx
        self.machine = machine
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._timer_posted = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._gen = 0  # inputs posted for an older generation (an abandoned INVITE) are dropped

    # -- inputs

    def post(self, inp: I, payload: object = None, *, gen: int | None = None) -> None:
        self._queue.put_nowait((inp, payload, gen))

    def next_timer(self) -> float | None:
        return None if self._timer_posted else self.machine.next_timer()

    def timer_due(self) -> None:
        if not self._timer_posted:
            self._timer_posted = True
            self._queue.put_nowait(_TIMER)

    # -- the leg's task

    async def loop(self) -> None:
        self.ctx.deadlines.add(self)
        try:
            while not self.machine.terminal:
                await self._step(await self._queue.get())
        finally:
            self.ctx.deadlines.discard(self)
            while not self._queue.empty():
                self.unprocessed(self._queue.get_nowait())

    def unprocessed(self, item: object) -> None:
        """An input posted after the end (e.g. a request to answer)."""

    async def _step(self, item: object) -> None:
        now = self.ctx.now()
        batches: deque[tuple[list[D], object]]
        if item is _TIMER:
            self._timer_posted = False
            batches = deque([(self.machine.handle_timer(now), None)])
        else:
            assert isinstance(item, tuple)
            inp, payload, gen = item
            if gen is not None and gen != self._gen:
                return
            batches = deque([(self.machine.handle(inp, now, payload), payload)])
        while batches:
            effects, payload = batches.popleft()
            follow: list[tuple[Any, object]] = []
            for do in effects:
                nxt = await self.do(do, payload)
                if nxt is not None:
                    follow.append(nxt)
            for inp, p in follow:
                batches.append((self.machine.handle(inp, self.ctx.now(), p), p))
        self.ctx.deadlines.update(self)

    async def do(self, do: D, payload: object) -> FollowUp:
        raise NotImplementedError

    async def answering(self, incoming: Any, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a command that answers a request: a failure is that request's 500 (as the
        endpoint answers a failed handler), not the leg's end."""
        try:
            return await coro
        except Exception:
            log.exception("%s failed", incoming)
            if incoming.transaction is not None and not incoming.answered:
                incoming.respond(500)
            return None

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._done)

    def _done(self, t: asyncio.Task[Any]) -> None:
        self._tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("leg task failed", exc_info=t.exception())
