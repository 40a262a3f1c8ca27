"""The two leg machines driven without I/O: a fake clock, inputs in, commands out."""

from __future__ import annotations

import pytest

from services.signaling.b2bua.carrier_fsm import CarrierLegMachine
from services.signaling.b2bua.carrier_fsm import Do as CDo
from services.signaling.b2bua.carrier_fsm import Input as CIn
from services.signaling.b2bua.carrier_fsm import State as CState
from services.signaling.b2bua.client_fsm import CANCEL_GRACE, ClientLegMachine, Do, Input, State
from services.signaling.b2bua.policy import Attempt, Result, attempt
from services.signaling.errors import LegStateError

A, B = "sip:100@a.example", "sip:100@b.example"


def dialling(*targets: str, ring_timeout: float = 20.0) -> ClientLegMachine:
    """A client leg whose first target's INVITE went out at t=0."""
    m = ClientLegMachine(list(targets), ring_timeout)
    assert m.handle(Input.START, 0.0) == [Do.DIAL]
    assert m.handle(Input.DIALED, 0.0) == []
    assert m.state is State.CALLING and m.next_timer() == ring_timeout
    return m


def failure(target: str, status: int, result: Result) -> Attempt:
    return attempt(target, result, status, "failed")


# -- the client leg


def test_ring_timeout_after_ringing_cancels_then_dials_the_next_target() -> None:
    m = dialling(A, B)
    m.handle(Input.RECV_1XX, 1.0)
    assert m.handle_timer(19.9) == []  # not yet
    assert m.handle_timer(20.0) == [Do.RING_TIMEOUT_EVENT, Do.SEND_CANCEL]
    assert m.state is State.CANCELLING and m.reason == (487, "ring timeout")
    # The INVITE's 487 to our CANCEL: on to the next target, no second CANCEL.
    assert m.handle(Input.FINAL_STOP, 20.1, failure(A, 487, Result.CANCELED)) == [Do.FAILOVER, Do.DIAL]
    assert m.state is State.RESOLVING and m.target == B
    assert m.attempts == [attempt(A, Result.NO_ANSWER, reason="ring timeout")]
    assert m.next_timer() is None  # the first target's deadlines are gone
    m.handle(Input.DIALED, 20.2)
    assert m.next_timer() == pytest.approx(40.2)  # the ring timeout is per target


def test_ring_timeout_without_any_provisional_moves_on_without_cancel() -> None:
    """§9.1: no CANCEL before a provisional response; the INVITE is abandoned."""
    m = dialling(A, B, ring_timeout=5.0)
    effects = m.handle_timer(5.0)
    assert Do.SEND_CANCEL not in effects
    assert effects == [Do.RING_TIMEOUT_EVENT, Do.ABANDON, Do.FAILOVER, Do.DIAL]
    assert m.attempts == [attempt(A, Result.UNREACHABLE, reason="ring timeout")]


def test_ring_timeout_after_100_trying_cancels_but_did_not_ring() -> None:
    m = dialling(A, B, ring_timeout=5.0)
    m.handle(Input.RECV_100, 0.1)
    assert m.handle_timer(5.0) == [Do.RING_TIMEOUT_EVENT, Do.SEND_CANCEL]
    assert m.attempts[-1].result == Result.UNREACHABLE


def test_no_final_within_the_cancel_grace_moves_on() -> None:
    m = dialling(A, B)
    m.handle(Input.RECV_1XX, 1.0)
    m.handle_timer(20.0)
    assert m.next_timer() == 20.0 + CANCEL_GRACE
    assert m.handle_timer(20.0 + CANCEL_GRACE) == [Do.FAILOVER, Do.DIAL]


def test_a_2xx_that_crossed_our_cancel_is_acked_then_byed() -> None:
    """§9.1/§15: the 2xx after our CANCEL is ACKed, then BYE ends it; the next target rings."""
    m = dialling(A, B)
    m.handle(Input.RECV_1XX, 1.0)
    m.handle_timer(20.0)
    assert m.handle(Input.RECV_2XX, 20.05) == [Do.ACK, Do.BYE_ANSWER, Do.FAILOVER, Do.DIAL]
    assert m.reason == (487, "cancelled")


def test_carrier_cancel_crossing_a_2xx_acks_byes_and_tries_no_other_target() -> None:
    m = dialling(A, B)
    m.handle(Input.RECV_1XX, 1.0)
    assert m.handle(Input.PEER_CANCEL, 2.0) == [Do.SEND_CANCEL]
    assert m.reason == (487, "caller cancelled")
    assert m.handle(Input.RECV_2XX, 2.01) == [Do.ACK, Do.BYE_ANSWER, Do.REPORT_FAILED]
    assert m.state is State.FAILED
    assert m.attempts == [attempt(A, Result.CANCELED, 487, "caller cancelled")]


