"""Dialogs (RFC 3261 §12), in-dialog requests, 481/491, forking (§13.2.2.4) and the UAS
core's 2xx retransmission (§13.3.1.4)."""

from __future__ import annotations

import random

import pytest

from services.signaling.sip.dialog import (
    AckTimeout,
    Dialog,
    DialogId,
    Dialogs,
    DialogState,
    OkRetransmitter,
    Retransmit2xx,
    glare_retry_delay,
    next_hop,
)
from services.signaling.sip.errors import TransactionStateError
from services.signaling.sip.message import Request, Response, make_request, make_response, parse_message
from services.signaling.sip.transaction import Timers


def approx(x: float) -> object:
    return pytest.approx(x, abs=1e-9)


def wire(msg: Request | Response) -> Request | Response:
    return parse_message(bytes(msg))


def invite(cseq: int = 10, rr: tuple[str, ...] = ()) -> Request:
    r = make_request(
        "INVITE",
        "sip:bob@example.com",
        from_='"Alice" <sip:alice@example.org>;tag=atag',
        to="<sip:bob@example.com>",
        call_id="c1@example.org",
        cseq=cseq,
        via="SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKinv1",
        contact="<sip:alice@10.0.0.1:5060>",
        headers=[("Proxy-Authorization", 'Digest username="a", response="x"')],
    )
    for value in rr:
        r.headers.add("Record-Route", value)
    return wire(r)


def answer(
    req: Request, status: int, tag: str = "btag", contact: str = "<sip:bob@10.0.0.2:5070>"
) -> Response:
    headers = [("Contact", contact)] if contact else []
    return wire(make_response(req, status, to_tag=tag, headers=headers))


RR = ("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>")


# ----------------------------------------------------------------- dialog state (§12.1)


def test_uac_dialog_from_2xx() -> None:
    inv = invite(rr=RR)
    d = Dialog.uac(inv, answer(inv, 200))
    assert d.id == DialogId("c1@example.org", "atag", "btag")
    assert d.state is DialogState.CONFIRMED and d.is_uac
    assert d.remote_target == "sip:bob@10.0.0.2:5070"
    # §12.1.2: the UAC's route set is the Record-Route list reversed.
    assert [str(r.uri) for r in d.route_set] == ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
    assert d.local_seq == 10 and d.remote_seq is None
    assert d.local_party.display_name == "Alice" and d.local_party.tag is None


def test_uas_dialog_from_request() -> None:
    inv = invite(rr=RR)
    d = Dialog.uas(inv, answer(inv, 180))
    assert d.id == DialogId("c1@example.org", "btag", "atag")
    assert d.state is DialogState.EARLY and not d.is_uac
    assert d.remote_target == "sip:alice@10.0.0.1:5060"
    assert [str(r.uri) for r in d.route_set] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert d.remote_seq == 10 and d.local_seq is None
    # An empty local CSeq gets an initial value on the first request (§12.2.1.1).
    bye = d.create_request("BYE")
    assert bye.cseq.seq == 1
    assert bye.from_.tag == "btag" and bye.to.tag == "atag"
    assert str(bye.to.uri) == "sip:alice@example.org" and bye.to.display_name == "Alice"


def test_uac_dialog_needs_to_tag() -> None:
    inv = invite()
    no_tag = wire(make_response(inv, 180))
    with pytest.raises(Exception, match="To tag"):
        Dialog.uac(inv, no_tag)


# -------------------------------------------------------- in-dialog requests (§12.2.1.1)


def test_bye_with_loose_routing() -> None:
    inv = invite(rr=RR)
    d = Dialog.uac(inv, answer(inv, 200))
    bye = wire(d.create_request("BYE"))
    assert bye.uri == "sip:bob@10.0.0.2:5070"  # remote target stays the Request-URI
    assert bye.headers.values("Route") == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    assert str(bye.cseq) == "11 BYE" and bye.call_id == "c1@example.org"
    assert bye.from_.tag == "atag" and bye.to.tag == "btag"
    assert "Contact" not in bye.headers
    assert bye.top_via.is_rfc3261_branch and bye.top_via.branch != inv.top_via.branch
    assert next_hop(bye) == "sip:p2.example.com;lr"
    assert d.terminated  # §15.1.1: terminated once the BYE is sent


