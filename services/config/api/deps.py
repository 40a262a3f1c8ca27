"""FastAPI dependencies, as `Annotated` aliases the routes declare."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import ApiKey
from ..errors import InvalidInput, NotFound, Unauthorized
from .context import AppContext


def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


CtxDep = Annotated[AppContext, Depends(get_ctx)]


async def get_session(ctx: CtxDep) -> AsyncIterator[AsyncSession]:
    async with ctx.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the admin (token or admin-scoped key) or one account's key."""

    account_id: str | None
    key_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.account_id is None

    @property
    def scope(self) -> str:
        """Idempotency keys are remembered per scope."""
        return "admin" if self.account_id is None else self.account_id

    def owns(self, account_id: str) -> bool:
        return self.is_admin or self.account_id == account_id

    def account_for_create(self, requested: str | None) -> str:
        """The account a new object goes to: an account key's own (naming another one is
        an unknown account), or the one the admin names."""
        if self.account_id is not None:
            if requested not in (None, self.account_id):
                # Another account is as unknown as one that does not exist: 404 for both.
                raise NotFound(f"no account {requested}")
            return self.account_id
        if requested is None:
            raise InvalidInput.field("account_id", "required with an admin key")
        return requested


def hash_key(key: str) -> str:
    # API keys are 256-bit random tokens: a plain SHA-256 is enough (no guessable input).
    return hashlib.sha256(key.encode()).hexdigest()


bearer = HTTPBearer(auto_error=False, description="The admin token or an API key")


async def get_principal(
    ctx: CtxDep,
    session: SessionDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if creds is None or not creds.credentials:
        raise Unauthorized("send Authorization: Bearer <API key>")
    token = creds.credentials
    admin = ctx.settings.admin_token
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return Principal(account_id=None)
    if len(token) > 200:
        raise Unauthorized("unknown API key")
    row = (await session.execute(select(ApiKey.id, ApiKey.account_id).where(ApiKey.key_hash == hash_key(token)))).first()
    if row is None:
        raise Unauthorized("unknown API key")
    return Principal(account_id=row.account_id, key_id=row.id)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        # An account key must not learn that admin-only objects exist.
        raise NotFound("not found")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]

Limit = Annotated[int, Query(ge=1, le=200, description="Items per page (1-200).")]
Cursor = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page.")]
IfMatch = Annotated[str | None, Header(max_length=512, description="ETag of the version you are changing.")]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=255, pattern=r"^[\x21-\x7e]+$",
           description="Repeat a POST safely: the same key answers the first result again."),
]
