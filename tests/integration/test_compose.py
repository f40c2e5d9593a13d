"""Composition over real HTTP (docs/protocol.md, "Composition"): invoke, send, parallel steps, failure
handlers, cancel-on-event, idempotency, singleton and paused functions, each checked through the API
and against what the app really executed."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import durable_sdk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import AppServer, Engine, Workspace


def _wires(functions: list[Any]) -> list[Any]:
    """What the SDK's client syncs: each function and its generated failure handler."""
    return [w for f in functions for w in (f.wire, *([f.failure.wire] if f.failure is not None else []))]


async def _sync(engine: Engine, ws: Workspace, url: str, functions: list[Any]) -> None:
    response = await engine.signed(ws, "/fn/sync", {"url": url, "functions": _wires(functions)})
    assert response.status_code == 200, response.text


async def _one(engine: Engine, ws: Workspace, function_id: str, status: str = "completed") -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        runs = [r for r in await engine.runs(ws, status=status) if r["functionId"] == function_id]
        return runs[0] if runs else None

    summary = await engine.wait_for(found, what=f"a {status} run of {function_id}")
    return await engine.run(summary["id"])


async def test_invoke_returns_the_childs_output_and_links_both_runs(engine: Engine) -> None:
    executed: list[str] = []

    @durable_sdk.function(id="charge", trigger=None)
    async def charge(event, step):  # type: ignore[no-untyped-def]
        return await step.run("card", lambda: executed.append("card") or {"charged": event["data"]["amount"]})

    @durable_sdk.function(id="order", trigger={"event": "order.paid"})
    async def order(event, step):  # type: ignore[no-untyped-def]
        result = await step.invoke(
            "pay", function=charge, data={"amount": event["data"]["amount"]}, timeout="1h"
        )
        return await step.run("receipt", lambda: executed.append("receipt") or {"paid": result})

    ws = await engine.workspace()
    with AppServer([order, charge], ws.signing_key) as app:
        await _sync(engine, ws, app.url, [order, charge])
        await engine.start_workers()
        await engine.send(ws, "order.paid", {"amount": [1, 2, 3]})
        parent = await _one(engine, ws, "order")
    child = await _one(engine, ws, "charge")
    assert parent["output"] == {"paid": {"charged": [1, 2, 3]}}
    assert executed == ["card", "receipt"]  # each step executed once
    assert child["parentRunId"] == parent["id"]
    assert child["event"]["name"] == "durable/function.invoked" and child["event"]["data"] == {
        "amount": [1, 2, 3]
    }
    assert [(c["runId"], c["stepId"]) for c in parent["children"]] == [(child["id"], "pay")]
    pay = next(s for s in parent["steps"] if s["id"] == "pay")
    assert (
        pay["type"] == "invoke" and pay["status"] == "completed" and pay["output"] == {"charged": [1, 2, 3]}
    )


async def test_a_failed_child_raises_a_catchable_invoke_error(engine: Engine) -> None:
    @durable_sdk.function(id="flaky", trigger=None, retries=0)
    async def flaky(event, step):  # type: ignore[no-untyped-def]
        raise durable_sdk.NonRetryableError("card declined")

    @durable_sdk.function(id="caller", trigger={"event": "go"})
    async def caller(event, step):  # type: ignore[no-untyped-def]
        try:
            await step.invoke("try", function="flaky", data={})
        except durable_sdk.InvokeError as exc:
            return {"reason": exc.reason, "message": exc.message, "child": exc.run_id}
        return "unreachable"

    ws = await engine.workspace()
    with AppServer([caller, flaky], ws.signing_key) as app:
        await _sync(engine, ws, app.url, [caller, flaky])
        await engine.start_workers()
        await engine.send(ws, "go")
        parent = await _one(engine, ws, "caller")
    child = await _one(engine, ws, "flaky", status="failed")
    assert parent["output"] == {"reason": "failed", "message": "card declined", "child": child["id"]}


