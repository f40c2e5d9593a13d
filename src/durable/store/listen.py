"""A LISTEN connection that survives Postgres restarts and failovers.

A notification sent while no connection listens is gone for good, so whoever listens must know when it
was not listening. `Listener` keeps one dedicated connection LISTENing on one channel and:

- notices the connection's loss at once when the server closes it (asyncpg's termination listener:
  a restart, `pg_terminate_backend`, a crash), and within CHECK_EVERY_S + CHECK_TIMEOUT_S when the
  network silently drops it (a failover to another host: a cheap `health_check` on the connection);
- calls `on_lost`, then reconnects and re-LISTENs with exponential backoff (RETRY_FIRST_S doubling to
  RETRY_CAP_S, with jitter) for as long as Postgres is away;
- calls `on_restored` once it listens again, so its owner re-reads what it may have missed (worker
  loops re-claim; the SSE streams were ended on loss so browsers refetch).

`listening` is False from the moment the loss is noticed until the connection is back.

The DSN must reach Postgres directly, never a transaction-mode pooler (DATABASE_DIRECT_URL when
DATABASE_URL is one): a pooler runs the LISTEN on a server connection it then lends to other clients,
so the notifications reach whoever holds it, or nobody.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

import asyncpg

from durable.store.db import sql
from durable.store.outage import RETRYABLE

log = logging.getLogger("durable.listen")

CHECK_EVERY_S = 5.0
CHECK_TIMEOUT_S = 3.0
CONNECT_TIMEOUT_S = 5.0
RETRY_FIRST_S = 0.05
RETRY_CAP_S = 1.0


def _nothing() -> None:
    pass


def _call(callback: Callable[[], None]) -> None:
    """Run an owner's callback; its failure must not end the supervision of the connection."""
    try:
        callback()
    except Exception:
        log.exception("a LISTEN callback failed")


class Listener:
    def __init__(
        self,
        dsn: str,
        channel: str,
        on_notify: Callable[[str], None],
        *,
        on_lost: Callable[[], None] = _nothing,
        on_restored: Callable[[], None] = _nothing,
    ) -> None:
        self.dsn = dsn
        self.channel = channel
        self.on_notify = on_notify
        self.on_lost = on_lost
        self.on_restored = on_restored
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed() and not self._lost.is_set()

    async def start(self) -> None:
        """LISTEN now (raising what connecting raises), then keep listening in the background."""
        await self._connect()
        self._task = asyncio.create_task(self._supervise(), name=f"listen:{self.channel}")

    async def close(self) -> None:
        self._closing.set()
        self._lost.set()
        if self._task is not None:
            await asyncio.wait([self._task], timeout=CONNECT_TIMEOUT_S)
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), CHECK_TIMEOUT_S)
            except RETRYABLE:  # TimeoutError is an OSError
                conn.terminate()

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self.dsn, timeout=CONNECT_TIMEOUT_S)
        try:
            conn.add_termination_listener(self._on_termination)
            await conn.add_listener(self.channel, self._on_notification)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        self._lost.clear()

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.on_notify(payload)

    def _on_termination(self, conn: object) -> None:
        if conn is self._conn:
            self._lost.set()

    async def _alive(self) -> bool:
        conn = self._conn
        if conn is None or conn.is_closed():
            return False
        try:
            await conn.fetchval(sql("health_check"), timeout=CHECK_TIMEOUT_S)
        except RETRYABLE:  # TimeoutError is an OSError
            return False
        return True

    async def _supervise(self) -> None:
        while not self._closing.is_set():
            try:
                await asyncio.wait_for(self._lost.wait(), CHECK_EVERY_S)
            except TimeoutError:
                if await self._alive():
                    continue
            if self._closing.is_set():
                return
            self._lost.set()
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.terminate()  # no goodbye to a server that may not answer
            log.warning("LISTEN %s: connection lost; reconnecting", self.channel)
            _call(self.on_lost)
            if await self._reconnect():
                log.info("LISTEN %s: listening again", self.channel)
                _call(self.on_restored)

    async def _reconnect(self) -> bool:
        """Connect until it works (True) or `close()` is called (False)."""
        attempt = 0
        while not self._closing.is_set():
            try:
                await self._connect()
                return not self._closing.is_set()
            except Exception as exc:  # whatever stops a connect now, the next try may pass
                attempt += 1
                if attempt == 1 or attempt % 30 == 0:
                    log.warning("LISTEN %s: reconnect attempt %d failed: %s", self.channel, attempt, exc)
            delay = min(RETRY_CAP_S, RETRY_FIRST_S * 2 ** min(attempt, 10))
            try:
                await asyncio.wait_for(self._closing.wait(), delay * (0.5 + random.random() / 2))
            except TimeoutError:
                pass
        return False
