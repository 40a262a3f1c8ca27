"""What a leg gets instead of the whole B2BUA, and the interfaces between the two legs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from services.common.bus import Bus
    from services.common.events import CallEventPublisher

    from ..endpoint import IncomingRequest, SipEndpoint
    from ..settings import SignalingSettings
    from ..sip.message import Request
    from .backends import Backends
    from .deadlines import Deadlines
    from .policy import Attempt


class DialogOwner(Protocol):
    """A leg that takes the in-dialog requests of one SIP Call-ID."""

    id: str  # our call id

    async def on_request(self, incoming: IncomingRequest) -> None: ...


class Directory(Protocol):
    """The SIP Call-ID directory (the B2BUA's): which leg owns which SIP Call-ID."""

    def bind(self, sip_call_id: str, owner: DialogOwner) -> None: ...

    def unbind(self, sip_call_id: str) -> None: ...


@dataclass
class LegContext:
    endpoint: SipEndpoint
    backends: Backends
    events: CallEventPublisher
    settings: SignalingSettings
    bus: Bus
    directory: Directory
    deadlines: Deadlines

    def now(self) -> float:
        return asyncio.get_running_loop().time()


class LegPeer(Protocol):
    """What the client leg tells the carrier's side of the call: the Call on one node, a
    proxy over the bus across regions (`remote.BusPeer`)."""

    async def progress(self, status: int, early_media: bool) -> None: ...

    async def answered(self, target: str, secure: bool) -> bool:
        """The client answered; False when the carrier is gone (the leg then hangs up)."""
        ...

    async def client_ended(self, reason: str) -> None:
        """The client hung up an answered call."""
        ...

    async def relay_info(self, request: Request) -> int:
        """An INFO from the client (e.g. application/dtmf-relay), for the carrier: the
        status of the carrier's answer."""
        ...

    async def refer(self, leg: DialogOwner, incoming: IncomingRequest) -> None:
        """A REFER from the answered client (RFC 3515): answer it and maybe transfer."""
        ...


class ClientLegHandle(Protocol):
    """The carrier's side's handle on its client leg: run here (`client_leg.ClientLeg`) or
    by a node of another region (`remote.RemoteClientLeg`)."""

    id: str

    async def run(self) -> list[Attempt] | None:
        """Until a target answers (None) or every attempt failed (the attempts)."""
        ...

    async def cancel(self) -> None:
        """The carrier gave up before the answer."""
        ...

    async def hang_up(self, reason: str, cause: int = 200) -> None:
        """End the leg: BYE when answered, CANCEL while ringing."""
        ...

    async def relay_info(self, request: Request) -> int: ...

    async def wait_ended(self) -> None:
        """Until the leg is over (its own deadlines bound the wait)."""
        ...

    def release(self) -> None: ...
