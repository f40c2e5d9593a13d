"""Apply `migrations/NNNN_*.sql` in order, each once, under an advisory lock.

Safe to call on every start and from several processes at once: the lock serialises them and the
`durable_migrations` table records what is applied.
"""

from __future__ import annotations

import re
from importlib import resources

import asyncpg

from durable.store.db import sql

_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration, in order."""
    folder = resources.files("durable.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError("two migrations share a version number")
    return found


async def migrate(dsn: str) -> list[int]:
    """Apply pending migrations; return the versions applied by this call.

    `dsn` must reach Postgres directly (DATABASE_DIRECT_URL behind a pooler): the connection prepares
    named statements, which a transaction pooler would leave on a server connection other clients then
    share, and the whole migration is one long transaction that should not hold a pooler's slot.
    """
    conn = await asyncpg.connect(dsn)
    applied_now: list[int] = []
    try:
        async with conn.transaction():
            await conn.execute(sql("migrations_lock"))
            await conn.execute(sql("migrations_table"))
            done = {row["version"] for row in await conn.fetch(sql("migrations_applied"))}
            for version, name, body in migration_files():
                if version in done:
                    continue
                await conn.execute(body)
                await conn.execute(sql("migrations_record"), version, name)
                applied_now.append(version)
    finally:
        await conn.close()
    return applied_now
