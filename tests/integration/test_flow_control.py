"""Each flow-control option over real HTTP, with the decisions visible in the read API."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from datetime import datetime
from typing import Any

import durable_sdk

from tests.harness import AppServer, Engine


class Tracker:
    """Counts, per key, the steps executing at once in the app, and the order runs started."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: dict[str, int] = defaultdict(int)
        self.max: dict[str, int] = defaultdict(int)
        self.started: list[Any] = []

    def work(self, key: str, label: Any, seconds: float) -> Any:
        with self.lock:
            self.now[key] += 1
            self.max[key] = max(self.max[key], self.now[key])
            self.started.append(label)
        time.sleep(seconds)
        with self.lock:
            self.now[key] -= 1
        return label


async def _events(engine: Engine, ws: Any) -> list[dict[str, Any]]:
    response = await engine.api.get(f"/api/apps/{ws.id}/events", params={"limit": 500})
    return list(reversed(response.json()["items"]))


async def test_concurrency_limits_executing_runs_per_key(engine: Engine) -> None:
    tracker = Tracker()

    @durable_sdk.function(id="limited", trigger={"event": "job"}, concurrency={"limit": 2, "key": "tenant"})
    def limited(event, step):  # type: ignore[no-untyped-def]
        tenant = event["data"].get("tenant", "?")
        step.run("one", lambda: tracker.work(tenant, event["data"]["n"], 0.05))
        return step.run("two", lambda: tracker.work(tenant, event["data"]["n"], 0.05))

    # The control: the same work with no limit. Its peak shows the app and workers can overlap more
    # than 2 steps of one key, so a peak of exactly 2 below is the gate's doing, not the harness's.
    @durable_sdk.function(id="free", trigger={"event": "free"})
    def free(event, step):  # type: ignore[no-untyped-def]
        return step.run("one", lambda: tracker.work("free", event["data"]["n"], 0.2))

    ws = await engine.workspace()
    with AppServer([limited, free], ws.signing_key) as app:
        await engine.sync(ws, app.url, [limited, free])
        await engine.start_workers(count=2)
        events = [{"name": "job", "data": {"tenant": t, "n": i}} for i in range(12) for t in ("a", "b")]
        events += [{"name": "job", "data": {"n": 90 + i}} for i in range(8)]  # no tenant: fallback key
        assert (await engine.signed(ws, "/e", events)).status_code == 200

        async def queued_for_a_slot() -> dict[str, Any] | None:
            for run in await engine.runs(ws, activity="queued"):
                view = await engine.run(run["id"])
                if view["flow"] and "concurrency" in view["flow"]:
                    return view
            return None

        view = await engine.wait_for(queued_for_a_slot, what="a run queued behind its concurrency gate")
        assert view["flow"]["concurrency"]["limit"] == 2
        await engine.wait_runs(ws, 32, timeout=30)
        assert (
            await engine.signed(ws, "/e", [{"name": "free", "data": {"n": i}} for i in range(4)])
        ).status_code == 200
        await engine.wait_runs(ws, 36, timeout=30)
    # 12 runs per tenant and 8 without one, each step 50 ms, all sent at once to 2 loops of 32 slots:
    # without the gate each key would peak above 2 (as the ungated control does); with it, exactly 2.
    assert tracker.max["free"] > 2
    assert (tracker.max["a"], tracker.max["b"], tracker.max["?"]) == (2, 2, 2)  # reached, never exceeded


async def test_a_sleeping_or_waiting_run_holds_no_slot(engine: Engine) -> None:
    tracker = Tracker()

    @durable_sdk.function(id="single", trigger={"event": "go"}, concurrency={"limit": 1})
    async def single(event, step):  # type: ignore[no-untyped-def]
        n = event["data"]["n"]
        await step.run("before", lambda: tracker.work("all", ("before", n), 0.01))
        if n == 0:
            await step.wait_for_event("hold", event="release", timeout="1h")
        else:
            await step.sleep("nap", "300ms")
        return await step.run("after", lambda: tracker.work("all", ("after", n), 0.01))

    ws = await engine.workspace()
    with AppServer([single], ws.signing_key) as app:
        await engine.sync(ws, app.url, [single])
        await engine.start_workers()
        await engine.send(ws, "go", {"n": 0})

        async def parked() -> Any:
            return await engine.runs(ws, activity="waiting")

        await engine.wait_for(parked, what="run 0 to wait")
        for n in (1, 2):
            await engine.send(ws, "go", {"n": n})
        await engine.wait_runs(ws, 2, timeout=15)  # runs 1 and 2 finish while run 0 waits
        await engine.send(ws, "release")
        await engine.wait_runs(ws, 3, timeout=15)
    assert tracker.max["all"] == 1
    assert tracker.started.index(("before", 2)) < tracker.started.index(
        ("after", 1)
    )  # 1's sleep freed the slot


