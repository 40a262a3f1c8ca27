"""SIP transactions, sans-IO: RFC 3261 §17 with the RFC 6026 corrections.

Four table-driven machines (transitions are data, as in h11's ``_state.py``):

* :class:`InviteClientTransaction` — Timers A, B, D; the ACK for a non-2xx final response
  is built and retransmitted here (§17.1.1.3); 2xx responses go up to the TU and the
  transaction waits in *Accepted* for Timer M to absorb nothing but pass forked/retransmitted
  2xx up (RFC 6026 §8.4).
* :class:`NonInviteClientTransaction` — Timers E, F, K (§17.1.2).
* :class:`InviteServerTransaction` — Timers G, H, I, plus *Accepted* and Timer L
  (RFC 6026 §7.1, §8.7): a 2xx moves to Accepted, where INVITE retransmissions are absorbed
  and the TU's 2xx retransmissions are sent.
* :class:`NonInviteServerTransaction` — Timer J (§17.2.2).

Nothing here does I/O. Every entry point takes ``now`` (seconds, a float from any monotonic
clock) and returns a list of *actions*: :class:`Send` (a message for the transport, with an
opaque destination chosen by the caller) and events for the TU. ``next_timer()`` gives the
earliest deadline and ``handle_timer(now)`` fires what is due. An input that the table does
not allow in the current state raises :class:`TransactionStateError` — every input a peer can
cause is in the table for every live state (absorbed when the RFC says so), so only a caller
bug (say, a second final response) raises.

:class:`TransactionLayer` owns all transactions of an endpoint: it matches responses to
client transactions (§17.1.3) and requests to server transactions (§17.2.3, including the
RFC 2543 fallback, ACK for non-2xx and CANCEL-to-INVITE per §9.2), absorbs retransmissions,
answers CANCEL and gives the earliest deadline over all transactions.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from .errors import SipParseError, TransactionStateError
from .headers import Reason
from .message import Request, Response, make_ack, make_cancel, make_response

__all__ = [
    "AckReceived",
    "Action",
    "CancelReceived",
    "ClientTransaction",
    "Do",
    "Input",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "RequestReceived",
    "ResponseReceived",
    "Send",
    "ServerTransaction",
    "State",
    "StrayResponse",
    "Timers",
    "Transaction",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimeout",
    "TransportFailure",
    "client_key",
    "server_key",
]

MAGIC_COOKIE = "z9hG4bK"


@dataclass(frozen=True)
class Timers:
    """RFC 3261 §17.1.1.1 / Table 4 timer values, in seconds.

    ``t1`` is the RTT estimate (default 500 ms), ``t2`` the cap on non-INVITE request and
    INVITE response retransmit intervals (4 s), ``t4`` how long a message stays in the
    network (5 s). ``d`` is Timer D for unreliable transports ("at least 32 s", §17.1.1.2).
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    d: float = 32.0

    @property
    def b(self) -> float:
        return 64 * self.t1  # also F, H, J, L, M

    def duration(self, name: str, reliable: bool) -> float:
        """Initial value of timer ``name`` (A..M). Over reliable transports the retransmit
        timers (A, E, G) are never started and the wait-for-retransmissions timers (D, I,
        J, K) are zero (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2)."""
        if name in ("A", "E", "G"):
            return self.t1
        if name in ("B", "F", "H", "L", "M"):
            return 64 * self.t1
        if reliable:
            return 0.0
        if name == "D":
            return self.d
        if name in ("I", "K"):
            return self.t4
        if name == "J":
            return 64 * self.t1
        raise ValueError(f"unknown timer {name!r}")


