"""The carrier's leg (A) as a table-driven, sans-IO state machine: we are its UAS.

    TRYING (100 sent; trunk, routing, media) -> PROCEEDING (client leg dialling; 180 relayed)
        -> EARLY (183 with our SDP) -> CONFIRMED (200 sent) -> TERMINATING (our BYE) -> TERMINATED
    a setup failure or every attempt failed: FAILED (the final response, RFC 3326 Reason)
    the carrier's CANCEL: CANCELLING (the client leg is cancelled; the carrier has its 487)
        -> FAILED once the client leg is done

Deadlines: session expiry (RFC 4028 §10: no refresh within the interval, BYE both legs),
the max call duration (BYE both legs) and the wait for our BYE's answer. Both BYEs at once
(glare): each is answered, and the call ends once (one end record)."""

from __future__ import annotations

import enum
from collections.abc import Mapping

from .fsm import Machine
from .policy import Attempt, Result, attempt, carrier_status

BYE_WAIT = 5.0


class State(enum.Enum):
    TRYING = "trying"
    PROCEEDING = "proceeding"
    EARLY = "early"
    CANCELLING = "cancelling"
    CONFIRMED = "confirmed"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    FAILED = "failed"


class Input(enum.Enum):
    # from the setup
    DIALING = "the client leg dials"
    SETUP_FAILED = "the call cannot proceed"  # payload: (status, reason, retry_after, headers)
    CRASH = "a bug"  # payload: (500, reason, None, [])
    # from the client leg
    LEG_PROGRESS = "the client rings"  # payload: status
    LEG_EARLY = "early media from the client"  # payload: status
    LEG_ANSWERED = "the client answered"
    LEG_RESULT = "every target failed"  # payload: the attempts (None when answered)
    LEG_ERROR = "the client leg failed"  # payload: (status, reason, retry_after, headers)
    LEG_ENDED = "the client hung up"
    # from the carrier (SIP)
    CARRIER_CANCEL = "CANCEL"
    CARRIER_BYE = "BYE"
    CARRIER_ACK = "ACK"
    CARRIER_REFRESH = "re-INVITE or UPDATE"
    # from us
    HANG_UP = "end the call"  # payload: (cause, reason, by)
    MEDIA_TIMEOUT = "no RTP"
    BYE_DONE = "our BYE was answered"
    # deadlines
    SESSION_EXPIRED = "session expired"
    MAX_DURATION = "max call duration"
    BYE_TIMEOUT = "no answer to our BYE"


class Do(enum.Enum):
    # commands
    PROGRESS = "180, or 183 with our SDP"
    ANSWER = "200 with our SDP"
    REJECT = "the final response and the failed event"
    REJECT_481 = "481 to an in-dialog request"
    ANSWER_487 = "487 to the INVITE after its CANCEL (§9.2; the endpoint's auto 487 may have sent it)"
    TELL_LEG_CANCEL = "cancel the client leg"
    TELL_LEG_BYE = "end the client leg"
    ABANDON_LEG = "end the client leg, the call failed on our side"
    SEND_BYE = "BYE the carrier"
    TAKE_ACK_ANSWER = "the answer in the ACK (delayed offer)"
    ANSWER_REFRESH = "answer the re-INVITE/UPDATE"
    # internal
    ARM_SESSION = "+session expiry"
    ARM_MAX = "+max call duration"
    ARM_BYE = "+BYE deadline"
    FINAL_GIVEN = "+final response: the input's"
    FINAL_ATTEMPTS = "+final response: from the attempts"
    RECORD_ATTEMPTS = "+record the client leg's attempts"
    RECORD_CANCELED = "+record the carrier's CANCEL"
    END_CALLER = "+ended by the caller"
    END_CALLEE = "+ended by the callee"
    END_GIVEN = "+ended as the input says"
    END_SESSION = "+ended: session expired"
    END_MAX = "+ended: max call duration"
    END_MEDIA = "+ended: media timeout"
    END_CRASH = "+ended: internal error"


S, In = State, Input
Row = dict[Input, tuple[State, tuple[Do, ...]]]

_BYE_BOTH = (Do.SEND_BYE, Do.TELL_LEG_BYE, Do.ARM_BYE)


