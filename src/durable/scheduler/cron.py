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
IDLE_RECHECK_S = 1.0  # a re-sync may add an earlier schedule


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


async def run_cron(db: Database, stop: asyncio.Event) -> None:
    while not stop.is_set():
        delay = IDLE_RECHECK_S
        try:
            await tick(db)
            upcoming_ms = await db.fetchval("cron_next")  # on the database clock, as cron_due
            if upcoming_ms is not None:
                delay = min(delay, max(0.0, float(upcoming_ms) / 1000))
        except RETRYABLE as exc:  # Postgres restarting or away: try again later
            log.warning("cron tick failed: %s", exc)
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass
