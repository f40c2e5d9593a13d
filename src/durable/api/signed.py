"""The signed routes apps call: `POST /e` and `POST /fn/sync`.

Each request carries `x-durable-app` and a signature (docs/protocol.md, "Signing"): with
`x-durable-signature-v2` it must be the app's (sender `app`), fresh (5 minutes), under one of the
workspace's keys, carry no `r`, and its nonce must be unseen: the nonce is recorded in the same
transaction as the request's writes, so a replay stores nothing. Without v2, the seed's v1
`x-durable-signature` is accepted in compat mode only. Validation happens before any write, so a refused
request stores nothing.

Answers are signed v2 with `r` = the request's nonce (when it had one), plus v1 in compat mode.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from durable.api import schemas
from durable.api.http import answer_for, error_body, ingest_and_hand_off, read_body
from durable.core.events import parse_events
from durable.core.jsonvalue import parse_json, refuse_nul
from durable.core.options import parse_sync
from durable.core.signing import (
    V1_HEADER,
    V2_HEADER,
    describe,
    new_nonce,
    sign,
    sign_v2,
    verify_any,
    verify_v2,
)
from durable.engine import apps
from durable.engine.apps import App
from durable.engine.outbound import check_sync_url
from durable.errors import ApiError, NotFound, Unauthorized
from durable.metrics import EVENTS_INGESTED

router = APIRouter()

_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "data": {"type": "object"},
        "id": {"type": "string"},
        "ts": {"type": "integer", "description": "epoch milliseconds"},
    },
}
_SIGNED_HEADERS: list[dict[str, Any]] = [
    {"name": "x-durable-app", "in": "header", "required": True, "schema": {"type": "string"}},
    {
        "name": V2_HEADER,
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "t=<epoch ms>,n=<nonce>,s=<hex HMAC-SHA256 of 'v2\\napp\\n' + t + '\\n' + n + "
        "'\\n\\n' + body>, keyed by the app's signing key (docs/protocol.md); required in v2 mode",
    },
    {
        "name": V1_HEADER,
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "v1, compat mode only: lowercase hex HMAC-SHA256 of the raw body",
    },
]


def _now_ms() -> int:
    """The wall clock: signature times are the senders' wall clocks, never the movable test clock."""
    return time.time_ns() // 1_000_000


def _signed(body: bytes, app: App, reply_to: str | None, status: int = 200) -> Response:
    """An answer signed v2 for the request whose nonce is `reply_to`, and v1 in compat mode."""
    keys = app.keys
    headers = {}
    if reply_to is not None:
        headers[V2_HEADER] = sign_v2(keys.signing, "engine", _now_ms(), new_nonce(), reply_to, body)
    if keys.mode == "compat":
        headers[V1_HEADER] = sign(body, keys.signing)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


class _SignedError(Exception):
    """An API error to answer signed with the app's key, for the request with nonce `reply_to`."""

    def __init__(self, error: ApiError, app: App, reply_to: str | None) -> None:
        self.error = error
        self.app = app
        self.reply_to = reply_to


async def _authenticate(request: Request) -> tuple[App, bytes, str | None]:
    """The app, the raw body, and the request's v2 nonce (None for v1), or _SignedError."""
    app_id = request.headers.get("x-durable-app")
    if not app_id:
        raise Unauthorized("missing x-durable-app header (the app id)")
    try:
        app = await request.app.state.apps.get(app_id)
    except NotFound:
        raise Unauthorized(f"unknown app {app_id!r} in x-durable-app") from None
    body = await read_body(request)
    keys = app.keys
    header = request.headers.get(V2_HEADER)
    if header is not None:  # when present, v2 is the one checked, in either mode
        now = _now_ms()
        verdict = verify_v2(header, body, keys.accepted, "app", now, None)
        nonce = verdict.signature.n if verdict.signature is not None else None
        if not verdict.ok:
            raise _SignedError(Unauthorized(describe(verdict, now, None)), app, nonce)
        return app, body, nonce
    if keys.mode == "v2":
        raise _SignedError(
            Unauthorized(
                f"this workspace requires signatures v2 ({V2_HEADER}); a request signed with "
                f"{V1_HEADER} (v1) alone is refused: update the SDK, or switch the workspace to compat "
                f'mode (PATCH /api/apps/{app.id} {{"signatureMode": "compat"}})'
            ),
            app,
            None,
        )
    if not verify_any(body, keys.accepted, request.headers.get(V1_HEADER)):
        raise _SignedError(Unauthorized(f"missing or wrong {V1_HEADER} (or {V2_HEADER})"), app, None)
    return app, body, None


