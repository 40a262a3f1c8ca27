"""The asyncio side of the legs, in memory: the one deadline task and a leg's runner (one
input at a time, follow-ups first, its deadlines). No sockets, no bus."""

from __future__ import annotations

import asyncio
import enum
from typing import Any, cast

from services.signaling.b2bua.context import LegContext
from services.signaling.b2bua.deadlines import Deadlines
from services.signaling.b2bua.fsm import Machine
from services.signaling.b2bua.runner import FollowUp, Runner


class St(enum.Enum):
    IDLE = "idle"
    WAITING = "waiting"
    DONE = "done"


class In(enum.Enum):
    GO = "go"
    STARTED = "started"  # the follow-up of the START command
    POKE = "poke"
    TIMEOUT = "timeout"


class Do(enum.Enum):
    START = "start"
    NOTE = "note"
    ARM = "+arm"


class Toy(Machine[St, In, Do]):
    TABLE = {  # type: ignore[assignment]
        St.IDLE: {In.GO: (St.WAITING, (Do.START,)), In.POKE: (St.IDLE, (Do.NOTE,))},
        St.WAITING: {In.STARTED: (St.WAITING, (Do.ARM,)), In.POKE: (St.WAITING, (Do.NOTE,)),
                     In.TIMEOUT: (St.DONE, (Do.NOTE,))},
        St.DONE: {In.POKE: (St.DONE, ())},
    }
    TIMERS = {"t": In.TIMEOUT}  # type: ignore[assignment]
    TERMINAL = frozenset({St.DONE})  # type: ignore[assignment]

    def __init__(self, seconds: float) -> None:
        super().__init__(St.IDLE)
        self.seconds = seconds

    def _internal(self, do: Do, now: float) -> bool:
        if do is Do.ARM:
            self.arm("t", now, self.seconds)
            return True
        return False


class ToyRunner(Runner[In, Do]):
    def __init__(self, ctx: LegContext, seconds: float) -> None:
        super().__init__(ctx, Toy(seconds))
        self.log: list[tuple[Do, St]] = []

    async def do(self, do: Do, payload: object) -> FollowUp:
        self.log.append((do, self.machine.state))
        if do is Do.START:
            await asyncio.sleep(0)  # an await inside a command: a queued input must wait
            return In.STARTED, None
        return None


def context(deadlines: Deadlines) -> LegContext:
    return LegContext(endpoint=cast(Any, None), backends=cast(Any, None), events=cast(Any, None),
                      settings=cast(Any, None), bus=cast(Any, None), directory=cast(Any, None),
                      deadlines=deadlines)


async def test_a_follow_up_comes_before_queued_inputs_and_the_deadline_fires() -> None:
    deadlines = Deadlines()
    leg = ToyRunner(context(deadlines), seconds=0.0)  # due at once: no waiting in the test
    go = asyncio.ensure_future(leg.send(In.GO))
    await asyncio.sleep(0)  # GO's START command is under way
    await leg.send(In.POKE)  # waits for GO's step: handled after STARTED armed the deadline
    await go
    await asyncio.wait_for(leg.over.wait(), 5.0)
    assert leg.log == [(Do.START, St.WAITING), (Do.NOTE, St.WAITING), (Do.NOTE, St.DONE)]
    assert leg.machine.state is St.DONE
    deadlines.close()


async def test_an_input_after_the_end_is_not_fed() -> None:
    deadlines = Deadlines()
    leg = ToyRunner(context(deadlines), seconds=0.0)
    await leg.send(In.GO)
    await asyncio.wait_for(leg.over.wait(), 5.0)
    seen: list[object] = []
    leg.unprocessed = seen.append  # type: ignore[method-assign]
    await leg.send(In.POKE)
    assert len(seen) == 1 and leg.machine.state is St.DONE
    deadlines.close()


async def test_an_input_of_an_older_generation_is_dropped() -> None:
    deadlines = Deadlines()
    leg = ToyRunner(context(deadlines), seconds=0.0)
    await leg.send(In.POKE, gen=leg._gen - 1)  # e.g. a response to an abandoned INVITE
    await leg.send(In.GO)
    await asyncio.wait_for(leg.over.wait(), 5.0)
    assert [do for do, _ in leg.log] == [Do.START, Do.NOTE]  # only the timeout's NOTE
    deadlines.close()


async def test_the_deadline_task_waits_for_the_earliest_leg() -> None:
    deadlines = Deadlines()
    fired: list[str] = []
    loop = asyncio.get_running_loop()
    both = asyncio.Event()

    class Leg:
        def __init__(self, name: str, at: float) -> None:
            self.name, self.at = name, at

        def next_timer(self) -> float | None:
            return None if self.name in fired else self.at

        def timer_due(self) -> None:
            fired.append(self.name)
            if len(fired) == 2:
                both.set()

    now = loop.time()
    deadlines.add(Leg("late", now + 0.05))
    deadlines.add(Leg("never", now + 3600))
    deadlines.add(Leg("soon", now))
    await asyncio.wait_for(both.wait(), 5.0)
    assert fired == ["soon", "late"]
    deadlines.close()