async def test_an_unknown_function_is_a_not_found_invoke_error(engine: Engine) -> None:
    @durable_sdk.function(id="caller", trigger={"event": "go"})
    async def caller(event, step):  # type: ignore[no-untyped-def]
        try:
            await step.invoke("try", function="nobody", data={})
        except durable_sdk.InvokeError as exc:
            return [exc.reason, exc.run_id]
        return "unreachable"

    ws = await engine.workspace()
    with AppServer([caller], ws.signing_key) as app:
        await _sync(engine, ws, app.url, [caller])
        await engine.start_workers()
        await engine.send(ws, "go")
        parent = await _one(engine, ws, "caller")
    assert parent["output"] == ["not_found", None]


async def test_the_invoke_timeout_and_the_childs_end_race_and_exactly_one_wins(engine: Engine) -> None:
    """The child is held at its step until the parent's deadline has passed on the database clock; then
    both the deadline (claiming the parent) and the child's end (resolving its step) compete. Whichever
    wins, the parent sees exactly one outcome and its handler runs past the invoke exactly once."""
    release = threading.Event()
    outcomes: list[Any] = []

    @durable_sdk.function(id="slow", trigger=None)
    async def slow(event, step):  # type: ignore[no-untyped-def]
        await step.run("work", lambda: release.wait(10) and "done")
        return "child output"

    @durable_sdk.function(id="parent", trigger={"event": "go"})
    async def parent(event, step):  # type: ignore[no-untyped-def]
        try:
            got: Any = await step.invoke("call", function="slow", data={}, timeout="1m")
        except durable_sdk.InvokeError as exc:
            got = exc.reason
        return await step.run("after", lambda: outcomes.append(got) or got)

    ws = await engine.workspace()
    with AppServer([parent, slow], ws.signing_key) as app:
        await _sync(engine, ws, app.url, [parent, slow])
        await engine.start_workers(capacity=8)
        await engine.send(ws, "go")
        await engine.wait_for(lambda: _has_activity(engine, ws, "waiting"), what="the parent to park")
        await engine.advance_clock(61_000)  # the deadline passes while the child is mid-step
        release.set()
        finished = await _one(engine, ws, "parent")
        await _one(engine, ws, "slow")
    assert outcomes in (["timeout"], ["child output"])
    assert finished["output"] == outcomes[0]
    call = next(s for s in finished["steps"] if s["id"] == "call")
    assert call["status"] == "completed"


async def _has_activity(engine: Engine, ws: Workspace, activity: str) -> bool:
    return bool(await engine.runs(ws, status="active", activity=activity))


async def test_cancelling_the_parent_cancels_its_unfinished_children(engine: Engine) -> None:
    @durable_sdk.function(id="sleeper", trigger=None)
    async def sleeper(event, step):  # type: ignore[no-untyped-def]
        await step.sleep("long", "1d")
        return "woke"

    @durable_sdk.function(id="boss", trigger={"event": "go"})
    async def boss(event, step):  # type: ignore[no-untyped-def]
        return await step.invoke("kid", function="sleeper", data={})

    ws = await engine.workspace()
    with AppServer([boss, sleeper], ws.signing_key) as app:
        await _sync(engine, ws, app.url, [boss, sleeper])
        await engine.start_workers()
        await engine.send(ws, "go")
        await engine.wait_for(lambda: _has_activity(engine, ws, "sleeping"), what="the child to sleep")
        [parent] = [r for r in await engine.runs(ws) if r["functionId"] == "boss"]
        response = await engine.api.post(f"/api/runs/{parent['id']}/cancel")
        assert response.status_code == 200, response.text
        child = await _one(engine, ws, "sleeper", status="cancelled")
    assert child["cancelledBy"] == {"kind": "parent", "runId": parent["id"]}
    assert (await engine.run(parent["id"]))["status"] == "cancelled"


