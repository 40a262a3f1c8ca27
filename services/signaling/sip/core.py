"""The UA core, sans-IO: transactions and dialogs tied together (RFC 3261 §8, §12-§17).

:class:`UACore` is what sits between the transport and the TU. It does no I/O and reads no
clock: bytes come in with :meth:`UACore.receive`, requests go out with
:meth:`UACore.send_request`, time is a ``now`` argument, ``next_timer()``/``handle_timer(now)``
as in :mod:`.transaction`. Every call returns *outputs*: :class:`Transmit` (bytes for the
transport, in order) and events for the TU (:class:`MessageIn`, :class:`NewRequest`,
:class:`Cancelled`, :class:`ResponseIn`, :class:`Route`).

What it does:

* target failover: :meth:`send_request` takes the RFC 3263 candidates (resolved by the
  caller: the core never needs DNS) and tries them in order on transport error, timeout
  (Timer B/F) or 503 (§4.3), each attempt a new transaction (new branch); never after a 1xx
  to an INVITE. A large request goes over TCP first (§18.1.1, :func:`choose_transport`).
  When all fail the final response is a local 408 (timeout) or 503 (transport error).
* CANCEL (§9.1): held until a provisional response arrives, stops further candidates.
* Via (RFC 3581): outgoing requests get our sent-by, the transport and an empty ``rport``;
  incoming requests are stamped with ``received``/``rport`` and answered at the source address
  and port (§4), over the same connection for TCP/TLS (§18.2.2).
* in-dialog checks before the TU (481/491/500, §12.2.2, §14.2), 487 for a CANCELled INVITE
  (``auto_487``, §9.2), 2xx retransmission until the ACK and BYE when none comes
  (§13.3.1.4), ACK again for a retransmitted 2xx and ACK+BYE for a losing fork (§13.2.2.4).
* stateless answers to malformed requests (400, 505, 513... when Via/From/To/Call-ID/CSeq
  parse; an ACK is never answered), counted in ``stats`` like every drop.
* :func:`redact` for traces: credentials never leave in call events.

Requests the core itself originates and cannot route without DNS (a losing fork's ACK and
BYE, the BYE after an ACK timeout) come out as :class:`Route`: the driver resolves their
next hop and hands them back with :meth:`send_request`/:meth:`send_ack`.
"""

from __future__ import annotations

import logging
import re
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeAlias

from .dialog import AckTimeout, Dialog, Dialogs, Retransmit2xx
from .errors import SipError, SipParseError
from .headers import NameAddress, Reason, Via
from .message import (
    Headers,
    Request,
    Response,
    make_request,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
)
from .transaction import (
    AckReceived,
    Action,
    CancelReceived,
    ClientTransaction,
    InviteClientTransaction,
    RequestReceived,
    ResponseReceived,
    Send,
    ServerTransaction,
    State,
    StrayResponse,
    Timers,
    Transaction,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailure,
)

__all__ = [
    "MTU_LIMIT",
    "Addr",
    "Cancelled",
    "Incoming",
    "MessageIn",
    "NewRequest",
    "Outgoing",
    "Output",
    "ResponseIn",
    "Route",
    "Transmit",
    "UACore",
    "choose_transport",
    "redact",
]

log = logging.getLogger(__name__)

MTU_LIMIT = 1300  # RFC 3261 §18.1.1, path MTU unknown


