"""The SIP endpoint: the sans-IO transaction and dialog layers tied to the asyncio transports.

Outgoing::

    req = ep.create_request("INVITE", "sip:bob@example.com", from_=..., to=..., body=sdp,
                            content_type="application/sdp")
    call = await ep.request(req, await locate("sip:bob@example.com"))
    async for resp in call:         # 1xx..., then the final (2xx or non-2xx) and the end
        ...
    if call.final_response.is_success:
        await call.ack()            # ACK for the 2xx (§13.2.2.4); forks are ACKed+BYEd for us
    await call.cancel()             # any time: held until a 1xx (§9.1), no-op after a final

``request()`` tries the candidates one after another on transport error, timeout (Timer B/F)
or 503 (RFC 3263 §4.3), each attempt a new transaction (new branch). When all fail the final
response is a local 408 (timeout) or 503 (transport error), with ``call.error`` saying why.

Incoming: ``on_request(incoming)`` gets every new request (and every ACK for a 2xx, with no
transaction) as an :class:`IncomingRequest`; ``incoming.respond(200, body=...)`` answers it.
In-dialog requests whose To tag matches no dialog get 481, glare 491, out-of-order CSeq 500
before the TU sees them (§12.2.2, §14.2). A CANCEL is answered 200 by the transaction layer,
the INVITE 487 (``auto_487``) and ``incoming.cancelled`` is set. A 2xx to an INVITE is
retransmitted until its ACK arrives (§13.3.1.4).

Via: outgoing requests get our sent-by, the transport and an empty ``rport`` (RFC 3581 §3);
incoming requests are stamped with ``received``/``rport`` and answered at the source address
and port (RFC 3581 §4), over the same connection for TCP/TLS (§18.2.2).

Malformed messages: a request that can still be answered gets the parse error's status
(400, 505, 513...); anything else is dropped and counted in ``stats``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from services.signaling.sip.dialog import Dialog, Dialogs, next_hop
from services.signaling.sip.errors import SipError, SipParseError
from services.signaling.sip.headers import NameAddress, Reason, Via
from services.signaling.sip.message import (
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
from services.signaling.sip.transaction import (
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
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailure,
)
from services.signaling.transport import (
    Addr,
    ClientTlsOptions,
    ServerTlsConfig,
    TransportError,
    TransportLayer,
    choose_transport,
    locate,
)

__all__ = ["ClientRequest", "IncomingRequest", "SipEndpoint", "redact"]

log = logging.getLogger(__name__)

MessageHook = Callable[[Request | Response, Addr], None]
RequestHandler = Callable[["IncomingRequest"], Awaitable[None] | None]
Locator = Callable[[str], Awaitable[list[Addr]]]

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
            scheme, _, rest = value.partition(" ")
            if scheme.lower() == "digest":
                value = _DIGEST_RESPONSE_RE.sub(r'\1"<redacted>"', value)
            else:
                value = f"{scheme} <redacted>"
        headers.add(name, value)
    if isinstance(msg, Request):
        return Request(msg.method, msg.uri, headers, msg.body)
    return Response(msg.status, msg.reason, headers, msg.body)


def _copy(request: Request) -> Request:
    return Request(request.method, request.uri, request.headers.copy(), request.body)


class ClientRequest:
    """One request we sent (over one or more attempts). Iterate it for the responses the
    TU should see: provisional ones, then the final one (the first 2xx for an INVITE)."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        request: Request,
        candidates: list[Addr],
        tls: ClientTlsOptions | None,
        server_name: str | None,
    ) -> None:
        self.endpoint = endpoint
        self.original = request
        self.request = request  # the attempt in flight, as sent (with its Via)
        self.candidates = list(candidates)
        self.tls = tls
        self.server_name = server_name
        self.target: Addr | None = None
        self.transaction: ClientTransaction | None = None
        self.responses: list[Response] = []
        self.final_response: Response | None = None
        self.dialog: Dialog | None = None  # the confirmed dialog of an answered INVITE
        self.early_dialogs: list[Dialog] = []
        self.error: str | None = None  # set when the final response is local (408/503)
        self.attempts: list[tuple[Addr, str]] = []  # (target, outcome) of failed attempts
        self.cancelled = False
        self.ack_request: Request | None = None
        self._cancel_reason: Reason | None = None
        self._queue: asyncio.Queue[Response | None] = asyncio.Queue()
        self._done = asyncio.Event()

    @property
    def method(self) -> str:
        return self.original.method

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def __aiter__(self) -> AsyncIterator[Response]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Response]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item

    async def final(self) -> Response:
        """Wait for the final response (a local 408/503 when every candidate failed)."""
        await self._done.wait()
        assert self.final_response is not None
        return self.final_response

    async def cancel(self, reason: Reason | None = None) -> None:
        """CANCEL the INVITE (§9.1): sent once a provisional response arrived, never after
        the final one. Stops trying further candidates."""
        if self.done or self.cancelled:
            return
        self.cancelled = True
        self._cancel_reason = reason
        tx = self.transaction
        if isinstance(tx, InviteClientTransaction) and not tx.terminated:
            self.endpoint._run(self.endpoint.layer.cancel(tx, self.endpoint.now(), reason=reason))

    async def ack(
        self, *, body: bytes = b"", content_type: str | None = None, headers: Sequence[tuple[str, str]] = ()
    ) -> Request:
        """Send the ACK for the 2xx (§13.2.2.4): the INVITE's CSeq number and credentials,
        routed by the dialog. Resent automatically for each 2xx retransmission."""
        if self.dialog is None:
            raise RuntimeError("no 2xx to acknowledge")
        ack = self.dialog.create_ack(self.request, body=body, content_type=content_type, headers=headers)
        self.ack_request = ack
        await self.endpoint.send_ack(ack, self.dialog, tls=self.tls, server_name=self.server_name)
        return ack

    # -- driven by the endpoint

    def _deliver(self, response: Response) -> None:
        self.responses.append(response)
        self._queue.put_nowait(response)

    def _finish(self, response: Response, error: str | None = None) -> None:
        if self.done:
            return
        self.error = error
        self.final_response = response
        self._deliver(response)
        self._queue.put_nowait(None)
        self._done.set()

    def __repr__(self) -> str:
        return f"<ClientRequest {self.method} {self.original.uri} target={self.target}>"