class State(enum.Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Input(enum.Enum):
    """What can happen to a transaction."""

    # from the peer
    RECV_1XX = "1xx received"
    RECV_2XX = "2xx received"
    RECV_FINAL = "300-699 received"  # for non-INVITE: any final 200-699
    RECV_REQUEST = "request retransmission"
    RECV_ACK = "ACK"
    # from the TU
    SEND_1XX = "1xx from TU"
    SEND_2XX = "2xx from TU"
    SEND_FINAL = "300-699 from TU"  # for non-INVITE: any final 200-699
    # timers and transport
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"
    TRANSPORT_ERROR = "transport error"


# Inputs a peer (or the network) can cause; every live state must list all that apply.
PEER_INPUTS_CLIENT = (Input.RECV_1XX, Input.RECV_2XX, Input.RECV_FINAL, Input.TRANSPORT_ERROR)
PEER_INPUTS_SERVER = (Input.RECV_REQUEST, Input.RECV_ACK, Input.TRANSPORT_ERROR)


class Do(enum.Enum):
    """Effects of a transition, run in order. ``start:X``/``stop:X``/``backoff:X`` act on
    timer X; the rest produce actions."""

    PASS_UP = "pass response up"
    SEND_ACK = "send ACK"  # INVITE client: ACK for a non-2xx final (§17.1.1.3)
    RETRANSMIT = "retransmit request"
    SEND_RESPONSE = "send the TU's response"
    RESEND_RESPONSE = "resend the last response"
    PASS_ACK = "pass ACK up"
    TIMEOUT = "report timeout"
    TRANSPORT_FAILED = "report transport error"
    START_A = "start:A"
    BACKOFF_A = "backoff:A"  # A doubles without cap (§17.1.1.2)
    STOP_A = "stop:A"
    START_B = "start:B"
    STOP_B = "stop:B"
    START_D = "start:D"
    START_E = "start:E"
    BACKOFF_E = "backoff:E"  # min(2E, T2) in Trying, T2 in Proceeding (§17.1.2.2)
    STOP_E = "stop:E"
    START_F = "start:F"
    STOP_F = "stop:F"
    START_G = "start:G"
    BACKOFF_G = "backoff:G"  # min(2G, T2) (§17.2.1)
    STOP_G = "stop:G"
    START_H = "start:H"
    STOP_H = "stop:H"
    START_I = "start:I"
    START_J = "start:J"
    START_K = "start:K"
    START_L = "start:L"
    START_M = "start:M"


Transition: TypeAlias = tuple[State, tuple[Do, ...]]
Table: TypeAlias = Mapping[State, Mapping[Input, Transition]]

S = State
In = Input
ABSORB: tuple[Do, ...] = ()

# RFC 3261 Figure 5 as corrected by RFC 6026 Figure 5.
INVITE_CLIENT_TABLE: Table = {
    S.CALLING: {
        In.TIMER_A: (S.CALLING, (Do.RETRANSMIT, Do.BACKOFF_A)),
        In.TIMER_B: (S.TERMINATED, (Do.TIMEOUT,)),
        In.TRANSPORT_ERROR: (S.TERMINATED, (Do.TRANSPORT_FAILED,)),
        In.RECV_1XX: (S.PROCEEDING, (Do.STOP_A, Do.STOP_B, Do.PASS_UP)),
        In.RECV_2XX: (S.ACCEPTED, (Do.STOP_A, Do.STOP_B, Do.PASS_UP, Do.START_M)),
        In.RECV_FINAL: (S.COMPLETED, (Do.STOP_A, Do.STOP_B, Do.PASS_UP, Do.SEND_ACK, Do.START_D)),
    },
    S.PROCEEDING: {
        In.RECV_1XX: (S.PROCEEDING, (Do.PASS_UP,)),
        In.RECV_2XX: (S.ACCEPTED, (Do.STOP_B, Do.PASS_UP, Do.START_M)),
        In.RECV_FINAL: (S.COMPLETED, (Do.STOP_B, Do.PASS_UP, Do.SEND_ACK, Do.START_D)),
        # Timer B only runs here after a CANCEL: §9.1, give up 64*T1 after it.
        In.TIMER_B: (S.TERMINATED, (Do.TIMEOUT,)),
        In.TRANSPORT_ERROR: (S.TERMINATED, (Do.TRANSPORT_FAILED,)),
    },
    S.COMPLETED: {
        In.RECV_FINAL: (S.COMPLETED, (Do.SEND_ACK,)),  # retransmitted final: ACK again
        In.RECV_1XX: (S.COMPLETED, ABSORB),  # late (reordered) provisional
        In.RECV_2XX: (S.COMPLETED, ABSORB),
        In.TIMER_D: (S.TERMINATED, ()),
        In.TRANSPORT_ERROR: (S.TERMINATED, ()),
    },
    S.ACCEPTED: {
        In.RECV_2XX: (S.ACCEPTED, (Do.PASS_UP,)),  # RFC 6026 §8.4: retransmissions and forks
        In.RECV_1XX: (S.ACCEPTED, ABSORB),
        In.RECV_FINAL: (S.ACCEPTED, ABSORB),
        In.TIMER_M: (S.TERMINATED, ()),
        In.TRANSPORT_ERROR: (S.ACCEPTED, ABSORB),  # the TU sends the ACK for 2xx
    },
    S.TERMINATED: {},
}

# RFC 3261 Figure 6.
NON_INVITE_CLIENT_TABLE: Table = {
    S.TRYING: {
        In.TIMER_E: (S.TRYING, (Do.RETRANSMIT, Do.BACKOFF_E)),
        In.TIMER_F: (S.TERMINATED, (Do.TIMEOUT,)),
        In.TRANSPORT_ERROR: (S.TERMINATED, (Do.TRANSPORT_FAILED,)),
        In.RECV_1XX: (S.PROCEEDING, (Do.PASS_UP,)),
        In.RECV_2XX: (S.COMPLETED, (Do.STOP_E, Do.STOP_F, Do.PASS_UP, Do.START_K)),
        In.RECV_FINAL: (S.COMPLETED, (Do.STOP_E, Do.STOP_F, Do.PASS_UP, Do.START_K)),
    },
    S.PROCEEDING: {
        In.TIMER_E: (S.PROCEEDING, (Do.RETRANSMIT, Do.BACKOFF_E)),
        In.TIMER_F: (S.TERMINATED, (Do.TIMEOUT,)),
        In.TRANSPORT_ERROR: (S.TERMINATED, (Do.TRANSPORT_FAILED,)),
        In.RECV_1XX: (S.PROCEEDING, (Do.PASS_UP,)),
        In.RECV_2XX: (S.COMPLETED, (Do.STOP_E, Do.STOP_F, Do.PASS_UP, Do.START_K)),
        In.RECV_FINAL: (S.COMPLETED, (Do.STOP_E, Do.STOP_F, Do.PASS_UP, Do.START_K)),
    },
    S.COMPLETED: {
        In.RECV_1XX: (S.COMPLETED, ABSORB),
        In.RECV_2XX: (S.COMPLETED, ABSORB),
        In.RECV_FINAL: (S.COMPLETED, ABSORB),
        In.TIMER_K: (S.TERMINATED, ()),
        In.TRANSPORT_ERROR: (S.TERMINATED, ()),
    },
    S.TERMINATED: {},
}

# RFC 3261 Figure 7 as corrected by RFC 6026 Figure 7.
INVITE_SERVER_TABLE: Table = {
    S.PROCEEDING: {
        In.RECV_REQUEST: (S.PROCEEDING, (Do.RESEND_RESPONSE,)),
        In.RECV_ACK: (S.PROCEEDING, ABSORB),  # an ACK before any final: nothing to confirm
        In.SEND_1XX: (S.PROCEEDING, (Do.SEND_RESPONSE,)),
        In.SEND_2XX: (S.ACCEPTED, (Do.SEND_RESPONSE, Do.START_L)),
        In.SEND_FINAL: (S.COMPLETED, (Do.SEND_RESPONSE, Do.START_G, Do.START_H)),
        In.TRANSPORT_ERROR: (S.TERMINATED, (Do.TRANSPORT_FAILED,)),
    },
    S.COMPLETED: {
        In.RECV_REQUEST: (S.COMPLETED, (Do.RESEND_RESPONSE,)),
        In.RECV_ACK: (S.CONFIRMED, (Do.STOP_G, Do.STOP_H, Do.START_I)),
        In.TIMER_G: (S.COMPLETED, (Do.RESEND_RESPONSE, Do.BACKOFF_G)),
        In.TIMER_H: (S.TERMINATED, (Do.TIMEOUT,)),
        In.TRANSPORT_ERROR: (S.TERMINATED, (Do.TRANSPORT_FAILED,)),
    },
    S.CONFIRMED: {
        In.RECV_REQUEST: (S.CONFIRMED, ABSORB),
        In.RECV_ACK: (S.CONFIRMED, ABSORB),
        In.TIMER_I: (S.TERMINATED, ()),
        In.TRANSPORT_ERROR: (S.CONFIRMED, ABSORB),
    },
    S.ACCEPTED: {
        In.RECV_REQUEST: (S.ACCEPTED, ABSORB),  # RFC 6026 §7.1: the TU retransmits the 2xx
        In.RECV_ACK: (S.ACCEPTED, (Do.PASS_ACK,)),  # RFC 6026 §7.1: passed to the TU
        In.SEND_2XX: (S.ACCEPTED, (Do.SEND_RESPONSE,)),  # the TU's 2xx retransmissions
        In.TIMER_L: (S.TERMINATED, ()),
        In.TRANSPORT_ERROR: (S.ACCEPTED, (Do.TRANSPORT_FAILED,)),
    },
    S.TERMINATED: {},
}

# RFC 3261 Figure 8.
NON_INVITE_SERVER_TABLE: Table = {
    S.TRYING: {
        In.RECV_REQUEST: (S.TRYING, ABSORB),
        In.RECV_ACK: (S.TRYING, ABSORB),
        In.SEND_1XX: (S.PROCEEDING, (Do.SEND_RESPONSE,)),
        In.SEND_2XX: (S.COMPLETED, (Do.SEND_RESPONSE, Do.START_J)),
        In.SEND_FINAL: (S.COMPLETED, (Do.SEND_RESPONSE, Do.START_J)),
        In.TRANSPORT_ERROR: (S.TERMINATED, (Do.TRANSPORT_FAILED,)),
    },
    S.PROCEEDING: {
        In.RECV_REQUEST: (S.PROCEEDING, (Do.RESEND_RESPONSE,)),
        In.RECV_ACK: (S.PROCEEDING, ABSORB),
        In.SEND_1XX: (S.PROCEEDING, (Do.SEND_RESPONSE,)),
        In.SEND_2XX: (S.COMPLETED, (Do.SEND_RESPONSE, Do.START_J)),
        In.SEND_FINAL: (S.COMPLETED, (Do.SEND_RESPONSE, Do.START_J)),
        In.TRANSPORT_ERROR: (S.TERMINATED, (Do.TRANSPORT_FAILED,)),
    },
    S.COMPLETED: {
        In.RECV_REQUEST: (S.COMPLETED, (Do.RESEND_RESPONSE,)),
        In.RECV_ACK: (S.COMPLETED, ABSORB),
        In.TIMER_J: (S.TERMINATED, ()),
        In.TRANSPORT_ERROR: (S.TERMINATED, (Do.TRANSPORT_FAILED,)),
    },
    S.TERMINATED: {},
}


# ----------------------------------------------------------------------------- actions


@dataclass(frozen=True, eq=False)
class Send:
    """Pass ``message`` to the transport for ``dest`` (opaque: whatever the caller gave)."""

    message: Request | Response
    dest: Hashable
    transaction: Transaction | None = None
    retransmission: bool = False


@dataclass(frozen=True, eq=False)
class RequestReceived:
    """A new request: the TU must answer it with ``layer.respond(transaction, ...)``."""

    transaction: ServerTransaction
    request: Request
    source: Hashable


@dataclass(frozen=True, eq=False)
class ResponseReceived:
    """A response passed up by a client transaction (1xx, 2xx — possibly several, from
    forks or retransmissions in Accepted — or a non-2xx final)."""

    transaction: ClientTransaction
    response: Response
    source: Hashable


@dataclass(frozen=True, eq=False)
class StrayResponse:
    """A 2xx to an INVITE that matches no client transaction: a 2xx retransmission or a
    forked 2xx after Timer M (RFC 6026 §8.1). For the UAC core: ACK again, or ACK and BYE."""

    response: Response
    source: Hashable


@dataclass(frozen=True, eq=False)
class AckReceived:
    """An ACK for a 2xx (a transaction of its own, §17.1.1.3), or any ACK matching no server
    transaction; ``transaction`` is set when it matched an INVITE server transaction in
    Accepted (RFC 6026 §7.1). For the UAS core: stop retransmitting the 2xx."""

    request: Request
    source: Hashable
    transaction: ServerTransaction | None = None


@dataclass(frozen=True, eq=False)
class CancelReceived:
    """A CANCEL matched a pending INVITE server transaction (§9.2). The layer has already
    answered the CANCEL with 200; the TU should answer the INVITE with 487."""

    transaction: InviteServerTransaction
    request: Request
    source: Hashable


@dataclass(frozen=True, eq=False)
class TransactionTimeout:
    """Timer B or F (no final response: treat as 408, §8.1.3.1) or H (no ACK, §17.2.1)."""

    transaction: Transaction
    timer: str


@dataclass(frozen=True, eq=False)
class TransportFailure:
    """The transport could not send for this transaction (§17.1.4, §17.2.4): treat as 503."""

    transaction: Transaction
    reason: str


@dataclass(frozen=True, eq=False)
class TransactionTerminated:
    transaction: Transaction


Action: TypeAlias = (
    Send
    | RequestReceived
    | ResponseReceived
    | StrayResponse
    | AckReceived
    | CancelReceived
    | TransactionTimeout
    | TransportFailure
    | TransactionTerminated
)


# ------------------------------------------------------------------------ transactions


class Transaction:
    """Base of the four machines. ``request`` is the request that created it; ``dest`` is
    where its messages go (client: the chosen target; server: the reply address)."""

    TABLE: ClassVar[Table]
    INITIAL: ClassVar[State]
    is_client: ClassVar[bool]

    def __init__(
        self, request: Request, dest: Hashable, now: float, *, timers: Timers, reliable: bool
    ) -> None:
        self.request = request
        self.dest = dest
        self.timers = timers
        self.reliable = reliable
        self.state = self.INITIAL
        self.created = now
        self.key: tuple[object, ...] = ()
        self._deadlines: dict[str, float] = {}
        self._intervals: dict[str, float] = {}
        self._payload: Request | Response | None = None
        self._reason = ""
        self._pushed: float | None = None  # deadline last pushed on the layer's heap

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def next_timer(self) -> float | None:
        """Earliest running timer's deadline, or None."""
        return min(self._deadlines.values()) if self._deadlines else None

    def timer_deadline(self, name: str) -> float | None:
        """Deadline of timer ``name`` ("A".."M") if it is running."""
        return self._deadlines.get(name)

    def handle_timer(self, now: float) -> list[Action]:
        """Fire every timer due at ``now``, earliest first."""
        out: list[Action] = []
        while self._deadlines:
            name, deadline = min(self._deadlines.items(), key=lambda kv: kv[1])
            if deadline > now:
                break
            del self._deadlines[name]
            out += self._apply(Input[f"TIMER_{name}"], now)
        return out

    def transport_error(self, now: float, reason: str = "transport error") -> list[Action]:
        self._reason = reason
        return self._run(Input.TRANSPORT_ERROR, now)

    def _run(self, inp: Input, now: float, payload: Request | Response | None = None) -> list[Action]:
        out = self._apply(inp, now, payload)
        out += self.handle_timer(now)  # zero-length timers (reliable transports) fire now
        return out

    def _apply(self, inp: Input, now: float, payload: Request | Response | None = None) -> list[Action]:
        try:
            new_state, effects = self.TABLE[self.state][inp]
        except KeyError:
            raise TransactionStateError(
                f"{type(self).__name__}: {inp.value} not allowed in state {self.state.value}"
            ) from None
        self.state = new_state
        self._payload = payload
        out: list[Action] = []
        for do in effects:
            self._effect(do, now, out)
        if new_state is State.TERMINATED:
            self._deadlines.clear()
            out.append(TransactionTerminated(self))
        return out

    def _effect(self, do: Do, now: float, out: list[Action]) -> None:
        op, _, name = do.value.partition(":")
        if name:
            if op == "start":
                if name in ("A", "E", "G") and self.reliable:
                    return  # no retransmissions over TCP/TLS (§17.1.1.2, §17.1.2.2, §17.2.1)
                self._intervals[name] = self.timers.duration(name, self.reliable)
                self._deadlines[name] = now + self._intervals[name]
            elif op == "stop":
                self._deadlines.pop(name, None)
            else:  # backoff
                self._intervals[name] = self._backoff(name, self._intervals[name])
                self._deadlines[name] = now + self._intervals[name]
            return
        self._act(do, now, out)

    def _backoff(self, name: str, interval: float) -> float:
        if name == "A":
            return 2 * interval
        if name == "E" and self.state is State.PROCEEDING:
            return self.timers.t2
        return min(2 * interval, self.timers.t2)

    def _act(self, do: Do, now: float, out: list[Action]) -> None:
        if do is Do.TIMEOUT:
            out.append(TransactionTimeout(self, self._last_timer()))
        elif do is Do.TRANSPORT_FAILED:
            out.append(TransportFailure(self, self._reason))
        else:  # pragma: no cover - tables only use effects their class implements
            raise AssertionError(do)

    def _last_timer(self) -> str:
        return {True: "B" if self.method == "INVITE" else "F", False: "H"}[self.is_client]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.key!r} {self.state.value}>"