def test_strict_router() -> None:
    inv = invite(rr=("<sip:strict.example.com>", "<sip:loose.example.com;lr>"))
    d = Dialog.uac(inv, answer(inv, 200))
    info = d.create_request("INFO", body=b"Signal=1\r\n", content_type="application/dtmf-relay")
    # First route (reversed: loose first) has lr -> loose. Now the reverse case:
    assert info.uri == "sip:bob@10.0.0.2:5070"
    inv2 = invite(rr=("<sip:loose.example.com;lr>", "<sip:strict.example.com>"))
    d2 = Dialog.uac(inv2, answer(inv2, 200))
    opt = wire(d2.create_request("OPTIONS"))
    # §12.2.1.1: a strict router gets the Request-URI; the remote target goes last in Route.
    assert opt.uri == "sip:strict.example.com"
    assert opt.headers.values("Route") == ["<sip:loose.example.com;lr>", "<sip:bob@10.0.0.2:5070>"]
    assert next_hop(opt) == "sip:loose.example.com;lr"


def test_no_route_set_next_hop_is_request_uri() -> None:
    inv = invite()
    d = Dialog.uac(inv, answer(inv, 200))
    upd = d.create_request("UPDATE", body=b"v=0\r\n", content_type="application/sdp")
    assert upd.headers.get("Route") is None and next_hop(upd) == "sip:bob@10.0.0.2:5070"
    assert upd.headers.get("Contact") == "<sip:alice@10.0.0.1:5060>"  # target refresh: Contact
    assert upd.headers.get("Content-Type") == "application/sdp"


def test_ack_for_2xx_uses_invite_cseq_and_credentials() -> None:
    inv = invite(rr=RR)
    d = Dialog.uac(inv, answer(inv, 200))
    ack = wire(d.create_ack(inv))
    assert str(ack.cseq) == "10 ACK" and d.local_seq == 10  # ACK does not consume a CSeq
    assert ack.uri == "sip:bob@10.0.0.2:5070" and ack.to.tag == "btag"
    assert ack.headers.values("Route") == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    assert ack.headers.get("Proxy-Authorization") == 'Digest username="a", response="x"'
    assert ack.top_via.branch != inv.top_via.branch  # its own transaction (§13.2.2.4)
    assert d.acks[10] is not None
    with pytest.raises(ValueError):
        d.create_request("ACK")


def test_reinvite_sets_pending_and_glare_491() -> None:
    inv = invite()
    d = Dialog.uac(inv, answer(inv, 200))
    reinv = d.create_request("INVITE", body=b"v=0\r\n", content_type="application/sdp")
    assert str(reinv.cseq) == "11 INVITE" and reinv.headers.get("Contact") == "<sip:alice@10.0.0.1:5060>"
    assert d.pending_outgoing_invite == 11
    with pytest.raises(TransactionStateError):
        d.create_request("INVITE")
    # The peer's re-INVITE crosses ours: 491 (§14.2).
    peer = make_request(
        "INVITE",
        "sip:alice@10.0.0.1:5060",
        from_="<sip:bob@example.com>;tag=btag",
        to="<sip:alice@example.org>;tag=atag",
        call_id="c1@example.org",
        cseq=1,
        via="SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bKpeer",
    )
    refusal = d.receive_request(wire(peer))
    assert refusal is not None and refusal.status == 491
    # Our re-INVITE gets its final response: not pending any more, the peer's goes through.
    d.receive_response(reinv, answer(reinv, 200, contact="<sip:bob@10.0.0.9>"))
    assert d.pending_outgoing_invite is None and d.remote_target == "sip:bob@10.0.0.9"
    assert d.receive_request(wire(peer)) is None and d.pending_incoming_invite == 1
    # A second peer INVITE before we answered the first: 500 + Retry-After (§14.2).
    peer.headers.set("CSeq", "2 INVITE")
    second = d.receive_request(wire(peer))
    assert second is not None and second.status == 500 and "Retry-After" in second.headers
    d.response_sent(peer, make_response(peer, 200, to_tag="atag"))


def test_out_of_order_cseq_gets_500_and_target_refresh() -> None:
    inv = invite()
    d = Dialog.uas(inv, answer(inv, 200))

    def req(method: str, seq: int, contact: str | None = None) -> Request:
        return wire(
            make_request(
                method,
                "sip:bob@10.0.0.2:5070",
                from_="<sip:alice@example.org>;tag=atag",
                to="<sip:bob@example.com>;tag=btag",
                call_id="c1@example.org",
                cseq=seq,
                via="SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx",
                contact=contact,
            )
        )

    assert d.receive_request(req("INFO", 11)) is None and d.remote_seq == 11
    stale = d.receive_request(req("INFO", 9))
    assert stale is not None and stale.status == 500
    assert d.receive_request(req("UPDATE", 12, "<sip:alice@192.0.2.7>")) is None
    assert d.remote_target == "sip:alice@192.0.2.7"
    assert d.receive_request(req("BYE", 13)) is None and d.terminated


def test_481_and_408_terminate_dialog() -> None:
    inv = invite()
    d = Dialog.uac(inv, answer(inv, 200))
    info = d.create_request("INFO")
    d.receive_response(info, answer(info, 481))
    assert d.terminated


def test_glare_retry_delay_ranges() -> None:
    rng = random.Random(1)
    for _ in range(50):
        assert 2.1 <= glare_retry_delay(True, rng) <= 4.0
        assert 0.0 <= glare_retry_delay(False, rng) <= 2.0


# ---------------------------------------------------------------- the dialog table


def test_check_request_481_for_unknown_dialog() -> None:
    dialogs = Dialogs()
    bye = wire(
        make_request(
            "BYE",
            "sip:bob@10.0.0.2",
            from_="<sip:alice@example.org>;tag=atag",
            to="<sip:bob@example.com>;tag=nope",
            call_id="other@x",
            cseq=2,
            via="SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKbye",
        )
    )
    dialog, refusal = dialogs.check_request(bye)
    assert dialog is None and refusal is not None and refusal.status == 481
    ack = wire(
        make_request(
            "ACK",
            "sip:bob@10.0.0.2",
            from_="<sip:alice@example.org>;tag=atag",
            to="<sip:bob@example.com>;tag=nope",
            call_id="other@x",
            cseq=1,
            via="SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKack",
        )
    )
    assert dialogs.check_request(ack) == (None, None)  # never answered
    assert dialogs.check_request(invite()) == (None, None)  # out of dialog


def test_uas_dialog_lifecycle_and_in_dialog_bye() -> None:
    dialogs = Dialogs()
    inv = invite()
    ringing = make_response(inv, 180, to_tag="btag")
    early = dialogs.uas_response(inv, ringing, 0.0)
    assert early is not None and early.state is DialogState.EARLY and len(dialogs) == 1
    ok = make_response(inv, 200, to_tag="btag", headers=[("Contact", "<sip:bob@10.0.0.2>")])
    d = dialogs.uas_response(inv, ok, 0.1, context="tx")
    assert d is early and d.state is DialogState.CONFIRMED and d.pending_incoming_invite is None
    assert dialogs.retransmitting(d)
    bye = d.create_request("BYE")  # we hang up before the ACK: retransmission stops
    assert dialogs.handle_timer(0.6) == [] and not dialogs.retransmitting(d)
    assert bye.to.tag == "atag" and len(dialogs) == 0


def test_uas_non_2xx_final_removes_early_dialog() -> None:
    dialogs = Dialogs()
    inv = invite()
    dialogs.uas_response(inv, make_response(inv, 183, to_tag="btag"), 0.0)
    dialogs.uas_response(inv, make_response(inv, 486, to_tag="btag"), 0.1)
    assert len(dialogs) == 0


# ------------------------------------------------------------------ forking (§13.2.2.4)


def test_forked_2xx_first_wins_others_acked_and_byed() -> None:
    dialogs = Dialogs()
    inv = invite(rr=RR)
    a180 = answer(inv, 180, tag="a", contact="<sip:a@10.0.0.3>")
    b180 = answer(inv, 180, tag="b", contact="<sip:b@10.0.0.4>")
    ra = dialogs.uac_response(inv, a180, 0.0)
    rb = dialogs.uac_response(inv, b180, 0.0)
    assert ra.dialog is not None and rb.dialog is not None and ra.dialog is not rb.dialog
    assert ra.dialog.state is DialogState.EARLY and len(dialogs) == 2

    a200 = answer(inv, 200, tag="a", contact="<sip:a@10.0.0.33>")
    first = dialogs.uac_response(inv, a200, 0.1)
    assert first.dialog is ra.dialog and first.send == [] and not first.fork
    assert first.dialog.state is DialogState.CONFIRMED and first.dialog.remote_target == "sip:a@10.0.0.33"
    ack = first.dialog.create_ack(inv)  # the TU ACKs the winner

    # A 2xx retransmission from the winner: the same ACK again (§13.2.2.4).
    again = dialogs.uac_response(inv, a200, 0.6)
    assert again.retransmission and again.send == [ack]

    # Another fork answers: ACK and BYE it, to its own Contact, with the INVITE's CSeq for ACK.
    b200 = answer(inv, 200, tag="b", contact="<sip:b@10.0.0.44>")
    fork = dialogs.uac_response(inv, b200, 0.7)
    assert fork.fork and [r.method for r in fork.send] == ["ACK", "BYE"]
    fack, fbye = fork.send
    assert fack.uri == "sip:b@10.0.0.44" and fack.to.tag == "b" and str(fack.cseq) == "10 ACK"
    assert fbye.uri == "sip:b@10.0.0.44" and str(fbye.cseq) == "11 BYE"
    assert fack.headers.get("Proxy-Authorization") is not None
    assert len(dialogs) == 1  # only the winner is live
    # The loser's 2xx retransmitted: only the ACK again.
    again_b = dialogs.uac_response(inv, b200, 1.0)
    assert again_b.send == [fack] and again_b.fork
    # After the Timer-M-like window, a stray 2xx of the winner is still re-ACKed via its dialog.
    dialogs.handle_timer(100.0)
    assert dialogs.stray_2xx(a200, 100.0).send == [ack]
    assert dialogs.stray_2xx(b200, 100.0).send == []  # unknown by then: dropped


def test_final_non_2xx_ends_early_dialogs() -> None:
    dialogs = Dialogs()
    inv = invite()
    dialogs.uac_response(inv, answer(inv, 180, tag="a"), 0.0)
    dialogs.uac_response(inv, answer(inv, 183, tag="b"), 0.0)
    assert len(dialogs) == 2
    dialogs.uac_response(inv, answer(inv, 486, tag="c"), 0.1)
    assert len(dialogs) == 0


def test_reinvite_responses_update_existing_dialog() -> None:
    dialogs = Dialogs()
    inv = invite()
    d = dialogs.uac_response(inv, answer(inv, 200), 0.0).dialog
    assert d is not None
    reinv = d.create_request("INVITE")
    dialogs.uac_response(reinv, answer(reinv, 100), 0.1)
    res = dialogs.uac_response(reinv, answer(reinv, 488), 0.2)
    assert res.dialog is None and d.state is DialogState.CONFIRMED and d.pending_outgoing_invite is None
    reinv2 = d.create_request("INVITE")
    res = dialogs.uac_response(reinv2, answer(reinv2, 200, contact="<sip:bob@10.9.9.9>"), 0.3)
    assert res.dialog is d and d.remote_target == "sip:bob@10.9.9.9" and d.pending_outgoing_invite is None


# --------------------------------------------------------- 2xx retransmission (§13.3.1.4)


def test_ok_retransmitter_doubles_to_t2_and_gives_up() -> None:
    inv = invite()
    ok = make_response(inv, 200, to_tag="btag")
    d = Dialog.uas(inv, ok)
    r = OkRetransmitter(d, ok, 10.0, Timers(), context="tx")
    times = []
    while (deadline := r.next_timer()) is not None:
        out = r.handle_timer(deadline)
        if out and isinstance(out[0], Retransmit2xx):
            assert out[0].response is ok and out[0].context == "tx"
            times.append(deadline - 10.0)
        elif out:
            timeout = out[0]
    assert times == [approx(x) for x in (0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5)]
    assert isinstance(timeout, AckTimeout) and deadline is None
    # §13.3.1.4: the session SHOULD be ended with a BYE.
    assert timeout.bye is not None and timeout.bye.method == "BYE"


def test_ok_retransmitter_stops_on_ack() -> None:
    dialogs = Dialogs(Timers(t1=0.1, t2=0.4))
    inv = invite()
    ok = make_response(inv, 200, to_tag="btag")
    d = dialogs.uas_response(inv, ok, 0.0, context="tx")
    assert d is not None and dialogs.next_timer() == approx(0.1)
    assert [type(a) for a in dialogs.handle_timer(0.1)] == [Retransmit2xx]
    assert dialogs.next_timer() == approx(0.3)
    ack = wire(
        make_request(
            "ACK",
            "sip:bob@10.0.0.2",
            from_='"Alice" <sip:alice@example.org>;tag=atag',
            to="<sip:bob@example.com>;tag=btag",
            call_id="c1@example.org",
            cseq=10,
            via="SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKack",
        )
    )
    assert dialogs.ack_received(ack) is d
    assert dialogs.next_timer() is None and dialogs.handle_timer(10.0) == []
    assert dialogs.ack_received(ack) is d  # a retransmitted ACK is harmless
