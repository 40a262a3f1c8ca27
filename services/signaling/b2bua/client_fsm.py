"""The client leg (B) as a table-driven, sans-IO state machine.

One leg dials its targets in turn. Per target::

    RESOLVING -> CALLING -> TRYING (100) -> PROCEEDING (ringing) -> EARLY (early media)
          \\          \\ 401/407: AUTHENTICATING -> CALLING (same ring deadline)
           \\-> ANSWERING (2xx: ACK, check the SDP, ask the carrier's side) -> CONFIRMED
    ring deadline: CANCEL (TRYING/PROCEEDING), or no CANCEL at all before any 1xx (CALLING,
    RFC 3261 §9.1), then CANCELLING until the final response or the CANCEL grace;
    a failure the policy moves on from: NEXT_TARGET, a transient state that dials the next
    target or ends in FAILED when none is left or early media flowed (no crank-back).

Answered: CONFIRMED -> TERMINATING (our BYE, until its answer or the BYE deadline) ->
TERMINATED, or CONFIRMED -> TERMINATED on the client's BYE. Both BYEs at once (glare): each
is answered 200, and the carrier's side is told nothing more.

The runner (``client_leg.py``) feeds the inputs and carries out the commands; it serialises
the inputs, so the follow-up of a command (DIALED after DIAL, MEDIA_OK after CHECK_ANSWER)
is fed before any other input: RESOLVING, AUTHENTICATING and ANSWERING only list those."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence

from .fsm import Machine
from .policy import MOVE_ON, Attempt, Result, attempt

CANCEL_GRACE = 5.0  # seconds we wait for the final response after our CANCEL
BYE_WAIT = 5.0  # seconds we wait for the answer to our BYE


class State(enum.Enum):
    IDLE = "idle"
    RESOLVING = "resolving"  # the target's offer and RFC 3263 candidates; the INVITE goes out
    CALLING = "calling"  # INVITE sent, no response yet: nothing to CANCEL (§9.1)
    TRYING = "trying"  # 100 Trying
    PROCEEDING = "proceeding"  # ringing
    EARLY = "early"  # early media through the worker
    AUTHENTICATING = "authenticating"  # a digest challenge being answered (§22.2)
    CANCELLING = "cancelling"  # ring timeout: CANCEL sent, then the next target
    CANCELLING_LAST = "cancelling-last"  # CANCEL sent, no next target (carrier gone, early media)
    NEXT_TARGET = "next-target"  # transient
    ANSWERING = "answering"  # 2xx ACKed; its SDP and the carrier's side decide
    CONFIRMED = "confirmed"
    TERMINATING = "terminating"  # our BYE sent
    TERMINATED = "terminated"  # answered, then ended
    FAILED = "failed"  # no target answered: the attempts are the outcome


class Input(enum.Enum):
    START = "start"
    # from the runner
    DIALED = "the INVITE went out"
    UNUSABLE = "the target cannot be dialled"  # payload: the attempt
    CHALLENGE_ANSWERED = "INVITE with credentials sent"
    AUTH_FAILED = "cannot answer the challenge"  # payload: the attempt
    MEDIA_OK = "the answer's SDP is usable and the worker has it"
    MEDIA_BAD = "the answer's SDP is unusable"  # payload: the attempt
    MEDIA_ERROR = "the worker did not take the answer"
    PEER_ACCEPTED = "the carrier's side took the answer"
    PEER_REFUSED = "the carrier's side is gone"
    BYE_DONE = "our BYE was answered"
    # from the client (SIP)
    RECV_100 = "100 Trying"
    RECV_1XX = "ringing"
    RECV_1XX_SDP = "1xx with usable SDP"
    RECV_2XX = "2xx"
    RECV_CHALLENGE = "401/407"
    FINAL_MOVE_ON = "final failure, next target"  # payload: the attempt
    FINAL_STOP = "final failure, stop"  # busy, decline, 487 (payload: the attempt)
    RECV_BYE = "BYE"
    RECV_REFRESH = "re-INVITE or UPDATE"
    # from the carrier's side
    PEER_CANCEL = "the carrier gave up"
    HANG_UP = "end the call"  # payload: (cause, reason)
    # deadlines
    RING_TIMEOUT = "ring timeout"
    CANCEL_GRACE = "no final response after our CANCEL"
    BYE_TIMEOUT = "no answer to our BYE"
    # internal: NEXT_TARGET resolved
    MORE_TARGETS = "a target is left"
    NO_MORE_TARGETS = "no target left"


class Do(enum.Enum):
    # commands for the runner
    DIAL = "dial the current target"
    ABANDON = "abandon the INVITE (the endpoint CANCELs it only if a 1xx comes, §9.1)"
    SEND_CANCEL = "CANCEL the INVITE"
    PRACK = "PRACK a reliable provisional (RFC 3262)"
    RINGING = "ringing event"
    EARLY_MEDIA = "early media to the worker"
    PROGRESS = "tell the carrier's side"
    ANSWER_CHALLENGE = "resend the INVITE with credentials"
    AUTH_FAILED_EVENT = "auth_failed event"
    ATTEMPT_FAILED = "attempt_failed event"
    RING_TIMEOUT_EVENT = "ring_timeout event"
    FAILOVER = "count a move to the next target"
    ACK = "ACK the 2xx"
    CHECK_ANSWER = "check the answer's SDP, update the worker"
    ASK_PEER = "tell the carrier's side we are answered"
    BYE_ANSWER = "BYE a 2xx we do not keep (§15)"
    SEND_BYE = "BYE the client"
    SEND_DIGITS = "send the configured digits"
    PEER_ENDED = "tell the carrier's side the client hung up"
    ANSWER_REFRESH = "answer the re-INVITE/UPDATE"
    REJECT_481 = "481 to an in-dialog request"
    REPORT_ANSWERED = "the leg's outcome: answered"
    REPORT_FAILED = "the leg's outcome: the attempts"
    RAISE = "the leg's outcome: a setup error"
    # internal
    ARM_RING = "+ring deadline"
    STOP_RING = "-ring deadline"
    ARM_GRACE = "+CANCEL grace"
    ARM_BYE = "+BYE deadline"
    CLEAR = "-every deadline"
    RECORD = "+record the input's attempt"
    RECORD_FINAL = "+record the final response's attempt (with the early media flag)"
    RECORD_RING_TIMEOUT = "+record a ring timeout"
    RECORD_CANCELED = "+record a cancelled attempt"
    SET_EARLY = "+early media flowed"
    REASON_RING_TIMEOUT = "+reason: ring timeout"
    REASON_CALLER = "+reason: caller cancelled"
    REASON_LATE = "+reason: a 2xx after our CANCEL"
    REASON_GIVEN = "+reason: the input's"
    REASON_MEDIA_BAD = "+reason: unacceptable answer"
    REASON_MEDIA_ERROR = "+reason: media unavailable"


S, In = State, Input
Row = dict[Input, tuple[State, tuple[Do, ...]]]

_RINGING = (Do.PRACK, Do.RINGING, Do.PROGRESS)
_EARLY = (Do.PRACK, Do.RINGING, Do.SET_EARLY, Do.EARLY_MEDIA, Do.PROGRESS)
_ANSWER = (Do.STOP_RING, Do.ACK, Do.CHECK_ANSWER)
_CANCEL = (Do.STOP_RING, Do.SEND_CANCEL, Do.ARM_GRACE)
_BY_CARRIER = (Do.RECORD_CANCELED, Do.REASON_CALLER, *_CANCEL)
_BY_US = (Do.RECORD_CANCELED, Do.REASON_GIVEN, *_CANCEL)
_RING_TIMEOUT = (Do.RECORD_RING_TIMEOUT, Do.REASON_RING_TIMEOUT, Do.RING_TIMEOUT_EVENT)
_FAILED = (Do.RECORD_FINAL, Do.ATTEMPT_FAILED)


def _waiting(state: State, *, early: bool) -> Row:
    """A target's INVITE waiting for its final response."""
    give_up = S.FAILED if early else S.NEXT_TARGET  # no crank-back after early media
    row: Row = {
        In.RECV_100: (S.TRYING if state is S.CALLING else state, ()),
        In.RECV_1XX: (S.EARLY if early else S.PROCEEDING, _RINGING),
        In.RECV_1XX_SDP: (S.EARLY, _RINGING if early else _EARLY),
        In.RECV_2XX: (S.ANSWERING, _ANSWER),
        In.RECV_CHALLENGE: (S.AUTHENTICATING, (Do.ANSWER_CHALLENGE,)),
        In.FINAL_MOVE_ON: (give_up, _FAILED + ((Do.REPORT_FAILED,) if early else ())),
        In.FINAL_STOP: (S.FAILED, (*_FAILED, Do.REPORT_FAILED)),
        In.PEER_CANCEL: (S.CANCELLING_LAST, _BY_CARRIER),
        In.HANG_UP: (S.CANCELLING_LAST, _BY_US),
    }
    if state is S.CALLING:  # §9.1: no CANCEL before a provisional response
        row[In.RING_TIMEOUT] = (S.NEXT_TARGET, (*_RING_TIMEOUT, Do.ABANDON))
    else:
        row[In.RING_TIMEOUT] = (S.CANCELLING_LAST if early else S.CANCELLING, (*_RING_TIMEOUT, *_CANCEL))
    return row


