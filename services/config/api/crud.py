"""The create / read / update / delete flow the provisioning resources share (accounts,
receiving numbers, tracking numbers): another account's object answers 404 like a missing
one (no existence leak), POST honours Idempotency-Key, reads and writes carry the ETag and
check If-Match (RFC 9110 §13.1.1), a write that lost a race is 412, and every committed
write is announced as a ConfigChanged. A route keeps only what is its own: the checks of its
fields and how its row is built and shown."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from fastapi import Request, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from proto.messages import ConfigEntity

from ..errors import NotFound, PreconditionFailed
from .common import Idempotency, check_if_match, set_etag
from .context import AppContext
from .deps import Principal


class Row(Protocol):
    id: str
    version: int


R = TypeVar("R", bound=Row)
P = TypeVar("P", bound=BaseModel)

MAX_ID = 40  # longer ids are never ours: answer 404 without asking the database


@dataclass(frozen=True)
class Resource(Generic[R]):
    model: type[R]
    noun: str
    """What the messages call one, e.g. "tracking number"."""
    entity: ConfigEntity
    """The ConfigChanged entity announced on writes."""
    owner: Callable[[R], str]
    """The account the row belongs to."""

    async def get(self, session: AsyncSession, principal: Principal, obj_id: str,
                  if_match: str | None = None) -> R:
        """The row if the caller may see it, else 404; with ``if_match``, 412 unless it
        names the current version."""
        obj = await session.get(self.model, obj_id) if len(obj_id) <= MAX_ID else None
        if obj is None or not principal.owns(self.owner(obj)):
            raise NotFound(f"no {self.noun} {obj_id}")
        if if_match is not None:
            check_if_match(if_match, obj.version)
        return obj

    async def create(self, *, request: Request, response: Response, ctx: AppContext, session: AsyncSession,
                     principal: Principal, idempotency_key: str | None, body: BaseModel,
                     build: Callable[[], Awaitable[R]], public: Callable[[R], P]) -> P | Response:
        """POST: a replay of the same Idempotency-Key answers the first result before
        ``build`` (the route's checks and the new row) runs; the answer is recorded in the
        transaction that writes the row."""
        idem = Idempotency(request, principal, idempotency_key, body, ctx.settings.idempotency_ttl)
        if (replayed := await idem.replay(session)) is not None:
            return replayed
        obj = await build()
        session.add(obj)
        await session.flush()
        out = public(obj)
        idem.record(session, 201, out)
        if (replayed := await idem.commit(session)) is not None:
            return replayed
        set_etag(response, obj.version)
        await ctx.changed(self.entity, obj.id, self.owner(obj), "created")
        return out

    @staticmethod
    def show(response: Response, obj: R, public: Callable[[R], P]) -> P:
        """GET: the row with its ETag."""
        set_etag(response, obj.version)
        return public(obj)

    async def updated(self, *, response: Response, ctx: AppContext, session: AsyncSession, obj: R,
                      public: Callable[[R], P], refresh: Sequence[str] = ()) -> P:
        """PATCH, once the route changed the row: commit (412 if another write got there
        first: the version counter moved), reload ``refresh`` relations, announce."""
        try:
            await session.commit()
        except StaleDataError:
            raise PreconditionFailed(f"the {self.noun} changed while this update was applied; read it again") \
                from None
        if refresh:
            await session.refresh(obj, list(refresh))
        set_etag(response, obj.version)
        await ctx.changed(self.entity, obj.id, self.owner(obj), "updated")
        return public(obj)

    async def delete(self, *, ctx: AppContext, session: AsyncSession, obj: R) -> Response:
        """DELETE, once the route checked nothing depends on the row."""
        obj_id, account_id = obj.id, self.owner(obj)
        await session.delete(obj)
        try:
            await session.commit()
        except StaleDataError:
            raise PreconditionFailed(f"the {self.noun} changed while it was being deleted") from None
        await ctx.changed(self.entity, obj_id, account_id, "deleted")
        return Response(status_code=204)


def public_of(model: type[P]) -> Callable[[Any], P]:
    """The Public model read from a row's attributes."""
    return model.model_validate