async def test_send_event_is_memoized_and_triggers_functions(engine: Engine) -> None:
    replays: list[int] = []

    @durable_sdk.function(id="fanout", trigger={"event": "go"})
    async def fanout(event, step):  # type: ignore[no-untyped-def]
        replays.append(1)
        ids = await step.send_event("tell", [{"name": "told", "data": {"n": i}} for i in range(3)])
        await step.run("after", lambda: len(ids))
        return ids

    @durable_sdk.function(id="listener", trigger={"event": "told"})
    async def listener(event, step):  # type: ignore[no-untyped-def]
        return event["data"]["n"]

    ws = await engine.workspace()
    with AppServer([fanout, listener], ws.signing_key) as app:
        await _sync(engine, ws, app.url, [fanout, listener])
        await engine.start_workers()
        await engine.send(ws, "go")
        run = await _one(engine, ws, "fanout")
        listeners = await engine.wait_runs(ws, 4)  # fanout + three listeners
    assert len(run["output"]) == 3
    events = (await engine.api.get(f"/api/apps/{ws.id}/events", params={"limit": 50})).json()["items"]
    told = [e for e in events if e["name"] == "told"]
    assert sorted(e["id"] for e in told) == sorted(run["output"])  # sent once, despite the replays
    assert len(replays) == 2  # the send; then `after` and the return, one checkpoint
    assert sorted(r["output"] for r in await asyncio.gather(*(engine.run(x["id"]) for x in listeners))
                  if r["functionId"] == "listener") == [0, 1, 2]  # fmt: skip


async def test_parallel_steps_execute_in_one_invoke(engine: Engine) -> None:
    invokes: list[int] = []
    started: dict[str, float] = {}

    async def branch(name: str) -> str:
        started[name] = time.monotonic()
        await asyncio.sleep(0.3)
        return name

    @durable_sdk.function(id="fan", trigger={"event": "go"})
    async def fan(event, step):  # type: ignore[no-untyped-def]
        invokes.append(1)
        a, b = await asyncio.gather(step.run("a", lambda: branch("a")), step.run("b", lambda: branch("b")))
        return [a, b]

    ws = await engine.workspace()
    with AppServer([fan], ws.signing_key) as app:
        await _sync(engine, ws, app.url, [fan])
        await engine.start_workers()
        await engine.send(ws, "go")
        run = await _one(engine, ws, "fan")
    assert run["output"] == ["a", "b"]
    assert len(invokes) == 2  # both branches in the first invoke, done in the second
    assert abs(started["a"] - started["b"]) < 0.25  # concurrently, not one after the other
    assert {s["id"] for s in run["steps"]} == {"a", "b"}


async def test_on_failure_runs_once_the_run_failed_for_good(engine: Engine) -> None:
    async def notify(event, step):  # type: ignore[no-untyped-def]
        return await step.run("page", lambda: event["data"])

    @durable_sdk.function(id="doomed", trigger={"event": "go"}, retries=1, on_failure=notify)
    async def doomed(event, step):  # type: ignore[no-untyped-def]
        await step.run("explode", lambda: 1 / 0)

    ws = await engine.workspace()
    with AppServer([doomed], ws.signing_key) as app:
        await _sync(engine, ws, app.url, [doomed])
        await engine.start_workers()
        await engine.send(ws, "go", {"order": 7})
        failed = await _one(engine, ws, "doomed", status="failed")
        await engine.advance_clock(600_000)  # past the retry's backoff
        handler = await _one(engine, ws, "doomed:failure")
    assert handler["event"]["name"] == "durable/run.failed"
    data = handler["output"]
    assert data["runId"] == failed["id"] and data["functionId"] == "doomed"
    assert data["event"]["data"] == {"order": 7}
    assert "division by zero" in data["error"]["message"]