class ClientTransaction(Transaction):
    is_client = True

    def __init__(
        self, request: Request, dest: Hashable, now: float, *, timers: Timers, reliable: bool
    ) -> None:
        if request.method == "ACK":
            raise ValueError("ACK is never sent in a client transaction (§17.1)")
        super().__init__(request, dest, now, timers=timers, reliable=reliable)
        self.key = client_key(request)
        self.last_response: Response | None = None
        self.source: Hashable = None

    def start(self, now: float) -> list[Action]:
        """Send the request and start the timers (§17.1.1.2, §17.1.2.2)."""
        out: list[Action] = [Send(self.request, self.dest, self)]
        for do in self._start_effects():
            self._effect(do, now, out)
        return out

    def _start_effects(self) -> tuple[Do, ...]:
        raise NotImplementedError

    def receive_response(self, response: Response, now: float, source: Hashable = None) -> list[Action]:
        self.source = source
        if response.status < 200:
            inp = Input.RECV_1XX
        elif response.status < 300:
            inp = Input.RECV_2XX
        else:
            inp = Input.RECV_FINAL
        return self._run(inp, now, response)

    def _act(self, do: Do, now: float, out: list[Action]) -> None:
        if do is Do.RETRANSMIT:
            out.append(Send(self.request, self.dest, self, retransmission=True))
        elif do is Do.PASS_UP:
            assert isinstance(self._payload, Response)
            self.last_response = self._payload
            out.append(ResponseReceived(self, self._payload, self.source))
        else:
            super()._act(do, now, out)


