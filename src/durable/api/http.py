"""HTTP plumbing shared by the routes: orjson responses, bounded bodies, error mapping."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from durable.engine.ingest import ingest
from durable.errors import ApiError, PayloadTooLarge
from durable.types import MAX_BODY, EventIn


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_body(exc: ApiError) -> bytes:
    return orjson.dumps({"error": exc.message, "code": exc.code})


async def read_body(request: Request) -> bytes:
    """The raw body, refusing more than 4 MiB with 413 before reading it all."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise PayloadTooLarge(f"the body is {length} bytes; the limit is 4 MiB (4194304 bytes)")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise PayloadTooLarge("the body exceeds 4 MiB (4194304 bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def ingest_and_hand_off(request: Request, app_id: str, events: list[EventIn]) -> list[str]:
    """Ingest events; runs this process's workers can start at once are handed to them directly."""
    dispatcher = request.app.state.dispatcher
    handoff = dispatcher.offer() if dispatcher is not None else None
    ids, claims = await ingest(request.app.state.db, app_id, events, handoff)
    if claims and handoff is not None:
        dispatcher.adopt(handoff, claims)
    return ids
