"""Migrations: applied from empty they give the checked-in schema; concurrent starts apply them once."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg

from durable.store.migrate import migrate, migration_files

SNAPSHOT = Path(__file__).with_name("schema.snapshot")

SCHEMA_QUERY = """
SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type
       || CASE WHEN is_nullable = 'NO' THEN ' not null' ELSE '' END
       || coalesce(' default ' || column_default, '') AS line
FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND contype <> 'n'  -- PG 18 lists NOT NULL too
UNION ALL
SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace
ORDER BY 1
"""


async def test_migrations_from_empty_match_the_snapshot(empty_dsn: str) -> None:
    applied = await migrate(empty_dsn)
    assert applied == [v for v, _, _ in migration_files()]
    conn = await asyncpg.connect(empty_dsn)
    try:
        lines = [r["line"] for r in await conn.fetch(SCHEMA_QUERY)]
    finally:
        await conn.close()
    schema = "\n".join(lines) + "\n"
    if os.environ.get("UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(schema)
    assert schema == SNAPSHOT.read_text(), "schema changed: add a migration, then UPDATE_SNAPSHOT=1"


async def test_concurrent_migrate_calls_apply_each_migration_once(empty_dsn: str) -> None:
    results = await asyncio.gather(*(migrate(empty_dsn) for _ in range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, len(migration_files())]
    conn = await asyncpg.connect(empty_dsn)
    try:
        versions = await conn.fetch("SELECT version FROM durable_migrations")
    finally:
        await conn.close()
    assert len(versions) == len(migration_files())
    assert await migrate(empty_dsn) == []
