"""Receiving numbers: where a tracking number's calls go (SIP client targets)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import func, inspect, select

from proto.messages import ConfigEntity

from ...db.models import Account, ReceivingNumber, SipTargetRow, TrackingNumber, utcnow
from ...errors import Conflict, InvalidInput
from ...secrets import SecretBox
from ...validation import check_media_encryption, media_encryption, parse_sip_uri
from ..common import paginate
from ..context import AppContext
from ..crud import Resource
from ..deps import CtxDep, Cursor, IdempotencyKey, IfMatch, Limit, PrincipalDep, SessionDep
from ..schemas import (
    PBX_OPTIONS,
    Page,
    ReceivingNumberCreate,
    ReceivingNumberPublic,
    ReceivingNumberUpdate,
    SipTargetIn,
    SipTargetPublic,
    TlsOptionsPublic,
)

router = APIRouter(tags=["receiving-numbers"])
receiving_numbers = Resource(ReceivingNumber, "receiving number", ConfigEntity.RECEIVING_NUMBERS, lambda rn: rn.account_id)


def public(rn: ReceivingNumber) -> ReceivingNumberPublic:
    targets = []
    for t in rn.targets:
        uri = parse_sip_uri(t.uri)
        targets.append(SipTargetPublic(
            id=t.id, uri=t.uri, username=t.username, priority=t.priority, weight=t.weight, enabled=t.enabled,
            has_password=t.password_sealed is not None, transport=uri.transport,
            secure_media=media_encryption(uri, t.media_encryption) == "srtp",
            media_encryption=media_encryption(uri, t.media_encryption),  # type: ignore[arg-type]
            tls=TlsOptionsPublic(verify=t.tls_verify, ca_pem=t.tls_ca_pem, client_cert_pem=t.tls_client_cert_pem,
                                 has_client_key=t.tls_client_key_sealed is not None),
            options_ping=t.options_ping, **_health(t)))
    return ReceivingNumberPublic(
        id=rn.id, account_id=rn.account_id, name=rn.name, dial_sip_client=rn.dial_sip_client, enabled=rn.enabled,
        ring_timeout=rn.ring_timeout, send_digits=rn.send_digits, region=rn.region, nat=rn.nat,  # type: ignore[arg-type]
        sip_targets=targets,
        created_at=rn.created_at, updated_at=rn.updated_at, **pbx_options(rn))


def pbx_options(rn: ReceivingNumber) -> dict[str, Any]:
    return {"diversion": rn.diversion, "request_uri_user": rn.request_uri_user, "forward_pai": rn.forward_pai,
            "forward_identity": rn.forward_identity, "forward_headers": list(rn.forward_headers or []),
            "sip_headers": dict(rn.sip_headers or {}), "transfer": rn.transfer,
            "follow_redirects": rn.follow_redirects}


def _health(t: SipTargetRow) -> dict[str, Any]:
    # A row just built has no health row loaded (and none exists): no lazy load here.
    h = None if "health_row" in inspect(t).unloaded else t.health_row
    if not t.options_ping or h is None:
        return {"health": "unknown", "health_changed_at": None}
    changed = h.changed_at if h.changed_at.tzinfo else h.changed_at.replace(tzinfo=UTC)
    return {"health": h.health, "health_changed_at": changed}


def check_region(ctx: AppContext, region: str | None) -> None:
    regions = ctx.settings.regions
    if region is not None and region not in regions:
        known = ", ".join(f"{code} ({name})" for code, name in regions.items())
        raise InvalidInput.field("region", f"unknown region {region!r}; known regions: {known}")


def build_targets(box: SecretBox, items: list[SipTargetIn], existing: list[SipTargetRow]) -> list[SipTargetRow]:
    """Rows for the new target list. A target that names an existing id keeps its sealed
    password and client key unless the request sets them (they are write-only)."""
    old = {t.id: t for t in existing}
    rows: list[SipTargetRow] = []
    for i, t in enumerate(items):
        prev = None
        if t.id is not None:
            prev = old.pop(t.id, None)
            if prev is None:
                raise InvalidInput.field(f"sip_targets[{i}].id", "not a target of this receiving number")
        row = prev or SipTargetRow()
        row.position = i
        row.uri = t.uri
        row.username = t.username
        row.priority = t.priority
        row.weight = t.weight
        row.enabled = t.enabled
        problem = check_media_encryption(parse_sip_uri(t.uri), t.media_encryption)
        if problem:
            raise InvalidInput.field(f"sip_targets[{i}].media_encryption", problem)
        row.media_encryption = t.media_encryption
        row.options_ping = t.options_ping
        if "password" in t.model_fields_set or prev is None:
            row.password_sealed = box.seal(t.password) if t.password is not None else None
        row.tls_verify = t.tls.verify
        row.tls_ca_pem = t.tls.ca_pem
        row.tls_client_cert_pem = t.tls.client_cert_pem
        if "client_key_pem" in t.tls.model_fields_set or prev is None:
            key = t.tls.client_key_pem
            row.tls_client_key_sealed = box.seal(key) if key is not None else None
        if (row.tls_client_cert_pem is None) != (row.tls_client_key_sealed is None):
            raise InvalidInput.field(f"sip_targets[{i}].tls.client_key_pem",
                                     "a client certificate and its key go together")
        if row.username is None and row.password_sealed is not None:
            raise InvalidInput.field(f"sip_targets[{i}].username", "a password needs a SIP user")
        rows.append(row)
    return rows


async def account_exists(session: SessionDep, account_id: str) -> None:
    if await session.get(Account, account_id) is None:
        raise InvalidInput.field("account_id", "unknown account")


@router.post("/v1/receiving-numbers", status_code=201, response_model=ReceivingNumberPublic)
async def create_receiving_number(body: ReceivingNumberCreate, request: Request, response: Response, ctx: CtxDep,
                                  session: SessionDep, principal: PrincipalDep,
                                  idempotency_key: IdempotencyKey = None):
    async def build() -> ReceivingNumber:
        account_id = principal.account_for_create(body.account_id)
        await account_exists(session, account_id)
        check_region(ctx, body.region)
        rn = ReceivingNumber(account_id=account_id, name=body.name, dial_sip_client=body.dial_sip_client,
                             enabled=body.enabled, ring_timeout=body.ring_timeout, send_digits=body.send_digits,
                             region=body.region, nat=body.nat, **{k: getattr(body, k) for k in PBX_OPTIONS})
        rn.targets = build_targets(ctx.secrets, body.sip_targets, [])
        return rn

    return await receiving_numbers.create(request=request, response=response, ctx=ctx, session=session,
                                          principal=principal, idempotency_key=idempotency_key, body=body,
                                          build=build, public=public)


@router.get("/v1/receiving-numbers", response_model=Page[ReceivingNumberPublic])
async def list_receiving_numbers(session: SessionDep, principal: PrincipalDep, limit: Limit = 50,
                                 cursor: Cursor = None,
                                 account_id: str | None = Query(None, max_length=40, description="Admin only."),
                                 name: str | None = Query(None, max_length=200)):
    stmt = select(ReceivingNumber)
    if not principal.is_admin:
        stmt = stmt.where(ReceivingNumber.account_id == principal.account_id)
    elif account_id:
        stmt = stmt.where(ReceivingNumber.account_id == account_id)
    if name:
        stmt = stmt.where(ReceivingNumber.name == name)
    rows, nxt = await paginate(session, stmt, ReceivingNumber.id, limit, cursor)
    return Page[ReceivingNumberPublic](items=[public(r) for r in rows], next_cursor=nxt)


@router.get("/v1/receiving-numbers/{rn_id}", response_model=ReceivingNumberPublic)
async def get_receiving_number(rn_id: str, response: Response, session: SessionDep, principal: PrincipalDep):
    return receiving_numbers.show(response, await receiving_numbers.get(session, principal, rn_id), public)


@router.patch("/v1/receiving-numbers/{rn_id}", response_model=ReceivingNumberPublic)
async def update_receiving_number(rn_id: str, body: ReceivingNumberUpdate, response: Response, ctx: CtxDep,
                                  session: SessionDep, principal: PrincipalDep, if_match: IfMatch = None):
    rn = await receiving_numbers.get(session, principal, rn_id, if_match)
    fields = body.model_fields_set
    if "region" in fields:
        check_region(ctx, body.region)
    for name in ("name", "dial_sip_client", "enabled", "ring_timeout", "send_digits", "region", "nat", *PBX_OPTIONS):
        if name in fields:
            setattr(rn, name, getattr(body, name))
    if body.sip_targets is not None:
        rn.targets = build_targets(ctx.secrets, body.sip_targets, list(rn.targets))
    rn.updated_at = utcnow()  # the row is always updated, so its version moves with its targets
    return await receiving_numbers.updated(response=response, ctx=ctx, session=session, obj=rn, public=public,
                                           refresh=["targets"])


@router.delete("/v1/receiving-numbers/{rn_id}", status_code=204)
async def delete_receiving_number(rn_id: str, ctx: CtxDep, session: SessionDep, principal: PrincipalDep,
                                  if_match: IfMatch = None) -> Response:
    rn = await receiving_numbers.get(session, principal, rn_id, if_match)
    used = await session.scalar(select(func.count()).select_from(TrackingNumber)
                                .where(TrackingNumber.receiving_number_id == rn.id))
    if used:
        raise Conflict(f"{used} tracking number(s) still point at this receiving number; "
                       "move or delete them first")
    return await receiving_numbers.delete(ctx=ctx, session=session, obj=rn)
