"""Every op and primitive over real HTTP: sleep, wait (match, timeout, look-back), errors, ids."""

from __future__ import annotations

import asyncio
import threading

import durable_sdk

from tests.harness import AppServer, Engine, Workspace


async def _activity(engine: Engine, ws: Workspace, activity: str) -> bool:
    return bool(await engine.runs(ws, status="active", activity=activity))


async def test_sleep_parks_the_run_then_resumes(engine: Engine) -> None:
    @durable_sdk.function(id="napper", trigger={"event": "nap"})
    async def napper(event, step):  # type: ignore[no-untyped-def]
        await step.run("before", lambda: 1)
        await step.sleep("nap", "1h")
        return await step.run("after", lambda: 2)

    ws = await engine.workspace()
    with AppServer([napper], ws.signing_key) as app:
        await engine.sync(ws, app.url, [napper])
        await engine.start_workers()
        await engine.send(ws, "nap")

        async def sleeping():  # type: ignore[no-untyped-def]
            runs = await engine.runs(ws)
            return runs and runs[0]["activity"] == "sleeping"

        await engine.wait_for(sleeping, what="the run to sleep")
        await asyncio.sleep(0.2)
        assert await sleeping()  # parked: nothing drives it before its end
        await engine.advance_clock(3_600_000)
        [summary] = await engine.wait_runs(ws, 1)
    run = await engine.run(summary["id"])
    assert [(s["id"], s["type"], s["status"]) for s in run["steps"]] == [
        ("before", "run", "completed"),
        ("nap", "sleep", "completed"),
        ("after", "run", "completed"),
    ]
    assert 3_600_000 <= run["steps"][1]["queuedMs"] < 3_660_000  # the durable time of the sleep
    assert run["output"] == 2


def _approval_function(timeout: str = "1h"):  # type: ignore[no-untyped-def]
    @durable_sdk.function(id="approval", trigger={"event": "order.placed"})
    async def approval(event, step):  # type: ignore[no-untyped-def]
        decision = await step.wait_for_event(
            "approve", event="approval.received", match={"orderId": event["data"]["orderId"]}, timeout=timeout
        )
        return {"approved": decision is not None, "by": decision and decision["data"].get("by")}

    return approval


async def test_wait_resumes_with_the_matching_event_only(engine: Engine) -> None:
    approval = _approval_function()
    ws = await engine.workspace()
    with AppServer([approval], ws.signing_key) as app:
        await engine.sync(ws, app.url, [approval])
        await engine.start_workers()
        await engine.send(ws, "order.placed", {"orderId": "o1"})

        async def waiting():  # type: ignore[no-untyped-def]
            runs = await engine.runs(ws, status="active")
            return runs and runs[0]["activity"] == "waiting"

        await engine.wait_for(waiting, what="the run to wait")
        await engine.send(ws, "approval.received", {"orderId": "o2", "by": "eve"})  # another order
        await engine.send(ws, "other.event", {"orderId": "o1"})  # another name
        await asyncio.sleep(0.3)
        assert await waiting()
        match_id = await engine.send(
            ws, "approval.received", {"orderId": "o1", "by": "bob"}, ts=1767225600000
        )
        [summary] = await engine.wait_runs(ws, 1)
    run = await engine.run(summary["id"])
    assert run["output"] == {"approved": True, "by": "bob"}
    [wait] = run["steps"]
    assert wait["type"] == "wait" and wait["status"] == "completed"
    assert wait["output"] == {
        "id": match_id,
        "name": "approval.received",
        "data": {"orderId": "o1", "by": "bob"},
        "ts": 1767225600000,
    }


async def test_wait_times_out_with_null(engine: Engine) -> None:
    approval = _approval_function(timeout="1h")
    ws = await engine.workspace()
    with AppServer([approval], ws.signing_key) as app:
        await engine.sync(ws, app.url, [approval])
        await engine.start_workers()
        await engine.send(ws, "order.placed", {"orderId": "o1"})

        async def waiting():  # type: ignore[no-untyped-def]
            runs = await engine.runs(ws, status="active")
            return runs and runs[0]["activity"] == "waiting"

        await engine.wait_for(waiting, what="the run to wait")
        await engine.advance_clock(3_600_000)
        [summary] = await engine.wait_runs(ws, 1)
    run = await engine.run(summary["id"])
    assert run["output"] == {"approved": False, "by": None}
    assert run["steps"][0]["output"] is None and run["steps"][0]["status"] == "completed"
    # A late matching event resumes nothing.
    await engine.send(ws, "approval.received", {"orderId": "o1"})
    assert (await engine.run(summary["id"]))["steps"][0]["output"] is None