class IncomingRequest:
    """A request from a peer. ``respond()`` answers it through its server transaction;
    ACKs (for 2xx) come with ``transaction`` None and cannot be answered."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        request: Request,
        source: Addr,
        local: Addr,
        transaction: ServerTransaction | None,
        dialog: Dialog | None,
    ) -> None:
        self.endpoint = endpoint
        self.request = request
        self.source = source
        self.local = local
        self.transaction = transaction
        self.dialog = dialog
        self.cancelled = asyncio.Event()  # a CANCEL arrived for this INVITE (§9.2)
        self.responses: list[Response] = []
        self.to_tag = request.to.tag or new_tag()

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def answered(self) -> bool:
        return any(r.status >= 200 for r in self.responses)

    def respond(
        self,
        response: Response | int,
        reason: str | None = None,
        *,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Response:
        """Answer with a Response or a status. For statuses other than 100 the To tag is
        added (the same one for every response of this request); a 101-299 to an INVITE
        (and a 2xx to SUBSCRIBE/REFER) gets our Contact and creates or updates the dialog."""
        if self.transaction is None:
            raise RuntimeError("an ACK is not answered")
        if isinstance(response, int):
            response = make_response(
                self.request,
                response,
                reason,
                to_tag=self.to_tag,
                headers=headers,
                body=body,
                content_type=content_type,
            )
        ep = self.endpoint
        if (
            100 < response.status < 300
            and self.method in ("INVITE", "SUBSCRIBE", "REFER")
            and "Contact" not in response.headers
        ):
            response.headers.add("Contact", ep.contact(self.local))
        if ep.user_agent and "Server" not in response.headers:
            response.headers.add("Server", ep.user_agent)
        self.responses.append(response)
        now = ep.now()
        actions = ep.layer.respond(self.transaction, response, now)
        if response.status > 100 and (self.dialog is None or self.method == "INVITE"):
            dialog = ep.dialogs.uas_response(self.request, response, now, context=self.transaction)
            if dialog is not None:
                self.dialog = dialog
        elif self.dialog is not None:
            self.dialog.response_sent(self.request, response)
        ep._run(actions)
        return response

    def __repr__(self) -> str:
        return f"<IncomingRequest {self.method} from {self.source}>"


class SipEndpoint:
    """One SIP endpoint: listeners, transactions, dialogs and a single timer task."""

    def __init__(
        self,
        *,
        on_request: RequestHandler | None = None,
        on_message_in: MessageHook | None = None,
        on_message_out: MessageHook | None = None,
        timers: Timers | None = None,
        locator: Locator | None = None,
        public_host: str | None = None,
        user_agent: str | None = "Switchboard",
        auto_487: bool = True,
        transport: TransportLayer | None = None,
    ) -> None:
        self.on_request = on_request
        self.on_message_in = on_message_in
        self.on_message_out = on_message_out
        self.timers = timers or Timers()
        self.layer = TransactionLayer(self.timers)
        self.dialogs = Dialogs(self.timers)
        self.locator: Locator = locator or locate
        self.public_host = public_host
        self.user_agent = user_agent
        self.auto_487 = auto_487
        self.transport = transport or TransportLayer(self._on_datagram, self._on_transport_error)
        self.stats: Counter[str] = Counter()
        self._clients: dict[ClientTransaction, ClientRequest] = {}
        self._servers: dict[ServerTransaction, IncomingRequest] = {}
        self._ack_dest: weakref.WeakKeyDictionary[Dialog, Addr] = weakref.WeakKeyDictionary()
        self._chains: dict[Addr, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._timer_task: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle

    async def listen(
        self, transport: str, host: str, port: int = 0, *, tls: ServerTlsConfig | None = None
    ) -> Addr:
        addr = await self.transport.listen(transport, host, port, tls=tls)
        self._start_timer()
        return addr

    async def close(self) -> None:
        self._closed = True
        if self._timer_task is not None:
            self._timer_task.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.transport.close()

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    # -- addresses

    def local_addr(self, transport: str) -> Addr | None:
        return self.transport.local_addr(transport) or self.transport.local_addr("udp")

    def _advertised(self, local: Addr | None, transport: str) -> str:
        """host:port for Via/Contact."""
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
        listener = self.transport.local_addr(t) if local is None or local.transport != "udp" else local
        if listener is None:
            listener = local
        user_part = f"{user}@" if user else ""
        scheme, param = ("sips", "") if t == "tls" else ("sip", "" if t == "udp" else f";transport={t}")
        return f"<{scheme}:{user_part}{self._advertised(listener, t)}{param}>"

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

    async def request(
        self,
        request: Request,
        target: Addr | Sequence[Addr] | None = None,
        *,
        tls: ClientTlsOptions | None = None,
        server_name: str | None = None,
    ) -> ClientRequest:
        """Send ``request`` in a client transaction to the first of the ``target``
        candidates (resolved from its next hop with the locator if None); fail over to the
        next on transport error, timeout or 503 (RFC 3263 §4.3)."""
        if request.method == "ACK":
            raise ValueError("use send_ack for ACK")
        if target is None:
            candidates = await self.locator(next_hop(request))
        elif isinstance(target, Addr):
            candidates = [target]
        else:
            candidates = list(target)
        self._start_timer()
        handle = ClientRequest(self, request, candidates, tls, server_name)
        self._next_attempt(handle, None)
        return handle

    def _next_attempt(self, handle: ClientRequest, outcome: str | None) -> None:
        """Start the next attempt, or finish with ``outcome`` when there is none."""
        if outcome is not None and handle.target is not None:
            handle.attempts.append((handle.target, outcome))
        if not handle.candidates or (outcome is not None and handle.cancelled):
            if outcome is None:
                outcome = "cancelled" if handle.cancelled else "no target"
            # §8.1.3.1: a timeout counts as 408, a transport failure as 503 (§18.4).
            status = {"timeout": 408, "cancelled": 487}.get(outcome, 503)
            handle._finish(make_response(handle.original, status), outcome)
            return
        dest = handle.candidates.pop(0)
        attempt = _copy(handle.original)
        sized = choose_transport(len(bytes(attempt)), dest)
        if sized != dest:
            handle.candidates.insert(0, dest)  # §18.1.1: TCP for a large request, then UDP
            dest = sized
        self._stamp_via(attempt, dest)
        handle.request = attempt
        handle.target = dest
        tx, actions = self.layer.send_request(attempt, dest, self.now(), reliable=dest.is_stream)
        handle.transaction = tx
        self._clients[tx] = handle
        if handle.cancelled and isinstance(tx, InviteClientTransaction):
            actions += self.layer.cancel(tx, self.now(), reason=handle._cancel_reason)
        self._run(actions, tls=handle.tls, server_name=handle.server_name)

    def _stamp_via(self, request: Request, dest: Addr) -> None:
        """Top Via: transport, our sent-by, a fresh branch, ``rport`` (RFC 3581 §3)."""
        via = request.top_via if "Via" in request.headers else Via("UDP", "invalid")
        local = self.transport.local_addr(dest.transport) or self.transport.local_addr("udp")
        host, _, port = self._advertised(local, dest.transport).rpartition(":")
        via.transport = dest.transport.upper()
        via.host = host
        via.port = int(port)
        via.params["branch"] = new_branch()  # each attempt is a new transaction (RFC 3263 §4.3)
        via.params.pop("received", None)
        via.params["rport"] = None
        request.set_top_via(via)

    async def send_ack(
        self,
        ack: Request,
        dialog: Dialog | None = None,
        dest: Addr | None = None,
        *,
        tls: ClientTlsOptions | None = None,
        server_name: str | None = None,
    ) -> None:
        """Send an ACK for a 2xx outside any transaction (§17.1.1.3)."""
        if dest is None and dialog is not None:
            dest = self._ack_dest.get(dialog)
        if dest is None:
            found = await self.locator(next_hop(ack))
            if not found:
                self.stats["ack_unroutable"] += 1
                return
            dest = found[0]
        if dialog is not None:
            self._ack_dest[dialog] = dest  # its ACK retransmissions go the same way
        self._stamp_via(ack, dest)
        self._enqueue(ack, dest, None, tls, server_name)

    # -- the action loop

    def _run(
        self, actions: list[Action], *, tls: ClientTlsOptions | None = None, server_name: str | None = None
    ) -> None:
        for action in actions:
            if isinstance(action, Send):
                assert isinstance(action.dest, Addr)
                opts = tls
                handle = (
                    self._clients.get(action.transaction)
                    if isinstance(action.transaction, ClientTransaction)
                    else None
                )
                if handle is not None:
                    opts, server_name = handle.tls, handle.server_name
                self._enqueue(action.message, action.dest, action.transaction, opts, server_name)
            elif isinstance(action, ResponseReceived):
                self._on_response(action)
            elif isinstance(action, RequestReceived):
                self._on_new_request(action)
            elif isinstance(action, AckReceived):
                self._on_ack(action)
            elif isinstance(action, CancelReceived):
                self._on_cancel(action)
            elif isinstance(action, StrayResponse):
                self._on_stray(action)
            elif isinstance(action, TransactionTimeout):
                self._on_failure(action.transaction, "timeout")
            elif isinstance(action, TransportFailure):
                self._on_failure(action.transaction, action.reason)
            elif isinstance(action, TransactionTerminated):
                tx = action.transaction
                if isinstance(tx, ClientTransaction):
                    self._clients.pop(tx, None)
                elif isinstance(tx, ServerTransaction):
                    self._servers.pop(tx, None)
        self._wake.set()

    def _enqueue(
        self,
        msg: Request | Response,
        dest: Addr,
        tx: object,
        tls: ClientTlsOptions | None = None,
        server_name: str | None = None,
    ) -> None:
        """Send in order per destination (a TCP connect must not let a later message pass)."""
        data = bytes(msg)
        self._hook(self.on_message_out, msg, dest)
        prev = self._chains.get(dest)
        if prev is None and self.transport.send_udp_now(data, dest):
            return  # UDP to an address, nothing queued before it: sent, in order, no task

        async def send() -> None:
            if prev is not None:
                await asyncio.wait([prev])
            try:
                await self.transport.send(data, dest, tls=tls, server_name=server_name)
            except TransportError as exc:
                self.stats["send_errors"] += 1
                log.info("send to %s failed: %s", dest, exc.reason)
                if isinstance(tx, ClientTransaction | ServerTransaction):
                    self._run(self.layer.transport_error(tx, exc.reason, self.now()))

        task = self._spawn(send())
        self._chains[dest] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._chains.get(dest) is t:
                del self._chains[dest]

        task.add_done_callback(done)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- client side events

    def _on_response(self, event: ResponseReceived) -> None:
        tx = event.transaction
        handle = self._clients.get(tx)
        if handle is None:
            return  # e.g. the response to our CANCEL
        response = event.response
        now = self.now()
        if handle.method == "INVITE":
            result = self.dialogs.uac_response(handle.request, response, now)
            if result.send:
                self._send_dialog_requests(result.send)
            if result.fork or result.retransmission:
                return  # handled here (ACK again / ACK+BYE), not for the TU
            if result.dialog is not None:
                if response.is_success:
                    handle.dialog = result.dialog
                elif result.dialog not in handle.early_dialogs:
                    handle.early_dialogs.append(result.dialog)
        elif handle.dialog is None:
            d = self.dialogs.find(response, incoming=False)
            if d is not None:
                d.receive_response(handle.request, response)
        if response.status < 200:
            handle._deliver(response)
            return
        if response.status == 503 and handle.candidates and not handle.cancelled:
            self._next_attempt(handle, "503")  # RFC 3263 §4.3
            return
        handle._finish(response)

    def _on_failure(self, tx: object, outcome: str) -> None:
        if isinstance(tx, ClientTransaction):
            handle = self._clients.get(tx)
            if handle is not None and not handle.done:
                if handle.final_response is None and (handle.responses and handle.method == "INVITE"):
                    # §9.1 guard expired after CANCEL, or a failure after 1xx: no failover.
                    handle.candidates.clear()
                self._next_attempt(handle, outcome)
        elif isinstance(tx, ServerTransaction):
            incoming = self._servers.get(tx)
            log.info("server transaction %s failed: %s", incoming, outcome)

    def _on_stray(self, event: StrayResponse) -> None:
        result = self.dialogs.stray_2xx(event.response, self.now())
        self._send_dialog_requests(result.send)
        if not result.send:
            self.stats["stray_2xx_dropped"] += 1

    def _send_dialog_requests(self, requests: list[Request]) -> None:
        for req in requests:
            if req.method == "ACK":
                dialog = self.dialogs.find(req, incoming=False)
                self._spawn(self.send_ack(req, dialog))
            else:
                self._spawn(self.request(req))

    # -- server side events

    def _on_new_request(self, event: RequestReceived) -> None:
        request = event.request
        tx = event.transaction
        source = event.source
        assert isinstance(source, Addr)
        dialog, refusal = self.dialogs.check_request(request)
        local = self._local_for(source)
        incoming = IncomingRequest(self, request, source, local, tx, dialog)
        self._servers[tx] = incoming
        if refusal is not None:
            incoming.respond(refusal)
            return
        if self.on_request is None:
            incoming.respond(200 if request.method in ("OPTIONS", "BYE") else 501)
            return
        self._call_handler(incoming)

    def _on_ack(self, event: AckReceived) -> None:
        dialog = self.dialogs.ack_received(event.request)
        assert isinstance(event.source, Addr)
        if self.on_request is not None:
            incoming = IncomingRequest(
                self, event.request, event.source, self._local_for(event.source), None, dialog
            )
            self._call_handler(incoming)

    def _on_cancel(self, event: CancelReceived) -> None:
        incoming = self._servers.get(event.transaction)
        if incoming is None:
            return
        incoming.cancelled.set()
        if self.auto_487 and not incoming.answered:
            incoming.respond(487)  # §9.2

    def _call_handler(self, incoming: IncomingRequest) -> None:
        assert self.on_request is not None
        try:
            result = self.on_request(incoming)
        except Exception:
            log.exception("on_request failed for %s", incoming)
            self._answer_500(incoming)
            return
        if inspect.isawaitable(result):
            task = self._spawn(result)

            def done(t: asyncio.Task[Any]) -> None:
                if not t.cancelled() and t.exception() is not None:
                    log.error("on_request failed for %s", incoming, exc_info=t.exception())
                    self._answer_500(incoming)

            task.add_done_callback(done)

    def _answer_500(self, incoming: IncomingRequest) -> None:
        tx = incoming.transaction
        if tx is not None and not tx.has_final and not tx.terminated:
            incoming.respond(500)

    def _local_for(self, source: Addr) -> Addr:
        return self.transport.local_addr(source.transport) or source

    # -- input from the transport

    def _on_transport_error(self, addr: Addr, reason: str) -> None:
        self.stats["transport_errors"] += 1
        log.info("transport error from %s: %s", addr, reason)

    def _on_datagram(self, data: bytes, source: Addr, local: Addr) -> None:
        try:
            msg = parse_message(data)
        except SipParseError as exc:
            self._malformed(exc, source)
            return
        self._hook(self.on_message_in, msg, source)
        now = self.now()
        try:
            if isinstance(msg, Request):
                reply_to = self._stamp_received(msg, source)
                actions = self.layer.receive(msg, source, now, reliable=source.is_stream, reply_to=reply_to)
            else:
                actions = self.layer.receive(msg, source, now, reliable=source.is_stream)
        except SipError as exc:  # a checked header failed on a path the parser let through
            self._malformed(SipParseError(exc.reason, exc.status, is_request=isinstance(msg, Request),
                                          headers=tuple(msg.headers)), source)  # fmt: skip
            return
        self.stats["messages_in"] += 1
        self._run(actions)

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

    def _malformed(self, exc: SipParseError, source: Addr) -> None:
        """Answer a broken request statelessly when Via/From/To/Call-ID/CSeq allow it."""
        if exc.is_request and exc.headers:
            try:
                headers = Headers(exc.headers)
                fake = Request("INVALID", "sip:invalid", headers)
                if fake.cseq.method != "ACK":  # an ACK is never answered
                    fake.top_via  # noqa: B018 - must parse
                    fake.from_  # noqa: B018
                    fake.to  # noqa: B018
                    fake.call_id  # noqa: B018
                    response = make_response(fake, exc.status, exc.reason[:100], to_tag=new_tag())
                    dest = self._stamp_received_via(response, source)
                    self.stats["malformed_answered"] += 1
                    self._enqueue(response, dest, None)
                    return
            except (SipParseError, ValueError):
                pass
        self.stats["malformed_dropped"] += 1
        log.debug("dropped malformed message from %s: %s", source, exc.reason)

    def _stamp_received_via(self, response: Response, source: Addr) -> Addr:
        via = response.top_via
        via.stamp(source.host, source.port)
        response.set_top_via(via)
        if source.is_stream or via.rport_requested:
            return source
        host, port = via.response_address(5060)
        return Addr("udp", host, port)

    def _hook(self, hook: MessageHook | None, msg: Request | Response, addr: Addr) -> None:
        if hook is None:
            return
        try:
            hook(msg, addr)
        except Exception:
            log.exception("message hook failed")

    # -- the single timer task

    def _start_timer(self) -> None:
        if self._timer_task is None or self._timer_task.done():
            self._timer_task = asyncio.get_running_loop().create_task(self._timer_loop())

    def next_timer(self) -> float | None:
        deadlines = [t for t in (self.layer.next_timer(), self.dialogs.next_timer()) if t is not None]
        return min(deadlines) if deadlines else None

    async def _timer_loop(self) -> None:
        while not self._closed:
            self._wake.clear()
            deadline = self.next_timer()
            timeout = None if deadline is None else max(0.0, deadline - self.now())
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
                continue  # something changed: recompute the deadline
            except TimeoutError:
                pass
            now = self.now()
            try:
                self._run(self.layer.handle_timer(now))
                for action in self.dialogs.handle_timer(now):
                    self._on_dialog_action(action)
            except Exception:
                log.exception("timer handling failed")

    def _on_dialog_action(self, action: object) -> None:
        from services.signaling.sip.dialog import AckTimeout, Retransmit2xx

        if isinstance(action, Retransmit2xx):
            tx = action.context
            if isinstance(tx, ServerTransaction) and tx.state is State.ACCEPTED:
                self._run(self.layer.respond(tx, action.response, self.now()))
            elif isinstance(tx, ServerTransaction) and isinstance(tx.dest, Addr):
                self._enqueue(action.response, tx.dest, None)  # §13.3.1.4: the core resends
        elif isinstance(action, AckTimeout):
            self.stats["ack_timeouts"] += 1
            log.info("no ACK for the 2xx of %s: sending BYE", action.dialog)
            if action.bye is not None:
                self._spawn(self.request(action.bye))
