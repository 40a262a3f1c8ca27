"""Fixtures for interop tests with real SIP peers (see tests/helpers/peers.py).

    async def test_x(sipp, baresip, tls_files):
        client = await sipp("client_auth_answer", variables={"user": "u", "pass": "p"}).start()
        bob = await baresip("bob", tls=tls_files, mediaenc="srtp-mand", auto_answer=True).start()

Every peer made through these factories is stopped at teardown; logs stay in tmp_path.
Skip marks for tests that need a binary: ``peers.needs_sipp`` and ``peers.needs_baresip``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.peers import Baresip, SippPeer, TlsFiles, make_tls_files


@pytest.fixture
async def sipp(tmp_path: Path) -> AsyncIterator[Callable[..., SippPeer]]:
    """A factory: ``sipp(scenario, **SippPeer kwargs)``; log_dir defaults to tmp_path."""
    made: list[SippPeer] = []

    def factory(scenario: str | Path, **kwargs: Any) -> SippPeer:
        kwargs.setdefault("log_dir", tmp_path)
        peer = SippPeer(scenario, **kwargs)
        made.append(peer)
        return peer

    yield factory
    for peer in made:
        await peer.stop()


@pytest.fixture
async def baresip(tmp_path: Path) -> AsyncIterator[Callable[..., Baresip]]:
    """A factory: ``baresip(name, **Baresip kwargs)``; the workdir is tmp_path."""
    made: list[Baresip] = []

    def factory(name: str = "bob", **kwargs: Any) -> Baresip:
        ua = Baresip(kwargs.pop("workdir", tmp_path), name=name, **kwargs)
        made.append(ua)
        return ua

    yield factory
    for ua in made:
        await ua.stop()


@pytest.fixture
def test_ca_and_tls(tmp_path: Path) -> tuple[Any, TlsFiles]:
    """A test CA and a certificate for 127.0.0.1/localhost it signed, in baresip's format.
    The CA (``TestCA``) can issue more, e.g. for the B2BUA's TLS listener."""
    return make_tls_files(tmp_path / "pki")


@pytest.fixture
def tls_files(test_ca_and_tls: tuple[Any, TlsFiles]) -> TlsFiles:
    return test_ca_and_tls[1]
