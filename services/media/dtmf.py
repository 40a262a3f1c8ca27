"""RFC 4733 DTMF: detect key presses in telephone-event packets, plan injected events.

Sans-IO: the detector is fed parsed packets and returns digits; the planner returns the
packets to send and when, and the relay sends them.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from .packets import TelephoneEvent, digit_to_event, event_to_digit

CLOCK_RATE = 8000
PAUSE = "w"
PAUSE_SECONDS = 0.5


@dataclass(frozen=True)
class Digit:
    digit: str
    duration_ms: int
    event: int


class DtmfDetector:
    """One key press = one Digit, however many packets carry it.

    An event is identified by (SSRC, RTP timestamp): every packet of one event carries the
    timestamp of its start (RFC 4733 §2.2.1). The digit is reported on the first end packet
    (E bit); the end retransmissions (§2.5.1.4) then match a reported key and are ignored.
    If the end packets are all lost, the next event (or `flush`) reports it.
    """

    def __init__(self, clock_rate: int = CLOCK_RATE) -> None:
        self.clock_rate = clock_rate
        self._reported: deque[tuple[int, int]] = deque(maxlen=16)
        self._open: tuple[int, int, int] | None = None  # ssrc, ts, event
        self._open_duration = 0
        self.last_seen = 0.0

    def feed(self, ssrc: int, timestamp: int, ev: TelephoneEvent, now: float = 0.0) -> list[Digit]:
        self.last_seen = now
        key = (ssrc, timestamp)
        if key in self._reported:
            return []
        out: list[Digit] = []
        if self._open is not None and self._open[:2] != key:
            out.extend(self.flush())
        if event_to_digit(ev.event) is None:
            return out  # flash, tones: relayed but not reported as digits
        if ev.end:
            self._open = None
            self._reported.append(key)
            out.append(self._digit(ev.event, ev.duration))
        else:
            same = self._open is not None and self._open[:2] == key
            self._open_duration = max(self._open_duration, ev.duration) if same else ev.duration
            self._open = (ssrc, timestamp, ev.event)
        return out

    def flush(self) -> list[Digit]:
        """Report an event whose end packets never came."""
        if self._open is None:
            return []
        ssrc, ts, event = self._open
        self._open = None
        self._reported.append((ssrc, ts))
        return [self._digit(event, self._open_duration)]

    @property
    def pending(self) -> bool:
        return self._open is not None

    def _digit(self, event: int, duration: int) -> Digit:
        return Digit(event_to_digit(event) or "?", round(duration * 1000 / self.clock_rate), event)


@dataclass(frozen=True)
class DtmfStep:
    """One telephone-event packet to send `at` seconds after the injection started."""

    at: float
    event: int
    end: bool
    duration: int
    """Timestamp units since the event's start (§2.3.5)."""
    marker: bool
    ts_offset: int
    """The event's start, in timestamp units after the injection's base timestamp."""
    volume: int = 10

    def payload(self) -> bytes:
        return bytes(TelephoneEvent(self.event, self.end, self.volume, self.duration))


def validate_digits(digits: str) -> None:
    for d in digits:
        if d.lower() != PAUSE:
            digit_to_event(d)


def plan_dtmf(
    digits: str, duration_ms: int = 160, gap_ms: int = 80, ptime_ms: int = 20,
    clock_rate: int = CLOCK_RATE, volume: int = 10,
) -> list[DtmfStep]:
    """The packets for `digits` (`w` = 0.5 s pause). Per event: updates every ptime with
    the growing duration, the first one with the marker bit (§2.2.2), then the final
    packet with E set sent three times at the update interval (§2.5.1.4)."""
    validate_digits(digits)
    duration_ms = max(ptime_ms, min(duration_ms, 8000))  # a 16-bit duration: < 8.19 s
    ptime = ptime_ms / 1000
    steps: list[DtmfStep] = []
    t = 0.0
    for d in digits:
        if d.lower() == PAUSE:
            t += PAUSE_SECONDS
            continue
        event = digit_to_event(d)
        ts_offset = round(t * clock_rate)
        total = duration_ms * clock_rate // 1000
        per = ptime_ms * clock_rate // 1000
        n = math.ceil(duration_ms / ptime_ms)
        for k in range(n):
            steps.append(DtmfStep(t + k * ptime, event, False, min((k + 1) * per, total), k == 0, ts_offset, volume))
        for r in range(3):
            steps.append(DtmfStep(t + (n + r) * ptime, event, True, total, False, ts_offset, volume))
        t += (n + 2) * ptime + gap_ms / 1000
    return steps
