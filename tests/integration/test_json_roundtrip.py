"""Every JSON value round-trips exactly (DESIGN.md §8.8), driven through the real path: a durable_sdk
app on real HTTP → worker loops → Postgres → the next invoke's memo → the app, and the read API.

Values come from hypothesis: arrays of any shape and nesting, objects, null, booleans, floats, integers
within 64 bits and unicode text (NUL aside: the store cannot hold it, tested on its own below). One
engine and one app serve all the examples of a test; each example is told apart by a `case` key in its
event's data, which the app's functions look up in `CASES`.

"Exactly" is JSON equality, checked by `canon`: a float is the number its shortest repr denotes (the
text the SDK sends, so `1e16` equals the integer 10000000000000000 Postgres prints back), and `true`
is never `1`, nor `[x]` ever `x`.
"""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import durable_sdk
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.harness import AppServer, Engine, Workspace

# ---------------------------------------------------------------- values and exact comparison

# Any text UTF-8 can carry (so no lone surrogates), NUL aside.
_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT
)
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)
OBJECTS = st.dictionaries(_TEXT, JSON, max_size=4)
SHAPES: list[Any] = [[], [[1, 2], [3]], [1, "two", {}], [{"a": 1}, {"b": 2}], [None], [[]], {"k": [1]}]

EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    # One engine and app per test, shared by its examples on purpose (each example has its own case key).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def canon(value: Any) -> Any:
    """A form of `value` whose == is JSON equality (Python's own says True == 1 and 1e300 == 10**300
    is False although both are the JSON number 1e300)."""
    if value is None or isinstance(value, bool | str):
        return (type(value).__name__, value)
    if isinstance(value, int):
        return ("number", Decimal(value))
    if isinstance(value, float):
        return ("number", Decimal(repr(value)))
    if isinstance(value, list):
        return ("array", tuple(canon(item) for item in value))
    if isinstance(value, dict):
        return ("object", tuple(sorted((key, canon(item)) for key, item in value.items())))
    raise TypeError(f"not a JSON value: {value!r}")


def assert_same(got: Any, want: Any, what: str) -> None:
    assert canon(got) == canon(want), f"{what}: stored or replayed as {got!r}, answered as {want!r}"


# ---------------------------------------------------------------- the app


@dataclass
class Case:
    """One example: what its steps answer, and what the app saw."""

    steps: list[Any] = field(default_factory=list)
    output: Any = None
    executed: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    replayed: dict[int, list[Any]] = field(default_factory=lambda: defaultdict(list))
    events: list[Any] = field(default_factory=list)


CASES: dict[str, Case] = {}
_lock = threading.Lock()


def new_case(**values: Any) -> str:
    key = uuid.uuid4().hex
    CASES[key] = Case(**values)
    return key


def _execute(case: Case, index: int) -> Any:
    with _lock:
        case.executed[index] += 1
    return case.steps[index]


@durable_sdk.function(id="steps", trigger={"event": "rt.steps"}, retries=1, checkpoint=False)
def steps_fn(event, step):  # type: ignore[no-untyped-def]
    case = CASES[event["data"]["case"]]
    case.events.append(event["data"])
    for index in range(len(case.steps)):
        got = step.run(f"s{index}", lambda index=index: _execute(case, index))
        case.replayed[index].append(got)  # reached only when the step was memoized
    return case.output


# Checkpointed two steps at a time: a step's value reaches the code after it in the invoke that ran it
# (as its JSON round trip) and in every later replay (from the memo).
@durable_sdk.function(
    id="steps-cp", trigger={"event": "rt.steps.cp"}, retries=1, checkpoint=durable_sdk.Checkpoint(max_steps=2)
)
def steps_cp_fn(event, step):  # type: ignore[no-untyped-def]
    case = CASES[event["data"]["case"]]
    case.events.append(event["data"])
    for index in range(len(case.steps)):
        got = step.run(f"s{index}", lambda index=index: _execute(case, index))
        case.replayed[index].append(got)
    return case.output


@durable_sdk.function(id="waits", trigger={"event": "rt.wait"})
def waits_fn(event, step):  # type: ignore[no-untyped-def]
    key = event["data"]["case"]
    got = step.wait_for_event("resume", event="rt.resume", match={"case": key}, timeout="1h")
    CASES[key].replayed[0].append(got)
    return got