def test_carrier_cancel_then_the_clients_487_ends_the_leg() -> None:
    m = dialling(A, B)
    m.handle(Input.RECV_1XX, 1.0)
    m.handle(Input.PEER_CANCEL, 2.0)
    assert m.handle(Input.FINAL_STOP, 2.1, failure(A, 487, Result.CANCELED)) == [Do.REPORT_FAILED]
    assert [a.result for a in m.attempts] == [Result.CANCELED]


def test_a_failure_moves_on_but_busy_does_not() -> None:
    m = dialling(A, B)
    attempt = failure(A, 503, Result.SERVER_ERROR)
    assert m.final_input(attempt) is Input.FINAL_MOVE_ON
    assert m.handle(Input.FINAL_MOVE_ON, 0.5, attempt) == [Do.ATTEMPT_FAILED, Do.FAILOVER, Do.DIAL]
    m.handle(Input.DIALED, 0.6)
    busy = failure(B, 486, Result.BUSY)
    assert m.final_input(busy) is Input.FINAL_STOP
    assert m.handle(Input.FINAL_STOP, 1.0, busy) == [Do.ATTEMPT_FAILED, Do.REPORT_FAILED]
    assert [a.status for a in m.attempts] == [503, 486]


def test_the_last_target_failing_ends_the_leg() -> None:
    m = dialling(A)
    assert m.handle(Input.FINAL_MOVE_ON, 1.0, failure(A, 503, Result.SERVER_ERROR)) == [
        Do.ATTEMPT_FAILED, Do.REPORT_FAILED]
    assert m.state is State.FAILED


def test_early_media_then_failure_tries_no_other_target() -> None:
    """No crank-back: once the caller heard the callee's media, the call stays there."""
    m = dialling(A, B)
    assert m.handle(Input.RECV_1XX_SDP, 1.0) == [Do.PRACK, Do.RINGING, Do.EARLY_MEDIA, Do.PROGRESS]
    assert m.handle(Input.RECV_1XX_SDP, 1.5) == [Do.PRACK, Do.RINGING, Do.PROGRESS]  # the worker has it
    effects = m.handle(Input.FINAL_MOVE_ON, 3.0, failure(A, 503, Result.SERVER_ERROR))
    assert Do.DIAL not in effects and effects[-1] is Do.REPORT_FAILED
    assert m.attempts[0].early_media


def test_early_media_then_ring_timeout_cancels_and_tries_no_other_target() -> None:
    m = dialling(A, B)
    m.handle(Input.RECV_1XX_SDP, 1.0)
    assert m.handle_timer(20.0) == [Do.RING_TIMEOUT_EVENT, Do.SEND_CANCEL]
    assert m.state is State.CANCELLING_LAST
    assert m.handle(Input.FINAL_STOP, 20.1, failure(A, 487, Result.CANCELED)) == [Do.REPORT_FAILED]


def test_a_digest_challenge_keeps_the_targets_ring_deadline() -> None:
    m = dialling(A, B)
    m.handle(Input.RECV_1XX, 1.0)
    assert m.handle(Input.RECV_CHALLENGE, 2.0) == [Do.ANSWER_CHALLENGE]
    assert m.handle(Input.CHALLENGE_ANSWERED, 2.0) == []
    assert m.state is State.CALLING and m.next_timer() == 20.0


def test_an_answer_is_acked_checked_and_relayed() -> None:
    m = dialling(A, B)
    assert m.handle(Input.RECV_2XX, 1.0) == [Do.ACK, Do.CHECK_ANSWER]
    assert m.next_timer() is None  # no ring timeout once answered
    assert m.handle(Input.MEDIA_OK, 1.0) == [Do.ASK_PEER]
    assert m.handle(Input.PEER_ACCEPTED, 1.0) == [Do.REPORT_ANSWERED, Do.SEND_DIGITS]
    assert m.state is State.CONFIRMED


def test_an_answer_the_carrier_no_longer_wants_is_byed() -> None:
    m = dialling(A)
    m.handle(Input.RECV_2XX, 1.0)
    m.handle(Input.MEDIA_OK, 1.0)
    assert m.handle(Input.PEER_REFUSED, 1.0) == [Do.BYE_ANSWER, Do.REPORT_FAILED]
    assert m.reason == (487, "caller cancelled") and m.attempts[-1].result == Result.CANCELED


def answered_client() -> ClientLegMachine:
    m = dialling(A)
    m.handle(Input.RECV_2XX, 1.0)
    m.handle(Input.MEDIA_OK, 1.0)
    m.handle(Input.PEER_ACCEPTED, 1.0)
    return m


def test_our_bye_waits_for_its_answer_or_its_deadline() -> None:
    m = answered_client()
    assert m.handle(Input.HANG_UP, 10.0, (408, "session expired")) == [Do.SEND_BYE]
    assert m.reason == (408, "session expired") and m.state is State.TERMINATING
    assert m.handle_timer(15.0) == [] and m.state is State.TERMINATED


