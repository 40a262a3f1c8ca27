"""RFC 3261 §17 / RFC 6026 transaction machines, driven one input at a time.

Every timer is checked at its exact deadline (deterministic ``now``, microsecond steps):
A, B, D (INVITE client), E, F, K (non-INVITE client), G, H, I, L (INVITE server), J
(non-INVITE server), M (RFC 6026), over unreliable and reliable transports.
"""

from __future__ import annotations

import pytest

from services.signaling.sip.errors import TransactionStateError
from services.signaling.sip.headers import Reason
from services.signaling.sip.message import (
    Request,
    Response,
    make_request,
    make_response,
    new_branch,
    parse_message,
)
from services.signaling.sip.transaction import (
    INVITE_CLIENT_TABLE,
    INVITE_SERVER_TABLE,
    NON_INVITE_CLIENT_TABLE,
    NON_INVITE_SERVER_TABLE,
    PEER_INPUTS_CLIENT,
    PEER_INPUTS_SERVER,
    AckReceived,
    CancelReceived,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    RequestReceived,
    ResponseReceived,
    Send,
    State,
    StrayResponse,
    Timers,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailure,
    server_key,
)

T = Timers()  # T1 = 0.5, T2 = 4, T4 = 5
US = 1e-6  # one microsecond


def approx(x: float) -> object:
    return pytest.approx(x, abs=1e-9)


def wire(msg: Request | Response) -> Request | Response:
    """Serialize and parse again, as the network would."""
    return parse_message(bytes(msg))


def req(method: str = "INVITE", branch: str | None = None, cseq: int = 1, host: str = "10.0.0.1") -> Request:
    return make_request(
        method,
        "sip:bob@example.com",
        from_="<sip:alice@example.org>;tag=fromtag",
        to="<sip:bob@example.com>",
        call_id="call-1@example.org",
        cseq=cseq,
        via=f"SIP/2.0/UDP {host}:5060;branch={branch or new_branch()};rport",
        contact="<sip:alice@10.0.0.1:5060>",
    )


def resp(request: Request, status: int, tag: str | None = "totag") -> Response:
    return make_response(request, status, to_tag=tag)


def sends(actions: list[object]) -> list[Send]:
    return [a for a in actions if isinstance(a, Send)]


def of(actions: list[object], cls: type) -> list[object]:
    return [a for a in actions if isinstance(a, cls)]


# ------------------------------------------------------------------------ table shape


@pytest.mark.parametrize(
    "table, peer_inputs",
    [
        (INVITE_CLIENT_TABLE, PEER_INPUTS_CLIENT),
        (NON_INVITE_CLIENT_TABLE, PEER_INPUTS_CLIENT),
        (INVITE_SERVER_TABLE, PEER_INPUTS_SERVER),
        (NON_INVITE_SERVER_TABLE, PEER_INPUTS_SERVER),
    ],
)
def test_every_peer_input_is_in_the_table_of_every_live_state(table, peer_inputs) -> None:
    # Whatever a peer sends is a defined transition (absorbed if need be), never an error.
    for state, row in table.items():
        if state is State.TERMINATED:
            assert row == {}
            continue
        for inp in peer_inputs:
            assert inp in row, (state, inp)


def test_timer_values_follow_table_4() -> None:
    t = Timers(t1=0.1, t2=2.0, t4=3.0)
    assert t.duration("A", False) == 0.1 and t.duration("E", False) == 0.1 and t.duration("G", False) == 0.1
    for name in "BFHLM":
        assert t.duration(name, False) == approx(6.4) and t.duration(name, True) == approx(6.4)
    assert t.duration("J", False) == approx(6.4) and t.duration("J", True) == 0
    assert t.duration("D", False) == 32.0 and t.duration("D", True) == 0
    assert t.duration("I", False) == 3.0 and t.duration("I", True) == 0
    assert t.duration("K", False) == 3.0 and t.duration("K", True) == 0


# ------------------------------------------------------------------ INVITE client (A B D)