async def test_priority_orders_the_queue_and_keeps_fifo_within_a_level(engine: Engine) -> None:
    tracker = Tracker()
    gate_open = threading.Event()

    @durable_sdk.function(
        id="ranked", trigger={"event": "task"}, concurrency={"limit": 1}, priority={"key": "p"}
    )
    def ranked(event, step):  # type: ignore[no-untyped-def]
        n = event["data"]["n"]
        if n == "first":
            step.run("hold", lambda: gate_open.wait(10))
        return step.run("work", lambda: tracker.work("all", n, 0))

    ws = await engine.workspace()
    with AppServer([ranked], ws.signing_key) as app:
        await engine.sync(ws, app.url, [ranked])
        await engine.start_workers()
        await engine.send(ws, "task", {"n": "first", "p": 0})

        async def holding() -> Any:
            return await engine.runs(ws, activity="executing")

        await engine.wait_for(holding, what="the first run to hold the gate")
        batch = [{"name": "task", "data": {"n": f"low{i}", "p": 0}} for i in range(3)]
        batch += [{"name": "task", "data": {"n": f"high{i}", "p": 10}} for i in range(3)]
        batch += [
            {"name": "task", "data": {"n": "mid", "p": 5}},
            {"name": "task", "data": {"n": "bad", "p": "x"}},
        ]
        await engine.signed(ws, "/e", batch)
        gate_open.set()
        await engine.wait_runs(ws, 9, timeout=20)
    assert tracker.started == ["first", "high0", "high1", "high2", "mid", "low0", "low1", "low2", "bad"]


async def test_throttle_spreads_starts_fifo_and_drops_nothing(engine: Engine) -> None:
    @durable_sdk.function(id="paced", trigger={"event": "tick"}, throttle={"limit": 2, "period": "1h"})
    async def paced(event, step):  # type: ignore[no-untyped-def]
        return await step.run("work", lambda: event["data"]["n"])

    ws = await engine.workspace()
    with AppServer([paced], ws.signing_key) as app:
        await engine.sync(ws, app.url, [paced])
        await engine.start_workers()
        await engine.signed(ws, "/e", [{"name": "tick", "data": {"n": i}} for i in range(6)])
        scheduled = await engine.runs(ws, activity="scheduled")
        assert len(scheduled) == 4
        view = await engine.run(scheduled[0]["id"])
        assert view["activity"] == "scheduled" and "until" in view["flow"]["throttle"]
        for done in (2, 4, 6):  # an hour of the moved clock per pair of starts
            await engine.wait_runs(ws, done)
            await asyncio.sleep(0.1)
            assert len(await engine.runs(ws, status="completed")) == done  # the next slot is not yet
            await engine.advance_clock(3_600_000)
        runs = await engine.wait_runs(ws, 6)
    views = [await engine.run(r["id"]) for r in runs]
    starts = sorted((datetime.fromisoformat(v["startedAt"]), v["output"]) for v in views)
    assert [n for _, n in starts][:2] == sorted(n for _, n in starts[:2]) and [n for _, n in starts][2:4] == [
        2,
        3,
    ]
    for at, _ in starts:
        in_window = [s for s, _ in starts if 0 <= (s - at).total_seconds() < 0.95 * 3600]
        assert len(in_window) <= 2
    assert (starts[-1][0] - starts[0][0]).total_seconds() >= 2 * 3600  # 6 starts at 2 per hour


async def test_rate_limit_skips_excess_events_and_says_why(engine: Engine) -> None:
    @durable_sdk.function(
        id="limited", trigger={"event": "signup"}, rate_limit={"limit": 2, "period": "1h", "key": "user"}
    )
    async def limited(event, step):  # type: ignore[no-untyped-def]
        return await step.run("welcome", lambda: event["data"]["user"])

    ws = await engine.workspace()
    with AppServer([limited], ws.signing_key) as app:
        await engine.sync(ws, app.url, [limited])
        await engine.start_workers()
        batch = [{"name": "signup", "data": {"user": "u1", "n": i}} for i in range(5)]
        batch.append({"name": "signup", "data": {"user": "u2"}})
        await engine.signed(ws, "/e", batch)
        await engine.send(ws, "signup", {"user": "u1"})  # a later request is limited too
        await engine.wait_runs(ws, 3)
    events = await _events(engine, ws)
    skipped = [e for e in events if e["outcomes"]]
    assert len(skipped) == 4 and all(len(e["runs"]) == 0 for e in skipped)
    assert all(
        e["outcomes"] == [{"functionId": "limited", "outcome": "skipped", "reason": "rateLimit"}]
        for e in skipped
    )
    assert len(await engine.runs(ws)) == 3


