"""What a receiving number's PBX options (`proto.messages.PbxOptions`) do to the client
INVITE: which tracking number rang (Diversion, X-Switchboard-*), the Request-URI user a
PBX matches its DID on, and the carrier's identity headers passed through.

Pure functions of the decision and the carrier's INVITE: the carrier's node picks the
headers (it has the INVITE), the client leg's node — maybe in another region — builds the
request from them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from proto.messages import PbxOptions, RoutingDecision
from proto.sip import passthrough

from ..sip.uri import SipUri, parse_uri

TRACKING_HEADER = "X-Switchboard-Tracking-Number"
CALL_ID_HEADER = "X-Switchboard-Call-Id"


@dataclass(frozen=True)
class InviteParts:
    request_uri: str
    to: str
    headers: list[tuple[str, str]]


def carrier_headers(headers: Iterable[tuple[str, str]], options: PbxOptions) -> list[tuple[str, str]]:
    """The carrier INVITE's header fields that go on to the PBX."""
    return passthrough.select(headers, forward_pai=options.forward_pai, forward_identity=options.forward_identity,
                              patterns=options.forward_headers)


def request_uri(target_uri: str, number: str | None, options: PbxOptions) -> str:
    """The target's URI, or — with request_uri_user=tracking_number — the same URI with the
    dialled number as its user (what Asterisk/3CX/CUBE match inbound DIDs on)."""
    if options.request_uri_user != "tracking_number" or not number:
        return target_uri
    uri = parse_uri(target_uri)
    if not isinstance(uri, SipUri):
        return target_uri
    return str(uri.copy(user=number))  # '+' and digits are user unreserved characters (§25.1)


def client_invite(target_uri: str, decision: RoutingDecision, call_id: str, host: str,
                  forwarded: Sequence[tuple[str, str]], caller_pai: str | None) -> InviteParts:
    """The Request-URI, To and the extra header fields of the client INVITE.

    ``forwarded`` are the carrier's fields picked by `carrier_headers`; ``caller_pai`` is the
    node-wide P-Asserted-Identity built from From, used only when none was forwarded."""
    options = decision.pbx
    number = decision.tracking_number
    ruri = request_uri(target_uri, number, options)
    headers: list[tuple[str, str]] = []
    if number:
        if options.diversion:
            # RFC 5806 §4: who the call was for and why it was diverted; the tracking number is
            # "unconditionally forwarded" to the customer's PBX, once.
            headers.append(("Diversion", f"<sip:{number}@{host}>;reason=unconditional;counter=1"))
        headers.append((TRACKING_HEADER, number))
    headers.append((CALL_ID_HEADER, call_id))
    ours = {n.lower(): (n, v) for n, v in options.sip_headers.items() if not passthrough.reserved(n)}
    # The receiving number's own value wins over a carrier's field of the same name.
    headers.extend((n, v) for n, v in forwarded if n.lower() not in ours)
    if caller_pai and not any(n.lower() == "p-asserted-identity" for n, _ in forwarded) and options.forward_pai:
        headers.append(("P-Asserted-Identity", caller_pai))
    headers.extend(ours.values())
    return InviteParts(request_uri=ruri, to=f"<{ruri}>", headers=headers)