@dataclass(frozen=True)
class Addr:
    """A peer or local address. ``host`` is an IP (IPv6 without brackets) or a host name."""

    transport: str  # "udp" | "tcp" | "tls"
    host: str
    port: int

    @property
    def is_stream(self) -> bool:
        return self.transport != "udp"

    @property
    def hostport(self) -> str:
        """``host:port`` as written in Via/Contact (IPv6 bracketed, RFC 3261 §25.1)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.transport}:{self.hostport}"


def choose_transport(size: int, addr: Addr, *, explicit: bool = False, mtu_limit: int = MTU_LIMIT) -> Addr:
    """RFC 3261 §18.1.1: a request larger than ``mtu_limit`` goes over TCP instead of UDP,
    unless the transport was chosen explicitly (``transport=udp`` in the URI). If TCP then
    fails, the caller may retry over UDP as the RFC allows."""
    if addr.transport == "udp" and not explicit and size > mtu_limit:
        return replace(addr, transport="tcp")
    return addr


_DIGEST_RESPONSE_RE = re.compile(r'(\bresponse\s*=\s*)("[^"]*"|[^,\s]+)', re.I)
_CREDENTIAL_HEADERS = ("Authorization", "Proxy-Authorization")


def redact(msg: Request | Response) -> Request | Response:
    """A copy of ``msg`` whose Authorization/Proxy-Authorization credentials read
    ``<redacted>`` (the Digest ``response``; the whole credentials of other schemes), so
    messages can be published as call events. Without credentials, ``msg`` itself."""
    if not any(name in _CREDENTIAL_HEADERS for name, _ in msg.headers):
        return msg  # nothing to hide: the copy would serialize to the same bytes
    headers = Headers()
    for name, value in msg.headers:
        if name in _CREDENTIAL_HEADERS:
            scheme, _, _rest = value.partition(" ")
            if scheme.lower() == "digest":
                value = _DIGEST_RESPONSE_RE.sub(r'\1"<redacted>"', value)
            else:
                value = f"{scheme} <redacted>"
        headers.add(name, value)
    if isinstance(msg, Request):
        return Request(msg.method, msg.uri, headers, msg.body)
    return Response(msg.status, msg.reason, headers, msg.body)


# ------------------------------------------------------------------ requests in flight


class Outgoing:
    """One request we send, over one or more attempts (a new transaction each). ``options``
    is the caller's, handed back on every :class:`Transmit` of it (say, TLS settings)."""

    def __init__(self, request: Request, candidates: Sequence[Addr], options: object = None) -> None:
        self.original = request
        self.request = request  # the attempt in flight, as sent (with its Via)
        self.candidates = list(candidates)
        self.options = options
        self.target: Addr | None = None
        self.transaction: ClientTransaction | None = None
        self.responses: list[Response] = []
        self.final_response: Response | None = None
        self.dialog: Dialog | None = None  # the confirmed dialog of an answered INVITE
        self.early_dialogs: list[Dialog] = []
        self.error: str | None = None  # set when the final response is local (408/503/487)
        self.attempts: list[tuple[Addr, str]] = []  # (target, outcome) of failed attempts
        self.cancelled = False
        self.cancel_reason: Reason | None = None
        self.ack_request: Request | None = None

    @property
    def method(self) -> str:
        return self.original.method

    @property
    def done(self) -> bool:
        return self.final_response is not None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.original.uri} target={self.target}>"


class Incoming:
    """A request from a peer, answered with :meth:`UACore.respond`; an ACK for a 2xx has
    ``transaction`` None and is not answered."""

    def __init__(
        self,
        request: Request,
        source: Addr,
        local: Addr,
        transaction: ServerTransaction | None,
        dialog: Dialog | None,
    ) -> None:
        self.request = request
        self.source = source
        self.local = local
        self.transaction = transaction
        self.dialog = dialog
        self.responses: list[Response] = []
        self.to_tag = request.to.tag or new_tag()  # the same on every response (§8.2.6.2)
        self.cancel_received = False

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def answered(self) -> bool:
        return any(r.status >= 200 for r in self.responses)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} from {self.source}>"


IncomingFactory: TypeAlias = Callable[
    [Request, Addr, Addr, ServerTransaction | None, Dialog | None], Incoming
]


# ---------------------------------------------------------------------------- outputs


@dataclass(frozen=True, eq=False)
class Transmit:
    """Send ``message`` to ``dest``, in order with earlier transmits to the same ``dest``.
    A failure goes back with :meth:`UACore.transport_error`."""

    message: Request | Response
    dest: Addr
    transaction: Transaction | None = None
    options: object = None


@dataclass(frozen=True, eq=False)
class MessageIn:
    """A message parsed from the network, before the core acted on it (for traces)."""

    message: Request | Response
    source: Addr


@dataclass(frozen=True, eq=False)
class NewRequest:
    """A request for the TU (answer it with :meth:`UACore.respond`), or an ACK for a 2xx."""

    incoming: Incoming


@dataclass(frozen=True, eq=False)
class Cancelled:
    """A CANCEL arrived for this INVITE (§9.2); answered 487 already when ``auto_487``."""

    incoming: Incoming