def test_invite_client_timer_a_doubles_until_timer_b() -> None:
    layer = TransactionLayer()
    invite = req()
    tx, out = layer.send_request(invite, "peer", 100.0)
    assert isinstance(tx, InviteClientTransaction) and tx.state is State.CALLING
    assert [s.message for s in sends(out)] == [invite] and not out[0].retransmission
    assert tx.timer_deadline("B") == approx(132.0)
    times = []
    while (deadline := layer.next_timer()) is not None:
        out = layer.handle_timer(deadline)
        if sends(out):
            assert sends(out)[0].message is invite and sends(out)[0].retransmission
            times.append(deadline - 100.0)
        if of(out, TransactionTimeout):
            break
    # A fires at T1, then after 2T1, 4T1, ... (no cap for INVITE), B at 64*T1 = 32 s.
    assert times == [approx(x) for x in (0.5, 1.5, 3.5, 7.5, 15.5, 31.5)]
    assert deadline == approx(132.0)
    assert of(out, TransactionTimeout)[0].timer == "B"
    assert of(out, TransactionTerminated) and tx.state is State.TERMINATED
    assert len(layer) == 0 and layer.next_timer() is None


def test_invite_client_timer_not_fired_a_microsecond_early() -> None:
    layer = TransactionLayer()
    tx, _ = layer.send_request(req(), "peer", 0.0)
    assert layer.handle_timer(0.5 - US) == []
    assert len(sends(layer.handle_timer(0.5))) == 1
    assert layer.next_timer() == approx(1.5)


def test_invite_client_reliable_has_no_timer_a_and_zero_timer_d() -> None:
    layer = TransactionLayer()
    invite = req()
    tx, _ = layer.send_request(invite, "peer", 0.0, reliable=True)
    assert tx.timer_deadline("A") is None and layer.next_timer() == approx(32.0)
    out = layer.receive(wire(resp(invite, 486)), "peer", 1.0)
    # ACK sent, final passed up, and Timer D = 0 terminates at once.
    assert [type(a) for a in out] == [ResponseReceived, Send, TransactionTerminated]
    assert tx.state is State.TERMINATED and len(layer) == 0


def test_invite_client_provisional_stops_retransmissions() -> None:
    layer = TransactionLayer()
    invite = req()
    tx, _ = layer.send_request(invite, "peer", 0.0)
    out = layer.receive(wire(resp(invite, 180)), "peer", 0.2)
    assert of(out, ResponseReceived)[0].response.status == 180
    assert tx.state is State.PROCEEDING
    assert tx.timer_deadline("A") is None and tx.timer_deadline("B") is None
    assert layer.next_timer() is None  # §17.1.1.2: the TU must CANCEL; nothing runs


def test_invite_client_non_2xx_final_ack_and_timer_d() -> None:
    layer = TransactionLayer()
    invite = req()
    invite.headers.add("Route", "<sip:proxy.example.com;lr>")
    tx, _ = layer.send_request(invite, "peer", 0.0)
    layer.receive(wire(resp(invite, 100, tag=None)), "peer", 0.01)
    final = wire(resp(invite, 486))
    out = layer.receive(final, "peer", 0.02)
    assert [type(a) for a in out] == [ResponseReceived, Send]
    ack = out[1].message
    assert isinstance(ack, Request) and ack.method == "ACK"
    # §17.1.1.3: same Request-URI, top Via (branch), From, Call-ID, Route; To from the response.
    assert ack.uri == invite.uri and ack.top_via.branch == invite.top_via.branch
    assert ack.to.tag == "totag" and str(ack.cseq) == "1 ACK"
    assert ack.headers.get_all("Route") == ["<sip:proxy.example.com;lr>"]
    assert tx.state is State.COMPLETED and tx.timer_deadline("D") == approx(32.02)
    # A retransmitted final is not passed up again; the ACK is retransmitted.
    out = layer.receive(wire(resp(invite, 486)), "peer", 1.0)
    assert [type(a) for a in out] == [Send] and out[0].retransmission and out[0].message.method == "ACK"
    # Late provisional (reordered) is absorbed.
    assert layer.receive(wire(resp(invite, 180)), "peer", 2.0) == []
    assert layer.handle_timer(32.02 - US) == []
    out = layer.handle_timer(32.02)
    assert of(out, TransactionTerminated) and len(layer) == 0