def _cancelling(then: State) -> Row:
    done = (Do.REPORT_FAILED,) if then is S.FAILED else ()
    return {
        In.RECV_100: (S.CANCELLING if then is S.NEXT_TARGET else S.CANCELLING_LAST, ()),
        In.RECV_1XX: (S.CANCELLING if then is S.NEXT_TARGET else S.CANCELLING_LAST, ()),
        In.RECV_1XX_SDP: (S.CANCELLING if then is S.NEXT_TARGET else S.CANCELLING_LAST, ()),
        # A 2xx that crossed our CANCEL: ACK it, then BYE it (§9.1, §15).
        In.RECV_2XX: (then, (Do.REASON_LATE, Do.ACK, Do.BYE_ANSWER, *done)),
        In.RECV_CHALLENGE: (then, done),
        In.FINAL_MOVE_ON: (then, done),
        In.FINAL_STOP: (then, done),
        In.CANCEL_GRACE: (then, done),
    }


TABLE: Mapping[State, Row] = {
    S.IDLE: {
        In.START: (S.RESOLVING, (Do.DIAL,)),
        In.PEER_CANCEL: (S.FAILED, (Do.REPORT_FAILED,)),
        In.HANG_UP: (S.FAILED, (Do.REPORT_FAILED,)),
    },
    S.RESOLVING: {
        In.DIALED: (S.CALLING, (Do.ARM_RING,)),
        In.UNUSABLE: (S.NEXT_TARGET, (Do.RECORD,)),
    },
    S.CALLING: _waiting(S.CALLING, early=False),
    S.TRYING: _waiting(S.TRYING, early=False),
    S.PROCEEDING: _waiting(S.PROCEEDING, early=False),
    S.EARLY: _waiting(S.EARLY, early=True),
    S.AUTHENTICATING: {
        In.CHALLENGE_ANSWERED: (S.CALLING, ()),  # the same ring deadline (§22.2: a new transaction)
        In.AUTH_FAILED: (S.NEXT_TARGET, (Do.RECORD, Do.AUTH_FAILED_EVENT)),
    },
    S.CANCELLING: {
        **_cancelling(S.NEXT_TARGET),
        In.PEER_CANCEL: (S.CANCELLING_LAST, ()),
        In.HANG_UP: (S.CANCELLING_LAST, ()),
    },
    S.CANCELLING_LAST: _cancelling(S.FAILED),
    S.NEXT_TARGET: {
        In.MORE_TARGETS: (S.RESOLVING, (Do.CLEAR, Do.FAILOVER, Do.DIAL)),
        In.NO_MORE_TARGETS: (S.FAILED, (Do.REPORT_FAILED,)),
    },
    S.ANSWERING: {
        In.MEDIA_OK: (S.ANSWERING, (Do.ASK_PEER,)),
        In.MEDIA_BAD: (S.NEXT_TARGET, (Do.RECORD, Do.REASON_MEDIA_BAD, Do.BYE_ANSWER, Do.ATTEMPT_FAILED)),
        In.MEDIA_ERROR: (S.TERMINATING, (Do.REASON_MEDIA_ERROR, Do.SEND_BYE, Do.ARM_BYE, Do.RAISE)),
        In.PEER_ACCEPTED: (S.CONFIRMED, (Do.REPORT_ANSWERED, Do.SEND_DIGITS)),
        In.PEER_REFUSED: (S.FAILED, (Do.RECORD_CANCELED, Do.REASON_CALLER, Do.BYE_ANSWER, Do.REPORT_FAILED)),
    },
    S.CONFIRMED: {
        In.HANG_UP: (S.TERMINATING, (Do.REASON_GIVEN, Do.SEND_BYE, Do.ARM_BYE)),
        In.RECV_BYE: (S.TERMINATED, (Do.PEER_ENDED,)),
        In.RECV_REFRESH: (S.CONFIRMED, (Do.ANSWER_REFRESH,)),
    },
    S.TERMINATING: {
        In.BYE_DONE: (S.TERMINATED, ()),
        In.BYE_TIMEOUT: (S.TERMINATED, ()),
        In.RECV_BYE: (S.TERMINATING, ()),  # glare: answered 200, the carrier's side knows already
    },
    S.TERMINATED: {In.RECV_REFRESH: (S.TERMINATED, (Do.REJECT_481,))},
    S.FAILED: {In.RECV_REFRESH: (S.FAILED, (Do.REJECT_481,))},
}

