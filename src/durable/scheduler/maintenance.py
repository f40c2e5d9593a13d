"""Periodic maintenance of `durable start`: prune the 24-hour event-id idempotency window.

Idempotent, so several engine processes may all run it; no leader is needed yet.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from durable.store.db import Database

log = logging.getLogger("durable.scheduler")

PRUNE_EVERY_S = 600.0


async def run_maintenance(db: Database, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await db.execute("event_ids_prune")
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("pruning event ids failed: %s", exc)
        try:
            await asyncio.wait_for(stop.wait(), PRUNE_EVERY_S)
        except TimeoutError:
            pass
