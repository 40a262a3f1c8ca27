"""Call records (built by the call-record consumer) and a call's event timeline (from the
CALLS stream). An account sees its own calls; calls refused before routing have no
account and are visible to the admin only."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import Select, and_, or_, select

from proto import subjects
from services.common.callstream import read_call_events
from services.common.errors import BusError
from services.common.reroute import NothingToRerun, reroute

from ... import cdr
from ...db.models import CallRecord
from ...errors import InvalidInput, NotFound, Unavailable
from ...records import attempts, gaps
from ...validation import normalize_e164
from ..deps import CtxDep, Cursor, Limit, PrincipalDep, SessionDep
from ..schemas import CallEventList, CallEventPublic, CallPublic, CallResult, Page, ReroutePublic

router = APIRouter(tags=["calls"])


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _cursor(rec: CallRecord) -> str:
    raw = f"{_utc(rec.started_at).isoformat()}|{rec.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, call_id = raw.split("|", 1)
        when = _utc(datetime.fromisoformat(ts))
        subjects.token(call_id)
        return when, call_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput.field("cursor", "not a cursor this API returned") from None


async def get_record(session: SessionDep, principal: PrincipalDep, call_id: str) -> CallRecord:
    rec = await session.get(CallRecord, call_id) if 0 < len(call_id) <= 64 else None
    # Unknown, another account's, or not routed to any account: the same 404.
    if rec is None or not (principal.is_admin or (rec.account_id is not None and rec.account_id == principal.account_id)):
        raise NotFound(f"no call {call_id}")
    return rec


def _filtered(principal: Any, number: str | None, from_: datetime | None, to: datetime | None,
              result: CallResult | None, account_id: str | None) -> Select[tuple[CallRecord]]:
    stmt = select(CallRecord)
    if not principal.is_admin:
        stmt = stmt.where(CallRecord.account_id == principal.account_id)
    elif account_id:
        stmt = stmt.where(CallRecord.account_id == account_id)
    if number:
        try:
            stmt = stmt.where(CallRecord.tracking_number == normalize_e164(number))
        except ValueError as e:
            raise InvalidInput.field("number", str(e)) from None
    if from_ is not None:
        stmt = stmt.where(CallRecord.started_at >= _utc(from_))
    if to is not None:
        stmt = stmt.where(CallRecord.started_at < _utc(to))
    if result is not None:
        stmt = stmt.where(CallRecord.result == result)
    return stmt


def _after(stmt: Select[tuple[CallRecord]], when: datetime, last: str) -> Select[tuple[CallRecord]]:
    return stmt.where(or_(CallRecord.started_at < when, and_(CallRecord.started_at == when, CallRecord.id < last)))


NEWEST_FIRST = (CallRecord.started_at.desc(), CallRecord.id.desc())
CSV_BATCH = 500


@router.get("/v1/calls", response_model=Page[CallPublic],
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "With format=csv: every matching call as CSV (columns: "
                                            + ", ".join(cdr.COLUMNS) + ")."}})
async def list_calls(session: SessionDep, principal: PrincipalDep, ctx: CtxDep, limit: Limit = 50,
                     cursor: Cursor = None,
                     number: str | None = Query(None, max_length=40, description="Tracking number (E.164)."),
                     from_: datetime | None = Query(None, alias="from", description="Started at or after (ISO 8601)."),
                     to: datetime | None = Query(None, description="Started before (ISO 8601)."),
                     result: CallResult | None = Query(None),
                     account_id: str | None = Query(None, max_length=40, description="Admin only."),
                     format: Literal["json", "csv"] = Query(
                         "json", description="csv: every matching call (limit and cursor ignored), streamed, "
                                             "newest first; the columns are in docs (services/config/cdr.py).")):
    """Calls, newest first."""
    stmt = _filtered(principal, number, from_, to, result, account_id)
    if format == "csv":
        return StreamingResponse(_csv(ctx, stmt), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": 'attachment; filename="calls.csv"'})
    if cursor:
        stmt = _after(stmt, *_decode(cursor))
    rows = list((await session.execute(stmt.order_by(*NEWEST_FIRST).limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[CallPublic](items=[CallPublic.of(r, gaps(r.applied or {}), attempts(r)) for r in rows],
                            next_cursor=_cursor(rows[-1]) if more and rows else None)


async def _csv(ctx: Any, stmt: Select[tuple[CallRecord]]) -> AsyncIterator[str]:
    """Batches by keyset, each in its own short session: a long export holds no transaction
    open, and memory stays one batch whatever the number of calls."""
    yield cdr.lines([])
    page = stmt
    while True:
        async with ctx.sessionmaker() as s:
            recs = list((await s.execute(page.order_by(*NEWEST_FIRST).limit(CSV_BATCH))).scalars())
        if not recs:
            return
        yield cdr.lines((cdr.row(CallPublic.of(r, {}, attempts(r)).model_dump(mode="json")) for r in recs),
                        header=False)
        if len(recs) < CSV_BATCH:
            return
        page = _after(stmt, _utc(recs[-1].started_at), recs[-1].id)


@router.get("/v1/calls/{call_id}", response_model=CallPublic)
async def get_call(call_id: str, session: SessionDep, principal: PrincipalDep):
    rec = await get_record(session, principal, call_id)
    return CallPublic.of(rec, gaps(rec.applied or {}), attempts(rec))


@router.get("/v1/calls/{call_id}/events", response_model=CallEventList)
async def get_call_events(call_id: str, ctx: CtxDep, session: SessionDep, principal: PrincipalDep):
    """The call's timeline from the event stream, in order: SIP messages (`sip_in`,
    `sip_out`, credentials redacted) and every step of the call."""
    try:
        subjects.token(call_id)
    except subjects.SubjectError:
        raise NotFound(f"no call {call_id}") from None
    await get_record(session, principal, call_id)
    if ctx.bus is None or not ctx.bus.connected:
        raise Unavailable("the event stream is not reachable; try again", headers={"Retry-After": "1"})
    try:
        events = await read_call_events(ctx.bus, call_id, wait=ctx.settings.call_events_timeout)
    except Exception as e:
        raise Unavailable(f"the event stream did not answer: {type(e).__name__}",
                          headers={"Retry-After": "1"}) from None
    return CallEventList(items=[CallEventPublic(seq=e.seq, kind=e.kind, ts=e.ts, service=e.service, node=e.node,
                                                region=e.region, payload=e.payload) for e in events])


@router.get("/v1/calls/{call_id}/reroute", response_model=ReroutePublic)
async def get_call_reroute(call_id: str, ctx: CtxDep, session: SessionDep, principal: PrincipalDep):
    """What-if: today's routing, region selection and media selection for this call
    (nothing is placed or allocated), beside what happened, each difference marked."""
    try:
        subjects.token(call_id)
    except subjects.SubjectError:
        raise NotFound(f"no call {call_id}") from None
    await get_record(session, principal, call_id)
    if ctx.bus is None or not ctx.bus.connected:
        raise Unavailable("the event stream is not reachable; try again", headers={"Retry-After": "1"})
    try:
        events = await read_call_events(ctx.bus, call_id, wait=ctx.settings.call_events_timeout)
        result = await reroute(ctx.bus, events, timeout=ctx.settings.registry_timeout)
    except NothingToRerun as e:
        raise NotFound(f"call {call_id}: {e}") from None
    except BusError as e:
        raise Unavailable(f"routing did not answer: {e}", headers={"Retry-After": "1"}) from None
    return result.to_dict()