@durable_sdk.function(
    id="batches", trigger={"event": "rt.batch"}, batch={"max_size": 3, "timeout": "100ms", "key": "case"}
)
def batches_fn(event, step):  # type: ignore[no-untyped-def]
    items = event["data"]
    case = CASES[items[0]["data"]["case"]]
    case.events.append(items)
    got = step.run("echo", lambda: [item["data"]["payload"] for item in items])
    case.replayed[0].append(got)
    return got


FUNCTIONS = [steps_fn, steps_cp_fn, waits_fn, batches_fn]


@dataclass
class Bench:
    engine: Engine
    ws: Workspace

    async def finished(self, event_id: str, timeout: float = 20) -> dict[str, Any]:
        """The run `event_id` started, once it is no longer active."""

        async def ended() -> dict[str, Any] | None:
            for summary in await self.engine.runs(self.ws):
                if summary["eventId"] == event_id and summary["status"] != "active":
                    return await self.engine.run(summary["id"])
            return None

        return dict(await self.engine.wait_for(ended, timeout=timeout, what=f"the run of {event_id}"))

    async def ended(self, run_id: str, timeout: float = 20) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            view = await self.engine.run(run_id)
            return view if view["status"] != "active" else None

        return dict(await self.engine.wait_for(done, timeout=timeout, what=f"run {run_id} to end"))


@pytest.fixture
async def bench(engine: Engine) -> AsyncIterator[Bench]:
    ws = await engine.workspace()
    with AppServer(FUNCTIONS, ws.signing_key) as app:
        await engine.sync(ws, app.url, FUNCTIONS)
        await engine.start_workers()
        yield Bench(engine, ws)


def check_steps(case: Case, view: dict[str, Any], *, replays: int = 1) -> None:
    """Each step's answer is what every later invoke replayed and what the API shows."""
    assert view["status"] == "completed", view["error"]
    assert [s["id"] for s in view["steps"]] == [f"s{i}" for i in range(len(case.steps))]
    for index, want in enumerate(case.steps):
        shown = view["steps"][index]
        assert shown["status"] == "completed" and shown["attempts"] == 1
        assert_same(shown["output"], want, f"step s{index} in GET /api/runs")
        later = len(case.steps) - index  # invokes after the one that executed it
        assert len(case.replayed[index]) == later * replays
        for got in case.replayed[index]:
            assert_same(got, want, f"step s{index} replayed to the handler")
    assert_same(view["output"], case.output, "the run's output")


# ---------------------------------------------------------------- the properties


@EXAMPLES
@given(values=st.lists(JSON, min_size=1, max_size=3), output=JSON, payload=OBJECTS)
@example(values=SHAPES[:4], output=[[1, 2], [3]], payload={"list": [1, 2, 3], "nested": [[]]})
@example(values=[[1, 2, 3]], output=[1, 2, 3], payload={})
async def test_step_results_output_and_event_data_round_trip(
    bench: Bench, values: list[Any], output: Any, payload: dict[str, Any]
) -> None:
    key = new_case(steps=values, output=output)
    data = {"case": key, "payload": payload}
    view = await bench.finished(await bench.engine.send(bench.ws, "rt.steps", data))
    case = CASES[key]
    check_steps(case, view)
    assert dict(case.executed) == {i: 1 for i in range(len(values))}  # each step executed once
    assert len(case.events) == len(values) + 1
    for seen in case.events:
        assert_same(seen, data, "event.data in an invoke")
    assert_same(view["event"]["data"], data, "event.data in GET /api/runs")


