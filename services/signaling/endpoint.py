"""The SIP endpoint: the sans-IO UA core (:mod:`.sip.core`) driven by asyncio.

Outgoing::

    req = ep.create_request("INVITE", "sip:bob@example.com", from_=..., to=..., body=sdp,
                            content_type="application/sdp")
    call = await ep.request(req, await locate("sip:bob@example.com"))
    async for resp in call:         # 1xx..., then the final (2xx or non-2xx) and the end
        ...
    if call.final_response.is_success:
        await call.ack()            # ACK for the 2xx (§13.2.2.4); forks are ACKed+BYEd for us
    await call.cancel()             # any time: held until a 1xx (§9.1), no-op after a final

Incoming: ``on_request(incoming)`` gets every new request (and every ACK for a 2xx, with no
transaction) as an :class:`IncomingRequest`; ``incoming.respond(200, body=...)`` answers it.

The SIP behaviour (failover, Via/rport, stateless answers, dialog checks, 2xx
retransmission) is the core's; this module owns what needs I/O: the sockets (the
TransportLayer), DNS (the locator, RFC 3263), the clock, one timer task, sends kept in order
per destination, and the TU's handler tasks.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from services.signaling.sip.core import (
    Cancelled,
    Incoming,
    MessageIn,
    NewRequest,
    Outgoing,
    Output,
    ResponseIn,
    Route,
    Transmit,
    UACore,
    redact,
)
from services.signaling.sip.dialog import Dialog, next_hop
from services.signaling.sip.headers import Reason
from services.signaling.sip.message import Request, Response
from services.signaling.sip.transaction import ServerTransaction, Timers
from services.signaling.transport import (
    Addr,
    ClientTlsOptions,
    ServerTlsConfig,
    TransportError,
    TransportLayer,
    locate,
)

__all__ = ["ClientRequest", "IncomingRequest", "SipEndpoint", "redact"]

log = logging.getLogger(__name__)

MessageHook = Callable[[Request | Response, Addr], None]
RequestHandler = Callable[["IncomingRequest"], Awaitable[None] | None]
Locator = Callable[[str], Awaitable[list[Addr]]]


class ClientRequest(Outgoing):
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
        super().__init__(request, candidates, (tls, server_name))
        self.endpoint = endpoint
        self.tls = tls
        self.server_name = server_name
        self._queue: asyncio.Queue[Response | None] = asyncio.Queue()
        self._done = asyncio.Event()

    def __aiter__(self) -> AsyncIterator[Response]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Response]:
        while (item := await self._queue.get()) is not None:
            yield item

    async def final(self) -> Response:
        """Wait for the final response (a local 408/503 when every candidate failed)."""
        await self._done.wait()
        assert self.final_response is not None
        return self.final_response

    async def cancel(self, reason: Reason | None = None) -> None:
        """CANCEL the INVITE (§9.1): sent once a provisional response arrived, never after
        the final one. Stops trying further candidates."""
        self.endpoint._do(self.endpoint.core.cancel(self, self.endpoint.now(), reason))

    async def ack(
        self, *, body: bytes = b"", content_type: str | None = None, headers: Sequence[tuple[str, str]] = (),
        dest: Addr | None = None,
    ) -> Request:
        """Send the ACK for the 2xx (§13.2.2.4): the INVITE's CSeq number and credentials,
        routed by the dialog (or to ``dest``: a NATed peer's source address). Resent
        automatically for each 2xx retransmission."""
        if self.dialog is None:
            raise RuntimeError("no 2xx to acknowledge")
        ack = self.dialog.create_ack(self.request, body=body, content_type=content_type, headers=headers)
        self.ack_request = ack
        await self.endpoint.send_ack(ack, self.dialog, dest, tls=self.tls, server_name=self.server_name)
        return ack

    def _deliver(self, event: ResponseIn) -> None:
        self._queue.put_nowait(event.response)
        if event.final:
            self._queue.put_nowait(None)
            self._done.set()


class IncomingRequest(Incoming):
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
        super().__init__(request, source, local, transaction, dialog)
        self.endpoint = endpoint
        self.cancelled = asyncio.Event()  # a CANCEL arrived for this INVITE (§9.2)

    def respond(
        self,
        response: Response | int,
        reason: str | None = None,
        *,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Response:
        """Answer with a Response or a status (see :meth:`UACore.respond`)."""
        ep = self.endpoint
        response, out = ep.core.respond(
            self, response, reason, now=ep.now(), headers=headers, body=body, content_type=content_type
        )
        ep._do(out)
        return response


class SipEndpoint:
    """One SIP endpoint: listeners, the UA core and a single timer task."""

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
        self.locator: Locator = locator or locate
        self.transport = transport or TransportLayer(self._on_datagram, self._on_transport_error)
        self.core = UACore(
            timers=timers,
            local_addr=self.transport.local_addr,
            public_host=public_host,
            user_agent=user_agent,
            auto_487=auto_487,
            make_incoming=functools.partial(IncomingRequest, self),
        )
        self.timers, self.layer, self.dialogs = self.core.timers, self.core.layer, self.core.dialogs
        self.stats = self.core.stats
        # Addresses and request building are the core's (pure), with their signatures.
        self.local_addr, self.contact = self.core.local_addr, self.core.contact
        self.create_request = self.core.create_request
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

    # -- sending

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
        else:
            candidates = [target] if isinstance(target, Addr) else list(target)
        self._start_timer()
        handle = ClientRequest(self, request, candidates, tls, server_name)
        self._do(self.core.start(handle, self.now()))
        return handle

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
            dest = self.core.ack_dest(dialog)
        if dest is None:
            found = await self.locator(next_hop(ack))
            if not found:
                self.stats["ack_unroutable"] += 1
                return
            dest = found[0]
        self._do(self.core.send_ack(ack, dest, self.now(), dialog=dialog, options=(tls, server_name)))

    # -- carrying out the core's outputs

    def _do(self, outputs: list[Output]) -> None:
        for output in outputs:
            if isinstance(output, Transmit):
                self._transmit(output)
            elif isinstance(output, ResponseIn):
                assert isinstance(output.outgoing, ClientRequest)
                output.outgoing._deliver(output)
            elif isinstance(output, NewRequest):
                assert isinstance(output.incoming, IncomingRequest)
                self._call_handler(output.incoming)
            elif isinstance(output, Cancelled):
                assert isinstance(output.incoming, IncomingRequest)
                output.incoming.cancelled.set()
            elif isinstance(output, MessageIn):
                self._hook(self.on_message_in, output.message, output.source)
            elif isinstance(output, Route):  # core-made requests: DNS for their next hop
                req = output.request
                self._spawn(self.send_ack(req, output.dialog) if req.method == "ACK" else self.request(req))
        self._wake.set()  # the next deadline may have moved

    def _transmit(self, t: Transmit) -> None:
        """Send in order per destination (a TCP connect must not let a later message pass)."""
        data, dest = bytes(t.message), t.dest
        self._hook(self.on_message_out, t.message, dest)
        prev = self._chains.get(dest)
        if prev is None and self.transport.send_udp_now(data, dest):
            return  # UDP to an address, nothing queued before it: sent, in order, no task
        tls, server_name = t.options if isinstance(t.options, tuple) else (None, None)

        async def send() -> None:
            if prev is not None:
                await asyncio.wait([prev])
            try:
                await self.transport.send(data, dest, tls=tls, server_name=server_name)
            except TransportError as exc:
                log.info("send to %s failed: %s", dest, exc.reason)
                self._do(self.core.transport_error(t, exc.reason, self.now()))

        task = self._spawn(send())
        self._chains[dest] = task
        task.add_done_callback(
            lambda done: self._chains.pop(dest) if self._chains.get(dest) is done else None
        )

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- the TU

    def _call_handler(self, incoming: IncomingRequest) -> None:
        if self.on_request is None:
            if incoming.transaction is not None:
                incoming.respond(200 if incoming.method in ("OPTIONS", "BYE") else 501)
            return
        try:
            result = self.on_request(incoming)
        except Exception:
            log.exception("on_request failed for %s", incoming)
            self._answer_500(incoming)
            return
        if inspect.isawaitable(result):

            def done(t: asyncio.Task[Any]) -> None:
                if not t.cancelled() and t.exception() is not None:
                    log.error("on_request failed for %s", incoming, exc_info=t.exception())
                    self._answer_500(incoming)

            self._spawn(result).add_done_callback(done)

    def _answer_500(self, incoming: IncomingRequest) -> None:
        tx = incoming.transaction
        if tx is not None and not tx.has_final and not tx.terminated:
            incoming.respond(500)

    def _hook(self, hook: MessageHook | None, msg: Request | Response, addr: Addr) -> None:
        if hook is not None:
            try:
                hook(msg, addr)
            except Exception:
                log.exception("message hook failed")

    # -- input from the transport

    def _on_transport_error(self, addr: Addr, reason: str) -> None:
        self.stats["transport_errors"] += 1
        log.info("transport error from %s: %s", addr, reason)

    def _on_datagram(self, data: bytes, source: Addr, local: Addr) -> None:
        self._do(self.core.receive(data, source, local, self.now()))

    # -- the single timer task

    def _start_timer(self) -> None:
        if self._timer_task is None or self._timer_task.done():
            self._timer_task = asyncio.get_running_loop().create_task(self._timer_loop())

    def next_timer(self) -> float | None:
        return self.core.next_timer()

    async def _timer_loop(self) -> None:
        while not self._closed:
            self._wake.clear()
            deadline = self.core.next_timer()
            timeout = None if deadline is None else max(0.0, deadline - self.now())
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
                continue  # something changed: recompute the deadline
            except TimeoutError:
                pass
            try:
                self._do(self.core.handle_timer(self.now()))
            except Exception:
                log.exception("timer handling failed")
