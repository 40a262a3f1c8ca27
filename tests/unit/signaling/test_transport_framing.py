"""Stream framing (sans-IO): Content-Length framing, keep-alives, garbage, size limits."""

from __future__ import annotations

import pytest

from services.signaling.transport import Addr, choose_transport
from services.signaling.transport.framing import FramingError, StreamFramer


def msg(body: bytes = b"", method: str = "OPTIONS", call_id: str = "a") -> bytes:
    return (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK1\r\n"
        "Max-Forwards: 70\r\nTo: <sip:bob@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


RESPONSE = (
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK1\r\nTo: <sip:b@x>;tag=2\r\n"
    b"From: <sip:a@x>;tag=1\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)


def test_two_messages_in_one_segment() -> None:
    f = StreamFramer()
    a, b = msg(b"v=0\r\n", call_id="1"), msg(call_id="2")
    r = f.feed(a + b)
    assert r.messages == [a, b]
    assert f.pending == 0


def test_one_message_byte_by_byte() -> None:
    f = StreamFramer()
    m = msg(b"hello body")
    got: list[bytes] = []
    for i in range(len(m)):
        got += f.feed(m[i : i + 1]).messages
        if i < len(m) - 1:
            assert not got
    assert got == [m]
    assert f.pending == 0


def test_message_and_half() -> None:
    f = StreamFramer()
    a, b = msg(call_id="1"), RESPONSE
    assert f.feed(a + b[:20]).messages == [a]
    assert f.pending == 20
    assert f.feed(b[20:]).messages == [b]


def test_garbage_before_a_message_is_skipped() -> None:
    f = StreamFramer()
    r = f.feed(b"\x16\x03\x01 junk junk\r\nmore garbage\r\n" + msg())
    assert r.messages == [msg()]
    assert r.garbage == len(b"\x16\x03\x01 junk junk\r\nmore garbage\r\n")


def test_garbage_without_newline_is_dropped_when_too_long() -> None:
    f = StreamFramer()
    r = f.feed(b"x" * 10000)
    assert r.garbage == 10000 and f.pending == 0
    assert f.feed(b"\r\n" + msg()).messages == [msg()]


def test_incomplete_first_line_waits() -> None:
    f = StreamFramer()
    assert f.feed(b"OPTIONS sip:bob@exa").messages == []
    assert f.pending
    assert f.feed(msg()[len(b"OPTIONS sip:bob@exa") :]).messages == [msg()]


def test_keepalive_ping_asks_for_pong() -> None:
    f = StreamFramer()
    r = f.feed(b"\r\n\r\n")
    assert r.pongs == 1 and not r.messages and f.pending == 0


def test_keepalive_ping_split_and_between_messages() -> None:
    f = StreamFramer()
    assert f.feed(b"\r\n").pongs == 0
    assert f.feed(b"\r\n").pongs == 1
    r = f.feed(msg() + b"\r\n\r\n" + RESPONSE)
    assert r.messages == [msg(), RESPONSE] and r.pongs == 1


def test_lone_crlf_pong_is_dropped() -> None:
    f = StreamFramer()
    r = f.feed(b"\r\n" + RESPONSE)
    assert r.messages == [RESPONSE] and r.pongs == 0 and r.garbage == 0


def test_oversize_content_length_is_a_framing_error() -> None:
    f = StreamFramer(max_size=4096)
    with pytest.raises(FramingError) as e:
        f.feed(msg().replace(b"Content-Length: 0", b"Content-Length: 100000"))
    assert "Too Large" in e.value.reason


def test_endless_header_is_a_framing_error() -> None:
    f = StreamFramer(max_size=4096)
    f.feed(b"INVITE sip:bob@example.com SIP/2.0\r\n")
    with pytest.raises(FramingError):
        for _ in range(1000):
            f.feed(b"X-Endless: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")


def test_bad_content_length_is_a_framing_error() -> None:
    f = StreamFramer()
    with pytest.raises(FramingError):
        f.feed(msg().replace(b"Content-Length: 0", b"Content-Length: -5"))


def test_other_sip_version_is_framed_for_the_parser_to_answer_505() -> None:
    f = StreamFramer()
    m = msg().replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1)
    assert f.feed(m).messages == [m]


# ------------------------------------------------------------------ RFC 3261 §18.1.1


def test_choose_transport_switches_large_udp_to_tcp() -> None:
    udp = Addr("udp", "192.0.2.1", 5060)
    assert choose_transport(1300, udp) == udp
    assert choose_transport(1301, udp) == Addr("tcp", "192.0.2.1", 5060)
    assert choose_transport(5000, udp, explicit=True) == udp  # transport=udp given explicitly
    tls = Addr("tls", "192.0.2.1", 5061)
    assert choose_transport(5000, tls) == tls


def test_addr_formatting() -> None:
    assert str(Addr("udp", "2001:db8::1", 5060)) == "udp:[2001:db8::1]:5060"
    assert Addr("tcp", "192.0.2.1", 5060).hostport == "192.0.2.1:5060"
    assert Addr("tcp", "192.0.2.1", 5060).is_stream