@EXAMPLES
@given(values=st.lists(JSON, min_size=1, max_size=5), output=JSON)
@example(values=SHAPES[:5], output=[[1, 2], [3]])
@example(values=[[1, 2, 3]], output=[1, 2, 3])
async def test_checkpointed_steps_round_trip_to_the_store_the_memo_and_the_code_after_them(
    bench: Bench, values: list[Any], output: Any
) -> None:
    key = new_case(steps=values, output=output)
    view = await bench.finished(await bench.engine.send(bench.ws, "rt.steps.cp", {"case": key}))
    case = CASES[key]
    assert view["status"] == "completed", view["error"]
    assert [s["id"] for s in view["steps"]] == [f"s{i}" for i in range(len(values))]
    for index, want in enumerate(values):
        assert_same(view["steps"][index]["output"], want, f"step s{index} in GET /api/runs")
        # Checkpoints of two: the code after a step runs in the invoke that ran it (unless the bound
        # stopped the handler right there: the second of each two), then in each later replay.
        later = len(case.events) - index // 2 - 1
        assert len(case.replayed[index]) == later + (index % 2 == 0)
        for got in case.replayed[index]:
            assert_same(got, want, f"step s{index} as the handler saw it")
    assert dict(case.executed) == {i: 1 for i in range(len(values))}
    assert len(case.events) == len(values) // 2 + 1  # invokes: one per two steps, and the last
    assert_same(view["output"], output, "the run's output")


@EXAMPLES
@given(values=st.lists(JSON, min_size=2, max_size=3))
@example(values=SHAPES[:4])
async def test_rerun_from_a_step_replays_the_memo_exactly(bench: Bench, values: list[Any]) -> None:
    key = new_case(steps=values, output=None)
    original = await bench.finished(await bench.engine.send(bench.ws, "rt.steps", {"case": key}))
    last = f"s{len(values) - 1}"
    response = await bench.engine.api.post(f"/api/runs/{original['id']}/rerun", json={"fromStep": last})
    assert response.status_code == 200, response.text
    rerun = await bench.ended(response.json()["runId"])
    case = CASES[key]
    assert rerun["rerunOf"] == original["id"] and rerun["status"] == "completed", rerun["error"]
    for index, want in enumerate(values):
        assert_same(rerun["steps"][index]["output"], want, f"step s{index} of the rerun in GET /api/runs")
    # The copied steps did not execute again; only the step rerun from did.
    assert dict(case.executed) == {**{i: 1 for i in range(len(values) - 1)}, len(values) - 1: 2}
    # The rerun's invokes replayed the memo: the steps before `last` once per invoke of both runs.
    for index, want in enumerate(values[:-1]):
        assert len(case.replayed[index]) == (len(values) - index) + 2
        for got in case.replayed[index]:
            assert_same(got, want, f"step s{index} replayed in the rerun")


@EXAMPLES
@given(payload=OBJECTS, ts=st.integers(min_value=0, max_value=253_402_300_799_999))
@example(payload={"items": [[1, 2], [3]], "mixed": [1, "two", {}]}, ts=0)
async def test_a_resumed_wait_replays_the_whole_event(bench: Bench, payload: dict[str, Any], ts: int) -> None:
    key = new_case()
    engine = bench.engine
    started = await engine.send(bench.ws, "rt.wait", {"case": key})

    async def waiting() -> bool:
        runs = [r for r in await engine.runs(bench.ws, activity="waiting") if r["eventId"] == started]
        return bool(runs)

    await engine.wait_for(waiting, what="the run to wait")
    data = {"case": key, "payload": payload}
    resume_id = await engine.send(bench.ws, "rt.resume", data, ts=ts)
    view = await bench.finished(started)
    want = {"id": resume_id, "name": "rt.resume", "data": data, "ts": ts}
    assert view["status"] == "completed", view["error"]
    assert_same(view["steps"][0]["output"], want, "the wait's step output in GET /api/runs")
    assert_same(view["output"], want, "the run's output")
    [got] = CASES[key].replayed[0]
    assert_same(got, want, "the wait's event replayed to the handler")


@EXAMPLES
@given(payloads=st.lists(OBJECTS, min_size=1, max_size=3))
@example(payloads=[{"a": [1, 2, 3]}, {"b": [[1], []]}, {"c": [{"d": None}]}])
async def test_a_batch_run_gets_the_list_of_its_events(bench: Bench, payloads: list[dict[str, Any]]) -> None:
    key = new_case()
    events = [{"name": "rt.batch", "data": {"case": key, "payload": p}} for p in payloads]
    response = await bench.engine.signed(bench.ws, "/e", events)
    assert response.status_code == 200, response.text
    ids = response.json()["ids"]
    view = await bench.finished(ids[0])
    case = CASES[key]
    assert view["status"] == "completed", view["error"]
    for items in case.events:
        assert [item["id"] for item in items] == ids
        assert_same([item["data"] for item in items], [e["data"] for e in events], "a batch's event.data")
    assert_same([e["data"] for e in view["event"]["data"]], [e["data"] for e in events], "the batch event")
    assert_same(view["steps"][0]["output"], payloads, "the batch's step output in GET /api/runs")
    [got] = case.replayed[0]
    assert_same(got, payloads, "the batch's step replayed to the handler")


