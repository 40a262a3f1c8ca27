"""Pagination, ETags and Idempotency-Key, shared by the routers."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel
from sqlalchemy import Select, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import IdempotencyRecord
from ..errors import Conflict, InvalidInput, PreconditionFailed
from .deps import Principal

_ID = re.compile(r"^[a-z]+_[0-9a-f]+$")


# --- pagination: keyset on the (time-ordered) id ---------------------------------------


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        value = ""
    if not _ID.match(value):
        raise InvalidInput.field("cursor", "not a cursor this API returned")
    return value


async def paginate(session: AsyncSession, stmt: Select[Any], id_col: Any, limit: int,
                   cursor: str | None) -> tuple[list[Any], str | None]:
    if cursor:
        stmt = stmt.where(id_col > decode_cursor(cursor))
    rows = list((await session.execute(stmt.order_by(id_col).limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1].id) if more and rows else None)


# --- ETag / If-Match (RFC 9110 §13.1.1) -------------------------------------------------


def etag(version: int) -> str:
    return f'"v{version}"'


def check_if_match(if_match: str | None, version: int) -> None:
    if if_match is None:
        return
    tags = [t.strip() for t in if_match.split(",")]
    if "*" in tags or etag(version) in tags:
        return
    raise PreconditionFailed(f"If-Match {if_match} does not match the current ETag {etag(version)}",
                             headers={"ETag": etag(version)})


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


# --- Idempotency-Key ------------------------------------------------------------------


class Idempotency:
    """Remembers the answer of a POST made with an Idempotency-Key, in the same transaction
    as the write, so a retry gets the first answer and never a second object."""

    def __init__(self, request: Request, principal: Principal, key: str | None, body: BaseModel | None,
                 ttl: float) -> None:
        self.key = key
        self.scope = principal.scope
        self.method = request.method
        self.path = request.url.path
        self.ttl = ttl
        payload = jsonable_encoder(body.model_dump(exclude_unset=True)) if body is not None else None
        self.hash = hashlib.sha256(json.dumps([self.path, payload], sort_keys=True).encode()).hexdigest()

    async def replay(self, session: AsyncSession) -> Response | None:
        if not self.key:
            return None
        rec = (await session.execute(select(IdempotencyRecord).where(
            IdempotencyRecord.principal == self.scope, IdempotencyRecord.key == self.key))).scalar_one_or_none()
        if rec is None:
            return None
        created = rec.created_at if rec.created_at.tzinfo else rec.created_at.replace(tzinfo=UTC)
        if created < datetime.now(UTC) - timedelta(seconds=self.ttl):
            await session.delete(rec)
            await session.flush()
            return None
        if rec.request_hash != self.hash:
            raise InvalidInput.field(
                "Idempotency-Key", "this key was already used with a different request (path or body)")
        if rec.status == 0:
            raise Conflict("this Idempotency-Key was used to create a secret shown only once; "
                           "the object exists already", **json.loads(rec.body))
        return Response(rec.body, status_code=rec.status, media_type="application/json",
                        headers={"Idempotent-Replayed": "true"})

    def record(self, session: AsyncSession, status: int, body: Any) -> None:
        if not self.key:
            return
        session.add(IdempotencyRecord(principal=self.scope, key=self.key, method=self.method, path=self.path,
                                      request_hash=self.hash, status=status,
                                      body=json.dumps(jsonable_encoder(body)).encode()))

    async def commit(self, session: AsyncSession) -> Response | None:
        """Commit; if a concurrent request with the same key won, answer its result."""
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            if self.key:
                replay = await self.replay(session)
                if replay is not None:
                    return replay
            raise
        return None


async def purge_idempotency(session: AsyncSession, ttl: float) -> int:
    """Forget answers older than the TTL (run periodically by the service)."""
    cutoff = datetime.now(UTC) - timedelta(seconds=ttl)
    res = await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    await session.commit()
    return res.rowcount or 0  # type: ignore[attr-defined,no-any-return]
