"""create_app: the ASGI application (API + SDK routes), given a Database and Settings.

The process runtime (`durable.runtime`) owns the database pool and the workers; this module only
wires routes, error handling and shared state, so tests can mount it on any database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import PlainTextResponse, Response

from durable import __version__
from durable.api import admin, docs, signed
from durable.api.auth import SignInLimiter, check_metrics
from durable.api.guard import BrowserWriteGuard, HostGuard, SecurityHeaders
from durable.api.http import JSON, CheckUrl, answer_for
from durable.api.stream import Broadcaster
from durable.config import Settings
from durable.dashboard.mount import mount as mount_dashboard
from durable.engine.apps import AppCache
from durable.engine.changes import ChangeFeed
from durable.engine.flow import Dispatcher
from durable.errors import ApiError, Unavailable
from durable.metrics import render_metrics
from durable.store.db import Database
from durable.store.outage import RETRYABLE

HEALTH_TIMEOUT_S = 2.0


def create_app(
    db: Database,
    settings: Settings,
    on_ingest: Callable[[], None] | None = None,
    feed: ChangeFeed | None = None,
    dispatcher: Dispatcher | None = None,
    on_sync: Callable[[], None] | None = None,
) -> FastAPI:
    app = FastAPI(
        title="Durable",
        version=__version__,
        description="Durable's engine API: SDK routes (signed) and the read/admin API.",
        # Both are served by api/docs.py instead: behind the admin token, swagger-ui bundled (no CDN).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(signed.SignedRoutes)  # innermost: the signed routes, without FastAPI's routing
    app.add_middleware(CheckUrl)  # a NUL in the path or query is a 400 naming it
    # Outermost first: every answer (refusals included) gets the security headers; the Host check runs
    # before the browser-write check, and both before any route or body read.
    app.add_middleware(BrowserWriteGuard)
    app.add_middleware(HostGuard, bound_host=settings.host, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(SecurityHeaders)
    app.state.db = db
    app.state.settings = settings
    app.state.apps = AppCache(db)
    app.state.on_ingest = on_ingest or (lambda: None)
    app.state.on_sync = on_sync or (lambda: None)  # functions synced: cron may have an earlier schedule
    app.state.feed = feed or ChangeFeed(db)
    if (
        db is not None and db.on_change is None
    ):  # the engine announces what its transactions changed, after commit
        db.on_change = app.state.feed.touch
    app.state.dispatcher = dispatcher
    app.state.broadcaster = Broadcaster(settings.direct_dsn)
    app.state.sign_in_limiter = SignInLimiter()

    # While Postgres restarts or is away, a request meets a connection error: that is a 503 the client
    # may retry, never a 500. Any other database error is a bug and stays a 500 (http.answer_for).
    async def api_error(_: Request, exc: Exception) -> Response:
        answer = answer_for(exc)
        if answer is None:
            raise exc
        return answer

    app.add_exception_handler(ApiError, api_error)

    for error_class in RETRYABLE:
        app.add_exception_handler(error_class, api_error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()
        )
        return Response(
            orjson.dumps({"error": problems, "code": "bad_request"}),
            status_code=400,
            media_type="application/json",
        )

    @app.get(
        "/healthz",
        tags=["ops"],
        summary="Liveness and database reachability",
        responses={
            200: {"description": '{"ok": true, "database": "ready", "version": …}'},
            503: {"description": '{"ok": false, "database": "unavailable", …} with Retry-After'},
        },
    )
    async def healthz(request: Request) -> Response:
        # Bounded, so a load balancer tells a database that does not answer from one that is slow.
        try:
            await asyncio.wait_for(request.app.state.db.fetchval("health_check"), HEALTH_TIMEOUT_S)
        except RETRYABLE:  # TimeoutError is an OSError
            return JSON(
                {"ok": False, "database": "unavailable", "version": __version__},
                status_code=503,
                headers={"retry-after": str(Unavailable.retry_after_s)},
            )
        return JSON({"ok": True, "database": "ready", "version": __version__})

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics (DURABLE_METRICS_TOKEN or the admin token when set)",
        dependencies=[Depends(check_metrics)],
        responses={
            200: {"description": "Prometheus text exposition format"},
            401: {
                "description": '{"error": …, "code": "unauthorized"}: the metrics or admin token is missing or wrong'
            },
        },
    )
    async def metrics() -> Response:
        body, content_type = render_metrics()
        return PlainTextResponse(body, media_type=content_type)

    app.include_router(signed.router)
    app.include_router(admin.public)
    app.include_router(admin.router)
    app.include_router(docs.router)
    mount_dashboard(app)  # last: its catch-all mount at / is tried after every API route
    return app
