"""Target health by OPTIONS pinging, sans-IO: which probes are due, and what an answer or a
miss does to a target's health. The asyncio driver (`health.py`) sends the OPTIONS.

Any response at all means the target is alive (RFC 3261 §11: a UA answers OPTIONS as it
would an INVITE, 200 or not; even a 403 or 404 comes from a live SIP stack). Three misses in
a row mark it `down`, one answer marks it `up`. A down target is not removed: it is still
pinged, so it comes back as soon as it answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Health = Literal["up", "down", "unknown"]
MISSES_DOWN = 3


@dataclass
class Probe:
    target_id: str
    uri: str
    health: Health = "unknown"
    misses: int = 0
    due: float = 0.0
    in_flight: bool = False


@dataclass(frozen=True)
class Change:
    target_id: str
    uri: str
    previous: Health
    health: Health
    reason: str


class HealthTable:
    """The targets this node pings, each probed every ``interval`` seconds."""

    def __init__(self, interval: float) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.probes: dict[str, Probe] = {}

    def sync(self, targets: list[tuple[str, str, Health]], now: float) -> None:
        """The targets to ping now (id, uri, the health config knows): new ones are probed
        at once with the health config last heard; gone ones are dropped; a changed URI
        starts over."""
        wanted = {tid: (uri, health) for tid, uri, health in targets}
        for tid in list(self.probes):
            if tid not in wanted or self.probes[tid].uri != wanted[tid][0]:
                del self.probes[tid]
        for tid, (uri, health) in wanted.items():
            if tid not in self.probes:
                self.probes[tid] = Probe(tid, uri, health=health, due=now)

    def due(self, now: float) -> list[Probe]:
        """Probes to send now; each is then in flight until answered or missed."""
        out = []
        for p in self.probes.values():
            if not p.in_flight and p.due <= now:
                p.in_flight = True
                p.due = now + self.interval
                out.append(p)
        return out

    def next_timer(self) -> float | None:
        waiting = [p.due for p in self.probes.values() if not p.in_flight]
        return min(waiting) if waiting else None

    def answered(self, target_id: str, status: int) -> Change | None:
        p = self._done(target_id)
        if p is None:
            return None
        p.misses = 0
        return self._set(p, "up", f"answered OPTIONS with {status}")

    def missed(self, target_id: str, why: str) -> Change | None:
        p = self._done(target_id)
        if p is None:
            return None
        p.misses += 1
        if p.misses >= MISSES_DOWN:
            return self._set(p, "down", f"{p.misses} OPTIONS unanswered in a row ({why})")
        return None

    def _done(self, target_id: str) -> Probe | None:
        p = self.probes.get(target_id)
        if p is not None:
            p.in_flight = False
        return p

    @staticmethod
    def _set(p: Probe, health: Health, reason: str) -> Change | None:
        if p.health == health:
            return None
        change = Change(p.target_id, p.uri, p.health, health, reason)
        p.health = health
        return change
