"""The service runs on uvloop: the same transports must work there (UDP, TCP, TLS, failures)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.signaling.transport import (
    Addr,
    ClientTlsOptions,
    ServerTlsConfig,
    TransportError,
    TransportLayer,
)
from tests.helpers.tls import TestCA

uvloop = pytest.importorskip("uvloop")

MSG = (
    b"OPTIONS sip:bob@sip.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n"
    b"To: <sip:bob@sip.test>\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: u\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)


def test_transports_on_uvloop(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    good = ca.issue("sip.test")

    async def scenario() -> None:
        got: asyncio.Queue[tuple[bytes, Addr]] = asyncio.Queue()
        errors: asyncio.Queue[str] = asyncio.Queue()
        a = TransportLayer(lambda d, s, local: got.put_nowait((d, s)), lambda addr, r: errors.put_nowait(r))
        b = TransportLayer(lambda d, s, local: got.put_nowait((d, s)))
        try:
            udp = await a.listen("udp", "127.0.0.1", 0)
            tcp = await a.listen("tcp", "127.0.0.1", 0)
            tls = await a.listen("tls", "127.0.0.1", 0, tls=ServerTlsConfig(good.cert_file, good.key_file))
            for dest in (udp, tcp):
                await b.send(MSG, dest)
                data, source = await asyncio.wait_for(got.get(), 5)
                assert data == MSG and source.transport == dest.transport
            await b.send(MSG, tls, tls=ClientTlsOptions(ca_pem=ca.cert_pem), server_name="sip.test")
            data, source = await asyncio.wait_for(got.get(), 5)
            assert data == MSG and source.transport == "tls"
            await a.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", source)  # reuse inbound TLS
            assert (await asyncio.wait_for(got.get(), 5))[0].startswith(b"SIP/2.0 200")
            c = TransportLayer(lambda *x: None)
            try:
                await c.send(MSG, tls, server_name="sip.test")
            except TransportError as exc:
                assert exc.reason == "tls: unknown CA"
            else:
                raise AssertionError("untrusted CA accepted")
            finally:
                await c.close()
            assert (await asyncio.wait_for(errors.get(), 5)).startswith("tls:")
        finally:
            await a.close()
            await b.close()

    uvloop.run(scenario())
