"""Statements sent as text (db.literal, db.simple) and the transaction they open and close.

An ingest sends its event-name locks in the message that opens its transaction and its new runs in
the message that commits it, with the arguments rendered as literals: any event name, id or event
JSON (arbitrary text but NUL), time or UUID must reach Postgres as exactly that value, under either
`standard_conforming_strings`, and no value may end its literal early.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable.store import db as store
from durable.store.db import Database, literal, simple

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
NASTY = st.sampled_from(
    ["'", "''", "\\", "\\'", "'; DROP TABLE events; --", "\n--", "E'", "$1", "\r\n", "\x7f"]
)
NAMES = st.lists(st.one_of(TEXT, NASTY), max_size=6)


TIMES = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC))
JSON_TEXT = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(st.characters(codec="utf-8", exclude_characters="\x00")),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=8,
).map(lambda value: json.dumps(value, ensure_ascii=False))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=st.one_of(TEXT, NASTY, JSON_TEXT),
    values=NAMES,
    times=st.lists(st.one_of(st.none(), TIMES), max_size=3),
    uuids=st.lists(st.one_of(st.none(), st.uuids()), max_size=3),
    conforming=st.booleans(),
)
async def test_a_literal_reads_back_as_the_same_value(
    db: Database,
    value: str,
    values: list[str],
    times: list[datetime | None],
    uuids: list[uuid.UUID | None],
    conforming: bool,
) -> None:
    async with db.connection() as conn:
        await conn.raw.execute(f"SET standard_conforming_strings = {'on' if conforming else 'off'}")
        try:
            row = await conn.raw.fetchrow(
                f"SELECT {literal(value)}::text AS one, {literal(values)}::text[] AS many, "
                f"{literal(len(value))}::int AS n, {literal(None)}::text AS nothing, "
                f"{literal(times)}::timestamptz[] AS times, {literal(uuids)}::uuid[] AS uuids"
            )
        finally:
            await conn.raw.execute("RESET standard_conforming_strings")
    assert row is not None
    assert (row["one"], list(row["many"]), row["n"], row["nothing"]) == (value, values, len(value), None)
    assert (list(row["times"]), list(row["uuids"])) == (times, uuids)


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
MODES = pytest.mark.parametrize("pooled", [False, True], ids=["prepared", "pooled"])


@pytest.fixture
async def probe(dsn: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """A table of its own, and two writes into it added to the queries sent as text."""
    table = f"probe_{uuid.uuid4().hex[:12]}"
    queries = dict(store.queries())
    queries["probe_add"] = f"INSERT INTO {table} (x, note) SELECT x, $2 FROM unnest($1::int[]) AS x"
    queries["probe_double"] = f"UPDATE {table} SET x = x * 2 WHERE x = ANY($1::int[])"
    monkeypatch.setattr(store, "queries", lambda: queries)
    monkeypatch.setattr(store, "TEXT_QUERIES", (*store.TEXT_QUERIES, "probe_add", "probe_double"))
    conn = await asyncpg.connect(dsn)
    await conn.execute(f"CREATE TABLE {table} (x int PRIMARY KEY, note text)")
    yield table
    await conn.execute(f"DROP TABLE {table}")
    await conn.close()


async def _database(dsn: str, pooled: bool) -> Database:
    """A pool of its own (its connections prepare the probe's queries), direct or as if pooled."""
    return await Database.connect(dsn, pooled=pooled, min_size=1, max_size=2)


@MODES
async def test_the_opening_statements_run_inside_the_transaction(dsn: str, probe: str, pooled: bool) -> None:
    """Their locks are held by the transaction until it ends, committed or rolled back; a failing
    opening leaves the connection outside any transaction, and nothing of it stays."""
    db = await _database(dsn, pooled)
    try:
        opening = [("event_lock_names", "app-x", ["b", "a'"]), ("signature_nonce_record", "app-x", "n1")]
        async with db.transaction(opening=opening) as tx:
            assert tx.raw.is_in_transaction()
            assert await tx.raw.fetchval(LOCKS + " AND pid = pg_backend_pid() AND granted") == 2
            await tx.raw.execute(f"INSERT INTO {probe} VALUES (1)")
        assert await db.pool.fetchval(LOCKS) == 0
        assert await db.pool.fetchval(f"SELECT count(*) FROM {probe}") == 1

        with pytest.raises(RuntimeError):
            async with db.transaction(opening=opening[:1]) as tx:
                await tx.raw.execute(f"INSERT INTO {probe} VALUES (2)")
                raise RuntimeError("the block fails")
        assert await db.pool.fetchval(f"SELECT count(*) FROM {probe}") == 1
        assert await db.pool.fetchval(LOCKS) == 0

        with pytest.raises(asyncpg.UniqueViolationError):  # the nonce again: the opening fails
            async with db.transaction(opening=opening):
                raise AssertionError("the block must not run when the opening fails")
        async with db.pool.acquire() as raw:
            assert not raw.is_in_transaction()
        assert await db.pool.fetchval(LOCKS) == 0
        with pytest.raises(ValueError, match="not sent as text"):
            db.text(("event_store", "app-x"))
    finally:
        await db.close()


@MODES
async def test_deferred_writes_ride_with_the_commit_in_order_or_not_at_all(
    dsn: str, probe: str, pooled: bool
) -> None:
    """`Conn.write` in a transaction that closes by text: nothing is written before the COMMIT, the
    writes run in their order (a later one may depend on an earlier one), a failing one rolls the
    whole transaction back, and a large one that comes first runs at once."""
    db = await _database(dsn, pooled)
    opening = [("event_lock_names", "app-x", ["a"])]
    try:
        async with db.transaction(opening=opening) as tx:
            await tx.write("probe_add", [1, 2], "it's")
            await tx.write("probe_double", [2])
            assert tx.closing is not None and len(tx.closing) == 2
            # prepared once per connection and executed, unless a pooler could not keep it
            assert [s.startswith("EXECUTE durable_probe_") for s in tx.closing] == [not pooled] * 2
            assert await tx.raw.fetchval(f"SELECT count(*) FROM {probe}") == 0  # not yet sent
        rows = await db.pool.fetch(f"SELECT x, note FROM {probe} ORDER BY x")
        assert [(r["x"], r["note"]) for r in rows] == [(1, "it's"), (4, "it's")]

        with pytest.raises(asyncpg.UniqueViolationError):
            async with db.transaction(opening=opening) as tx:
                await tx.raw.execute(f"INSERT INTO {probe} VALUES (10, 'immediate')")
                await tx.write("probe_add", [11], "deferred")
                await tx.write("probe_add", [1], "a duplicate: the commit fails")
        assert await db.pool.fetchval(f"SELECT count(*) FROM {probe}") == 2  # nothing of it stayed
        async with db.pool.acquire() as raw:
            assert not raw.is_in_transaction()

        large = "x" * (store.MAX_TEXT_WRITE + 1)
        async with db.transaction(opening=opening) as tx:
            await tx.write("probe_add", [20], large)
            assert tx.closing == []
            assert await tx.raw.fetchval(f"SELECT count(*) FROM {probe} WHERE x = 20") == 1
            await tx.write("probe_add", [21], "small")
            await tx.write("probe_add", [22], large)  # after a deferred one: deferred too, in order
            assert tx.closing is not None and len(tx.closing) == 2
        assert await db.pool.fetchval(f"SELECT count(*) FROM {probe}") == 5

        async with db.transaction() as tx:  # a transaction that does not close by text writes at once
            await tx.write("probe_add", [30], "now")
            assert await tx.raw.fetchval(f"SELECT count(*) FROM {probe} WHERE x = 30") == 1
    finally:
        await db.close()


@MODES
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(notes=st.lists(st.one_of(TEXT, NASTY, JSON_TEXT), min_size=1, max_size=4))
async def test_any_text_reaches_a_prepared_or_inline_write_exactly(
    dsn: str, probe: str, pooled: bool, notes: list[str]
) -> None:
    db = await _database(dsn, pooled)
    try:
        async with db.connection() as conn:
            await conn.raw.execute(f"DELETE FROM {probe}")
        async with db.transaction(opening=[("event_lock_names", "app-x", notes)]) as tx:
            for index, note in enumerate(notes):
                await tx.write("probe_add", [index], note)
        rows = await db.pool.fetch(f"SELECT note FROM {probe} ORDER BY x")
        assert [r["note"] for r in rows] == notes
    finally:
        await db.close()
