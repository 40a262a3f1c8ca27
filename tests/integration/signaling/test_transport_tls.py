"""SIP over TLS on loopback with a test CA made in the test: verification, SNI, mutual TLS."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from services.signaling.transport import (
    Addr,
    ClientTlsOptions,
    Limits,
    ServerTlsConfig,
    TransportError,
    TransportLayer,
)
from services.signaling.transport.tls import client_context
from tests.helpers.tls import TestCA
from tests.helpers.transport import WAIT, Factory, Sink  # noqa: F401

OPTIONS = (
    b"OPTIONS sip:bob@sip.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK1\r\n"
    b"Max-Forwards: 70\r\nTo: <sip:bob@sip.test>\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: t\r\n"
    b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)
OK = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("pki"))


async def tls_server(make_layer: Factory, cert_names: tuple[str, ...], ca: TestCA, **kw: object):  # type: ignore[no-untyped-def]
    issued = ca.issue(*cert_names, **kw)  # type: ignore[arg-type]
    layer, sink = make_layer()
    addr = await layer.listen("tls", "127.0.0.1", 0, tls=ServerTlsConfig(issued.cert_file, issued.key_file))
    return layer, sink, addr


async def test_tls_exchange_with_trusted_ca(make_layer: Factory, ca: TestCA) -> None:
    server, s_sink, addr = await tls_server(make_layer, ("sip.test",), ca)
    client, c_sink = make_layer()
    local = await client.send(OPTIONS, addr, tls=ClientTlsOptions(ca_pem=ca.cert_pem), server_name="sip.test")
    data, source, _ = await s_sink.message()
    assert data == OPTIONS and source == Addr("tls", "127.0.0.1", local.port)
    await server.send(OK, source)  # back over the same TLS connection
    data, source, _ = await c_sink.message()
    assert data == OK and source == addr
    await client.send(OPTIONS, addr, tls=ClientTlsOptions(ca_pem=ca.cert_pem), server_name="sip.test")
    await s_sink.message()
    assert client.stats.connections_opened == 1 and server.stats.tls_failures == 0


async def test_tls_ip_address_certificate(make_layer: Factory, ca: TestCA) -> None:
    _, s_sink, addr = await tls_server(make_layer, ("127.0.0.1",), ca)
    client, _ = make_layer()
    await client.send(OPTIONS, addr, tls=ClientTlsOptions(ca_pem=ca.cert_pem))  # no name: checks the IP
    assert (await s_sink.message())[0] == OPTIONS


async def test_tls_unknown_ca(make_layer: Factory, ca: TestCA) -> None:
    server, s_sink, addr = await tls_server(make_layer, ("sip.test",), ca)
    client, _ = make_layer()
    with pytest.raises(TransportError) as e:
        await client.send(OPTIONS, addr, server_name="sip.test")  # system trust store only
    assert e.value.reason == "tls: unknown CA"
    # the server side is an event with a reason, not a crash
    peer, reason = await s_sink.error()
    assert reason.startswith("tls:") and peer.transport == "tls"
    assert server.stats.tls_failures == 1 and client.stats.tls_failures == 1


async def test_tls_unknown_ca_when_another_ca_is_trusted(
    make_layer: Factory, ca: TestCA, tmp_path: Path
) -> None:
    _, _, addr = await tls_server(make_layer, ("sip.test",), ca)
    other = TestCA(tmp_path / "other", "Other CA")
    client, _ = make_layer()
    with pytest.raises(TransportError) as e:
        await client.send(OPTIONS, addr, tls=ClientTlsOptions(ca_pem=other.cert_pem), server_name="sip.test")
    assert e.value.reason == "tls: unknown CA"


async def test_tls_wrong_host_name(make_layer: Factory, ca: TestCA) -> None:
    _, _, addr = await tls_server(make_layer, ("other.test",), ca)
    client, _ = make_layer()
    with pytest.raises(TransportError) as e:
        await client.send(OPTIONS, addr, tls=ClientTlsOptions(ca_pem=ca.cert_pem), server_name="sip.test")
    assert e.value.reason == "tls: wrong host name"
    assert "sip.test" in str(e.value)


async def test_tls_expired_certificate(make_layer: Factory, ca: TestCA) -> None:
    _, _, addr = await tls_server(make_layer, ("sip.test",), ca, expired=True)
    client, _ = make_layer()
    with pytest.raises(TransportError) as e:
        await client.send(OPTIONS, addr, tls=ClientTlsOptions(ca_pem=ca.cert_pem), server_name="sip.test")
    assert e.value.reason == "tls: certificate expired"


async def test_tls_self_signed_accepted_with_verify_off(make_layer: Factory, ca: TestCA) -> None:
    _, s_sink, addr = await tls_server(make_layer, ("sbc.customer.test",), ca, self_signed=True)
    client, _ = make_layer()
    with pytest.raises(TransportError) as e:
        await client.send(OPTIONS, addr, server_name="sbc.customer.test")
    assert e.value.reason == "tls: unknown CA"
    await client.send(OPTIONS, addr, tls=ClientTlsOptions(verify=False), server_name="sbc.customer.test")
    assert (await s_sink.message())[0] == OPTIONS


async def test_mutual_tls(make_layer: Factory, ca: TestCA) -> None:
    issued = ca.issue("sip.test")
    server, s_sink = make_layer()
    addr = await server.listen(
        "tls", "127.0.0.1", 0,
        tls=ServerTlsConfig(issued.cert_file, issued.key_file, ca_file=ca.cert_file, require_client_cert=True),
    )  # fmt: skip
    client_cert = ca.issue("switchboard.test", client=True)

    ok, _ = make_layer()
    opts = ClientTlsOptions(
        ca_pem=ca.cert_pem, client_cert_pem=client_cert.cert_pem, client_key_pem=client_cert.key_pem
    )
    await ok.send(OPTIONS, addr, tls=opts, server_name="sip.test")
    assert (await s_sink.message())[0] == OPTIONS

    # Without a client certificate the server refuses; with TLS 1.3 the client may only learn
    # it after its handshake finished, so the send itself may or may not raise.
    anon, _ = make_layer()
    try:
        await anon.send(OPTIONS, addr, tls=ClientTlsOptions(ca_pem=ca.cert_pem), server_name="sip.test")
    except TransportError as exc:
        assert exc.reason.startswith("tls:")
    _, reason = await s_sink.error()
    assert reason == "tls: client certificate required"
    assert s_sink.messages.empty()


async def test_sni_carries_the_target_host_name(ca: TestCA) -> None:
    issued = ca.issue("sip.test")
    seen: list[str | None] = []
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(issued.cert_file, issued.key_file)
    ctx.sni_callback = lambda sslobj, name, c: seen.append(name)  # type: ignore[assignment,misc,func-returns-value]
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        got.put_nowait(await r.readuntil(b"\r\n\r\n"))
        w.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    port = srv.sockets[0].getsockname()[1]
    layer = TransportLayer(lambda *a: None)
    try:
        await layer.send(OPTIONS, Addr("tls", "127.0.0.1", port), tls=ClientTlsOptions(ca_pem=ca.cert_pem),
                         server_name="sip.test")  # fmt: skip
        assert await asyncio.wait_for(got.get(), WAIT) == OPTIONS
        assert seen == ["sip.test"]
    finally:
        await layer.close()
        srv.close()


async def test_plain_tcp_to_tls_port_is_reported_not_fatal(make_layer: Factory, ca: TestCA) -> None:
    server, s_sink, addr = await tls_server(make_layer, ("sip.test",), ca)
    r, w = await asyncio.open_connection(addr.host, addr.port)
    w.write(OPTIONS)
    _, reason = await s_sink.error()
    assert reason.startswith("tls: handshake failed")
    w.close()
    # and the listener still serves TLS
    client, _ = make_layer()
    await client.send(OPTIONS, addr, tls=ClientTlsOptions(ca_pem=ca.cert_pem), server_name="sip.test")
    assert (await s_sink.message())[0] == OPTIONS


def test_client_context_is_tls12_plus_and_verifies_by_default() -> None:
    ctx = client_context(None)
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    off = client_context(ClientTlsOptions(verify=False))
    assert not off.check_hostname and off.verify_mode == ssl.CERT_NONE


async def test_server_that_never_answers_the_handshake(make_layer: Factory) -> None:
    async def mute(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.read()  # reads the ClientHello, answers nothing

    srv = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    client, _ = make_layer(Limits(tls_handshake_timeout=0.2))
    try:
        with pytest.raises(TransportError) as e:
            await client.send(OPTIONS, Addr("tls", "127.0.0.1", port), server_name="sip.test")
        assert e.value.reason == "tls: handshake failed: timeout"
    finally:
        srv.close()


async def test_client_that_never_finishes_the_handshake(make_layer: Factory, ca: TestCA) -> None:
    issued = ca.issue("sip.test")
    server, sink = make_layer(Limits(tls_handshake_timeout=0.2, reap_interval=0.05))
    addr = await server.listen("tls", "127.0.0.1", 0, tls=ServerTlsConfig(issued.cert_file, issued.key_file))
    r, w = await asyncio.open_connection(addr.host, addr.port)  # TCP only, no ClientHello
    _, reason = await sink.error()
    assert reason == "tls: handshake failed: timeout"
    assert await asyncio.wait_for(r.read(), WAIT) == b""
    w.close()
