"""The tests' G.711 μ-law helper against the reference points in shared/testdata."""

from __future__ import annotations

import re

import pytest

from tests.helpers import g711
from tests.helpers.testdata import SHARED_TESTDATA

VECTORS = SHARED_TESTDATA / "rtp_vectors.md"


def _section(title: str) -> str:
    text = VECTORS.read_text()
    start = text.index(title)
    end = re.compile(r"\n#{2,3} ").search(text, start + len(title))
    return text[start:end.start() if end else len(text)]


@pytest.mark.skipif(not VECTORS.exists(), reason=f"{VECTORS} is not there")
def test_decode_table_matches_the_reference() -> None:
    rows = re.findall(r"^\s*([0-9A-F])_:\s+(.*)$", _section("### μ-law decode table"), re.M)
    assert len(rows) == 16
    for high, values in rows:
        for low, value in enumerate(values.split()):
            assert g711.decode_byte(int(high, 16) * 16 + low) == int(value)


@pytest.mark.skipif(not VECTORS.exists(), reason=f"{VECTORS} is not there")
def test_encoder_points_match_the_reference() -> None:
    points = re.findall(r"^\|\s*(-?\d+)\s*\|\s*0x([0-9A-F]{2})\s*\|\s*0x([0-9A-F]{2})\s*\|",
                        _section("### Encoder points"), re.M)
    assert len(points) > 20
    for pcm, _webrtc, sox in points:
        # The sox/CPython lineage (the vectors say where it differs from WebRTC's: some
        # negative boundary inputs; either decodes to the same segment).
        assert g711.encode_sample(int(pcm)) == int(sox, 16), pcm


def test_round_trip_keeps_the_segment() -> None:
    for s in (0, 100, -100, 1000, -1000, 8000, -8000, 32000, -32000):
        back = g711.decode_byte(g711.encode_sample(s))
        assert abs(back - s) <= max(16, abs(s) // 16)
