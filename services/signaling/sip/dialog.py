"""SIP dialogs, sans-IO (RFC 3261 §12, §13.2.2.4, §13.3.1.4, §14, §15).

:class:`Dialog` holds the state of §12: Call-ID, local/remote tags and URIs, local/remote
CSeq, remote target (from Contact), route set (from Record-Route: reversed for the UAC,
§12.1.2; in order for the UAS, §12.1.1), and builds in-dialog requests (§12.2.1.1, with loose
and strict routing) and the ACK for a 2xx (same CSeq number as the INVITE, §13.2.2.4). It
checks incoming in-dialog requests (§12.2.2: out-of-order CSeq → 500; re-INVITE glare →
491, §14.2) and tracks target refreshes.

:class:`Dialogs` is the UA core's table of dialogs: 481 for requests whose To tag matches no
dialog (§12.2.2), early/confirmed dialogs from the responses to our INVITEs with forking
(§13.2.2.4: the first 2xx wins; every other To tag is ACKed and sent a BYE; 2xx
retransmissions are ACKed again), and the UAS core's retransmission of a 2xx until its ACK
arrives (§13.3.1.4: T1 doubling up to T2, give up after 64*T1). Time comes in as ``now``;
``next_timer()``/``handle_timer(now)`` as in :mod:`.transaction`.

Requests built here carry a placeholder top Via (``SIP/2.0/UDP invalid`` with a fresh
branch); the endpoint fills in the transport and sent-by when it sends them.
"""

from __future__ import annotations

import enum
import heapq
import random
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

from .errors import SipParseError, TransactionStateError
from .headers import NameAddress, Via
from .message import Request, Response, make_request, make_response, new_branch
from .transaction import Timers
from .uri import SipUri, parse_uri

__all__ = [
    "AckTimeout",
    "Dialog",
    "DialogAction",
    "DialogId",
    "DialogState",
    "Dialogs",
    "OkRetransmitter",
    "Retransmit2xx",
    "UacResponse",
    "glare_retry_delay",
    "next_hop",
    "placeholder_via",
]

# §12.2.1.1 / §12.2.2: requests that may change the remote target (RFC 3311 adds UPDATE).
TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})
# Headers that must travel with the ACK for 2xx as they did with the INVITE (§13.2.2.4).
_ACK_COPY = ("Authorization", "Proxy-Authorization")


def placeholder_via() -> Via:
    """A top Via with a fresh RFC 3261 branch, to be completed by the endpoint."""
    return Via("UDP", "invalid", None, {"branch": new_branch()})


def next_hop(request: Request) -> str:
    """The URI to resolve (RFC 3263) for sending ``request``: its first Route, else the
    Request-URI (§8.1.2; with strict routing the Request-URI already is the next hop)."""
    routes = request.headers.values("Route")
    if routes:
        return str(NameAddress.parse(routes[0]).uri)
    return request.uri


def glare_retry_delay(owns_call_id: bool, rng: random.Random | None = None) -> float:
    """How long to wait before retrying a re-INVITE that got 491 (§14.1): 2.1-4 s for the
    owner of the Call-ID (the dialog's UAC), 0-2 s for the other side."""
    r = rng or random
    return r.uniform(2.1, 4.0) if owns_call_id else r.uniform(0.0, 2.0)


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True)
class DialogId:
    """§12: Call-ID, local tag, remote tag."""

    call_id: str
    local_tag: str
    remote_tag: str


