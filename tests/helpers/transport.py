"""What the transport tests share: a sink for a TransportLayer's callbacks (the
`make_layer` fixture in tests/integration/signaling/conftest.py makes layers wired to one)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from services.signaling.transport import Addr, TransportLayer

WAIT = 5.0  # an upper bound for things that happen at once; never a timing assertion


class Sink:
    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[bytes, Addr, Addr]] = asyncio.Queue()
        self.errors: asyncio.Queue[tuple[Addr, str]] = asyncio.Queue()

    def on_message(self, data: bytes, source: Addr, local: Addr) -> None:
        self.messages.put_nowait((data, source, local))

    def on_error(self, addr: Addr, reason: str) -> None:
        self.errors.put_nowait((addr, reason))

    async def message(self) -> tuple[bytes, Addr, Addr]:
        return await asyncio.wait_for(self.messages.get(), WAIT)

    async def error(self) -> tuple[Addr, str]:
        return await asyncio.wait_for(self.errors.get(), WAIT)


Factory = Callable[..., tuple[TransportLayer, Sink]]
