"""What both legs use: the SDP and Allow constants, BYE with a Reason (RFC 3326), INFO
relaying (RFC 6086), re-INVITE/UPDATE answers (RFC 3264 §8) and the media worker's
updates."""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING, Protocol, cast

from proto.messages import Direction, MediaLeg, MediaUpdate, SrtpCrypto

from ..sip.headers import Reason
from ..sip.sdp import Crypto, NegotiatedMedia, SdpRejection, SessionDescription, answer_offer

if TYPE_CHECKING:
    from ..endpoint import IncomingRequest, SipEndpoint
    from ..sip.dialog import Dialog
    from ..sip.message import Request
    from ..transport import Addr, ClientTlsOptions

SDP = "application/sdp"
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO"
ALLOW_UAC = f"{ALLOW}, PRACK"  # on the client leg we are the UAC and PRACK (RFC 3262)
BYE_WAIT = 5.0  # seconds the answer to our BYE is waited for


def reason_header(cause: int, text: str) -> tuple[str, str]:
    """A Reason header (RFC 3326), e.g. on a BYE or a final response: say why."""
    return ("Reason", str(Reason("SIP", cause, text)))


def media_warning(reason: str) -> tuple[str, str]:
    """A Warning (RFC 3261 §20.43, 305 Incompatible media format) saying which part of
    the SDP we could not accept, e.g. an SRTP MKI."""
    text = reason.replace("\\", "").replace('"', "'")[:120]
    return ("Warning", f'305 switchboard "{text}"')


def bye_with_reason(dialog: Dialog, cause: int, text: str) -> Request:
    """A BYE in ``dialog`` that says why the call ends (RFC 3326)."""
    return dialog.create_request("BYE", headers=[reason_header(cause, text)])


def srtp_of(crypto: Crypto | None) -> SrtpCrypto | None:
    if crypto is None:
        return None
    return SrtpCrypto(tag=crypto.tag, key_salt_b64=base64.b64encode(crypto.key_salt).decode())


# NegotiatedMedia.direction is ours on the leg; MediaUpdate.direction is the peer's (the
# worker relays toward a peer only if it receives, from it only if it sends): the reverse,
# RFC 3264 §6.1. A peer holding with a=sendonly has us recvonly: it sends, wants nothing.
PEER_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}


def media_update(call_id: str, leg: str, media: NegotiatedMedia, latch_host: str | None = None) -> MediaUpdate:
    return MediaUpdate(latch_host=latch_host,
        call_id=call_id, leg="a" if leg == "a" else "b", remote_address=media.remote_address,
        remote_port=media.remote_port, remote_rtcp_port=media.remote_rtcp_port,
        telephone_event_pt=media.telephone_event_pt, remote_crypto=srtp_of(media.remote_crypto),
        direction=cast(Direction, PEER_DIRECTION.get(media.direction, "sendrecv")))


async def send_info(ep: SipEndpoint, dialog: Dialog, request: Request, *, tls: ClientTlsOptions | None = None,
                    server_name: str | None = None, dest: Addr | None = None) -> int:
    """An INFO with the body of `request` in `dialog`; the status of the answer (408 when
    none comes)."""
    info = dialog.create_request("INFO", body=request.body, content_type=request.headers.get("Content-Type"))
    for name in ("Info-Package", "Recv-Info"):  # RFC 6086 §7
        for value in request.headers.get_all(name):
            info.headers.add(name, value)
    sent = await ep.request(info, dest, tls=tls, server_name=server_name)
    try:
        final = await asyncio.wait_for(sent.final(), 10.0)
    except TimeoutError:
        return 408
    return int(final.status)


class Side(Protocol):
    """One leg's SDP state, as a re-INVITE changes it."""

    local_sdp: SessionDescription | None
    media: NegotiatedMedia | None
    sdp_version: int


async def answer_refresh(side: Side, incoming: IncomingRequest, ours: MediaLeg,
                         headers: list[tuple[str, str]] | None = None) -> bool:
    """Answer a re-INVITE/UPDATE from the worker's side of this leg (RFC 3264 §8: same
    session id, version counted up). Without an offer, our current SDP is the answer and
    nothing changes (False). With one, the side takes the new media (True): the caller
    updates the worker and sends the 200; an unacceptable offer is refused here (False)."""
    if not incoming.request.body:
        body = bytes(side.local_sdp) if side.local_sdp is not None else b""
        incoming.respond(200, body=body, content_type=SDP if body else None, headers=headers or [])
        return False
    key = base64.b64decode(ours.crypto.key_salt_b64) if (ours.secure and ours.crypto) else None
    result = answer_offer(incoming.request.body, ours.address, ours.port, srtp_key=key,
                          require_srtp=ours.secure)
    if isinstance(result, SdpRejection):
        incoming.respond(result.status, result.reason, headers=[media_warning(result.reason)])
        return False
    side.sdp_version += 1
    keep_origin(result.sdp, side.local_sdp, side.sdp_version)
    side.local_sdp = result.sdp
    side.media = result.media
    return True


def keep_origin(sdp: SessionDescription, previous: SessionDescription | None, version: int) -> None:
    """Our o= line keeps its session id and counts versions up (RFC 3264 §8)."""
    origin = sdp.origin
    if origin is not None and previous is not None and previous.origin is not None:
        origin.session_id = previous.origin.session_id
        origin.session_version = version
        sdp.set_origin(origin)