def test_invite_client_2xx_accepted_and_timer_m() -> None:
    layer = TransactionLayer()
    invite = req()
    tx, _ = layer.send_request(invite, "peer", 0.0)
    out = layer.receive(wire(resp(invite, 200, tag="a")), "peer", 0.1)
    # No ACK from the transaction for 2xx (the TU sends it, §13.2.2.4).
    assert [type(a) for a in out] == [ResponseReceived]
    assert tx.state is State.ACCEPTED and tx.timer_deadline("M") == approx(32.1)
    # RFC 6026 §8.4: retransmissions and forked 2xx are passed up in Accepted.
    out = layer.receive(wire(resp(invite, 200, tag="a")), "peer", 0.6)
    assert [type(a) for a in out] == [ResponseReceived]
    out = layer.receive(wire(resp(invite, 200, tag="b")), "peer", 0.7)
    assert of(out, ResponseReceived)[0].response.to.tag == "b"
    assert layer.receive(wire(resp(invite, 183)), "peer", 0.8) == []
    assert layer.receive(wire(resp(invite, 503)), "peer", 0.9) == []
    out = layer.handle_timer(32.1)
    assert of(out, TransactionTerminated) and tx.state is State.TERMINATED
    # After Timer M, a 2xx goes to the core as a stray (ACK it again / ACK and BYE).
    out = layer.receive(wire(resp(invite, 200, tag="a")), "peer", 40.0)
    assert [type(a) for a in out] == [StrayResponse]
    # ...but a stray non-2xx is dropped and counted (§17.1.3).
    assert layer.receive(wire(resp(invite, 486)), "peer", 40.0) == []
    assert layer.stray_responses_dropped == 1


def test_invite_client_transport_error() -> None:
    layer = TransactionLayer()
    tx, _ = layer.send_request(req(), "peer", 0.0)
    out = layer.transport_error(tx, "connection refused", 0.0)
    assert isinstance(out[0], TransportFailure) and out[0].reason == "connection refused"
    assert isinstance(out[1], TransactionTerminated) and len(layer) == 0
    assert layer.transport_error(tx, "again", 0.1) == []


# ------------------------------------------------------------- non-INVITE client (E F K)


def test_non_invite_client_timer_e_caps_at_t2_until_timer_f() -> None:
    layer = TransactionLayer()
    options = req("OPTIONS")
    tx, _ = layer.send_request(options, "peer", 0.0)
    assert isinstance(tx, NonInviteClientTransaction) and tx.state is State.TRYING
    times = []
    while (deadline := layer.next_timer()) is not None:
        out = layer.handle_timer(deadline)
        if sends(out):
            times.append(deadline)
        if of(out, TransactionTimeout):
            break
    # E: T1, 2T1, 4T1, then T2 (4 s) each time; F at 64*T1.
    assert times == [approx(x) for x in (0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5)]
    assert deadline == approx(32.0) and of(out, TransactionTimeout)[0].timer == "F"


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    layer = TransactionLayer()
    options = req("OPTIONS")
    tx, _ = layer.send_request(options, "peer", 0.0)
    layer.handle_timer(0.5)  # E -> 1.5
    out = layer.receive(wire(resp(options, 100, tag=None)), "peer", 0.7)
    assert of(out, ResponseReceived) and tx.state is State.PROCEEDING
    assert tx.timer_deadline("E") == approx(1.5)
    layer.handle_timer(1.5)
    assert tx.timer_deadline("E") == approx(5.5)  # §17.1.2.2: reset to T2 in Proceeding
    layer.handle_timer(5.5)
    assert tx.timer_deadline("E") == approx(9.5)


