"""Statements sent as text (db.literal, db.simple) and the transaction they open.

An ingest sends its event-name locks in the message that opens its transaction, with the arguments
rendered as literals: any event name (arbitrary text but NUL) must reach Postgres as exactly that
text, under either `standard_conforming_strings`, and no name may end the literal early.
"""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable.store import db as store
from durable.store.db import Database, literal, simple

TEXT = st.text(st.characters(exclude_characters="\x00"), max_size=40)
NASTY = st.sampled_from(
    ["'", "''", "\\", "\\'", "'; DROP TABLE events; --", "\n--", "E'", "$1", "\r\n", "\x7f"]
)
NAMES = st.lists(st.one_of(TEXT, NASTY), max_size=6)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(TEXT, NASTY), values=NAMES, conforming=st.booleans())
async def test_a_literal_reads_back_as_the_same_value(
    db: Database, value: str, values: list[str], conforming: bool
) -> None:
    async with db.connection() as conn:
        await conn.raw.execute(f"SET standard_conforming_strings = {'on' if conforming else 'off'}")
        try:
            row = await conn.raw.fetchrow(
                f"SELECT {literal(value)}::text AS one, {literal(values)}::text[] AS many, "
                f"{literal(len(value))}::int AS n, {literal(None)}::text AS nothing"
            )
        finally:
            await conn.raw.execute("RESET standard_conforming_strings")
    assert row is not None
    assert (row["one"], list(row["many"]), row["n"], row["nothing"]) == (value, values, len(value), None)


def test_a_literal_refuses_what_postgres_text_cannot_hold() -> None:
    with pytest.raises(ValueError, match="NUL"):
        literal("a\x00b")
    with pytest.raises(TypeError):
        literal(True)


def test_simple_refuses_a_query_where_a_parameter_could_hide(monkeypatch: pytest.MonkeyPatch) -> None:
    queries = {"dollar": "SELECT $x$ $1 $x$", "block": "SELECT 1 /* $1 */", "plain": "SELECT $1::text, $2"}
    monkeypatch.setattr(store, "queries", lambda: queries)
    for name in ("dollar", "block"):
        with pytest.raises(ValueError, match=name):
            simple(name, "a")
    assert simple("plain", "it's", 2) == "SELECT E'it''s'::text, 2"


LOCKS = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


async def test_the_opening_statement_runs_inside_the_transaction(db: Database) -> None:
    """Its lock is held by the transaction until it ends, committed or rolled back; a failing opening
    leaves the connection outside any transaction."""
    opening = simple("event_lock_names", "app-x", ["b", "a'"])
    table = f"opened_{uuid.uuid4().hex[:12]}"
    await db.pool.execute(f"CREATE TABLE {table} (x int)")
    async with db.transaction(opening=opening) as tx:
        assert tx.raw.is_in_transaction()
        assert await tx.raw.fetchval(LOCKS + " AND pid = pg_backend_pid() AND granted") == 2
        await tx.raw.execute(f"INSERT INTO {table} VALUES (1)")
    assert await db.pool.fetchval(LOCKS) == 0
    assert await db.pool.fetchval(f"SELECT count(*) FROM {table}") == 1

    with pytest.raises(RuntimeError):
        async with db.transaction(opening=opening) as tx:
            await tx.raw.execute(f"INSERT INTO {table} VALUES (2)")
            raise RuntimeError("the block fails")
    assert await db.pool.fetchval(f"SELECT count(*) FROM {table}") == 1
    assert await db.pool.fetchval(LOCKS) == 0

    with pytest.raises(asyncpg.PostgresError):
        async with db.transaction(opening="SELECT 1 / 0"):
            raise AssertionError("the block must not run when the opening fails")
    async with db.pool.acquire() as raw:
        assert not raw.is_in_transaction()
    assert await db.pool.fetchval(LOCKS) == 0
    await db.pool.execute(f"DROP TABLE {table}")
