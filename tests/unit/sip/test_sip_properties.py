"""Property tests: what we serialize parses back equal; mutated input only ever raises
SipParseError (or parses)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.signaling.sip.errors import SdpError, SipParseError
from services.signaling.sip.headers import NameAddress, Via
from services.signaling.sip.message import Request, Response, make_request, parse_message, split_stream
from services.signaling.sip.sdp import answer_offer, parse_sdp
from services.signaling.sip.uri import SipUri
from tests.helpers.testdata import SHARED_TESTDATA

FIXTURES = Path(__file__).parent / "fixtures"
TORTURE = SHARED_TESTDATA / "rfc4475"
SEEDS = [p.read_bytes() for p in sorted(FIXTURES.glob("*.sip"))] + [
    (TORTURE / f"{n}.dat").read_bytes() for n in ("wsinv", "intmeth", "esc01", "longreq", "mpart01", "unreason")
]

TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~", min_size=1, max_size=12)
HOST = st.from_regex(r"[a-z][a-z0-9]{0,8}(\.[a-z][a-z0-9]{0,8}){0,2}", fullmatch=True)
USER = st.from_regex(r"[A-Za-z0-9+._\-]{1,16}", fullmatch=True)
DISPLAY = st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20))
URIPARAM = st.from_regex(r"[a-z0-9\-_.!~*'()]{1,10}", fullmatch=True)
PORT = st.one_of(st.none(), st.integers(1, 65535))


@st.composite
def sip_uris(draw: st.DrawFn) -> SipUri:
    params = draw(st.dictionaries(URIPARAM, st.one_of(st.none(), URIPARAM), max_size=3))
    return SipUri(draw(HOST), draw(st.one_of(st.none(), USER)), draw(PORT), draw(st.sampled_from(["sip", "sips"])), None, params)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(st.one_of(st.sampled_from(["INVITE", "ACK", "BYE", "OPTIONS", "CANCEL"]), TOKEN))
    from_ = NameAddress(draw(sip_uris()), draw(DISPLAY), {"tag": draw(TOKEN)})
    to = NameAddress(draw(sip_uris()), draw(DISPLAY))
    via = Via(draw(st.sampled_from(["UDP", "TCP", "TLS"])), draw(HOST), draw(PORT), {"branch": "z9hG4bK" + draw(TOKEN)})
    extra = draw(st.lists(st.tuples(TOKEN.map(lambda t: "X-" + t), st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=30).map(str.strip)), max_size=4))
    return make_request(
        method,
        draw(sip_uris()),
        from_=from_,
        to=to,
        call_id=draw(TOKEN) + "@" + draw(HOST),
        cseq=draw(st.integers(0, 2**31 - 1)),
        via=via,
        max_forwards=draw(st.integers(0, 255)),
        contact=NameAddress(draw(sip_uris())) if draw(st.booleans()) else None,
        headers=extra,
        body=draw(st.binary(max_size=200)),
    )


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_serialized_request_parses_back_equal(req: Request) -> None:
    data = bytes(req)
    again = parse_message(data)
    assert again == req
    assert bytes(again) == data
    assert again.from_ == req.from_ and again.to == req.to
    assert split_stream(data + b"tail") == (data, b"tail")


@settings(max_examples=100)
@given(st.integers(100, 699), st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=30), requests())
def test_serialized_response_parses_back_equal(status: int, reason: str, req: Request) -> None:
    resp = Response(status, reason.strip(), req.headers.copy(), req.body)
    resp.headers.remove("Max-Forwards")
    assert parse_message(bytes(resp)) == resp


def _mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, value in ops:
        if not buf:
            break
        i = pos % len(buf)
        if kind == 0:
            buf[i] = value
        elif kind == 1:
            del buf[i]
        elif kind == 2:
            buf.insert(i, value)
        else:
            buf[i:i] = b"\r\n"
    return bytes(buf)


MUTATIONS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), MUTATIONS)
def test_mutated_messages_only_raise_parse_error(seed: bytes, ops: list[tuple[int, int, int]]) -> None:
    data = _mutate(seed, ops)
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    # Whatever parses must serialize and re-parse, and its typed accessors must work.
    again = parse_message(bytes(msg))
    assert again == msg or msg.headers.get("Content-Length") is None
    _ = (msg.vias, msg.cseq, msg.call_id, msg.from_, msg.to, msg.contacts, msg.max_forwards)
    try:
        split_stream(data)
    except SipParseError:
        pass


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_parse_error(data: bytes) -> None:
    try:
        parse_message(data)
    except SipParseError:
        pass
    try:
        split_stream(data)
    except SipParseError:
        pass


@settings(max_examples=500)
@given(st.sampled_from([m for m in (parse_message(s).body for s in SEEDS[:3]) if m]), MUTATIONS)
def test_mutated_sdp_only_raises_sdp_error(body: bytes, ops: list[tuple[int, int, int]]) -> None:
    data = _mutate(body, ops)
    try:
        parse_sdp(data)
    except SdpError:
        pass
    answer_offer(data, "198.51.100.20", 10000, srtp_key=bytes(30))  # returns a result, never raises
