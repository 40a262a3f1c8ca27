"""The port pool, sans-IO: a fake clock and a fake binder."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.errors import HandlerError
from services.media.errors import PoolExhausted
from services.media.pool import PortPool


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def ok(port: int) -> int:
    return port


def test_even_pairs_in_range_never_twice() -> None:
    pool = PortPool(10001, 10020, quarantine=0)
    assert pool.ports == [10002, 10004, 10006, 10008, 10010, 10012, 10014, 10016, 10018]
    got = [pool.allocate(ok)[0] for _ in range(pool.capacity)]
    assert sorted(got) == pool.ports and all(p % 2 == 0 and p + 1 <= 10020 for p in got)
    with pytest.raises(PoolExhausted) as e:
        pool.allocate(ok)
    assert isinstance(e.value, HandlerError) and e.value.code == 503
    assert e.value.detail["in_use"] == 9


def test_release_quarantine() -> None:
    clock = Clock()
    pool = PortPool(10000, 10003, quarantine=5, clock=clock)
    a, _ = pool.allocate(ok)
    b, _ = pool.allocate(ok)
    pool.release(a)
    with pytest.raises(PoolExhausted):
        pool.allocate(ok)  # a is quarantined
    clock.t += 5.1
    assert pool.allocate(ok)[0] == a
    pool.release(b)
    pool.release(b)  # twice is harmless
    assert pool.available == 0


def test_round_robin_delays_reuse() -> None:
    pool = PortPool(10000, 10009, quarantine=0)
    first, _ = pool.allocate(ok)
    pool.release(first)
    assert pool.allocate(ok)[0] != first


def test_busy_ports_are_skipped() -> None:
    clock = Clock()
    pool = PortPool(10000, 10005, quarantine=2, clock=clock)
    busy = {10000}
    port, bound = pool.allocate(lambda p: None if p in busy else f"socks{p}")
    assert port == 10002 and bound == "socks10002"
    assert pool.allocate(ok)[0] == 10004
    with pytest.raises(PoolExhausted):
        pool.allocate(ok)  # 10000 was busy a moment ago: not probed again yet
    clock.t += 3
    assert pool.allocate(ok)[0] == 10000


def test_restart_does_not_reuse_previous_life_ports(tmp_path: Path) -> None:
    clock = Clock()
    state = tmp_path / "ports.json"
    one = PortPool(10000, 10007, quarantine=30, state_path=state, clock=clock)
    held = [one.allocate(ok)[0] for _ in range(2)]
    released, _ = one.allocate(ok)
    one.release(released)
    # The process dies without releasing; a new life starts on the same range.
    two = PortPool(10000, 10007, quarantine=30, state_path=state, clock=clock)
    got = two.allocate(ok)[0]
    assert got not in held and got != released
    with pytest.raises(PoolExhausted):
        two.allocate(ok)
    clock.t += 31
    assert {two.allocate(ok)[0] for _ in range(3)} == {*held, released}


def test_unreadable_state_file_starts_empty(tmp_path: Path) -> None:
    state = tmp_path / "ports.json"
    state.write_text("{not json")
    pool = PortPool(10000, 10003, state_path=state)
    assert pool.available == 2
