"""Whether this node takes a new carrier INVITE: decided before routing, media or any event,
so that refusing costs almost nothing (sans-IO; the B2BUA passes the load it sees).

Two kinds of refusal, both 503 with Retry-After (RFC 3261 §21.5.4):
- policy: the node is draining, at `max_calls`, or the source is over its INVITE rate. These
  are rare and each one is a call event, so the operator sees the call that was refused.
- overload: the node measures that it is falling behind — its event loop runs late or too many
  calls are still being set up (RFC 7339 §3: the server judges its own load and refuses
  early). Under a burst these are many; they are counted and logged in summary, not traced,
  because tracing each one would spend the capacity the node is trying to protect.

Overload has hysteresis: it starts when the lag passes `lag_high` and ends only when the lag
is back under `lag_low`, so the node does not flap between taking and refusing a burst."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Limits:
    max_calls: int
    max_in_setup: int
    """Calls not yet answered; each one costs routing, media and the client's INVITE."""
    lag_high: float
    """Seconds of event-loop lag at which the node starts refusing."""
    lag_low: float
    """…and below which it takes calls again."""
    lag_min_in_setup: int
    """Lag counts only with at least this many calls in setup: a node that is late with
    hardly any calls is late for another reason (a stall, a neighbour on the core), and
    refusing calls would not make it any faster."""
    retry_after: int
    """Seconds the carrier should wait before sending this node another call (policy)."""
    overload_retry_after: int
    """…after an overload refusal: short, the node is expected back as soon as the burst ends."""


@dataclass(frozen=True)
class Load:
    calls: int
    in_setup: int
    lag: float
    draining: bool = False
    rate_ok: bool = True
    """The source is within its INVITE rate (the token bucket's verdict)."""


@dataclass(frozen=True)
class Refusal:
    reason: str
    kind: Literal["policy", "overload"]
    retry_after: int
    status: int = 503


class Admission:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.overloaded = False

    def decide(self, load: Load) -> Refusal | None:
        lim = self.limits
        if lim.lag_high <= 0:  # lag-based refusal switched off
            self.overloaded = False
        elif self.overloaded and load.lag < lim.lag_low:
            self.overloaded = False
        elif not self.overloaded and load.lag >= lim.lag_high:
            self.overloaded = True
        if load.draining:
            return Refusal("Node draining", "policy", lim.retry_after)
        if load.calls >= lim.max_calls:
            return Refusal("Too many calls on this node", "policy", lim.retry_after)
        if not load.rate_ok:
            return Refusal("Rate limit", "policy", lim.retry_after)
        if self.overloaded and load.in_setup >= lim.lag_min_in_setup:
            return Refusal("Overloaded", "overload", lim.overload_retry_after)
        if load.in_setup >= lim.max_in_setup:
            return Refusal("Overloaded", "overload", lim.overload_retry_after)
        return None