async def test_cancel_on_cancels_a_waiting_run_with_the_matching_key_only(engine: Engine) -> None:
    @durable_sdk.function(
        id="ship",
        trigger={"event": "order.paid"},
        cancel_on=[{"event": "order.cancelled", "match": "order.id"}],
    )
    async def ship(event, step):  # type: ignore[no-untyped-def]
        return await step.wait_for_event("approve", event="approved", timeout="1d")

    ws = await engine.workspace()
    with AppServer([ship], ws.signing_key) as app:
        await _sync(engine, ws, app.url, [ship])
        await engine.start_workers()
        for oid in ("o1", "o2"):
            await engine.send(ws, "order.paid", {"order": {"id": oid}})

        async def both_waiting() -> bool:
            return len(await engine.runs(ws, status="active", activity="waiting")) == 2

        await engine.wait_for(both_waiting, what="both runs to wait")
        cancel_id = await engine.send(ws, "order.cancelled", {"order": {"id": "o1", "extra": True}})
        cancelled = await _one(engine, ws, "ship", status="cancelled")
    assert cancelled["event"]["data"] == {"order": {"id": "o1"}}
    assert cancelled["cancelledBy"] == {"kind": "event", "eventId": cancel_id, "eventName": "order.cancelled"}
    events = (await engine.api.get(f"/api/apps/{ws.id}/events")).json()["items"]
    [stop] = [e for e in events if e["id"] == cancel_id]
    assert stop["outcomes"] == [{"outcome": "cancelled", "runId": cancelled["id"], "functionId": "ship"}]
    [other] = await engine.runs(ws, status="active")
    assert other["id"] != cancelled["id"]


async def test_a_cancel_racing_a_step_leaves_nothing_stored_after_the_cancel(engine: Engine) -> None:
    """The cancel event arrives while the app executes a step; the step's answer comes back after the
    cancel committed: the run stays cancelled and the late step is not stored."""
    inside = threading.Event()
    release = threading.Event()

    @durable_sdk.function(id="busy", trigger={"event": "go"}, cancel_on=[{"event": "stop"}])
    async def busy(event, step):  # type: ignore[no-untyped-def]
        def work() -> str:
            inside.set()
            release.wait(10)
            return "late"

        await step.run("work", lambda: asyncio.to_thread(work))
        return "finished"

    ws = await engine.workspace()
    with AppServer([busy], ws.signing_key) as app:
        await _sync(engine, ws, app.url, [busy])
        await engine.start_workers()
        await engine.send(ws, "go")
        await asyncio.to_thread(inside.wait, 10)
        await engine.send(ws, "stop")
        cancelled = await _one(engine, ws, "busy", status="cancelled")
        release.set()
        await asyncio.sleep(0.5)  # the late answer arrives and is refused (fenced on the lease)
    run = await engine.run(cancelled["id"])
    assert run["status"] == "cancelled"
    assert [s for s in run["steps"] if s["status"] == "completed"] == []


async def test_idempotency_creates_one_run_per_key_and_says_why(engine: Engine) -> None:
    @durable_sdk.function(id="once", trigger={"event": "pay"}, idempotency="orderId")
    async def once(event, step):  # type: ignore[no-untyped-def]
        return event["data"]["orderId"]

    @durable_sdk.function(id="keyed", trigger={"event": "pay"})
    async def keyed(event, step):  # type: ignore[no-untyped-def]
        return "keyed"

    ws = await engine.workspace()
    with AppServer([once, keyed], ws.signing_key) as app:
        await _sync(engine, ws, app.url, [once, keyed])
        await engine.start_workers()
        await engine.send(ws, "pay", {"orderId": "a"}, idempotencyKey="k1")
        await engine.send(ws, "pay", {"orderId": "a"}, idempotencyKey="k1")
        await engine.send(ws, "pay", {"orderId": "b"}, idempotencyKey="k2")
        await engine.wait_runs(ws, 4)
        await asyncio.sleep(0.2)
    runs = await engine.runs(ws)
    assert sorted((r["functionId"]) for r in runs) == ["keyed", "keyed", "once", "once"]
    events = (await engine.api.get(f"/api/apps/{ws.id}/events")).json()["items"]
    skipped = [o for e in events for o in e["outcomes"] if o.get("reason") == "idempotency"]
    assert sorted(o["functionId"] for o in skipped) == ["keyed", "once"]
    await engine.advance_clock(24 * 3600 * 1000 + 1000)  # the key holds for 24 h
    await engine.send(ws, "pay", {"orderId": "a"}, idempotencyKey="k1")
    assert len(await engine.runs(ws)) == 6


