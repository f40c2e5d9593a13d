"""The plain ingest (engine/ingest.py, migration 0016): one statement when the events' functions start
their runs undecided and nothing parked may match, and the general path whenever that does not hold,
with the same outcome either way.

Each test watches which path ran by counting the transactions the ingest opens: the plain path opens
none (its statement commits by itself), the general path one.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable.engine import ingest as ingest_module
from durable.engine.flow import Handoff
from durable.engine.ingest import ingest
from durable.errors import Unauthorized
from durable.store.db import Database
from durable.types import EventIn
from tests.harness import Engine

HANDOFF = Handoff("local:0", capacity=10, lease_ms=5000, default_max_attempts=3)


class Transactions:
    """Counts the transactions `db` opens."""

    def __init__(self, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        opened = db.transaction

        def counting(**kwargs: Any) -> Any:
            self.count += 1
            return opened(**kwargs)

        monkeypatch.setattr(db, "transaction", counting)

    def since(self) -> int:
        count, self.count = self.count, 0
        return count


class Statements:
    """Counts the statements named `name` that `db` runs outside a transaction."""

    def __init__(self, db: Database, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.count = 0
        fetch = db.fetch

        async def counting(query: str, *args: Any) -> Any:
            self.count += query == name
            return await fetch(query, *args)

        monkeypatch.setattr(db, "fetch", counting)

    def since(self) -> int:
        count, self.count = self.count, 0
        return count


def event(name: str = "go", data: Any = None, **extra: Any) -> EventIn:
    return {"id": None, "name": name, "data": {} if data is None else data, "ts": None, **extra}  # type: ignore[typeddict-item]


async def rows(engine: Engine, query: str, *args: Any) -> list[dict[str, Any]]:
    async with engine.db.connection() as conn:
        return [dict(r) for r in await conn.raw.fetch(query, *args)]


async def test_an_undecided_ingest_is_one_statement_with_the_runs_and_their_hand_off(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = await engine.workspace()
    await engine.sync(
        ws,
        "http://127.0.0.1:9/x",
        [
            {"id": "plain", "trigger": {"event": "go"}, "retries": 4, "priority": {"key": "p"}},
            {"id": "gated", "trigger": {"event": "go"}, "concurrency": {"limit": 2, "key": "user"}},
        ],
    )
    opened = Transactions(engine.db, monkeypatch)
    data = {"user": "u1", "p": 7, "list": [1, 2, 3], "nested": {"a": [{"b": None}]}}
    ids, claims, queued = await ingest(engine.db, ws.id, [event(data=data), event(data={})], HANDOFF)
    assert opened.since() == 0
    assert len(ids) == 2
    assert sorted(c.function_id for c in claims) == ["plain", "plain"]  # the gated runs wait for their gate
    assert queued
    [first] = [c for c in claims if c.event["id"] == ids[0]]
    assert first.event == {"id": ids[0], "name": "go", "data": data, "ts": first.event["ts"]}
    assert first.max_attempts == 5 and first.attempt == 1 and first.url == "http://127.0.0.1:9/x"
    jobs = await rows(
        engine,
        "SELECT r.function_id, r.event, r.activity, j.priority, j.gate, j.gate_limit, j.lease_token,"
        " j.claimed_by FROM runs r JOIN jobs j ON j.run_id = r.id WHERE r.app_id = $1",
        ws.id,
    )
    assert len(jobs) == 4
    for job in jobs:
        stored = job["event"]
        assert stored["data"] in (data, {}) and stored["name"] == "go" and stored["id"] in ids
        if job["function_id"] == "plain":
            assert job["activity"] == "executing" and job["claimed_by"] == "local:0"
            assert job["priority"] == (7 if stored["data"] == data else 0) and job["gate"] is None
        else:
            assert job["activity"] == "queued" and job["lease_token"] is None and job["gate_limit"] == 2
            assert job["gate"] == "gated\x1f" + ("u1" if stored["data"] == data else "")
    assert {c.token for c in claims} == {j["lease_token"] for j in jobs if j["lease_token"] is not None}
    events = await rows(engine, "SELECT id, data FROM events WHERE app_id = $1 ORDER BY seq", ws.id)
    assert events == [{"id": ids[0], "data": data}, {"id": ids[1], "data": {}}]


@pytest.mark.parametrize(
    "change",
    ["debounce added", "paused (skip)", "paused (queue)", "removed", "another added", "idempotency added"],
)
async def test_a_function_changed_since_the_engine_looked_is_obeyed_at_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """What a name triggers is remembered per process; a change made meanwhile (here through the API,
    as another process would) fails the statement's check, and the general path decides."""
    ws = await engine.workspace()
    plain = {"id": "plain", "trigger": {"event": "go"}}
    await engine.sync(ws, "http://127.0.0.1:9/x", [plain])
    opened = Transactions(engine.db, monkeypatch)
    await ingest(engine.db, ws.id, [event(data={"k": 1})])
    assert opened.since() == 0
    if change == "debounce added":
        await engine.sync(ws, "http://127.0.0.1:9/x", [{**plain, "debounce": {"period": "1h"}}])
    elif change.startswith("paused"):
        mode = "skip" if "skip" in change else "queue"
        response = await engine.api.post(f"/api/apps/{ws.id}/functions/plain/pause", json={"mode": mode})
        assert response.status_code == 200, response.text
    elif change == "removed":
        await engine.sync(ws, "http://127.0.0.1:9/x", [{"id": "other", "trigger": {"event": "other"}}])
    elif change == "another added":
        await engine.sync(ws, "http://127.0.0.1:9/x", [plain, {"id": "second", "trigger": {"event": "go"}}])
    else:
        await engine.sync(ws, "http://127.0.0.1:9/x", [{**plain, "idempotency": "k"}])
    opened.since()  # the sync's own
    for _ in range(2):
        await ingest(engine.db, ws.id, [event(data={"k": 2})])
    # The first ingest falls back and learns; the second is plain again unless the function now needs
    # a decision.
    assert opened.since() == (1 if change in ("removed", "another added") else 2)
    runs = await rows(
        engine, "SELECT function_id, flow, activity FROM runs WHERE app_id = $1 ORDER BY id", ws.id
    )
    after = runs[1:]
    if change == "debounce added":
        assert len(after) == 1 and after[0]["flow"]["debounce"]  # two events, one debounced run
    elif change == "paused (skip)":
        assert after == []
    elif change == "paused (queue)":
        assert [r["flow"].get("paused") is not None for r in after] == [True, True]
    elif change == "removed":
        assert after == []
    elif change == "another added":
        assert sorted(r["function_id"] for r in after) == ["plain", "plain", "second", "second"]
    else:
        assert [r["function_id"] for r in after] == ["plain"]  # the second event's key was used