async def test_debounce_runs_once_per_burst_with_the_last_event(engine: Engine) -> None:
    @durable_sdk.function(id="settle", trigger={"event": "edit"}, debounce={"period": "1h", "key": "doc"})
    async def settle(event, step):  # type: ignore[no-untyped-def]
        return await step.run("save", lambda: event["data"])

    ws = await engine.workspace()
    with AppServer([settle], ws.signing_key) as app:
        await engine.sync(ws, app.url, [settle])
        await engine.start_workers()
        for i in range(4):  # 10 minutes apart: each edit postpones the run, none lets it start
            await engine.send(ws, "edit", {"doc": "a", "rev": i})
            await engine.advance_clock(600_000)
        await engine.send(ws, "edit", {"doc": "b", "rev": 0})
        pending = await engine.runs(ws, activity="scheduled")
        assert len(pending) == 2 and "debounce" in (await engine.run(pending[0]["id"]))["flow"]
        await engine.advance_clock(2_400_000)  # 50 min after a's last edit, 40 after b's: settling
        await asyncio.sleep(0.1)
        assert len(await engine.runs(ws, activity="scheduled")) == 2
        await engine.advance_clock(1_200_000)  # an hour after b's edit
        runs = await engine.wait_runs(ws, 2)
    views = [await engine.run(r["id"]) for r in runs]
    outputs = sorted([v["output"] for v in views], key=lambda d: d["doc"])
    assert outputs == [{"doc": "a", "rev": 3}, {"doc": "b", "rev": 0}]
    a_run = next(v for v in views if v["output"]["doc"] == "a")
    outcomes = [e["outcomes"] for e in await _events(engine, ws) if e["data"]["doc"] == "a"]
    assert all(
        o == [{"functionId": "settle", "outcome": "debounced", "runId": a_run["id"]}] for o in outcomes
    )


async def test_debounce_timeout_caps_the_postponement(engine: Engine) -> None:
    @durable_sdk.function(id="capped", trigger={"event": "ping"}, debounce={"period": "10m", "timeout": "1h"})
    async def capped(event, step):  # type: ignore[no-untyped-def]
        return await step.run("save", lambda: event["data"]["i"])

    ws = await engine.workspace()
    with AppServer([capped], ws.signing_key) as app:
        await engine.sync(ws, app.url, [capped])
        await engine.start_workers()
        first_ms = await engine.db.fetchval("clock_now_ms")
        for i in range(12):  # a steady stream, every 5 min, each postponing the run by 10 min
            await engine.send(ws, "ping", {"i": i})
            await engine.advance_clock(300_000)
        # The clock is now 1 h after the first ping: without the cap the run would wait 5 more minutes.
        [first] = await engine.wait_runs(ws, 1)
        await engine.send(ws, "ping", {"i": 12})  # after the capped run started: a new run
        await engine.advance_clock(600_000)
        runs = await engine.wait_runs(ws, 2)
    view = await engine.run(first["id"])
    assert view["output"] == 11
    started_ms = datetime.fromisoformat(view["startedAt"]).timestamp() * 1000
    assert 3_600_000 <= started_ms - first_ms < 3_900_000  # the timeout capped the postponement
    assert sorted([(await engine.run(r["id"]))["output"] for r in runs]) == [11, 12]


async def test_batch_groups_events_by_size_or_timeout(engine: Engine) -> None:
    @durable_sdk.function(
        id="bulk", trigger={"event": "item"}, batch={"max_size": 3, "timeout": "1h", "key": "list"}
    )
    async def bulk(event, step):  # type: ignore[no-untyped-def]
        return await step.run("sum", lambda: [e["data"]["n"] for e in event["data"]])

    ws = await engine.workspace()
    with AppServer([bulk], ws.signing_key) as app:
        await engine.sync(ws, app.url, [bulk])
        await engine.start_workers()
        await engine.signed(ws, "/e", [{"name": "item", "data": {"list": "x", "n": i}} for i in range(4)])
        for i in range(4, 7):
            await engine.send(ws, "item", {"list": "x", "n": i})
        await engine.send(ws, "item", {"list": "y", "n": 100})
        await engine.wait_runs(ws, 2)  # the full batches start at once
        assert len(await engine.runs(ws, activity="scheduled")) == 2  # the others wait for the timeout
        await engine.advance_clock(3_600_000)
        runs = await engine.wait_runs(ws, 4)
    views = [await engine.run(r["id"]) for r in runs]
    assert sorted(v["output"] for v in views) == [[0, 1, 2], [3, 4, 5], [6], [100]]
    view = next(v for v in views if v["output"] == [0, 1, 2])
    assert [e["id"] for e in view["event"]["data"]] == [e["id"] for e in (await _events(engine, ws))[:3]]
    assert all(e["outcomes"][0]["outcome"] == "batched" for e in await _events(engine, ws))


async def test_combinations_that_mean_nothing_are_refused_at_sync(engine: Engine) -> None:
    ws = await engine.workspace()
    bad = {
        "id": "f",
        "trigger": {"event": "e"},
        "batch": {"maxSize": 2, "timeout": "1s"},
        "debounce": {"period": "1s"},
    }
    response = await engine.signed(ws, "/fn/sync", {"url": "http://127.0.0.1:9/x", "functions": [bad]})
    assert response.status_code == 400
    message = response.json()["error"]
    assert "function 'f'" in message and "batch" in message and "debounce" in message
