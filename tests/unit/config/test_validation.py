"""E.164, SIP URI grammar and digit rules (no I/O)."""

from __future__ import annotations

import pytest

from services.config.validation import (
    SipUriError,
    check_pem,
    check_send_digits,
    normalize_e164,
    parse_sip_uri,
)


@pytest.mark.parametrize(("raw", "norm"), [
    ("+15551234567", "+15551234567"), ("+1 (555) 123-4567", "+15551234567"), (" +44 20 7183 8750", "+442071838750"),
    ("+81.3.1234.5678", "+81312345678"),
])
def test_e164_normalised(raw: str, norm: str) -> None:
    assert normalize_e164(raw) == norm


@pytest.mark.parametrize(("raw", "says"), [
    ("15551234567", "starting with +"), ("+1555", "too short"), ("+15551234567890", "too long"),
    ("+999123456", "not a phone number"), ("+1555x234567", "only digits"), ("", "starting with +"),
    ("+" + "1" * 40, "only digits"),
])
def test_e164_rejected(raw: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        normalize_e164(raw)


@pytest.mark.parametrize(("uri", "transport", "secure", "host", "port"), [
    ("sip:100@pbx.example.com;transport=tcp", "tcp", False, "pbx.example.com", None),
    ("sip:100@pbx.example.com", "udp", False, "pbx.example.com", None),
    ("SIPS:100@PBX.example.com:5061", "tls", True, "pbx.example.com", 5061),
    ("sip:100@pbx.example.com;transport=TLS", "tls", True, "pbx.example.com", None),
    ("sips:100@pbx.example.com;transport=tcp", "tls", True, "pbx.example.com", None),
    ("sip:pbx.example.com", "udp", False, "pbx.example.com", None),
    ("sip:+15551234567;phone-context=example.com@10.0.0.1:5070", "udp", False, "10.0.0.1", 5070),
    ("sip:alice%40x@[2001:db8::1]:5060;lr;maddr=192.0.2.1", "udp", False, "[2001:db8::1]", 5060),
    ("sip:100@pbx-1.example.com.", "udp", False, "pbx-1.example.com.", None),
    ("sip:100@localhost", "udp", False, "localhost", None),
])
def test_sip_uri_accepted(uri: str, transport: str, secure: bool, host: str, port: int | None) -> None:
    u = parse_sip_uri(uri)
    assert (u.transport, u.secure, u.host, u.port) == (transport, secure, host, port)


@pytest.mark.parametrize(("uri", "part"), [
    ("tel:+15551234567", "scheme"), ("pbx.example.com", "scheme"), ("sip:", "host"), ("sip:100@", "host"),
    ("sip:100@-pbx.example.com", "host"), ("sip:100@pbx.example.123", "host"), ("sip:100@1.2.3.256", "host"),
    ("sip:100@[::zz]", "host"), ("sip:100@[::1", "host"), ("sip:100@pbx.example.com:", "port"),
    ("sip:100@pbx.example.com:65536", "port"), ("sip:100@pbx.example.com:-1", "port"),
    ("sip:100@pbx.example.com;transport=ws", "transport"), ("sips:100@pbx.example.com;transport=udp", "transport"),
    ("sip:100:secret@pbx.example.com", "password"), ("sip:@pbx.example.com", "user"), ("sip:a\"b@h.com", "user"),
    ("sip:100@pbx.example.com;a=1;a=2", "parameters"), ("sip:100@pbx.example.com;a=<", "parameters"),
    ("sip:100@pbx.example.com?Subject=x", "headers"), ("sip:100@pbx.exa mple.com", "uri"),
    ("sip:100@pbx.exämple.com", "uri"), ("sip:" + "a" * 600 + "@h.com", "uri"),
])
def test_sip_uri_rejected_naming_the_part(uri: str, part: str) -> None:
    with pytest.raises(SipUriError) as e:
        parse_sip_uri(uri)
    assert e.value.part == part and str(e.value).startswith(part + ":")


def test_send_digits() -> None:
    assert check_send_digits("ww123#") == "ww123#"
    assert check_send_digits("*9,".rstrip(",")) == "*9"
    for bad in ("", "12x", "1 2", "1" * 65):
        with pytest.raises(ValueError, match="digits"):
            check_send_digits(bad)


def test_pem() -> None:
    cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert check_pem(cert + cert, ("CERTIFICATE",))
    for bad in ("", "MIIB", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END PRIVATE KEY-----\n"):
        with pytest.raises(ValueError):
            check_pem(bad, ("CERTIFICATE",))
    with pytest.raises(ValueError, match="expected"):
        check_pem(cert, ("PRIVATE KEY",))


@pytest.mark.parametrize("uri", ["sip:100@pbx.example.com;lr;LR", "sip:100@pbx_1.example.com", "sip:100@pbx..example.com"])
def test_a_target_is_held_to_the_sip_grammar_the_core_tolerates_from_peers(uri: str) -> None:
    from services.signaling.sip.uri import parse_uri

    parse_uri(uri)  # a peer may send it and the SIP core reads it...
    with pytest.raises(SipUriError) as e:  # ...but nobody may provision it as a target
        parse_sip_uri(uri)
    assert e.value.part in ("parameters", "host")


@pytest.mark.parametrize("carrier_sends", ["15551234567", "5551234567", "+1-555-123-4567", "%2B15551234567"])
def test_a_provisioned_number_is_what_the_carriers_forms_normalise_to(carrier_sends: str) -> None:
    from services.signaling.b2bua.numbers import normalize

    assert normalize(carrier_sends) == normalize_e164("+1 (555) 123-4567")
