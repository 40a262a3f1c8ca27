"""The FastAPI application of the config service."""

from __future__ import annotations

from fastapi import FastAPI

from . import problems
from .context import AppContext
from .routes import accounts, health, receiving_numbers, registry, tracking_numbers

DESCRIPTION = """Provision Switchboard: accounts, API keys, receiving numbers (SIP client
targets) and tracking numbers. Authenticate with `Authorization: Bearer <key>`. Errors are
RFC 9457 problem details (`application/problem+json`) with field-level `errors`."""


def create_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(title="Switchboard API", version="1.0.0", description=DESCRIPTION)
    app.state.ctx = ctx
    problems.install(app)
    for r in (health.router, accounts.router, receiving_numbers.router, tracking_numbers.router, registry.router):
        app.include_router(r)
    return app
