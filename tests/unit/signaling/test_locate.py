"""RFC 3263 server location, the parts that need no DNS: RFC 2782 SRV ordering and URIs
that are refused before any query (the DNS cases are in tests/integration/signaling)."""

from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace

import pytest

from services.signaling.transport import locate
from services.signaling.transport.locate import order_srv


def _srv(priority: int, weight: int, name: str = "x") -> SimpleNamespace:
    return SimpleNamespace(priority=priority, weight=weight, name=name)


async def test_not_a_sip_uri() -> None:
    with pytest.raises(ValueError):
        await locate("tel:+15551234567")


# ------------------------------------------------------------------ RFC 2782 ordering, pure


def test_order_srv_priority_first_and_complete() -> None:
    recs = [_srv(20, 5, "c"), _srv(10, 0, "b"), _srv(10, 50, "a"), _srv(30, 0, "d")]
    for seed in range(20):
        got = order_srv(recs, random.Random(seed))
        assert sorted(r.name for r in got) == ["a", "b", "c", "d"]
        assert [r.priority for r in got] == [10, 10, 20, 30]


def test_order_srv_weight_proportional() -> None:
    recs = [_srv(10, 30, "a"), _srv(10, 10, "b")]
    rng = random.Random(1)
    firsts = Counter(order_srv(recs, rng)[0].name for _ in range(2000))
    # expected 3:1 (a first with probability ~30/41 per RFC 2782 inclusive range)
    assert 1300 < firsts["a"] < 1650


def test_order_srv_zero_weights_only() -> None:
    recs = [_srv(10, 0, "a"), _srv(10, 0, "b")]
    got = order_srv(recs, random.Random(3))
    assert {r.name for r in got} == {"a", "b"}
