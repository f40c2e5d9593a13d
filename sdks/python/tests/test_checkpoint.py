"""Checkpointing beyond the shared vectors (docs/protocol.md, "Checkpointing"): on by default, off per
function, the bounds (steps, bytes of JSON, time on a fake monotonic clock), the JSON round trip the code
after a step sees, and a property test over arbitrary JSON results."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import durable_sdk
from durable_sdk import Checkpoint, _step

NOW = 1767225600123
STYLES = ["sync", "async"]


def invoke(steps: dict[str, Any] | None = None) -> dict[str, Any]:
    event = {"id": "e1", "name": "t", "data": {}, "ts": NOW}
    return {"runId": "r1", "functionId": "f", "attempt": 1, "event": event, "steps": steps or {}}


def define(handler: Any, **options: Any) -> durable_sdk.Function:
    return durable_sdk.function(id="f", trigger={"event": "t"}, **options)(handler)


def replay(fn: durable_sdk.Function, steps: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    if _step.is_async(fn):
        return asyncio.run(_step.execute_async(fn, invoke(steps), clock=lambda: NOW, **kwargs))
    return _step.execute_sync(fn, invoke(steps), clock=lambda: NOW, **kwargs)


def chain(style: str, values: list[Any], calls: list[int] | None = None) -> Any:
    """A handler running one step per value (``s``, ``s:1`` …), returning what each step call gave it."""

    def result(i: int) -> Any:
        def fn() -> Any:
            if calls is not None:
                calls.append(i)
            return values[i]

        return fn

    def plain(event: Any, step: Any) -> Any:
        return [step.run("s", result(i)) for i in range(len(values))]

    async def coroutine(event: Any, step: Any) -> Any:
        return [await step.run("s", result(i)) for i in range(len(values))]

    return plain if style == "sync" else coroutine


def ids(count: int) -> list[str]:
    return ["s" if i == 0 else f"s:{i}" for i in range(count)]


def steps_of(answer: dict[str, Any]) -> list[str]:
    """The ids of the steps an answer carries."""
    if answer["op"] == "step":
        return [answer["id"]]
    return [item["id"] for item in answer.get("steps", [])]


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1, 1.0 and True differ; so do a list and a tuple,
    0.0 and -0.0, and two dicts whose keys are in another order)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return repr(a) == repr(b)


# the option


def test_on_by_default_with_the_documented_bounds_and_never_synced() -> None:
    handler = chain("sync", [1])
    default = define(handler)
    assert default.checkpoint == Checkpoint() == Checkpoint(max_steps=100, max_bytes=1_048_576, max_ms=1000)
    assert define(handler, checkpoint=True).checkpoint == Checkpoint()
    assert define(handler, checkpoint=False).checkpoint is None
    tuned = define(handler, checkpoint=Checkpoint(max_steps=3))
    assert tuned.checkpoint == Checkpoint(max_steps=3, max_bytes=1_048_576, max_ms=1000)
    assert (
        default.wire
        == tuned.wire
        == define(handler, checkpoint=False).wire
        == {
            "id": "f",
            "trigger": {"event": "t"},
        }
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        tuned.checkpoint.max_steps = 5  # type: ignore[misc]


def test_the_failure_handler_is_checkpointed_like_its_function() -> None:
    on = define(chain("sync", [1]), on_failure=chain("sync", [1]), checkpoint=Checkpoint(max_ms=50))
    off = define(chain("sync", [1]), on_failure=chain("sync", [1]), checkpoint=False)
    assert on.failure is not None and on.failure.checkpoint == Checkpoint(max_ms=50)
    assert off.failure is not None and off.failure.checkpoint is None


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ({"max_steps": 0}, "Checkpoint.max_steps must be an integer from 1 to 1000, got 0"),
        ({"max_steps": 1001}, "Checkpoint.max_steps must be an integer from 1 to 1000, got 1001"),
        ({"max_steps": True}, "Checkpoint.max_steps must be an integer from 1 to 1000, got True"),
        ({"max_bytes": -1}, "Checkpoint.max_bytes must be an integer from 1 to 4194304, got -1"),
        ({"max_bytes": 4194305}, "Checkpoint.max_bytes must be an integer from 1 to 4194304, got 4194305"),
        ({"max_ms": 1.5}, "Checkpoint.max_ms must be a positive integer, got 1.5"),
        ({"max_ms": "1s"}, "Checkpoint.max_ms must be a positive integer, got '1s'"),
        ({"max_ms": 0}, "Checkpoint.max_ms must be a positive integer, got 0"),
    ],
)
def test_bad_bounds_are_refused_naming_the_field(bounds: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        Checkpoint(**bounds)
    assert str(raised.value) == message


@pytest.mark.parametrize("value", ["yes", 1, None, {"maxSteps": 2}, {"max_steps": 2}])
def test_a_checkpoint_option_of_another_type_is_refused(value: Any) -> None:
    with pytest.raises(ValueError) as raised:
        define(chain("sync", [1]), checkpoint=value)
    assert str(raised.value) == (
        f"function 'f': checkpoint: must be True, False or a durable_sdk.Checkpoint(...) of bounds, "
        f"got {value!r}"
    )


# on and off


@pytest.mark.parametrize("style", STYLES)
def test_on_by_default_a_run_of_steps_is_one_invoke(style: str) -> None:
    calls: list[int] = []
    answer = replay(define(chain(style, [10, 20, 30], calls)))
    steps = [{"id": step_id, "data": value} for step_id, value in zip(ids(3), [10, 20, 30], strict=True)]
    assert answer == {"op": "checkpoint", "steps": steps, "then": {"op": "done", "data": [10, 20, 30]}}
    assert calls == [0, 1, 2]


@pytest.mark.parametrize("style", STYLES)
def test_checkpoint_false_answers_one_step_per_invoke(style: str) -> None:
    calls: list[int] = []
    fn = define(chain(style, [10, 20, 30], calls), checkpoint=False)
    memo: dict[str, Any] = {}
    answers = []
    while True:  # the engine's loop: store each step, invoke again
        answer = replay(fn, memo)
        answers.append(answer)
        if answer["op"] != "step":
            break
        memo[answer["id"]] = {"type": "run", "data": answer["data"]}
    assert [a["op"] for a in answers] == ["step", "step", "step", "done"]
    assert [a.get("id") for a in answers[:3]] == ids(3)
    assert answers[-1] == {"op": "done", "data": [10, 20, 30]}
    assert calls == [0, 1, 2]  # one execution per step, one step per invoke


# the bounds


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("max_steps", [1, 2, 4, 5, 6])
def test_max_steps_stops_after_that_many_steps(style: str, max_steps: int) -> None:
    calls: list[int] = []
    answer = replay(define(chain(style, list(range(5)), calls), checkpoint=Checkpoint(max_steps=max_steps)))
    expected = min(max_steps, 5)
    assert steps_of(answer) == ids(expected)
    assert calls == list(range(expected))  # the step after the bound did not execute
    if max_steps <= 5:  # the bound is checked after each step: then null (one step alone: the step op)
        assert answer.get("then") is None
    else:
        assert answer["then"] == {"op": "done", "data": list(range(5))}


@pytest.mark.parametrize("style", STYLES)
def test_max_ms_counts_from_the_invoke_on_the_monotonic_clock(
    style: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [0.0]
    monkeypatch.setattr(_step, "_monotonic_ms", lambda: clock[0])

    def ticking(i: int) -> Any:
        def fn() -> int:
            clock[0] += 300  # each step takes 300 ms
            return i

        return fn

    def plain(event: Any, step: Any) -> Any:
        return [step.run("s", ticking(i)) for i in range(10)]

    async def coroutine(event: Any, step: Any) -> Any:
        return [await step.run("s", ticking(i)) for i in range(10)]

    fn = define(plain if style == "sync" else coroutine)  # max_ms 1000: 300, 600, 900, 1200 -> stop
    answer = replay(fn)
    assert (steps_of(answer), answer["then"]) == (ids(4), None)
    clock[0] = 5000.0
    answer = replay(fn, started_ms=4500.0)  # 500 ms passed before the handler began: 800, 1100 -> stop
    assert (steps_of(answer), answer["then"]) == (ids(2), None)
    clock[0] = 0.0
    answer = replay(define(plain if style == "sync" else coroutine, checkpoint=Checkpoint(max_ms=10_000)))
    assert len(steps_of(answer)) == 10 and answer["then"]["op"] == "done"


@pytest.mark.parametrize("mode", ["asgi", "wsgi"])
def test_max_ms_counts_the_time_before_the_handler_in_the_endpoint(
    mode: str, key: str, asgi_request: Any, wsgi_request: Any, invoke_headers: Any, monkeypatch: Any
) -> None:
    reads: list[float] = []

    def monotonic() -> float:  # each read is 400 ms later: arrival 0, then 400, 800, 1200 after steps
        reads.append(400.0 * len(reads))
        return reads[-1]

    monkeypatch.setattr(_step, "_monotonic_ms", monotonic)
    fn = durable_sdk.function(id="f", trigger={"event": "t"})(chain("sync", list(range(10))))
    body = json.dumps(invoke()).encode()
    request, serve = (
        (asgi_request, durable_sdk.serve) if mode == "asgi" else (wsgi_request, durable_sdk.serve_wsgi)
    )
    answer = request(serve([fn], signing_key=key), body=body, headers=invoke_headers(body, key)).json()
    assert (steps_of(answer), answer["then"]) == (ids(3), None)
    assert reads == [0.0, 400.0, 800.0, 1200.0]  # read once on arrival, once after each step


@pytest.mark.parametrize("style", STYLES)
def test_max_bytes_counts_the_utf8_length_of_each_results_json(style: str) -> None:
    big = "x" * 600_000  # two of them pass the default 1 MiB
    calls: list[int] = []
    answer = replay(define(chain(style, [big, big, big], calls)))
    assert (steps_of(answer), answer["then"], calls) == (ids(2), None, [0, 1])
    assert [item["data"] for item in answer["steps"]] == [big, big]
    accented = "éé"  # JSON "éé": 6 bytes of UTF-8 (4 characters, 8 if escaped as \u00e9)
    for max_bytes, expected in [(12, 2), (13, 3), (6, 1), (5, 1)]:
        answer = replay(define(chain(style, [accented] * 3), checkpoint=Checkpoint(max_bytes=max_bytes)))
        assert len(steps_of(answer)) == expected, max_bytes


# the round trip


@pytest.mark.parametrize("style", STYLES)
def test_code_after_a_step_sees_its_json_round_trip(style: str) -> None:
    values = [(1, "two", (3,)), {1: "one", "n": {2: (None,)}}, 12345678901234567890123, -0.0]
    answer = replay(define(chain(style, values)))
    expected = [[1, "two", [3]], {"1": "one", "n": {"2": [None]}}, 12345678901234567890123, -0.0]
    assert same(answer["then"]["data"], expected)  # what the code after the steps saw
    assert same([item["data"] for item in answer["steps"]], expected)
    memo = {item["id"]: {"type": "run", "data": item["data"]} for item in answer["steps"]}
    assert same(replay(define(chain(style, values)), memo)["data"], expected)  # what a replay gives it


@pytest.mark.parametrize("style", STYLES)
def test_the_handler_changing_a_result_does_not_change_what_is_answered(style: str) -> None:
    def plain(event: Any, step: Any) -> Any:
        items = step.run("items", lambda: [1, 2])
        items.append(3)
        return step.run("count", lambda: len(items))

    async def coroutine(event: Any, step: Any) -> Any:
        items = await step.run("items", lambda: [1, 2])
        items.append(3)
        return await step.run("count", lambda: len(items))

    answer = replay(define(plain if style == "sync" else coroutine))
    assert answer["steps"] == [{"id": "items", "data": [1, 2]}, {"id": "count", "data": 3}]


# what stops a checkpoint


@pytest.mark.parametrize("style", STYLES)
def test_a_step_raising_or_returning_non_json_after_a_checkpointed_one_is_then(style: str) -> None:
    def boom() -> None:
        raise KeyError("gone")

    def plain(event: Any, step: Any) -> Any:
        step.run("ok", lambda: 1)
        step.run("bad", (lambda: {1, 2}) if event["data"].get("set") else boom)
        return step.run("never", lambda: pytest.fail("executed after the failing step"))

    async def coroutine(event: Any, step: Any) -> Any:
        await step.run("ok", lambda: 1)
        await step.run("bad", (lambda: {1, 2}) if event["data"].get("set") else boom)
        return await step.run("never", lambda: pytest.fail("executed after the failing step"))

    fn = define(plain if style == "sync" else coroutine)
    answer = replay(fn)
    assert answer["steps"] == [{"id": "ok", "data": 1}]
    assert answer["then"] == {"op": "error", "id": "bad", "message": "'gone'", "retryable": True}
    body = invoke()
    body["event"]["data"] = {"set": True}
    answer = asyncio.run(_step.execute_async(fn, body)) if style == "async" else _step.execute_sync(fn, body)
    assert answer["steps"] == [{"id": "ok", "data": 1}]
    assert (answer["then"]["id"], answer["then"]["retryable"]) == ("bad", False)
    assert "not JSON-serialisable" in answer["then"]["message"]


def test_a_plain_parallel_group_that_resolves_to_one_step_joins_the_checkpoint() -> None:
    def handler(event: Any, step: Any) -> Any:
        a = step.run("a", lambda: 1)
        b, c = step.parallel([lambda: step.run("b", lambda: 2), lambda: step.run("c", lambda: 3)])
        return a + b + c

    answer = replay(define(handler), {"c": {"type": "run", "data": 3}})
    # `then` is never a step op: the group's one step is stored with the others and the engine invokes again
    assert answer == {
        "op": "checkpoint",
        "steps": [{"id": "a", "data": 1}, {"id": "b", "data": 2}],
        "then": None,
    }


@pytest.mark.parametrize("style", STYLES)
def test_a_memo_mismatch_after_a_checkpointed_step_is_then(style: str) -> None:
    fn = define(chain(style, [1, 2]))
    answer = replay(fn, {"s:1": {"type": "sleep", "data": None}})
    assert answer["steps"] == [{"id": "s", "data": 1}]
    assert (answer["then"]["op"], answer["then"]["id"], answer["then"]["retryable"]) == (
        "error",
        "s:1",
        False,
    )


def test_an_async_step_reached_alone_beside_pending_io_goes_on() -> None:
    """A gather branch awaiting something other than a step does not stop the other branch's chain."""

    async def io() -> str:
        await asyncio.sleep(0.01)
        return "io"

    async def handler(event: Any, step: Any) -> Any:
        async def chain() -> int:
            a = await step.run("a", lambda: 1)
            return await step.run("b", lambda: a + 1)

        return await asyncio.gather(chain(), io())

    answer = replay(define(handler))
    steps = [{"id": "a", "data": 1}, {"id": "b", "data": 2}]
    assert answer == {"op": "checkpoint", "steps": steps, "then": {"op": "done", "data": [2, "io"]}}


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per settling round (``Step._settle``) the test's handlers go through."""
    rounds: list[int] = []
    settle = _step.Step._settle

    async def counted(self: _step.Step) -> None:
        rounds.append(1)
        await settle(self)

    monkeypatch.setattr(_step.Step, "_settle", counted)
    return rounds