class Dialog:
    """One dialog (§12). Build with :meth:`uac` or :meth:`uas`."""

    def __init__(
        self,
        *,
        call_id: str,
        local_tag: str,
        remote_tag: str,
        local_party: NameAddress,
        remote_party: NameAddress,
        remote_target: str,
        route_set: list[NameAddress],
        local_seq: int | None,
        remote_seq: int | None,
        local_contact: str | None,
        is_uac: bool,
        secure: bool = False,
        state: DialogState = DialogState.EARLY,
    ) -> None:
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_party = local_party  # From (UAC) / To (UAS), without tag
        self.remote_party = remote_party
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.local_contact = local_contact
        self.is_uac = is_uac
        self.secure = secure
        self.state = state
        # §14: an INVITE of ours / of the peer's still waiting for its final response.
        self.pending_outgoing_invite: int | None = None
        self.pending_incoming_invite: int | None = None
        # The last ACK we built, by CSeq number: resent for each 2xx retransmission.
        self.acks: dict[int, Request] = {}
        self.user_data: object = None  # free for the TU (e.g. the call leg)

    # -- creation (§12.1)

    @classmethod
    def uac(cls, request: Request, response: Response) -> Dialog:
        """§12.1.2: from our dialog-creating request and a 101-299 response with a To tag."""
        to = response.to
        if to.tag is None:
            raise SipParseError("A dialog needs a To tag in the response")
        from_ = request.from_
        if from_.tag is None:
            raise SipParseError("A dialog needs a From tag in the request")
        contacts = response.contacts
        dialog = cls(
            call_id=request.call_id,
            local_tag=from_.tag,
            remote_tag=to.tag,
            local_party=_untagged(from_),
            remote_party=_untagged(to),
            # No Contact (a broken 1xx): fall back to the Request-URI until one arrives.
            remote_target=str(contacts[0].uri) if contacts else request.uri,
            route_set=list(reversed(response.record_routes)),
            local_seq=request.cseq.seq,
            remote_seq=None,
            local_contact=request.headers.get("Contact"),
            is_uac=True,
            secure=_is_secure(request),
            state=DialogState.CONFIRMED if response.is_success else DialogState.EARLY,
        )
        if request.method == "INVITE" and not response.is_success:
            dialog.pending_outgoing_invite = request.cseq.seq
        return dialog

    @classmethod
    def uas(cls, request: Request, response: Response) -> Dialog:
        """§12.1.1: from a dialog-creating request and our 101-299 response (with To tag)."""
        to = response.to
        if to.tag is None:
            raise SipParseError("A dialog needs a To tag in the response")
        from_ = request.from_
        contacts = request.contacts
        dialog = cls(
            call_id=request.call_id,
            local_tag=to.tag,
            remote_tag=from_.tag or "",  # RFC 2543 peers may omit it (§12.1.1: null)
            local_party=_untagged(to),
            remote_party=_untagged(from_),
            remote_target=str(contacts[0].uri) if contacts else str(from_.uri),
            route_set=list(request.record_routes),
            local_seq=None,
            remote_seq=request.cseq.seq,
            local_contact=response.headers.get("Contact"),
            is_uac=False,
            secure=_is_secure(request),
            state=DialogState.CONFIRMED if response.is_success else DialogState.EARLY,
        )
        if request.method == "INVITE" and not response.is_success:
            dialog.pending_incoming_invite = request.cseq.seq
        return dialog

    @property
    def id(self) -> DialogId:
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    @property
    def terminated(self) -> bool:
        return self.state is DialogState.TERMINATED

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED

    # -- sending (§12.2.1)

    def create_request(
        self,
        method: str,
        *,
        via: Via | str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
        max_forwards: int = 70,
    ) -> Request:
        """An in-dialog request (§12.2.1.1): To/From with tags, Call-ID, next local CSeq,
        Request-URI and Route from the remote target and route set, our Contact for target
        refresh requests. For ACK use :meth:`create_ack`; for CANCEL ``make_cancel``."""
        if method in ("ACK", "CANCEL"):
            raise ValueError(f"use {'create_ack' if method == 'ACK' else 'make_cancel'} for {method}")
        if self.terminated:
            raise TransactionStateError(f"dialog {self.id} is terminated")
        if method == "INVITE" and (self.pending_outgoing_invite is not None):
            raise TransactionStateError("a re-INVITE is already pending on this dialog (§14.1)")
        # §12.2.1.1: an empty local sequence number gets an initial value (RFC allows any).
        self.local_seq = 1 if self.local_seq is None else self.local_seq + 1
        request = self._build(method, self.local_seq, via, headers, body, content_type, max_forwards)
        if method == "INVITE":
            self.pending_outgoing_invite = self.local_seq
        elif method == "BYE":
            self.state = DialogState.TERMINATED  # §15.1.1: terminated once the BYE is sent
        return request

    def create_ack(
        self,
        invite: Request | int,
        *,
        via: Via | str | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """ACK for a 2xx (§13.2.2.4): CSeq number of the INVITE (given as the request, whose
        credentials are copied, or its CSeq number), its own new branch, Route/Request-URI as
        for any in-dialog request. Remembered and resent for 2xx retransmissions."""
        extra = list(headers)
        if isinstance(invite, Request):
            seq = invite.cseq.seq
            for name in _ACK_COPY:
                extra += [(name, v) for v in invite.headers.get_all(name)]
        else:
            seq = invite
        ack = self._build("ACK", seq, via, extra, body, content_type, 70, contact=False)
        self.acks = {seq: ack}
        return ack

    def _build(
        self,
        method: str,
        seq: int,
        via: Via | str | None,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        content_type: str | None,
        max_forwards: int,
        *,
        contact: bool = True,
    ) -> Request:
        uri, routes = self.request_uri_and_routes()
        local = _tagged(self.local_party, self.local_tag)
        remote = _tagged(self.remote_party, self.remote_tag or None)
        return make_request(
            method,
            uri,
            from_=local,
            to=remote,
            call_id=self.call_id,
            cseq=seq,
            via=via if via is not None else placeholder_via(),
            max_forwards=max_forwards,
            contact=self.local_contact if contact and method in TARGET_REFRESH else None,
            route=routes,
            headers=headers,
            body=body,
            content_type=content_type,
        )

    def request_uri_and_routes(self) -> tuple[str, list[str]]:
        """§12.2.1.1: loose routing (first route has ``lr``) keeps the remote target as the
        Request-URI; a strict router gets the Request-URI and the remote target goes last
        in Route."""
        if not self.route_set:
            return self.remote_target, []
        first = self.route_set[0]
        if isinstance(first.uri, SipUri) and first.uri.lr:
            return self.remote_target, [str(r) for r in self.route_set]
        uri = first.uri
        if isinstance(uri, SipUri):
            # §12.2.1.1: parameters not allowed in a Request-URI are stripped (§19.1.1).
            uri = uri.copy(headers=[])
        return str(uri), [str(r) for r in self.route_set[1:]] + [f"<{self.remote_target}>"]

    # -- receiving (§12.2.2, §12.2.1.2)

    def receive_request(self, request: Request) -> Response | None:
        """Check an in-dialog request; returns the error response to send (500 out of order,
        491 glare, 500 + Retry-After for an overlapping re-INVITE) or None to accept it."""
        method = request.method
        if method in ("ACK", "CANCEL"):
            return None  # ACK/CANCEL reuse the CSeq of the request they belong to
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            return make_response(request, 500, "Out of Order")  # §12.2.2
        if method == "INVITE":
            if self.pending_outgoing_invite is not None:
                return make_response(request, 491)  # §14.2 glare
            if self.pending_incoming_invite is not None:
                # §14.2: a second INVITE before we answered the first.
                retry = str(random.randint(0, 10))
                return make_response(request, 500, headers=[("Retry-After", retry)])
        self.remote_seq = seq
        if method in TARGET_REFRESH:
            contacts = request.contacts
            if contacts:
                self.remote_target = str(contacts[0].uri)  # §12.2.2 target refresh
        if method == "INVITE":
            self.pending_incoming_invite = seq
        elif method == "BYE":
            self.state = DialogState.TERMINATED  # §15.1.2
        return None

    def response_sent(self, request: Request, response: Response) -> None:
        """The TU answered an in-dialog (or the initial) request: track the pending INVITE."""
        if request.method != "INVITE" or response.status < 200:
            return
        if self.pending_incoming_invite == request.cseq.seq:
            self.pending_incoming_invite = None
        if self.state is DialogState.EARLY:
            # The initial INVITE's final response confirms or ends the early dialog (§12.3).
            self.state = DialogState.CONFIRMED if response.is_success else DialogState.TERMINATED

    def receive_response(self, request: Request, response: Response) -> None:
        """A response to a request we sent in this dialog (§12.2.1.2)."""
        status = response.status
        if status < 200:
            if request.method == "INVITE" and self.state is DialogState.EARLY:
                self._refresh_target(response)
            return
        if request.method == "INVITE" and self.pending_outgoing_invite == request.cseq.seq:
            self.pending_outgoing_invite = None
        if status in (481, 408):
            self.state = DialogState.TERMINATED  # §12.2.1.2
            return
        if response.is_success and request.method in TARGET_REFRESH:
            self._refresh_target(response)
        if request.method == "BYE":
            self.state = DialogState.TERMINATED

    def _refresh_target(self, response: Response) -> None:
        contacts = response.contacts
        if contacts:
            self.remote_target = str(contacts[0].uri)

    def confirm(self, response: Response) -> None:
        """A 2xx for the dialog's INVITE arrived on an early UAC dialog: §13.2.2.4 confirms
        it and recomputes the route set from the 2xx (§12.2.1.2 via §12.1.2)."""
        self.state = DialogState.CONFIRMED
        self.route_set = list(reversed(response.record_routes))
        self._refresh_target(response)
        self.pending_outgoing_invite = None

    def __repr__(self) -> str:
        role = "UAC" if self.is_uac else "UAS"
        return f"<Dialog {role} {self.state.value} {self.call_id} {self.local_tag}/{self.remote_tag}>"


def _untagged(addr: NameAddress) -> NameAddress:
    params = {k: v for k, v in addr.params.items() if k != "tag"}
    return NameAddress(addr.uri, addr.display_name, params)


def _tagged(addr: NameAddress, tag: str | None) -> NameAddress:
    out = NameAddress(addr.uri, addr.display_name, dict(addr.params))
    out.tag = tag
    return out


def _is_secure(request: Request) -> bool:
    """§12.1.1/§12.1.2: secure if the request went over TLS with a sips Request-URI."""
    try:
        uri = parse_uri(request.uri)
    except SipParseError:
        return False
    return isinstance(uri, SipUri) and uri.secure


# ----------------------------------------------------------------- 2xx retransmission


@dataclass(frozen=True, eq=False)
class Retransmit2xx:
    """Send ``response`` again (§13.3.1.4); ``context`` is what the caller gave."""

    dialog: Dialog
    response: Response
    context: Hashable


@dataclass(frozen=True, eq=False)
class AckTimeout:
    """No ACK for the 2xx within 64*T1 (§13.3.1.4): the session SHOULD end with ``bye``."""

    dialog: Dialog
    response: Response
    context: Hashable
    bye: Request | None


DialogAction = Retransmit2xx | AckTimeout


class OkRetransmitter:
    """The UAS core's 2xx retransmission (§13.3.1.4): at T1, then doubling up to T2, until
    the ACK arrives; after 64*T1 without one, :class:`AckTimeout`. This runs whatever the
    transport, since hops beyond a reliable first hop may be unreliable (§13.3.1.4)."""

    def __init__(
        self, dialog: Dialog, response: Response, now: float, timers: Timers, context: Hashable = None
    ) -> None:
        self.dialog = dialog
        self.response = response
        self.context = context
        self.timers = timers
        self.interval = timers.t1
        self.deadline: float | None = now + timers.t1
        self.give_up = now + 64 * timers.t1
        self.done = False

    def next_timer(self) -> float | None:
        if self.done or self.deadline is None:
            return None
        return min(self.deadline, self.give_up)

    def ack_received(self) -> None:
        self.done = True

    def handle_timer(self, now: float) -> list[DialogAction]:
        if self.done or self.deadline is None:
            return []
        if self.dialog.terminated:
            self.done = True  # e.g. we sent BYE: nothing to retransmit any more
            return []
        if now >= self.give_up:
            self.done = True
            bye = self.dialog.create_request("BYE") if not self.dialog.terminated else None
            return [AckTimeout(self.dialog, self.response, self.context, bye)]
        if now < self.deadline:
            return []
        self.interval = min(2 * self.interval, self.timers.t2)
        self.deadline = now + self.interval
        return [Retransmit2xx(self.dialog, self.response, self.context)]


# ------------------------------------------------------------------------ dialog table


@dataclass
class UacResponse:
    """What :meth:`Dialogs.uac_response` made of a response to our INVITE.

    ``dialog``: the dialog it belongs to (None for 100 or a response without To tag).
    ``send``: requests the UAC core must send now — the stored ACK again for a 2xx
    retransmission, or ACK then BYE for a 2xx from a losing fork (§13.2.2.4).
    ``fork``: True for a 2xx from a fork other than the first to answer.
    ``retransmission``: the 2xx was seen before on this dialog.
    """

    dialog: Dialog | None
    send: list[Request] = field(default_factory=list)
    fork: bool = False
    retransmission: bool = False


@dataclass
class _InviteRecord:
    invite: Request
    winner: str | None = None  # To tag of the first 2xx
    expires: float | None = None
    tags: set[str] = field(default_factory=set)


class Dialogs:
    """The dialogs of a UA core, keyed by :class:`DialogId`."""

    def __init__(self, timers: Timers | None = None) -> None:
        self.timers = timers or Timers()
        self.dialogs: dict[DialogId, Dialog] = {}
        self._invites: dict[tuple[str, str, int], _InviteRecord] = {}
        self._retransmitters: dict[tuple[DialogId, int], OkRetransmitter] = {}
        self._fork_acks: dict[DialogId, Request] = {}  # losing forks, until the record expires
        # (expires, key) of INVITE records, so the next expiry is found without a scan
        # (thousands of records live for 64*T1 at a few hundred calls per second).
        self._expiries: list[tuple[float, tuple[str, str, int]]] = []
        self._purge_at: float | None = None  # next sweep of terminated dialogs

    def __len__(self) -> int:
        return sum(1 for d in self.dialogs.values() if not d.terminated)

    def add(self, dialog: Dialog) -> Dialog:
        self.dialogs[dialog.id] = dialog
        return dialog

    def get(self, dialog_id: DialogId) -> Dialog | None:
        dialog = self.dialogs.get(dialog_id)
        if dialog is not None and dialog.terminated:
            del self.dialogs[dialog_id]  # lazily forget terminated dialogs
            return None
        return dialog

    def remove(self, dialog: Dialog) -> None:
        dialog.terminate()
        self.dialogs.pop(dialog.id, None)

    def find(self, msg: Request | Response, *, incoming: bool = True) -> Dialog | None:
        """The dialog of an incoming request (To tag local, From tag remote) or of a
        response to a request we sent (From tag local, To tag remote)."""
        to_tag, from_tag = msg.to.tag, msg.from_.tag
        if incoming:
            if to_tag is None:
                return None
            return self.get(DialogId(msg.call_id, to_tag, from_tag or ""))
        if to_tag is None or from_tag is None:
            return None
        return self.get(DialogId(msg.call_id, from_tag, to_tag))

    # -- UAS side

    def check_request(self, request: Request) -> tuple[Dialog | None, Response | None]:
        """An incoming request: (its dialog, None) if in a dialog and acceptable;
        (None, 481) for a To tag matching no dialog (§12.2.2); (dialog, 491/500) when the
        dialog refuses it; (None, None) for out-of-dialog requests and stray ACKs."""
        if request.to.tag is None:
            return None, None
        dialog = self.find(request)
        if dialog is None:
            if request.method == "ACK":
                return None, None  # never answered; a stray ACK is dropped by the caller
            return None, make_response(request, 481)
        return dialog, dialog.receive_request(request)

    def uas_response(
        self, request: Request, response: Response, now: float, *, context: Hashable = None
    ) -> Dialog | None:
        """We answer a dialog-creating request (or an in-dialog INVITE): create or update
        the dialog; for a 2xx to an INVITE start retransmitting it until the ACK
        (§13.3.1.4). ``context`` comes back in :class:`Retransmit2xx`."""
        status = response.status
        if status == 100 or response.to.tag is None:
            return None
        dialog = self.find(request) if request.to.tag else None
        if dialog is None:
            dialog = self.get(DialogId(request.call_id, response.to.tag, request.from_.tag or ""))
        if dialog is None:
            if status >= 300 or request.method not in ("INVITE", "SUBSCRIBE", "REFER"):
                return None
            dialog = self.add(Dialog.uas(request, response))
        dialog.response_sent(request, response)
        if request.method == "INVITE" and response.is_success:
            r = OkRetransmitter(dialog, response, now, self.timers, context)
            self._retransmitters[(dialog.id, request.cseq.seq)] = r
        if dialog.terminated:
            self.dialogs.pop(dialog.id, None)
        return dialog

    def ack_received(self, ack: Request) -> Dialog | None:
        """An ACK for a 2xx: stop its retransmission (§13.3.1.4). Returns the dialog."""
        dialog = self.find(ack)
        if dialog is None:
            return None
        r = self._retransmitters.pop((dialog.id, ack.cseq.seq), None)
        if r is not None:
            r.ack_received()
        return dialog

    def retransmitting(self, dialog: Dialog) -> bool:
        return any(key[0] == dialog.id and not r.done for key, r in self._retransmitters.items())

    # -- UAC side

    def uac_response(self, invite: Request, response: Response, now: float) -> UacResponse:
        """A response to our INVITE (initial or re-INVITE), from the transaction or as a
        stray 2xx after it ended. Applies §13.2.2.4 forking rules."""
        status = response.status
        to_tag = response.to.tag
        from_tag = invite.from_.tag or ""
        key = (invite.call_id, from_tag, invite.cseq.seq)
        record = self._invites.get(key)
        if record is None:
            record = self._invites[key] = _InviteRecord(invite)
        if status >= 300:
            if invite.to.tag is not None:
                # A re-INVITE failed: the dialog stays (unless 481/408, §12.2.1.2).
                d = self.find(response, incoming=False)
                if d is not None:
                    d.receive_response(invite, response)
            else:
                # The initial INVITE failed: its early dialogs end (§12.3).
                for tag in record.tags:
                    d = self.get(DialogId(invite.call_id, from_tag, tag))
                    if d is not None and d.state is DialogState.EARLY:
                        self.remove(d)
            self._invites.pop(key, None)
            return UacResponse(None)
        if status == 100 or to_tag is None:
            return UacResponse(None)
        dialog = self.get(DialogId(invite.call_id, from_tag, to_tag))
        record.tags.add(to_tag)
        if status < 200:
            if dialog is None and record.winner is None and invite.to.tag is None:
                dialog = self.add(Dialog.uac(invite, response))  # early dialog (§12.1.2)
            elif dialog is not None:
                dialog.receive_response(invite, response)
            return UacResponse(dialog)
        # 2xx
        if record.winner is None or record.winner == to_tag:
            first = record.winner is None
            record.winner = to_tag
            if record.expires is None:
                record.expires = now + 64 * self.timers.t1  # like Timer M (RFC 6026 §8.4)
                heapq.heappush(self._expiries, (record.expires, key))
            if dialog is None:
                dialog = self.add(Dialog.uac(invite, response))
            elif first and dialog.state is DialogState.EARLY:
                dialog.confirm(response)
            elif first:
                dialog.receive_response(invite, response)  # re-INVITE answered
            if first:
                return UacResponse(dialog)
            ack = dialog.acks.get(invite.cseq.seq)
            return UacResponse(dialog, [ack] if ack is not None else [], retransmission=True)
        # A 2xx from another fork: ACK it, then BYE it (§13.2.2.4).
        lost_id = DialogId(invite.call_id, from_tag, to_tag)
        if lost_id in self._fork_acks:
            return UacResponse(None, [self._fork_acks[lost_id]], fork=True, retransmission=True)
        if dialog is not None:
            self.dialogs.pop(dialog.id, None)  # its early dialog, if any
        loser = Dialog.uac(invite, response)
        ack = loser.create_ack(invite)
        bye = loser.create_request("BYE")  # terminates it
        self._fork_acks[lost_id] = ack  # its 2xx retransmissions get the ACK again
        return UacResponse(loser, [ack, bye], fork=True)

    def stray_2xx(self, response: Response, now: float) -> UacResponse:
        """A 2xx to an INVITE that matched no client transaction (after Timer M)."""
        from_tag = response.from_.tag or ""
        key = (response.call_id, from_tag, response.cseq.seq)
        record = self._invites.get(key)
        if record is not None:
            return self.uac_response(record.invite, response, now)
        dialog = self.find(response, incoming=False)
        if dialog is not None:
            ack = dialog.acks.get(response.cseq.seq)
            return UacResponse(dialog, [ack] if ack is not None else [], retransmission=True)
        return UacResponse(None)  # unknown: nothing to ACK it with (RFC 6026 §8.1 drops it)

    # -- timers

    def next_timer(self) -> float | None:
        deadlines = [t for r in self._retransmitters.values() if (t := r.next_timer()) is not None]
        expiry = self._next_expiry()
        if expiry is not None:
            deadlines.append(expiry)
        return min(deadlines) if deadlines else None

    def _next_expiry(self) -> float | None:
        """Earliest INVITE record expiry (stale heap entries of forgotten records are dropped)."""
        heap = self._expiries
        while heap:
            deadline, key = heap[0]
            record = self._invites.get(key)
            if record is not None and record.expires == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> list[DialogAction]:
        out: list[DialogAction] = []
        for key, r in list(self._retransmitters.items()):
            deadline = r.next_timer()
            if deadline is not None and deadline <= now:
                out += r.handle_timer(now)
            if r.done:
                del self._retransmitters[key]
        heap = self._expiries
        while heap and heap[0][0] <= now:
            deadline, key2 = heapq.heappop(heap)
            record = self._invites.get(key2)
            if record is None or record.expires != deadline:
                continue  # forgotten, or a newer record under the same key
            del self._invites[key2]
            for tag in record.tags:
                self._fork_acks.pop(DialogId(key2[0], key2[1], tag), None)
        # Terminated dialogs are invisible already (get/find/each skip them); forget them
        # at most once a second rather than scanning every dialog on every timer.
        if self._purge_at is None or now >= self._purge_at or now < self._purge_at - 1.0:
            self._purge_at = now + 1.0
            for d in [d for d in self.dialogs.values() if d.terminated]:
                self.dialogs.pop(d.id, None)
        return out

    def forget_invite(self, invite: Request) -> None:
        self._invites.pop((invite.call_id, invite.from_.tag or "", invite.cseq.seq), None)

    def each(self, predicate: Callable[[Dialog], bool] | None = None) -> list[Dialog]:
        return [d for d in self.dialogs.values() if not d.terminated and (predicate is None or predicate(d))]