@dataclass(frozen=True, eq=False)
class ResponseIn:
    """A response for the TU: provisional, or the final one (``outgoing.final_response``,
    the first 2xx for an INVITE; possibly local, with ``outgoing.error``)."""

    outgoing: Outgoing
    response: Response

    @property
    def final(self) -> bool:
        return self.outgoing.final_response is self.response


@dataclass(frozen=True, eq=False)
class Route:
    """A request the core originated (a losing fork's ACK and BYE, the BYE after an ACK
    timeout) whose next hop needs resolving: give it back with send_ack/send_request."""

    request: Request
    dialog: Dialog | None = None


Output: TypeAlias = Transmit | MessageIn | NewRequest | Cancelled | ResponseIn | Route


def _copy(request: Request) -> Request:
    return Request(request.method, request.uri, request.headers.copy(), request.body)


# ------------------------------------------------------------------------- the core


class UACore:
    """Transactions, dialogs, failover and Via handling of one endpoint.

    ``local_addr(transport)`` gives the listener for Via/Contact (None when there is none);
    ``make_incoming`` builds the :class:`Incoming` objects handed to the TU (a driver may
    subclass it)."""

    def __init__(
        self,
        *,
        timers: Timers | None = None,
        local_addr: Callable[[str], Addr | None] = lambda transport: None,
        public_host: str | None = None,
        user_agent: str | None = "Switchboard",
        auto_487: bool = True,
        make_incoming: IncomingFactory = Incoming,
    ) -> None:
        self.timers = timers or Timers()
        self.layer = TransactionLayer(self.timers)
        self.dialogs = Dialogs(self.timers)
        self.public_host = public_host
        self.user_agent = user_agent
        self.auto_487 = auto_487
        self.stats: Counter[str] = Counter()
        self._listener = local_addr
        self._make_incoming = make_incoming
        self._clients: dict[ClientTransaction, Outgoing] = {}
        self._servers: dict[ServerTransaction, Incoming] = {}
        # Where each dialog's ACK went, so the ACK for a retransmitted 2xx follows it.
        self._ack_dest: weakref.WeakKeyDictionary[Dialog, tuple[Addr, object]] = weakref.WeakKeyDictionary()

    # -- addresses

    def local_addr(self, transport: str) -> Addr | None:
        return self._listener(transport) or self._listener("udp")

    def advertised(self, local: Addr | None) -> str:
        """host:port for Via/Contact: the listener's, with ``public_host`` when set or when
        it is bound to a wildcard address."""
        if local is None:
            return self.public_host or "127.0.0.1"
        host = local.host
        if host in ("0.0.0.0", "::") or self.public_host:
            host = self.public_host or "127.0.0.1"
        return replace(local, host=host).hostport

    def contact(
        self, local: Addr | None = None, *, transport: str | None = None, user: str | None = None
    ) -> str:
        """Our Contact (a name-addr) for the listener ``local`` (or the one of ``transport``)."""
        t = local.transport if local is not None else (transport or "udp")
        listener = self._listener(t) if local is None or local.transport != "udp" else local
        if listener is None:
            listener = local
        user_part = f"{user}@" if user else ""
        scheme, param = ("sips", "") if t == "tls" else ("sip", "" if t == "udp" else f";transport={t}")
        return f"<{scheme}:{user_part}{self.advertised(listener)}{param}>"

    def create_request(
        self,
        method: str,
        uri: str,
        *,
        from_: NameAddress | str,
        to: NameAddress | str,
        call_id: str | None = None,
        cseq: int = 1,
        transport: str = "udp",
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """An out-of-dialog request with a From tag, a new Call-ID, our Contact and a
        placeholder Via (completed when sent)."""
        f = NameAddress.parse(from_) if isinstance(from_, str) else from_
        if f.tag is None:
            f.tag = new_tag()
        extra = list(headers)
        if self.user_agent:
            extra.append(("User-Agent", self.user_agent))
        return make_request(
            method,
            uri,
            from_=f,
            to=to,
            call_id=call_id or new_call_id(),
            cseq=cseq,
            via=Via("UDP", "invalid", None, {"branch": new_branch()}),
            contact=self.contact(transport=transport) if method in ("INVITE", "SUBSCRIBE", "REFER") else None,
            headers=extra,
            body=body,
            content_type=content_type,
        )

    # -- sending requests

    def send_request(
        self, request: Request, candidates: Sequence[Addr], now: float, *, options: object = None
    ) -> tuple[Outgoing, list[Output]]:
        """Send ``request`` to the first of ``candidates``, failing over to the next on
        transport error, timeout or 503 (RFC 3263 §4.3)."""
        outgoing = Outgoing(request, candidates, options)
        return outgoing, self.start(outgoing, now)

    def start(self, outgoing: Outgoing, now: float) -> list[Output]:
        """Start an :class:`Outgoing` built by the caller (a subclass, say)."""
        if outgoing.method == "ACK":
            raise ValueError("use send_ack for ACK")
        out: list[Output] = []
        self._next_attempt(outgoing, None, now, out)
        return out

    def cancel(self, outgoing: Outgoing, now: float, reason: Reason | None = None) -> list[Output]:
        """CANCEL the INVITE (§9.1): sent once a provisional response arrived, never after
        the final one. Stops trying further candidates."""
        if outgoing.done or outgoing.cancelled:
            return []
        outgoing.cancelled = True
        outgoing.cancel_reason = reason
        tx = outgoing.transaction
        out: list[Output] = []
        if isinstance(tx, InviteClientTransaction) and not tx.terminated:
            self._run(self.layer.cancel(tx, now, reason=reason), now, out)
        return out

    def send_ack(
        self, ack: Request, dest: Addr, now: float, *, dialog: Dialog | None = None, options: object = None
    ) -> list[Output]:
        """Send an ACK for a 2xx outside any transaction (§17.1.1.3); the dialog's later
        ACKs (for 2xx retransmissions) go the same way."""
        if dialog is not None:
            self._ack_dest[dialog] = (dest, options)
        self._stamp_via(ack, dest)
        return [Transmit(ack, dest, None, options)]

    def ack_dest(self, dialog: Dialog) -> Addr | None:
        """Where this dialog's last ACK went, if one was sent."""
        found = self._ack_dest.get(dialog)
        return found[0] if found is not None else None

    def _next_attempt(self, outgoing: Outgoing, outcome: str | None, now: float, out: list[Output]) -> None:
        """Start the next attempt, or finish with ``outcome`` when there is none."""
        if outcome is not None and outgoing.target is not None:
            outgoing.attempts.append((outgoing.target, outcome))
        if not outgoing.candidates or (outcome is not None and outgoing.cancelled):
            if outcome is None:
                outcome = "cancelled" if outgoing.cancelled else "no target"
            # §8.1.3.1: a timeout counts as 408, a transport failure as 503 (§18.4).
            status = {"timeout": 408, "cancelled": 487}.get(outcome, 503)
            self._finish(outgoing, make_response(outgoing.original, status), out, outcome)
            return
        dest = outgoing.candidates.pop(0)
        attempt = _copy(outgoing.original)
        sized = choose_transport(len(bytes(attempt)), dest)
        if sized != dest:
            outgoing.candidates.insert(0, dest)  # §18.1.1: TCP for a large request, then UDP
            dest = sized
        self._stamp_via(attempt, dest)
        outgoing.request = attempt
        outgoing.target = dest
        tx, actions = self.layer.send_request(attempt, dest, now, reliable=dest.is_stream)
        outgoing.transaction = tx
        self._clients[tx] = outgoing
        if outgoing.cancelled and isinstance(tx, InviteClientTransaction):
            actions += self.layer.cancel(tx, now, reason=outgoing.cancel_reason)
        self._run(actions, now, out)

    def _stamp_via(self, request: Request, dest: Addr) -> None:
        """Top Via: transport, our sent-by, a fresh branch, ``rport`` (RFC 3581 §3)."""
        via = request.top_via if "Via" in request.headers else Via("UDP", "invalid")
        host, _, port = self.advertised(self.local_addr(dest.transport)).rpartition(":")
        via.transport = dest.transport.upper()
        via.host = host
        via.port = int(port)
        via.params["branch"] = new_branch()  # each attempt is a new transaction (RFC 3263 §4.3)
        via.params.pop("received", None)
        via.params["rport"] = None
        request.set_top_via(via)

    def _finish(
        self, outgoing: Outgoing, response: Response, out: list[Output], error: str | None = None
    ) -> None:
        if outgoing.done:
            return
        outgoing.error = error
        outgoing.final_response = response
        outgoing.responses.append(response)
        out.append(ResponseIn(outgoing, response))

    # -- answering requests

    def respond(
        self,
        incoming: Incoming,
        response: Response | int,
        reason: str | None = None,
        *,
        now: float,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> tuple[Response, list[Output]]:
        """Answer with a Response or a status. For statuses other than 100 the To tag is
        added (the same one for every response of this request); a 101-299 to an INVITE
        (and a 2xx to SUBSCRIBE/REFER) gets our Contact and creates or updates the dialog."""
        tx = incoming.transaction
        if tx is None:
            raise RuntimeError("an ACK is not answered")
        if isinstance(response, int):
            response = make_response(
                incoming.request,
                response,
                reason,
                to_tag=incoming.to_tag,
                headers=headers,
                body=body,
                content_type=content_type,
            )
        if (
            100 < response.status < 300
            and incoming.method in ("INVITE", "SUBSCRIBE", "REFER")
            and "Contact" not in response.headers
        ):
            response.headers.add("Contact", self.contact(incoming.local))
        if self.user_agent and "Server" not in response.headers:
            response.headers.add("Server", self.user_agent)
        incoming.responses.append(response)
        if tx.state is State.TERMINATED:
            # The transaction already ended under us (its transport failed, §17.2.4: a TCP
            # peer that closed): nothing can carry this response any more.
            log.debug("response %d not sent: its transaction is over", response.status)
            return response, []
        actions = self.layer.respond(tx, response, now)
        if response.status > 100 and (incoming.dialog is None or incoming.method == "INVITE"):
            dialog = self.dialogs.uas_response(incoming.request, response, now, context=tx)
            if dialog is not None:
                incoming.dialog = dialog
        elif incoming.dialog is not None:
            incoming.dialog.response_sent(incoming.request, response)
        out: list[Output] = []
        self._run(actions, now, out)
        return response, out

    # -- input from the network

    def receive(self, data: bytes, source: Addr, local: Addr, now: float) -> list[Output]:
        """A message from ``source`` that arrived on our ``local`` address."""
        try:
            msg = parse_message(data)
        except SipParseError as exc:
            return self._malformed(exc, source)
        out: list[Output] = [MessageIn(msg, source)]
        try:
            if isinstance(msg, Request):
                reply_to = self._stamp_received(msg, source)
                actions = self.layer.receive(msg, source, now, reliable=source.is_stream, reply_to=reply_to)
            else:
                actions = self.layer.receive(msg, source, now, reliable=source.is_stream)
        except SipError as exc:  # a checked header failed on a path the parser let through
            error = SipParseError(exc.reason, exc.status, is_request=isinstance(msg, Request),
                                  headers=tuple(msg.headers))  # fmt: skip
            return out + self._malformed(error, source)
        self.stats["messages_in"] += 1
        self._run(actions, now, out, local)
        return out

    def transport_error(self, transmit: Transmit, reason: str, now: float) -> list[Output]:
        """The transport could not send ``transmit``: its transaction fails (§17.1.4)."""
        self.stats["send_errors"] += 1
        out: list[Output] = []
        tx = transmit.transaction
        if isinstance(tx, ClientTransaction | ServerTransaction):
            self._run(self.layer.transport_error(tx, reason, now), now, out)
        return out

    def _stamp_received(self, request: Request, source: Addr) -> Addr:
        """RFC 3581 §4 / §18.2.1: stamp received/rport; return where responses go."""
        request.stamp_received(source.host, source.port)
        if source.is_stream:
            return source  # §18.2.2: back over the connection it came on
        via = request.top_via
        if via.rport_requested:
            return source  # RFC 3581 §4: the source IP and port
        host, port = via.response_address(5060)
        return Addr("udp", host, port)

    def _malformed(self, exc: SipParseError, source: Addr) -> list[Output]:
        """Answer a broken request statelessly when Via/From/To/Call-ID/CSeq allow it."""
        if exc.is_request and exc.headers:
            try:
                fake = Request("INVALID", "sip:invalid", Headers(exc.headers))
                if fake.cseq.method != "ACK":  # an ACK is never answered (§17.1.1.3)
                    fake.top_via  # noqa: B018 - must parse
                    fake.from_  # noqa: B018
                    fake.to  # noqa: B018
                    fake.call_id  # noqa: B018
                    response = make_response(fake, exc.status, exc.reason[:100], to_tag=new_tag())
                    via = response.top_via
                    via.stamp(source.host, source.port)
                    response.set_top_via(via)
                    dest = source
                    if not (source.is_stream or via.rport_requested):
                        host, port = via.response_address(5060)
                        dest = Addr("udp", host, port)
                    self.stats["malformed_answered"] += 1
                    return [Transmit(response, dest)]
            except (SipParseError, ValueError):
                try:
                    lenient = self._lenient_answer(exc, source)
                except (SipParseError, ValueError):
                    lenient = None
                if lenient is not None:
                    self.stats["malformed_answered"] += 1
                    return [lenient]
        self.stats["malformed_dropped"] += 1
        log.debug("dropped malformed message from %s: %s", source, exc.reason)
        return []

    def _lenient_answer(self, exc: SipParseError, source: Addr) -> Transmit | None:
        """RFC 4475 §3.1.2.1, §3.1.2.4, §3.3.1: a request with a usable top Via is answered
        even when other headers are broken or missing (badinv01, scalar02, insuf): the Via
        with its empty parameters dropped, and From, To, Call-ID and CSeq as they came."""
        headers = Headers(exc.headers or ())
        cseq = headers.get("CSeq") or ""
        if "ACK" in cseq.upper().split():
            return None  # an ACK is never answered (§17.1.1.3)
        vias = headers.get_all("Via")  # raw lines: the list itself may be what is broken
        if not vias:
            return None
        sent_by, *params = vias[0].split(",")[0].split(";")
        try:
            via = Via.parse(";".join([sent_by.strip(), *(p.strip() for p in params if p.strip())]))
        except (SipParseError, ValueError):
            return None
        via.stamp(source.host, source.port)
        out = Headers()
        out.add("Via", str(via))
        for name in ("From", "To", "Call-ID", "CSeq"):
            value = headers.get(name)
            if value is not None:
                out.add(name, value)
        response = Response(exc.status, exc.reason[:100], out)
        dest = source
        if not (source.is_stream or via.rport_requested):
            host, port = via.response_address(5060)
            dest = Addr("udp", host, port)
        return Transmit(response, dest)

    # -- timers

    def next_timer(self) -> float | None:
        deadlines = [t for t in (self.layer.next_timer(), self.dialogs.next_timer()) if t is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> list[Output]:
        out: list[Output] = []
        self._run(self.layer.handle_timer(now), now, out)
        for action in self.dialogs.handle_timer(now):
            if isinstance(action, Retransmit2xx):
                tx = action.context
                if isinstance(tx, ServerTransaction) and tx.state is State.ACCEPTED:
                    self._run(self.layer.respond(tx, action.response, now), now, out)
                elif isinstance(tx, ServerTransaction) and isinstance(tx.dest, Addr):
                    out.append(Transmit(action.response, tx.dest))  # §13.3.1.4: the core resends
            elif isinstance(action, AckTimeout):
                self.stats["ack_timeouts"] += 1
                log.info("no ACK for the 2xx of %s: sending BYE", action.dialog)
                if action.bye is not None:
                    out.append(Route(action.bye))
        return out

    # -- transaction actions

    def _run(self, actions: list[Action], now: float, out: list[Output], local: Addr | None = None) -> None:
        for action in actions:
            if isinstance(action, Send):
                assert isinstance(action.dest, Addr)
                owner = self._owner(action)
                options = owner.options if owner is not None else None
                out.append(Transmit(action.message, action.dest, action.transaction, options))
            elif isinstance(action, ResponseReceived):
                self._on_response(action, now, out)
            elif isinstance(action, RequestReceived):
                self._on_new_request(action, now, out, local)
            elif isinstance(action, AckReceived):
                assert isinstance(action.source, Addr)
                dialog = self.dialogs.ack_received(action.request)
                incoming = self._make_incoming(
                    action.request, action.source, self._local_for(action.source, local), None, dialog
                )
                out.append(NewRequest(incoming))
            elif isinstance(action, CancelReceived):
                self._on_cancel(action, now, out)
            elif isinstance(action, StrayResponse):
                result = self.dialogs.stray_2xx(action.response, now)
                self._route(result.send, out)
                if not result.send:
                    self.stats["stray_2xx_dropped"] += 1
            elif isinstance(action, TransactionTimeout):
                self._on_failure(action.transaction, "timeout", now, out)
            elif isinstance(action, TransportFailure):
                self._on_failure(action.transaction, action.reason, now, out)
            elif isinstance(action, TransactionTerminated):
                tx = action.transaction
                if isinstance(tx, ClientTransaction):
                    self._clients.pop(tx, None)
                elif isinstance(tx, ServerTransaction):
                    self._servers.pop(tx, None)

    def _owner(self, send: Send) -> Outgoing | None:
        tx = send.transaction
        if not isinstance(tx, ClientTransaction):
            return None
        owner = self._clients.get(tx)
        if owner is None and isinstance(send.message, Request) and send.message.method == "CANCEL":
            # A CANCEL travels like its INVITE (same branch, §9.1), with the INVITE's options.
            invite = self.layer.clients.get((send.message.top_via.branch or "", "INVITE"))
            owner = self._clients.get(invite) if invite is not None else None
        return owner

    def _local_for(self, source: Addr, local: Addr | None) -> Addr:
        return self._listener(source.transport) or local or source

    def _route(self, requests: list[Request], out: list[Output]) -> None:
        """Requests from the dialog layer: an ACK goes where the dialog's ACK went; anything
        else (and an ACK of a dialog we never ACKed) needs its next hop resolved."""
        for req in requests:
            dialog = self.dialogs.find(req, incoming=False) if req.method == "ACK" else None
            sent = self._ack_dest.get(dialog) if dialog is not None else None
            if sent is not None:
                self._stamp_via(req, sent[0])
                out.append(Transmit(req, sent[0], None, sent[1]))
            else:
                out.append(Route(req, dialog))

    def _on_response(self, event: ResponseReceived, now: float, out: list[Output]) -> None:
        outgoing = self._clients.get(event.transaction)
        if outgoing is None:
            return  # e.g. the response to our CANCEL
        response = event.response
        if outgoing.method == "INVITE":
            result = self.dialogs.uac_response(outgoing.request, response, now)
            self._route(result.send, out)
            if result.fork or result.retransmission:
                return  # handled here (ACK again / ACK+BYE), not for the TU
            if result.dialog is not None:
                if response.is_success:
                    outgoing.dialog = result.dialog
                elif result.dialog not in outgoing.early_dialogs:
                    outgoing.early_dialogs.append(result.dialog)
        elif outgoing.dialog is None:
            d = self.dialogs.find(response, incoming=False)
            if d is not None:
                d.receive_response(outgoing.request, response)
        if response.status < 200:
            outgoing.responses.append(response)
            out.append(ResponseIn(outgoing, response))
        elif response.status == 503 and outgoing.candidates and not outgoing.cancelled:
            self._next_attempt(outgoing, "503", now, out)  # RFC 3263 §4.3
        else:
            self._finish(outgoing, response, out)

    def _on_failure(self, tx: Transaction, outcome: str, now: float, out: list[Output]) -> None:
        if isinstance(tx, ClientTransaction):
            outgoing = self._clients.get(tx)
            if outgoing is not None and not outgoing.done:
                if outgoing.responses and outgoing.method == "INVITE":
                    # §9.1 guard expired after CANCEL, or a failure after 1xx: no failover.
                    outgoing.candidates.clear()
                self._next_attempt(outgoing, outcome, now, out)
        elif isinstance(tx, ServerTransaction):
            log.info("server transaction %s failed: %s", self._servers.get(tx), outcome)

    def _on_new_request(
        self, event: RequestReceived, now: float, out: list[Output], local: Addr | None
    ) -> None:
        request, tx, source = event.request, event.transaction, event.source
        assert isinstance(source, Addr)
        dialog, refusal = self.dialogs.check_request(request)
        incoming = self._make_incoming(request, source, self._local_for(source, local), tx, dialog)
        self._servers[tx] = incoming
        if refusal is not None:
            out += self.respond(incoming, refusal, now=now)[1]  # §12.2.2, §14.2: before the TU
            return
        out.append(NewRequest(incoming))

    def _on_cancel(self, event: CancelReceived, now: float, out: list[Output]) -> None:
        incoming = self._servers.get(event.transaction)
        if incoming is None:
            return
        incoming.cancel_received = True
        out.append(Cancelled(incoming))
        if self.auto_487 and not incoming.answered:
            out += self.respond(incoming, 487, now=now)[1]  # §9.2
