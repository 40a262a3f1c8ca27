"""Every message on the bus, as pydantic v2 models.

Open-world: unknown fields are ignored on parse, so a service can be upgraded before the
others that talk to it. Each model carries `schema_version`; a reader accepts any version
it knows how to read and ignores what it does not understand. Add fields with defaults;
never repurpose one.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Transport = Literal["udp", "tcp", "tls"]
LegName = Literal["a", "b"]
Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
TargetHealthState = Literal["up", "down", "unknown"]
ServiceName = Literal["signaling", "media", "config", "registry"]


def now() -> float:
    return time.time()


class Message(BaseModel):
    """Base of every bus message."""

    model_config = ConfigDict(extra="ignore", frozen=False, populate_by_name=True)

    schema_version: int = 1


class ErrorReply(Message):
    """The body of an error answer. Sent with the `Nats-Service-Error` and
    `Nats-Service-Error-Code` headers (the nats.micro convention) so a requester can tell
    it from a reply without parsing."""

    code: int = 500
    error: str
    detail: dict[str, Any] = Field(default_factory=dict)


# --- routing (config) ---------------------------------------------------------------


class TlsOptions(Message):
    verify: bool = True
    """Verify the peer's certificate chain and host name. False accepts self-signed."""
    ca_pem: str | None = None
    """A private CA to trust for this target."""
    client_cert_pem: str | None = None
    client_key_pem: str | None = Field(default=None, repr=False)


class SipTarget(Message):
    uri: str
    """`sip:100@pbx.example.com;transport=tcp`; `sips:` or `transport=tls` means TLS."""
    transport: Transport = "udp"
    priority: int = 10
    weight: int = 10
    credentials_ref: str | None = None
    """Id of the stored credentials (the target id); never the secret itself."""
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    """Decrypted only in the routing reply; redacted from every event and log."""
    secure_media: bool = False
    """SRTP on this target's media (its `media_encryption` is "srtp"); TLS may carry plain RTP."""
    tls: TlsOptions = Field(default_factory=TlsOptions)
    options_ping: bool = False
    """Probed with OPTIONS (`TargetHealth`); a target seen `down` is skipped at call time."""
    health: TargetHealthState = "unknown"
    """As config last heard it when it made the decision."""


class PbxOptions(Message):
    """What a receiving number asks of the client INVITE and of the client's requests
    (the API's fields of the same names; `proto.sip.passthrough` has the header rules)."""

    diversion: bool = True
    """Diversion: <sip:{tracking number}@{us}>;reason=unconditional;counter=1 (RFC 5806)."""
    request_uri_user: Literal["target", "tracking_number"] = "target"
    """`tracking_number`: the Request-URI's and To's user is the dialled number (E.164)."""
    forward_pai: bool = True
    forward_identity: bool = True
    forward_headers: list[str] = Field(default_factory=list)
    sip_headers: dict[str, str] = Field(default_factory=dict)
    transfer: Literal["reject", "same_host", "any"] = "same_host"
    follow_redirects: Literal["none", "same_host", "any"] = "same_host"


class RoutingRequest(Message):
    call_id: str
    tracking_number: str
    caller: str | None = None
    caller_name: str | None = None
    source: str | None = None
    """Carrier source address (host:port)."""
    region: str | None = None
    """The region of the node asking."""


class RoutingDecision(Message):
    ok: bool
    status: int = 200
    """SIP status to answer the carrier with when not ok (404, 480, 403, 503)."""
    reason: str = ""
    account_id: str | None = None
    receiving_number_id: str | None = None
    tracking_number: str | None = None
    targets: list[SipTarget] = Field(default_factory=list)
    secure_media: bool = False
    ring_timeout: float = 30.0
    send_digits: str | None = None
    region_preference: str | None = None
    nat: Literal["auto", "off"] = "auto"
    """NAT detection for the client's media and Contact (proto.nat); "off" trusts its SDP."""
    pbx: PbxOptions = Field(default_factory=PbxOptions)


class PingTargetsRequest(Message):
    region: str | None = None


class PingTarget(Message):
    """A target with `options_ping` on: what a signaling node needs to send it OPTIONS."""

    target_id: str
    uri: str
    transport: Transport = "udp"
    tls: TlsOptions = Field(default_factory=TlsOptions)
    health: TargetHealthState = "unknown"
    """What config last heard, so a node taking over a target starts from it."""


class PingTargets(Message):
    targets: list[PingTarget] = Field(default_factory=list)


class TargetHealthChanged(Message):
    """A pinged target went `up` or `down` (3 OPTIONS unanswered in a row: down; one answer: up)."""

    target_id: str
    uri: str
    health: TargetHealthState
    previous: TargetHealthState = "unknown"
    node: str = ""
    region: str = ""
    reason: str = ""
    ts: float = Field(default_factory=now)


