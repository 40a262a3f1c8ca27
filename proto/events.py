"""The call events, one model per kind: the one definition of what each event carries.

On the bus an event is a `CallEvent` envelope (call_id, kind, ts, region, node, service,
seq) whose `payload` is a JSON object; that wire format is what the CALLS stream has kept
since the first release, so events stored before these models replay unchanged. A body
model here is that payload plus its `kind`:

    publisher:  CallEventPublisher.emit(call_id, Answered(target=..., secure=..., pdd_ms=...))
    consumer:   body = parse(ev)  ->  Answered(...) | ... | GenericEvent

Open-world, like every bus message: unknown payload keys are ignored, and a kind this
node does not know (from a newer node) parses as a `GenericEvent` that keeps its payload
as a dict: neither dropped nor an error. Add fields with defaults; never rename one (the
golden payloads in tests/unit/proto/test_events.py fail when a key changes).
"""

from __future__ import annotations

import time
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from proto.messages import AttemptRecord, CallEvent, LegName, MediaStats, SipTarget


class EventBody(BaseModel):
    """Base of every event body. Not a `Message`: the envelope carries the schema version."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, use_attribute_docstrings=True)

    kind: str
    """Narrowed to one Literal by each kind's model."""

    NUMBERED: ClassVar[bool] = True
    """Whether the publisher gives it a per-call sequence number (SIP traces: no)."""
    WIRE_EXCLUDE: ClassVar[frozenset[str]] = frozenset({"kind"})
    """Fields not written to the payload (the kind is the envelope's)."""

    def to_payload(self) -> dict[str, Any]:
        """The envelope's `payload` object for this body."""
        return self.model_dump(mode="json", exclude=set(self.WIRE_EXCLUDE))


# --- nested shapes ------------------------------------------------------------------


class TargetSummary(BaseModel):
    """A routing target as `resolved` logs it: no credentials, only whether there are some."""

    model_config = ConfigDict(extra="ignore", use_attribute_docstrings=True)

    uri: str
    transport: str = "udp"
    priority: int = 10
    weight: int = 10
    secure_media: bool = False
    has_credentials: bool = False

    @classmethod
    def of(cls, t: SipTarget) -> TargetSummary:
        return cls(uri=t.uri, transport=t.transport, priority=t.priority, weight=t.weight,
                   secure_media=t.secure_media, has_credentials=bool(t.username))


# --- signaling: the call -------------------------------------------------------------


class Received(EventBody):
    """The carrier's INVITE arrived (first event of a call)."""

    kind: Literal["received"] = "received"
    tracking_number: str | None
    """E.164 from the request URI; None when it is not a number."""
    caller: str | None
    caller_name: str | None
    source: str
    """Carrier address, `host:port`."""
    transport: str
    sip_call_id: str
    """The carrier leg's SIP Call-ID."""


class Resolved(EventBody):
    """Routing answered for the tracking number."""

    kind: Literal["resolved"] = "resolved"
    ok: bool
    account_id: str | None
    receiving_number_id: str | None
    targets: list[TargetSummary]
    ring_timeout: float
    region: str | None
    """The routing's region preference."""
    secure_media: bool


class OriginatedRemotely(EventBody):
    """The client leg is placed by a signaling node of another region."""

    kind: Literal["originated_remotely"] = "originated_remotely"
    region: str
    node: str | None


class MediaFailover(EventBody):
    """Allocating media in a region failed; the next region is tried."""

    kind: Literal["media_failover"] = "media_failover"
    region: str
    reason: str


class MediaAllocated(EventBody):
    """Both legs have ports on a media worker."""

    kind: Literal["media_allocated"] = "media_allocated"
    worker_id: str
    region: str
    failed_over: bool
    a_port: int
    b_port: int
    secure: bool
    """SRTP on the client leg."""


class Answered(EventBody):
    """A target answered and the carrier got our 200 OK."""

    kind: Literal["answered"] = "answered"
    target: str
    secure: bool
    pdd_ms: int
    """Post-dial delay: from the INVITE to the answer, in milliseconds."""


class _MediaChange(EventBody):
    leg: LegName
    method: str
    """INVITE (re-INVITE) or UPDATE."""


