"""Status webhooks: endpoints an account registers, their delivery log, redelivery."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from ...db.models import Webhook, WebhookDelivery
from ...errors import InvalidInput, NotFound
from ...netguard import refusal
from ...webhooks import redeliver
from ..common import Idempotency, paginate
from ..deps import CtxDep, Cursor, IdempotencyKey, Limit, PrincipalDep, SessionDep
from ..schemas import Page, WebhookCreate, WebhookDeliveryPublic, WebhookPublic
from .receiving_numbers import account_exists

router = APIRouter(tags=["webhooks"])


async def _get(session: SessionDep, principal: PrincipalDep, wh_id: str) -> Webhook:
    wh = await session.get(Webhook, wh_id) if len(wh_id) <= 40 else None
    if wh is None or not principal.owns(wh.account_id):
        raise NotFound(f"no webhook {wh_id}")
    return wh


@router.post("/v1/webhooks", status_code=201, response_model=WebhookPublic)
async def create_webhook(body: WebhookCreate, request: Request, ctx: CtxDep, session: SessionDep,
                         principal: PrincipalDep, idempotency_key: IdempotencyKey = None):
    """Register an endpoint. Each delivery is a JSON POST signed with the secret:
    `X-Switchboard-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`."""
    idem = Idempotency(request, principal, idempotency_key, body, ctx.settings.idempotency_ttl)
    if (replayed := await idem.replay(session)) is not None:
        return replayed
    account_id = principal.account_for_create(body.account_id)
    await account_exists(session, account_id)
    if not ctx.settings.webhook_allow_private and (why := refusal(body.url)) is not None:
        raise InvalidInput.field("url", why)
    wh = Webhook(account_id=account_id, url=body.url, secret_sealed=ctx.secrets.seal(body.secret),
                 events=list(body.events), description=body.description, enabled=body.enabled)
    session.add(wh)
    await session.flush()
    out = WebhookPublic.model_validate(wh)
    idem.record(session, 201, out)
    if (replayed := await idem.commit(session)) is not None:
        return replayed
    return out


@router.get("/v1/webhooks", response_model=Page[WebhookPublic])
async def list_webhooks(session: SessionDep, principal: PrincipalDep, limit: Limit = 50, cursor: Cursor = None,
                        account_id: str | None = Query(None, max_length=40, description="Admin only.")):
    stmt = select(Webhook)
    if not principal.is_admin:
        stmt = stmt.where(Webhook.account_id == principal.account_id)
    elif account_id:
        stmt = stmt.where(Webhook.account_id == account_id)
    rows, nxt = await paginate(session, stmt, Webhook.id, limit, cursor)
    return Page[WebhookPublic](items=[WebhookPublic.model_validate(r) for r in rows], next_cursor=nxt)


@router.get("/v1/webhooks/{wh_id}", response_model=WebhookPublic)
async def get_webhook(wh_id: str, session: SessionDep, principal: PrincipalDep):
    return WebhookPublic.model_validate(await _get(session, principal, wh_id))


@router.delete("/v1/webhooks/{wh_id}", status_code=204)
async def delete_webhook(wh_id: str, session: SessionDep, principal: PrincipalDep) -> Response:
    """Stop sending; the endpoint's pending deliveries and its log go with it."""
    wh = await _get(session, principal, wh_id)
    await session.delete(wh)
    await session.commit()
    return Response(status_code=204)


@router.get("/v1/webhooks/{wh_id}/deliveries", response_model=Page[WebhookDeliveryPublic])
async def list_deliveries(wh_id: str, session: SessionDep, principal: PrincipalDep, limit: Limit = 50,
                          cursor: Cursor = None,
                          status: str | None = Query(None, pattern="^(pending|succeeded|failed)$"),
                          call_id: str | None = Query(None, max_length=64)):
    """The delivery log, oldest first."""
    wh = await _get(session, principal, wh_id)
    stmt = select(WebhookDelivery).where(WebhookDelivery.webhook_id == wh.id)
    if status:
        stmt = stmt.where(WebhookDelivery.status == status)
    if call_id:
        stmt = stmt.where(WebhookDelivery.call_id == call_id)
    rows, nxt = await paginate(session, stmt, WebhookDelivery.id, limit, cursor)
    return Page[WebhookDeliveryPublic](items=[WebhookDeliveryPublic.of(r) for r in rows], next_cursor=nxt)


@router.post("/v1/webhooks/{wh_id}/deliveries/{delivery_id}/redeliver", status_code=202,
             response_model=WebhookDeliveryPublic)
async def redeliver_delivery(wh_id: str, delivery_id: str, ctx: CtxDep, session: SessionDep,
                             principal: PrincipalDep):
    """Send a delivery's body again, as a new delivery (the log keeps both)."""
    wh = await _get(session, principal, wh_id)
    d = await session.get(WebhookDelivery, delivery_id) if len(delivery_id) <= 40 else None
    if d is None or d.webhook_id != wh.id:
        raise NotFound(f"no delivery {delivery_id} for webhook {wh_id}")
    copy = await redeliver(session, d)
    await session.commit()
    if ctx.on_webhooks_queued is not None:
        ctx.on_webhooks_queued()
    return WebhookDeliveryPublic.of(copy)