async def test_singleton_skip_and_cancel(engine: Engine) -> None:
    @durable_sdk.function(id="solo", trigger={"event": "s"}, singleton={"key": "user", "mode": "skip"})
    async def solo(event, step):  # type: ignore[no-untyped-def]
        await step.sleep("hold", "1h")

    @durable_sdk.function(id="latest", trigger={"event": "l"}, singleton={"key": "user", "mode": "cancel"})
    async def latest(event, step):  # type: ignore[no-untyped-def]
        await step.sleep("hold", "1h")

    ws = await engine.workspace()
    with AppServer([solo, latest], ws.signing_key) as app:
        await _sync(engine, ws, app.url, [solo, latest])
        await engine.start_workers()
        for name in ("s", "l"):
            await engine.send(ws, name, {"user": "u1"})
        await engine.wait_for(lambda: _count(engine, ws, 2, activity="sleeping"), what="two sleeping runs")
        for name in ("s", "l"):
            await engine.send(ws, name, {"user": "u1"})
        await engine.send(ws, "s", {"user": "u2"})
        await engine.wait_for(lambda: _count(engine, ws, 3, activity="sleeping"), what="three sleeping runs")
    runs = await engine.runs(ws)
    solo_runs = [r for r in runs if r["functionId"] == "solo"]
    latest_runs = sorted((r for r in runs if r["functionId"] == "latest"), key=lambda r: r["id"])
    assert len(solo_runs) == 2  # u1 skipped once, u2 started
    assert [r["status"] for r in latest_runs] == ["cancelled", "active"]
    old = await engine.run(latest_runs[0]["id"])
    assert old["cancelledBy"] == {"kind": "singleton", "runId": latest_runs[1]["id"]}


async def _count(engine: Engine, ws: Workspace, n: int, **params: Any) -> bool:
    return len(await engine.runs(ws, status="active", **params)) == n


async def test_a_paused_function_holds_new_runs_until_resumed(engine: Engine) -> None:
    @durable_sdk.function(id="held", trigger={"event": "h"})
    async def held(event, step):  # type: ignore[no-untyped-def]
        return event["data"]["n"]

    ws = await engine.workspace()
    with AppServer([held], ws.signing_key) as app:
        await _sync(engine, ws, app.url, [held])
        await engine.start_workers()
        paused = await engine.api.post(f"/api/apps/{ws.id}/functions/held/pause", json={"mode": "queue"})
        assert paused.status_code == 200, paused.text
        await engine.send(ws, "h", {"n": 1})
        await asyncio.sleep(0.3)
        [run] = await engine.runs(ws)
        assert (run["status"], run["activity"]) == ("active", "scheduled")
        assert "paused" in run["flow"]
        skip = await engine.api.post(f"/api/apps/{ws.id}/functions/held/pause", json={"mode": "skip"})
        assert skip.status_code == 200, skip.text
        await engine.send(ws, "h", {"n": 2})
        resumed = await engine.api.post(f"/api/apps/{ws.id}/functions/held/resume")
        assert resumed.status_code == 200, resumed.text
        [done] = await engine.wait_runs(ws, 1)
    assert (await engine.run(done["id"]))["output"] == 1
    events = (await engine.api.get(f"/api/apps/{ws.id}/events")).json()["items"]
    assert [o["reason"] for e in events for o in e["outcomes"] if o.get("outcome") == "skipped"] == ["paused"]


async def test_cancel_on_reaches_sleeping_and_gated_runs_and_ends_at_its_timeout(engine: Engine) -> None:
    """A sleeping run and one queued behind its concurrency gate are cancelled by a matching event; a run
    whose cancelOn timeout passed is not."""
    release = threading.Event()

    @durable_sdk.function(
        id="gated",
        trigger={"event": "start"},
        concurrency={"limit": 1},
        cancel_on=[{"event": "stop", "match": "k", "timeout": "1h"}],
    )
    async def gated(event, step):  # type: ignore[no-untyped-def]
        if event["data"]["k"] == "holder":
            await step.run("hold", lambda: asyncio.to_thread(release.wait, 10))
        await step.sleep("nap", "1d")

    ws = await engine.workspace()
    with AppServer([gated], ws.signing_key) as app:
        await _sync(engine, ws, app.url, [gated])
        await engine.start_workers()
        await engine.send(ws, "start", {"k": "holder"})
        await engine.wait_for(lambda: _has_activity(engine, ws, "executing"), what="the holder to run")
        await engine.send(ws, "start", {"k": "queued"})
        await engine.wait_for(
            lambda: _has_activity(engine, ws, "queued"), what="a run queued behind the gate"
        )
        await engine.send(ws, "stop", {"k": "queued"})
        queued = await _one(engine, ws, "gated", status="cancelled")
        assert queued["event"]["data"] == {"k": "queued"}
        release.set()
        await engine.wait_for(lambda: _has_activity(engine, ws, "sleeping"), what="the holder to sleep")
        await engine.send(ws, "start", {"k": "late"})
        await engine.wait_for(lambda: _count(engine, ws, 2, activity="sleeping"), what="two sleeping runs")
        await engine.send(ws, "stop", {"k": "holder"})  # sleeping: cancelled

        async def two_cancelled() -> bool:
            return len(await engine.runs(ws, status="cancelled")) == 2

        await engine.wait_for(two_cancelled, what="the sleeping run to be cancelled")
        await engine.advance_clock(3_600_000 + 1000)  # past the cancelOn timeout of "late"
        await engine.send(ws, "stop", {"k": "late"})
        await asyncio.sleep(0.3)
    [late] = await engine.runs(ws, status="active")
    assert (await engine.run(late["id"]))["event"]["data"] == {"k": "late"}


async def test_a_sent_event_resumes_a_waiting_run(engine: Engine) -> None:
    @durable_sdk.function(id="waiter", trigger={"event": "order"})
    async def waiter(event, step):  # type: ignore[no-untyped-def]
        got = await step.wait_for_event(
            "ok", event="approved", match={"id": event["data"]["id"]}, timeout="1d"
        )
        return got and got["data"]

    @durable_sdk.function(id="approver", trigger={"event": "approve"})
    async def approver(event, step):  # type: ignore[no-untyped-def]
        return await step.send_event(
            "tell", {"name": "approved", "data": {"id": event["data"]["id"], "by": "bot"}}
        )

    ws = await engine.workspace()
    with AppServer([waiter, approver], ws.signing_key) as app:
        await _sync(engine, ws, app.url, [waiter, approver])
        await engine.start_workers()
        await engine.send(ws, "order", {"id": 5})
        await engine.wait_for(lambda: _has_activity(engine, ws, "waiting"), what="the run to wait")
        await engine.send(ws, "approve", {"id": 5})
        resumed = await _one(engine, ws, "waiter")
    assert resumed["output"] == {"id": 5, "by": "bot"}
    events = (await engine.api.get(f"/api/apps/{ws.id}/events")).json()["items"]
    [approved] = [e for e in events if e["name"] == "approved"]
    assert approved["outcomes"] == [{"outcome": "resumed", "runId": resumed["id"], "functionId": "waiter"}]


