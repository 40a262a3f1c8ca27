"""RFC 4733 DTMF detection and injection planning."""

from __future__ import annotations

import pytest

from services.media.dtmf import DtmfDetector, plan_dtmf
from services.media.packets import TelephoneEvent


def ev(event: int, duration: int, end: bool = False) -> TelephoneEvent:
    return TelephoneEvent(event, end, 10, duration)


def test_sipp_style_digit_is_one_event() -> None:
    """The SIPp capture shape: first duration 0, three end packets with one sequence number."""
    d = DtmfDetector()
    out = []
    for dur in (0, 320, 640, 960, 1280, 1600, 1920):
        out += d.feed(0x0E05384E, 13280, ev(1, dur))
    for _ in range(3):
        out += d.feed(0x0E05384E, 13280, ev(1, 2240, end=True))
    assert [(x.digit, x.duration_ms) for x in out] == [("1", 280)]


def test_same_digit_twice_is_two_events() -> None:
    d = DtmfDetector()
    out = []
    for ts in (1000, 3000):
        out += d.feed(1, ts, ev(5, 160))
        out += d.feed(1, ts, ev(5, 800, end=True))
        out += d.feed(1, ts, ev(5, 800, end=True))
    assert [x.digit for x in out] == ["5", "5"]


def test_lost_end_packets_reported_by_next_event_or_flush() -> None:
    d = DtmfDetector()
    assert d.feed(1, 100, ev(11, 160)) == []
    assert d.feed(1, 100, ev(11, 480)) == []
    out = d.feed(1, 2000, ev(12, 160))
    assert [(x.digit, x.duration_ms) for x in out] == [("#", 60)]
    assert d.pending
    assert [x.digit for x in d.flush()] == ["A"]
    assert d.flush() == []
    # Late end packets of an event already reported are ignored.
    assert d.feed(1, 2000, ev(12, 800, end=True)) == []


def test_non_digit_events_are_not_reported() -> None:
    d = DtmfDetector()
    assert d.feed(1, 1, ev(16, 800, end=True)) == []


def test_plan_single_digit() -> None:
    steps = plan_dtmf("5", duration_ms=100, gap_ms=80)
    assert [s.marker for s in steps] == [True] + [False] * 7
    assert [s.end for s in steps] == [False] * 5 + [True] * 3
    assert [s.duration for s in steps] == [160, 320, 480, 640, 800, 800, 800, 800]
    assert {s.ts_offset for s in steps} == {0}
    assert [round(s.at, 3) for s in steps] == [0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.14]
    assert steps[-1].payload() == bytes.fromhex("058a0320")


def test_plan_timestamps_and_pause() -> None:
    steps = plan_dtmf("1w#", duration_ms=160, gap_ms=80)
    starts = sorted({(s.event, s.ts_offset) for s in steps}, key=lambda x: x[1])
    # "1": 8 updates + 3 ends over 0.2 s, then the 80 ms gap and a 0.5 s pause.
    assert starts == [(1, 0), (11, round((0.2 + 0.08 + 0.5) * 8000))]
    ts_of = {s.event: s.ts_offset for s in steps}
    for s in steps:
        assert s.ts_offset == ts_of[s.event]  # every packet of an event: its start (§2.2.1)
        assert s.at * 8000 >= s.ts_offset - 1e-6
    assert sum(1 for s in steps if s.end) == 6


def test_planned_packets_detected_once_each() -> None:
    d = DtmfDetector()
    out = []
    for s in plan_dtmf("123*#ABCD0", duration_ms=120):
        out += d.feed(42, 5000 + s.ts_offset, TelephoneEvent.parse(s.payload()))
    assert "".join(x.digit for x in out) == "123*#ABCD0"
    assert {x.duration_ms for x in out} == {120}


def test_plan_rejects_bad_digits() -> None:
    with pytest.raises(ValueError):
        plan_dtmf("12x")
