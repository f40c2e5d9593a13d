"""A run driven end to end over real HTTP: steps memoize; the app is invoked N+1 times for N steps
with checkpointing off, and once with it on (the SDK's default)."""

from __future__ import annotations

import durable_sdk
import pytest

from tests.harness import AppServer, Engine


@pytest.mark.parametrize(("checkpoint", "rounds"), [(False, 4), (True, 1)])
async def test_three_steps_complete_with_n_plus_one_invokes_or_one_checkpointed(
    engine: Engine, checkpoint: bool, rounds: int
) -> None:
    calls: list[str] = []
    invokes: list[int] = []

    @durable_sdk.function(id="three", trigger={"event": "demo.three"}, checkpoint=checkpoint)
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
    assert len(invokes) == rounds  # N + 1 invokes for N steps, or one checkpoint [a, b, c] then done


async def test_metrics_count_invokes_and_events(engine: Engine) -> None:
    @durable_sdk.function(id="one", trigger={"event": "one"}, checkpoint=False)
    async def one(event, step):  # type: ignore[no-untyped-def]
        return await step.run("only", lambda: 1)

    def sample(text: str, name: str) -> float:
        for line in text.splitlines():
            if line.startswith((name + " ", name + "{")):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = (await engine.api.get("/metrics")).text
    ws = await engine.workspace()
    with AppServer([one], ws.signing_key) as app:
        await engine.sync(ws, app.url, [one])
        await engine.start_workers()
        await engine.send(ws, "one")
        await engine.wait_runs(ws, 1)
    after = (await engine.api.get("/metrics")).text
    assert (
        sample(after, "durable_events_ingested_total") - sample(before, "durable_events_ingested_total") == 1
    )
    ok = 'durable_invokes_total{outcome="ok"}'
    assert sample(after, ok) - sample(before, ok) == 2
