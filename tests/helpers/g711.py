"""G.711 μ-law for the tests that put audio on the wire and read it back (Python's audioop
is gone in 3.13). The classic Sun/sox g711.c algorithm on 14-bit samples, as CPython's
audioop had it; tests/interop/test_g711.py checks it against shared/testdata/rtp_vectors.md."""

from __future__ import annotations

import struct

_SEG_END = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_BIAS = 0x84
_CLIP = 8159


def encode_sample(sample: int) -> int:
    """int16 -> μ-law code byte."""
    value = sample >> 2  # 14-bit, arithmetic shift as in C
    mask = 0xFF
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, _CLIP) + (_BIAS >> 2)
    seg = next((i for i, end in enumerate(_SEG_END) if value <= end), 8)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((value >> (seg + 1)) & 0xF)) ^ mask


def decode_byte(code: int) -> int:
    """μ-law code byte -> int16."""
    u = ~code & 0xFF
    t = ((u & 0x0F) << 3) + _BIAS
    t <<= (u & 0x70) >> 4
    return _BIAS - t if u & 0x80 else t - _BIAS


_DECODE = [decode_byte(c) for c in range(256)]


def lin2ulaw(pcm: bytes) -> bytes:
    """Little-endian int16 PCM -> μ-law bytes."""
    return bytes(encode_sample(s) for (s,) in struct.iter_unpack("<h", pcm))


def ulaw2lin(ulaw: bytes) -> bytes:
    return struct.pack(f"<{len(ulaw)}h", *(_DECODE[c] for c in ulaw))