class InviteClientTransaction(ClientTransaction):
    TABLE = INVITE_CLIENT_TABLE
    INITIAL = State.CALLING

    def __init__(
        self, request: Request, dest: Hashable, now: float, *, timers: Timers, reliable: bool
    ) -> None:
        super().__init__(request, dest, now, timers=timers, reliable=reliable)
        self.ack: Request | None = None
        self.cancel_requested = False
        self.cancel_reason: Reason | None = None

    def _start_effects(self) -> tuple[Do, ...]:
        return (Do.START_A, Do.START_B)

    def arm_cancel_guard(self, now: float) -> None:
        """A CANCEL was sent: if no final response comes within 64*T1, give up (§9.1)."""
        if self.state is State.PROCEEDING:
            self._deadlines["B"] = now + self.timers.b

    def _act(self, do: Do, now: float, out: list[Action]) -> None:
        if do is Do.SEND_ACK:
            assert isinstance(self._payload, Response)
            retransmission = self.ack is not None
            # §17.1.1.3: To (with tag) from the response, same branch, CSeq number with ACK.
            self.ack = make_ack(self.request, self._payload)
            out.append(Send(self.ack, self.dest, self, retransmission=retransmission))
        else:
            super()._act(do, now, out)


class NonInviteClientTransaction(ClientTransaction):
    TABLE = NON_INVITE_CLIENT_TABLE
    INITIAL = State.TRYING

    def _start_effects(self) -> tuple[Do, ...]:
        return (Do.START_E, Do.START_F)