def test_steps_the_handler_awaits_itself_execute_without_a_settling_round(settled: list[int]) -> None:
    """A step the handler's own task awaits while nothing else is reached executes at once: no round of
    quiet event-loop turns per step (docs/protocol.md, "Checkpointing"). Steps of a gather still settle
    together, and are answered as one parallel group."""
    answer = replay(define(chain("async", [1, 2, 3, 4, 5])))
    assert answer["then"] == {"op": "done", "data": [1, 2, 3, 4, 5]}
    assert settled == []

    async def gathered(event: Any, step: Any) -> Any:
        return await asyncio.gather(step.run("a", lambda: 1), step.run("b", lambda: 2))

    ops = [{"op": "step", "id": "a", "data": 1}, {"op": "step", "id": "b", "data": 2}]
    parallel = {"op": "parallel", "ops": ops}
    assert replay(define(gathered)) == parallel
    assert settled == [1]


def test_without_checkpointing_a_step_the_handler_awaits_itself_is_answered_without_a_settling_round(
    settled: list[int],
) -> None:
    """checkpoint=False: a step the handler's own task awaits alone executes at once and its op is the
    answer (one step per invoke, as before), with no round of quiet turns; a gather still settles into
    one parallel group; a step a task reached while it executed is not part of its answer."""
    fn = define(chain("async", [1, 2, 3]), checkpoint=False)
    assert replay(fn) == {"op": "step", "id": "s", "data": 1}
    memo = {"s": {"type": "run", "data": 1}, "s:1": {"type": "run", "data": 2}}
    assert replay(fn, memo) == {"op": "step", "id": "s:2", "data": 3}
    assert replay(fn, {**memo, "s:2": {"type": "run", "data": 3}}) == {"op": "done", "data": [1, 2, 3]}
    assert settled == []

    async def failing(event: Any, step: Any) -> Any:
        def boom() -> None:
            raise ValueError("no")

        return await step.run("x", boom)

    answer = replay(define(failing, checkpoint=False))
    assert answer == {"op": "error", "id": "x", "message": "no", "retryable": True}

    async def gathered(event: Any, step: Any) -> Any:
        return await asyncio.gather(step.run("a", lambda: 1), step.run("b", lambda: 2))

    ops = [{"op": "step", "id": "a", "data": 1}, {"op": "step", "id": "b", "data": 2}]
    assert replay(define(gathered, checkpoint=False)) == {"op": "parallel", "ops": ops}
    assert settled == [1]

    async def handler(event: Any, step: Any) -> Any:
        async def other() -> Any:
            return await step.run("o", lambda: "o")

        async def first() -> str:
            asyncio.get_running_loop().create_task(other())  # reaches "o" while "a" executes
            await asyncio.sleep(0.001)
            return "a"

        return [await step.run("a", first), await step.run("b", lambda: "b")]

    fn = define(handler, checkpoint=False)
    assert replay(fn) == {"op": "step", "id": "a", "data": "a"}  # "o" waited for "a", then stopped


