"""Cancel, rerun, rerun from a step, idempotent sends, and workspace isolation."""

from __future__ import annotations

import asyncio
from collections import Counter

import durable_sdk

from tests.harness import AppServer, Engine


def _counted_pipeline(calls: list[str]):  # type: ignore[no-untyped-def]
    @durable_sdk.function(id="pipeline", trigger={"event": "pipe"})
    async def pipeline(event, step):  # type: ignore[no-untyped-def]
        a = await step.run("extract", lambda: calls.append("extract") or 1)
        b = await step.run("transform", lambda: calls.append("transform") or a + 1)
        return await step.run("load", lambda: calls.append("load") or b + 1)

    return pipeline


async def test_rerun_starts_a_new_run_and_leaves_the_original(engine: Engine) -> None:
    calls: list[str] = []
    pipeline = _counted_pipeline(calls)
    ws = await engine.workspace()
    with AppServer([pipeline], ws.signing_key) as app:
        await engine.sync(ws, app.url, [pipeline])
        await engine.start_workers()
        await engine.send(ws, "pipe")
        [original] = await engine.wait_runs(ws, 1)
        before = await engine.run(original["id"])

        response = await engine.api.post(f"/api/runs/{original['id']}/rerun", json={})
        assert response.status_code == 200
        full = response.json()["runId"]
        response = await engine.api.post(f"/api/runs/{original['id']}/rerun", json={"fromStep": "transform"})
        partial = response.json()["runId"]
        await engine.wait_runs(ws, 3)
    assert await engine.run(original["id"]) == before
    # Two full runs, plus the rerun from "transform" that replayed "extract" from memory.
    assert Counter(calls) == {"extract": 2, "transform": 3, "load": 3}
    rerun = await engine.run(partial)
    assert rerun["rerunOf"] == original["id"] and rerun["output"] == 3
    assert [s["id"] for s in rerun["steps"]] == ["extract", "transform", "load"]
    assert (await engine.run(full))["eventId"] == before["eventId"]


async def test_rerun_refuses_unknown_runs_and_steps(engine: Engine) -> None:
    response = await engine.api.post("/api/runs/nope/rerun", json={})
    assert response.status_code == 404 and "nope" in response.json()["error"]
    calls: list[str] = []
    pipeline = _counted_pipeline(calls)
    ws = await engine.workspace()
    with AppServer([pipeline], ws.signing_key) as app:
        await engine.sync(ws, app.url, [pipeline])
        await engine.start_workers()
        await engine.send(ws, "pipe")
        [run] = await engine.wait_runs(ws, 1)
    response = await engine.api.post(f"/api/runs/{run['id']}/rerun", json={"fromStep": "ghost"})
    assert response.status_code == 400 and "ghost" in response.json()["error"]
    assert len(await engine.runs(ws)) == 1


async def test_cancel_a_waiting_run_and_no_event_revives_it(engine: Engine) -> None:
    @durable_sdk.function(id="waiter", trigger={"event": "start"})
    async def waiter(event, step):  # type: ignore[no-untyped-def]
        await step.wait_for_event("signal", event="signal", timeout="1h")
        return await step.run("after", lambda: "ran")

    ws = await engine.workspace()
    with AppServer([waiter], ws.signing_key) as app:
        await engine.sync(ws, app.url, [waiter])
        await engine.start_workers()
        await engine.send(ws, "start")

        async def waiting():  # type: ignore[no-untyped-def]
            runs = await engine.runs(ws, activity="waiting")
            return runs[0] if runs else None

        run = await engine.wait_for(waiting, what="a waiting run")
        response = await engine.api.post(f"/api/runs/{run['id']}/cancel")
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        await engine.send(ws, "signal")
        await asyncio.sleep(0.3)
        again = await engine.api.post(f"/api/runs/{run['id']}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["error"]
    final = await engine.run(run["id"])
    assert final["status"] == "cancelled" and final["activity"] is None
    assert [s["id"] for s in final["steps"]] == ["signal"]
    assert await engine.db.fetchval("jobs_next_due") is None  # no job left behind


async def test_an_event_id_seen_in_the_last_day_is_ignored(engine: Engine) -> None:
    calls: list[str] = []
    pipeline = _counted_pipeline(calls)
    ws = await engine.workspace()
    with AppServer([pipeline], ws.signing_key) as app:
        await engine.sync(ws, app.url, [pipeline])
        await engine.start_workers()
        first = await engine.send(ws, "pipe", id="evt-1")
        second = await engine.send(ws, "pipe", id="evt-1")
        response = await engine.signed(
            ws, "/e", [{"name": "pipe", "id": "evt-2"}, {"name": "pipe", "id": "evt-2"}]
        )
        assert response.json() == {"ids": ["evt-2", "evt-2"]}
        await engine.wait_runs(ws, 2)
        await asyncio.sleep(0.2)
    assert first == second == "evt-1"
    assert len(await engine.runs(ws)) == 2
    events = (await engine.api.get(f"/api/apps/{ws.id}/events")).json()["items"]
    assert sorted(e["id"] for e in events) == ["evt-1", "evt-2"]


async def test_nothing_crosses_workspaces(engine: Engine) -> None:
    acc = await engine.workspace("billing", "acc")
    prod = await engine.workspace("billing", "prod")
    assert acc.id != prod.id and acc.signing_key != prod.signing_key

    def make(calls: list[str]):  # type: ignore[no-untyped-def]
        @durable_sdk.function(id="invoice", trigger={"event": "invoice.due"})
        async def invoice(event, step):  # type: ignore[no-untyped-def]
            got = await step.wait_for_event("paid", event="invoice.paid", timeout="1h")
            return await step.run("record", lambda: calls.append(str(got and got["data"])) or "done")

        return invoice

    acc_calls: list[str] = []
    prod_calls: list[str] = []
    acc_fn, prod_fn = make(acc_calls), make(prod_calls)
    with AppServer([acc_fn], acc.signing_key) as acc_app, AppServer([prod_fn], prod.signing_key) as prod_app:
        await engine.sync(acc, acc_app.url, [acc_fn])
        await engine.sync(prod, prod_app.url, [prod_fn])
        await engine.start_workers()
        await engine.send(prod, "invoice.due")

        async def prod_waiting():  # type: ignore[no-untyped-def]
            return await engine.runs(prod, activity="waiting")

        await engine.wait_for(prod_waiting, what="prod to wait")
        await engine.send(acc, "invoice.paid", {"from": "acc"})
        await asyncio.sleep(0.3)
        assert await engine.runs(acc) == []  # no function of acc listens to invoice.paid
        assert await prod_waiting()  # the acc event did not resume prod's wait
        # A request signed with acc's key cannot act for prod.
        forged = await engine.signed(prod, "/e", {"name": "invoice.paid"}, key=acc.signing_key)
        assert forged.status_code == 401
        await engine.send(prod, "invoice.paid", {"from": "prod"})
        await engine.wait_runs(prod, 1)
    assert prod_calls == ["{'from': 'prod'}"] and acc_calls == []
