"""The asyncio side of a leg machine. Inputs are fed one at a time (a lock): whoever has an
input — the INVITE's response reader, an in-dialog request's handler, the other leg, the
deadline task — runs the step in its own task, so an input costs no extra task switch. A
step carries out the machine's commands in order and feeds their results back at once (a
command's follow-up input comes before any other input). Deadlines are fired here when the
one timer task (`deadlines.py`) says they are due."""

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
        self._lock = asyncio.Lock()
        self._timer_posted = False
        self._registered = False
        self._dead = False  # a command failed: the leg takes no more input
        self.over = asyncio.Event()  # terminal (or dead)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._gen = 0  # inputs sent for an older generation (an abandoned INVITE) are dropped

    @property
    def active(self) -> bool:
        """It has had an input."""
        return self._registered

    # -- inputs

    async def send(self, inp: I, payload: object = None, *, gen: int | None = None) -> None:
        """Feed one input (after the one being handled, if any) and carry out its commands."""
        await self._handle((inp, payload, gen))

    def post(self, inp: I, payload: object = None, *, gen: int | None = None) -> None:
        """`send` from code that cannot wait."""
        self.spawn(self.send(inp, payload, gen=gen))

    def next_timer(self) -> float | None:
        return None if self._timer_posted else self.machine.next_timer()

    def timer_due(self) -> None:
        if not self._timer_posted:
            self._timer_posted = True
            self.spawn(self._handle(_TIMER))

    async def _handle(self, item: object) -> None:
        async with self._lock:
            if item is _TIMER:
                self._timer_posted = False
            if self._dead or self.machine.terminal:
                if item is not _TIMER:
                    self.unprocessed(item)
                return
            if not self._registered:
                self._registered = True
                self.ctx.deadlines.add(self)
            try:
                await self._step(item)
            except Exception as e:
                self._dead = True
                await self.failed(e)
            if self._dead or self.machine.terminal:
                self.ctx.deadlines.discard(self)
                self.over.set()
            else:
                self.ctx.deadlines.update(self)

    async def _step(self, item: object) -> None:
        now = self.ctx.now()
        batches: deque[tuple[list[D], object]]
        if item is _TIMER:
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

    # -- for the legs

    async def do(self, do: D, payload: object) -> FollowUp:
        raise NotImplementedError

    def unprocessed(self, item: object) -> None:
        """An input sent after the end (e.g. a request still to answer)."""

    async def failed(self, e: Exception) -> None:
        """A command failed (a bug, or an error the table has no input for): the leg is over."""
        log.exception("leg failed", exc_info=e)

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
