"""Cron: fire each due occurrence exactly once, across any number of `durable start` processes.

A tick locks due schedules with SKIP LOCKED (another process holding one is firing it), stores the
occurrence as a `$cron` event with the id `cron:<function>:<epoch ms>` (the 24 h event-id window makes
a second fire of the same occurrence a no-op even beyond the lock), starts the run through flow
control, and moves the schedule to its next occurrence, all in one transaction.

No catch-up storm: an occurrence more than LATE_GRACE_MS late (the engine was down) is not fired; the
schedule moves to the next occurrence strictly after now.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from durable.core.cron import next_after, parse_cron
from durable.core.times import iso_ms
from durable.engine.ingest import store_events
from durable.store.db import Database
from durable.store.outage import RETRYABLE
from durable.types import EventIn

log = logging.getLogger("durable.cron")

LATE_GRACE_MS = 60_000
BATCH = 100
IDLE_RECHECK_S = 10.0  # the safety net: a sync here wakes the loop (run_cron's `synced`)
RETRY_S = 1.0  # after Postgres was away


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


async def tick(db: Database) -> int:
    """Fire every due occurrence; return how many runs were started."""
    fired = 0
    async with db.transaction() as tx:
        for row in await tx.fetch("cron_due", BATCH):
            cron = parse_cron(row["expr"], "trigger.cron")
            now_ms = _ms(row["now"])
            scheduled_ms = _ms(row["next_at"])
            if now_ms - scheduled_ms <= LATE_GRACE_MS:
                event: EventIn = {
                    "id": f"cron:{row['function_id']}:{scheduled_ms}",
                    "name": "$cron",
                    "data": {"cron": row["expr"], "scheduledAt": iso_ms(scheduled_ms)},
                    "ts": scheduled_ms,
                }
                await store_events(tx, row["app_id"], [event], function_id=row["function_id"])
                fired += 1
            else:
                log.info(
                    "cron %s/%s: skipped the missed occurrence %s",
                    row["app_id"],
                    row["function_id"],
                    iso_ms(scheduled_ms),
                )
            following = next_after(cron, max(now_ms, scheduled_ms))
            await tx.execute(
                "cron_advance",
                row["app_id"],
                row["function_id"],
                datetime.fromtimestamp(following / 1000, UTC),
            )
    return fired


async def run_cron(db: Database, stop: asyncio.Event, synced: asyncio.Event | None = None) -> None:
    """Fire occurrences as they fall due until `stop`. Between them the loop sleeps until the next one
    is due (on the database clock), at most IDLE_RECHECK_S, or until `synced` is set (a sync in this
    process may have added an earlier schedule; one in another process wakes that process's loop).
    Looking costs one statement; a tick's transaction is paid only when an occurrence is due."""
    while not stop.is_set():
        delay = IDLE_RECHECK_S
        try:
            upcoming_ms = await db.fetchval("cron_next")  # on the database clock, as cron_due
            if upcoming_ms is not None and upcoming_ms <= 0:
                await tick(db)
                upcoming_ms = await db.fetchval("cron_next")
            if upcoming_ms is not None:
                delay = min(delay, max(0.0, float(upcoming_ms) / 1000))
        except RETRYABLE as exc:  # Postgres restarting or away: try again soon
            log.warning("cron tick failed: %s", exc)
            delay = RETRY_S
        await _pause(stop, synced, delay)


async def _pause(stop: asyncio.Event, synced: asyncio.Event | None, delay: float) -> None:
    """Wait `delay` seconds, or until `stop` or `synced` is set (and clear `synced`)."""
    waits = [asyncio.ensure_future(stop.wait())]
    if synced is not None:
        waits.append(asyncio.ensure_future(synced.wait()))
    try:
        await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
    if synced is not None:
        synced.clear()
