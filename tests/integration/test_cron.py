"""Cron: each occurrence fires once, late occurrences do not storm, syncs reschedule."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import durable_sdk

from durable.scheduler.cron import run_cron, tick
from durable.store.db import Database
from tests.harness import AppServer, Engine


async def _schedule(db: Database) -> list[tuple[str, str, datetime]]:
    async with db.connection() as conn:
        rows = await conn.raw.fetch("SELECT function_id, expr, next_at FROM cron_schedules ORDER BY 1")
    return [(r["function_id"], r["expr"], r["next_at"]) for r in rows]


async def _db_now(db: Database) -> datetime:
    return datetime.fromtimestamp(await db.fetchval("clock_now_ms") / 1000, UTC)


async def _jump_past_next(db: Database, seconds_late: float) -> None:
    """Move the database clock to `seconds_late` after the earliest scheduled occurrence."""
    next_at = min(n for _, _, n in await _schedule(db))
    ahead = next_at - await _db_now(db) + timedelta(seconds=seconds_late)
    await db.set_clock_offset(db.clock_offset_ms + int(ahead.total_seconds() * 1000))


async def test_a_due_occurrence_fires_once_with_the_cron_event(engine: Engine) -> None:
    @durable_sdk.function(id="nightly", trigger={"cron": "TZ=Europe/Amsterdam 0 3 * * *"})
    async def nightly(event, step):  # type: ignore[no-untyped-def]
        return await step.run("report", lambda: event)

    ws = await engine.workspace()
    with AppServer([nightly], ws.signing_key) as app:
        await engine.sync(ws, app.url, [nightly])
        [(fid, expr, next_at)] = await _schedule(engine.db)
        assert fid == "nightly" and next_at > datetime.now(UTC)
        assert next_at.astimezone(UTC).hour in (1, 2)  # 03:00 in Amsterdam
        assert await tick(engine.db) == 0  # not due yet
        await _jump_past_next(engine.db, 5)
        # Three schedulers at once (as in three engine processes): one fire.
        fired = await asyncio.gather(tick(engine.db), tick(engine.db), tick(engine.db))
        assert sum(fired) == 1
        assert await tick(engine.db) == 0
        await engine.start_workers()
        [run] = await engine.wait_runs(ws, 1)
    view = await engine.run(run["id"])
    event = view["output"]
    assert event["name"] == "$cron" and event["data"]["cron"] == "TZ=Europe/Amsterdam 0 3 * * *"
    assert event["data"]["scheduledAt"].endswith(".000Z")
    assert datetime.fromisoformat(event["data"]["scheduledAt"]) == next_at
    [(_, _, following)] = await _schedule(engine.db)
    # The next night (23-25 h on a DST change), counted from the moved clock.
    assert timedelta(hours=23) <= following - next_at <= timedelta(hours=25)


async def test_after_downtime_the_next_occurrence_is_in_the_future(engine: Engine) -> None:
    ws = await engine.workspace()
    await engine.sync(ws, "http://127.0.0.1:9/x", [{"id": "often", "trigger": {"cron": "*/2 * * * * *"}}])
    await _jump_past_next(engine.db, 3600)  # an hour of missed occurrences
    assert await tick(engine.db) == 0  # no catch-up storm
    [(_, _, next_at)] = await _schedule(engine.db)
    now = await _db_now(engine.db)
    assert now < next_at <= now + timedelta(seconds=3)
    assert await engine.runs(ws) == []


async def test_sync_reschedules_a_changed_expression_and_drops_removed_functions(engine: Engine) -> None:
    ws = await engine.workspace()
    url = "http://127.0.0.1:9/x"
    await engine.sync(
        ws,
        url,
        [{"id": "a", "trigger": {"cron": "0 3 * * *"}}, {"id": "b", "trigger": {"cron": "0 4 * * *"}}],
    )
    before = dict((f, n) for f, _, n in await _schedule(engine.db))
    await engine.sync(
        ws,
        url,
        [{"id": "a", "trigger": {"cron": "0 3 * * *"}}, {"id": "b", "trigger": {"cron": "30 5 * * *"}}],
    )
    after = dict((f, n) for f, _, n in await _schedule(engine.db))
    assert after["a"] == before["a"] and after["b"] != before["b"] and after["b"].minute == 30
    await engine.sync(ws, url, [{"id": "b", "trigger": {"event": "now.an.event"}}])
    assert await _schedule(engine.db) == []


async def test_bad_cron_expressions_are_refused_at_sync(engine: Engine) -> None:
    ws = await engine.workspace()
    for expr in ("* * *", "61 * * * *", "TZ=Mars/Olympus 0 3 * * *", "@hourly-ish"):
        body = {"url": "http://127.0.0.1:9/x", "functions": [{"id": "c", "trigger": {"cron": expr}}]}
        response = await engine.signed(ws, "/fn/sync", body)
        assert response.status_code == 400 and "cron" in response.json()["error"], expr
    assert await _schedule(engine.db) == []


class _Looks:
    """The database as the cron loop sees it, recording each statement it runs outside a tick and each
    tick's transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.seen: list[str] = []

    async def fetchval(self, name: str, *args: object) -> object:
        self.seen.append(name)
        return await self.db.fetchval(name, *args)

    def transaction(self) -> object:
        self.seen.append("tick")
        return self.db.transaction()


async def test_idle_the_loop_looks_once_and_sleeps_until_a_sync_here_wakes_it(engine: Engine) -> None:
    """Between occurrences the loop costs one statement a look and sleeps until the next is due (at most
    IDLE_RECHECK_S, 10 s); a sync through this process's API wakes it, so the schedule it adds fires on
    time rather than at the next look. It used to run a tick's transaction and a query every second."""
    stop, synced = asyncio.Event(), asyncio.Event()
    engine.app.state.on_sync = synced.set
    looks = _Looks(engine.db)
    loop = asyncio.create_task(run_cron(looks, stop, synced))  # type: ignore[arg-type]
    try:
        await asyncio.sleep(1.5)
        assert looks.seen == ["cron_next"]  # no schedule: one look, no tick, asleep

        @durable_sdk.function(id="every_second", trigger={"cron": "* * * * * *"})
        async def every_second(event, step):  # type: ignore[no-untyped-def]
            return 1

        ws = await engine.workspace()
        with AppServer([every_second], ws.signing_key) as app:
            await engine.sync(ws, app.url, [every_second])
            deadline = asyncio.get_running_loop().time() + 5  # far below the 10 s it would sleep
            while "tick" not in looks.seen:
                assert asyncio.get_running_loop().time() < deadline, looks.seen
                await asyncio.sleep(0.05)
            async with engine.db.connection() as conn:
                while not await conn.raw.fetchval("SELECT count(*) FROM events WHERE name = '$cron'"):
                    assert asyncio.get_running_loop().time() < deadline
                    await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 2)  # the stop wakes it too
