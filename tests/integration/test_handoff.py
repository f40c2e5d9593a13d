"""Runs created by an ingest go straight to a local worker when it has room: due now, no gate."""

from __future__ import annotations

from durable.engine.flow import Handoff
from durable.engine.ingest import ingest
from tests.harness import Engine


async def test_ingest_hands_ungated_runs_due_now_to_the_offered_worker(engine: Engine) -> None:
    ws = await engine.workspace()
    await engine.sync(
        ws,
        "http://127.0.0.1:9/x",
        [
            {"id": "plain", "trigger": {"event": "go"}, "retries": 4},
            {"id": "gated", "trigger": {"event": "go"}, "concurrency": {"limit": 5}},
            {"id": "paced", "trigger": {"event": "go"}, "throttle": {"limit": 1, "period": "1h"}},
        ],
    )
    events = [{"id": None, "name": "go", "data": {"i": i}, "ts": None} for i in range(3)]
    handoff = Handoff("local:0", capacity=10, lease_ms=5000, default_max_attempts=3)
    ids, claims, queued = await ingest(engine.db, ws.id, events, handoff)  # type: ignore[arg-type]
    assert len(ids) == 3
    # Gated runs wait for their gate and throttled ones for their slot (the first slot is now).
    assert sorted(c.function_id for c in claims) == ["paced", "plain", "plain", "plain"]
    plain = [c for c in claims if c.function_id == "plain"]
    assert all(c.max_attempts == 5 and c.attempt == 1 and c.steps == {} and c.url for c in plain)
    async with engine.db.connection() as conn:
        jobs = await conn.raw.fetch(
            "SELECT j.run_id, j.lease_token, j.claimed_by, r.activity, r.function_id"
            " FROM jobs j JOIN runs r ON r.id = j.run_id"
        )
    leased = {r["run_id"]: r for r in jobs if r["lease_token"] is not None}
    assert set(leased) == {c.run_id for c in claims}
    assert all(r["claimed_by"] == "local:0" and r["activity"] == "executing" for r in leased.values())
    assert {c.token for c in claims} == {r["lease_token"] for r in leased.values()}
    unclaimed = [r for r in jobs if r["lease_token"] is None]
    assert len(unclaimed) == 5 and all(r["activity"] in ("queued", "scheduled") for r in unclaimed)
    assert queued  # the gated and throttled runs are the queue's: the worker loops are woken for them


async def test_the_hand_off_takes_no_more_than_the_worker_has_room_for(engine: Engine) -> None:
    ws = await engine.workspace()
    await engine.sync(ws, "http://127.0.0.1:9/x", [{"id": "plain", "trigger": {"event": "go"}}])
    events = [{"id": None, "name": "go", "data": {}, "ts": None} for _ in range(5)]
    handoff = Handoff("local:0", capacity=2, lease_ms=5000, default_max_attempts=3)
    _, claims, queued = await ingest(engine.db, ws.id, events, handoff)  # type: ignore[arg-type]
    assert len(claims) == 2
    assert queued
    assert sorted(r["activity"] for r in await engine.runs(ws)) == ["executing"] * 2 + ["queued"] * 3


async def test_no_offer_means_no_hand_off(engine: Engine) -> None:
    ws = await engine.workspace()
    await engine.sync(ws, "http://127.0.0.1:9/x", [{"id": "plain", "trigger": {"event": "go"}}])
    _, claims, queued = await ingest(engine.db, ws.id, [{"id": None, "name": "go", "data": {}, "ts": None}])
    assert claims == [] and queued
    assert [r["activity"] for r in await engine.runs(ws)] == ["queued"]


async def test_an_ingest_whose_every_run_was_handed_off_leaves_nothing_queued(engine: Engine) -> None:
    """So it wakes no worker loop: a claim would find nothing (resumed waits and cancelled runs are
    queued work: tests/integration/test_match_index.py)."""
    ws = await engine.workspace()
    await engine.sync(ws, "http://127.0.0.1:9/x", [{"id": "plain", "trigger": {"event": "go"}}])
    handoff = Handoff("local:0", capacity=10, lease_ms=5000, default_max_attempts=3)
    events = [{"id": None, "name": "go", "data": {"i": i}, "ts": None} for i in range(3)]
    _, claims, queued = await ingest(engine.db, ws.id, events, handoff)  # type: ignore[arg-type]
    assert len(claims) == 3 and not queued
    _, claims, queued = await ingest(
        engine.db, ws.id, [{"id": None, "name": "other", "data": {}, "ts": None}]
    )
    assert claims == [] and not queued