async def test_cancelling_a_child_resolves_its_parent_with_a_cancelled_error(engine: Engine) -> None:
    @durable_sdk.function(id="kid", trigger=None)
    async def kid(event, step):  # type: ignore[no-untyped-def]
        await step.sleep("long", "1d")

    @durable_sdk.function(id="mom", trigger={"event": "go"})
    async def mom(event, step):  # type: ignore[no-untyped-def]
        try:
            return await step.invoke("call", function=kid, data={})
        except durable_sdk.InvokeError as exc:
            return exc.reason

    ws = await engine.workspace()
    with AppServer([mom, kid], ws.signing_key) as app:
        await _sync(engine, ws, app.url, [mom, kid])
        await engine.start_workers()
        await engine.send(ws, "go")
        await engine.wait_for(lambda: _has_activity(engine, ws, "sleeping"), what="the child to sleep")
        [child] = await engine.runs(ws, status="active", activity="sleeping")
        assert (await engine.api.post(f"/api/runs/{child['id']}/cancel")).status_code == 200
        parent = await _one(engine, ws, "mom")
    assert parent["output"] == "cancelled"


_KEYS = st.sampled_from(["a", "b", "c"])
_ARRIVALS = st.lists(st.lists(_KEYS, min_size=1, max_size=4), min_size=1, max_size=5)  # batches of keys


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrivals=_ARRIVALS)
async def test_keys_hold_for_any_arrival_order(engine: Engine, arrivals: list[list[str]]) -> None:
    """Events with keys arriving in any order and any grouping (one POST /e per batch): one run per
    idempotency key; singleton skip keeps each key's first run; singleton cancel keeps each key's last
    run active and cancels the others it started. No worker runs, so every run started stays active."""
    fns = [
        {"id": "idem", "trigger": {"event": "k"}, "idempotency": "key"},
        {"id": "skip", "trigger": {"event": "k"}, "singleton": {"key": "key", "mode": "skip"}},
        {"id": "last", "trigger": {"event": "k"}, "singleton": {"key": "key", "mode": "cancel"}},
    ]
    ws = await engine.workspace(f"keys-{uuid.uuid4().hex[:10]}")
    response = await engine.signed(ws, "/fn/sync", {"url": "http://127.0.0.1:9/app", "functions": fns})
    assert response.status_code == 200, response.text
    order = 0
    for batch in arrivals:
        events = []
        for key in batch:
            events.append({"name": "k", "data": {"key": key, "order": order}})
            order += 1
        assert (await engine.signed(ws, "/e", events)).status_code == 200
    runs = [await engine.run(r["id"]) for r in await engine.runs(ws)]
    sent = [key for batch in arrivals for key in batch]
    orders = {key: [i for i, k in enumerate(sent) if k == key] for key in set(sent)}

    def of(fn: str, status: str) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for run in runs:
            if run["functionId"] == fn and run["status"] == status:
                found.setdefault(run["event"]["data"]["key"], []).append(run["event"]["data"]["order"])
        return found

    assert of("idem", "active") == {key: [o[0]] for key, o in orders.items()}
    assert of("skip", "active") == {key: [o[0]] for key, o in orders.items()}
    assert of("last", "active") == {key: [o[-1]] for key, o in orders.items()}
    # A run replaced by a later event of the same POST is never created; each other replaced one is
    # cancelled.
    persisted: dict[str, list[int]] = {}
    order = 0
    for batch in arrivals:
        last_in_batch = {key: order + i for i, key in enumerate(batch)}
        for key, last in last_in_batch.items():
            persisted.setdefault(key, []).append(last)
        order += len(batch)
    cancelled = {key: sorted(v) for key, v in of("last", "cancelled").items()}
    assert cancelled == {key: p[:-1] for key, p in persisted.items() if len(p) > 1}
