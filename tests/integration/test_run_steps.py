"""A run driven end to end over real HTTP: steps memoize, the app is invoked N+1 times."""

from __future__ import annotations

import durable_sdk
from tests.harness import AppServer, Engine


async def test_three_steps_complete_with_n_plus_one_invokes(engine: Engine) -> None:
    calls: list[str] = []
    invokes: list[int] = []

    @durable_sdk.function(id="three", trigger={"event": "demo.three"})
    async def three(event, step):  # type: ignore[no-untyped-def]
        invokes.append(1)
        a = await step.run("a", lambda: calls.append("a") or 1)
        b = await step.run("b", lambda: calls.append("b") or a + 1)
        c = await step.run("c", lambda: calls.append("c") or b + 1)
        return {"sum": a + b + c, "name": event["data"]["name"]}

    ws = await engine.workspace()
    with AppServer([three], ws.signing_key) as app:
        await engine.sync(ws, app.url, [three])
        await engine.start_workers()
        event_id = await engine.send(ws, "demo.three", {"name": "ada"})
        [summary] = await engine.wait_runs(ws, 1)
    run = await engine.run(summary["id"])
    assert run["status"] == "completed" and run["activity"] is None
    assert run["eventId"] == event_id
    assert run["output"] == {"sum": 6, "name": "ada"}
    assert [s["id"] for s in run["steps"]] == ["a", "b", "c"]
    assert [s["output"] for s in run["steps"]] == [1, 2, 3]
    assert all(s["type"] == "run" and s["status"] == "completed" and s["attempts"] == 1 for s in run["steps"])
    assert calls == ["a", "b", "c"]  # each step executed exactly once
    assert len(invokes) == 4  # N + 1 invokes for N steps
