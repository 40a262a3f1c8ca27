"""Tables of the config service. Only this service reads them (DESIGN: no shared tables).

Ids are prefixed and roughly time-ordered (`rn_0190f3c2a1b4...`), so keyset pagination by
id lists in creation order. Mutable rows carry `version` (SQLAlchemy's version counter):
every UPDATE checks it, so two writers holding the same ETag cannot both win."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def new_id(prefix: str) -> str:
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{os.urandom(6).hex()}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Account(Timestamps, Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("acc"))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__ = {"version_id_col": version}


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("key"))
    account_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE"), index=True, nullable=True
    )
    """None: an admin key."""
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    """The first characters of the key, shown in listings so a key can be recognised."""
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReceivingNumber(Timestamps, Base):
    __tablename__ = "receiving_numbers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("rn"))
    account_id: Mapped[str] = mapped_column(String(40), ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    dial_sip_client: Mapped[bool] = mapped_column(Boolean, default=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    ring_timeout: Mapped[int] = mapped_column(Integer, default=30)
    send_digits: Mapped[str | None] = mapped_column(String(64), nullable=True)
    region: Mapped[str | None] = mapped_column(String(16), nullable=True)
    nat: Mapped[str] = mapped_column(String(8), default="auto", server_default="auto")
    # PBX options (proto.messages.PbxOptions; issue 15)
    diversion: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    request_uri_user: Mapped[str] = mapped_column(String(16), default="target", server_default="target")
    forward_pai: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    forward_identity: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    forward_headers: Mapped[list[str] | None] = mapped_column(JSON, nullable=True, default=list)
    sip_headers: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True, default=dict)
    transfer: Mapped[str] = mapped_column(String(16), default="same_host", server_default="same_host")
    follow_redirects: Mapped[str] = mapped_column(String(16), default="same_host", server_default="same_host")
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    targets: Mapped[list[SipTargetRow]] = relationship(
        back_populates="receiving_number",
        cascade="all, delete-orphan",
        order_by="SipTargetRow.position",
        lazy="selectin",
    )

    __mapper_args__ = {"version_id_col": version}


class SipTargetRow(Base):
    __tablename__ = "sip_targets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("tgt"))
    receiving_number_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("receiving_numbers.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    uri: Mapped[str] = mapped_column(String(512))
    username: Mapped[str | None] = mapped_column(String(200), nullable=True)
    password_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=10)
    weight: Mapped[int] = mapped_column(Integer, default=10)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    tls_verify: Mapped[bool] = mapped_column(Boolean, default=True)
    tls_ca_pem: Mapped[str | None] = mapped_column(Text, nullable=True)
    tls_client_cert_pem: Mapped[str | None] = mapped_column(Text, nullable=True)
    tls_client_key_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    media_encryption: Mapped[str | None] = mapped_column(String(8), nullable=True)
    """"srtp" or "none"; NULL follows the URI (SRTP on TLS)."""
    options_ping: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")

    receiving_number: Mapped[ReceivingNumber] = relationship(back_populates="targets")
    health_row: Mapped[TargetHealthRow | None] = relationship(lazy="selectin", viewonly=True)


class TargetHealthRow(Base):
    """The last OPTIONS verdict on a pinged target (written from `TargetHealthChanged`)."""

    __tablename__ = "target_health"

    target_id: Mapped[str] = mapped_column(String(40), ForeignKey("sip_targets.id", ondelete="CASCADE"),
                                           primary_key=True)
    health: Mapped[str] = mapped_column(String(8), default="unknown")
    """up, down, unknown."""
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    node: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The signaling node that pings it."""


class TrackingNumber(Timestamps, Base):
    __tablename__ = "tracking_numbers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("tn"))
    account_id: Mapped[str] = mapped_column(String(40), ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    """E.164, normalised; unique across accounts (a number rings in one place)."""
    name: Mapped[str] = mapped_column(String(200), default="")
    receiving_number_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("receiving_numbers.id"), index=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__ = {"version_id_col": version}


class IdempotencyRecord(Base):
    """The answer to a POST made with an Idempotency-Key, replayed for the same key."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("principal", "key", name="uq_idempotency_principal_key"),
                      Index("ix_idempotency_created", "created_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    principal: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(512))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CallRecord(Base):
    """One row per call, built from the CALLS stream by the call-record consumer
    (`services/config/records.py`). Keyed by the call id; every event applies once: the
    (node, seq) pairs already applied are kept in `applied`."""

    __tablename__ = "call_records"
    __table_args__ = (Index("ix_call_records_account_started", "account_id", "started_at"),
                      Index("ix_call_records_tracking_started", "tracking_number", "started_at"),
                      Index("ix_call_records_started", "started_at"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    """The call id of the events (`call.<id>.*`)."""
    account_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    """None until routing names the account; stays None for calls refused before routing
    (visible to the admin only). No foreign key: records outlive a deleted account."""
    tracking_number: Mapped[str | None] = mapped_column(String(40), nullable=True)
    receiving_number_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    caller: Mapped[str | None] = mapped_column(String(200), nullable=True)
    caller_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    sip_call_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    region: Mapped[str | None] = mapped_column(String(16), nullable=True)
    node: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ringing_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Seconds from answer to end; 0 for a call never answered; None while in progress."""
    pdd_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    result: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """completed, busy, no-answer, failed, canceled; None while in progress."""
    final_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    sip_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    secure_media: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    targets: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """What the events said about the targets (dials, outcomes, the final summary), as
    they came; `records.attempts()` makes the list of targets tried from them."""
    media: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    mos: Mapped[float | None] = mapped_column(Float, nullable=True)
    packets_lost: Mapped[int | None] = mapped_column(Integer, nullable=True)
    jitter_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    srtp_failures: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dtmf: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """[{digit, leg, duration_ms, ts, key}] in time order."""
    applied: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """node -> sorted list of the event seqs applied (idempotency and gap detection)."""
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__ = {"version_id_col": version}


class Webhook(Timestamps, Base):
    """A status-callback endpoint of an account."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("wh"))
    account_id: Mapped[str] = mapped_column(String(40), ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret_sealed: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(String(200), default="")


class WebhookDelivery(Base):
    """One event to send to one endpoint, and how sending it went (the delivery log).
    Pending rows are the queue: a restart loses nothing."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("webhook_id", "call_id", "event_key", name="uq_delivery_event"),
                      Index("ix_deliveries_due", "status", "next_attempt_at"),
                      Index("ix_deliveries_call", "webhook_id", "call_id", "order_ts"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("whd"))
    webhook_id: Mapped[str] = mapped_column(String(40), ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[str] = mapped_column(String(40))
    call_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(16))
    event_key: Mapped[str] = mapped_column(String(160))
    """Unique per (endpoint, call): the event name, `dtmf:<node>:<seq>`, or a redelivery's."""
    order_ts: Mapped[float] = mapped_column(Float)
    """Deliveries of one call to one endpoint go out in this order, each after the one before."""
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """pending, succeeded, failed (gave up after the retry window)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """A worker sending this row holds it until then (several config instances)."""
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    redelivery_of: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