def test_client_bye_tells_the_carrier_side() -> None:
    m = answered_client()
    assert m.handle(Input.RECV_BYE, 10.0) == [Do.PEER_ENDED]
    assert m.state is State.TERMINATED


def test_bye_glare_on_the_client_leg() -> None:
    """Both BYE at once: the client's BYE (answered 200 by the runner) tells nobody more."""
    m = answered_client()
    m.handle(Input.HANG_UP, 10.0, (200, "normal clearing"))
    assert m.handle(Input.RECV_BYE, 10.01) == []
    assert m.handle(Input.BYE_DONE, 10.02) == [] and m.state is State.TERMINATED


def test_hang_up_while_ringing_cancels() -> None:
    m = dialling(A, B)
    m.handle(Input.RECV_1XX, 1.0)
    assert m.handle(Input.HANG_UP, 2.0, (503, "node shutting down")) == [Do.SEND_CANCEL]
    assert m.reason == (503, "node shutting down") and m.state is State.CANCELLING_LAST


def test_a_refresh_after_the_end_is_refused() -> None:
    m = answered_client()
    m.handle(Input.RECV_BYE, 10.0)
    assert m.handle(Input.RECV_REFRESH, 11.0) == [Do.REJECT_481]


def test_an_unexpected_input_raises() -> None:
    m = dialling(A)
    with pytest.raises(LegStateError):
        m.handle(Input.DIALED, 1.0)  # a second "INVITE sent" for one dial: a runner bug
    m = ClientLegMachine([A], 20.0)
    m.handle(Input.START, 0.0)
    with pytest.raises(LegStateError):
        m.handle(Input.PEER_ACCEPTED, 0.0)


PEER_INPUTS = [Input.RECV_100, Input.RECV_1XX, Input.RECV_1XX_SDP, Input.RECV_2XX, Input.RECV_CHALLENGE,
               Input.FINAL_MOVE_ON, Input.FINAL_STOP, Input.RECV_BYE, Input.RECV_REFRESH, Input.PEER_CANCEL,
               Input.HANG_UP]


@pytest.mark.parametrize("state", [s for s in State if s not in (
    State.RESOLVING, State.AUTHENTICATING, State.ANSWERING, State.NEXT_TARGET)])
def test_whatever_a_peer_sends_is_in_the_table(state: State) -> None:
    """Only a runner bug raises: every input a peer can cause is handled in every state
    an input can find the leg in."""
    from services.signaling.b2bua.client_fsm import TABLE
    assert set(PEER_INPUTS) <= set(TABLE[state])


# -- the carrier leg


def answered_carrier(session_expires: float | None = None, max_duration: float = 0.0) -> CarrierLegMachine:
    m = CarrierLegMachine(session_expires=session_expires, max_duration=max_duration)
    assert m.handle(CIn.DIALING, 0.0) == []
    assert m.handle(CIn.LEG_PROGRESS, 0.5, (180, False)) == [CDo.PROGRESS]
    assert m.handle(CIn.LEG_ANSWERED, 1.0) == [CDo.ANSWER]
    assert m.state is CState.CONFIRMED and m.answered
    return m


def test_session_expiry_byes_both_legs() -> None:
    """RFC 4028 §10: no refresh within the interval, BYE both ways at the expiry."""
    m = answered_carrier(session_expires=90)
    assert m.next_timer() == 91.0
    assert m.handle(CIn.CARRIER_REFRESH, 60.0) == [CDo.ANSWER_REFRESH]  # re-armed from the refresh
    assert m.handle_timer(91.0) == []
    assert m.handle_timer(150.0) == [CDo.SEND_BYE, CDo.TELL_LEG_BYE]
    assert m.end == ("session expired", "switchboard") and m.cause == 408
    assert m.state is CState.TERMINATING


def test_max_duration_byes_both_legs() -> None:
    m = answered_carrier(max_duration=3600.0)
    assert m.handle_timer(3601.0) == [CDo.SEND_BYE, CDo.TELL_LEG_BYE]
    assert m.end == ("max call duration", "switchboard")
    assert m.handle(CIn.BYE_DONE, 3601.1) == [] and m.state is CState.TERMINATED


def test_no_answer_to_our_bye_still_ends_the_call() -> None:
    m = answered_carrier()
    m.handle(CIn.HANG_UP, 10.0, (503, "node shutting down", "switchboard"))
    assert m.next_timer() == 15.0
    m.handle_timer(15.0)
    assert m.state is CState.TERMINATED


