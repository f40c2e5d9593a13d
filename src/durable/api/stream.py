"""`GET /api/stream`: Server-Sent Events of what changed, pushed from Postgres NOTIFY.

One LISTEN connection per process (opened by the first client, kept while the process lives), fanned
out to every connected browser through a queue each. Clients reconnect by themselves (`retry:`) and
refetch what they show when they do, which covers an engine restart.

A Postgres restart or failover loses the notifications sent while nobody listened, so the moment the
LISTEN connection is lost every stream is ended: each browser reconnects (a 503 while the database is
away, `store/listen.py` re-LISTENing meanwhile) and refetches on the reconnect that succeeds. A stream
is never left open and silent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import StreamingResponse

from durable.engine.changes import CHANNEL
from durable.errors import Unavailable
from durable.store.listen import Listener

log = logging.getLogger("durable.stream")

PING_EVERY_S = 15.0
CLOSED = ""  # sentinel: end the stream (shutdown, or the LISTEN connection was lost)
QUEUE_SIZE = 256


class Broadcaster:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.clients: set[asyncio.Queue[str]] = set()
        self._listener = Listener(dsn, CHANNEL, self._on_notify, on_lost=self._end_streams)
        self._started = False
        self._lock = asyncio.Lock()

    async def _ensure_listening(self) -> None:
        async with self._lock:
            if not self._started:
                await self._listener.start()  # a database that is away raises here: a 503
                self._started = True
        if not self._listener.listening:
            # A stream opened now would miss what is published before the LISTEN is back.
            raise Unavailable("database unavailable: the change feed is reconnecting; retry shortly")

    def _on_notify(self, payload: str) -> None:
        for queue in list(self.clients):
            _put(queue, payload)

    def _end_streams(self) -> None:
        for queue in list(self.clients):
            _put(queue, CLOSED)

    async def subscribe(self) -> asyncio.Queue[str]:
        await self._ensure_listening()
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self.clients.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self.clients.discard(queue)

    async def close(self) -> None:
        """End every stream (so shutdown does not wait on open browsers) and stop listening."""
        self._end_streams()
        if self._started:
            await self._listener.close()


def _put(queue: asyncio.Queue[str], message: str) -> None:
    if queue.full():  # a stalled browser: drop its oldest message, it refetches anyway
        queue.get_nowait()
    queue.put_nowait(message)


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
