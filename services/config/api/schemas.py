"""Request and response models, in families: <Thing>Base (shared fields), <Thing>Create
(POST body), <Thing>Update (PATCH body, every field optional), <Thing>Public (what the API
returns). Secrets are write-only: inputs take `password`, outputs say `has_password`."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from proto.sip import passthrough

from ..validation import check_pem, check_send_digits, normalize_e164, parse_sip_uri


def _no_control(v: str) -> str:
    # NUL and other control characters break PostgreSQL text and log lines.
    if any(ord(c) < 0x20 and c not in "\r\n\t" for c in v) or "\x7f" in v:
        raise ValueError("must not contain control characters")
    return v


def _single_line(v: str) -> str:
    if any(c in v for c in "\r\n\t"):
        raise ValueError("must be a single line")
    return v


def _e164(v: str) -> str:
    return normalize_e164(v)


def _sip_uri(v: str) -> str:
    parse_sip_uri(v)
    return v


def _digits(v: str) -> str:
    return check_send_digits(v)


def _cert_pem(v: str) -> str:
    return check_pem(v, ("CERTIFICATE",))


def _key_pem(v: str) -> str:
    return check_pem(v, ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"))


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
                 AfterValidator(_no_control), AfterValidator(_single_line)]
OptName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200),
                    AfterValidator(_no_control), AfterValidator(_single_line)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z]+_[0-9a-f]+$")]
E164 = Annotated[str, StringConstraints(min_length=2, max_length=40), AfterValidator(_e164)]
SipUriStr = Annotated[str, StringConstraints(min_length=4, max_length=512), AfterValidator(_sip_uri)]
SipUser = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_no_control),
                    AfterValidator(_single_line)]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_no_control),
                   AfterValidator(_single_line)]
Digits = Annotated[str, AfterValidator(_digits)]
CertPem = Annotated[str, StringConstraints(max_length=65536), AfterValidator(_cert_pem)]
KeyPem = Annotated[str, StringConstraints(max_length=65536), AfterValidator(_key_pem)]
Priority = Annotated[int, Field(ge=0, le=65535, description="Lower is tried first (0-65535).")]
Weight = Annotated[int, Field(ge=1, le=65535, description="Share of calls among equal priority (1-65535).")]
RingTimeout = Annotated[int, Field(ge=5, le=600, description="Seconds to ring a target before the next (5-600).")]
Region = Annotated[str, StringConstraints(min_length=1, max_length=16), AfterValidator(_no_control)]
AccountStatus = Literal["active", "suspended"]
RequestUriUser = Literal["target", "tracking_number"]
TransferPolicy = Literal["reject", "same_host", "any"]
RedirectPolicy = Literal["none", "same_host", "any"]


def _forward_headers(v: list[str]) -> list[str]:
    for p in v:
        passthrough.check_forward_pattern(p)
    return v


def _sip_headers(v: dict[str, str]) -> dict[str, str]:
    if len(v) > passthrough.MAX_SIP_HEADERS:
        raise ValueError(f"at most {passthrough.MAX_SIP_HEADERS} headers")
    for name, value in v.items():
        passthrough.check_sip_header(name, value)
    return v


ForwardHeaders = Annotated[list[Annotated[str, StringConstraints(max_length=64)]], Field(max_length=32),
                           AfterValidator(_forward_headers)]
SipHeaders = Annotated[dict[str, str], AfterValidator(_sip_headers)]


class Input(BaseModel):
    # Unknown fields are an error on input: a typo must not be silently ignored.
    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _not_null(v: Any) -> Any:
    # Runs only for fields the request sets: an explicit null on a required field.
    if v is None:
        raise ValueError("cannot be null")
    return v


def _sip_client_only(v: bool | None) -> bool | None:
    if v is False:
        raise ValueError("must be true: SIP client is the only kind of receiving number so far")
    return v


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page; null at the end.")


# --- accounts --------------------------------------------------------------------------


class AccountBase(BaseModel):
    name: Name
    status: AccountStatus = "active"


class AccountCreate(AccountBase, Input):
    pass


class AccountUpdate(Input):
    name: Name | None = None
    status: AccountStatus | None = None

    _nulls = field_validator("name", "status")(_not_null)


class AccountPublic(AccountBase, Output):
    id: str
    created_at: datetime
    updated_at: datetime


# --- API keys ------------------------------------------------------------------------


class ApiKeyCreate(Input):
    name: OptName = ""


class ApiKeyPublic(Output):
    id: str
    account_id: str | None
    name: str
    prefix: str
    created_at: datetime


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key itself. Shown only in this answer; store it now.")


# --- receiving numbers ---------------------------------------------------------------


class TlsOptionsBase(BaseModel):
    verify: bool = Field(True, description="Verify the target's certificate; false accepts a self-signed one.")
    ca_pem: CertPem | None = Field(None, description="A private CA (PEM) to trust for this target.")
    client_cert_pem: CertPem | None = Field(None, description="Client certificate (PEM) to present.")


class TlsOptionsIn(TlsOptionsBase, Input):
    client_key_pem: KeyPem | None = Field(None, description="Client private key (PEM); write-only.")


class TlsOptionsPublic(TlsOptionsBase, Output):
    has_client_key: bool = False


class SipTargetBase(BaseModel):
    uri: SipUriStr = Field(description="sip: or sips: URI, e.g. sip:100@pbx.example.com;transport=tcp")
    username: SipUser | None = None
    priority: Priority = 10
    weight: Weight = 10
    enabled: bool = True
    media_encryption: Literal["srtp", "none"] | None = Field(
        None, description='"srtp" (SDES, AES_CM_128_HMAC_SHA1_80) or "none" (plain RTP). Default: "srtp" for '
        'sips: or transport=tls targets, "none" otherwise. TLS with "none" is allowed; "srtp" needs TLS.')
    options_ping: bool = Field(False, description="Probe with OPTIONS (SWITCHBOARD_OPTIONS_INTERVAL); "
                               "a target that misses 3 in a row is `down` and skipped at call time.")


class SipTargetIn(SipTargetBase, Input):
    id: Id | None = Field(None, description="On update: an existing target whose secrets are kept when omitted.")
    password: Secret | None = Field(None, description="SIP digest password; write-only.")
    tls: TlsOptionsIn = Field(default_factory=TlsOptionsIn)


class SipTargetPublic(SipTargetBase, Output):
    id: str
    has_password: bool
    transport: Literal["udp", "tcp", "tls"]
    secure_media: bool
    media_encryption: Literal["srtp", "none"] = Field(description="What this target's media uses.")  # type: ignore[assignment]
    tls: TlsOptionsPublic
    health: Literal["up", "down", "unknown"] = Field(
        "unknown", description="From OPTIONS pinging (options_ping); unknown when not pinged.")
    health_changed_at: datetime | None = None


class ReceivingNumberBase(BaseModel):
    name: Name
    dial_sip_client: bool = Field(True, description="Ring SIP client targets (the only kind so far).")
    enabled: bool = True
    ring_timeout: RingTimeout = 30
    send_digits: Digits | None = Field(None, description="DTMF after answer; w = 0.5 s pause, e.g. ww123#")
    region: Region | None = Field(None, description="Preferred signaling region code, e.g. us1.")
    nat: Literal["auto", "off"] = Field(
        "auto", description='"auto": a client whose SDP or Contact address is private (or not where its '
        'signaling comes from) gets media and in-dialog requests at its signaling source. "off": trust its SDP.')
    diversion: bool = Field(True, description="The client INVITE carries Diversion: <sip:{tracking number}@us> "
                            "(RFC 5806).")
    request_uri_user: RequestUriUser = Field(
        "target", description="tracking_number: the Request-URI and To user is the dialled number in E.164 "
        "(the DID a PBX matches on).")
    forward_pai: bool = Field(True, description="Pass the carrier's P-Asserted-Identity and Privacy as they came.")
    forward_identity: bool = Field(True, description="Pass the carrier's Identity header (STIR/SHAKEN) unchanged.")
    forward_headers: ForwardHeaders = Field(
        default_factory=list, description='Carrier INVITE headers copied to the client INVITE; a trailing * '
        'matches a prefix, e.g. ["X-*", "User-to-User"].')
    sip_headers: SipHeaders = Field(
        default_factory=dict, description="Headers added to every client INVITE: X- names, token or "
        "quoted-string values, at most 10.")
    transfer: TransferPolicy = Field(
        "same_host", description="REFER from the client: reject, same_host (a host of these targets) or any.")
    follow_redirects: RedirectPolicy = Field(
        "same_host", description="3xx Contacts tried (q order, 3 hops): none, same_host or any.")


class ReceivingNumberCreate(ReceivingNumberBase, Input):
    account_id: Id | None = Field(None, description="Required with the admin token; an account key uses its own.")
    sip_targets: list[SipTargetIn] = Field(min_length=1, max_length=16)

    _kind = field_validator("dial_sip_client")(_sip_client_only)


PBX_OPTIONS = ("diversion", "request_uri_user", "forward_pai", "forward_identity", "forward_headers",
               "sip_headers", "transfer", "follow_redirects")


class ReceivingNumberUpdate(Input):
    name: Name | None = None
    dial_sip_client: bool | None = None
    enabled: bool | None = None
    ring_timeout: RingTimeout | None = None
    send_digits: Digits | None = None
    region: Region | None = None
    nat: Literal["auto", "off"] | None = None
    diversion: bool | None = None
    request_uri_user: RequestUriUser | None = None
    forward_pai: bool | None = None
    forward_identity: bool | None = None
    forward_headers: ForwardHeaders | None = None
    sip_headers: SipHeaders | None = None
    transfer: TransferPolicy | None = None
    follow_redirects: RedirectPolicy | None = None
    sip_targets: list[SipTargetIn] | None = Field(
        None, min_length=1, max_length=16,
        description="Replaces the whole list; give a target's id to keep its password/client key.")

    _nulls = field_validator("name", "dial_sip_client", "enabled", "ring_timeout", "sip_targets", "nat",
                             *PBX_OPTIONS)(_not_null)
    _kind = field_validator("dial_sip_client")(_sip_client_only)


class ReceivingNumberPublic(ReceivingNumberBase, Output):
    id: str
    account_id: str
    sip_targets: list[SipTargetPublic]
    created_at: datetime
    updated_at: datetime


# --- tracking numbers ----------------------------------------------------------------


class TrackingNumberBase(BaseModel):
    number: E164 = Field(description="E.164, e.g. +15551234567 (normalised).")
    receiving_number_id: Id
    name: OptName = ""
    enabled: bool = True


class TrackingNumberCreate(TrackingNumberBase, Input):
    account_id: Id | None = Field(None, description="Required with the admin token; an account key uses its own.")


class TrackingNumberUpdate(Input):
    number: E164 | None = None
    receiving_number_id: Id | None = None
    name: OptName | None = None
    enabled: bool | None = None

    _nulls = field_validator("number", "receiving_number_id", "name", "enabled")(_not_null)


class TrackingNumberPublic(TrackingNumberBase, Output):
    number: str
    receiving_number_id: str
    id: str
    account_id: str
    created_at: datetime
    updated_at: datetime


# --- registry (forwarded) ------------------------------------------------------------


def _network(v: str) -> str:
    try:
        return str(ipaddress.ip_network(v, strict=False))
    except ValueError:
        raise ValueError(f"{v!r} is not an IP address or CIDR network") from None


Network = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_network)]


class TrunkCreate(Input):
    name: Name
    networks: list[Network] = Field(min_length=1, max_length=256)


class Health(BaseModel):
    status: str
    checks: dict[str, Any] = Field(default_factory=dict)


# --- call records ----------------------------------------------------------------------


def _utc(v: Any) -> Any:
    # SQLite gives datetimes back without their zone; they were stored in UTC.
    if isinstance(v, datetime) and v.tzinfo is None:
        from datetime import UTC

        return v.replace(tzinfo=UTC)
    return v


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
CallResult = Literal["completed", "busy", "no-answer", "failed", "canceled", "lost"]


class CallAttempt(BaseModel):
    target: str
    ts: float | None = None
    result: str | None = None
    status: int | None = None
    reason: str | None = None


class CallMedia(BaseModel):
    mos: float | None = None
    packets_lost: int | None = None
    jitter_ms: float | None = None
    srtp_failures: int | None = None
    a: dict[str, Any] | None = Field(None, description="Carrier leg counters (packets, bytes, lost, jitter_ms...).")
    b: dict[str, Any] | None = Field(None, description="SIP client leg counters.")


class CallDigit(BaseModel):
    digit: str
    leg: str | None = None
    duration_ms: int | None = None
    ts: float | None = None


class CallPublic(Output):
    id: str
    account_id: str | None
    tracking_number: str | None
    receiving_number_id: str | None
    caller: str | None
    caller_name: str | None
    region: str | None
    node: str | None
    status: Literal["in-progress", "ended"]
    result: CallResult | None = Field(description="Null while the call is in progress.")
    sip_status: int | None = Field(description="The final SIP status (200 for an answered call).")
    reason: str | None
    ended_by: str | None
    duration: float | None = Field(description="Seconds from answer to end (0 if never answered).")
    pdd_ms: int | None = Field(description="Post-dial delay: from dialing to answer, in ms.")
    started_at: UtcDatetime
    ringing_at: UtcDatetime | None
    answered_at: UtcDatetime | None
    ended_at: UtcDatetime | None
    secure_media: bool | None
    targets: list[CallAttempt]
    media: CallMedia | None
    dtmf_digits: str
    dtmf: list[CallDigit]
    missing_events: dict[str, list[int]] = Field(
        default_factory=dict, description="Per emitting node, event sequence numbers not (yet) seen.")

    @classmethod
    def of(cls, rec: Any, gaps: dict[str, list[int]], tried: list[dict[str, Any]]) -> CallPublic:
        m = rec.media or None
        media = None
        if m is not None:
            media = CallMedia(mos=rec.mos, packets_lost=rec.packets_lost, jitter_ms=rec.jitter_ms,
                              srtp_failures=rec.srtp_failures, a=m.get("a"), b=m.get("b"))
        return cls(
            id=rec.id, account_id=rec.account_id, tracking_number=rec.tracking_number,
            receiving_number_id=rec.receiving_number_id, caller=rec.caller, caller_name=rec.caller_name,
            region=rec.region, node=rec.node, status="ended" if rec.result else "in-progress", result=rec.result,
            sip_status=rec.sip_status, reason=rec.reason, ended_by=rec.ended_by, duration=rec.duration,
            pdd_ms=rec.pdd_ms, started_at=rec.started_at, ringing_at=rec.ringing_at, answered_at=rec.answered_at,
            ended_at=rec.ended_at, secure_media=rec.secure_media,
            targets=[CallAttempt.model_validate(t) for t in tried], media=media,
            dtmf_digits="".join(str(d.get("digit", "")) for d in rec.dtmf or []),
            dtmf=[CallDigit.model_validate(d) for d in rec.dtmf or []], missing_events=gaps)


class CallEventPublic(BaseModel):
    seq: int
    kind: str
    ts: float
    service: str
    node: str
    region: str = ""
    payload: dict[str, Any]


class CallEventList(BaseModel):
    items: list[CallEventPublic]


# --- webhooks ----------------------------------------------------------------------------


WebhookEvent = Literal["initiated", "ringing", "answered", "completed", "dtmf", "transferred"]
WebhookSecret = Annotated[str, StringConstraints(min_length=16, max_length=200), AfterValidator(_no_control),
                          AfterValidator(_single_line)]


def _http_url(v: str) -> str:
    from urllib.parse import urlsplit

    u = urlsplit(v)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if u.username or u.password:
        raise ValueError("must not carry credentials; use the signing secret")
    return v


WebhookUrl = Annotated[str, StringConstraints(min_length=8, max_length=2048), AfterValidator(_no_control),
                       AfterValidator(_single_line), AfterValidator(_http_url)]


def _unique_events(v: list[str]) -> list[str]:
    if not v:
        raise ValueError("subscribe to at least one event")
    return sorted(set(v), key=["initiated", "ringing", "answered", "completed", "dtmf", "transferred"].index)


class WebhookBase(BaseModel):
    url: WebhookUrl = Field(description="Where events are POSTed (http or https).")
    events: Annotated[list[WebhookEvent], AfterValidator(_unique_events)] = Field(
        default_factory=lambda: ["initiated", "ringing", "answered", "completed"],
        description="Statuses to send: initiated, ringing, answered, completed, dtmf, transferred.")
    description: OptName = ""
    enabled: bool = True


class WebhookCreate(WebhookBase, Input):
    account_id: Id | None = Field(None, description="Admin only: the account it belongs to.")
    secret: WebhookSecret = Field(description="Signs every delivery (X-Switchboard-Signature); write-only.")


class WebhookPublic(WebhookBase, Output):
    id: str
    account_id: str
    has_secret: bool = True
    created_at: UtcDatetime
    updated_at: UtcDatetime


class WebhookDeliveryPublic(Output):
    id: str
    webhook_id: str
    call_id: str
    event: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: UtcDatetime | None
    created_at: UtcDatetime
    delivered_at: UtcDatetime | None
    redelivery_of: str | None
    payload: dict[str, Any]

    @classmethod
    def of(cls, d: Any) -> WebhookDeliveryPublic:
        import json

        return cls(id=d.id, webhook_id=d.webhook_id, call_id=d.call_id, event=d.event, status=d.status,
                   attempts=d.attempts, last_status_code=d.last_status_code, last_error=d.last_error,
                   next_attempt_at=d.next_attempt_at if d.status == "pending" else None, created_at=d.created_at,
                   delivered_at=d.delivered_at, redelivery_of=d.redelivery_of, payload=json.loads(d.body))


class RerouteItem(BaseModel):
    name: str
    then: Any = Field(description="What the call's events say happened.")
    now: Any = Field(description="What today's routing, region selection and media selection choose.")
    differs: bool


class ReroutePublic(BaseModel):
    """`GET /v1/calls/{id}/reroute`: the call re-run against today's configuration and
    health, without placing it."""

    call_id: str
    tracking_number: str
    caller: str | None
    items: list[RerouteItem]
    differences: list[str]
    notes: list[str]
