"""The private test Postgres (tests/pgcluster.py): it serves, a crash-restart drops every connection
and keeps committed data, and it can stay down until started again."""

from __future__ import annotations

import asyncpg
import pytest

from tests.pgcluster import PgCluster


async def test_crash_restart_drops_connections_and_keeps_committed_rows(pg_cluster: PgCluster) -> None:
    dsn = pg_cluster.create_database("cluster_check")
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2)")
    assert await conn.fetchval("SELECT sum(n) FROM t") == 3

    pg_cluster.restart_immediate()
    with pytest.raises((asyncpg.PostgresConnectionError, ConnectionError, asyncpg.InterfaceError)):
        await conn.fetchval("SELECT 1")  # the backend was killed
    conn.terminate()

    again = await asyncpg.connect(dsn)
    try:
        assert await again.fetchval("SELECT sum(n) FROM t") == 3
    finally:
        await again.close()

    pg_cluster.stop_immediate()
    assert not pg_cluster.running()
    with pytest.raises(OSError):
        await asyncpg.connect(pg_cluster.dsn, timeout=2)
    pg_cluster.start()
    back = await asyncpg.connect(pg_cluster.dsn)
    try:
        assert await back.fetchval("SELECT current_setting('port')::int") == pg_cluster.port
    finally:
        await back.close()
    pg_cluster.stop()
    pg_cluster.stop()  # idempotent
    assert not pg_cluster.running()
