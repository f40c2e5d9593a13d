"""Periodic maintenance of `durable start`: the metrics rollup, and pruning old metrics, the 24-hour
event-id idempotency window and expired dashboard sessions; and planner statistics for the hot tables
that have doubled since they were taken (store/statistics.py), checked every second while they grow and
every few seconds while they do not.

Pruning is idempotent and the rollup takes a try-lock, so several engine processes may all run this;
no leader is needed.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from durable.engine.metrics import rollup
from durable.store import statistics
from durable.store.db import Database
from durable.store.outage import RETRYABLE

log = logging.getLogger("durable.scheduler")

ROLLUP_EVERY_S = 10.0
PRUNE_EVERY_S = 600.0
STATISTICS_EVERY_S = 1.0  # while the hot tables grow: a burst doubles a table within seconds
STATISTICS_IDLE_S = 4.0  # the longest wait once they stopped growing: each check wakes an idle engine


async def run_maintenance(db: Database, stop: asyncio.Event) -> None:
    last_prune = 0.0
    while not stop.is_set():
        try:
            await rollup(db)
            if time.monotonic() - last_prune > PRUNE_EVERY_S:
                await db.execute("event_ids_prune")
                await db.execute("metrics_prune")
                await db.execute("signature_nonces_prune")  # replay window: 10 minutes
                await db.execute("sessions_prune")  # expired sign-ins: already refused, now deleted
                await db.execute("flow_keys_prune")  # idempotency (24 h), ended singletons, cancelOn
                last_prune = time.monotonic()
        except RETRYABLE as exc:  # Postgres restarting or away: try again later
            log.warning("maintenance failed: %s", exc)
        try:
            await asyncio.wait_for(stop.wait(), ROLLUP_EVERY_S)
        except TimeoutError:
            pass


async def keep_statistics(db: Database, stop: asyncio.Event) -> None:
    """Refresh the hot tables' statistics as they grow (store/statistics.py), until `stop`: every second
    while they grow, and less often (the wait doubling up to STATISTICS_IDLE_S) while they do not."""
    delay, pages = STATISTICS_EVERY_S, -1
    while not stop.is_set():
        try:
            checked = await statistics.check(db)
            if checked.grown:
                log.info(
                    "planner statistics refreshed for %s (grown twice as large)", ", ".join(checked.grown)
                )
            delay = STATISTICS_EVERY_S if checked.pages != pages else min(2 * delay, STATISTICS_IDLE_S)
            pages = checked.pages
        except RETRYABLE as exc:  # Postgres restarting or away: try again later
            log.warning("refreshing planner statistics failed: %s", exc)
            delay = STATISTICS_EVERY_S
        except asyncpg.InsufficientPrivilegeError as exc:  # a role that may not ANALYZE: autovacuum only
            log.warning("planner statistics are left to autovacuum: %s", exc)
            return
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass
