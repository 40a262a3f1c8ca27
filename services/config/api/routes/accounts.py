"""Accounts and their API keys."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from proto.messages import ConfigEntity

from ...db.models import Account, ApiKey
from ...errors import Forbidden, NotFound
from ..common import Idempotency, paginate
from ..crud import Resource, public_of
from ..deps import (
    AdminDep,
    CtxDep,
    Cursor,
    IdempotencyKey,
    IfMatch,
    Limit,
    PrincipalDep,
    SessionDep,
    hash_key,
)
from ..schemas import (
    AccountCreate,
    AccountPublic,
    AccountUpdate,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    Page,
)

router = APIRouter(tags=["accounts"])

KEY_PREFIX = "sb_"
accounts = Resource(Account, "account", ConfigEntity.ACCOUNTS, lambda acc: acc.id)
public = public_of(AccountPublic)


@router.post("/v1/accounts", status_code=201, response_model=AccountPublic)
async def create_account(body: AccountCreate, request: Request, response: Response, ctx: CtxDep,
                         session: SessionDep, principal: AdminDep, idempotency_key: IdempotencyKey = None):
    async def build() -> Account:
        return Account(name=body.name, status=body.status)

    return await accounts.create(request=request, response=response, ctx=ctx, session=session, principal=principal,
                                 idempotency_key=idempotency_key, body=body, build=build, public=public)


@router.get("/v1/accounts", response_model=Page[AccountPublic])
async def list_accounts(session: SessionDep, principal: PrincipalDep, limit: Limit = 50, cursor: Cursor = None):
    stmt = select(Account)
    if not principal.is_admin:
        stmt = stmt.where(Account.id == principal.account_id)
    rows, nxt = await paginate(session, stmt, Account.id, limit, cursor)
    return Page[AccountPublic](items=[public(r) for r in rows], next_cursor=nxt)


@router.get("/v1/accounts/{account_id}", response_model=AccountPublic)
async def get_account(account_id: str, response: Response, session: SessionDep, principal: PrincipalDep):
    return accounts.show(response, await accounts.get(session, principal, account_id), public)


@router.patch("/v1/accounts/{account_id}", response_model=AccountPublic)
async def update_account(account_id: str, body: AccountUpdate, response: Response, ctx: CtxDep,
                         session: SessionDep, principal: PrincipalDep, if_match: IfMatch = None):
    acc = await accounts.get(session, principal, account_id, if_match)
    if body.status is not None and body.status != acc.status and not principal.is_admin:
        raise Forbidden("only an admin can suspend or reactivate an account")
    for name in body.model_fields_set:
        setattr(acc, name, getattr(body, name))
    return await accounts.updated(response=response, ctx=ctx, session=session, obj=acc, public=public)


@router.delete("/v1/accounts/{account_id}", status_code=204)
async def delete_account(account_id: str, ctx: CtxDep, session: SessionDep, principal: AdminDep,
                         if_match: IfMatch = None) -> Response:
    acc = await accounts.get(session, principal, account_id, if_match)
    return await accounts.delete(ctx=ctx, session=session, obj=acc)


# --- API keys ------------------------------------------------------------------------


async def _new_key(request: Request, ctx: CtxDep, session: SessionDep, principal: PrincipalDep,
                   account_id: str | None, body: ApiKeyCreate, idempotency_key: str | None):
    idem = Idempotency(request, principal, idempotency_key, body, ctx.settings.idempotency_ttl)
    if (replayed := await idem.replay(session)) is not None:
        return replayed
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(account_id=account_id, name=body.name, prefix=key[:10], key_hash=hash_key(key))
    session.add(row)
    await session.flush()
    # The key is shown once: a replay answers 409 with the key's id, never the key again.
    idem.record(session, 0, {"key_id": row.id})
    if (replayed := await idem.commit(session)) is not None:
        return replayed
    await ctx.changed(ConfigEntity.API_KEYS, row.id, account_id, "created")
    return ApiKeyCreated(key=key, **ApiKeyPublic.model_validate(row).model_dump())


@router.post("/v1/accounts/{account_id}/api-keys", status_code=201, response_model=ApiKeyCreated,
             tags=["api-keys"])
async def create_account_key(account_id: str, request: Request, ctx: CtxDep, session: SessionDep,
                             principal: PrincipalDep, idempotency_key: IdempotencyKey = None,
                             body: ApiKeyCreate | None = None):
    acc = await accounts.get(session, principal, account_id)
    return await _new_key(request, ctx, session, principal, acc.id, body or ApiKeyCreate(), idempotency_key)


@router.get("/v1/accounts/{account_id}/api-keys", response_model=Page[ApiKeyPublic], tags=["api-keys"])
async def list_account_keys(account_id: str, session: SessionDep, principal: PrincipalDep,
                            limit: Limit = 50, cursor: Cursor = None):
    acc = await accounts.get(session, principal, account_id)
    rows, nxt = await paginate(session, select(ApiKey).where(ApiKey.account_id == acc.id), ApiKey.id, limit, cursor)
    return Page[ApiKeyPublic](items=[ApiKeyPublic.model_validate(r) for r in rows], next_cursor=nxt)


@router.post("/v1/api-keys", status_code=201, response_model=ApiKeyCreated, tags=["api-keys"])
async def create_admin_key(request: Request, ctx: CtxDep, session: SessionDep, principal: AdminDep,
                           idempotency_key: IdempotencyKey = None, body: ApiKeyCreate | None = None):
    """An admin-scoped key (manages every account), for automation that must not use the
    bootstrap admin token."""
    return await _new_key(request, ctx, session, principal, None, body or ApiKeyCreate(), idempotency_key)


@router.get("/v1/api-keys", response_model=Page[ApiKeyPublic], tags=["api-keys"])
async def list_keys(session: SessionDep, principal: PrincipalDep, limit: Limit = 50, cursor: Cursor = None):
    stmt = select(ApiKey)
    if not principal.is_admin:
        stmt = stmt.where(ApiKey.account_id == principal.account_id)
    rows, nxt = await paginate(session, stmt, ApiKey.id, limit, cursor)
    return Page[ApiKeyPublic](items=[ApiKeyPublic.model_validate(r) for r in rows], next_cursor=nxt)


async def _key(session: SessionDep, principal: PrincipalDep, key_id: str) -> ApiKey:
    row = await session.get(ApiKey, key_id) if len(key_id) <= 40 else None
    if row is None or not (principal.is_admin or row.account_id == principal.account_id):
        raise NotFound(f"no API key {key_id}")
    return row


@router.get("/v1/api-keys/{key_id}", response_model=ApiKeyPublic, tags=["api-keys"])
async def get_key(key_id: str, session: SessionDep, principal: PrincipalDep):
    return ApiKeyPublic.model_validate(await _key(session, principal, key_id))


@router.delete("/v1/api-keys/{key_id}", status_code=204, tags=["api-keys"])
async def delete_key(key_id: str, ctx: CtxDep, session: SessionDep, principal: PrincipalDep) -> Response:
    row = await _key(session, principal, key_id)
    account_id = row.account_id
    await session.delete(row)
    await session.commit()
    await ctx.changed(ConfigEntity.API_KEYS, key_id, account_id, "deleted")
    return Response(status_code=204)
