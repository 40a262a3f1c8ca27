"""Digest auth against RFC 2617 §3.5 and RFC 7616 §3.9.1 (testdata/digest_vectors.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.signaling.sip.digest import (
    Challenge,
    DigestCredentials,
    DigestServer,
    VerifyResult,
    answer_challenge,
    build_authorization,
    compute_response,
    select_challenge,
)
from services.signaling.sip.errors import DigestError
from services.signaling.sip.message import Request, Response, make_request, parse_message

FIXTURES = Path(__file__).parent / "fixtures"

RFC7616 = {
    "realm": "http-auth@example.org",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    "opaque": "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
}
CHALLENGE_7616 = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)


def test_rfc2617_vector() -> None:
    ch = Challenge.parse(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    creds = build_authorization(
        ch, method="GET", uri="/dir/index.html", username="Mufasa", password="Circle Of Life", cnonce="0a4f113b"
    )
    assert creds.response == "6629fae49393a05397450978507c4ef1"
    assert creds.qop == "auth" and creds.nc == "00000001" and creds.opaque == "5ccc069c403ebaf9f0171e9517f40e41"
    no_qop = compute_response(
        algorithm="MD5", username="Mufasa", realm="testrealm@host.com", password="Circle Of Life",
        method="GET", uri="/dir/index.html", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
    )  # fmt: skip
    assert no_qop == "670fd8c2df070c60b045671b8b24ff02"


@pytest.mark.parametrize(
    ("alg", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        ("MD5-sess", "e783283f46242139c486a698fec7211d"),  # computed vector (file §4)
        ("SHA-256-sess", "2fd51b3a77ad75bad6afad6003e818d767133c46d9e2749e7f5232ae1ea3efd7"),  # computed
    ],
)
def test_rfc7616_vectors(alg: str, expected: str) -> None:
    ch = Challenge.parse(CHALLENGE_7616.format(alg=alg))
    creds = build_authorization(
        ch, method="GET", uri="/dir/index.html", username="Mufasa", password="Circle of Life", cnonce=RFC7616["cnonce"]
    )
    assert creds.response == expected
    text = str(creds)
    assert f"algorithm={alg}" in text and "qop=auth," in text and "nc=00000001" in text
    assert f'opaque="{RFC7616["opaque"]}"' in text
    assert DigestCredentials.parse(text) == creds


@pytest.mark.parametrize(
    ("alg", "expected"),
    [
        ("MD5", "3dbb0971468cf612bdccd7dff696c5e6"),
        ("SHA-256", "21468b02aafd4fe0a3d84bfddaf3618cc087adff4bb3c92d0a5f99c3035fcb9a"),
    ],
)
def test_auth_int_vectors(alg: str, expected: str) -> None:
    ch = Challenge.parse(CHALLENGE_7616.format(alg=alg))
    creds = build_authorization(
        ch, method="INVITE", uri="sip:bob@example.org", username="Mufasa", password="Circle of Life",
        body=b"v=0\r\n", cnonce=RFC7616["cnonce"], nc=2, prefer_auth_int=True,
    )  # fmt: skip
    assert creds.qop == "auth-int" and creds.nc == "00000002" and creds.response == expected


def test_no_qop_register_vector() -> None:
    ch = Challenge.parse(f'Digest realm="{RFC7616["realm"]}", nonce="{RFC7616["nonce"]}"')
    creds = build_authorization(ch, method="REGISTER", uri="sip:example.org", username="Mufasa", password="Circle of Life")
    assert creds.response == "ff2b4f0717f824b7cca1a6c41bb98dac"
    assert creds.qop is None and creds.nc is None and creds.cnonce is None


def test_select_strongest() -> None:
    chs = [Challenge.parse(CHALLENGE_7616.format(alg=a)) for a in ("MD5", "SHA-256", "SHA-512-256")]
    best = select_challenge(chs)
    assert best is not None and best.algorithm == "SHA-256"
    assert select_challenge([chs[2]]) is None
    with pytest.raises(DigestError):
        Challenge.parse('Basic realm="x"')


def _invite() -> tuple[bytes, Request]:
    req = make_request(
        "INVITE", "sip:1001@pbx.example.com;transport=udp",
        from_='"Switchboard" <sip:+12125550199@198.51.100.20>;tag=5c2f9a01', to="<sip:1001@pbx.example.com>",
        call_id="7d1e3a5c9b2f4e6a@198.51.100.20", cseq=1, via="SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bKa8c2f0e1d3",
        body=b"v=0\r\n", content_type="application/sdp",
    )  # fmt: skip
    return bytes(req), req


def test_answer_asterisk_401_uses_request_uri_and_auth_user() -> None:
    resp = parse_message((FIXTURES / "asterisk_401.sip").read_bytes())
    assert isinstance(resp, Response)
    _, req = _invite()
    answer = answer_challenge(resp, req, username="switchboard-auth", password="s3cret")
    assert answer is not None and answer.header == "Authorization" and not answer.stale
    creds = DigestCredentials.parse(answer.value)
    assert creds.uri == "sip:1001@pbx.example.com;transport=udp"
    assert creds.username == "switchboard-auth" and creds.realm == "asterisk" and creds.qop is None
    expected = compute_response(
        algorithm="MD5", username="switchboard-auth", realm="asterisk", password="s3cret",
        method="INVITE", uri=creds.uri, nonce="1a2b3c4d",
    )  # fmt: skip
    assert creds.response == expected


def test_answer_407_with_several_challenges_and_stale() -> None:
    _, req = _invite()
    resp = Response(407, "Proxy Authentication Required")
    for h in ("Via", "From", "To", "Call-ID", "CSeq"):
        resp.headers.add(h, req.headers.get(h) or "")
    resp.headers.add("Proxy-Authenticate", 'Basic realm="x"')
    resp.headers.add("Proxy-Authenticate", CHALLENGE_7616.format(alg="MD5") + ", stale=true")
    resp.headers.add("Proxy-Authenticate", CHALLENGE_7616.format(alg="SHA-256") + ", stale=TRUE")
    answer = answer_challenge(resp, req, username="u", password="p")
    assert answer is not None and answer.header == "Proxy-Authorization"
    assert answer.stale and answer.challenge.algorithm == "SHA-256"
    assert answer_challenge(Response(403, "Forbidden"), req, username="u", password="p") is None


@pytest.mark.parametrize("alg", ["MD5", "SHA-256", "MD5-sess", "SHA-256-sess"])
def test_server_verifies_client(alg: str) -> None:
    server = DigestServer("switchboard", b"k" * 32, algorithm=alg, nonce_ttl=30)
    ch = Challenge.parse(str(server.challenge(now=1000.0)))
    creds = build_authorization(ch, method="INVITE", uri="sip:a@b", username="carrier", password="pw")
    value = str(creds)
    assert server.verify(value, method="INVITE", password="pw", now=1010.0, request_uri="sip:a@b") is VerifyResult.OK
    assert server.verify(value, method="INVITE", password="bad", now=1010.0) is VerifyResult.FAILED
    assert server.verify(value, method="BYE", password="pw", now=1010.0) is VerifyResult.FAILED
    assert server.verify(value, method="INVITE", password="pw", now=1010.0, request_uri="sip:x@b") is VerifyResult.FAILED
    assert server.verify(value, method="INVITE", password="pw", now=2000.0) is VerifyResult.STALE
    other = DigestServer("switchboard", b"x" * 32, algorithm=alg)
    assert other.verify(value, method="INVITE", password="pw", now=1010.0) is VerifyResult.FAILED
    assert server.verify("Digest garbage", method="INVITE", password="pw", now=1.0) is VerifyResult.FAILED
    stale = server.challenge(now=2000.0, stale=True)
    assert "stale=true" in str(stale) and Challenge.parse(str(stale)).stale
