"""The sans-IO UA core (services.signaling.sip.core) driven by hand: a fake clock (``now``
arguments and ``handle_timer``), peers written as bytes, no sockets. Default timers
(T1 = 500 ms), so Timer B is 32 s of fake time."""

from __future__ import annotations

import pytest

from services.signaling.sip.core import (
    Addr,
    Cancelled,
    MessageIn,
    NewRequest,
    Output,
    ResponseIn,
    Route,
    Transmit,
    UACore,
    choose_transport,
    redact,
)
from services.signaling.sip.message import Request, Response, make_request, make_response, parse_message

LOCAL = Addr("udp", "192.0.2.1", 5060)
LOCAL_TCP = Addr("tcp", "192.0.2.1", 5060)
A = Addr("udp", "198.51.100.1", 5060)
B = Addr("udp", "198.51.100.2", 5060)


def new_core(**kwargs: object) -> UACore:
    listeners = {"udp": LOCAL, "tcp": LOCAL_TCP}
    return UACore(local_addr=listeners.get, **kwargs)  # type: ignore[arg-type]


def sent(outputs: list[Output]) -> list[Transmit]:
    return [o for o in outputs if isinstance(o, Transmit)]


def responses(outputs: list[Output]) -> list[int]:
    return [o.response.status for o in outputs if isinstance(o, ResponseIn)]


def invite(core: UACore) -> Request:
    return core.create_request("INVITE", "sip:bob@example.com", from_="<sip:alice@example.org>",
                               to="<sip:bob@example.com>", body=b"v=0\r\n",
                               content_type="application/sdp")  # fmt: skip


def answer(
    core: UACore, request: Request, status: int, source: Addr, now: float, tag: str = "b1"
) -> list[Output]:
    """The peer at ``source`` answers ``request`` (as we sent it)."""
    return core.receive(bytes(make_response(request, status, to_tag=tag)), source, LOCAL, now)


def run_timers(core: UACore, until: float) -> tuple[float, list[Output]]:
    """Fire every core deadline up to ``until``; the time of the last one and all outputs."""
    out: list[Output] = []
    now = 0.0
    while (deadline := core.next_timer()) is not None and deadline <= until:
        now = deadline
        out += core.handle_timer(now)
    return now, out


def peer_request(method: str, via: str, *, to_tag: str | None = None, cseq: int = 1) -> bytes:
    return bytes(make_request(
        method, "sip:bob@192.0.2.1", from_="<sip:carol@example.net>;tag=c1",
        to="<sip:bob@192.0.2.1>" + (f";tag={to_tag}" if to_tag else ""), call_id="peer-call", cseq=cseq,
        via=via, contact="<sip:carol@203.0.113.7:5060>",
    ))  # fmt: skip


# ----------------------------------------------------------------------------- failover


def test_failover_on_timer_b_then_answered_by_the_next_candidate() -> None:
    core = new_core()
    call, out = core.send_request(invite(core), [A, B], 0.0)
    first = sent(out)[0]
    assert first.dest == A and call.target == A
    now, out = run_timers(core, 32.0)  # Timer A retransmits to A, Timer B (64*T1) fails over
    assert now == 32.0 and {t.dest for t in sent(out)} == {A, B}
    assert call.attempts == [(A, "timeout")] and call.target == B and not call.done
    retry = sent(out)[-1].message
    assert isinstance(retry, Request) and retry.method == "INVITE"
    assert retry.top_via.branch != first.message.top_via.branch  # a new transaction (RFC 3263 §4.3)
    out = answer(core, call.request, 200, B, now + 0.1)
    assert responses(out) == [200] and call.final_response is not None and call.final_response.status == 200
    assert call.dialog is not None and call.error is None


def test_all_candidates_time_out_gives_a_local_408() -> None:
    core = new_core()
    call, _ = core.send_request(core.create_request("OPTIONS", "sip:b@y", from_="<sip:a@x>", to="<sip:b@y>"),
                                [A], 0.0)  # fmt: skip
    _, out = run_timers(core, 100.0)
    assert responses(out) == [408] and call.error == "timeout" and call.attempts == [(A, "timeout")]


def test_failover_on_transport_error() -> None:
    core = new_core()
    call, out = core.send_request(invite(core), [A, B], 0.0)
    out = core.transport_error(sent(out)[0], "connection refused", 0.01)
    assert [t.dest for t in sent(out)] == [B] and call.attempts == [(A, "connection refused")]
    assert core.stats["send_errors"] == 1 and responses(out) == []


