"""The client INVITE's PBX options (services/signaling/b2bua/pbx.py, proto/sip/passthrough.py)."""

from __future__ import annotations

import pytest

from proto.messages import PbxOptions, RoutingDecision
from proto.sip import passthrough
from services.signaling.b2bua import pbx

CARRIER = [("Via", "SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK1"), ("From", "<sip:+15550001111@c>;tag=1"),
           ("P-Asserted-Identity", "<sip:+15550001111@carrier>"), ("Privacy", "id"),
           ("Identity", "abc.def.ghi;info=<https://c/x.pem>"), ("X-Carrier-Trunk", "t7"),
           ("X-Switchboard-Call-Id", "forged"), ("User-to-User", "56a3;encoding=hex"), ("X-Other", "1"),
           ("Contact", "<sip:c>")]


def decision(**options: object) -> RoutingDecision:
    return RoutingDecision(ok=True, tracking_number="+15551234567", pbx=PbxOptions(**options))  # type: ignore[arg-type]


def test_defaults_add_diversion_and_the_tracking_headers() -> None:
    d = decision()
    fwd = pbx.carrier_headers(CARRIER, d.pbx)
    assert fwd == [CARRIER[2], CARRIER[3], CARRIER[4]]  # PAI, Privacy, Identity; nothing else by default
    parts = pbx.client_invite("sip:100@pbx.example.com;transport=tcp", d, "call-1", "203.0.113.5", fwd, None)
    assert parts.request_uri == "sip:100@pbx.example.com;transport=tcp"
    assert parts.headers[:3] == [
        ("Diversion", "<sip:+15551234567@203.0.113.5>;reason=unconditional;counter=1"),
        ("X-Switchboard-Tracking-Number", "+15551234567"), ("X-Switchboard-Call-Id", "call-1")]


def test_tracking_number_as_the_request_uri_user_keeps_the_rest_of_the_uri() -> None:
    parts = pbx.client_invite("sips:100@pbx.example.com:5071;transport=tls", decision(
        request_uri_user="tracking_number"), "c", "h", [], None)
    assert parts.request_uri == "sips:+15551234567@pbx.example.com:5071;transport=tls"
    assert parts.to == "<sips:+15551234567@pbx.example.com:5071;transport=tls>"


def test_patterns_never_copy_what_we_set() -> None:
    d = decision(forward_headers=["X-*", "user-to-user"], forward_pai=False, forward_identity=False)
    fwd = pbx.carrier_headers(CARRIER, d.pbx)
    assert [n for n, _ in fwd] == ["X-Carrier-Trunk", "User-to-User", "X-Other"]


def test_node_pai_only_when_none_came_and_never_when_forward_pai_is_off() -> None:
    ours = "<sip:+15550001111@us>"
    on = pbx.client_invite("sip:1@h", decision(), "c", "h", [], ours)
    assert ("P-Asserted-Identity", ours) in on.headers
    came = pbx.client_invite("sip:1@h", decision(), "c", "h", [CARRIER[2]], ours)
    assert [v for n, v in came.headers if n == "P-Asserted-Identity"] == [CARRIER[2][1]]
    off = pbx.client_invite("sip:1@h", decision(forward_pai=False), "c", "h", [], ours)
    assert all(n != "P-Asserted-Identity" for n, _ in off.headers)


def test_configured_headers_win_over_the_carriers() -> None:
    d = decision(forward_headers=["X-*"], sip_headers={"X-Other": "mine"}, diversion=False)
    parts = pbx.client_invite("sip:1@h", d, "c", "h", pbx.carrier_headers(CARRIER, d.pbx), None)
    assert [v for n, v in parts.headers if n == "X-Other"] == ["mine"]
    assert all(n != "Diversion" for n, _ in parts.headers)


@pytest.mark.parametrize("name", ["Via", "Content-Type", "X-Switchboard-Tracking-Number", "CSeq"])
def test_reserved_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        passthrough.check_forward_pattern(name)
    with pytest.raises(ValueError):
        passthrough.check_sip_header(name, "v")


@pytest.mark.parametrize("value", ["tok", '"quoted, with spaces"', '"esc \\" quote"'])
def test_values_token_or_quoted_string(value: str) -> None:
    passthrough.check_sip_header("X-A", value)


@pytest.mark.parametrize("value", ["two words", '"open', "a;b", "", "é"])
def test_other_values_refused(value: str) -> None:
    with pytest.raises(ValueError):
        passthrough.check_sip_header("X-A", value)


def contacts(*values: str) -> list:  # type: ignore[type-arg]
    from services.signaling.sip.headers import NameAddress

    return [NameAddress.parse(v) for v in values]


def test_redirects_in_q_order_same_host_only_no_loops() -> None:
    from proto.messages import SipTarget

    current = SipTarget(uri="sip:100@pbx.example.com", username="u", password="p")
    other = SipTarget(uri="sip:100@backup.example.com")
    got = pbx.redirect_targets(contacts(
        "<sip:300@pbx.example.com>;q=0.2", "<sip:200@backup.example.com>;q=0.9", "<sip:100@pbx.example.com>",
        "<sip:400@elsewhere.example.org>;q=1.0", "<tel:+15550001111>"), current, "same_host",
        [current.uri], [current, other])
    assert [t.uri for t in got] == ["sip:200@backup.example.com", "sip:300@pbx.example.com"]
    # Credentials stay with their host.
    assert (got[0].username, got[1].username, got[1].password) == (None, "u", "p")
    anywhere = pbx.redirect_targets(contacts("<sip:400@elsewhere.example.org;transport=tcp>"), current, "any",
                                    [current.uri], [current])
    assert [(t.uri, t.transport) for t in anywhere] == [("sip:400@elsewhere.example.org;transport=tcp", "tcp")]
    assert pbx.redirect_targets(contacts("<sip:200@pbx.example.com>"), current, "none", [], [current]) == []


def test_transfer_target_by_policy() -> None:
    from proto.messages import SipTarget

    current = SipTarget(uri="sip:100@pbx.example.com", username="u", password="p")
    configured = [current, SipTarget(uri="sips:100@backup.example.com", username="b", password="q")]
    same = pbx.transfer_target("<sip:200@PBX.example.com>", "same_host", current, configured)
    assert isinstance(same, SipTarget) and (same.uri, same.username, same.password) == (
        "sip:200@PBX.example.com", "u", "p")
    backup = pbx.transfer_target("<sips:300@backup.example.com>", "same_host", current, configured)
    assert isinstance(backup, SipTarget) and backup.username == "b" and backup.secure_media
    refused = pbx.transfer_target("<sip:1@elsewhere.example.org>", "same_host", current, configured)
    assert isinstance(refused, pbx.TransferRefused) and refused.status == 403
    anywhere = pbx.transfer_target("sip:1@elsewhere.example.org", "any", current, configured)
    assert isinstance(anywhere, SipTarget) and anywhere.username is None
    off = pbx.transfer_target("<sip:200@pbx.example.com>", "reject", current, configured)
    assert isinstance(off, pbx.TransferRefused) and off.status == 403
    attended = pbx.transfer_target("<sip:200@pbx.example.com?Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2>", "any",
                                   current, configured)
    assert isinstance(attended, pbx.TransferRefused) and attended.status == 501
    assert isinstance(pbx.transfer_target(None, "any", current, configured), pbx.TransferRefused)
    assert pbx.transfer_target("<tel:+15550001111>", "any", current, configured) == pbx.TransferRefused(
        416, "Refer-To must be a sip: or sips: URI")