class Hold(_MediaChange):
    """A leg put the call on hold (RFC 3264 §8.4)."""

    kind: Literal["hold"] = "hold"


class MediaRefresh(_MediaChange):
    """A leg re-offered its media (resume, new address, session refresh)."""

    kind: Literal["media_refresh"] = "media_refresh"


class Failed(EventBody):
    """The call ended before an answer (last event)."""

    kind: Literal["failed"] = "failed"
    sip_status: int
    """What the carrier was answered."""
    reason: str
    result: str
    """busy, no-answer, failed, canceled; any other value is recorded as failed."""
    attempts: list[AttemptRecord] = Field(default_factory=list)
    """Every target tried, in order."""


class Transferred(EventBody):
    """The SIP client transferred the call (REFER, RFC 3515): a new client leg to `target`
    answered (`ok`) and the old one got BYE; or the new leg failed and the old one stays."""

    kind: Literal["transferred"] = "transferred"
    from_target: str
    target: str
    ok: bool = True
    status: int = 200
    reason: str = ""
    referred_by: str | None = None


class Ended(EventBody):
    """An answered call hung up, or the caller cancelled (last event)."""

    kind: Literal["ended"] = "ended"
    by: str
    """caller, callee, switchboard."""
    reason: str
    duration: float
    """Seconds from the answer."""
    result: str
    """completed or canceled."""
    media: MediaStats | None = None
    """The worker's stats of the call, when it had media."""


# --- signaling: the client leg -------------------------------------------------------


class Dialing(EventBody):
    """An INVITE goes to a target."""

    kind: Literal["dialing"] = "dialing"
    target: str
    transport: str
    dest: str
    """The first address tried, `host:port` (RFC 3263)."""
    candidates: int


class Challenged(EventBody):
    """The target asked for credentials (401/407); the INVITE is sent again with them."""

    kind: Literal["challenged"] = "challenged"
    target: str
    status: int
    realm: str
    algorithm: str
    stale: bool


class AuthFailed(EventBody):
    """Challenged and no (acceptable) credentials: the attempt ends."""

    kind: Literal["auth_failed"] = "auth_failed"
    target: str
    status: int
    reason: str


class Ringing(EventBody):
    """A provisional response above 100 from the target."""

    kind: Literal["ringing"] = "ringing"
    status: int
    early_media: bool


class RingTimeout(EventBody):
    """No answer within the ring timeout: the INVITE is cancelled."""

    kind: Literal["ring_timeout"] = "ring_timeout"
    target: str
    rang: bool
    """A provisional response came: no-answer rather than unreachable."""


class AttemptFailed(EventBody):
    """A target answered with a failure (or never answered)."""

    kind: Literal["attempt_failed"] = "attempt_failed"
    target: str
    sip_status: int
    reason: str
    result: str
    attempts: list[str] = Field(default_factory=list)
    """The addresses tried for this target, `transport:host:port outcome` (RFC 3263 failover)."""


class SendDigits(EventBody):
    """The routing's digits were sent to the client after the answer."""

    kind: Literal["send_digits"] = "send_digits"
    digits: str


class SendDigitsFailed(EventBody):
    """The routing's digits could not be sent (the call goes on)."""

    kind: Literal["send_digits_failed"] = "send_digits_failed"
    digits: str
    reason: str


class _SipTrace(EventBody):
    NUMBERED: ClassVar[bool] = False

    transport: str
    first_line: str
    src: str
    """`host:port` it came from."""
    dst: str
    message: str
    """The whole message, credentials redacted."""


class SipIn(_SipTrace):
    """A SIP message the node received (subject `call.<id>.sip.in`)."""

    kind: Literal["sip_in"] = "sip_in"


class SipOut(_SipTrace):
    """A SIP message the node sent (subject `call.<id>.sip.out`)."""

    kind: Literal["sip_out"] = "sip_out"


SipTrace = _SipTrace


# --- media ---------------------------------------------------------------------------


class Dtmf(EventBody):
    """A digit the worker heard (RFC 4733 telephone-event)."""

    kind: Literal["dtmf"] = "dtmf"
    digit: str
    leg: LegName
    duration_ms: int