def test_non_invite_client_final_and_timer_k() -> None:
    layer = TransactionLayer()
    options = req("OPTIONS")
    tx, _ = layer.send_request(options, "peer", 0.0)
    out = layer.receive(wire(resp(options, 200)), "peer", 0.1)
    assert [type(a) for a in out] == [ResponseReceived]
    assert tx.state is State.COMPLETED and tx.timer_deadline("E") is None
    assert tx.timer_deadline("K") == approx(5.1) and tx.timer_deadline("F") is None
    assert layer.receive(wire(resp(options, 200)), "peer", 0.2) == []  # absorbed
    out = layer.handle_timer(5.1)
    assert of(out, TransactionTerminated)


def test_non_invite_client_reliable() -> None:
    layer = TransactionLayer()
    options = req("OPTIONS")
    tx, _ = layer.send_request(options, "peer", 0.0, reliable=True)
    assert tx.timer_deadline("E") is None and tx.timer_deadline("F") == approx(32.0)
    out = layer.receive(wire(resp(options, 404)), "peer", 0.1)
    assert [type(a) for a in out] == [ResponseReceived, TransactionTerminated]  # K = 0


def test_ack_cannot_start_a_client_transaction() -> None:
    with pytest.raises(ValueError):
        TransactionLayer().send_request(req("ACK"), "peer", 0.0)


def test_duplicate_branch_rejected() -> None:
    layer = TransactionLayer()
    layer.send_request(req("OPTIONS", branch="z9hG4bKsame"), "peer", 0.0)
    with pytest.raises(ValueError):
        layer.send_request(req("OPTIONS", branch="z9hG4bKsame"), "peer", 0.0)


# ----------------------------------------------------------- INVITE server (G H I L)


def _incoming_invite(layer: TransactionLayer, now: float = 0.0, reliable: bool = False):
    invite = wire(req())
    out = layer.receive(invite, "src", now, reliable=reliable, reply_to="reply")
    received = of(out, RequestReceived)
    assert len(received) == 1
    return received[0].transaction, invite, out


def test_invite_server_sends_100_and_resends_last_provisional() -> None:
    layer = TransactionLayer()
    tx, invite, out = _incoming_invite(layer)
    assert isinstance(tx, InviteServerTransaction) and tx.state is State.PROCEEDING
    assert sends(out)[0].message.status == 100 and sends(out)[0].dest == "reply"
    assert layer.next_timer() is None  # no timer in Proceeding
    layer.respond(tx, resp(invite, 180), 0.1)
    out = layer.receive(wire(invite), "src", 0.5)
    assert [s.message.status for s in sends(out)] == [180] and sends(out)[0].retransmission
    assert not of(out, RequestReceived)  # retransmission absorbed


def test_invite_server_without_auto_trying() -> None:
    layer = TransactionLayer(auto_trying=False)
    tx, invite, out = _incoming_invite(layer)
    assert sends(out) == []
    assert layer.receive(wire(invite), "src", 0.1) == []  # nothing to resend yet


def test_invite_server_non_2xx_timer_g_and_h() -> None:
    layer = TransactionLayer()
    tx, invite, _ = _incoming_invite(layer)
    final = resp(invite, 486)
    out = layer.respond(tx, final, 1.0)
    assert sends(out)[0].message is final and tx.state is State.COMPLETED
    assert tx.timer_deadline("H") == approx(33.0)
    times = []
    while (deadline := layer.next_timer()) is not None:
        out = layer.handle_timer(deadline)
        if sends(out):
            assert sends(out)[0].message is final and sends(out)[0].retransmission
            times.append(deadline - 1.0)
        if of(out, TransactionTimeout):
            break
    # G: T1, 2T1, 4T1, then capped at T2; H gives up at 64*T1 without an ACK.
    assert times == [approx(x) for x in (0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5)]
    assert deadline == approx(33.0) and of(out, TransactionTimeout)[0].timer == "H"