def test_failover_on_503_acks_it_and_tries_the_next() -> None:
    core = new_core()
    call, _ = core.send_request(invite(core), [A, B], 0.0)
    out = answer(core, call.request, 503, A, 0.1)
    msgs = [(t.dest, getattr(t.message, "method", None)) for t in sent(out)]
    assert sorted(msgs, key=str) == [(A, "ACK"), (B, "INVITE")]  # §17.1.1.3 ACK for the 503; the next target
    assert call.attempts == [(A, "503")] and responses(out) == []
    out = answer(core, call.request, 503, B, 0.2)
    assert responses(out) == [503] and call.done  # the last candidate's 503 is the answer


def test_no_failover_after_a_provisional_response() -> None:
    core = new_core()
    call, out = core.send_request(invite(core), [A, B], 0.0)
    invite_tx = sent(out)[0]
    assert responses(answer(core, call.request, 180, A, 0.1)) == [180]
    out = core.transport_error(invite_tx, "connection reset", 0.2)
    assert [t.dest for t in sent(out)] == []  # B is never tried: A may have rung a phone
    assert responses(out) == [503] and call.error == "connection reset" and call.candidates == []


def test_large_request_goes_over_tcp_first() -> None:
    assert choose_transport(1301, A) == Addr("tcp", A.host, A.port)  # §18.1.1
    assert choose_transport(1301, A, explicit=True) == A and choose_transport(1300, A) == A
    core = new_core()
    big = core.create_request("MESSAGE", "sip:b@y", from_="<sip:a@x>", to="<sip:b@y>", body=b"x" * 1400,
                              content_type="text/plain")  # fmt: skip
    call, out = core.send_request(big, [A], 0.0)
    assert sent(out)[0].dest.transport == "tcp" and call.request.top_via.transport == "TCP"
    assert call.candidates == [A]  # then UDP if TCP fails


# ----------------------------------------------------------------------------- CANCEL


def test_cancel_is_held_until_a_provisional_response() -> None:
    core = new_core()
    call, _ = core.send_request(invite(core), [A, B], 0.0, options="tls-a")
    assert core.cancel(call, 0.05) == []  # nothing yet to CANCEL (§9.1)
    out = answer(core, call.request, 100, A, 0.1)
    cancel = [t for t in sent(out) if isinstance(t.message, Request) and t.message.method == "CANCEL"]
    assert len(cancel) == 1 and cancel[0].dest == A and cancel[0].options == "tls-a"  # as its INVITE
    assert cancel[0].message.top_via.branch == call.request.top_via.branch  # §9.1: same branch
    out = answer(core, call.request, 487, A, 0.2)
    assert responses(out) == [487] and call.attempts == []  # B is not tried after a CANCEL
    assert core.cancel(call, 0.3) == []  # after the final: nothing


def test_incoming_cancel_gets_200_and_the_invite_487() -> None:
    core = new_core()
    via = "SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bKinv;rport"
    out = core.receive(peer_request("INVITE", via), Addr("udp", "203.0.113.7", 5060), LOCAL, 0.0)
    incoming = next(o.incoming for o in out if isinstance(o, NewRequest))
    out = core.receive(peer_request("CANCEL", via), Addr("udp", "203.0.113.7", 5060), LOCAL, 0.1)
    statuses = [
        (t.message.status, t.message.cseq.method) for t in sent(out) if isinstance(t.message, Response)
    ]
    assert statuses == [(200, "CANCEL"), (487, "INVITE")]  # §9.2
    assert any(isinstance(o, Cancelled) for o in out) and incoming.cancel_received and incoming.answered


# ----------------------------------------------------------------------------- Via / rport


def test_outgoing_via_has_our_sent_by_transport_and_rport() -> None:
    core = new_core()
    call, out = core.send_request(invite(core), [Addr("tcp", "198.51.100.1", 5060)], 0.0)
    via = call.request.top_via
    assert (via.transport, via.host, via.port) == ("TCP", "192.0.2.1", 5060)
    assert (
        via.rport_requested and via.rport is None and (via.branch or "").startswith("z9hG4bK")
    )  # RFC 3581 §3
    assert sent(out)[0].message is call.request