class NatDetected(EventBody):
    """A peer is behind a NAT (proto.nat): its media latches only to its signaling source
    IP, and in-dialog requests go to that source when its Contact is private."""

    kind: Literal["nat_detected"] = "nat_detected"
    leg: LegName
    sdp_address: str | None = None
    """The address the peer's SDP signalled."""
    contact: str | None = None
    """Its Contact URI when that is private (fixed, as Kamailio's fix_nated_contact does)."""
    source: str
    """Where its signaling came from: media latches to this IP, requests go to this host:port."""


class MediaTimeout(EventBody):
    """No media from either leg for the call's timeout."""

    kind: Literal["media_timeout"] = "media_timeout"
    seconds: float


class Lost(EventBody):
    """The media worker freed a call whose signaling node died (no heartbeat, no media):
    the last event of a call that nobody could end (its record says `lost`)."""

    kind: Literal["lost"] = "lost"
    node: str
    """The signaling node that was lost."""
    reason: str


class MediaStatsReport(EventBody, MediaStats):
    """The worker released the call: its media stats (the MediaStats reply, less the call id)."""

    WIRE_EXCLUDE: ClassVar[frozenset[str]] = frozenset({"kind", "schema_version", "call_id"})

    kind: Literal["media_stats"] = "media_stats"
    call_id: str = ""
    """Not on the wire (the envelope has it)."""

    @classmethod
    def of(cls, stats: MediaStats) -> MediaStatsReport:
        return cls(**dict(stats))


# --- the union -----------------------------------------------------------------------


class GenericEvent(EventBody):
    """An event of a kind this node does not know (a newer node's): kept as it came."""

    kind: str
    payload: dict[str, Any] = Field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        return dict(self.payload)


KnownBody = (
    Received | Resolved | OriginatedRemotely | MediaFailover | MediaAllocated | Answered | Hold | MediaRefresh
    | Failed | Ended | Dialing | Challenged | AuthFailed | Ringing | RingTimeout | AttemptFailed | SendDigits
    | SendDigitsFailed | SipIn | SipOut | Dtmf | NatDetected | MediaTimeout | MediaStatsReport | Transferred
    | Lost
)
"""Every kind this version emits."""

KnownEvent = Annotated[KnownBody, Field(discriminator="kind")]
"""The same, as pydantic's discriminated union on `kind`."""

CallEventBody = KnownBody | GenericEvent
"""What `parse` returns: a known kind, or a GenericEvent."""

_KNOWN: TypeAdapter[Any] = TypeAdapter(KnownEvent)

KINDS: dict[str, type[EventBody]] = {
    str(cls.model_fields["kind"].default): cls for cls in get_args(KnownBody)
}
"""kind -> body model, for every kind this version knows."""


def parse_body(kind: str, payload: dict[str, Any]) -> CallEventBody:
    """The body of an event from its kind and payload. Raises pydantic's ValidationError
    (a ValueError) when a known kind's payload is malformed."""
    if kind not in KINDS:
        return GenericEvent(kind=kind, payload=payload)
    body: CallEventBody = _KNOWN.validate_python({**payload, "kind": kind})
    return body


def parse(ev: CallEvent) -> CallEventBody:
    """The typed body of an envelope."""
    return parse_body(ev.kind, ev.payload)


def parse_or_generic(ev: CallEvent) -> CallEventBody:
    """The typed body, or a GenericEvent when a known kind's payload does not validate:
    for readers that show whatever the stream holds (the CLI), not for ones that act on it."""
    try:
        return parse(ev)
    except ValidationError:
        return GenericEvent(kind=ev.kind, payload=ev.payload)


def envelope(call_id: str, body: EventBody, *, region: str = "", node: str = "", service: str = "",
             seq: int = 0, ts: float | None = None) -> CallEvent:
    """The wire form of a body: what the publisher sends and the CALLS stream keeps."""
    return CallEvent(call_id=call_id, kind=body.kind, ts=time.time() if ts is None else ts,
                     region=region, node=node, service=service, seq=seq, payload=body.to_payload())
