"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from ..deps import CtxDep
from ..problems import problem
from ..schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive (no dependency is checked)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"description": "not ready"}})
async def readyz(request: Request, ctx: CtxDep) -> JSONResponse:
    """Ready to serve: the database answers, the bus is connected, the resolver has loaded."""
    checks: dict[str, bool] = {}
    try:
        async with asyncio.timeout(2):
            async with ctx.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception:
        checks["database"] = False
    if ctx.bus is not None:
        checks["bus"] = ctx.bus.connected
    for name, check in ctx.ready_checks.items():
        checks[name] = bool(check())
    if all(checks.values()):
        return JSONResponse(Health(status="ready", checks=checks).model_dump())
    failing = ", ".join(k for k, v in checks.items() if not v)
    return problem(request, 503, title="Not ready", detail=f"not ready: {failing}", type_="unavailable",
                   checks=checks)
