"""Composition beyond the shared vectors: invoke, send_event, parallel steps and on_failure handlers."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from typing import Any

import pytest

import durable_sdk
from durable_sdk import InvokeError, NonRetryableError, _step

NOW = 1767225600123  # 2026-01-01T00:00:00.123Z
STYLES = ["sync", "async"]


def invoke(steps: dict[str, Any] | None = None, data: Any = None, function_id: str = "f") -> dict[str, Any]:
    event = {"id": "e1", "name": "t", "data": data or {}, "ts": NOW}
    return {"runId": "r1", "functionId": function_id, "attempt": 1, "event": event, "steps": steps or {}}


def replay(
    handler: Any,
    steps: dict[str, Any] | None = None,
    data: Any = None,
    checkpoint: bool | durable_sdk.Checkpoint = True,
) -> dict[str, Any]:
    fn = durable_sdk.function(id="f", trigger={"event": "t"}, checkpoint=checkpoint)(handler)
    if _step.is_async(fn):
        return asyncio.run(_step.execute_async(fn, invoke(steps, data), clock=lambda: NOW))
    return _step.execute_sync(fn, invoke(steps, data), clock=lambda: NOW)


def both(plain: Any, coroutine: Any) -> dict[str, Any]:
    """Replay a plain and an async handler against no memo; they must answer the same op."""
    answers = [replay(plain), replay(coroutine)]
    assert answers[0] == answers[1]
    return answers[0]


@durable_sdk.function(id="charge-card", trigger=None)
def charge(event: Any, step: Any) -> Any:
    return {"charged": event["data"]["orderId"]}


FAILED = {"message": "card declined", "reason": "failed", "runId": "run-c", "functionId": "charge-card"}


# invoke


def test_invoke_takes_a_function_object_and_defaults_data_and_timeout() -> None:
    async def coroutine(event: Any, step: Any) -> Any:
        return await step.invoke("pay", function=charge)

    op = both(lambda event, step: step.invoke("pay", function=charge), coroutine)
    assert op == {"op": "invoke", "id": "pay", "function": "charge-card", "data": {}, "until": None}


@pytest.mark.parametrize(
    ("timeout", "until"),
    [(90_000, "2026-01-01T00:01:30.123Z"), (dt.timedelta(days=1), "2026-01-02T00:00:00.123Z")],
)
def test_invoke_timeout_is_a_duration(timeout: Any, until: str) -> None:
    op = replay(lambda event, step: step.invoke("pay", function="x", data={"n": 1}, timeout=timeout))
    assert op == {"op": "invoke", "id": "pay", "function": "x", "data": {"n": 1}, "until": until}


@pytest.mark.parametrize("style", STYLES)
def test_invoke_error_is_an_ordinary_exception_with_the_child_details(style: str) -> None:
    caught: list[InvokeError] = []

    def plain(event: Any, step: Any) -> Any:
        try:
            step.invoke("pay", function=charge)
        except Exception as exc:  # the catch-all of user code: InvokeError is an ordinary error
            assert isinstance(exc, InvokeError)
            caught.append(exc)
        return "handled"

    async def coroutine(event: Any, step: Any) -> Any:
        try:
            await step.invoke("pay", function=charge)
        except Exception as exc:
            assert isinstance(exc, InvokeError)
            caught.append(exc)
        return "handled"

    memo = {"pay": {"type": "invoke", "data": None, "error": FAILED}}
    assert replay(plain if style == "sync" else coroutine, memo) == {"op": "done", "data": "handled"}
    (error,) = caught
    assert (error.message, error.reason, error.run_id, error.function_id) == (
        "card declined",
        "failed",
        "run-c",
        "charge-card",
    )
    assert str(error) == "card declined" and isinstance(error, NonRetryableError)


@pytest.mark.parametrize("style", STYLES)
def test_an_uncaught_invoke_error_fails_the_run_at_once(style: str) -> None:
    def plain(event: Any, step: Any) -> Any:
        return step.invoke("pay", function="charge-card")

    async def coroutine(event: Any, step: Any) -> Any:
        return await step.invoke("pay", function="charge-card")

    memo = {"pay": {"type": "invoke", "data": None, "error": {**FAILED, "reason": "cancelled"}}}
    op = replay(plain if style == "sync" else coroutine, memo)
    assert op == {"op": "error", "id": None, "message": "card declined", "retryable": False}


def test_a_memoized_invoke_without_error_returns_the_child_output_even_null() -> None:
    memo = {"pay": {"type": "invoke", "data": None}}
    assert replay(lambda event, step: {"out": step.invoke("pay", function="x")}, memo) == {
        "op": "done",
        "data": {"out": None},
    }


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda step: step.invoke("i", function=""), "step.invoke('i'): function must be"),
        (lambda step: step.invoke("i", function=charge.handler), "step.invoke('i'): function must be"),
        (lambda step: step.invoke("i", function="x", data=[1]), "step.invoke('i'): data must be a dict"),
        (lambda step: step.invoke("i", function="x", data={"s": {1}}), "step.invoke('i'): data is not JSON"),
        (lambda step: step.invoke("i", function="x", timeout="soon"), "step.invoke('i'): invalid duration"),
    ],
)
def test_bad_invoke_arguments_fail_the_run(call: Any, message: str) -> None:
    op = replay(lambda event, step: call(step))
    assert op["op"] == "error" and op["id"] is None and op["retryable"] is False
    assert op["message"].startswith(message)


# send_event


def test_send_event_passes_the_events_through_with_data_defaulting_to_an_empty_object() -> None:
    events = [
        {"name": "a", "id": "e-1", "ts": 1767225600000, "idempotencyKey": "k-1"},
        {"name": "b", "data": {"n": 1}},
    ]

    async def coroutine(event: Any, step: Any) -> Any:
        return await step.send_event("tell", events)

    op = both(lambda event, step: step.send_event("tell", events), coroutine)
    assert op == {
        "op": "send",
        "id": "tell",
        "events": [
            {"name": "a", "data": {}, "id": "e-1", "ts": 1767225600000, "idempotencyKey": "k-1"},
            {"name": "b", "data": {"n": 1}},
        ],
    }


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ({"name": ""}, "step.send_event('tell'): event.name must be a non-empty string"),
        ([{"name": "a"}, {"data": {}}], "step.send_event('tell'): events[1].name must be a non-empty string"),
        ([{"name": 5}], "step.send_event('tell'): events[0].name must be a non-empty string"),
        ([], "step.send_event('tell'): events must be"),
        ("a.b", "step.send_event('tell'): events must be"),
        ([{"name": "a"}] * 101, "step.send_event('tell'): at most 100 events"),
        ([{"name": "a", "topic": "x"}], "step.send_event('tell'): events[0]: unknown field 'topic'"),
        ([{"name": "a", "data": [1]}], "step.send_event('tell'): events[0].data must be a dict"),
        ([{"name": "a", "data": {"s": {1}}}], "step.send_event('tell'): events is not JSON-serialisable"),
    ],
)
def test_bad_events_fail_the_run_naming_the_step(events: Any, message: str) -> None:
    op = replay(lambda event, step: step.send_event("tell", events))
    assert op["op"] == "error" and op["retryable"] is False
    assert op["message"].startswith(message)


# parallel steps


def test_gathered_run_steps_execute_concurrently_in_one_invoke() -> None:
    calls: list[str] = []

    async def slow(name: str) -> str:
        calls.append(name)
        await asyncio.sleep(0.3)
        return name

    async def handler(event: Any, step: Any) -> Any:
        a, b = await asyncio.gather(step.run("a", lambda: slow("a")), step.run("b", lambda: slow("b")))
        return a + b

    started = time.monotonic()
    op = replay(handler)
    elapsed = time.monotonic() - started
    assert op == {"op": "parallel", "ops": [{"op": "step", "id": "a", "data": "a"}, _ok("b", "b")]}
    assert sorted(calls) == ["a", "b"]
    assert elapsed < 0.5, f"the two 0.3 s steps took {elapsed:.2f} s: they did not overlap"
    memo = {"a": {"type": "run", "data": "a"}, "b": {"type": "run", "data": "b"}}
    assert replay(handler, memo) == {"op": "done", "data": "ab"}
    assert sorted(calls) == ["a", "b"]  # memoized: neither ran again


def test_a_plain_handler_runs_its_parallel_steps_in_threads_at_once() -> None:
    threads: set[int] = set()

    def blocking(value: int) -> Any:
        def fn() -> int:
            threads.add(threading.get_ident())
            time.sleep(0.3)
            return value

        return fn

    def handler(event: Any, step: Any) -> Any:
        return step.parallel([lambda i=i: step.run("n", blocking(i)) for i in range(3)])

    started = time.monotonic()
    op = replay(handler)
    elapsed = time.monotonic() - started
    assert op == {"op": "parallel", "ops": [_ok("n", 0), _ok("n:1", 1), _ok("n:2", 2)]}
    assert len(threads) == 3
    assert elapsed < 0.6, f"three 0.3 s steps took {elapsed:.2f} s: they did not overlap"


def test_step_parallel_is_awaitable_in_async_handlers_with_callables_or_awaitables() -> None:
    async def handler(event: Any, step: Any) -> Any:
        # the awaitable's step is reached when the list is built, the callable's when parallel calls it
        return await step.parallel([step.run("a", lambda: 1), lambda: step.run("b", lambda: 2)])

    assert replay(handler) == {"op": "parallel", "ops": [_ok("a", 1), _ok("b", 2)]}
    memo = {"a": {"type": "run", "data": 10}, "b": {"type": "run", "data": 20}}
    assert replay(handler, memo) == {"op": "done", "data": [10, 20]}


@pytest.mark.parametrize("style", STYLES)
def test_a_failing_branch_is_an_error_op_beside_the_other_branch(style: str) -> None:
    def fail() -> Any:
        raise NonRetryableError("no such order")

    def plain(event: Any, step: Any) -> Any:
        step.parallel([lambda: step.run("bad", fail), lambda: step.run("good", lambda: "ok")])

    async def coroutine(event: Any, step: Any) -> Any:
        await asyncio.gather(step.run("bad", fail), step.run("good", lambda: "ok"))

    assert replay(plain if style == "sync" else coroutine) == {
        "op": "parallel",
        "ops": [
            {"op": "error", "id": "bad", "message": "no such order", "retryable": False},
            _ok("good", "ok"),
        ],
    }


@pytest.mark.parametrize("style", STYLES)
def test_a_wait_reached_with_another_new_step_is_refused_and_nothing_executes(style: str) -> None:
    calls: list[str] = []

    def plain(event: Any, step: Any) -> Any:
        step.parallel(
            [
                lambda: step.run("a", lambda: calls.append("a")),
                lambda: step.wait_for_event("w", event="go", timeout="1h"),
            ]
        )

    async def coroutine(event: Any, step: Any) -> Any:
        await asyncio.gather(
            step.run("a", lambda: calls.append("a")), step.wait_for_event("w", event="go", timeout="1h")
        )

    op = replay(plain if style == "sync" else coroutine)
    assert op["op"] == "error" and op["id"] == "w" and op["retryable"] is False
    assert op["message"].startswith("step 'w': a wait cannot run in parallel with other steps")
    assert calls == []


@pytest.mark.parametrize("style", STYLES)
def test_branches_finish_from_memo_and_one_new_step_left_is_a_plain_op(style: str) -> None:
    def plain(event: Any, step: Any) -> Any:
        return step.parallel(
            [
                lambda: step.run("a", lambda: 1),
                lambda: step.sleep("nap", "1m"),
                lambda: step.run("b", lambda: 2),
            ]
        )

    async def coroutine(event: Any, step: Any) -> Any:
        return await asyncio.gather(
            step.run("a", lambda: 1), step.sleep("nap", "1m"), step.run("b", lambda: 2)
        )

    handler = plain if style == "sync" else coroutine
    memo: dict[str, Any] = {"a": {"type": "run", "data": 1}, "b": {"type": "run", "data": 2}}
    assert replay(handler, memo) == {"op": "sleep", "id": "nap", "until": "2026-01-01T00:01:00.123Z"}
    memo["nap"] = {"type": "sleep"}
    assert replay(handler, memo) == {"op": "done", "data": [1, None, 2]}


def test_a_branch_going_through_memoized_steps_is_waited_for() -> None:
    async def handler(event: Any, step: Any) -> Any:
        async def chain() -> Any:
            first = await step.run("first", lambda: 1)
            inner = await asyncio.gather(step.run("i1", lambda: 2), step.run("i2", lambda: 3))
            return await step.run("last", lambda: [first, *inner])

        return await asyncio.gather(chain(), step.run("other", lambda: "o"))

    memo = {name: {"type": "run", "data": value} for name, value in [("first", 1), ("i1", 2), ("i2", 3)]}
    # `other` is called when gather's arguments are built, before chain's body starts: reach order
    assert replay(handler, memo) == {"op": "parallel", "ops": [_ok("other", "o"), _ok("last", [1, 2, 3])]}


def test_nested_parallel_in_a_plain_handler_reports_every_branch() -> None:
    def handler(event: Any, step: Any) -> Any:
        return step.parallel(
            [
                lambda: step.parallel([lambda: step.run("a", lambda: 1), lambda: step.run("b", lambda: 2)]),
                lambda: step.run("c", lambda: 3),
            ]
        )

    assert replay(handler) == {"op": "parallel", "ops": [_ok("a", 1), _ok("b", 2), _ok("c", 3)]}
    memo = {name: {"type": "run", "data": n} for n, name in enumerate("abc", 1)}
    assert replay(handler, memo) == {"op": "done", "data": [[1, 2], 3]}


@pytest.mark.parametrize("style", STYLES)
def test_a_type_mismatch_among_parallel_steps_is_the_only_answer(style: str) -> None:
    calls: list[str] = []

    def plain(event: Any, step: Any) -> Any:
        step.parallel([lambda: step.run("a", lambda: calls.append("a")), lambda: step.run("b", lambda: 2)])

    async def coroutine(event: Any, step: Any) -> Any:
        await asyncio.gather(step.run("a", lambda: calls.append("a")), step.run("b", lambda: 2))

    op = replay(plain if style == "sync" else coroutine, {"b": {"type": "sleep"}})
    assert op["op"] == "error" and op["id"] == "b" and op["retryable"] is False
    assert op["message"].startswith("step 'b' is recorded as type 'sleep'")
    assert calls == []


@pytest.mark.parametrize("style", STYLES)
def test_a_reached_step_wins_over_an_error_raised_beside_it(style: str) -> None:
    def plain(event: Any, step: Any) -> Any:
        step.parallel([lambda: step.run("a", lambda: 1), lambda: 1 / 0])

    async def coroutine(event: Any, step: Any) -> Any:
        async def broken() -> None:
            raise ZeroDivisionError

        await asyncio.gather(step.run("a", lambda: 1), broken())

    assert replay(plain if style == "sync" else coroutine) == _ok("a", 1)


@pytest.mark.parametrize(
    ("branches", "message"),
    [
        ("ab", "step.parallel: branches must be a list"),
        ([lambda: 1, 2], "step.parallel: branch 1 must be a callable"),
    ],
)
def test_bad_parallel_arguments_fail_the_run(branches: Any, message: str) -> None:
    op = replay(lambda event, step: step.parallel(branches))
    assert op["op"] == "error" and op["retryable"] is False and op["message"].startswith(message)


def test_without_checkpointing_a_sequential_async_handler_answers_one_op_per_invoke() -> None:
    async def handler(event: Any, step: Any) -> Any:
        a = await step.run("a", lambda: 1)
        b = await step.run("b", lambda: 2)
        return a + b

    assert replay(handler, checkpoint=False) == _ok("a", 1)
    assert replay(handler, {"a": {"type": "run", "data": 1}}, checkpoint=False) == _ok("b", 2)
    steps = [{"id": "a", "data": 1}, {"id": "b", "data": 2}]
    assert replay(handler) == {"op": "checkpoint", "steps": steps, "then": {"op": "done", "data": 3}}


# on_failure


def notify_ops(event: Any, step: Any) -> Any:
    return step.run(
        "page", lambda: f"{event['data']['functionId']} failed: {event['data']['error']['message']}"
    )


@durable_sdk.function(id="ship", trigger={"event": "order.paid"}, name="Ship", on_failure=notify_ops)
async def ship(event: Any, step: Any) -> Any:
    return await step.run("label", lambda: "ok")


def test_on_failure_is_a_function_of_its_own_named_after_the_main_one() -> None:
    assert ship.wire["onFailure"] == "ship:failure"
    assert ship.failure is not None and ship.failure.handler is notify_ops
    assert ship.failure.wire == {"id": "ship:failure", "name": "Ship (failure)", "trigger": None}
    nameless = durable_sdk.function(id="x", trigger=None, on_failure=notify_ops)(notify_ops)
    assert nameless.failure is not None and nameless.failure.wire["name"] == "x (failure)"


@pytest.mark.parametrize("mode", ["asgi", "wsgi"])
def test_the_endpoint_dispatches_failure_invokes_to_the_handler(
    mode: str, key: str, asgi_request: Any, wsgi_request: Any, invoke_headers: Any
) -> None:
    failed = {"runId": "r0", "functionId": "ship", "error": {"message": "boom"}, "event": {"name": "x"}}
    body = json.dumps(invoke(data=failed, function_id="ship:failure")).encode()
    request, serve = (
        (asgi_request, durable_sdk.serve) if mode == "asgi" else (wsgi_request, durable_sdk.serve_wsgi)
    )
    answer = request(serve([ship], signing_key=key), body=body, headers=invoke_headers(body, key))
    assert answer.status == 200
    paged = "ship failed: boom"  # the failure handler is checkpointed like the function it belongs to
    steps = [{"id": "page", "data": paged}]
    assert answer.json() == {"op": "checkpoint", "steps": steps, "then": {"op": "done", "data": paged}}
    listing = request(serve([ship], signing_key=key), method="GET")
    assert listing.json() == {"functions": ["ship", "ship:failure"]}


def test_a_failure_id_clash_is_refused() -> None:
    clash = durable_sdk.function(id="ship:failure", trigger=None)(notify_ops)
    with pytest.raises(ValueError, match="duplicate function id 'ship:failure'"):
        durable_sdk.serve([ship, clash], signing_key="k")


def _ok(step_id: str, data: Any) -> dict[str, Any]:
    return {"op": "step", "id": step_id, "data": data}
