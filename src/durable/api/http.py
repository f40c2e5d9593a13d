"""HTTP plumbing shared by the routes: orjson responses, bounded bodies, error mapping, and the
middleware that refuses a NUL character (or an oversized value) in the URL."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from durable.engine.ingest import ingest
from durable.errors import (
    ApiError,
    InvalidInput,
    PayloadTooLarge,
    RequestTimeout,
    TooManyRequests,
    Unavailable,
)
from durable.store.outage import RETRYABLE, is_unavailable
from durable.types import MAX_BODY, EventIn


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_body(exc: ApiError) -> bytes:
    return orjson.dumps({"error": exc.message, "code": exc.code})


def error_response(exc: ApiError) -> Response:
    """The answer to an API error: its status, `{"error", "code"}`, and Retry-After when it has one."""
    headers = None
    if isinstance(exc, Unavailable | TooManyRequests):
        headers = {"retry-after": str(exc.retry_after_s)}
    return Response(error_body(exc), status_code=exc.status, media_type="application/json", headers=headers)


def answer_for(exc: Exception) -> Response | None:
    """The answer the app's error handling gives `exc`: an API error's own, a lost database a 503 the
    client may retry; None for anything else (a bug: it stays a 500)."""
    if isinstance(exc, ApiError):
        return error_response(exc)
    if isinstance(exc, RETRYABLE) and is_unavailable(exc):
        return error_response(Unavailable(f"database unavailable ({type(exc).__name__}); retry shortly"))
    return None


async def read_body(request: Request) -> bytes:
    """The raw body, refusing more than 4 MiB with 413 before reading it all, and one that has not
    arrived whole within DURABLE_REQUEST_TIMEOUT_MS with 408 (a slow client holds no handler for ever;
    under `durable start` the connection itself is closed at that bound too, api/connections.py)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise PayloadTooLarge(f"the body is {length} bytes; the limit is 4 MiB (4194304 bytes)")
    timeout_ms = request.app.state.settings.request_timeout_ms
    chunks = []
    size = 0
    try:
        async with asyncio.timeout(timeout_ms / 1000):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY:
                    raise PayloadTooLarge("the body exceeds 4 MiB (4194304 bytes)")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(
            f"the body did not arrive within {timeout_ms} ms (DURABLE_REQUEST_TIMEOUT_MS); {size} bytes came"
        ) from None
    except ClientDisconnect:
        raise InvalidInput(
            f"the client disconnected before the body was complete ({size} bytes came)"
        ) from None
    return b"".join(chunks)


MAX_QUERY_VALUE = 2048
"""Longest query parameter value accepted (ids, cursors, filters are all far shorter)."""


class CheckUrl:
    """ASGI middleware: a NUL character (U+0000, ``%00``) in the path or the query string, or a query
    value over :data:`MAX_QUERY_VALUE` characters, gets a 400 naming the parameter before any route runs.
    Postgres's text cannot hold a NUL, so a handler passing a path or query value on to a query would
    otherwise fail with a database error: a 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = url_problem(scope) if scope["type"] == "http" else None
        if problem is None:
            await self.app(scope, receive, send)
            return
        response = Response(error_body(InvalidInput(problem)), status_code=400, media_type="application/json")
        await response(scope, receive, send)


_NUL = "contains a NUL character (U+0000), which is not accepted"


def url_problem(scope: Scope) -> str | None:
    """What is wrong with the URL of `scope`, naming the path or query parameter, or None."""
    if "\x00" in scope["path"]:
        return f"{_path_parameter(scope)}: {_NUL}"
    query: bytes = scope.get("query_string", b"")
    if b"\x00" not in query and b"%00" not in query and len(query) <= MAX_QUERY_VALUE:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name:
            return f"query parameter {name.replace(chr(0), '%00')!r}: its name {_NUL}"
        if "\x00" in value:
            return f"query parameter {name!r}: {_NUL}"
        if len(value) > MAX_QUERY_VALUE:
            return (
                f"query parameter {name!r}: {len(value)} characters; at most {MAX_QUERY_VALUE} are accepted"
            )
    return None


def _path_parameter(scope: Scope) -> str:
    """``path parameter 'run_id'`` when a documented route takes the NUL as that parameter, else
    ``path``. The routes are matched by their OpenAPI templates (computed once per app)."""
    app: Any = scope.get("app")
    templates = getattr(getattr(app, "state", None), "url_templates", None)
    if templates is None and app is not None and hasattr(app, "openapi"):
        templates = [
            re.compile(re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(path)))
            for path in app.openapi().get("paths", {})
            if "{" in path
        ]
        app.state.url_templates = templates
    for template in templates or ():
        match = template.fullmatch(scope["path"])
        if match is None:
            continue
        for name, value in match.groupdict().items():
            if "\x00" in value:
                return f"path parameter {name!r}"
    return "path"


# Handed-off runs whose first invoke is sent before the POST's answer is written (docs/decisions.md,
# "The first invokes before the event's answer"); a batch's other runs start right after it.
INVOKES_BEFORE_ANSWER = 4


async def ingest_and_hand_off(
    request: Request, app_id: str, events: list[EventIn], *, nonce: str | None = None
) -> list[str]:
    """Ingest events; runs this process's workers can start at once are handed to them directly, and
    its worker loops are woken only when the ingest left work for the queue (nothing else could be due
    because of it). `nonce`: a signed request's v2 nonce, recorded in the ingest's transaction.

    The first few handed-off runs are driven before this returns: one turn of the loop lets each send
    its first invoke (a drive reaches its write without waiting when a connection to the app is open),
    so on two cores the app's wake-up does not queue behind the sender's."""
    dispatcher = request.app.state.dispatcher
    handoff = dispatcher.offer() if dispatcher is not None else None
    stored = await ingest(request.app.state.db, app_id, events, handoff, nonce=nonce)
    if stored.claims and handoff is not None:
        first, rest = stored.claims[:INVOKES_BEFORE_ANSWER], stored.claims[INVOKES_BEFORE_ANSWER:]
        dispatcher.adopt(handoff, first)
        try:
            await asyncio.sleep(0)
        finally:  # even if this request is cancelled: every claim has its drive
            if rest:
                dispatcher.adopt(handoff, rest)
    if stored.queued:
        request.app.state.on_ingest()
    return stored.ids
