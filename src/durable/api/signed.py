"""The signed routes apps call: `POST /e` and `POST /fn/sync`.

Each request must carry `x-durable-app` and `x-durable-signature` (HMAC-SHA256 of the raw body with the
workspace's signing key); each response is signed the same way. Validation happens before any write,
so a refused request stores nothing.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from durable.api import schemas
from durable.api.http import error_body, ingest_and_hand_off, read_body
from durable.core.events import parse_events
from durable.core.jsonvalue import parse_json, refuse_nul
from durable.core.options import parse_sync
from durable.core.signing import sign, verify
from durable.engine import apps
from durable.engine.apps import App
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
        "name": "x-durable-signature",
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": "lowercase hex HMAC-SHA256 of the raw body, keyed by the app's signing key",
    },
]


def _signed(body: bytes, key: str, status: int = 200) -> Response:
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={"x-durable-signature": sign(body, key)},
    )


async def _authenticate(request: Request) -> tuple[App, bytes]:
    app_id = request.headers.get("x-durable-app")
    if not app_id:
        raise Unauthorized("missing x-durable-app header (the app id)")
    try:
        app = await request.app.state.apps.get(app_id)
    except NotFound:
        raise Unauthorized(f"unknown app {app_id!r} in x-durable-app") from None
    body = await read_body(request)
    if not verify(body, app.signing_key, request.headers.get("x-durable-signature")):
        raise _SignedError(Unauthorized("missing or wrong x-durable-signature"), app)
    return app, body


class _SignedError(Exception):
    """An API error to answer signed with the app's key."""

    def __init__(self, error: ApiError, app: App) -> None:
        self.error = error
        self.app = app


async def _handle(request: Request, action: Any) -> Response:
    app: App | None = None
    try:
        app, body = await _authenticate(request)
        result = await action(request, app, parse_json(body))
        return _signed(orjson.dumps(result), app.signing_key)
    except _SignedError as exc:
        return _signed(error_body(exc.error), exc.app.signing_key, exc.error.status)
    except ApiError as exc:
        if app is None:
            raise
        return _signed(error_body(exc), app.signing_key, exc.status)


async def _send(request: Request, app: App, payload: object) -> dict[str, Any]:
    events, _ = parse_events(payload)
    ids = await ingest_and_hand_off(request, app.id, events)
    EVENTS_INGESTED.inc(len(events))
    request.app.state.on_ingest()
    request.app.state.feed.touch(app.id, "events")
    request.app.state.feed.touch(app.id, "runs")
    return {"ids": ids}


async def _sync(request: Request, app: App, payload: object) -> dict[str, Any]:
    refuse_nul(payload, "sync")
    sync_request = parse_sync(payload)
    count = await apps.sync(request.app.state.db, app.id, sync_request)
    request.app.state.feed.touch(app.id, "functions")
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