def test_carrier_cancel_answers_487_and_cancels_the_client_leg() -> None:
    m = CarrierLegMachine()
    m.handle(CIn.DIALING, 0.0)
    m.handle(CIn.LEG_PROGRESS, 0.5, (180, False))
    assert m.handle(CIn.CARRIER_CANCEL, 1.0) == [CDo.ANSWER_487, CDo.TELL_LEG_CANCEL]
    assert m.handle(CIn.LEG_ANSWERED, 1.01) == []  # too late: the runner tells the leg False
    assert m.handle(CIn.LEG_RESULT, 1.2, [attempt(A, Result.CANCELED, 487, "caller cancelled")]) == []
    assert m.state is CState.FAILED and m.canceled and not m.answered
    assert m.end == ("caller cancelled", "caller")
    assert m.final is None  # no second final response


def test_carrier_cancel_during_setup() -> None:
    m = CarrierLegMachine()
    assert m.handle(CIn.CARRIER_CANCEL, 0.1) == [CDo.ANSWER_487]
    assert m.state is CState.FAILED and m.canceled


def test_every_attempt_failed_gets_the_carrier_the_best_status() -> None:
    m = CarrierLegMachine()
    m.handle(CIn.DIALING, 0.0)
    attempts = [attempt(A, Result.UNREACHABLE), attempt(B, Result.BUSY, 486)]
    assert m.handle(CIn.LEG_RESULT, 3.0, attempts) == [CDo.REJECT]
    assert m.final == (486, "Busy Here", None, [])


def test_setup_failure_rejects_with_its_status() -> None:
    m = CarrierLegMachine()
    assert m.handle(CIn.SETUP_FAILED, 0.1, (422, "Session Interval Too Small", None, [("Min-SE", "90")])) == [
        CDo.REJECT]
    assert m.final == (422, "Session Interval Too Small", None, [("Min-SE", "90")])


def test_a_bug_during_setup_answers_500_and_ends_the_leg() -> None:
    m = CarrierLegMachine()
    m.handle(CIn.DIALING, 0.0)
    assert m.handle(CIn.CRASH, 0.1, (500, "internal error: KeyError", None, [])) == [CDo.ABANDON_LEG, CDo.REJECT]
    assert m.final == (500, "internal error: KeyError", None, []) and m.state is CState.FAILED


def test_bye_glare_ends_the_call_once() -> None:
    """Client and carrier BYE at once: each BYE is answered (by the runners), the client's
    end is the one recorded, and the carrier's BYE changes nothing."""
    m = answered_carrier()
    assert m.handle(CIn.LEG_ENDED, 10.0, "normal clearing") == [CDo.SEND_BYE]
    assert m.handle(CIn.CARRIER_BYE, 10.01) == []
    assert m.handle(CIn.BYE_DONE, 10.02) == [] and m.state is CState.TERMINATED
    assert m.end == ("normal clearing", "callee")
    assert m.handle(CIn.LEG_ENDED, 10.03) == []  # late news from the client leg


def test_carrier_bye_ends_both() -> None:
    m = answered_carrier()
    assert m.handle(CIn.CARRIER_BYE, 5.0) == [CDo.TELL_LEG_BYE]
    assert m.state is CState.TERMINATED and m.end == ("normal clearing", "caller")


def test_media_timeout_only_ends_a_connected_call() -> None:
    m = CarrierLegMachine()
    m.handle(CIn.DIALING, 0.0)
    assert m.handle(CIn.MEDIA_TIMEOUT, 1.0) == [] and m.state is CState.PROCEEDING
    m = answered_carrier()
    assert m.handle(CIn.MEDIA_TIMEOUT, 5.0) == [CDo.SEND_BYE, CDo.TELL_LEG_BYE]


def test_carrier_unexpected_input_raises() -> None:
    m = answered_carrier()
    with pytest.raises(LegStateError):
        m.handle(CIn.SETUP_FAILED, 2.0, (500, "late", None, []))


def test_a_remote_legs_ringing_that_overtakes_the_originate_reply_is_relayed() -> None:
    """Cross-region: the other node's 180 arrives before its answer to our order (DIALING).
    It was absorbed once, the carrier never heard a 180 and never sent its CANCEL."""
    m = CarrierLegMachine()
    assert m.handle(CIn.LEG_PROGRESS, 0.1, (180, False)) == [CDo.PROGRESS]
    assert m.state is CState.PROCEEDING
    assert m.handle(CIn.DIALING, 0.2) == []  # late, and harmless
    assert m.handle(CIn.CARRIER_CANCEL, 1.0) == [CDo.ANSWER_487, CDo.TELL_LEG_CANCEL]


def test_a_remote_legs_answer_before_the_originate_reply_connects_the_call() -> None:
    m = CarrierLegMachine()
    assert m.handle(CIn.LEG_ANSWERED, 0.3) == [CDo.ANSWER]
    assert m.state is CState.CONFIRMED and m.answered
    assert m.handle(CIn.DIALING, 0.4) == [] and m.state is CState.CONFIRMED
