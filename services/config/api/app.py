"""The FastAPI application of the config service."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from ..console import mount as mount_console
from . import problems
from .context import AppContext
from .limits import BodyLimit
from .routes import accounts, calls, health, receiving_numbers, registry, tracking_numbers, webhooks

DESCRIPTION = """Provision Switchboard: accounts, API keys, receiving numbers (SIP client
targets) and tracking numbers; read call records and call timelines; register status
webhooks. Authenticate with `Authorization: Bearer <key>`. Errors are RFC 9457 problem
details (`application/problem+json`) with field-level `errors`."""

API_REQUESTS = Counter("switchboard_api_requests_total", "HTTP API requests by method, route and status",
                       ["method", "route", "status"])
API_SECONDS = Histogram("switchboard_api_request_seconds", "HTTP API request latency by route", ["route"],
                        buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


def create_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(title="Switchboard API", version="1.0.0", description=DESCRIPTION)
    app.state.ctx = ctx
    problems.install(app)
    for r in (health.router, accounts.router, receiving_numbers.router, tracking_numbers.router, registry.router,
              calls.router, webhooks.router):
        app.include_router(r)
    # The web console at / (a client of the routes above; /v1 and /docs stay as they are).
    mount_console(app)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus metrics of this process (the same as on SWITCHBOARD_METRICS_PORT)."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = getattr(request.scope.get("route"), "path", None) or "unmatched"
            if route != "/metrics":
                API_REQUESTS.labels(request.method, route, str(status)).inc()
                API_SECONDS.labels(route).observe(time.perf_counter() - started)

    # create_app(None) makes the OpenAPI document alone: no settings, the default limit.
    app.add_middleware(BodyLimit, limit=ctx.settings.max_body_bytes if ctx is not None else 1 << 20)
    return app