@pytest.mark.parametrize(
    "via, source, reply_to",
    [
        # RFC 3581 §4: rport asked for -> received and rport stamped, answered to the source port.
        ("SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bKr1;rport", Addr("udp", "203.0.113.7", 40000),
         Addr("udp", "203.0.113.7", 40000)),
        # §18.2.2 without rport: received stamped, answered to the Via port at the source address.
        ("SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bKr2", Addr("udp", "203.0.113.7", 40000),
         Addr("udp", "203.0.113.7", 5070)),
        # §18.2.2: over TCP, back over the connection the request came on.
        ("SIP/2.0/TCP 10.1.1.1:5070;branch=z9hG4bKr3", Addr("tcp", "203.0.113.7", 40001),
         Addr("tcp", "203.0.113.7", 40001)),
    ],
)  # fmt: skip
def test_incoming_request_is_stamped_and_answered_where_it_came_from(
    via: str, source: Addr, reply_to: Addr
) -> None:
    core = new_core()
    out = core.receive(peer_request("OPTIONS", via), source, LOCAL, 0.0)
    assert isinstance(out[0], MessageIn)
    incoming = next(o.incoming for o in out if isinstance(o, NewRequest))
    got = incoming.request.top_via
    assert got.received == "203.0.113.7"
    assert got.rport == (40000 if ";rport" in via else None)
    response, out = core.respond(incoming, 200, now=0.01)
    assert [t.dest for t in sent(out)] == [reply_to] and response.top_via.received == "203.0.113.7"


# ----------------------------------------------------------------------------- malformed


def test_malformed_request_gets_a_stateless_400_at_its_rport() -> None:
    core = new_core()
    bad = (
        b"OPTIONS sip:bob@192.0.2.1 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bKbad;rport\r\n"
        b"From: <sip:raw@10.1.1.1>;tag=x\r\nTo: <sip:bob@192.0.2.1>\r\n"
        b"Call-ID: bad-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"  # no Max-Forwards
    )
    out = core.receive(bad, Addr("udp", "203.0.113.7", 40000), LOCAL, 0.0)
    [t] = sent(out)
    assert isinstance(t.message, Response) and t.message.status == 400 and "Max-Forwards" in t.message.reason
    assert t.dest == Addr("udp", "203.0.113.7", 40000) and t.message.to.tag
    assert core.stats["malformed_answered"] == 1 and core.next_timer() is None  # stateless


def test_malformed_ack_and_garbage_are_dropped() -> None:
    core = new_core()
    bad_ack = (
        b"ACK sip:bob@192.0.2.1 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bKbadack;rport\r\n"
        b"From: <sip:raw@10.1.1.1>;tag=x\r\nTo: <sip:bob@192.0.2.1>;tag=y\r\n"
        b"Call-ID: bad-2\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"  # no Max-Forwards
    )
    assert core.receive(bad_ack, A, LOCAL, 0.0) == []  # an ACK is never answered
    assert core.receive(b"\x00\x01garbage\r\n\r\n", A, LOCAL, 0.0) == []
    assert core.stats["malformed_dropped"] == 2 and core.stats["malformed_answered"] == 0


def test_in_dialog_request_for_an_unknown_dialog_gets_481_before_the_tu() -> None:
    core = new_core()
    out = core.receive(peer_request("BYE", "SIP/2.0/UDP 203.0.113.7;branch=z9hG4bKbye", to_tag="gone"),
                       A, LOCAL, 0.0)  # fmt: skip
    assert [t.message.status for t in sent(out) if isinstance(t.message, Response)] == [481]
    assert not any(isinstance(o, NewRequest) for o in out)


# ----------------------------------------------------------------------------- 2xx and ACK


def _answered_invite(core: UACore) -> tuple[list[Output], Addr]:
    source = Addr("udp", "203.0.113.7", 5060)
    out = core.receive(
        peer_request("INVITE", "SIP/2.0/UDP 203.0.113.7;branch=z9hG4bKok;rport"), source, LOCAL, 0.0
    )
    incoming = next(o.incoming for o in out if isinstance(o, NewRequest))
    ok, out = core.respond(incoming, 200, now=0.0, body=b"v=0\r\n", content_type="application/sdp")
    assert ok.headers.get("Contact") == "<sip:192.0.2.1:5060>" and incoming.dialog is not None
    return out, source


