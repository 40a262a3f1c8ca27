"""Tables of the config service. Only this service reads them (DESIGN: no shared tables).

Ids are prefixed and roughly time-ordered (`rn_0190f3c2a1b4...`), so keyset pagination by
id lists in creation order. Mutable rows carry `version` (SQLAlchemy's version counter):
every UPDATE checks it, so two writers holding the same ETag cannot both win."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
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

    receiving_number: Mapped[ReceivingNumber] = relationship(back_populates="targets")


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
