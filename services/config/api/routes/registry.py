"""The registry's public routes, served here and answered by the registry over the bus."""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from services.common.errors import BadReply, BusTimeout, NoResponders, RemoteError

from ...errors import BadGateway, RegistryRejected, Unavailable
from ..deps import AdminDep, CtxDep, PrincipalDep
from ..schemas import TrunkCreate

log = logging.getLogger("switchboard.config.api")

router = APIRouter(tags=["registry"])


async def forward(ctx: CtxDep, verb: str, params: dict[str, Any]) -> Response:
    try:
        reply = await ctx.registry(verb, params)
    except (NoResponders, BusTimeout) as e:
        raise Unavailable(f"the registry is not reachable: {e}", headers={"Retry-After": "2"}) from None
    except RemoteError as e:
        if 400 <= e.code < 500:
            raise RegistryRejected(e.code, e.error) from None
        raise BadGateway(f"the registry failed: {e.error}") from None
    except BadReply as e:
        raise BadGateway(str(e)) from None
    status = reply.status if 100 <= reply.status <= 599 else 502
    if reply.text is not None:
        return Response(reply.text, status_code=status, media_type=reply.content_type or "text/plain")
    if status == 204:
        return Response(status_code=204)
    return JSONResponse(reply.data, status_code=status,
                        media_type=reply.content_type if "json" in (reply.content_type or "") else None)


@router.get("/v1/regions", responses={503: {"description": "registry unreachable"}})
async def regions(ctx: CtxDep, principal: PrincipalDep) -> Response:
    """The signaling regions, their health and failover order (from the registry)."""
    return await forward(ctx, "regions", {})


@router.get("/v1/allowlist", responses={200: {"content": {"application/json": {}, "text/plain": {}, "text/csv": {}}}})
async def allowlist(ctx: CtxDep, principal: PrincipalDep,
                    format: Literal["json", "csv", "nftables", "iptables"] = Query("json")) -> Response:
    """The addresses a customer's firewall must allow (signaling and media)."""
    return await forward(ctx, "allowlist", {"format": format})


@router.get("/v1/trunks")
async def list_trunks(ctx: CtxDep, principal: AdminDep) -> Response:
    """Carrier trunks allowed to send calls (admin)."""
    return await forward(ctx, "trunks_list", {})


@router.post("/v1/trunks", status_code=201)
async def add_trunk(body: TrunkCreate, ctx: CtxDep, principal: AdminDep) -> Response:
    return await forward(ctx, "trunks_add", {"name": body.name, "networks": body.networks})


@router.delete("/v1/trunks/{trunk_id}", status_code=204)
async def delete_trunk(trunk_id: str, ctx: CtxDep, principal: AdminDep) -> Response:
    return await forward(ctx, "trunks_delete", {"id": trunk_id})
