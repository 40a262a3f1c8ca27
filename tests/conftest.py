"""Shared fixtures: a real nats-server from the wheel on a free port, a bus connected to it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.common.bus import Bus
from services.common.natsserver import NatsServer

REPO = Path(__file__).resolve().parents[1]
SHARED_TESTDATA = REPO.parent / "shared" / "testdata"


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


def postgres_url() -> str | None:
    """The PostgreSQL to test against: SWITCHBOARD_TEST_POSTGRES_URL (set by .ci/run)."""
    return os.environ.get("SWITCHBOARD_TEST_POSTGRES_URL")
