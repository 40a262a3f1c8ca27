"""Shared fixtures: a real nats-server from the wheel on a free port, a bus connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.common.bus import Bus
from services.common.natsserver import NatsServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh nats-server with JetStream for one test; the test may stop/start it."""
    srv = NatsServer(store_dir=tmp_path / "nats")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    b = await Bus.connect(nats_server.url, "test")
    yield b
    await b.close()