def test_a_step_reached_by_a_task_while_a_step_executes_forms_the_next_round() -> None:
    async def handler(event: Any, step: Any) -> Any:
        async def other() -> Any:
            return await step.run("o", lambda: "o")

        async def first() -> str:
            asyncio.get_running_loop().create_task(other())  # reaches "o" while "a" executes
            await asyncio.sleep(0.001)
            return "a"

        a = await step.run("a", first)
        b = await step.run("b", lambda: "b")
        return [a, b]

    answer = replay(define(handler))
    ops = [{"op": "step", "id": "o", "data": "o"}, {"op": "step", "id": "b", "data": "b"}]
    group = {"op": "parallel", "ops": ops}
    assert answer == {"op": "checkpoint", "steps": [{"id": "a", "data": "a"}], "then": group}


def test_a_lone_step_cancelled_while_it_executes_leaves_the_steps_reached_meanwhile_a_round() -> None:
    """The handler's own task cancelled inside a step it awaited alone (user code catching it goes on):
    the step is not recorded, and a step a task reached meanwhile is still answered, without a hang."""

    async def handler(event: Any, step: Any) -> Any:
        async def other() -> Any:
            return await step.run("o", lambda: "o")

        async def first() -> str:
            asyncio.get_running_loop().create_task(other())
            await asyncio.sleep(0.001)
            current = asyncio.current_task()
            assert current is not None
            current.cancel()
            await asyncio.sleep(0.01)
            return "a"

        try:
            return await step.run("a", first)
        except asyncio.CancelledError:
            return "cancelled"

    async def bounded() -> Any:
        return await asyncio.wait_for(_step.execute_async(define(handler), invoke(), clock=lambda: NOW), 5)

    assert asyncio.run(bounded()) == {"op": "step", "id": "o", "data": "o"}


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited")
def test_a_step_call_the_handler_never_awaits_is_still_answered() -> None:
    async def handler(event: Any, step: Any) -> Any:
        step.run("x", lambda: 1)
        return "r"

    assert replay(define(handler)) == {"op": "step", "id": "x", "data": 1}


# any JSON a step returns

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # big ones too: JSON numbers have no size limit
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=3).map(tuple)  # JSON keeps a tuple as an array
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(JSON, min_size=1, max_size=6), style=st.sampled_from(STYLES))
def test_any_json_results_are_answered_exactly_and_seen_as_replayed(values: list[Any], style: str) -> None:
    expected = [json.loads(json.dumps(value)) for value in values]  # what a replay returns
    bounds = Checkpoint(max_steps=1000, max_bytes=4 * 1024 * 1024, max_ms=60_000)  # none is reached
    fn = define(chain(style, values), checkpoint=bounds)
    op = replay(fn)
    assert op["op"] == "checkpoint" and op["then"]["op"] == "done"
    assert same(op["then"]["data"], expected)  # the values the handler saw, as it returned them
    wire = json.loads(_step.encode(op))  # the answer as the engine reads it
    assert [item["id"] for item in wire["steps"]] == ids(len(values))
    assert same([item["data"] for item in wire["steps"]], expected)
    memo = {item["id"]: {"type": "run", "data": item["data"]} for item in wire["steps"]}
    assert same(replay(fn, memo)["data"], expected)  # and what a replay gives it
