"""`GET /api/stream`: Server-Sent Events of what changed, pushed from Postgres NOTIFY.

One LISTEN connection per process (opened by the first client, kept while the process lives), fanned
out to every connected browser through a queue each. Clients reconnect by themselves (`retry:`) and
refetch what they show when they do, which covers an engine restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
import orjson
from starlette.requests import Request
from starlette.responses import StreamingResponse

from durable.engine.changes import CHANNEL

log = logging.getLogger("durable.stream")

PING_EVERY_S = 15.0
CLOSED = ""  # sentinel: the process is shutting down
QUEUE_SIZE = 256


class Broadcaster:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.clients: set[asyncio.Queue[str]] = set()
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()

    async def _ensure_listening(self) -> None:
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return
            self._conn = await asyncpg.connect(self.dsn)
            await self._conn.add_listener(CHANNEL, self._on_notify)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        for queue in list(self.clients):
            if queue.full():  # a stalled browser: drop its oldest message, it refetches anyway
                queue.get_nowait()
            queue.put_nowait(payload)

    async def subscribe(self) -> asyncio.Queue[str]:
        await self._ensure_listening()
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self.clients.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self.clients.discard(queue)

    async def close(self) -> None:
        """End every stream (so shutdown does not wait on open browsers) and stop listening."""
        for queue in list(self.clients):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(CLOSED)
        if self._conn is not None:
            await self._conn.close()


async def stream(request: Request) -> StreamingResponse:
    broadcaster: Broadcaster = request.app.state.broadcaster
    app_filter = request.query_params.get("appId")
    queue = await broadcaster.subscribe()

    async def events() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 2000\nevent: hello\ndata: {}\n\n"
            while True:
                try:
                    payload = await asyncio.wait_for(queue.get(), PING_EVERY_S)
                except TimeoutError:
                    yield b": ping\n\n"
                    continue
                if payload == CLOSED:
                    return
                if app_filter and orjson.loads(payload).get("appId") != app_filter:
                    continue
                yield b"event: change\ndata: " + payload.encode() + b"\n\n"
        finally:
            broadcaster.unsubscribe(queue)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