def test_2xx_is_retransmitted_until_the_ack() -> None:
    core = new_core()
    out, source = _answered_invite(core)
    assert [t.message.status for t in sent(out)] == [200]
    _, out = run_timers(core, 1.6)  # §13.3.1.4: at T1 and 3*T1
    assert [(t.dest, t.message.status) for t in sent(out)] == [(source, 200), (source, 200)]
    ok = sent(out)[0].message
    ack = make_request("ACK", "sip:192.0.2.1:5060", from_="<sip:carol@example.net>;tag=c1", to=ok.headers.get("To") or "",
                       call_id="peer-call", cseq=1, via="SIP/2.0/UDP 203.0.113.7;branch=z9hG4bKack")  # fmt: skip
    out = core.receive(bytes(ack), source, LOCAL, 2.0)
    acked = next(o.incoming for o in out if isinstance(o, NewRequest))
    assert acked.method == "ACK" and acked.transaction is None and acked.dialog is not None
    _, out = run_timers(core, 100.0)
    assert sent(out) == [] and core.stats["ack_timeouts"] == 0  # no more 2xx, no BYE


def test_no_ack_within_64_t1_ends_the_session_with_bye() -> None:
    core = new_core()
    _answered_invite(core)
    now, out = run_timers(core, 100.0)
    assert core.stats["ack_timeouts"] == 1
    [route] = [o for o in out if isinstance(o, Route)]
    assert route.request.method == "BYE" and route.request.call_id == "peer-call"  # needs DNS: the driver's
    assert len(core.dialogs) == 0  # §15.1.1: terminated once the BYE is sent


def test_forked_second_2xx_is_acked_and_byed_and_the_first_is_acked_again() -> None:
    core = new_core()
    call, _ = core.send_request(invite(core), [A], 0.0)
    assert responses(answer(core, call.request, 200, A, 0.1, tag="one")) == [200]
    assert call.dialog is not None and call.dialog.remote_tag == "one"
    ack = call.dialog.create_ack(call.request)
    assert [t.dest for t in sent(core.send_ack(ack, A, 0.1, dialog=call.dialog))] == [A]
    out = answer(core, call.request, 200, A, 0.2, tag="two")  # a second fork answers (§13.2.2.4)
    routed = [(o.request.method, o.request.to.tag) for o in out if isinstance(o, Route)]
    assert routed == [("ACK", "two"), ("BYE", "two")] and responses(out) == []
    out = answer(core, call.request, 200, A, 0.3, tag="one")  # the winner's 2xx again: ACK again
    assert [(t.dest, t.message.method) for t in sent(out)] == [(A, "ACK")] and responses(out) == []
    assert call.dialog.remote_tag == "one" and len(core.dialogs) == 1


def test_2xx_after_the_transaction_ended_is_acked_again_or_dropped() -> None:
    core = new_core()
    call, _ = core.send_request(invite(core), [A], 0.0)
    answer(core, call.request, 200, A, 0.1)
    assert call.dialog is not None
    core.send_ack(call.dialog.create_ack(call.request), A, 0.1, dialog=call.dialog)
    now, _ = run_timers(core, 100.0)  # Timer M and the INVITE record expire (RFC 6026 §8.4)
    assert core.next_timer() is None and len(core.layer) == 0
    out = answer(core, call.request, 200, A, now + 1)  # a late retransmission: a stray 2xx
    assert [(t.dest, t.message.method) for t in sent(out)] == [(A, "ACK")] and responses(out) == []
    stranger = make_response(call.request, 200, to_tag="x")
    stranger.headers.set("Call-ID", "unknown-call")
    out = core.receive(bytes(stranger), A, LOCAL, now + 2)
    assert sent(out) == [] and core.stats["stray_2xx_dropped"] == 1  # nothing to ACK it with


# ----------------------------------------------------------------------------- redaction


def test_redact_hides_credentials_and_keeps_the_rest() -> None:
    req = make_request(
        "INVITE", "sip:bob@example.com", from_="<sip:a@x>;tag=1", to="<sip:b@y>", call_id="c", cseq=1,
        via="SIP/2.0/UDP h;branch=z9hG4bKx",
        headers=[("Authorization", 'Digest username="alice", realm="r", nonce="n", uri="sip:b@y", '
                                   'response="6629fae49393a05397450978507c4ef1"'),
                 ("Proxy-Authorization", "Basic YWxpY2U6c2VjcmV0")],
    )  # fmt: skip
    out = redact(req)
    assert 'response="<redacted>"' in (out.headers.get("Authorization") or "")
    assert 'username="alice"' in (out.headers.get("Authorization") or "")
    assert out.headers.get("Proxy-Authorization") == "Basic <redacted>"
    assert "6629fae4" in (req.headers.get("Authorization") or "")  # the original is untouched
    assert b"6629fae4" not in bytes(out) and b"YWxpY2U6" not in bytes(out)
    assert parse_message(bytes(out)).call_id == "c"  # still a valid message for traces
    plain = make_response(req, 180)
    assert redact(plain) is plain