class ServerTransaction(Transaction):
    is_client = False

    def __init__(
        self,
        request: Request,
        dest: Hashable,
        now: float,
        *,
        timers: Timers,
        reliable: bool,
        source: Hashable = None,
    ) -> None:
        super().__init__(request, dest, now, timers=timers, reliable=reliable)
        self.key = server_key(request)
        self.source = source
        self.last_response: Response | None = None
        self.final_response: Response | None = None

    @property
    def has_final(self) -> bool:
        return self.final_response is not None

    def respond(self, response: Response, now: float) -> list[Action]:
        """Send a response from the TU. A second final (other than a 2xx retransmission in
        Accepted) raises :class:`TransactionStateError`."""
        if response.status < 200:
            inp = Input.SEND_1XX
        elif response.status < 300:
            inp = Input.SEND_2XX
        else:
            inp = Input.SEND_FINAL
        return self._run(inp, now, response)

    def receive_request(self, request: Request, now: float) -> list[Action]:
        """A retransmission of the request, or the ACK for an INVITE's final response."""
        return self._run(Input.RECV_ACK if request.method == "ACK" else Input.RECV_REQUEST, now, request)

    def _act(self, do: Do, now: float, out: list[Action]) -> None:
        if do is Do.SEND_RESPONSE:
            assert isinstance(self._payload, Response)
            response = self._payload
            retransmission = response is self.last_response
            self.last_response = response
            if response.status >= 200:
                self.final_response = response
            out.append(Send(response, self.dest, self, retransmission=retransmission))
        elif do is Do.RESEND_RESPONSE:
            if self.last_response is not None:  # Trying has nothing to resend yet
                out.append(Send(self.last_response, self.dest, self, retransmission=True))
        elif do is Do.PASS_ACK:
            assert isinstance(self._payload, Request)
            out.append(AckReceived(self._payload, self.source, self))
        else:
            super()._act(do, now, out)


