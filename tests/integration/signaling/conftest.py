"""Fixtures of the signaling integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.signaling.transport import Limits, TransportLayer
from tests.helpers.transport import Factory, Sink


@pytest.fixture
async def make_layer() -> AsyncIterator[Factory]:
    """Make TransportLayers wired to a Sink; all are closed after the test."""
    layers: list[TransportLayer] = []

    def make(limits: Limits | None = None) -> tuple[TransportLayer, Sink]:
        sink = Sink()
        layer = TransportLayer(sink.on_message, sink.on_error, limits=limits)
        layers.append(layer)
        return layer, sink

    yield make
    for layer in layers:
        await layer.close()
