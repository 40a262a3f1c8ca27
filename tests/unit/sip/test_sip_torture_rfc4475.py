"""RFC 4475 torture messages against the parser (verdicts from testdata/rfc4475/INDEX.md).

None = parse must succeed; an int = SipParseError with that status. Cases the RFC leaves to
the layers above the parser (§3.2, §3.3) are parsed or rejected as the comment says.
"""

from __future__ import annotations

import pytest

from services.signaling.sip.errors import SipParseError
from services.signaling.sip.message import Request, Response, parse_message
from tests.helpers.testdata import SHARED_TESTDATA

TESTDATA = SHARED_TESTDATA / "rfc4475"

EXPECTED: dict[str, int | None] = {
    # §3.1.1 valid: MUST ACCEPT
    "wsinv": None,
    "intmeth": None,
    "esc01": None,
    "escnull": None,
    "esc02": None,
    "lwsdisp": None,
    "longreq": None,
    "dblreq": None,
    "semiuri": None,
    "transports": None,
    "mpart01": None,
    "unreason": None,
    "noreason": None,
    # §3.1.2 invalid
    "badinv01": 400,
    "clerr": 400,
    "ncl": 400,
    "scalar02": 400,
    "scalarlg": 400,  # a response: the caller drops it
    "quotbal": 400,
    "ltgtruri": 400,
    "lwsruri": 400,
    "lwsstart": None,  # MAY be liberal: extra SPs ignored, never forwarded (we re-serialize)
    "trws": None,  # MAY be liberal: trailing SP ignored
    "escruri": 400,  # headers in a Request-URI are rejected (§19.1.1 Table 1)
    "baddate": None,  # MAY be liberal: Date is never interpreted by this layer
    "regbadct": 400,
    "badaspec": None,  # MAY be liberal: spaces inside <> are unambiguous and dropped
    "baddn": 400,
    "badvers": 505,
    "mismatch01": 400,
    "mismatch02": 400,  # 501 or 400 allowed; the parser says 400
    "bigcode": 400,  # a response: dropped
    # §3.2 transaction layer: must not break; the empty branch is the transaction layer's call
    "badbranch": None,
    # §3.3 application layer
    "insuf": 400,  # missing Call-ID/From/To: 400 is the ideal answer
    "unkscm": None,  # accepted; the UAS answers 416 (not a parser decision)
    "novelsc": None,  # accepted; 416 or 404 above the parser
    "unksm2": None,  # accepted; a registrar answers 400 (semantic)
    "bext01": None,  # accepted; the UAS answers 420 from Require (semantic)
    "invut": None,  # accepted; the UAS answers 415 (semantic)
    "regaut01": None,  # accepted; unknown Authorization scheme is the registrar's call
    "multi01": 400,  # duplicate single-valued headers
    "mcl01": 400,  # conflicting Content-Length
    "bcast": None,  # accepted; dropping the broadcast Via is the transport's call
    "zeromf": None,  # accepted; a proxy would answer 483 (semantic)
    "cparam01": None,
    "cparam02": None,
    "regescrt": None,
    "sdp01": None,  # accepted; 406/400 for the Accept header is the UAS's call
    # §3.4: accepted with rfc2543=True (see test_inv2543_backward_compatible)
    "inv2543": 400,
}


def _data(name: str) -> bytes:
    return (TESTDATA / f"{name}.dat").read_bytes()


def test_all_49_cases_listed() -> None:
    assert sorted(p.stem for p in TESTDATA.glob("*.dat")) == sorted(EXPECTED)
    assert len(EXPECTED) == 49


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_torture_verdict(name: str) -> None:
    expected = EXPECTED[name]
    if expected is None:
        msg = parse_message(_data(name))
        again = parse_message(bytes(msg))
        assert again == msg or name == "dblreq"
    else:
        with pytest.raises(SipParseError) as info:
            parse_message(_data(name))
        assert info.value.status == expected, info.value.reason


def test_inv2543_backward_compatible() -> None:
    msg = parse_message(_data("inv2543"), rfc2543=True)
    assert isinstance(msg, Request)
    assert msg.max_forwards is None
    assert msg.top_via.branch is None
    assert msg.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")  # no Content-Length: rest of datagram


def test_wsinv_details() -> None:
    msg = parse_message(_data("wsinv"))
    assert isinstance(msg, Request)
    assert msg.max_forwards == 68
    assert (msg.cseq.seq, msg.cseq.method) == (9, "INVITE")
    assert msg.to.tag == "1918181833n"
    assert msg.from_.display_name == 'J Rosenberg \\"'
    assert msg.from_.tag == "98asjd8"
    assert [v.branch for v in msg.vias] == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert [v.transport for v in msg.vias] == ["UDP", "TCP", "UDP"]
    assert msg.headers.get("Subject") == ""
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    contact = msg.contacts[0]
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert msg.routes[0].sip_uri.lr
    assert len(msg.body) == 150


def test_intmeth_and_esc02_methods_are_opaque() -> None:
    msg = parse_message(_data("intmeth"))
    assert isinstance(msg, Request) and msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    esc = parse_message(_data("esc02"))
    assert isinstance(esc, Request) and esc.method == "RE%47IST%45R"
    assert len(esc.contacts) == 2  # C%6Fntact is an unknown header, not Contact
    assert esc.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_escaping_is_kept_and_compared_unescaped() -> None:
    from services.signaling.sip.uri import parse_uri, unescape, uris_equal

    msg = parse_message(_data("esc01"))
    assert uris_equal(msg.to.uri, parse_uri("sip:user@example.com"))
    contact = msg.contacts[0].sip_uri
    assert unescape(contact.user or "") == "caller"
    assert contact.params["n%61me"] == "v%61lue%25%34%31"  # value%41, not valueA
    null = parse_message(_data("escnull"))
    users = [c.sip_uri.user for c in null.contacts]
    assert users == ["%00", "%00%00"]
    assert not uris_equal(null.contacts[0].uri, null.contacts[1].uri)


def test_framing_cases() -> None:
    assert parse_message(_data("dblreq")).body == b""
    assert len(parse_message(_data("mpart01")).body) == 553
    semi = parse_message(_data("semiuri"))
    assert isinstance(semi, Request)
    uri = semi.parsed_uri()
    assert getattr(uri, "user", None) == "user;par=u%40example.net" and getattr(uri, "host", None) == "example.com"
    assert semi.headers.values("Accept")[-1] == "message/sipfrag"


def test_responses() -> None:
    noreason = parse_message(_data("noreason"))
    assert isinstance(noreason, Response) and noreason.status == 100 and noreason.reason == ""
    unreason = parse_message(_data("unreason"))
    assert isinstance(unreason, Response) and unreason.reason.endswith("простое")
    assert bytes(unreason) == _data("unreason")


def test_parse_error_keeps_headers_for_a_stateless_400() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(_data("mismatch01"))
    assert info.value.is_request is True
    assert info.value.headers is not None
    assert ("Call-ID", "mismatch01.dj0234sxdfl3") in info.value.headers


def test_cparam_contact_vs_uri_params() -> None:
    c1 = parse_message(_data("cparam01")).contacts[0]
    assert "unknownparam" in c1.params and not c1.sip_uri.params
    c2 = parse_message(_data("cparam02")).contacts[0]
    assert "unknownparam" in c2.sip_uri.params and not c2.params
    rt = parse_message(_data("regescrt")).contacts[0].sip_uri
    assert rt.headers == [("Route", "%3Csip:sip.example.com%3E")]
