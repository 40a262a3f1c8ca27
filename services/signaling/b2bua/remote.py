"""Cross-region calls: the client leg originated by a signaling node of the region whose
media carries the call (`signaling.<region>.originate`), talking to the carrier's node over
`callctl.<id>.carrier` / `callctl.<id>.client`.

The remote node runs the same `ClientLeg` as a local call; `BusPeer` is its LegPeer, and on
the carrier's node `RemoteClientLeg` stands where a local ClientLeg would."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from nats.aio.subscription import Subscription

from proto import subjects
from proto.messages import Ack, LegSignal, Originate, OriginateResult
from services.common.errors import BusError, HandlerError, NoResponders

from ..errors import CallSetupError
from .client_leg import ClientLeg
from .context import DialogOwner, LegContext, LegPeer
from .policy import Attempt, Result, attempt

if TYPE_CHECKING:
    from ..endpoint import IncomingRequest
    from ..sip.message import Request

log = logging.getLogger("switchboard.signaling.remote")


class RemoteClientLeg:
    """The carrier's node's handle on a client leg running in another region."""

    def __init__(self, ctx: LegContext, call_id: str, region: str, peer: LegPeer) -> None:
        self.ctx = ctx
        self.id = call_id
        self.region = region
        self.peer = peer
        self.node: str | None = None
        self._result: asyncio.Future[list[Attempt] | None] = asyncio.get_running_loop().create_future()
        self._sub: Subscription | None = None
        self.answered = False

    async def start(self, order: Originate) -> bool:
        """Ask a node of the region to take the leg; False when the region has none."""
        bus = self.ctx.bus
        self._sub = await bus.subscribe(subjects.call_control(self.id, "carrier"), self._signal, LegSignal,
                                        concurrent=False)
        try:
            r = await bus.request(subjects.signaling_originate(self.region), order, OriginateResult,
                                  timeout=self.ctx.settings.bus_timeout)
        except NoResponders:
            await self._unsubscribe()
            return False
        except BusError as e:
            await self._unsubscribe()
            raise CallSetupError(503, f"signaling in {self.region} did not take the call ({e})", retry_after=30) from e
        if not r.accepted:
            await self._unsubscribe()
            raise CallSetupError(503, f"signaling in {self.region} refused the call: {r.reason}", retry_after=30)
        self.node = r.node
        return True

    async def _signal(self, s: LegSignal) -> Ack | None:
        if s.kind == "progress":
            await self.peer.progress(s.status or 180, s.early_media)
        elif s.kind == "answered":
            ok = await self.peer.answered(s.target or "", s.secure)
            self.answered = ok
            if not self._result.done():
                self._result.set_result(None if ok else [])
            return Ack(ok=ok)
        elif s.kind == "result" and not self._result.done():
            self._result.set_result(list(s.attempts))
        elif s.kind == "ended":
            await self.peer.client_ended(s.reason or "normal clearing")
        return Ack()

    async def run(self) -> list[Attempt] | None:
        return await self._result

    async def _tell(self, kind: str, reason: str = "") -> None:
        try:
            await self.ctx.bus.request(subjects.call_control(self.id, "client"),
                                       LegSignal(call_id=self.id, kind=kind, reason=reason),  # type: ignore[arg-type]
                                       Ack, timeout=self.ctx.settings.bus_timeout)
        except BusError as e:
            log.warning("client leg in %s did not take %s: %s", self.region, kind, e, extra={"call_id": self.id})

    async def cancel(self) -> None:
        await self._tell("cancel")

    async def hang_up(self, reason: str, cause: int = 200) -> None:
        await self._tell("bye", reason)

    async def relay_info(self, request: Request) -> int:
        return 200  # not relayed across regions: answered here

    async def wait_ended(self) -> None:
        return  # the other region's node ends its leg

    def release(self) -> None:
        asyncio.get_running_loop().create_task(self._unsubscribe())

    async def _unsubscribe(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:
                pass
            self._sub = None


class BusPeer:
    """On the client leg's node: the carrier's side, reached over the bus."""

    def __init__(self, ctx: LegContext, call_id: str) -> None:
        self.ctx = ctx
        self.id = call_id

    def _subject(self) -> str:
        return subjects.call_control(self.id, "carrier")

    async def progress(self, status: int, early_media: bool) -> None:
        await self.ctx.bus.publish(self._subject(), LegSignal(call_id=self.id, kind="progress", status=status,
                                                                early_media=early_media))

    async def answered(self, target: str, secure: bool) -> bool:
        try:
            r = await self.ctx.bus.request(self._subject(), LegSignal(call_id=self.id, kind="answered",
                                                                        target=target, secure=secure),
                                             Ack, timeout=self.ctx.settings.bus_timeout)
            return r.ok
        except BusError:
            return False  # the carrier's node is gone: hang up the client

    async def client_ended(self, reason: str) -> None:
        await self.ctx.bus.publish(self._subject(), LegSignal(call_id=self.id, kind="ended", reason=reason))

    async def relay_info(self, request: Request) -> int:
        return 200  # not relayed across regions: answered here

    async def refer(self, leg: DialogOwner, incoming: IncomingRequest) -> None:
        # The carrier's leg is on another node: a transfer would need both; not yet.
        incoming.respond(501, "Transfer across regions is not supported")

    async def result(self, attempts: list[Attempt]) -> None:
        await self.ctx.bus.publish(self._subject(), LegSignal(
            call_id=self.id, kind="result", attempts=attempts))


class OriginateServer:
    """Takes client legs for calls whose carrier leg is on another region's node."""

    def __init__(self, ctx: LegContext, accepts: Callable[[int], bool]) -> None:
        self.ctx = ctx
        self.accepts = accepts  # with this many legs here too: may the node take one more?
        self.legs: dict[str, ClientLeg] = {}

    async def start(self) -> None:
        region = self.ctx.settings.region
        await self.ctx.bus.subscribe(subjects.signaling_originate(region), self.originate, Originate,
                                     queue=subjects.signaling_queue(region))

    async def originate(self, order: Originate) -> OriginateResult:
        ctx = self.ctx
        node = ctx.settings.node_id
        if not self.accepts(len(self.legs)):
            return OriginateResult(call_id=order.call_id, accepted=False, node=node,
                                   reason="node draining or at its call limit")
        if order.call_id in self.legs:
            raise HandlerError(409, "this call's client leg is already here")
        peer = BusPeer(ctx, order.call_id)
        leg = ClientLeg(ctx, order.call_id, order.decision, order.allocation, order.caller, order.caller_name, peer,
                        carrier_headers=[(n, v) for n, v in order.carrier_headers])
        self.legs[order.call_id] = leg
        sub = await ctx.bus.subscribe(subjects.call_control(order.call_id, "client"), self._command(leg), LegSignal,
                                      concurrent=False)
        asyncio.get_running_loop().create_task(self._run(leg, peer, sub))
        return OriginateResult(call_id=order.call_id, accepted=True, node=node)

    def _command(self, leg: ClientLeg) -> Callable[[LegSignal], Awaitable[Ack]]:
        async def handle(s: LegSignal) -> Ack:
            if s.kind == "cancel":
                await leg.cancel()
            elif s.kind == "bye":
                await leg.hang_up(s.reason or "normal clearing")
            return Ack()
        return handle

    async def _run(self, leg: ClientLeg, peer: BusPeer, sub: Subscription) -> None:
        try:
            attempts = await leg.run()
            if attempts is not None:
                await peer.result(attempts)
                return
            await leg.wait_ended()  # answered: the leg lives until either side hangs up
        except CallSetupError as e:
            await leg.hang_up(e.reason, cause=e.status)
            await peer.result([attempt("", Result.MEDIA_FAILED if e.status == 503 else Result.REJECTED,
                                       e.status, e.reason)])
        except Exception:
            log.exception("client leg failed", extra={"call_id": leg.id})
            await peer.result([attempt("", Result.SERVER_ERROR, 500, "internal error on the client leg's node")])
        finally:
            try:
                await leg.wait_ended()  # its BYE answered (or its deadline passed)
            except Exception:
                pass
            self.legs.pop(leg.id, None)
            leg.release()
            try:
                await sub.unsubscribe()
            except Exception:
                pass