async def _handle(request: Request, action: Any) -> Response:
    app: App | None = None
    nonce: str | None = None
    try:
        app, body, nonce = await _authenticate(request)
        result = await action(request, app, parse_json(body), nonce)
        return _signed(orjson.dumps(result), app, nonce)
    except _SignedError as exc:
        return _signed(error_body(exc.error), exc.app, exc.reply_to, exc.error.status)
    except ApiError as exc:
        if app is None:
            raise
        return _signed(error_body(exc), app, nonce, exc.status)


async def _send(request: Request, app: App, payload: object, nonce: str | None) -> dict[str, Any]:
    events, _ = parse_events(payload)
    ids = await ingest_and_hand_off(request, app.id, events, nonce=nonce)
    EVENTS_INGESTED.inc(len(events))
    return {"ids": ids}


async def _sync(request: Request, app: App, payload: object, nonce: str | None) -> dict[str, Any]:
    refuse_nul(payload, "sync")
    # Up to 1000 functions, each cron schedule probed for its next occurrence: milliseconds apiece, so
    # seconds in all; a worker thread keeps that off the event loop that answers every other request.
    sync_request = await asyncio.to_thread(parse_sync, payload)
    check_sync_url(sync_request.url, request.app.state.settings, request.headers.get("host"))
    count = await apps.sync(request.app.state.db, app.id, sync_request, nonce=nonce)
    request.app.state.on_sync()
    return {"ok": True, "functions": count}


@router.post(
    "/e",
    responses=schemas.answers(schemas.Ids, 413),
    tags=["sdk"],
    summary="Send one event or a list of events",
    openapi_extra={
        "parameters": _SIGNED_HEADERS,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [_EVENT_SCHEMA, {"type": "array", "items": _EVENT_SCHEMA}]}
                }
            },
        },
    },
)
async def send_events(request: Request) -> Response:
    return await _handle(request, _send)


@router.post(
    "/fn/sync",
    responses=schemas.answers(schemas.SyncAnswer, 413),
    tags=["sdk"],
    summary="Make the app's function set exactly this list",
    openapi_extra={
        "parameters": _SIGNED_HEADERS,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["url", "functions"],
                        "properties": {
                            "url": {"type": "string"},
                            "functions": {"type": "array", "items": {"type": "object"}},
                        },
                    }
                }
            },
        },
    },
)
async def sync_functions(request: Request) -> Response:
    return await _handle(request, _sync)


class SignedRoutes:
    """ASGI middleware, innermost of the app's: `POST /e` and `POST /fn/sync` served by their handlers
    above without FastAPI's routing, exception middleware and request handler (about 0.1 ms of the
    engine's CPU per event, on the path of every run's start: bench/RESULTS.md). Their errors get the
    answers the app's exception handlers give (http.answer_for); anything else stays a 500. Every
    other request, these paths with another method included, goes on to FastAPI, whose route
    declarations above document the two in the OpenAPI schema."""

    ROUTES = {"/e": send_events, "/fn/sync": sync_functions}

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.ROUTES.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            response = await handler(Request(scope, receive))
        except Exception as exc:
            answer = answer_for(exc)
            if answer is None:
                raise
            response = answer
        await response(scope, receive, send)
