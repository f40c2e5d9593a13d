"""Ingest finds waits and cancelOn rows by fingerprint (migration 0013, docs/architecture.md "Matching
events to waits and cancels"), and still selects exactly the ones `core.match.matches` accepts.

Through the real SQL: rows are parked with plain INSERTs (the fingerprint is a generated column, so
every writer gets it), then one event goes through `ingest`, and what it resumed and cancelled is read
back. Event data is derived from the parked matches and perturbed (keys dropped and added, numbers
respelled 1 ↔ 1.0, values swapped for others of any type), so matching and near-matching pairs are both
frequent; some events carry more pairs than are fingerprinted, which takes the name-only fallback.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from durable.core.match import matches
from durable.engine.ingest import ingest
from durable.store.db import Database, sql
from durable.store.migrate import migrate, migration_files
from durable.types import EventIn

NAME = "approval.received"
MAX_PAIRS = 256  # event_store: beyond this many pairs an event is not fingerprinted

# ---------------------------------------------------------------- matches and the data derived from them

KEYS = st.sampled_from(["a", "b", "orderId", "ü", "", 'q"t', "x.y", "1"])
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=4) | st.sampled_from(
    ["o1", "1", "true", "null", "1.0", "é", "e\u0301"]
)
NUMBERS = (
    st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(
        [0, 1, 1.0, -0.0, 0.1, 2**53, 2.0**53, 2**53 + 1, 1e16, 10**16, 2**63 - 1, 1e300, 5e-324]
    )
)
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)
OBJECTS = st.dictionaries(KEYS, VALUES, max_size=4)
MATCHES = st.one_of(st.none(), st.just({}), *[st.dictionaries(KEYS, VALUES, min_size=1, max_size=4)] * 6)


def respelled(value: Any) -> Any:
    """The same JSON value, as a match compares it, written another way (1 ↔ 1.0)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and abs(value) < 2**53:
        return float(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [respelled(v) for v in value]
    if isinstance(value, dict):
        return {k: respelled(v) for k, v in value.items()}
    return value


@st.composite
def near(draw: st.DrawFn, value: Any) -> Any:
    """A value that `value` (as a match) mostly matches, or narrowly does not."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            fate = draw(st.integers(0, 11))
            if fate == 0:
                continue  # the key is missing
            out[key] = draw(VALUES) if fate == 1 else draw(near(inner))
        for key, extra in draw(st.dictionaries(KEYS, VALUES, max_size=2)).items():
            out.setdefault(key, extra)
        return out
    fate = draw(st.integers(0, 9))
    if fate == 0:
        return draw(VALUES)
    if fate == 1 and isinstance(value, list):
        return [*value, draw(SCALARS)] if draw(st.booleans()) else value[::-1]
    if fate == 2 and isinstance(value, int | float) and not isinstance(value, bool):
        return bool(value)  # a boolean is never a number
    return respelled(value) if fate < 6 else value


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """Wait matches, cancelOn matches, and event data derived from one of them."""
    waits = draw(st.lists(MATCHES, min_size=2, max_size=6))
    cancels = draw(st.lists(MATCHES, max_size=3))
    base = draw(st.sampled_from(waits + cancels))
    data = draw(near(base)) if isinstance(base, dict) else draw(OBJECTS)
    if draw(st.integers(0, 7)) == 0:  # more pairs than are fingerprinted: the name-only fallback
        data["pad"] = {f"k{i}": i for i in range(MAX_PAIRS + 1)}
    return waits, cancels, data


# ---------------------------------------------------------------- parking rows directly


async def park(conn: asyncpg.Connection, app_id: str, waits: list[Any], cancels: list[Any]) -> None:
    """Runs parked on `waits` (run ids w0, w1, …) and runs with cancelOn rows for `cancels` (c0, …), all
    on NAME, as the engine leaves them: a run, its job, a waiting step for a wait."""
    until = datetime.now(UTC) + timedelta(days=1)
    runs = [f"{app_id}:w{i}" for i in range(len(waits))] + [f"{app_id}:c{i}" for i in range(len(cancels))]
    await conn.execute(
        "INSERT INTO runs (id, app_id, function_id, event_id, event, activity)"
        " SELECT r, $1, 'f', 'e', '{}', 'waiting' FROM unnest($2::text[]) r",
        app_id,
        runs,
    )
    await conn.execute(
        "INSERT INTO jobs (run_id, app_id, available_at, ready_at) SELECT r, $1, $3, now() FROM unnest($2::text[]) r",
        app_id,
        runs,
        until,
    )
    wait_runs = runs[: len(waits)]
    await conn.execute(
        "INSERT INTO steps (run_id, id, type, status, started_at)"
        " SELECT r, 'approve', 'wait', 'waiting', now() FROM unnest($1::text[]) r",
        wait_runs,
    )
    await conn.execute(
        "INSERT INTO waits (run_id, app_id, step_id, event_name, match, until)"
        " SELECT r, $1, 'approve', $2, m::jsonb, $5 FROM unnest($3::text[], $4::text[]) AS i (r, m)",
        app_id,
        NAME,
        wait_runs,
        [None if m is None else orjson.dumps(m).decode() for m in waits],
        until,
    )
    await conn.execute(
        "INSERT INTO run_cancels (run_id, idx, app_id, event_name, match, until)"
        " SELECT r, 0, $1, $2, m::jsonb, NULL FROM unnest($3::text[], $4::text[]) AS i (r, m)",
        app_id,
        NAME,
        runs[len(waits) :],
        [None if m is None else orjson.dumps(m).decode() for m in cancels],
    )


async def new_app(conn: asyncpg.Connection) -> str:
    app_id = f"app_{uuid.uuid4().hex[:12]}"  # one per hypothesis example
    await conn.execute(
        "INSERT INTO apps (id, name, environment, signing_key) VALUES ($1, $1, 'dev', 'k')", app_id
    )
    return app_id


def an_event(data: dict[str, Any], name: str = NAME) -> EventIn:
    return {"id": None, "name": name, "data": data, "ts": None}


# ---------------------------------------------------------------- properties


EXAMPLES = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@EXAMPLES
@given(case=cases())
@example(case=([{"n": 1}, {"n": 1.0}, {"n": True}, {"n": "1"}], [{"n": 1}], {"n": 1.0}))
@example(case=([{"big": 2**63 - 1}, {"big": 9.223372036854776e18}], [], {"big": 9223372036854775807}))
@example(case=([{"a": {}}, {"a": {"b": []}}, None, {}], [None, {}], {"a": {"b": []}}))
@example(case=([{"t": [1, 2]}, {"t": [2, 1]}, {"t": [1]}], [{"t": [1, 2.0]}], {"t": [1, 2]}))
@example(case=([{"s": "é"}, {"s": "e\u0301"}, {"ü": {"x.y": "q"}}], [], {"s": "é", "ü": {"x.y": "q"}}))
async def test_ingest_resumes_and_cancels_exactly_what_matches_accepts(
    db: Database, case: tuple[list[Any], list[Any], dict[str, Any]]
) -> None:
    waits, cancels, data = case
    async with db.pool.acquire() as conn:
        app_id = await new_app(conn)
        await park(conn, app_id, waits, cancels)
        parked = {r["run_id"]: r for r in await conn.fetch("SELECT * FROM waits WHERE app_id = $1", app_id)}
        cancel_on = {
            r["run_id"]: r for r in await conn.fetch("SELECT * FROM run_cancels WHERE app_id = $1", app_id)
        }
    # Only a match with no pair to fingerprint ({}, null, empty objects) is found by 0.
    for row in [*parked.values(), *cancel_on.values()]:
        assert (row["match_fp"] == 0) == (not has_pair(row["match"])), row["match"]

    ingested = await ingest(db, app_id, [an_event(data)])

    async with db.pool.acquire() as conn:
        stored = await conn.fetchval("SELECT data FROM events WHERE app_id = $1", app_id)
        left = {r["run_id"] for r in await conn.fetch("SELECT run_id FROM waits WHERE app_id = $1", app_id)}
        ended = {
            r["id"]: r["status"]
            for r in await conn.fetch(
                "SELECT id, status FROM runs WHERE app_id = $1 AND status <> 'active'", app_id
            )
        }
        queued = {
            r["id"]
            for r in await conn.fetch("SELECT id FROM runs WHERE app_id = $1 AND activity = 'queued'", app_id)
        }
    # What matches says, on the values as the store gives them back.
    want_resumed = {run for run, row in parked.items() if matches(row["match"], stored)}
    want_cancelled = {run for run, row in cancel_on.items() if matches(row["match"], stored)}
    event(f"waits resumed: {'some' if want_resumed else 'none'}, of {'all' if left == set() else 'some'}")
    event(f"runs cancelled: {'some' if want_cancelled else 'none'}")
    assert set(parked) - left == want_resumed
    assert queued == want_resumed
    assert ended == dict.fromkeys(want_cancelled, "cancelled")
    # A resumed or cancelled run is work for the queue: the API wakes the worker loops for it, and
    # only then (engine/ingest.py Stored.queued).
    assert ingested.queued == bool(want_resumed or want_cancelled)


def has_pair(match: Any) -> bool:
    """Whether a match holds a value that is not an object, at any depth through objects."""
    return isinstance(match, dict) and any(not isinstance(v, dict) or has_pair(v) for v in match.values())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=VALUES, other=VALUES)
@example(value=1, other=1.0)
@example(value=10**16, other=1e16)
@example(value=True, other=1)
@example(value="1", other=1)
@example(value=[1, 2], other=[1.0, 2])
async def test_a_pair_fingerprints_like_the_equality_of_a_match(db: Database, value: Any, other: Any) -> None:
    """durable_pair_fp(p, x) = durable_pair_fp(p, y) whenever a match compares x and y equal (so no wait
    is missed), and differs for unequal scalars (so the index tells them apart)."""
    async with db.pool.acquire() as conn:
        fps = await conn.fetch(
            "SELECT durable_pair_fp('[\"k\"]', v::jsonb) AS fp, v::jsonb AS back FROM unnest($1::text[]) v",
            [orjson.dumps(x).decode() for x in (value, respelled(value), other)],
        )
    mine, respelt, theirs = fps
    if not isinstance(value, dict):  # objects are not pairs: their leaves are
        assert mine["fp"] == respelt["fp"]
    scalar = not isinstance(value, dict | list) and not isinstance(other, dict | list)
    same = matches({"k": mine["back"]}, {"k": theirs["back"]})
    if same and not isinstance(value, dict):
        assert mine["fp"] == theirs["fp"]
    if scalar and not same:
        assert mine["fp"] != theirs["fp"]


async def test_an_event_with_too_many_pairs_still_finds_its_waits(db: Database) -> None:
    async with db.pool.acquire() as conn:
        app_id = await new_app(conn)
        await park(conn, app_id, [{"orderId": "o1"}, {"orderId": "o2"}, None], [{"orderId": "o1"}])
        assert await conn.fetchval("SELECT durable_match_fps($1::jsonb, 256)", many_pairs("o1")) is None
    await ingest(db, app_id, [an_event(many_pairs("o1"))])
    async with db.pool.acquire() as conn:
        left = {r["run_id"] for r in await conn.fetch("SELECT run_id FROM waits WHERE app_id = $1", app_id)}
        status = await conn.fetchval("SELECT status FROM runs WHERE id = $1", f"{app_id}:c0")
    assert left == {f"{app_id}:w1"}
    assert status == "cancelled"


def many_pairs(order_id: str) -> dict[str, Any]:
    return {"orderId": order_id, **{f"k{i}": i for i in range(MAX_PAIRS)}}


# ---------------------------------------------------------------- the index is what ingest reads


def scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan that reads a table."""
    found = [plan] if "Relation Name" in plan else []
    for child in plan.get("Plans", ()):
        found += scans(child)
    return found


async def ingest_reads(conn: asyncpg.Connection, app_id: str, name: str, data: dict[str, Any]) -> list[Any]:
    """The scans of waits and run_cancels that storing one event executes, by EXPLAIN ANALYZE of the
    statement prepared as `probe` (so a plan cached earlier is the one measured)."""
    args = await conn.fetchval(
        "SELECT format('%L, %L::text[], %L::text[], %L::text[], ''{0}''::bigint[], NULL, 0', $1::text, $2::text[],"
        " $3::text[], $4::text[])",
        app_id,
        [uuid.uuid4().hex],
        [name],
        [orjson.dumps(data).decode()],
    )
    explained = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE probe({args})")
    return [
        s
        for s in scans(orjson.loads(explained)[0]["Plan"])
        if s["Relation Name"] in ("waits", "run_cancels") and s["Actual Loops"] > 0
    ]


@pytest.mark.parametrize(
    ("plan_mode", "planned"),
    [
        ("force_generic_plan", "after ANALYZE"),
        ("force_custom_plan", "after ANALYZE"),
        ("force_generic_plan", "on empty tables"),  # a process that started before the runs parked
    ],
)
async def test_ingest_reads_waits_and_cancels_through_the_fingerprint_index(
    db: Database, plan_mode: str, planned: str
) -> None:
    """5,000 runs parked on NAME, each on its own orderId, with as many cancelOn rows: an event that
    matches one of each finds them with one index probe per pair of its data, and reads no other row;
    an event of a name nothing is parked on reads nothing at all."""
    data = {"orderId": "o42", "amount": 5, "user": {"id": "u1"}}  # 3 pairs: 4 probes with 0
    async with db.pool.acquire() as conn, conn.transaction():  # SET LOCAL: this test's plan mode
        await conn.execute(f"SET LOCAL plan_cache_mode = {plan_mode}")
        await conn.execute("PREPARE probe AS " + sql("event_store").rstrip().rstrip(";"))
        app_id = await new_app(conn)
        if planned == "on empty tables":
            await ingest_reads(conn, app_id, NAME, data)  # the generic plan is made and cached now
        await conn.execute(
            "INSERT INTO waits (run_id, app_id, step_id, event_name, match, until)"
            " SELECT 'w' || g, $1, 's', $2, jsonb_build_object('orderId', 'o' || g), now() + interval '1 day'"
            " FROM generate_series(1, 5000) g",
            app_id,
            NAME,
        )
        await conn.execute(
            "INSERT INTO run_cancels (run_id, idx, app_id, event_name, match)"
            " SELECT 'c' || g, 0, $1, $2, jsonb_build_object('orderId', 'o' || g) FROM generate_series(1, 5000) g",
            app_id,
            NAME,
        )
        if planned == "after ANALYZE":
            await conn.execute("ANALYZE waits, run_cancels")

        reads = await ingest_reads(conn, app_id, NAME, data)
        probes = [s for s in reads if "match_fp = " in s.get("Index Cond", "")]
        assert sorted(s["Relation Name"] for s in probes) == ["run_cancels", "waits"], reads
        for s in probes:
            assert s["Node Type"] == "Index Scan", s
            assert s["Index Name"] in ("waits_by_match", "run_cancels_by_match"), s
            assert s["Actual Loops"] == 4 and s.get("Rows Removed by Filter", 0) == 0, s
        for s in reads:  # the rest: whether anything is parked on the name, one row read at most
            if s not in probes:
                assert s["Node Type"] == "Index Only Scan" and s["Actual Rows"] <= 1, s
        for s in await ingest_reads(conn, app_id, "order.shipped", data):
            assert s["Node Type"] == "Index Only Scan" and s["Actual Rows"] == 0, s

        found = await conn.fetchrow(
            sql("event_store"), app_id, ["ev"], [NAME], [orjson.dumps(data).decode()], [0], None, 0
        )
        assert [w["runId"] for w in found["waits"]] == ["w42"]
        assert [c["runId"] for c in found["cancels"]] == ["c42"]
        await conn.execute("DEALLOCATE probe")


# ---------------------------------------------------------------- an upgrade with parked runs


async def test_runs_parked_before_the_migration_are_fingerprinted_and_still_resume(empty_dsn: str) -> None:
    [index] = [v for v, name, _ in migration_files() if name == "match_index"]
    conn = await asyncpg.connect(empty_dsn)
    try:
        await conn.execute(sql("migrations_table"))
        for version, name, body in migration_files():
            if version < index:
                await conn.execute(body)
                await conn.execute(sql("migrations_record"), version, name)
        app_id = await new_app(conn)
        await park(conn, app_id, [{"orderId": "o1"}, {"orderId": "o2"}, None], [{"order": {"id": "o1"}}])
    finally:
        await conn.close()

    assert (await migrate(empty_dsn))[0] == index  # and the migrations after it

    db = await Database.connect(empty_dsn, min_size=1, max_size=2)
    try:
        async with db.pool.acquire() as conn:
            fps = dict(await conn.fetch("SELECT run_id, match_fp FROM waits ORDER BY run_id"))
            assert fps[f"{app_id}:w0"] != 0 and fps[f"{app_id}:w1"] != 0 and fps[f"{app_id}:w2"] == 0
            assert await conn.fetchval("SELECT match_fp FROM run_cancels") != 0
        await ingest(db, app_id, [an_event({"orderId": "o1", "order": {"id": "o1"}})])
        async with db.pool.acquire() as conn:
            left = [r["run_id"] for r in await conn.fetch("SELECT run_id FROM waits")]
            runs = dict(await conn.fetch("SELECT id, coalesce(activity, status) FROM runs ORDER BY id"))
            step = await conn.fetchval("SELECT output FROM steps WHERE run_id = $1", f"{app_id}:w0")
    finally:
        await db.close()
    assert left == [f"{app_id}:w1"]
    assert runs == {
        f"{app_id}:c0": "cancelled",
        f"{app_id}:w0": "queued",
        f"{app_id}:w1": "waiting",
        f"{app_id}:w2": "queued",
    }
    assert step["data"] == {"orderId": "o1", "order": {"id": "o1"}}