class InviteServerTransaction(ServerTransaction):
    TABLE = INVITE_SERVER_TABLE
    INITIAL = State.PROCEEDING


class NonInviteServerTransaction(ServerTransaction):
    TABLE = NON_INVITE_SERVER_TABLE
    INITIAL = State.TRYING


# ----------------------------------------------------------------------------- matching


def client_key(msg: Request | Response) -> tuple[str, str]:
    """§17.1.3: a response matches the client transaction whose request had the same top
    Via branch and the same CSeq method (so a CANCEL's responses are not the INVITE's)."""
    branch = msg.top_via.branch or ""
    return branch, msg.cseq.method


def server_key(request: Request) -> tuple[object, ...]:
    """§17.2.3: branch + sent-by + method (ACK matches its INVITE). Without the RFC 3261
    magic cookie, the RFC 2543 rule: Request-URI, From tag, Call-ID, CSeq number, top Via
    (the To tag of an ACK is checked against the response by the layer). CANCEL keeps its
    own method here; :meth:`TransactionLayer.receive` looks up its INVITE (§9.2)."""
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return (branch, via.host.lower(), via.port, method)
    cseq = request.cseq
    return ("rfc2543", request.uri, request.from_.tag, request.call_id, cseq.seq, str(via), method)


def _invite_key_for(request: Request) -> tuple[object, ...]:
    """Key of the INVITE server transaction a CANCEL targets (§9.2: same branch etc.)."""
    key = server_key(request)
    return (*key[:-1], "INVITE")


