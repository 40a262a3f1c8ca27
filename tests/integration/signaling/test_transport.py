"""Real UDP/TCP exchanges on loopback through TransportLayer: framing, limits, keep-alives."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from services.signaling.transport import Addr, Limits, TransportError, TransportLayer, locate
from tests.helpers.dns_server import FakeDns
from tests.helpers.transport import WAIT, Factory, Sink  # noqa: F401


def msg(body: bytes = b"", call_id: str = "a", transport: str = "TCP") -> bytes:
    return (
        "OPTIONS sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 192.0.2.1:5060;branch=z9hG4bK1\r\n"
        "Max-Forwards: 70\r\nTo: <sip:bob@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """Read until the peer closes (True) -- or WAIT runs out (False)."""
    try:
        async with asyncio.timeout(WAIT):
            while await reader.read(65536):
                pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not predicate():
            await asyncio.sleep(0.01)


# ------------------------------------------------------------------ UDP


async def test_udp_exchange(make_layer: Factory) -> None:
    a, a_sink = make_layer()
    b, b_sink = make_layer()
    a_addr = await a.listen("udp", "127.0.0.1", 0)
    b_addr = await b.listen("udp", "127.0.0.1", 0)
    assert a.local_addr("udp") == a_addr and a.local_addr("tcp") is None

    sent_from = await b.send(msg(transport="UDP"), a_addr)
    assert sent_from == b_addr
    data, source, local = await a_sink.message()
    assert data == msg(transport="UDP") and source == b_addr and local == a_addr

    await a.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", source)
    data, source, _ = await b_sink.message()
    assert data.startswith(b"SIP/2.0 200") and source == a_addr
    assert a.stats.messages_in == 1 and a.stats.messages_out == 1


async def test_udp_keepalive_ignored_and_oversize_dropped(make_layer: Factory) -> None:
    a, sink = make_layer(Limits(max_message_size=2000))
    a_addr = await a.listen("udp", "127.0.0.1", 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"\r\n\r\n", (a_addr.host, a_addr.port))  # RFC 5626 §3.5.1: ignored on UDP
        s.sendto(msg(b"x" * 3000, transport="UDP"), (a_addr.host, a_addr.port))
        s.sendto(msg(transport="UDP"), (a_addr.host, a_addr.port))
        data, _, _ = await sink.message()
    assert data == msg(transport="UDP")
    assert a.stats.keepalives_in == 1 and a.stats.dropped == 1 and sink.messages.empty()


async def test_udp_send_without_listener_opens_ephemeral_socket(make_layer: Factory) -> None:
    a, a_sink = make_layer()
    b, b_sink = make_layer()
    a_addr = await a.listen("udp", "127.0.0.1", 0)
    local = await b.send(msg(transport="UDP"), a_addr)
    _, source, _ = await a_sink.message()
    assert source.port == local.port
    await a.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", source)
    assert (await b_sink.message())[0].startswith(b"SIP/2.0 200")


# ------------------------------------------------------------------ TCP exchange


async def test_tcp_exchange_reuses_connections_both_ways(make_layer: Factory) -> None:
    a, a_sink = make_layer()
    b, b_sink = make_layer()
    a_addr = await a.listen("tcp", "127.0.0.1", 0)
    await b.listen("tcp", "127.0.0.1", 0)

    big = msg(b"x" * 5000)  # over the MTU limit: what goes over TCP (RFC 3261 §18.1.1)
    local = await b.send(big, a_addr)
    data, source, _ = await a_sink.message()
    assert data == big and source == Addr("tcp", "127.0.0.1", local.port)

    # The response goes back over the connection the peer opened (RFC 3261 §18.2.2).
    await a.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", source)
    data, from_a, _ = await b_sink.message()
    assert data.startswith(b"SIP/2.0 200") and from_a == a_addr
    assert a.stats.connections_opened == 0 and a.stats.connections_accepted == 1

    await b.send(msg(call_id="2"), a_addr)  # reused, not reopened
    assert (await a_sink.message())[0] == msg(call_id="2")
    assert b.stats.connections_opened == 1 and b.connection_count == 1


async def test_tcp_concurrent_sends_share_one_connection(make_layer: Factory) -> None:
    a, a_sink = make_layer()
    b, _ = make_layer()
    a_addr = await a.listen("tcp", "127.0.0.1", 0)
    await asyncio.gather(*(b.send(msg(call_id=str(i)), a_addr) for i in range(10)))
    got = sorted([(await a_sink.message())[0] for _ in range(10)])
    assert got == sorted(msg(call_id=str(i)) for i in range(10))
    assert b.stats.connections_opened == 1


async def test_tcp_connection_refused(make_layer: Factory) -> None:
    b, _ = make_layer()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(TransportError) as e:
            await b.send(msg(), Addr("tcp", "127.0.0.1", port))
    assert e.value.reason == "connection refused"


async def test_failover_to_second_srv_target(make_layer: Factory) -> None:
    a, a_sink = make_layer()
    b, _ = make_layer()
    a_addr = await a.listen("tcp", "127.0.0.1", 0)
    with socket.socket() as dead:
        dead.bind(("127.0.0.2", 0))
        dead_port = dead.getsockname()[1]
        records = {
            ("_sip._tcp.pbx.example", "SRV"): [
                f"20 0 {a_addr.port} live.pbx.example.",
                f"10 0 {dead_port} dead.pbx.example.",
            ],
            ("dead.pbx.example", "A"): ["127.0.0.2"],
            ("live.pbx.example", "A"): ["127.0.0.1"],
        }
        async with FakeDns(records) as d:
            candidates = await locate("sip:bob@pbx.example;transport=tcp", resolver=d.resolver)
        assert candidates == [Addr("tcp", "127.0.0.2", dead_port), a_addr]
        reasons = []
        for target in candidates:  # RFC 3263 §4.3: try the next one on a transport error
            try:
                await b.send(msg(), target)
                break
            except TransportError as exc:
                reasons.append(exc.reason)
    assert reasons == ["connection refused"]
    assert (await a_sink.message())[0] == msg()


# ------------------------------------------------------------------ framing over a real socket


async def raw_client(addr: Addr, **kw: object) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(addr.host, addr.port, **kw)  # type: ignore[arg-type]


async def test_tcp_two_messages_in_one_segment(make_layer: Factory) -> None:
    a, sink = make_layer()
    a_addr = await a.listen("tcp", "127.0.0.1", 0)
    _, w = await raw_client(a_addr)
    w.write(msg(b"body1", "1") + msg(b"body22", "2"))
    assert (await sink.message())[0] == msg(b"body1", "1")
    assert (await sink.message())[0] == msg(b"body22", "2")
    w.close()


async def test_tcp_message_split_byte_by_byte(make_layer: Factory) -> None:
    a, sink = make_layer()
    a_addr = await a.listen("tcp", "127.0.0.1", 0)
    _, w = await raw_client(a_addr)
    w.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    m = msg(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n")
    for i in range(len(m)):
        w.write(m[i : i + 1])
        await w.drain()
    assert (await sink.message())[0] == m
    w.close()


async def test_tcp_garbage_before_a_message(make_layer: Factory) -> None:
    a, sink = make_layer()
    a_addr = await a.listen("tcp", "127.0.0.1", 0)
    _, w = await raw_client(a_addr)
    w.write(b"GARBAGE \x00\x01\x02 no sip here\r\n\r\n" + msg())
    assert (await sink.message())[0] == msg()
    assert a.stats.malformed_framing == 1 and a.stats.garbage_bytes > 0
    w.close()


async def test_tcp_oversize_message_closes_connection(make_layer: Factory) -> None:
    a, sink = make_layer(Limits(max_message_size=4096))
    a_addr = await a.listen("tcp", "127.0.0.1", 0)
    r, w = await raw_client(a_addr)
    w.write(msg(b"x" * 5000))
    assert await closed_by_peer(r)
    addr, reason = await sink.error()
    assert reason.startswith("framing:") and "Too Large" in reason and addr.transport == "tcp"
    assert sink.messages.empty() and a.stats.malformed_framing == 1


async def test_tcp_endless_header_is_cut_off(make_layer: Factory) -> None:
    a, sink = make_layer(Limits(max_message_size=8192))
    a_addr = await a.listen("tcp", "127.0.0.1", 0)
    r, w = await raw_client(a_addr)
    w.write(b"INVITE sip:bob@example.com SIP/2.0\r\n")
    try:
        for _ in range(2000):
            w.write(b"X-Endless: " + b"a" * 100 + b"\r\n")
            await w.drain()
    except (ConnectionResetError, BrokenPipeError):
        pass
    assert await closed_by_peer(r)
    assert "Too Large" in (await sink.error())[1]


async def test_tcp_slow_loris_is_cut_off(make_layer: Factory) -> None:
    a, sink = make_layer(Limits(message_timeout=0.3, reap_interval=0.05))
    a_addr = await a.listen("tcp", "127.0.0.1", 0)
    other_r, other_w = await raw_client(a_addr)
    r, w = await raw_client(a_addr)
    w.write(b"INVITE sip:bob@example.com SIP/2.0\r\n")

    async def trickle() -> None:  # one byte now and then: never idle, never complete
        try:
            while True:
                w.write(b"X")
                await asyncio.sleep(0.02)
        except (ConnectionResetError, BrokenPipeError):
            pass

    task = asyncio.create_task(trickle())
    assert await closed_by_peer(r)
    task.cancel()
    assert (await sink.error())[1] == "incomplete message timeout"
    # the well-behaved connection is untouched
    other_w.write(msg())
    assert (await sink.message())[0] == msg()
    assert a.stats.connections_timed_out == 1
    other_w.close()


async def test_idle_connection_is_reaped(make_layer: Factory) -> None:
    a, sink = make_layer(Limits(idle_timeout=0.2, reap_interval=0.05))
    a_addr = await a.listen("tcp", "127.0.0.1", 0)
    r, w = await raw_client(a_addr)
    w.write(msg())
    assert (await sink.message())[0] == msg()
    assert await closed_by_peer(r)
    await until(lambda: a.connection_count == 0)
    assert sink.errors.empty()  # reaping an idle connection is not an error


async def test_tcp_crlf_keepalive_answered_with_pong(make_layer: Factory) -> None:
    a, sink = make_layer()
    a_addr = await a.listen("tcp", "127.0.0.1", 0)
    r, w = await raw_client(a_addr)
    w.write(b"\r\n\r\n")  # RFC 5626 §3.5.1 ping
    assert await asyncio.wait_for(r.readexactly(2), WAIT) == b"\r\n"
    w.write(b"\r\n\r\n" + msg())
    assert await asyncio.wait_for(r.readexactly(2), WAIT) == b"\r\n"
    assert (await sink.message())[0] == msg()
    assert a.stats.pongs_out == 2
    w.close()


async def test_connection_cap_per_source_ip(make_layer: Factory) -> None:
    a, sink = make_layer(Limits(max_connections_per_ip=5))
    a_addr = await a.listen("tcp", "127.0.0.1", 0)
    conns = [await raw_client(a_addr) for _ in range(20)]
    await until(lambda: a.stats.connections_rejected == 15)
    assert a.connection_count == 5
    assert (await sink.error())[1] == "connection cap reached"  # reported once, not 15 times
    assert sink.errors.empty()
    for i, (_, w) in enumerate(conns):
        try:
            w.write(msg(call_id=str(i)))
        except (ConnectionResetError, BrokenPipeError):
            pass
    got = {(await sink.message())[0] for _ in range(5)}
    assert len(got) == 5
    # another source IP is not affected by the first one's cap
    _, w2 = await raw_client(a_addr, local_addr=("127.0.0.2", 0))
    w2.write(msg(call_id="other"))
    data, source, _ = await sink.message()
    assert data == msg(call_id="other") and source.host == "127.0.0.2"
    for _, w in conns:
        w.close()
    w2.close()


async def test_failing_callback_does_not_kill_the_connection(make_layer: Factory) -> None:
    calls: list[bytes] = []

    def on_message(data: bytes, source: Addr, local: Addr) -> None:
        calls.append(data)
        if len(calls) == 1:
            raise RuntimeError("boom")

    a = TransportLayer(on_message)
    try:
        a_addr = await a.listen("tcp", "127.0.0.1", 0)
        _, w = await raw_client(a_addr)
        w.write(msg(call_id="1") + msg(call_id="2"))
        await until(lambda: len(calls) == 2)
        assert a.stats.dropped == 1
        w.close()
    finally:
        await a.close()


async def test_close_is_clean_and_send_after_close_fails(make_layer: Factory) -> None:
    a, _ = make_layer()
    b, _ = make_layer()
    a_addr = await a.listen("tcp", "127.0.0.1", 0)
    await b.send(msg(), a_addr)
    await b.close()
    with pytest.raises(TransportError):
        await b.send(msg(), a_addr)
    await until(lambda: a.connection_count == 0)


async def test_a_thousand_connections_from_one_peer(make_layer: Factory) -> None:
    import resource

    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2500:
        pytest.skip("needs ~2,100 file descriptors")
    a, sink = make_layer()  # default limits: 64 per source IP
    a_addr = await a.listen("tcp", "127.0.0.1", 0)
    flood = [await raw_client(a_addr) for _ in range(1000)]
    await until(lambda: a.stats.connections_rejected == 1000 - a.limits.max_connections_per_ip)
    assert a.connection_count == a.limits.max_connections_per_ip
    _, w = await raw_client(a_addr, local_addr=("127.0.0.3", 0))
    w.write(msg(call_id="legit"))
    assert (await sink.message())[0] == msg(call_id="legit")
    for _, fw in flood:
        fw.close()
    w.close()
    await until(lambda: a.connection_count == 0)


async def test_peer_that_does_not_read_is_cut_off(make_layer: Factory) -> None:
    a, sink = make_layer(Limits(max_write_buffer=100_000))
    a_addr = await a.listen("tcp", "127.0.0.1", 0)
    r, w = await raw_client(a_addr)
    w.write(msg())
    _, source, _ = await sink.message()
    big = msg(b"x" * 60000)
    with pytest.raises(TransportError) as e:
        for _ in range(2000):  # the kernel buffers fill, then ours
            await a.send(big, source)
    assert e.value.reason == "send buffer full"
    assert a.connection_count == 0
    w.close()


async def test_ipv6_udp_and_tcp(make_layer: Factory) -> None:
    a, sink = make_layer()
    b, _ = make_layer()
    try:
        udp = await a.listen("udp", "::1", 0)
        tcp = await a.listen("tcp", "[::1]", 0)
    except TransportError:
        pytest.skip("no IPv6 loopback")
    assert udp.host == "::1" and str(tcp).startswith("tcp:[::1]:")
    await b.send(msg(transport="UDP"), udp)  # b has no listener: an ephemeral IPv6 socket
    data, source, _ = await sink.message()
    assert source.host == "::1" and source.transport == "udp"
    await b.send(msg(), tcp)
    data, source, _ = await sink.message()
    assert data == msg() and source.host == "::1" and source.transport == "tcp"
