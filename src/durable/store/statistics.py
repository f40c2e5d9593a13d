"""Planner statistics that keep up with the hot tables, so cached plans never outlive the data they
were made for.

Each pool connection prepares a statement once and Postgres plans it generically once (store/db.py,
`plan_cache_mode`). A plan made while `jobs` or `runs` was empty (a new database, a drained queue that
autovacuum then analyzed) reads those tables whole: cheap then, O(backlog) per statement once a burst
has queued thousands of runs (a claim of 64 took 163 ms with 20,000 queued). Autovacuum's ANALYZE comes
a minute or more later. So `refresh` analyzes every hot table that has doubled in size since its
statistics were taken: Postgres then re-plans every prepared statement that reads it, in every session,
at its next execution (the PREPARE documentation: "or their planner statistics have been updated").
Doubling bounds the work: one ANALYZE (tens of milliseconds) per doubling of a table.
"""

from __future__ import annotations

from dataclasses import dataclass

from durable.store.db import Database


@dataclass(frozen=True)
class Checked:
    grown: list[str]  # the tables analyzed now: grown twice as large as their statistics know
    pages: int  # the hot tables' size in pages: unchanged means nothing can have grown since


async def check(db: Database) -> Checked:
    """ANALYZE the hot tables grown twice as large as their statistics know; say which, and their size."""
    rows = await db.fetch("tables_grown")
    grown: list[str] = [row["name"] for row in rows if row["grown"]]
    if grown:
        async with db.connection() as conn:  # names from the fixed list in tables_grown, never input
            await conn.raw.execute("ANALYZE (SKIP_LOCKED) " + ", ".join(f'"{name}"' for name in grown))
    return Checked(grown, sum(row["pages"] for row in rows))


async def refresh(db: Database) -> list[str]:
    """ANALYZE the hot tables grown twice as large as their statistics know; return their names."""
    return (await check(db)).grown