def test_invite_server_ack_confirms_and_timer_i() -> None:
    layer = TransactionLayer()
    tx, invite, _ = _incoming_invite(layer)
    final = resp(invite, 486)
    layer.respond(tx, final, 0.0)
    # A retransmitted INVITE gets the final again.
    out = layer.receive(wire(invite), "src", 0.1)
    assert sends(out)[0].message is final
    # The ACK (same branch, §17.1.1.3) moves to Confirmed; nothing goes up to the TU.
    ack = wire(make_ack_for(invite, final))
    assert layer.receive(ack, "src", 0.2) == []
    assert tx.state is State.CONFIRMED
    assert tx.timer_deadline("G") is None and tx.timer_deadline("H") is None
    assert tx.timer_deadline("I") == approx(5.2)
    assert layer.receive(ack, "src", 0.3) == []  # retransmitted ACK absorbed
    assert layer.receive(wire(invite), "src", 0.4) == []
    out = layer.handle_timer(5.2)
    assert of(out, TransactionTerminated) and len(layer) == 0


def make_ack_for(invite: Request, final: Response) -> Request:
    from services.signaling.sip.message import make_ack

    return make_ack(invite, final)


def test_invite_server_reliable_no_g_and_zero_i() -> None:
    layer = TransactionLayer()
    tx, invite, _ = _incoming_invite(layer, reliable=True)
    final = resp(invite, 603)
    layer.respond(tx, final, 0.0)
    assert tx.timer_deadline("G") is None and tx.timer_deadline("H") == approx(32.0)
    out = layer.receive(wire(make_ack_for(invite, final)), "src", 0.1)
    assert of(out, TransactionTerminated) and tx.state is State.TERMINATED


def test_invite_server_2xx_accepted_and_timer_l() -> None:
    layer = TransactionLayer()
    tx, invite, _ = _incoming_invite(layer)
    ok = resp(invite, 200)
    out = layer.respond(tx, ok, 0.0)
    assert tx.state is State.ACCEPTED and tx.timer_deadline("L") == approx(32.0)
    # RFC 6026 §7.1: INVITE retransmissions are absorbed; the TU's 2xx retransmissions sent.
    assert layer.receive(wire(invite), "src", 0.1) == []
    out = layer.respond(tx, ok, 0.5)
    assert sends(out)[0].message is ok and sends(out)[0].retransmission
    # An ACK matching the transaction is passed to the TU.
    ack = wire(make_ack_for(invite, ok))
    out = layer.receive(ack, "src", 0.6)
    assert [type(a) for a in out] == [AckReceived] and out[0].transaction is tx
    with pytest.raises(TransactionStateError):
        layer.respond(tx, resp(invite, 486), 0.7)
    out = layer.handle_timer(32.0)
    assert of(out, TransactionTerminated)
    # Later ACKs (ACK for 2xx with its own branch) go to the core without a transaction.
    out = layer.receive(ack, "src", 40.0)
    assert [type(a) for a in out] == [AckReceived] and out[0].transaction is None


def test_invite_server_second_final_is_an_error() -> None:
    layer = TransactionLayer()
    tx, invite, _ = _incoming_invite(layer)
    layer.respond(tx, resp(invite, 486), 0.0)
    with pytest.raises(TransactionStateError, match="not allowed in state Completed"):
        layer.respond(tx, resp(invite, 200), 0.1)
    with pytest.raises(TransactionStateError):
        layer.respond(tx, resp(invite, 180), 0.1)


def test_invite_server_transport_error() -> None:
    layer = TransactionLayer()
    tx, invite, _ = _incoming_invite(layer)
    out = layer.transport_error(tx, "connection reset", 0.1)
    assert of(out, TransportFailure) and tx.state is State.TERMINATED


# ----------------------------------------------------------------- non-INVITE server (J)