def _ringing(state: State) -> Row:
    return {
        In.LEG_PROGRESS: (state, (Do.PROGRESS,)),
        In.LEG_EARLY: (S.EARLY, (Do.PROGRESS,)),
        In.LEG_ANSWERED: (S.CONFIRMED, (Do.ANSWER, Do.ARM_SESSION, Do.ARM_MAX)),
        In.LEG_RESULT: (S.FAILED, (Do.RECORD_ATTEMPTS, Do.FINAL_ATTEMPTS, Do.REJECT)),
        In.LEG_ERROR: (S.FAILED, (Do.FINAL_GIVEN, Do.ABANDON_LEG, Do.REJECT)),
        In.SETUP_FAILED: (S.FAILED, (Do.FINAL_GIVEN, Do.ABANDON_LEG, Do.REJECT)),
        In.CRASH: (S.FAILED, (Do.FINAL_GIVEN, Do.ABANDON_LEG, Do.REJECT)),
        In.CARRIER_CANCEL: (S.CANCELLING, (Do.RECORD_CANCELED, Do.ANSWER_487, Do.TELL_LEG_CANCEL)),
        In.HANG_UP: (S.FAILED, (Do.FINAL_GIVEN, Do.ABANDON_LEG, Do.REJECT)),
        In.CARRIER_REFRESH: (state, (Do.ANSWER_REFRESH,)),
    }


TABLE: Mapping[State, Row] = {
    S.TRYING: {
        In.DIALING: (S.PROCEEDING, ()),
        # A client leg in another region reports over the bus, and its first reports can
        # overtake its node's reply to our order: they count as if DIALING had come first.
        **{inp: _ringing(S.PROCEEDING)[inp] for inp in (In.LEG_PROGRESS, In.LEG_EARLY, In.LEG_ANSWERED,
                                                           In.LEG_RESULT, In.LEG_ERROR)},
        In.SETUP_FAILED: (S.FAILED, (Do.FINAL_GIVEN, Do.REJECT)),
        In.CRASH: (S.FAILED, (Do.FINAL_GIVEN, Do.REJECT)),
        In.CARRIER_CANCEL: (S.FAILED, (Do.RECORD_CANCELED, Do.ANSWER_487)),
        In.HANG_UP: (S.FAILED, (Do.FINAL_GIVEN, Do.REJECT)),
        In.CARRIER_REFRESH: (S.TRYING, (Do.REJECT_481,)),
    },
    S.PROCEEDING: _ringing(S.PROCEEDING),
    S.EARLY: _ringing(S.EARLY),
    S.CANCELLING: {
        In.LEG_RESULT: (S.FAILED, (Do.RECORD_ATTEMPTS, Do.RECORD_CANCELED)),
        In.LEG_ERROR: (S.FAILED, (Do.RECORD_CANCELED,)),
        In.CRASH: (S.FAILED, (Do.ABANDON_LEG,)),
        In.CARRIER_REFRESH: (S.CANCELLING, (Do.REJECT_481,)),
    },
    S.CONFIRMED: {
        In.CARRIER_BYE: (S.TERMINATED, (Do.END_CALLER, Do.TELL_LEG_BYE)),
        In.LEG_ENDED: (S.TERMINATING, (Do.END_CALLEE, Do.SEND_BYE, Do.ARM_BYE)),
        In.HANG_UP: (S.TERMINATING, (Do.END_GIVEN, *_BYE_BOTH)),
        In.SESSION_EXPIRED: (S.TERMINATING, (Do.END_SESSION, *_BYE_BOTH)),  # RFC 4028 §10
        In.MAX_DURATION: (S.TERMINATING, (Do.END_MAX, *_BYE_BOTH)),
        In.MEDIA_TIMEOUT: (S.TERMINATING, (Do.END_MEDIA, *_BYE_BOTH)),
        In.CRASH: (S.TERMINATING, (Do.END_CRASH, *_BYE_BOTH)),
        In.CARRIER_ACK: (S.CONFIRMED, (Do.TAKE_ACK_ANSWER,)),
        # A refresh re-arms the session timer (RFC 4028 §10) whatever its SDP says.
        In.CARRIER_REFRESH: (S.CONFIRMED, (Do.ARM_SESSION, Do.ANSWER_REFRESH)),
    },
    S.TERMINATING: {
        In.BYE_DONE: (S.TERMINATED, ()),
        In.BYE_TIMEOUT: (S.TERMINATED, ()),
        In.CARRIER_BYE: (S.TERMINATING, ()),  # glare: answered 200, the call ends once
        In.CRASH: (S.TERMINATED, ()),
        In.CARRIER_REFRESH: (S.TERMINATING, (Do.ANSWER_REFRESH,)),
    },
    S.TERMINATED: {In.CARRIER_REFRESH: (S.TERMINATED, (Do.REJECT_481,))},
    S.FAILED: {In.CARRIER_REFRESH: (S.FAILED, (Do.REJECT_481,))},
}

