"""What a receiving number's PBX options (`proto.messages.PbxOptions`) do to the client
INVITE: which tracking number rang (Diversion, X-Switchboard-*), the Request-URI user a
PBX matches its DID on, and the carrier's identity headers passed through.

Pure functions of the decision and the carrier's INVITE: the carrier's node picks the
headers (it has the INVITE), the client leg's node — maybe in another region — builds the
request from them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from proto.messages import PbxOptions, RoutingDecision, SipTarget, TlsOptions, Transport
from proto.sip import passthrough
from proto.sip.errors import TargetError
from proto.sip.target import parse_target

from ..sip.headers import NameAddress
from ..sip.uri import SipUri, parse_uri, uris_equal

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


MAX_REDIRECTS = 3  # hops a leg follows (a PBX pointing back at itself is a loop, refused anyway)


def _host(uri: str) -> str | None:
    try:
        parsed = parse_uri(uri)
    except Exception:
        return None
    return parsed.host.lower() if isinstance(parsed, SipUri) else None


def redirect_targets(contacts: Sequence[NameAddress], current: SipTarget, policy: str,
                     tried: Sequence[str], configured: Sequence[SipTarget]) -> list[SipTarget]:
    """The targets a 3xx sends us to (RFC 3261 §8.1.3.4): its Contacts in q order (highest
    first, 1.0 when absent), those the policy allows — `same_host`: the host of one of the
    receiving number's targets; `any` — and none already tried (a loop). A Contact on the
    current target's host keeps its credentials and TLS options; another host gets none."""
    if policy == "none":
        return []
    hosts = {h for h in (_host(t.uri) for t in configured) if h}
    ranked = sorted(enumerate(contacts), key=lambda ic: (-(ic[1].q if ic[1].q is not None else 1.0), ic[0]))
    out: list[SipTarget] = []
    seen = [parse_uri(u) for u in tried]
    for _, contact in ranked:
        uri = contact.uri
        if not isinstance(uri, SipUri):
            continue
        clean = uri.copy(headers=[], password=None)
        try:
            checked = parse_target(str(clean))
        except TargetError:
            continue
        if any(uris_equal(clean, s) for s in seen) or any(uris_equal(clean, parse_uri(t.uri)) for t in out):
            continue  # a loop: we were there already
        if policy == "same_host" and checked.host not in hosts:
            continue
        same = checked.host == _host(current.uri)
        out.append(SipTarget(
            uri=str(clean), transport=cast(Transport, checked.transport), priority=current.priority, weight=current.weight,
            credentials_ref=current.credentials_ref if same else None,
            username=current.username if same else None, password=current.password if same else None,
            secure_media=checked.secure, tls=current.tls if same else TlsOptions()))
    return out


@dataclass(frozen=True)
class TransferRefused:
    status: int
    reason: str


def transfer_target(refer_to: str | None, policy: str, current: SipTarget,
                    configured: Sequence[SipTarget]) -> SipTarget | TransferRefused:
    """Where a REFER from the PBX sends the call (RFC 3515 §2.4.1), or why not.

    `reject`: 403. `same_host`: the Refer-To host must be the host of one of this receiving
    number's targets, whose digest credentials and TLS options then go along; `any`: any
    sip:/sips: URI, without credentials. A Refer-To with Replaces is an attended transfer
    (RFC 3891), which we do not do: 501, said plainly."""
    if policy == "reject":
        return TransferRefused(403, "transfers are off for this number")
    if not refer_to:
        return TransferRefused(400, "Missing Refer-To")
    try:
        uri = NameAddress.parse(refer_to).uri
    except Exception:
        return TransferRefused(400, "Bad Refer-To")
    if not isinstance(uri, SipUri):
        return TransferRefused(416, "Refer-To must be a sip: or sips: URI")
    if any(name.lower() == "replaces" for name, _ in uri.headers):
        return TransferRefused(501, "attended transfer (Replaces) is not supported")
    clean = uri.copy(headers=[], password=None)
    try:
        checked = parse_target(str(clean))
    except TargetError as e:
        return TransferRefused(400, f"Bad Refer-To: {e}")
    same = next((t for t in configured if _host(t.uri) == checked.host), None)
    if policy == "same_host" and same is None:
        return TransferRefused(403, "transfer target is not a host of this number's SIP clients")
    return SipTarget(uri=str(clean), transport=cast(Transport, checked.transport), priority=current.priority,
                     weight=current.weight, credentials_ref=same.credentials_ref if same else None,
                     username=same.username if same else None, password=same.password if same else None,
                     secure_media=checked.secure, tls=same.tls if same else TlsOptions())
