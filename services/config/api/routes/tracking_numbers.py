"""Tracking numbers: the numbers carriers send calls for, each pointing at a receiving number."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from proto.messages import ConfigEntity

from ...db.models import ReceivingNumber, TrackingNumber
from ...errors import Conflict, InvalidInput, NotFound
from ...validation import normalize_e164
from ..common import paginate
from ..crud import Resource, public_of
from ..deps import CtxDep, Cursor, IdempotencyKey, IfMatch, Limit, Principal, PrincipalDep, SessionDep
from ..schemas import Page, TrackingNumberCreate, TrackingNumberPublic, TrackingNumberUpdate
from .receiving_numbers import account_exists

router = APIRouter(tags=["tracking-numbers"])
tracking_numbers = Resource(TrackingNumber, "tracking number", ConfigEntity.TRACKING_NUMBERS, lambda tn: tn.account_id)
public = public_of(TrackingNumberPublic)


async def _check_target(session: SessionDep, account_id: str, rn_id: str) -> None:
    rn = await session.get(ReceivingNumber, rn_id)
    if rn is None or rn.account_id != account_id:
        # Same answer for "does not exist" and "another account's": no existence leak.
        raise NotFound(f"no receiving number {rn_id}",
                       errors=[{"field": "receiving_number_id", "pointer": "#/receiving_number_id",
                                "message": "no such receiving number"}])


async def _check_unique(session: SessionDep, principal: Principal, number: str, exclude: str | None = None) -> None:
    stmt = select(TrackingNumber.account_id).where(TrackingNumber.number == number)
    if exclude:
        stmt = stmt.where(TrackingNumber.id != exclude)
    if (row := (await session.execute(stmt)).first()) is not None:
        if not principal.owns(row.account_id):
            # Not "already provisioned": that would tell another account's number exists.
            raise NotFound(f"tracking number {number} cannot be provisioned by this account",
                           errors=[{"field": "number", "pointer": "#/number", "message": "not available"}])
        raise Conflict(f"tracking number {number} is already provisioned",
                       errors=[{"field": "number", "pointer": "#/number", "message": "already provisioned"}])


@router.post("/v1/tracking-numbers", status_code=201, response_model=TrackingNumberPublic)
async def create_tracking_number(body: TrackingNumberCreate, request: Request, response: Response, ctx: CtxDep,
                                 session: SessionDep, principal: PrincipalDep, idempotency_key: IdempotencyKey = None):
    async def build() -> TrackingNumber:
        account_id = principal.account_for_create(body.account_id)
        await account_exists(session, account_id)
        await _check_target(session, account_id, body.receiving_number_id)
        await _check_unique(session, principal, body.number)
        return TrackingNumber(account_id=account_id, number=body.number, receiving_number_id=body.receiving_number_id,
                              name=body.name, enabled=body.enabled)

    return await tracking_numbers.create(request=request, response=response, ctx=ctx, session=session,
                                         principal=principal, idempotency_key=idempotency_key, body=body,
                                         build=build, public=public)


@router.get("/v1/tracking-numbers", response_model=Page[TrackingNumberPublic])
async def list_tracking_numbers(session: SessionDep, principal: PrincipalDep, limit: Limit = 50,
                                cursor: Cursor = None,
                                number: str | None = Query(None, max_length=40, description="E.164 number."),
                                receiving_number_id: str | None = Query(None, max_length=40),
                                account_id: str | None = Query(None, max_length=40, description="Admin only.")):
    stmt = select(TrackingNumber)
    if not principal.is_admin:
        stmt = stmt.where(TrackingNumber.account_id == principal.account_id)
    elif account_id:
        stmt = stmt.where(TrackingNumber.account_id == account_id)
    if number:
        try:
            stmt = stmt.where(TrackingNumber.number == normalize_e164(number))
        except ValueError as e:
            raise InvalidInput.field("number", str(e)) from None
    if receiving_number_id:
        stmt = stmt.where(TrackingNumber.receiving_number_id == receiving_number_id)
    rows, nxt = await paginate(session, stmt, TrackingNumber.id, limit, cursor)
    return Page[TrackingNumberPublic](items=[public(r) for r in rows], next_cursor=nxt)


@router.get("/v1/tracking-numbers/{tn_id}", response_model=TrackingNumberPublic)
async def get_tracking_number(tn_id: str, response: Response, session: SessionDep, principal: PrincipalDep):
    return tracking_numbers.show(response, await tracking_numbers.get(session, principal, tn_id), public)


@router.patch("/v1/tracking-numbers/{tn_id}", response_model=TrackingNumberPublic)
async def update_tracking_number(tn_id: str, body: TrackingNumberUpdate, response: Response, ctx: CtxDep,
                                 session: SessionDep, principal: PrincipalDep, if_match: IfMatch = None):
    tn = await tracking_numbers.get(session, principal, tn_id, if_match)
    fields = body.model_fields_set
    if "receiving_number_id" in fields and body.receiving_number_id != tn.receiving_number_id:
        await _check_target(session, tn.account_id, body.receiving_number_id or "")
    if "number" in fields and body.number != tn.number:
        await _check_unique(session, principal, body.number or "", exclude=tn.id)
    for name in ("number", "receiving_number_id", "name", "enabled"):
        if name in fields:
            setattr(tn, name, getattr(body, name))
    return await tracking_numbers.updated(response=response, ctx=ctx, session=session, obj=tn, public=public)


@router.delete("/v1/tracking-numbers/{tn_id}", status_code=204)
async def delete_tracking_number(tn_id: str, ctx: CtxDep, session: SessionDep, principal: PrincipalDep,
                                 if_match: IfMatch = None) -> Response:
    tn = await tracking_numbers.get(session, principal, tn_id, if_match)
    return await tracking_numbers.delete(ctx=ctx, session=session, obj=tn)
