"""The carrier's side of a two-way audio check: a tone sent as PCMU RTP from a test socket
to the media worker, and what comes back on that socket, collected meanwhile."""

from __future__ import annotations

import asyncio
import math
import socket
import struct
from collections.abc import Awaitable, Callable

from tests.helpers.g711 import lin2ulaw, ulaw2lin

SSRC = 0xC0FFEE


def ulaw_tone(freq: float, seconds: float) -> list[bytes]:
    """20 ms PCMU frames of a sine tone."""
    n = int(8000 * seconds)
    pcm = b"".join(struct.pack("<h", int(9000 * math.sin(2 * math.pi * freq * i / 8000))) for i in range(n))
    ulaw = lin2ulaw(pcm)
    return [ulaw[i:i + 160] for i in range(0, len(ulaw) - 159, 160)]


def dominant(ulaw: bytes, candidates: tuple[float, ...] = (600.0, 1000.0)) -> float:
    """Which of the candidate frequencies is strongest (Goertzel)."""
    pcm = ulaw2lin(ulaw)
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)

    def power(f: float) -> float:
        k = 2 * math.cos(2 * math.pi * f / 8000)
        s1 = s2 = 0.0
        for x in samples:
            s1, s2 = x + k * s1 - s2, s1
        return s1 * s1 + s2 * s2 - k * s1 * s2

    return max(candidates, key=power)


async def exchange_tone(media: socket.socket, dest: tuple[str, int], seconds: float, freq: float = 1000.0, *,
                        at_frame: dict[int, Callable[[], Awaitable[None] | None]] | None = None) -> bytearray:
    """Send `seconds` of a `freq` tone to `dest` in real time from the non-blocking `media`
    socket and return the PCMU payloads received meanwhile; `at_frame[i]` runs after frame i
    (e.g. a DTMF key pressed at the client)."""
    heard = bytearray()
    for i, frame in enumerate(ulaw_tone(freq, seconds)):
        media.sendto(struct.pack("!BBHII", 0x80, 0, i + 1, i * 160, SSRC) + frame, dest)
        if at_frame and i in at_frame:
            result = at_frame[i]()
            if result is not None:
                await result
        await asyncio.sleep(0.02)
        while True:
            try:
                pkt = media.recv(2048)
            except BlockingIOError:
                break
            if pkt[1] & 0x7F == 0:
                heard += pkt[12:]
    return heard
