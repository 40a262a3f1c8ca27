"""Message parse/serialize over real-world fixtures, builders, stream framing, limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.signaling.sip.errors import SipParseError
from services.signaling.sip.headers import NameAddress, Via
from services.signaling.sip.message import (
    Headers,
    Request,
    Response,
    make_ack,
    make_cancel,
    make_request,
    make_response,
    new_branch,
    new_tag,
    parse_message,
    split_stream,
)

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_NAMES = sorted(p.name for p in FIXTURES.glob("*.sip"))


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_round_trip(name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    msg = parse_message(data)
    assert parse_message(bytes(msg)) == msg
    # Byte-identical unless compact names (expanded) or extra spaces after ':' (dropped).
    if name not in ("compact_invite.sip", "cisco_invite.sip"):
        assert bytes(msg) == data


def test_cisco_invite() -> None:
    msg = Request.parse((FIXTURES / "cisco_invite.sip").read_bytes())
    assert msg.method == "INVITE" and msg.max_forwards == 69
    assert msg.cseq.seq == 101 and msg.to.tag is None and msg.from_.tag == "8A3F7C-1D2E"
    assert msg.headers.values("Allow")[:2] == ["INVITE", "OPTIONS"]
    ct = msg.content_type
    assert ct is not None and ct.mime == "application/sdp"
    assert msg.content_length == len(msg.body)


def test_compact_forms_expand() -> None:
    msg = parse_message((FIXTURES / "compact_invite.sip").read_bytes())
    names = [n for n, _ in msg.headers]
    assert names[:2] == ["Via", "Via"] and "Call-ID" in names and "Supported" in names and "Subject" in names
    assert msg.headers.get("i") == msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert msg.to.display_name == "Bob" and msg.contacts[0].sip_uri.user == "alice"
    assert [v.received for v in msg.vias] == [None, "192.0.2.1"]
    assert b"\r\nContent-Type: application/sdp\r\n" in bytes(msg)


def test_ipv6() -> None:
    msg = Request.parse((FIXTURES / "ipv6_options.sip").read_bytes())
    uri = msg.parsed_uri()
    assert getattr(uri, "host", None) == "[2001:db8::10]" and getattr(uri, "port", None) == 5070
    via = msg.top_via
    assert via.host == "[2001:db8::9:1]" and via.port == 5060 and via.received == "2001:db8::9:255"
    assert via.rport_requested and via.rport is None
    c = msg.contacts[0]
    assert c.sip_uri.host_address == "2001:db8::9:1" and c.expires == 3600


def test_freeswitch_record_route_list() -> None:
    msg = Response.parse((FIXTURES / "freeswitch_200_sdp.sip").read_bytes())
    rr = msg.record_routes
    assert [r.sip_uri.host for r in rr] == ["192.0.2.40", "10.0.0.40"]
    assert rr[0].sip_uri.transport == "tls" and rr[0].sip_uri.lr
    assert msg.to.sip_uri.secure


def test_stamp_received_rport() -> None:
    msg = Request.parse((FIXTURES / "ipv6_options.sip").read_bytes())
    msg.stamp_received("2001:db8::9:1", 40000)
    via = msg.top_via
    assert via.rport == 40000 and via.received == "2001:db8::9:1"
    cisco = Request.parse((FIXTURES / "cisco_invite.sip").read_bytes())
    cisco.stamp_received("203.0.113.10", 5060)
    assert cisco.top_via.received is None  # same address, no rport: nothing to add (§18.2.1)
    cisco.stamp_received("192.0.2.99", 5060)
    assert cisco.top_via.received == "192.0.2.99"
    assert cisco.top_via.response_address() == ("192.0.2.99", 5060)


def test_make_response_copies_per_8_2_6() -> None:
    req = Request.parse((FIXTURES / "cisco_invite.sip").read_bytes())
    trying = make_response(req, 100)
    assert trying.reason == "Trying" and trying.to.tag is None and trying.headers.get("Timestamp") == "1709572869"
    ok = make_response(req, 200, to_tag="abc", body=b"v=0\r\n", content_type="application/sdp")
    assert ok.to.tag == "abc" and ok.call_id == req.call_id and ok.cseq == req.cseq
    assert ok.headers.get_all("Via") == req.headers.get_all("Via")
    again = parse_message(bytes(ok))
    assert again == ok and isinstance(again, Response) and again.body == b"v=0\r\n"


def test_make_request_ack_cancel() -> None:
    branch = new_branch()
    req = make_request(
        "INVITE",
        "sip:1001@pbx.example.com",
        from_=NameAddress.parse(f"<sip:+12125550199@198.51.100.20>;tag={new_tag()}"),
        to="<sip:1001@pbx.example.com>",
        call_id="abc@198.51.100.20",
        cseq=1,
        via=Via("UDP", "198.51.100.20", 5060, {"branch": branch, "rport": None}),
        route=["<sip:proxy.example.com;lr>"],
        contact="<sip:sb@198.51.100.20:5060>",
    )
    assert parse_message(bytes(req)) == req
    assert req.top_via.branch == branch and branch.startswith("z9hG4bK")
    cancel = make_cancel(req)
    assert cancel.method == "CANCEL" and cancel.cseq.seq == 1 and cancel.top_via.branch == branch
    assert cancel.routes == req.routes
    busy = make_response(req, 486, to_tag="t1")
    ack = make_ack(req, busy)
    assert ack.cseq.method == "ACK" and ack.to.tag == "t1" and ack.uri == req.uri
    assert parse_message(bytes(ack)) == ack


def test_headers_api() -> None:
    h = Headers([("v", "SIP/2.0/UDP a"), ("Call-ID", "x")])
    h.add_first("Via", "SIP/2.0/UDP b")
    assert h.get_all("VIA") == ["SIP/2.0/UDP b", "SIP/2.0/UDP a"]
    h.set("via", "SIP/2.0/TCP c")
    assert h.get_all("v") == ["SIP/2.0/TCP c"] and len(h) == 2
    assert h.remove("i") == 1 and "Call-ID" not in h
    with pytest.raises(ValueError):
        h.add("X-Evil", "a\r\nVia: injected")


def test_split_stream() -> None:
    one = (FIXTURES / "cisco_invite.sip").read_bytes()
    two = (FIXTURES / "asterisk_401.sip").read_bytes()
    stream = b"\r\n\r\n" + one + two
    msg, rest = split_stream(stream[:100])
    assert msg is None and rest == stream[4:100]
    msg, rest = split_stream(stream)
    assert msg == one and rest == two
    framed = b"OPTIONS sip:a@b SIP/2.0\r\nl: 3\r\nX-Other: y\r\n\r\nabc"
    assert split_stream(framed + b"REST") == (framed, b"REST")  # Content-Length not the last header
    msg, rest = split_stream(rest)
    assert msg == two and rest == b""
    with pytest.raises(SipParseError):
        split_stream(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: -5\r\n\r\n")
    with pytest.raises(SipParseError):
        split_stream(b"INVITE sip:a@b SIP/2.0\r\nl: 5\r\nContent-Length: 6\r\n\r\n")
    with pytest.raises(SipParseError) as info:
        split_stream(b"x" * 70000)
    assert info.value.status == 513
    garbage, rest = split_stream(b"garbage\r\n\r\n" + two)
    assert garbage == b"garbage\r\n\r\n" and rest == two
    with pytest.raises(SipParseError):
        parse_message(garbage)


def test_limits() -> None:
    base = (FIXTURES / "asterisk_401.sip").read_bytes()
    with pytest.raises(SipParseError) as info:
        parse_message(base, max_size=100)
    assert info.value.status == 513
    many = base.replace(b"Content-Length: 0\r\n", b"X-A: 1\r\n" * 300 + b"Content-Length: 0\r\n")
    with pytest.raises(SipParseError) as info:
        parse_message(many)
    assert info.value.status == 513
    long = base.replace(b"Content-Length: 0\r\n", b"X-A: " + b"a" * 20000 + b"\r\nContent-Length: 0\r\n")
    with pytest.raises(SipParseError) as info:
        parse_message(long)
    assert info.value.status == 513
    big_cl = base.replace(b"Content-Length: 0", b"Content-Length: 99999999999999999999")
    with pytest.raises(SipParseError):
        parse_message(big_cl)


@pytest.mark.parametrize(
    ("mutation", "status"),
    [
        ((b"SIP/2.0 401", b"SIP/2.0 099"), 400),
        ((b"SIP/2.0 401", b"SIP/2.0 700"), 400),
        ((b"SIP/2.0 401", b"SIP/3.0 401"), 505),
        ((b"SIP/2.0 401", b"HTTP/1.1 401"), 400),
        ((b"CSeq: 1 INVITE", b"CSeq: 2147483648 INVITE"), 400),
        ((b"CSeq: 1 INVITE", b"CSeq: INVITE"), 400),
        ((b"Call-ID: ", b"X-Call-ID: "), 400),
        ((b'From: "Switchboard"', b'From: "Switchboard'), 400),
        ((b"To: <sip:1001@pbx.example.com>", b"To: <sip:1001@pbx.example.com"), 400),
        ((b"Content-Length: 0", b"Content-Length: five"), 400),
        ((b"Content-Length: 0", b"Content-Length: 10"), 400),
        ((b"Via: SIP/2.0/UDP 198.51.100.20:5060", b"Via: SIP/2.0/UDP 198.51.100.20:99999"), 400),
        ((b"Via: SIP/2.0/UDP 198.51.100.20:5060", b"Via: SIP/2.0/UDP [::1:5060"), 400),
        ((b"Server:", b"Server\x00:"), 400),
    ],
)
def test_response_rejections(mutation: tuple[bytes, bytes], status: int) -> None:
    data = (FIXTURES / "asterisk_401.sip").read_bytes().replace(*mutation)
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.status == status


def test_request_rejections() -> None:
    data = (FIXTURES / "cisco_invite.sip").read_bytes()
    for old, new in [
        (b"Max-Forwards: 69", b"Max-Forwards: 256"),
        (b"Max-Forwards: 69\r\n", b""),
        (b"INVITE sip:+1415", b"INVITE sip:+1415 x"),
        (b"INVITE sip:", b"IN\"VITE sip:"),
        (b"INVITE sip:+14155550123@198.51.100.20:5060", b"INVITE sip:+14155550123@"),
        (b"SIP/2.0\r\n", b"SIP/2.0 \r\n\x0b"),
    ]:
        with pytest.raises(SipParseError):
            parse_message(data.replace(old, new, 1))