class ConfigEntity(StrEnum):
    """What a ConfigChanged is about (also the subject's token)."""

    ACCOUNTS = "accounts"
    API_KEYS = "api_keys"
    TRACKING_NUMBERS = "tracking_numbers"
    RECEIVING_NUMBERS = "receiving_numbers"


class ConfigChanged(Message):
    entity: str
    """A ConfigEntity value. A plain str on the wire, so an entity a newer config adds still
    parses here (and is ignored by what does not care)."""
    id: str
    account_id: str | None = None
    op: Literal["created", "updated", "deleted"] = "updated"
    ts: float = Field(default_factory=now)


# --- media ---------------------------------------------------------------------------


class SrtpCrypto(Message):
    """One SDES crypto attribute (RFC 4568): `a=crypto:<tag> <suite> inline:<key_salt>`."""

    tag: int = 1
    suite: Literal["AES_CM_128_HMAC_SHA1_80"] = "AES_CM_128_HMAC_SHA1_80"
    key_salt_b64: str = Field(repr=False)
    """base64 of the 30-byte master key (16) || master salt (14)."""


class MediaLeg(Message):
    """Our side of one leg on a worker: where the peer must send media."""

    address: str
    port: int
    rtcp_port: int
    secure: bool = False
    crypto: SrtpCrypto | None = None
    """Our outbound key (what we put in our SDP) when secure."""
    payload_types: list[int] = Field(default_factory=lambda: [0, 101])
    telephone_event_pt: int = 101


class MediaAllocate(Message):
    call_id: str
    region: str
    a_secure: bool = False
    """The carrier leg; plain RTP in practice."""
    b_secure: bool = False
    """The SIP client leg: SRTP when the target is sips:/TLS."""
    timeout: float | None = None
    """No-media timeout in seconds; None uses the worker's default."""
    node_id: str | None = None
    """The signaling node that owns the call: if its heartbeats stop (and the media too),
    the worker frees the ports itself, since nobody will release them."""


class MediaAllocation(Message):
    call_id: str
    worker_id: str
    region: str
    a: MediaLeg
    b: MediaLeg


class MediaUpdate(Message):
    """The peer's side of one leg, learnt from its SDP."""

    call_id: str
    leg: LegName
    remote_address: str
    remote_port: int
    remote_rtcp_port: int | None = None
    telephone_event_pt: int | None = 101
    remote_crypto: SrtpCrypto | None = None
    """The peer's outbound key (from its SDP), used to unprotect what it sends."""
    direction: Direction = "sendrecv"
    latch_host: str | None = None
    """The peer is behind a NAT (proto.nat): latch only to media from this IP (its signaling
    source, any port) and send there, whatever its SDP says."""


class MediaRekey(Message):
    """Give one leg fresh media for a new attempt: SRTP with a new key, or plain RTP. The
    leg's ports stay; its peer, latch and keys are forgotten. Answered with the MediaLeg."""

    call_id: str
    leg: LegName = "b"
    secure: bool = False


class MediaDtmf(Message):
    """Inject digits towards one leg (RFC 4733). `w` is a 0.5 s pause."""

    call_id: str
    leg: LegName = "b"
    digits: str
    duration_ms: int = 160
    gap_ms: int = 80


class MediaRelease(Message):
    call_id: str
    reason: str = "normal"


class LegStats(Message):
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    lost: int = 0
    jitter_ms: float = 0.0
    srtp_failures: int = 0
    dropped: int = 0
    latched: str | None = None
    nat: bool = False
    """The peer was found behind a NAT: only its signaling source IP could latch."""
    held: int = 0
    """Packets from this leg not relayed because the other side is on hold (its SDP says
    sendonly/inactive, RFC 3264 §8.4)."""
    direction: Direction = "sendrecv"
    """This leg's direction as last signalled."""


class MediaStats(Message):
    call_id: str
    worker_id: str
    a: LegStats = Field(default_factory=LegStats)
    b: LegStats = Field(default_factory=LegStats)
    mos: float | None = None
    duration: float = 0.0


class Ack(Message):
    ok: bool = True


# --- registry ------------------------------------------------------------------------


class Heartbeat(Message):
    service: ServiceName
    node_id: str
    region: str
    addresses: list[str] = Field(default_factory=list)
    """Public addresses (signaling IPs or media IPs)."""
    capacity: int = 0
    load: int = 0
    version: str = ""
    ts: float = Field(default_factory=now)
    interval: float = 1.0
    """Seconds between heartbeats; the registry expires a node after a few missed."""
    lag: float = Field(default=0.0, ge=0.0)
    """Seconds the node's event loop runs late (its own measure of how busy it is): a busy
    node's heartbeats come late, so the registry waits that much longer before judging it gone."""
    leaving: bool = False
    """The node's last heartbeat: it is stopping, so the registry forgets it at once instead of
    waiting for missed heartbeats (a planned stop fails over without delay)."""


