from __future__ import annotations

import pytest

from services.signaling.b2bua.numbers import NotANumber, caller_of, normalize, tracking_number
from services.signaling.sip.message import Request


def invite(ruri: str, to: str, frm: str = '"Ann" <sip:+15550001111@192.0.2.1>;tag=1') -> Request:
    raw = (
        f"INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: {frm}\r\n"
        f"To: {to}\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    return Request.parse(raw.encode())


@pytest.mark.parametrize("raw", ["+15551234567", "15551234567", "5551234567", "+1-555-123-4567", "%2B15551234567"])
def test_normalize_us_forms(raw: str) -> None:
    assert normalize(raw) == "+15551234567"


def test_normalize_international() -> None:
    assert normalize("+442071838750") == "+442071838750"


@pytest.mark.parametrize("raw", ["alice", "", "+1", "12"])
def test_not_numbers(raw: str) -> None:
    with pytest.raises(NotANumber):
        normalize(raw)


def test_number_from_request_uri() -> None:
    assert tracking_number(invite("sip:15551234567@198.51.100.1", "<sip:other@x>")) == "+15551234567"


def test_number_from_to_when_uri_is_our_address() -> None:
    assert tracking_number(invite("sip:198.51.100.1:5060", "<sip:+15551234567@198.51.100.1>")) == "+15551234567"


def test_tel_uri() -> None:
    assert tracking_number(invite("tel:+15551234567", "<tel:+15551234567>")) == "+15551234567"


def test_caller_and_display_name() -> None:
    assert caller_of(invite("sip:15551234567@h", "<sip:15551234567@h>")) == ("+15550001111", "Ann")
    anon = invite("sip:15551234567@h", "<sip:15551234567@h>", frm="<sip:anonymous@anonymous.invalid>;tag=2")
    assert caller_of(anon) == ("anonymous", None)