# What either side can send at any time: absorbed where the table is silent (a request
# among them is still answered by the runner: BYE 200 at once, ACK needs no answer).
# DIALING comes late when a remote leg's reports overtook its node's reply (see TRYING).
_NOISE = (In.DIALING, In.LEG_PROGRESS, In.LEG_EARLY, In.LEG_ANSWERED, In.LEG_RESULT, In.LEG_ERROR, In.LEG_ENDED,
          In.CARRIER_CANCEL, In.CARRIER_BYE, In.CARRIER_ACK, In.HANG_UP, In.MEDIA_TIMEOUT, In.BYE_DONE, In.CRASH)
for _state, _row in TABLE.items():
    for _inp in _NOISE:
        _row.setdefault(_inp, (_state, ()))


class CarrierLegMachine(Machine[State, Input, Do]):
    """The carrier's leg. After the end: ``answered``, ``attempts``, ``end`` (reason, by)
    and, when FAILED with a response to send, ``final`` (status, reason, retry_after, headers)."""

    TABLE = TABLE  # type: ignore[assignment]
    TIMERS = {"session": In.SESSION_EXPIRED, "max": In.MAX_DURATION, "bye": In.BYE_TIMEOUT}
    TERMINAL = frozenset({S.TERMINATED, S.FAILED})

    def __init__(self, *, session_expires: float | None = None, max_duration: float = 0.0) -> None:
        super().__init__(S.TRYING)
        self.session_expires = session_expires
        self.max_duration = max_duration
        self.answered = False
        self.attempts: list[Attempt] = []
        self.end: tuple[str, str] = ("", "")  # (reason, by)
        self.cause = 200  # of our BYE (RFC 3326)
        self.final: tuple[int, str, int | None, list[tuple[str, str]]] | None = None

    @property
    def canceled(self) -> bool:
        return any(a.result == Result.CANCELED for a in self.attempts)

    def _internal(self, do: Do, now: float) -> bool:  # noqa: C901 - one branch per effect
        p = self.payload
        if do is Do.ARM_SESSION:
            if self.session_expires:
                self.arm("session", now, self.session_expires)
        elif do is Do.ARM_MAX:
            if self.max_duration > 0:
                self.arm("max", now, self.max_duration)
        elif do is Do.ARM_BYE:
            self.arm("bye", now, BYE_WAIT)
        elif do is Do.FINAL_GIVEN:
            if isinstance(p, tuple) and len(p) == 4:  # (status, reason, retry_after, headers)
                self.final = (int(p[0]), str(p[1]), p[2], list(p[3]))
            elif isinstance(p, tuple):  # HANG_UP: (cause, reason, by)
                self.final = (int(p[0]), str(p[1]), None, [])
            self.end = (self.final[1], self.end[1]) if self.final else self.end
        elif do is Do.FINAL_ATTEMPTS:
            status, reason = carrier_status(self.attempts)
            last = self.attempts[-1] if self.attempts else None
            retry = last.retry_after if last and status == 503 else None
            self.final = (status, reason, retry, [])
            self.end = (reason, "")
        elif do is Do.RECORD_ATTEMPTS:
            if isinstance(p, list):
                self.attempts.extend(p)
        elif do is Do.RECORD_CANCELED:
            if not self.canceled:
                self.attempts.append(attempt("", Result.CANCELED, 487, "caller cancelled"))
            self.end = ("caller cancelled", "caller")
        elif do is Do.END_CALLER:
            self.end = ("normal clearing", "caller")
        elif do is Do.END_CALLEE:
            self.end, self.cause = (str(p or "normal clearing"), "callee"), 200
        elif do is Do.END_GIVEN:
            assert isinstance(p, tuple)
            self.cause, self.end = int(p[0]), (str(p[1]), str(p[2]))
        elif do is Do.END_SESSION:
            self.cause, self.end = 408, ("session expired", "switchboard")
        elif do is Do.END_MAX:
            self.cause, self.end = 200, ("max call duration", "switchboard")
        elif do is Do.END_MEDIA:
            self.cause, self.end = 408, ("media timeout", "switchboard")
        elif do is Do.END_CRASH:
            self.cause, self.end = 500, ("internal error", "switchboard")
        else:
            if do is Do.ANSWER:
                self.answered = True
            return False
        return True