# -------------------------------------------------------------------------------- layer


class TransactionLayer:
    """All transactions of one endpoint. Each method returns the actions to carry out in
    order (sends first where the RFC sends before telling the TU). Terminated transactions
    are forgotten; ``next_timer()`` is the earliest deadline over all of them.

    ``auto_trying``: answer a new INVITE with 100 Trying at once (§17.2.1: MUST unless the
    TU answers within 200 ms; sending it immediately is always correct).
    """

    def __init__(self, timers: Timers | None = None, *, auto_trying: bool = True) -> None:
        self.timers = timers or Timers()
        self.auto_trying = auto_trying
        self.clients: dict[tuple[object, ...], ClientTransaction] = {}
        self.servers: dict[tuple[object, ...], ServerTransaction] = {}
        self.stray_responses_dropped = 0
        self._heap: list[tuple[float, int, Transaction]] = []
        self._seq = itertools.count()

    # -- client side

    def send_request(
        self, request: Request, dest: Hashable, now: float, *, reliable: bool = False
    ) -> tuple[ClientTransaction, list[Action]]:
        """Start a client transaction for ``request`` (its top Via must carry a fresh
        RFC 3261 branch) towards ``dest``; returns it and the actions (the first Send)."""
        cls = InviteClientTransaction if request.method == "INVITE" else NonInviteClientTransaction
        tx = cls(request, dest, now, timers=self.timers, reliable=reliable)
        if tx.key in self.clients:
            raise ValueError(f"a client transaction with branch {tx.key[0]!r} already exists")
        self.clients[tx.key] = tx
        return tx, self._after(tx, tx.start(now))

    def cancel(
        self, tx: InviteClientTransaction, now: float, *, reason: Reason | None = None
    ) -> list[Action]:
        """CANCEL a pending INVITE (§9.1). Before any provisional response the CANCEL is held
        until one arrives; after a final response it is not sent at all."""
        if tx.state is State.CALLING:
            tx.cancel_requested = True
            tx.cancel_reason = reason
            return []
        if tx.state is not State.PROCEEDING:
            return []
        return self._send_cancel(tx, now, reason)

    def _send_cancel(self, tx: InviteClientTransaction, now: float, reason: Reason | None) -> list[Action]:
        tx.cancel_requested = False
        cancel = make_cancel(tx.request)
        if reason is not None:
            cancel.headers.add("Reason", str(reason))  # RFC 3326
        ctx, out = self.send_request(cancel, tx.dest, now, reliable=tx.reliable)
        tx.arm_cancel_guard(now)
        self._push(tx)
        return out

    # -- server side

    def respond(self, tx: ServerTransaction, response: Response, now: float) -> list[Action]:
        return self._after(tx, tx.respond(response, now))

    # -- network input

    def receive(
        self,
        msg: Request | Response,
        source: Hashable,
        now: float,
        *,
        reliable: bool = False,
        reply_to: Hashable = None,
    ) -> list[Action]:
        """A parsed message from ``source``. For requests, responses of a new server
        transaction go to ``reply_to`` (default ``source``; the endpoint computes it from
        Via received/rport, §18.2.2 and RFC 3581 §4)."""
        try:
            if isinstance(msg, Response):
                return self._receive_response(msg, source, now)
            return self._receive_request(msg, source, now, reliable, source if reply_to is None else reply_to)
        except SipParseError:
            # Typed accessors are validated by the parser; a hand-built message may not be.
            self.stray_responses_dropped += isinstance(msg, Response)
            return []

    def _receive_response(self, response: Response, source: Hashable, now: float) -> list[Action]:
        tx = self.clients.get(client_key(response))
        if tx is None:
            if response.is_success and response.cseq.method == "INVITE":
                return [StrayResponse(response, source)]
            self.stray_responses_dropped += 1  # §17.1.3 / §18.1.2: dropped
            return []
        out = tx.receive_response(response, now, source)
        if isinstance(tx, InviteClientTransaction) and tx.cancel_requested and tx.state is State.PROCEEDING:
            out += self._send_cancel(tx, now, tx.cancel_reason)
        return self._after(tx, out)

    def _receive_request(
        self, request: Request, source: Hashable, now: float, reliable: bool, reply_to: Hashable
    ) -> list[Action]:
        key = server_key(request)
        tx = self.servers.get(key)
        if tx is not None and request.method == "ACK" and key[0] == "rfc2543":
            # RFC 2543 ACK matching also needs the To tag of the response we sent (§17.2.3).
            sent = tx.last_response
            if sent is None or sent.to.tag != request.to.tag:
                tx = None
        if tx is not None:
            return self._after(tx, tx.receive_request(request, now))
        if request.method == "ACK":
            return [AckReceived(request, source, None)]
        if request.method == "CANCEL":
            return self._receive_cancel(request, source, now, reliable, reply_to)
        cls = InviteServerTransaction if request.method == "INVITE" else NonInviteServerTransaction
        stx = cls(request, reply_to, now, timers=self.timers, reliable=reliable, source=source)
        self.servers[stx.key] = stx
        out: list[Action] = []
        if request.method == "INVITE" and self.auto_trying:
            out += stx.respond(make_response(request, 100), now)
        out.append(RequestReceived(stx, request, source))
        return self._after(stx, out)

    def _receive_cancel(
        self, cancel: Request, source: Hashable, now: float, reliable: bool, reply_to: Hashable
    ) -> list[Action]:
        invite = self.servers.get(_invite_key_for(cancel))
        ctx = NonInviteServerTransaction(
            cancel, reply_to, now, timers=self.timers, reliable=reliable, source=source
        )
        self.servers[ctx.key] = ctx
        if not isinstance(invite, InviteServerTransaction):
            # §9.2: no matching transaction → 481.
            return self._after(ctx, ctx.respond(make_response(cancel, 481), now))
        # §9.2: the UAS answers a matching CANCEL itself with 200, whatever the INVITE's state.
        to_tag = invite.last_response.to.tag if invite.last_response is not None else None
        out = ctx.respond(make_response(cancel, 200, to_tag=to_tag), now)
        if invite.state is State.PROCEEDING:
            out.append(CancelReceived(invite, cancel, source))
        return self._after(ctx, out)

    # -- transport errors and timers

    def transport_error(self, tx: Transaction, reason: str, now: float) -> list[Action]:
        if tx.terminated:
            return []
        return self._after(tx, tx.transport_error(now, reason))

    def next_timer(self) -> float | None:
        """Earliest deadline over all transactions (stale heap entries are dropped)."""
        heap = self._heap
        while heap:
            deadline, _, tx = heap[0]
            if not tx.terminated and tx.next_timer() == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> list[Action]:
        out: list[Action] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, tx = heapq.heappop(heap)
            if tx.terminated or tx.next_timer() != deadline:
                continue  # stale entry
            out += self._after(tx, tx.handle_timer(now))
        return out

    # -- bookkeeping

    def _push(self, tx: Transaction) -> None:
        deadline = tx.next_timer()
        if deadline is not None and deadline != tx._pushed:
            tx._pushed = deadline
            heapq.heappush(self._heap, (deadline, next(self._seq), tx))

    def _after(self, tx: Transaction, out: list[Action]) -> list[Action]:
        for action in out:
            if isinstance(action, TransactionTerminated):
                t = action.transaction
                if isinstance(t, ClientTransaction):
                    if self.clients.get(t.key) is t:
                        del self.clients[t.key]
                elif isinstance(t, ServerTransaction) and self.servers.get(t.key) is t:
                    del self.servers[t.key]
        if not tx.terminated:
            self._push(tx)
        return out

    def __len__(self) -> int:
        return len(self.clients) + len(self.servers)