def test_non_invite_server_trying_proceeding_completed_timer_j() -> None:
    layer = TransactionLayer()
    bye = wire(req("BYE", cseq=2))
    out = layer.receive(bye, "src", 0.0)
    tx = of(out, RequestReceived)[0].transaction
    assert tx.state is State.TRYING and sends(out) == []
    assert layer.receive(wire(bye), "src", 0.1) == []  # Trying: absorbed
    layer.respond(tx, resp(bye, 100, tag=None), 0.2)
    assert tx.state is State.PROCEEDING
    out = layer.receive(wire(bye), "src", 0.3)
    assert sends(out)[0].message.status == 100
    ok = resp(bye, 200)
    layer.respond(tx, ok, 0.4)
    assert tx.state is State.COMPLETED and tx.timer_deadline("J") == approx(32.4)
    out = layer.receive(wire(bye), "src", 1.0)
    assert sends(out)[0].message is ok
    with pytest.raises(TransactionStateError):
        layer.respond(tx, resp(bye, 500), 1.0)
    assert layer.handle_timer(32.4 - US) == []
    assert of(layer.handle_timer(32.4), TransactionTerminated)
    # After J the same request is a new transaction (and goes up again).
    assert of(layer.receive(wire(bye), "src", 33.0), RequestReceived)


def test_non_invite_server_reliable_timer_j_zero() -> None:
    layer = TransactionLayer()
    bye = wire(req("BYE", cseq=2))
    tx = of(layer.receive(bye, "src", 0.0, reliable=True), RequestReceived)[0].transaction
    out = layer.respond(tx, resp(bye, 200), 0.1)
    assert [type(a) for a in out] == [Send, TransactionTerminated]


# ------------------------------------------------------------------------- matching


def test_response_matching_needs_branch_and_cseq_method() -> None:
    layer = TransactionLayer()
    invite = req()
    layer.send_request(invite, "peer", 0.0)
    other_branch = resp(invite, 180)
    via = other_branch.top_via
    via.params["branch"] = new_branch()
    other_branch.set_top_via(via)
    assert layer.receive(wire(other_branch), "peer", 0.1) == []
    assert layer.stray_responses_dropped == 1
    # Same branch, CSeq method CANCEL: not the INVITE's response (§17.1.3).
    wrong_method = resp(invite, 200)
    wrong_method.headers.set("CSeq", "1 CANCEL")
    assert layer.receive(wire(wrong_method), "peer", 0.1) == []


def test_server_matching_branch_sent_by_and_method() -> None:
    a = wire(req(branch="z9hG4bKone", host="10.0.0.1"))
    b = wire(req(branch="z9hG4bKone", host="10.0.0.2"))  # same branch, other sent-by
    assert server_key(a) != server_key(b)
    layer = TransactionLayer()
    assert of(layer.receive(a, "x", 0.0), RequestReceived)
    assert of(layer.receive(b, "y", 0.0), RequestReceived)
    assert len(layer.servers) == 2
    # Same branch and sent-by, different method (not ACK/CANCEL): a different transaction.
    c = wire(req("OPTIONS", branch="z9hG4bKone"))
    assert of(layer.receive(c, "x", 0.0), RequestReceived)


def test_server_matching_rfc2543_without_magic_cookie() -> None:
    layer = TransactionLayer()
    invite = wire(req(branch="oldstyle1"))
    tx = of(layer.receive(invite, "src", 0.0), RequestReceived)[0].transaction
    assert server_key(invite)[0] == "rfc2543"
    assert of(layer.receive(wire(invite), "src", 0.1), RequestReceived) == []  # retransmission
    final = resp(invite, 404)
    layer.respond(tx, final, 0.2)
    # An ACK with another To tag does not match; one with the response's To tag does.
    wrong = make_ack_for(invite, resp(invite, 404, tag="other"))
    assert isinstance(layer.receive(wire(wrong), "src", 0.3)[0], AckReceived)
    assert layer.receive(wire(make_ack_for(invite, final)), "src", 0.3) == []
    assert tx.state is State.CONFIRMED


# --------------------------------------------------------------------------- CANCEL


