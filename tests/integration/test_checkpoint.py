"""Checkpointed steps (docs/protocol.md, "Checkpointing"), engine side: a checkpoint's steps are stored
in one statement fenced on the lease (all or none), then the op that stopped them is applied as the next
invoke's answer would be. The app here is scripted (tests.harness.ScriptedApp): it answers exactly the
ops a test writes, so shapes no SDK sends (malformed, repeated ids, a stale lease) are covered too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable.engine.claim import Claim
from durable.engine.execution import Outcome
from tests.harness import Engine, ScriptedApp, Workspace
from tests.integration.test_json_roundtrip import JSON, assert_same

FUNCTION = {"id": "cp", "trigger": {"event": "go"}, "retries": 1}


def checkpoint(steps: dict[str, Any], then: dict[str, Any] | None) -> dict[str, Any]:
    return {"op": "checkpoint", "steps": [{"id": k, "data": v} for k, v in steps.items()], "then": then}


@asynccontextmanager
async def start(
    engine: Engine, script: Any, *, send: bool = True
) -> AsyncIterator[tuple[Workspace, ScriptedApp]]:
    """A workspace whose function `cp` the scripted app serves, workers running, and (with `send`) one
    event sent that starts a run."""
    ws = await engine.workspace(name=f"shop-{uuid.uuid4().hex[:12]}")  # one per hypothesis example
    with ScriptedApp(script, ws.signing_key) as app:
        await engine.sync(ws, app.url, [FUNCTION])
        await engine.start_workers()
        try:
            if send:
                await engine.send(ws, "go")
            yield ws, app
        finally:
            await engine.stop_workers()


async def ended(engine: Engine, ws: Workspace, status: str = "completed") -> dict[str, Any]:
    [summary] = await engine.wait_runs(ws, 1, status=status)
    return await engine.run(summary["id"])


EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@EXAMPLES
@given(values=st.lists(JSON, min_size=1, max_size=5), output=JSON)
async def test_a_checkpoint_stores_every_step_exactly_and_replays_them(
    engine: Engine, values: list[Any], output: Any
) -> None:
    """Arbitrary JSON through app -> engine -> Postgres -> the next invoke's memo and the read API: the
    first invoke checkpoints all but the last value (then null: a bound), the second the last (then done)."""
    steps = {f"s{i}": v for i, v in enumerate(values)}
    *first, last = steps

    def script(invoke: dict[str, Any]) -> dict[str, Any]:
        if not invoke["steps"] and first:
            return checkpoint({k: steps[k] for k in first}, None)
        return checkpoint({last: steps[last]}, {"op": "done", "data": output})

    async with start(engine, script) as (ws, app):
        view = await ended(engine, ws)
    assert [s["id"] for s in view["steps"]] == list(steps)
    for shown, want in zip(view["steps"], values, strict=True):
        assert shown["status"] == "completed" and shown["attempts"] == 1
        assert_same(shown["output"], want, f"step {shown['id']} in GET /api/runs")
    assert_same(view["output"], output, "the run's output")
    assert len(app.invokes) == (2 if first else 1)
    if first:  # the second invoke replays what the first checkpointed
        memo = app.invokes[1]["steps"]
        assert sorted(memo) == sorted(first)
        for k in first:
            assert memo[k]["type"] == "run"
            assert_same(memo[k]["data"], steps[k], f"step {k} replayed")


async def test_three_steps_and_done_are_one_invoke(engine: Engine) -> None:
    answer = checkpoint({"a": [1, 2, 3], "b": None, "c": {"x": [[]]}}, {"op": "done", "data": 7})
    async with start(engine, lambda _: answer) as (ws, app):
        view = await ended(engine, ws)
    assert len(app.invokes) == 1
    assert [(s["id"], s["output"]) for s in view["steps"]] == [
        ("a", [1, 2, 3]),
        ("b", None),
        ("c", {"x": [[]]}),
    ]
    assert view["output"] == 7


@pytest.mark.parametrize(
    ("then", "activity"),
    [
        ({"op": "sleep", "id": "nap", "until": "2099-01-01T00:00:00.000Z"}, "sleeping"),
        (
            {"op": "wait", "id": "w", "event": "never", "match": {"k": [1]}, "until": "2099-01-01T00:00:00Z"},
            "waiting",
        ),
    ],
)
async def test_a_checkpoint_that_ends_in_a_park_stores_the_steps_then_parks(
    engine: Engine, then: dict[str, Any], activity: str
) -> None:
    async with start(engine, lambda _: checkpoint({"a": 1, "b": [2]}, then)) as (ws, app):

        async def parked() -> Any:
            runs = await engine.runs(ws, status="active", activity=activity)
            return runs and await engine.run(runs[0]["id"])

        view = await engine.wait_for(parked, what=f"the run to be {activity}")
        await asyncio.sleep(0.2)
        assert len(app.invokes) == 1  # parked: nothing drives it
    assert [(s["id"], s["status"]) for s in view["steps"]][:2] == [("a", "completed"), ("b", "completed")]
    assert [s["output"] for s in view["steps"][:2]] == [1, [2]]


async def test_an_error_after_checkpointed_steps_retries_that_step_from_its_first_attempt(
    engine: Engine,
) -> None:
    def script(invoke: dict[str, Any]) -> dict[str, Any]:
        if "a" not in invoke["steps"]:
            return checkpoint({"a": "A"}, {"op": "error", "id": "b", "message": "flaky", "retryable": True})
        return checkpoint({"b": "B"}, {"op": "done", "data": "ok"})

    async with start(engine, script) as (ws, app):
        retry = await engine.wait_for(lambda: _retry(engine, ws), what="the retry to be scheduled")
        assert retry["attempt"] == 2 and retry["reason"] == "flaky"
        await engine.advance_clock(60_000)  # past the backoff, once nothing is in flight
        view = await ended(engine, ws)
    assert [(i["attempt"], sorted(i["steps"])) for i in app.invokes] == [(1, []), (2, ["a"])]
    assert app.invokes[1]["steps"] == {"a": {"type": "run", "data": "A"}}
    b = next(s for s in view["steps"] if s["id"] == "b")
    assert b["attempts"] == 2 and [e["message"] for e in b["errors"]] == ["flaky"]
    assert view["output"] == "ok"


async def _retry(engine: Engine, ws: Workspace) -> Any:
    runs = await engine.runs(ws, status="active")
    return runs and (await engine.run(runs[0]["id"])).get("retry")


async def test_then_null_invokes_again_at_once_with_the_steps_in_the_memo(engine: Engine) -> None:
    def script(invoke: dict[str, Any]) -> dict[str, Any]:
        n = len(invoke["steps"])
        if n < 20:
            return checkpoint({f"s{n + i}": n + i for i in range(5)}, None)
        return {"op": "done", "data": n}

    async with start(engine, script) as (ws, app):
        view = await ended(engine, ws)
    assert view["output"] == 20
    assert [len(invoke["steps"]) for invoke in app.invokes] == [0, 5, 10, 15, 20]
    assert [s["output"] for s in view["steps"]] == list(range(20))


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            checkpoint({"a": 1}, {"op": "step", "id": "b", "data": 2}),
            "checkpoint.then: a step op cannot end a checkpoint",
        ),
        (
            {"op": "checkpoint", "steps": [{"id": "a", "data": 1}, {"id": "a", "data": 2}], "then": None},
            "checkpoint.steps[1]: step id 'a' appears twice",
        ),
        ({"op": "checkpoint", "steps": [{"id": "a", "data": 1}]}, "checkpoint.then: missing"),
        ({"op": "checkpoint", "steps": [], "then": None}, "checkpoint.steps: must be a list of 1 to 1000"),
        (
            checkpoint({"a": 1}, {"op": "done", "data": 1, "extra": 2}),
            "checkpoint.then: done: unknown field 'extra'",
        ),
        (
            checkpoint({"a": 1}, {"op": "sleep", "id": "a", "until": "2099-01-01T00:00:00Z"}),
            "checkpoint.then: step id 'a' is also in checkpoint.steps",
        ),
        (checkpoint({"a": 1, "b": "\u0000"}, None), "step 'b': result"),
    ],
)
async def test_a_malformed_checkpoint_stores_nothing_and_names_the_problem(
    engine: Engine, answer: dict[str, Any], message: str
) -> None:
    async with start(engine, lambda _: answer) as (ws, app):

        async def retrying() -> Any:
            runs = await engine.runs(ws, status="active")
            view = runs and await engine.run(runs[0]["id"])
            return view and view.get("retry") and view

        view = await engine.wait_for(retrying, what="the attempt to fail")
    assert message in view["retry"]["reason"], view["retry"]
    assert [s for s in view["steps"] if s["status"] == "completed"] == []


async def test_a_step_already_stored_is_refused_and_nothing_of_the_checkpoint_is_stored(
    engine: Engine,
) -> None:
    def script(invoke: dict[str, Any]) -> dict[str, Any]:
        if not invoke["steps"]:
            return {"op": "step", "id": "a", "data": 1}
        return checkpoint({"b": 2, "a": 3}, {"op": "done", "data": None})

    async with start(engine, script) as (ws, app):

        async def retrying() -> Any:
            runs = await engine.runs(ws, status="active")
            view = runs and await engine.run(runs[0]["id"])
            return view and view.get("retry") and view

        view = await engine.wait_for(retrying, what="the attempt to fail")
    assert "step 'a' is already completed" in view["retry"]["reason"]
    assert [(s["id"], s["output"]) for s in view["steps"] if s["status"] == "completed"] == [("a", 1)]


async def test_a_checkpoint_answered_on_a_lost_lease_stores_nothing(engine: Engine) -> None:
    """The fence: between the invoke and its answer the run's lease moves to another worker (as after a
    stall past the lease); the checkpoint's steps are not stored, not even the first."""
    outcomes: list[Outcome] = []
    answer = checkpoint({"a": 1, "b": 2}, {"op": "done", "data": None})
    async with start(engine, lambda _: answer, send=False) as (ws, app):
        executor = engine.loops[0].executor
        apply = executor.apply

        async def apply_after_takeover(claim: Claim, op: Any, timing: Any) -> Outcome:
            async with engine.db.connection() as conn:  # another worker claimed the run meanwhile
                await conn.raw.execute(
                    "UPDATE jobs SET lease_token = gen_random_uuid() WHERE run_id = $1", claim.run_id
                )
            outcomes.append(await apply(claim, op, timing))
            return outcomes[-1]

        executor.apply = apply_after_takeover  # type: ignore[method-assign]
        await engine.send(ws, "go")
        await engine.wait_for(lambda: _value(outcomes), what="the answer to be applied")
        [summary] = await engine.runs(ws)
        view = await engine.run(summary["id"])
    assert outcomes == [Outcome.LOST] and len(app.invokes) == 1
    assert view["steps"] == [] and view["status"] == "active"


async def _value(x: Any) -> Any:
    return x
