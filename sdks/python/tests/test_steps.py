"""Step behaviour beyond the shared vectors: call counts, concurrency, swallowed interrupts, bad arguments."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest

import durable_sdk
from durable_sdk import StepInterrupt, _step

NOW = 1767225600123  # 2026-01-01T00:00:00.123Z


def invoke(steps: dict[str, Any] | None = None, data: Any = None) -> dict[str, Any]:
    event = {"id": "e1", "name": "t", "data": data or {}, "ts": NOW}
    return {"runId": "r1", "functionId": "f", "attempt": 1, "event": event, "steps": steps or {}}


Checkpointing = bool | durable_sdk.Checkpoint


def run_sync(
    handler: Any, steps: dict[str, Any] | None = None, data: Any = None, checkpoint: Checkpointing = True
) -> dict[str, Any]:
    fn = durable_sdk.function(id="f", trigger={"event": "t"}, checkpoint=checkpoint)(handler)
    return _step.execute_sync(fn, invoke(steps, data), clock=lambda: NOW)


def run_async(
    handler: Any, steps: dict[str, Any] | None = None, data: Any = None, checkpoint: Checkpointing = True
) -> dict[str, Any]:
    fn = durable_sdk.function(id="f", trigger={"event": "t"}, checkpoint=checkpoint)(handler)
    return asyncio.run(_step.execute_async(fn, invoke(steps, data), clock=lambda: NOW))


def test_interrupt_is_not_an_exception() -> None:
    assert issubclass(StepInterrupt, BaseException)
    assert not issubclass(StepInterrupt, Exception)


def test_memoized_steps_never_run_and_without_checkpointing_only_the_first_new_one_does() -> None:
    calls: list[str] = []

    def track(name: str) -> Any:
        def fn() -> str:
            calls.append(name)
            return name

        return fn

    def handler(event: Any, step: Any) -> Any:
        for name in ("a", "b", "c"):
            step.run(name, track(name))

    memo = {"a": {"type": "run", "data": "a"}}
    assert run_sync(handler, memo, checkpoint=False) == {"op": "step", "id": "b", "data": "b"}
    assert calls == ["b"]
    calls.clear()
    steps = [{"id": "b", "data": "b"}, {"id": "c", "data": "c"}]
    assert run_sync(handler, memo) == {
        "op": "checkpoint",
        "steps": steps,
        "then": {"op": "done", "data": None},
    }
    assert calls == ["b", "c"]


def test_async_step_function_is_awaited_and_plain_handler_gets_values() -> None:
    async def fetch() -> int:
        await asyncio.sleep(0)
        return 7

    seen: list[Any] = []

    def handler(event: Any, step: Any) -> Any:
        seen.append(step.run("memo", fetch))
        return step.run("fresh", fetch)

    fresh = {"op": "checkpoint", "steps": [{"id": "fresh", "data": 7}], "then": {"op": "done", "data": 7}}
    assert run_sync(handler, {"memo": {"type": "run", "data": 3}}) == fresh
    assert seen == [3]


def test_gathered_new_steps_execute_together_unless_a_sleep_is_among_them() -> None:
    calls: list[str] = []

    async def slow(name: str) -> str:
        calls.append(name)
        await asyncio.sleep(0.01)
        return name

    async def handler(event: Any, step: Any) -> Any:
        return await asyncio.gather(
            step.run("one", lambda: slow("one")),
            step.run("two", lambda: slow("two")),
            step.sleep("three", "1s"),
        )

    op = run_async(handler)
    assert (op["op"], op["id"], op["retryable"]) == ("error", "three", False)
    assert calls == []  # refused as a whole: nothing executed
    memo = {"three": {"type": "sleep"}}
    assert run_async(handler, memo) == {
        "op": "parallel",
        "ops": [{"op": "step", "id": "one", "data": "one"}, {"op": "step", "id": "two", "data": "two"}],
    }
    assert sorted(calls) == ["one", "two"]


@pytest.mark.parametrize("checkpoint", [False, durable_sdk.Checkpoint(max_steps=1)], ids=["off", "bound"])
@pytest.mark.parametrize("style", ["sync", "async"])
def test_a_swallowed_interrupt_still_answers_the_step(style: str, checkpoint: Checkpointing) -> None:
    ran: list[str] = []

    def plain(event: Any, step: Any) -> Any:
        try:  # noqa: SIM105 - spelled out: this is the user code under test
            step.run("a", lambda: 1)
        except BaseException:  # user code that should not do this
            pass
        step.run("b", lambda: ran.append("b"))  # a second new step must not run either
        return "done anyway"

    async def coroutine(event: Any, step: Any) -> Any:
        try:  # noqa: SIM105 - spelled out: this is the user code under test
            await step.run("a", lambda: 1)
        except BaseException:
            pass
        await step.run("b", lambda: ran.append("b"))
        return "done anyway"

    runner = run_sync if style == "sync" else run_async
    op = runner(plain if style == "sync" else coroutine, checkpoint=checkpoint)
    assert op == {"op": "step", "id": "a", "data": 1}
    assert ran == []


def test_sleep_accepts_a_timedelta() -> None:
    def handler(event: Any, step: Any) -> Any:
        step.sleep("nap", dt.timedelta(minutes=1, milliseconds=5))

    assert run_sync(handler) == {"op": "sleep", "id": "nap", "until": "2026-01-01T00:01:00.128Z"}


def test_default_clock_is_wall_time() -> None:
    def handler(event: Any, step: Any) -> Any:
        step.sleep("nap", 0)

    fn = durable_sdk.function(id="f", trigger={"event": "t"})(handler)
    before = time.time()
    until = _step.execute_sync(fn, invoke())["until"]
    moment = dt.datetime.strptime(until, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()
    assert before - 0.002 <= moment <= time.time() + 0.002


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda step: step.sleep("nap", "soon"), "step.sleep('nap'): invalid duration 'soon'"),
        (
            lambda step: step.wait_for_event("w", event="x", timeout=None),
            "step.wait_for_event('w'): invalid duration None",
        ),
        (
            lambda step: step.wait_for_event("w", event="", timeout="1s"),
            "step.wait_for_event('w'): event must be",
        ),
        (
            lambda step: step.wait_for_event("w", event="x", match=["a"], timeout="1s"),
            "step.wait_for_event('w'): match must be a dict",
        ),
        (lambda step: step.run("", lambda: 1), "step id must be a non-empty string"),
    ],
)
def test_bad_step_arguments_fail_the_run(call: Any, message: str) -> None:
    op = run_sync(lambda event, step: call(step))
    assert op["op"] == "error" and op["id"] is None and op["retryable"] is False
    assert op["message"].startswith(message)


def test_error_without_message_names_its_type_and_nan_is_not_json() -> None:
    def empty(event: Any, step: Any) -> Any:
        raise KeyError

    assert run_sync(empty) == {"op": "error", "id": None, "message": "KeyError", "retryable": True}
    op = run_sync(lambda event, step: step.run("x", lambda: float("nan")))
    assert op["id"] == "x" and op["retryable"] is False and "not JSON-serialisable" in op["message"]