async def test_many_runs_stored_in_one_group_commit_all_round_trip(bench: Bench) -> None:
    scalars: list[Any] = [None, True, False, 0, -(2**63), 2**63 - 1, 1.5, -0.0, 1e300, 5e-324, "", "é✓𝄞"]
    values = [*SHAPES, *scalars, [[[[1]]]], {"a": {"b": [None, {"c": []}]}}, [1.25, [True, [None]]]]
    values += [[i, [i] * i, {str(i): [i]}] for i in range(30 - len(values))]
    keys = [new_case(steps=[v, [v]], output={"v": v}) for v in values]
    assert len(keys) == 30
    response = await bench.engine.signed(
        bench.ws, "/e", [{"name": "rt.steps", "data": {"case": k}} for k in keys]
    )
    assert response.status_code == 200, response.text
    runs = await bench.engine.wait_runs(bench.ws, 30, timeout=30)
    for key, event_id in zip(keys, response.json()["ids"], strict=True):
        [summary] = [r for r in runs if r["eventId"] == event_id]
        check_steps(CASES[key], await bench.engine.run(summary["id"]))
    # Rows inserted by one statement share its transaction id: the steps were written in groups.
    async with bench.engine.db.connection() as conn:
        largest = await conn.raw.fetchval(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM steps GROUP BY xmin::text) AS groups"
        )
    assert largest > 1, "no two steps shared a commit: the group commit was not exercised"


# ---------------------------------------------------------------- values the store cannot hold


@durable_sdk.function(id="unstorable", trigger={"event": "rt.bad"}, retries=1)
def unstorable_fn(event, step):  # type: ignore[no-untyped-def]
    case = CASES[event["data"]["case"]]
    return step.run("bad", lambda: _execute(case, 0))


def _nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("before\u0000after", "NUL"),
        ({"key\u0000": 1}, "NUL"),
        (_nested(300), "nest"),
    ],
    ids=["nul-in-a-string", "nul-in-a-key", "300-levels"],
)
async def test_a_value_the_store_cannot_hold_fails_the_attempt_by_name(
    engine: Engine, value: Any, needle: str
) -> None:
    ws = await engine.workspace()
    key = new_case(steps=[value])
    with AppServer([unstorable_fn], ws.signing_key) as app:
        await engine.sync(ws, app.url, [unstorable_fn])
        await engine.start_workers()
        event_id = await engine.send(ws, "rt.bad", {"case": key})
        view = await Bench(engine, ws).finished(event_id, timeout=30)
    assert view["status"] == "failed"  # ended: not left executing, not retried without end
    assert needle in view["error"]["message"], view["error"]
    assert 1 <= CASES[key].executed[0] <= 2  # retries=1: at most two attempts ran the side effect
    for shown in view["steps"]:
        assert shown["status"] == "failed" and shown["output"] is None


async def test_an_integer_beyond_64_bits_is_refused_or_kept_exactly(engine: Engine) -> None:
    value = [2**70, 2**70 + 1, -(2**70) - 1]  # 2**70 + 1 is no double: rounding would show
    ws = await engine.workspace()
    key = new_case(steps=[value])
    with AppServer([unstorable_fn], ws.signing_key) as app:
        await engine.sync(ws, app.url, [unstorable_fn])
        await engine.start_workers()
        event_id = await engine.send(ws, "rt.bad", {"case": key})
        view = await Bench(engine, ws).finished(event_id, timeout=30)
    if view["status"] == "failed":
        assert "integer" in view["error"]["message"], view["error"]
        assert 1 <= CASES[key].executed[0] <= 2
    else:
        [step] = view["steps"]
        assert step["output"] == value and all(type(n) is int for n in step["output"])
        assert view["output"] == value
