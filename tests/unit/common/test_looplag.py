"""The event-loop lag measure: a blip barely moves it, a loop that stays behind does."""

from __future__ import annotations

import asyncio
import time

from services.common.looplag import LoopLag


def test_one_slow_callback_barely_moves_it() -> None:
    lag = LoopLag(period=0.05, tau=1.0)
    for _ in range(100):
        lag.sample(0.001, 0.051)
    lag.sample(0.1, 0.15)  # one 100 ms callback
    assert lag.lag < 0.02


def test_a_loop_that_stays_behind_shows_within_a_second() -> None:
    lag = LoopLag(period=0.05, tau=1.0)
    for _ in range(3):  # ~1 s of wake-ups each 300 ms late
        lag.sample(0.3, 0.35)
    assert lag.lag > 0.15
    for _ in range(20):  # 1 s of punctual wake-ups: caught up again
        lag.sample(0.0, 0.05)
    assert lag.lag < 0.1


async def test_it_measures_a_blocked_loop() -> None:
    lag = LoopLag(period=0.02, tau=0.5)
    lag.start()
    try:
        for _ in range(6):  # the loop is kept busy: 250 ms blocking callbacks, back to back
            await asyncio.sleep(0)
            time.sleep(0.25)
        await asyncio.sleep(0.03)
        assert lag.lag > 0.1
    finally:
        await lag.stop()
