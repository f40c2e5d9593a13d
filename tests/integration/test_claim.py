"""The claim statement (`jobs_claim`, with `claim_locks` for gated runs and capped workspaces) on a moved
database clock: lease expiry and fencing, due sleeps, timed-out waits, retry backoff, concurrency
gates, priority and FIFO order, fairness across workspaces and keys, and the per-workspace cap. No
worker loop runs and no app is called: each test claims through the executor, stores ops as a worker
would, and jumps the clock (`Database.set_clock_offset`) instead of waiting."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg

from durable.engine.apps import update_settings
from durable.engine.claim import Claim
from durable.engine.execution import Executor, Outcome, Timing
from durable.engine.flow import Handoff
from durable.engine.ingest import ingest
from durable.store.db import Database
from tests.harness import Engine, Workspace

LEASE_MS = 30_000
URL = "http://127.0.0.1:9/never-called"


async def _claim(executor: Executor, limit: int = 10, worker: str = "w1") -> list[Claim]:
    """One claim, as a worker loop makes it: gated runs and capped workspaces under their locks."""
    return await executor.claim(worker, limit)


async def _db_now_ms(db: Database) -> int:
    return int(await db.fetchval("clock_now_ms"))


def _timing(db: Database) -> Timing:
    now = db.now()
    return Timing(now, now)


async def _setup(engine: Engine, function: dict[str, Any]) -> tuple[Workspace, Executor]:
    ws = await engine.workspace()
    await engine.sync(ws, URL, [{"trigger": {"event": "go"}, **function}])
    return ws, Executor(engine.db, lease_ms=LEASE_MS, default_max_attempts=3)


async def _step(db: Database, run_id: str, step_id: str) -> asyncpg.Record:
    [step] = [s for s in await db.fetch("run_steps", run_id) if s["id"] == step_id]
    return step


async def test_the_database_clock_moves_with_the_offset(db: Database) -> None:
    before = await _db_now_ms(db)
    await db.set_clock_offset(86_400_000)
    assert 86_400_000 <= await _db_now_ms(db) - before < 86_460_000
    assert abs((db.now().timestamp() * 1000) - await _db_now_ms(db)) < 60_000  # Python's view moves too
    await db.set_clock_offset(0)
    assert await _db_now_ms(db) - before < 60_000


async def test_a_leased_job_is_claimed_again_only_after_its_lease_expires(engine: Engine) -> None:
    db = engine.db
    ws, executor = await _setup(engine, {"id": "f"})
    await engine.send(ws, "go")
    [first] = await _claim(executor)
    assert await _claim(executor, worker="w2") == []  # leased: nobody else gets it
    await db.set_clock_offset(LEASE_MS - 5_000)
    assert await _claim(executor, worker="w2") == []  # the lease has 5 s left
    await db.set_clock_offset(LEASE_MS + 1_000)
    [second] = await _claim(executor, worker="w2")
    assert second.run_id == first.run_id and second.token != first.token
    assert second.attempt == first.attempt  # a lost lease is not a failed attempt
    # The old holder is fenced out of every write; the new one is not.
    assert await executor.apply(first, {"op": "done", "data": "stale"}, _timing(db)) is Outcome.LOST
    assert await executor.apply(first, {"op": "sleep", "id": "s", "until_ms": 0}, _timing(db)) is Outcome.LOST
    assert await executor.apply(second, {"op": "done", "data": "fresh"}, _timing(db)) is Outcome.ENDED
    run = await engine.run(first.run_id)
    assert run["status"] == "completed" and run["output"] == "fresh" and run["steps"] == []


async def test_a_due_sleep_completes_at_claim(engine: Engine) -> None:
    db = engine.db
    ws, executor = await _setup(engine, {"id": "f"})
    await engine.send(ws, "go")
    [claim] = await _claim(executor)
    until_ms = await _db_now_ms(db) + 3_600_000
    sleep: Any = {"op": "sleep", "id": "nap", "until_ms": until_ms}
    assert await executor.apply(claim, sleep, _timing(db)) is Outcome.PARKED
    assert (await engine.run(claim.run_id))["activity"] == "sleeping"
    await db.set_clock_offset(3_000_000)  # 50 min: not yet
    assert await _claim(executor) == []
    await db.set_clock_offset(3_601_000)
    [woken] = await _claim(executor)
    assert woken.run_id == claim.run_id and woken.token != claim.token
    assert woken.steps == {"nap": {"type": "sleep", "data": None}}
    step = await _step(db, claim.run_id, "nap")
    assert step["status"] == "completed"
    assert 3_600_000 <= step["queued_ms"] < 3_660_000  # the sleep's durable time, on the moved clock


async def test_a_wait_past_its_deadline_resolves_to_null_at_claim(engine: Engine) -> None:
    db = engine.db
    ws, executor = await _setup(engine, {"id": "f"})
    await engine.send(ws, "go")
    [claim] = await _claim(executor)
    wait: Any = {
        "op": "wait", "id": "approve", "event": "approved", "match": None,
        "until_ms": await _db_now_ms(db) + 600_000,
    }  # fmt: skip
    assert await executor.apply(claim, wait, _timing(db)) is Outcome.PARKED
    await db.set_clock_offset(590_000)
    assert await _claim(executor) == []
    await db.set_clock_offset(601_000)
    [woken] = await _claim(executor)
    assert woken.steps == {"approve": {"type": "wait", "data": None}}
    step = await _step(db, claim.run_id, "approve")
    assert step["status"] == "completed" and step["output"] is None
    # The wait row went with the timeout, so a late matching event resumes nothing.
    await engine.send(ws, "approved")
    assert (await _step(db, claim.run_id, "approve"))["output"] is None


async def test_a_retry_is_claimed_only_after_its_backoff(engine: Engine) -> None:
    db = engine.db
    ws, executor = await _setup(engine, {"id": "f"})
    await engine.send(ws, "go")
    [claim] = await _claim(executor)
    error: Any = {"op": "error", "id": "call", "message": "upstream 503", "retryable": True}
    assert await executor.apply(claim, error, _timing(db)) is Outcome.PARKED
    assert await _claim(executor) == []  # the backoff is at least a few hundred ms
    await db.set_clock_offset(600_000)  # longer than any backoff (capped at 5 min)
    [again] = await _claim(executor)
    assert again.run_id == claim.run_id and again.attempt == 2


async def test_a_full_gate_is_not_claimed_until_a_lease_frees_its_slot(engine: Engine) -> None:
    db = engine.db
    ws, executor = await _setup(engine, {"id": "f", "concurrency": {"limit": 1}})
    await engine.send(ws, "go", {"n": 1})
    await engine.send(ws, "go", {"n": 2})
    [holder] = await _claim(executor)
    assert holder.event["data"] == {"n": 1}  # first come, first served
    assert await _claim(executor, worker="w2") == []  # the gate is full
    [row] = await db.fetch("jobs_claim", "w2", 10, LEASE_MS, [], [])
    assert row["run_id"] is None and row["lock_gates"] == []  # and left out of the gates to lock
    await db.set_clock_offset(LEASE_MS + 1_000)  # the holder's worker died: its lease expired
    [taker] = await _claim(executor, worker="w2")
    # One slot came free; the run next in line (due before the expired lease) takes it.
    assert taker.event["data"] == {"n": 2}
    assert await _claim(executor, worker="w3") == []  # full again
    # A finished run gives its slot back at once: the expired holder is claimable again.
    assert await executor.apply(taker, {"op": "done", "data": None}, _timing(db)) is Outcome.ENDED
    [again] = await _claim(executor, worker="w3")
    assert again.run_id == holder.run_id and again.token != holder.token


async def test_claims_follow_priority_then_due_time_then_arrival(engine: Engine) -> None:
    ws, executor = await _setup(engine, {"id": "f", "priority": {"key": "p"}})
    for name, p in [("low0", 0), ("high0", 10), ("low1", 0), ("mid", 5), ("high1", 10), ("bad", "x")]:
        await engine.send(ws, "go", {"n": name, "p": p})
    order = []
    while claims := await _claim(executor, limit=1):
        order.append(claims[0].event["data"]["n"])
    assert order == ["high0", "high1", "mid", "low0", "low1", "bad"]  # "x" is no integer: priority 0


# --- fairness across workspaces and keys, and the per-workspace cap ----------------------------


async def _two_workspaces(
    engine: Engine, flood: dict[str, Any], quiet: dict[str, Any]
) -> tuple[Workspace, Workspace, Executor]:
    a = await engine.workspace("flood")
    b = await engine.workspace("quiet")
    await engine.sync(a, URL, [{"trigger": {"event": "go"}, **flood}])
    await engine.sync(b, URL, [{"trigger": {"event": "go"}, **quiet}])
    return a, b, Executor(engine.db, lease_ms=LEASE_MS, default_max_attempts=3)


async def _send_many(engine: Engine, ws: Workspace, count: int, **data: Any) -> None:
    events = [{"name": "go", "data": {"i": i, **data}} for i in range(count)]
    for start in range(0, count, 1000):
        assert (await engine.signed(ws, "/e", events[start : start + 1000])).status_code == 200


async def test_a_deep_backlog_does_not_hide_another_workspaces_run(engine: Engine) -> None:
    a, b, executor = await _two_workspaces(engine, {"id": "bulk"}, {"id": "one"})
    await _send_many(engine, a, 300)  # due first, all of them
    held = await _claim(executor, limit=2)
    assert {c.app_id for c in held} == {a.id}  # b has nothing due yet: a takes what is free
    await engine.send(b, "go", {"i": "b"})
    # One slot: a already runs 2, b none, so b's run goes first though 298 of a's were due before it.
    [claim] = await _claim(executor, limit=1)
    assert claim.app_id == b.id
    # Then a's backlog, in its own order.
    [nxt] = await _claim(executor, limit=1)
    assert nxt.app_id == a.id and nxt.event["data"]["i"] == 2


async def test_free_slots_are_shared_by_load_and_priority_never_crosses_workspaces(engine: Engine) -> None:
    a, b, executor = await _two_workspaces(
        engine, {"id": "loud", "priority": 1000}, {"id": "meek", "priority": -1000}
    )
    await _send_many(engine, b, 5)
    await _send_many(engine, a, 5)  # a's runs: highest priority, but due after b's
    order = [c.app_id for _ in range(6) for c in await _claim(executor, limit=1)]
    # Turn by turn: the workspace running fewer goes next; a tie goes to the run due first.
    assert order == [b.id, a.id, b.id, a.id, b.id, a.id]
    # A bigger claim splits its slots the same way.
    more = await _claim(executor, limit=4)
    assert Counter(c.app_id for c in more) == {a.id: 2, b.id: 2}
    # Within a workspace, priority still orders its runs.
    loud = await engine.workspace("loud")
    await engine.sync(loud, URL, [{"id": "ranked", "trigger": {"event": "go"}, "priority": {"key": "p"}}])
    for n, p in [("low", 0), ("high", 10)]:
        await engine.send(loud, "go", {"n": n, "p": p})
    ranked = [c.event["data"]["n"] for _ in range(2) for c in await _claim(executor, limit=1)]
    assert ranked == ["high", "low"]


async def test_one_keys_backlog_never_delays_another_keys_run(engine: Engine) -> None:
    ws, executor = await _setup(engine, {"id": "f", "concurrency": {"limit": 1, "key": "tenant"}})
    await _send_many(engine, ws, 200, tenant="big")
    await engine.send(ws, "go", {"tenant": "small"})
    # One claim of two: big's slot, and small's run behind big's 199 queued ones.
    claims = await _claim(executor, limit=2)
    assert sorted(c.event["data"]["tenant"] for c in claims) == ["big", "small"]


async def test_the_workspace_cap_is_exact_under_concurrent_claimers(engine: Engine) -> None:
    db = engine.db
    a, b, executor = await _two_workspaces(engine, {"id": "bulk"}, {"id": "one"})
    await update_settings(db, a.id, {"maxConcurrency": 3})
    await _send_many(engine, a, 40)
    await _send_many(engine, b, 10)
    executors = [Executor(db, lease_ms=LEASE_MS, default_max_attempts=3) for _ in range(6)]
    for _ in range(2):  # the second time, after every lease expired
        results = await asyncio.gather(*(e.claim(f"w{i}", 5) for i, e in enumerate(executors)))
        taken = Counter(c.app_id for claims in results for c in claims)
        assert taken[a.id] <= 3  # six claimers at once, 30 slots: never more than the cap
        # Claimers that met each other's locked rows may have left some; one more claim takes them.
        taken.update(c.app_id for c in await _claim(executor, limit=30))
        assert taken == {a.id: 3, b.id: 10}  # the cap reached, the uncapped workspace unaffected
        await db.set_clock_offset(db.clock_offset_ms + LEASE_MS + 1_000)
    # Every lease expired again. A finished run frees a slot of the cap at once.
    [held] = await _claim(executor, limit=1)
    assert held.app_id == a.id  # a's queued runs were due before b's expired leases
    running = Counter(c.app_id for c in await _claim(executor, limit=10))
    assert running == {a.id: 2, b.id: 8}
    assert await executor.apply(held, {"op": "done", "data": None}, _timing(db)) is Outcome.ENDED
    again = Counter(c.app_id for c in await _claim(executor, limit=10))
    assert again == {a.id: 1, b.id: 2}
    # Without the cap the rest of the backlog runs: 39 active runs, 3 of them executing.
    await update_settings(db, a.id, {"maxConcurrency": None})
    rest = await _claim(executor, limit=50)
    assert len(rest) == 36 and {c.app_id for c in rest} == {a.id}


async def test_a_capped_workspace_gets_no_hand_off(engine: Engine) -> None:
    a, _, _ = await _two_workspaces(engine, {"id": "bulk"}, {"id": "one"})
    await update_settings(engine.db, a.id, {"maxConcurrency": 1})
    events: Any = [{"id": None, "name": "go", "data": {"i": i}, "ts": None} for i in range(3)]
    handoff = Handoff("local:0", capacity=10, lease_ms=5000, default_max_attempts=3)
    _, claims, _ = await ingest(engine.db, a.id, events, handoff)
    assert claims == []  # counted at claim, under the workspace's lock
    assert sorted(r["activity"] for r in await engine.runs(a)) == ["queued"] * 3


async def test_a_bulk_resume_refreshes_the_claims_statistics_in_its_transaction(
    engine: Engine, monkeypatch: Any
) -> None:
    """Many parked jobs made due at once (an event that resumes them all): the planner must learn it
    before the next claim, or claims read and sort every due job (engine.claim.made_due). The ANALYZE
    runs inside the resuming transaction; its row count commits with it."""
    db = engine.db
    ws, executor = await _setup(engine, {"id": "f"})
    for n in range(5):
        await engine.send(ws, "go", {"n": n})
    wait: Any = {
        "op": "wait",
        "id": "w",
        "event": "all",
        "match": None,
        "until_ms": await _db_now_ms(db) + 600_000,
    }
    for claim in await _claim(executor):
        assert await executor.apply(claim, wait, _timing(db)) is Outcome.PARKED

    async def jobs_reltuples() -> float:
        async with db.connection() as conn:
            return float(await conn.raw.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'jobs'"))

    before = await jobs_reltuples()
    monkeypatch.setattr("durable.engine.claim.BULK_DUE", 6)
    await engine.send(ws, "all")  # 5 resumed: under the threshold
    assert await jobs_reltuples() == before
    for n in range(5, 11):
        await engine.send(ws, "go", {"n": n})
    for claim in await _claim(executor, limit=64):  # the 5 resumed runs too, left as they are
        if claim.steps == {}:
            assert await executor.apply(claim, wait, _timing(db)) is Outcome.PARKED
    await engine.send(ws, "all")  # 6 resumed: analyzed, and it counted them
    assert await jobs_reltuples() >= 6


async def test_completions_group_committed_together_are_each_fenced_on_their_own_lease(
    engine: Engine,
) -> None:
    """runs_complete_many: runs that end in one flush (engine/group_commit.py) are stored per run, all or
    none: the run whose lease was taken meanwhile keeps its job and gets neither its steps nor its end."""
    db = engine.db
    ws, executor = await _setup(engine, {"id": "f"})
    for n in range(3):
        await engine.send(ws, "go", {"n": n})
    claims = sorted(await _claim(executor), key=lambda c: c.run_id)
    lost = claims[1]
    async with db.connection() as conn:
        await conn.raw.execute(
            "UPDATE jobs SET lease_token = gen_random_uuid() WHERE run_id = $1", lost.run_id
        )
    answer: Any = {
        "op": "checkpoint",
        "steps": [{"id": "a", "data": [1, 2]}],
        "then": {"op": "done", "data": 3},
    }
    outcomes = await asyncio.gather(*(executor.apply(c, answer, _timing(db)) for c in claims))
    assert outcomes == [Outcome.ENDED, Outcome.LOST, Outcome.ENDED]
    for claim, ended in zip(claims, (True, False, True), strict=True):
        run = await db.fetchrow("run_get", claim.run_id)
        steps = await db.fetch("run_steps", claim.run_id)
        assert run is not None
        if ended:
            assert run["status"] == "completed" and run["output"] == 3
            assert [(s["id"], s["output"]) for s in steps] == [("a", [1, 2])]
        else:
            assert run["status"] == "active" and steps == []
