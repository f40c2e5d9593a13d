"""Hot-path statements keep a bounded plan however the tables grew after it was made.

Each pool connection prepares a statement once and Postgres plans it generically once
(`plan_cache_mode = force_generic_plan`, store/db.py): on a new database that happens while the tables
are empty, when every access path looks alike, and the plan stays while the backlog grows. A statement
whose plan then scans the backlog makes every claim cost O(backlog): one did, scanning all active runs
through `runs_by_app_status` to mark 64 claimed ones started (163 ms per claim with 20,000 runs queued).

The maintenance loop analyzes a hot table once it has doubled (store/statistics.py), and Postgres then
re-plans the statements that read it. So each statement here is planned on the empty database, the
backlog is queued, the statistics refreshed, and the cached statement executed with EXPLAIN ANALYZE: no
node may read more rows of a table than the claim's own bound allows.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
import pytest

from durable.engine.ingest import ingest
from durable.store import statistics
from durable.store.db import sql
from tests.harness import Engine

BACKLOG = 4_000  # active, queued runs when the cached plans run
CLAIM = 64
# The most rows any node may read from a table: the claim's candidates (4 × 64) and the rows it touches,
# far below the backlog. A plan that walks the backlog reads BACKLOG rows somewhere.
MAX_ROWS = 4 * CLAIM * 2

TEXT_A, TEXT_B, ONE = "'a'::text", "'b'::text", "'1'::text"  # a step id, another, JSON text
STATEMENTS = {
    "jobs_claim": "text, int, int, text[], text[]",
    "steps_complete_many": "text[], uuid[], text[], int[], text[], int[], int[], timestamptz[], timestamptz[]",
    "runs_complete_many": (
        "text[], uuid[], text[], text[], int[], text[], int[], int[], timestamptz[], timestamptz[], text[]"
    ),
}


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += _nodes(child)
    return found


def _widest_reads(explained: Any) -> list[tuple[str, str, int]]:
    """(table, node type, rows read in all loops) of every node reading a table, widest first."""
    [root] = orjson.loads(explained) if isinstance(explained, str) else explained
    reads = [
        (node["Relation Name"], node["Node Type"], int(node["Actual Rows"]) * int(node["Actual Loops"]))
        for node in _nodes(root["Plan"])
        if "Relation Name" in node
    ]
    return sorted(reads, key=lambda r: -r[2])


async def _explain(conn: asyncpg.Connection, name: str, args: str) -> list[tuple[str, str, int]]:
    return _widest_reads(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}({args})"))


@pytest.mark.parametrize("vacuumed", [False, True], ids=["never-vacuumed", "vacuumed-empty"])
async def test_hot_statements_planned_on_an_empty_database_stay_bounded_at_a_backlog(
    engine: Engine, dsn: str, vacuumed: bool
) -> None:
    """`vacuumed`: the tables were vacuumed while empty (a drained queue), so the planner takes them
    for empty rather than for unknown."""
    ws = await engine.workspace()
    await engine.sync(ws, "http://127.0.0.1:9/x", [{"id": "plain", "trigger": {"event": "go"}}])
    conn = await asyncpg.connect(dsn, server_settings={"plan_cache_mode": "force_generic_plan"})
    try:
        if vacuumed:
            await conn.execute("VACUUM ANALYZE jobs, runs, steps, run_cancels")
        for name, types in STATEMENTS.items():
            await conn.execute(f"PREPARE {name} ({types}) AS {sql(name)}")
        # The generic plans are made at the first execution, here on the empty tables.
        async with conn.transaction():
            await conn.execute(f"EXECUTE jobs_claim('w', {CLAIM}, 30000, '{{}}', '{{}}')")
            await conn.execute(
                "EXECUTE steps_complete_many('{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}')"
            )
            await conn.execute(
                "EXECUTE runs_complete_many('{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}')"
            )

        for start in range(0, BACKLOG, 500):
            events = [
                {"id": None, "name": "go", "data": {"i": i}, "ts": None} for i in range(start, start + 500)
            ]
            await ingest(engine.db, ws.id, events)  # type: ignore[arg-type]
        # What the engine's maintenance does within a second of the tables doubling.
        assert {"jobs", "runs"} <= set(await statistics.refresh(engine.db))
        assert await statistics.refresh(engine.db) == []  # until they double again

        tx = conn.transaction()
        await tx.start()
        try:
            claim = await _explain(conn, "jobs_claim", f"'w', {CLAIM}, 30000, '{{}}', '{{}}'")
            leased = await conn.fetch("SELECT run_id, lease_token FROM jobs WHERE claimed_by = 'w'")
            assert len(leased) == CLAIM  # the plan claimed what it was asked for
            ids = "ARRAY[" + ",".join(f"'{r['run_id']}'" for r in leased) + "]::text[]"
            tokens = "ARRAY[" + ",".join(f"'{r['lease_token']}'" for r in leased) + "]::uuid[]"
            n = len(leased)

            def column(value: str) -> str:
                return f"array_fill({value}, ARRAY[{n}])"

            steps = await _explain(
                conn,
                "steps_complete_many",
                f"{ids}, {tokens}, {column(TEXT_A)}, {column('1')}, {column(ONE)}, {column('0')},"
                f" {column('0')}, {column('now()')}, {column('now()')}",
            )
            ended = await _explain(
                conn,
                "runs_complete_many",
                f"{ids}, {tokens}, {column(ONE)}, {column(TEXT_B)}, {column('1')}, {column(ONE)},"
                f" {column('0')}, {column('0')}, {column('now()')}, {column('now()')}, {ids}",
            )
            assert await conn.fetchval("SELECT count(*) FROM runs WHERE status = 'completed'") == CLAIM
        finally:
            await tx.rollback()
    finally:
        await conn.close()
    for name, reads in (("jobs_claim", claim), ("steps_complete_many", steps), ("runs_complete_many", ended)):
        assert reads[0][2] <= MAX_ROWS, (
            f"{name}: {reads[0][1]} of {reads[0][0]} read {reads[0][2]} rows: {reads}"
        )
