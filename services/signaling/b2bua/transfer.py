"""A blind transfer asked by the SIP client (REFER, RFC 3515) on a call whose both legs run
on this node.

The REFER gets 202; NOTIFYs in its dialog report progress as `message/sipfrag` (§2.4.5:
`SIP/2.0 100 Trying`, then the new leg's final status); a new client leg dials the Refer-To
URI through the same media worker side (B), so the carrier's media goes to whoever answers;
when it answers, the old client leg gets BYE. When it fails, the old leg stays (the
transferor may take the call back)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from proto.events import Transferred
from proto.messages import SipTarget

from ..sip.message import REASON_PHRASES, Request
from .client_leg import ClientLeg
from .policy import carrier_status

if TYPE_CHECKING:
    from ..endpoint import IncomingRequest, SipEndpoint
    from .context import DialogOwner, LegContext

log = logging.getLogger("switchboard.signaling.transfer")

SIPFRAG = "message/sipfrag;version=2.0"


class Call(Protocol):
    """What a transfer uses of the call (`call.Call`)."""

    id: str
    ctx: LegContext
    ep: SipEndpoint
    machine: Any
    leg: Any
    decision: Any
    allocation: Any

    async def emit(self, body: Any) -> None: ...

    async def client_ended(self, reason: str) -> None: ...

    async def relay_info(self, request: Request) -> int: ...

    async def refer(self, leg: DialogOwner, incoming: IncomingRequest) -> None: ...


class TransferPeer:
    """What the new client leg reports to: the call, once it is the call's leg."""

    def __init__(self, transfer: Transfer) -> None:
        self.transfer = transfer

    async def progress(self, status: int, early_media: bool) -> None:
        return None  # the carrier is answered already: nothing to relay

    async def answered(self, target: str, secure: bool) -> bool:
        return not self.transfer.call.machine.terminal

    async def client_ended(self, reason: str) -> None:
        if self.transfer.call.leg is self.transfer.new:
            await self.transfer.call.client_ended(reason)

    async def relay_info(self, request: Request) -> int:
        return await self.transfer.call.relay_info(request)

    async def refer(self, leg: DialogOwner, incoming: IncomingRequest) -> None:
        await self.transfer.call.refer(leg, incoming)


class Transfer:
    def __init__(self, call: Call, old: ClientLeg, refer: IncomingRequest, target: SipTarget) -> None:
        self.call = call
        self.old = old
        self.refer = refer.request
        self.target = target
        assert call.decision is not None and call.allocation is not None
        decision = call.decision.model_copy(update={"targets": [target]})
        headers = list(old.carrier_headers)
        if referred_by := self.refer.headers.get("Referred-By"):
            headers.append(("Referred-By", referred_by))  # RFC 3892 §3: the new INVITE says who referred
        self.new = ClientLeg(call.ctx, call.id, decision, call.allocation, old.caller, old.caller_name,
                             TransferPeer(self), carrier_headers=headers)

    async def run(self) -> None:
        old, new = self.old, self.new
        old.detached = True  # the PBX may hang up on its own now: that does not end the call
        await self._notify("SIP/2.0 100 Trying", final=False)
        try:
            attempts = await new.run()
        except Exception as e:
            log.warning("transfer leg failed: %s", e, extra={"call_id": self.call.id})
            attempts = []
        referred_by = self.refer.headers.get("Referred-By")
        if attempts is None:
            await self._notify("SIP/2.0 200 OK", final=True)
            self.call.leg = new
            await self.call.emit(Transferred(from_target=old.target.uri, target=self.target.uri,
                                             referred_by=referred_by))
            await old.hang_up("call transferred")
            await old.wait_ended()
            old.release()
            return
        status, reason = carrier_status(attempts)
        await self._notify(f"SIP/2.0 {status} {REASON_PHRASES.get(status, reason)}", final=True)
        await self.call.emit(Transferred(from_target=old.target.uri, target=self.target.uri, ok=False,
                                         status=status, reason=reason, referred_by=referred_by))
        new.release()
        old.detached = False
        if old.ended:
            await self.call.client_ended("transfer failed")

    async def _notify(self, frag: str, *, final: bool) -> None:
        """A NOTIFY of the REFER's implicit subscription (RFC 3515 §2.4.4-§2.4.7)."""
        h = self.old.handle
        if h is None or h.dialog is None or h.dialog.terminated:
            return
        state = "terminated;reason=noresource" if final else "active;expires=60"
        notify = h.dialog.create_request("NOTIFY", headers=[("Event", "refer"), ("Subscription-State", state)],
                                         body=f"{frag}\r\n".encode(), content_type=SIPFRAG)
        try:
            sent = await self.call.ep.request(notify, tls=self.old.tls, server_name=self.old.server_name)
            await sent.final()
        except Exception as e:
            log.info("NOTIFY not delivered: %s", e, extra={"call_id": self.call.id})