def test_cancel_matches_its_invite_and_is_answered_200() -> None:
    from services.signaling.sip.message import make_cancel

    layer = TransactionLayer()
    tx, invite, _ = _incoming_invite(layer)
    cancel = wire(make_cancel(invite))
    out = layer.receive(cancel, "src", 0.5, reply_to="reply")
    assert [type(a) for a in out] == [Send, CancelReceived]
    assert out[0].message.status == 200 and str(out[0].message.cseq) == "1 CANCEL"
    assert out[1].transaction is tx
    # §9.2: the TU answers the INVITE with 487; a CANCEL retransmission gets the 200 again.
    layer.respond(tx, resp(invite, 487), 0.6)
    out = layer.receive(wire(cancel), "src", 0.7)
    assert [s.message.status for s in sends(out)] == [200]
    # A CANCEL after the final response still gets 200 but no CancelReceived.
    cancel2 = wire(make_cancel(invite))
    via = cancel2.top_via
    cancel2.headers.set("Call-ID", "call-1@example.org")
    cancel2.set_top_via(via)
    layer2 = TransactionLayer()
    tx2, invite2, _ = _incoming_invite(layer2)
    layer2.respond(tx2, resp(invite2, 486), 0.1)
    out = layer2.receive(wire(make_cancel(invite2)), "src", 0.2)
    assert [type(a) for a in out] == [Send] and out[0].message.status == 200


def test_cancel_without_invite_gets_481() -> None:
    from services.signaling.sip.message import make_cancel

    layer = TransactionLayer()
    out = layer.receive(wire(make_cancel(req())), "src", 0.0)
    assert [type(a) for a in out] == [Send] and out[0].message.status == 481


def test_client_cancel_waits_for_provisional() -> None:
    layer = TransactionLayer()
    invite = req()
    tx, _ = layer.send_request(invite, "peer", 0.0)
    # §9.1: no CANCEL before a provisional response...
    assert layer.cancel(tx, 0.1, reason=Reason("SIP", 480, "ring timeout")) == []
    out = layer.receive(wire(resp(invite, 180)), "peer", 0.2)
    # ...then it goes out right after the 180 is passed up, with the INVITE's branch.
    assert [type(a) for a in out] == [ResponseReceived, Send]
    cancel = out[1].message
    assert cancel.method == "CANCEL" and cancel.top_via.branch == invite.top_via.branch
    assert cancel.headers.get("Reason") == 'SIP;cause=480;text="ring timeout"'
    assert out[1].dest == "peer" and len(layer.clients) == 2
    # §9.1: the INVITE gives up 64*T1 after the CANCEL without a final response.
    assert tx.timer_deadline("B") == approx(32.2)
    out = layer.receive(wire(resp(cancel, 200)), "peer", 0.3)
    assert of(out, ResponseReceived)[0].transaction.method == "CANCEL"
    out = layer.receive(wire(resp(invite, 487)), "peer", 0.4)
    assert of(out, ResponseReceived)[0].response.status == 487 and tx.state is State.COMPLETED


def test_client_cancel_guard_times_out() -> None:
    layer = TransactionLayer()
    invite = req()
    tx, _ = layer.send_request(invite, "peer", 0.0, reliable=True)
    layer.receive(wire(resp(invite, 180)), "peer", 0.1)
    layer.cancel(tx, 1.0)
    out = layer.handle_timer(33.0)
    assert of(out, TransactionTimeout) and tx.state is State.TERMINATED


def test_cancel_after_final_sends_nothing() -> None:
    layer = TransactionLayer()
    invite = req()
    tx, _ = layer.send_request(invite, "peer", 0.0)
    layer.receive(wire(resp(invite, 200)), "peer", 0.1)
    assert layer.cancel(tx, 0.2) == []


def test_next_timer_is_the_earliest_over_all_transactions() -> None:
    layer = TransactionLayer()
    tx1, _ = layer.send_request(req("OPTIONS"), "a", 10.0)
    tx2, _ = layer.send_request(req("OPTIONS"), "b", 10.2)
    assert layer.next_timer() == approx(10.5)
    layer.transport_error(tx1, "boom", 10.3)
    assert layer.next_timer() == approx(10.7)
    out = layer.handle_timer(10.7)
    assert sends(out)[0].dest == "b"
