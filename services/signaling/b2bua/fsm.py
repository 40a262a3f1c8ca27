"""The base of the leg state machines (sans-IO, in the style of ``sip/transaction.py``).

A machine is a table ``state -> input -> (next state, effects)``; the transitions are data,
an input the table does not list for the current state raises :class:`LegStateError`.
Effects are of two kinds: *internal* ones (arm or stop a deadline, record an attempt) that
the machine does itself, and *commands* (send a CANCEL, BYE the other leg...) returned to
the runner, in table order, for it to carry out. Deadlines are named; ``next_timer()``
gives the earliest, ``handle_timer(now)`` fires what is due as that deadline's input.

Nothing here does I/O or reads a clock: every entry point takes ``now`` (seconds from any
monotonic clock)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import ClassVar, Generic, TypeVar

from ..errors import LegStateError

S = TypeVar("S", bound=enum.Enum)
I = TypeVar("I", bound=enum.Enum)  # noqa: E741 - the input type, as in the tables
D = TypeVar("D", bound=enum.Enum)


class Machine(Generic[S, I, D]):
    """One leg's state, deadlines and transition table."""

    TABLE: ClassVar[Mapping[enum.Enum, Mapping[enum.Enum, tuple[enum.Enum, tuple[enum.Enum, ...]]]]]
    TIMERS: ClassVar[Mapping[str, enum.Enum]]  # deadline name -> the input it fires
    TERMINAL: ClassVar[frozenset[enum.Enum]]

    def __init__(self, state: S) -> None:
        self.state: S = state
        self.previous: S = state  # the state before the last transition
        self.payload: object = None  # the last input's payload, for the internal effects
        self.deadlines: dict[str, float] = {}

    @property
    def terminal(self) -> bool:
        return self.state in self.TERMINAL

    def next_timer(self) -> float | None:
        """The earliest running deadline, or None."""
        return min(self.deadlines.values()) if self.deadlines else None

    def handle_timer(self, now: float) -> list[D]:
        """Fire every deadline due at ``now``, earliest first (each as its input)."""
        out: list[D] = []
        while self.deadlines:
            name, deadline = min(self.deadlines.items(), key=lambda kv: kv[1])
            if deadline > now:
                break
            del self.deadlines[name]
            out += self.handle(self.TIMERS[name], now)  # type: ignore[arg-type]
        return out

    def handle(self, inp: I, now: float, payload: object = None) -> list[D]:
        """Feed one input (with its payload); the commands for the runner, in order."""
        self.payload = payload
        try:
            new_state, effects = self.TABLE[self.state][inp]
        except KeyError:
            raise LegStateError(f"{type(self).__name__}: {inp.name} not allowed in state {self.state.name}") from None
        self.previous, self.state = self.state, new_state  # type: ignore[assignment]
        out: list[D] = []
        for do in effects:
            if not self._internal(do, now):  # type: ignore[arg-type]
                out.append(do)  # type: ignore[arg-type]
        if self.terminal:
            self.deadlines.clear()
        return out + self._after(now)

    def _internal(self, do: D, now: float) -> bool:
        """Do ``do`` if it is internal (True); commands are left to the runner (False)."""
        raise NotImplementedError

    def _after(self, now: float) -> list[D]:
        """A transient state resolved at once (e.g. "next target"): its effects."""
        return []

    def arm(self, name: str, now: float, seconds: float) -> None:
        self.deadlines[name] = now + seconds

    def stop(self, name: str) -> None:
        self.deadlines.pop(name, None)
