"""URIs (RFC 3261 §19.1, comparison §19.1.4) and typed header values."""

from __future__ import annotations

import pytest

from services.signaling.sip.errors import SipParseError
from services.signaling.sip.headers import (
    AuthHeader,
    ContentType,
    CSeq,
    NameAddress,
    Reason,
    RetryAfter,
    Via,
    split_list,
)
from services.signaling.sip.uri import AbsoluteUri, SipUri, TelUri, escape, parse_uri, unescape, uris_equal


def test_sip_uri_components() -> None:
    u = parse_uri("sips:alice:secret@[2001:db8::1]:5061;transport=TLS;lr;maddr=239.255.255.1?subject=hi&priority=urgent")
    assert isinstance(u, SipUri)
    assert (u.scheme, u.user, u.password, u.host, u.port) == ("sips", "alice", "secret", "[2001:db8::1]", 5061)
    assert u.transport == "tls" and u.lr and u.maddr == "239.255.255.1" and u.secure
    assert u.headers == [("subject", "hi"), ("priority", "urgent")]
    assert str(u) == "sips:alice:secret@[2001:db8::1]:5061;transport=TLS;lr;maddr=239.255.255.1?subject=hi&priority=urgent"
    phone = parse_uri("sip:+1-212-555-0199@gw.example.com;user=phone")
    assert isinstance(phone, SipUri) and phone.user_param == "phone"
    tel = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert isinstance(tel, TelUri) and tel.is_global and str(tel) == "tel:+1-201-555-0123;phone-context=example.com"
    assert isinstance(parse_uri("urn:service:sos"), AbsoluteUri)


@pytest.mark.parametrize(
    "bad",
    ["sip:", "sip:user@", "sip:host:99999", "sip:[::1", "sip:host;=x", "sip:us er@host", "sip:a@b?x", "nocolon", "1sip:x"],
)
def test_bad_uris(bad: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(bad)


@pytest.mark.parametrize(
    ("a", "b"),
    [  # equivalent pairs from RFC 3261 §19.1.4
        ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;newparam=5"),
        ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
         "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
        ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
         "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
    ],
)  # fmt: skip
def test_uri_equal(a: str, b: str) -> None:
    assert uris_equal(parse_uri(a), parse_uri(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [  # non-equivalent pairs from RFC 3261 §19.1.4
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
        ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
        ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ],
)
def test_uri_not_equal(a: str, b: str) -> None:
    assert not uris_equal(parse_uri(a), parse_uri(b))


def test_escape_unescape() -> None:
    assert escape("a b@c") == "a%20b%40c"
    assert unescape("a%20b%40c") == "a b@c"
    assert unescape("%E2%82%AC") == "€"


def test_name_address_forms() -> None:
    a = NameAddress.parse('"Alice \\"A\\"" <sip:alice@atlanta.com>;tag=1928301774')
    assert a.display_name == 'Alice "A"' and a.tag == "1928301774"
    assert NameAddress.parse(str(a)) == a
    b = NameAddress.parse("Bob Smith <sip:bob@biloxi.com;transport=tcp>;expires=60;q=0.5")
    assert b.display_name == "Bob Smith" and b.expires == 60 and b.q == 0.5
    assert b.sip_uri.transport == "tcp" and "expires" not in b.sip_uri.params
    c = NameAddress.parse("sip:carol@chicago.com;tag=xyz")
    assert c.display_name is None and c.tag == "xyz" and not c.sip_uri.params
    c.tag = "new"
    assert str(c) == "<sip:carol@chicago.com>;tag=new"
    for bad in ['"open <sip:a@b>', "<sip:a@b", "Bell, Alex <sip:a@b>", "sip:a@b?x=y", "<sip:a@b>;;", ""]:
        with pytest.raises(SipParseError):
            NameAddress.parse(bad)


def test_split_list_respects_quotes_and_brackets() -> None:
    value = '"Doe, John" <sip:j@x;a=1,2>, <sip:k@y>;q=0.1 , sip:z@w'
    assert split_list(value) == ['"Doe, John" <sip:j@x;a=1,2>', "<sip:k@y>;q=0.1", "sip:z@w"]
    with pytest.raises(SipParseError):
        split_list('"unterminated, x')
    with pytest.raises(SipParseError):
        split_list("<sip:a@b, <sip:c@d>")


def test_via() -> None:
    v = Via.parse("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport;received=192.0.2.9")
    assert (v.transport, v.host, v.port, v.branch) == ("UDP", "192.0.2.1", 5060, "z9hG4bK776asdhds")
    assert v.rport_requested and v.rport is None and v.is_rfc3261_branch
    v.stamp("198.51.100.7", 31000)
    assert v.received == "198.51.100.7" and v.rport == 31000
    assert str(v) == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport=31000;received=198.51.100.7"
    assert v.response_address() == ("198.51.100.7", 31000)
    assert not Via.parse("SIP/2.0/UDP h;branch=z9hG4bK").is_rfc3261_branch  # RFC 4475 §3.2.1
    for bad in ["SIP/2.0 host", "SIP/2.0/UDP", "SIP/2.0/UDP host;", "SIP/2.0/UDP ho st"]:
        with pytest.raises(SipParseError):
            Via.parse(bad)


def test_scalars() -> None:
    assert CSeq.parse("  0009 \t INVITE ") == CSeq(9, "INVITE")
    for bad in ["2147483648 INVITE", "1", "-1 INVITE", "1 IN VITE", "99999999999999999999999 INVITE"]:
        with pytest.raises(SipParseError):
            CSeq.parse(bad)
    ct = ContentType.parse('multipart/mixed;boundary="abc;def"')
    assert ct.mime == "multipart/mixed" and ct.params["boundary"] == '"abc;def"'
    ra = RetryAfter.parse("120 (I'm in a meeting);duration=3600")
    assert (ra.seconds, ra.comment, ra.duration) == (120, "I'm in a meeting", 3600)
    with pytest.raises(SipParseError):
        RetryAfter.parse("949302838503028349304023988")  # RFC 4475 §3.1.2.5
    r = Reason.parse('SIP ;cause=200 ;text="Call completed elsewhere"')
    assert (r.protocol, r.cause, r.text) == ("SIP", 200, "Call completed elsewhere")
    assert Reason.parse(str(r)) == r
    q850 = Reason.parse("Q.850;cause=16;text=\"Normal call clearing\"")
    assert q850.cause == 16


def test_auth_header() -> None:
    h = AuthHeader.parse('Digest realm="a, b", nonce="n\\"x", algorithm=MD5, qop="auth,auth-int"')
    assert h.scheme == "Digest" and h.params == {"realm": "a, b", "nonce": 'n"x', "algorithm": "MD5", "qop": "auth,auth-int"}
    unknown = AuthHeader.parse("NoOneKnowsThisScheme opaque-data=here")  # RFC 4475 §3.3.7
    assert unknown.params == {"opaque-data": "here"}
    with pytest.raises(SipParseError):
        AuthHeader.parse('Digest realm="unterminated')