class NodeInfo(Message):
    service: ServiceName
    node_id: str
    region: str
    addresses: list[str] = Field(default_factory=list)
    capacity: int = 0
    load: int = 0
    version: str = ""
    last_seen: float = 0.0


class RegionStatus(Message):
    code: str
    healthy: bool
    signaling_nodes: int = 0
    media_nodes: int = 0
    reason: str = ""
    ts: float = Field(default_factory=now)


class RegionSelect(Message):
    preferred: str | None = None
    need: list[ServiceName] = Field(default_factory=lambda: list[ServiceName](["signaling", "media"]))
    exclude: list[str] = Field(default_factory=list)
    """Regions already tried for this call."""


class RegionSelection(Message):
    ok: bool
    region: str | None = None
    preferred: str | None = None
    failed_over: bool = False
    nodes: list[NodeInfo] = Field(default_factory=list)
    reason: str = ""
    candidates: list[str] = Field(default_factory=list)
    """The healthy regions in failover order after `region`."""


class TrunkCheck(Message):
    address: str


class TrunkCheckResult(Message):
    allowed: bool
    trunk: str | None = None


class RegistryQuery(Message):
    """Generic request body for the registry's API endpoints (regions, allowlist, trunks)."""

    params: dict[str, Any] = Field(default_factory=dict)


class RegistryReply(Message):
    status: int = 200
    data: Any = None
    content_type: str = "application/json"
    text: str | None = None


# --- signaling -----------------------------------------------------------------------


class Originate(Message):
    """Ask a signaling node of another region to place the client leg of a call."""

    call_id: str
    decision: RoutingDecision
    allocation: MediaAllocation
    caller: str | None = None
    caller_name: str | None = None
    carrier_headers: list[tuple[str, str]] = Field(default_factory=list)
    """The carrier's header fields the receiving number passes to its PBX (PbxOptions)."""


class OriginateResult(Message):
    call_id: str
    accepted: bool
    node: str | None = None
    reason: str = ""


class AttemptRecord(Message):
    """One target tried by the client leg, and how it ended."""

    target: str
    result: str
    status: int | None = None
    reason: str = ""
    early_media: bool = False
    retry_after: int | None = None


class LegSignal(Message):
    """Between the two legs of a call when they run on different nodes (cross-region).

    To the carrier's node (`call_control(id, "carrier")`): `progress` (status,
    early_media), `answered` (a request: the reply Ack says whether the carrier is still
    there), `ended` (the client hung up), `result` (every target failed: attempts).
    To the client leg's node (`call_control(id, "client")`): `cancel`, `bye`."""

    call_id: str
    kind: Literal["progress", "answered", "ended", "result", "cancel", "bye"]
    status: int | None = None
    early_media: bool = False
    target: str | None = None
    secure: bool = False
    reason: str = ""
    attempts: list[AttemptRecord] = Field(default_factory=list)


# --- call events ---------------------------------------------------------------------

CallEventKind = str
"""The kinds this version emits are `proto.events.KINDS` (one body model each); open: a
newer node may emit a kind this one does not know."""


class CallEvent(Message):
    """The envelope of every call event. `payload` is the body of its kind
    (`proto.events.parse` reads it as the kind's model; `envelope` builds one from a model)."""

    call_id: str
    kind: CallEventKind
    ts: float = Field(default_factory=now)
    region: str = ""
    node: str = ""
    service: str = ""
    seq: int = 0
    """Per call, per emitting node, monotonic from 1, so a reader can tell a gap; 0 for the
    SIP traces (sip_in, sip_out), which are not numbered."""
    payload: dict[str, Any] = Field(default_factory=dict)


# Every model, for the AsyncAPI export and the schema tests.
ALL_MESSAGES: tuple[type[Message], ...] = (
    ErrorReply,
    RoutingRequest,
    RoutingDecision,
    ConfigChanged,
    PingTargetsRequest,
    PingTargets,
    TargetHealthChanged,
    MediaAllocate,
    MediaAllocation,
    MediaUpdate,
    MediaRekey,
    MediaDtmf,
    MediaRelease,
    MediaStats,
    Ack,
    Heartbeat,
    RegionStatus,
    RegionSelect,
    RegionSelection,
    TrunkCheck,
    TrunkCheckResult,
    RegistryQuery,
    RegistryReply,
    Originate,
    OriginateResult,
    LegSignal,
    CallEvent,
)