async def test_wait_sees_an_event_that_arrived_while_its_invoke_was_in_flight(engine: Engine) -> None:
    reached = threading.Event()
    proceed = threading.Event()

    @durable_sdk.function(id="racer", trigger={"event": "race.start"})
    def racer(event, step):  # type: ignore[no-untyped-def]
        step.run("prepare", lambda: "ok")
        reached.set()  # this invoke is about to answer `wait`
        assert proceed.wait(10)
        got = step.wait_for_event("go", event="race.go", match=None, timeout="1h")
        return got["data"]["n"] if got else None

    ws = await engine.workspace()
    with AppServer([racer], ws.signing_key) as app:
        await engine.sync(ws, app.url, [racer])
        await engine.start_workers()
        await engine.send(ws, "race.start")
        assert await asyncio.to_thread(reached.wait, 10)
        await engine.send(ws, "race.go", {"n": 7})  # stored before the wait op is
        proceed.set()
        [summary] = await engine.wait_runs(ws, 1, timeout=5)
    assert (await engine.run(summary["id"]))["output"] == 7


async def test_retryable_error_retries_the_step_with_backoff(engine: Engine) -> None:
    attempts: list[int] = []

    @durable_sdk.function(id="flaky", trigger={"event": "flaky"})
    async def flaky(event, step):  # type: ignore[no-untyped-def]
        def call() -> str:
            attempts.append(1)
            if len(attempts) == 1:
                raise RuntimeError("upstream 503")
            return "fine"

        return await step.run("call", call)

    ws = await engine.workspace()
    with AppServer([flaky], ws.signing_key) as app:
        await engine.sync(ws, app.url, [flaky])
        await engine.start_workers()
        await engine.send(ws, "flaky")
        await engine.wait_for(lambda: _activity(engine, ws, "scheduled"), what="the retry's backoff")
        assert len(attempts) == 1  # the retry waits for its backoff
        await engine.advance_clock(1_000)  # the first backoff is under 1 s
        [summary] = await engine.wait_runs(ws, 1)
    run = await engine.run(summary["id"])
    assert run["output"] == "fine" and run["error"] is None
    [step] = run["steps"]
    assert step["attempts"] == 2 and step["status"] == "completed" and step["error"] is None
    assert len(attempts) == 2


async def test_out_of_attempts_fails_the_run_naming_the_error(engine: Engine) -> None:

    @durable_sdk.function(id="doomed", trigger={"event": "doom"}, retries=1)
    async def doomed(event, step):  # type: ignore[no-untyped-def]
        def call() -> None:
            raise RuntimeError("boom")

        return await step.run("call", call)

    ws = await engine.workspace()
    with AppServer([doomed], ws.signing_key) as app:
        await engine.sync(ws, app.url, [doomed])
        await engine.start_workers()
        await engine.send(ws, "doom")
        await engine.wait_for(lambda: _activity(engine, ws, "scheduled"), what="the retry's backoff")
        await engine.advance_clock(1_000)
        [summary] = await engine.wait_runs(ws, 1, status="failed")
    run = await engine.run(summary["id"])
    assert "boom" in run["error"]["message"] and "2 attempts" in run["error"]["message"]
    [step] = run["steps"]
    assert step["status"] == "failed" and step["attempts"] == 2 and "boom" in step["error"]["message"]


async def test_non_retryable_error_fails_at_once(engine: Engine) -> None:
    calls: list[int] = []

    @durable_sdk.function(id="fatal", trigger={"event": "fatal"})
    async def fatal(event, step):  # type: ignore[no-untyped-def]
        def call() -> None:
            calls.append(1)
            raise durable_sdk.NonRetryableError("card declined")

        return await step.run("charge", call)

    ws = await engine.workspace()
    with AppServer([fatal], ws.signing_key) as app:
        await engine.sync(ws, app.url, [fatal])
        await engine.start_workers()
        await engine.send(ws, "fatal")
        [summary] = await engine.wait_runs(ws, 1, status="failed")
    run = await engine.run(summary["id"])
    assert run["error"]["message"] == "card declined"
    assert run["steps"][0]["attempts"] == 1 and calls == [1]


async def test_repeated_step_ids_are_suffixed(engine: Engine) -> None:
    @durable_sdk.function(id="looper", trigger={"event": "loop"})
    async def looper(event, step):  # type: ignore[no-untyped-def]
        total = 0
        for i in range(3):
            total += await step.run("fetch", lambda i=i: i * 10)
        return total

    ws = await engine.workspace()
    with AppServer([looper], ws.signing_key) as app:
        await engine.sync(ws, app.url, [looper])
        await engine.start_workers()
        await engine.send(ws, "loop")
        [summary] = await engine.wait_runs(ws, 1)
    run = await engine.run(summary["id"])
    assert [s["id"] for s in run["steps"]] == ["fetch", "fetch:1", "fetch:2"]
    assert run["output"] == 30


async def test_a_run_of_a_function_removed_by_sync_fails_with_a_clear_error(engine: Engine) -> None:
    ws = await engine.workspace()
    await engine.sync(ws, "http://127.0.0.1:9/x", [{"id": "gone", "trigger": {"event": "e"}}])
    await engine.send(ws, "e")
    await engine.sync(ws, "http://127.0.0.1:9/x", [])
    await engine.start_workers()
    [run] = await engine.wait_runs(ws, 1, status="failed")
    assert "'gone' is no longer registered" in run["error"]["message"]