async def test_parked_runs_that_may_match_take_the_general_path_and_the_rest_do_not(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.test_match_index import NAME, park

    ws = await engine.workspace()
    async with engine.db.connection() as conn:
        await park(conn.raw, ws.id, [{"orderId": "o1"}], [{"orderId": "o9"}])
    opened = Transactions(engine.db, monkeypatch)
    await ingest(engine.db, ws.id, [event(NAME, {"orderId": "o2"})])
    assert opened.since() == 0  # a fingerprint probe finds nothing: plain
    waits = await rows(engine, "SELECT run_id FROM waits WHERE app_id = $1", ws.id)
    assert len(waits) == 1
    await ingest(engine.db, ws.id, [event(NAME, {"orderId": "o1", "more": True})])
    assert opened.since() == 1
    assert await rows(engine, "SELECT run_id FROM waits WHERE app_id = $1", ws.id) == []
    await ingest(engine.db, ws.id, [event(NAME, {"orderId": "o9"})])
    assert opened.since() == 1
    [cancelled] = await rows(engine, "SELECT status FROM runs WHERE id = $1", f"{ws.id}:c0")
    assert cancelled["status"] == "cancelled"
    outcomes = await rows(engine, "SELECT outcomes FROM events WHERE app_id = $1 ORDER BY seq", ws.id)
    assert [len(o["outcomes"]) for o in outcomes] == [0, 1, 1]


async def test_a_name_refused_for_what_is_parked_on_it_goes_the_general_path_for_a_while(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a refusal the general path explains by what is parked (the functions were as assumed),
    the name's ingests skip the refused statement for Triggers.PARKED_S; a function changed meanwhile
    is no such refusal."""
    from tests.integration.test_match_index import NAME, park

    ws = await engine.workspace()
    async with engine.db.connection() as conn:
        await park(conn.raw, ws.id, [{"orderId": "o1"}, {"orderId": "o2"}], [])
    known = ingest_module.triggers(engine.db)
    now = [1000.0]
    monkeypatch.setattr(known, "clock", lambda: now[0])
    opened = Transactions(engine.db, monkeypatch)
    plain = Statements(engine.db, monkeypatch, "ingest_plain")
    await ingest(engine.db, ws.id, [event(NAME, {"orderId": "o1"})])
    assert (plain.since(), opened.since()) == (1, 1)  # refused, then the general path resumed o1
    await ingest(engine.db, ws.id, [event(NAME, {"orderId": "o3"})])
    assert (plain.since(), opened.since()) == (0, 1)  # straight to the general path
    now[0] += known.PARKED_S
    await ingest(engine.db, ws.id, [event(NAME, {"orderId": "o4"})])
    assert (plain.since(), opened.since()) == (1, 0)  # plain again: nothing parked matches o4
    await ingest(engine.db, ws.id, [event(NAME, {"orderId": "o2"})])
    assert (plain.since(), opened.since()) == (1, 1)
    assert await rows(engine, "SELECT run_id FROM waits WHERE app_id = $1", ws.id) == []

    await engine.sync(ws, "http://127.0.0.1:9/x", [{"id": "plain", "trigger": {"event": "go"}}])
    await ingest(engine.db, ws.id, [event("go")])
    await engine.sync(ws, "http://127.0.0.1:9/x", [{"id": "plain", "trigger": {"event": "go"}, "retries": 1}])
    plain.since(), opened.since()
    for _ in range(2):
        await ingest(engine.db, ws.id, [event("go")])
    assert (plain.since(), opened.since()) == (2, 1)  # refused for the change, learned, plain again


async def test_a_replayed_nonce_stores_nothing_on_the_plain_path(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = await engine.workspace()
    await engine.sync(ws, "http://127.0.0.1:9/x", [{"id": "plain", "trigger": {"event": "go"}}])
    opened = Transactions(engine.db, monkeypatch)
    nonce = uuid.uuid4().hex
    await ingest(engine.db, ws.id, [event()], HANDOFF, nonce=nonce)
    with pytest.raises(Unauthorized, match="replay"):
        await ingest(engine.db, ws.id, [event(data={"again": 1})], HANDOFF, nonce=nonce)
    assert opened.since() == 0
    assert len(await rows(engine, "SELECT 1 FROM events WHERE app_id = $1", ws.id)) == 1
    assert len(await rows(engine, "SELECT 1 FROM runs WHERE app_id = $1", ws.id)) == 1


async def test_a_capped_workspace_hands_nothing_off_and_a_seen_id_starts_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = await engine.workspace()
    await engine.sync(ws, "http://127.0.0.1:9/x", [{"id": "plain", "trigger": {"event": "go"}}])
    async with engine.db.connection() as conn:
        await conn.raw.execute("UPDATE apps SET max_concurrency = 3 WHERE id = $1", ws.id)
    opened = Transactions(engine.db, monkeypatch)
    _, claims, queued = await ingest(engine.db, ws.id, [event(id="same")], HANDOFF)  # type: ignore[arg-type]
    assert claims == [] and queued
    _, claims, queued = await ingest(engine.db, ws.id, [event(id="same")], HANDOFF)  # type: ignore[arg-type]
    assert claims == [] and not queued
    assert opened.since() == 0
    jobs = await rows(engine, "SELECT lease_token FROM jobs WHERE app_id = $1", ws.id)
    assert jobs == [{"lease_token": None}]


# ---------------------------------------------------------------- the two paths agree

OPTIONS: list[dict[str, Any]] = [
    {},
    {"retries": 1},
    {"priority": {"key": "p"}},
    {"concurrency": {"limit": 1, "key": "k"}},
    {"throttle": {"limit": 1, "period": 3_600_000}},
    {"rateLimit": {"limit": 1, "period": 3_600_000, "key": "k"}},
    {"cancelOn": [{"event": "stop", "match": "k"}]},
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["a", "b", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("kpx"), inner, max_size=3),
    max_leaves=6,
)
CASES = st.tuples(
    st.lists(st.tuples(st.sampled_from(["go", "other"]), st.sampled_from(range(len(OPTIONS)))), max_size=3),
    st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(["go", "other", "none"]),
                st.dictionaries(st.sampled_from("kpx"), JSON, max_size=3),
                st.sampled_from([None, "i1", "i2"]),
            ),
            min_size=1,
            max_size=4,
        ),
        min_size=1,
        max_size=3,
    ),
)


async def _outcome(db: Database, functions: list[tuple[str, int]], batches: list[Any]) -> tuple[Any, ...]:
    """Ingest `batches` into a new workspace; what was stored, without its ids and times."""
    app_id = f"app_{uuid.uuid4().hex[:12]}"
    async with db.connection() as conn:
        await conn.raw.execute(
            "INSERT INTO apps (id, name, environment, signing_key, url) VALUES ($1, $1, 'dev', 'k', 'http://x')",
            app_id,
        )
        for index, (name, option) in enumerate(functions):
            await conn.raw.execute(
                "INSERT INTO functions (app_id, id, name, trigger_event, config) VALUES ($1, $2, $2, $3, $4)",
                app_id,
                f"f{index}",
                name,
                OPTIONS[option],
            )
    handed = 0
    for batch in batches:
        events = [
            {"id": None if i is None else f"{app_id}-{i}", "name": n, "data": d, "ts": 1} for n, d, i in batch
        ]
        stored = await ingest(db, app_id, events, HANDOFF)  # type: ignore[arg-type]
        handed += len(stored.claims)
    async with db.connection() as conn:
        runs = await conn.raw.fetch(
            "SELECT r.function_id, r.event - 'id' AS event, r.activity, j.priority, j.gate,"
            " (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(r.flow) AS k) AS flow,"
            " j.gate_limit, j.lease_token IS NOT NULL AS leased FROM runs r JOIN jobs j ON j.run_id = r.id"
            " WHERE r.app_id = $1",
            app_id,
        )
        events = await conn.raw.fetch(
            "SELECT name, data, ts, (SELECT jsonb_agg(o - 'runId') FROM jsonb_array_elements(outcomes) AS o)"
            " AS outcomes FROM events WHERE app_id = $1 ORDER BY seq",
            app_id,
        )
        cancels = await conn.raw.fetchval("SELECT count(*) FROM run_cancels WHERE app_id = $1", app_id)
    key = orjson.OPT_SORT_KEYS
    return (
        sorted(orjson.dumps(dict(r), option=key, default=str) for r in runs),
        [orjson.dumps(dict(e), option=key) for e in events],
        cancels,
        handed,
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=CASES)
async def test_the_plain_path_stores_what_the_general_path_stores(
    db: Database, monkeypatch: pytest.MonkeyPatch, case: tuple[list[tuple[str, int]], list[Any]]
) -> None:
    """Arbitrary functions (undecided or not) and lists of events (ids repeated or not, names that
    trigger nothing): the same events, runs, jobs, outcomes and hand-offs with the plain path as
    without it."""
    functions, batches = case
    with_plain = await _outcome(db, functions, batches)
    with monkeypatch.context() as patched:

        async def never(*args: Any) -> None:
            return None

        patched.setattr(ingest_module, "_ingest_plain", never)
        without = await _outcome(db, functions, batches)
    assert with_plain == without