# What a peer (either side) can send in any state: absorbed where the table is silent. A
# request among them is still answered by the runner (BYE 200 at once, a refresh 481).
_NOISE = (In.RECV_100, In.RECV_1XX, In.RECV_1XX_SDP, In.RECV_2XX, In.RECV_CHALLENGE, In.FINAL_MOVE_ON,
          In.FINAL_STOP, In.RECV_BYE, In.RECV_REFRESH, In.PEER_CANCEL, In.HANG_UP, In.BYE_DONE)
_SERIALISED = (S.RESOLVING, S.AUTHENTICATING, S.ANSWERING, S.NEXT_TARGET)
for _state, _row in TABLE.items():
    if _state in _SERIALISED:
        continue
    for _inp in _NOISE:
        _row.setdefault(_inp, (_state, (Do.ANSWER_REFRESH,) if _inp is In.RECV_REFRESH else ()))

_TIMERS = {"ring": In.RING_TIMEOUT, "grace": In.CANCEL_GRACE, "bye": In.BYE_TIMEOUT}


class ClientLegMachine(Machine[State, Input, Do]):
    """The client leg's state over its targets. ``attempts`` is the outcome when FAILED."""

    TABLE = TABLE  # type: ignore[assignment]
    TIMERS = _TIMERS
    TERMINAL = frozenset({S.TERMINATED, S.FAILED})

    def __init__(self, targets: Sequence[str], ring_timeout: float) -> None:
        super().__init__(S.IDLE)
        if not targets:
            raise ValueError("a client leg needs a target")  # routing answers 480 before
        self.targets = list(targets)
        self.ring_timeout = ring_timeout
        self.index = 0
        self.attempts: list[Attempt] = []
        self.early_media = False
        self.reason: tuple[int, str] = (487, "caller cancelled")  # of our CANCEL or BYE
        self.rang = False  # the target of the last ring timeout had rung

    @property
    def target(self) -> str:
        return self.targets[self.index]

    @staticmethod
    def final_input(attempt: Attempt) -> Input:
        """FINAL_MOVE_ON or FINAL_STOP: the policy's rule as the table's input."""
        return In.FINAL_MOVE_ON if attempt.result in MOVE_ON else In.FINAL_STOP

    def _after(self, now: float) -> list[Do]:
        if self.state is not S.NEXT_TARGET:
            return []
        if self.early_media or self.index + 1 >= len(self.targets):
            return self.handle(In.NO_MORE_TARGETS, now)
        self.index += 1
        return self.handle(In.MORE_TARGETS, now)

    def _internal(self, do: Do, now: float) -> bool:
        if do is Do.ARM_RING:
            self.arm("ring", now, self.ring_timeout)
        elif do is Do.STOP_RING:
            self.stop("ring")
        elif do is Do.ARM_GRACE:
            self.arm("grace", now, CANCEL_GRACE)
        elif do is Do.ARM_BYE:
            self.arm("bye", now, BYE_WAIT)
        elif do is Do.CLEAR:
            self.deadlines.clear()
        elif do is Do.RECORD:
            assert isinstance(self.payload, Attempt)
            self.attempts.append(self.payload)
        elif do is Do.RECORD_FINAL:
            assert isinstance(self.payload, Attempt)
            self.attempts.append(self.payload.model_copy(update={"early_media": self.early_media}))
        elif do is Do.RECORD_RING_TIMEOUT:
            self.rang = self.previous in (S.PROCEEDING, S.EARLY)
            self.attempts.append(attempt(self.target, Result.NO_ANSWER if self.rang else Result.UNREACHABLE,
                                         reason="ring timeout", early_media=self.early_media))
        elif do is Do.RECORD_CANCELED:
            self.attempts.append(attempt(self.target, Result.CANCELED, 487, "caller cancelled"))
        elif do is Do.SET_EARLY:
            self.early_media = True
        elif do is Do.REASON_RING_TIMEOUT:
            self.reason = (487, "ring timeout")
        elif do is Do.REASON_CALLER:
            self.reason = (487, "caller cancelled")
        elif do is Do.REASON_LATE:
            self.reason = (487, "cancelled")
        elif do is Do.REASON_GIVEN:
            cause, text = self.payload if isinstance(self.payload, tuple) else (200, "normal clearing")
            self.reason = (int(cause), str(text))
        elif do is Do.REASON_MEDIA_BAD:
            why = self.payload.reason if isinstance(self.payload, Attempt) else ""
            self.reason = (488, f"unacceptable answer: {why}")
        elif do is Do.REASON_MEDIA_ERROR:
            self.reason = (503, "media unavailable")
        else:
            return False
        return True

