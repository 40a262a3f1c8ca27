"""The B2BUA's view of the other services, against a real nats-server."""

from __future__ import annotations

import asyncio

import pytest

from proto import subjects
from proto.messages import TrunkCheck, TrunkCheckResult
from services.common.bus import Bus
from services.signaling.b2bua.backends import Backends
from services.signaling.errors import CallSetupError


async def test_trunk_checks_are_reused_for_a_while(bus: Bus) -> None:
    asked: list[str] = []

    async def registry(q: TrunkCheck) -> TrunkCheckResult:
        asked.append(q.address)
        return TrunkCheckResult(allowed=q.address == "192.0.2.1")

    await bus.subscribe(subjects.registry_trunk_check(), registry, TrunkCheck)
    await bus.nc.flush()
    b = Backends(bus, trunk_cache=0.3)
    assert await b.is_trunk("192.0.2.1") and await b.is_trunk("192.0.2.1")
    assert not await b.is_trunk("198.51.100.7") and not await b.is_trunk("198.51.100.7")
    assert asked == ["192.0.2.1", "198.51.100.7"]  # one question per source
    await asyncio.sleep(0.4)
    assert await b.is_trunk("192.0.2.1")
    assert asked[-1] == "192.0.2.1" and len(asked) == 3  # asked again once the answer is old


async def test_no_registry_is_503_outside_local_mode(bus: Bus) -> None:
    with pytest.raises(CallSetupError) as e:
        await Backends(bus, timeout=0.3).is_trunk("192.0.2.1")
    assert e.value.status == 503 and e.value.retry_after
    # In `switchboard up`'s local mode, loopback still gets through without a registry.
    assert await Backends(bus, timeout=0.3, local_mode=True).is_trunk("127.0.0.1")
