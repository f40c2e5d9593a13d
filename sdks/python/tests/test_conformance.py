"""Every case of spec/conformance/cases.json, for async and plain handlers, in-process and over the apps.

The reference handlers below follow spec/conformance/README.md; the TypeScript and PHP SDKs implement
the same handlers and run the same cases.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import durable_sdk
from durable_sdk import InvokeError, NonRetryableError, _step

CASES = json.loads((Path(__file__).resolve().parents[3] / "spec/conformance/cases.json").read_text())
NOT_JSON = {1, 2}  # a set: Python cannot JSON-encode it


def later(value: Any) -> Any:
    """An async step function returning ``value``: the SDK must await it."""

    async def fn() -> Any:
        await asyncio.sleep(0)
        return value

    return fn


def boom(exc: Exception) -> Any:
    def fn() -> Any:
        raise exc

    return fn


# Plain `def` reference handlers: step calls return values.
def three_steps(event: Any, step: Any) -> Any:
    a = step.run("a", lambda: 1)
    b = step.run("b", later("two"))  # a plain handler may still use an async step function
    c = step.run("c", lambda: {"three": 3})
    return {"a": a, "b": b, "c": c}


def sleep_then_done(event: Any, step: Any) -> Any:
    step.sleep("nap", "1h")
    return "rested"


def sleep_mixed(event: Any, step: Any) -> Any:
    step.sleep("long", "1w2d3h4m5s6ms")
    step.sleep("short", 1500)
    return "awake"


def wait_approval(event: Any, step: Any) -> Any:
    approval = step.wait_for_event(
        "approval", event="approval.received", match={"orderId": event["data"]["orderId"]}, timeout="2d"
    )
    if approval is None:
        return {"approved": False}
    return {"approved": True, "by": approval["data"]["by"]}


def wait_any(event: Any, step: Any) -> Any:
    return {"got": step.wait_for_event("ping", event="ping.sent", timeout=90_000)}


def loop_fetch(event: Any, step: Any) -> Any:
    return [step.run("fetch", lambda i=i: i) for i in range(3)]


def same_id_everywhere(event: Any, step: Any) -> Any:
    r = step.run("x", lambda: "r")
    step.sleep("x", "1s")
    w = step.wait_for_event("x", event="go", timeout="1m")
    return {"run": r, "wait": w}


def throws(event: Any, step: Any) -> Any:
    step.run("explode", boom(RuntimeError("boom")))
    return "unreachable"


def throws_fatal(event: Any, step: Any) -> Any:
    step.run("explode", boom(NonRetryableError("bad input")))
    return "unreachable"


def handler_throws(event: Any, step: Any) -> Any:
    step.run("before", lambda: "ok")
    error = NonRetryableError if event["data"]["fatal"] else RuntimeError
    raise error(event["data"]["message"])


def guarded_step(event: Any, step: Any) -> Any:
    try:
        return step.run("guarded", boom(RuntimeError("boom")) if event["data"]["fail"] else lambda: "ok")
    except Exception:
        return "swallowed"


def non_serialisable(event: Any, step: Any) -> Any:
    return step.run("bad", lambda: NOT_JSON)


def non_serialisable_result(event: Any, step: Any) -> Any:
    return NOT_JSON


def batch_sum(event: Any, step: Any) -> Any:
    total = step.run("sum", lambda: sum(item["data"]["n"] for item in event["data"]))
    return {"count": len(event["data"]), "sum": total}


def cron_echo(event: Any, step: Any) -> Any:
    return event["data"]["cron"]


def invoke_child(event: Any, step: Any) -> Any:
    try:
        r = step.invoke(
            "charge", function="charge-card", data={"orderId": event["data"]["orderId"]}, timeout="1h"
        )
        return {"charged": r}
    except InvokeError as e:
        return {"failed": e.message, "reason": e.reason, "child": e.run_id}


def invoke_forever(event: Any, step: Any) -> Any:
    return step.invoke("child", function="child-fn", data={})


def send_events(event: Any, step: Any) -> Any:
    ids = step.send_event(
        "notify",
        [
            {"name": "order.shipped", "data": {"orderId": event["data"]["orderId"]}},
            {"name": "audit", "data": {}, "id": "audit-" + event["id"]},
        ],
    )
    one = step.send_event("single", {"name": "ping.sent", "data": {"n": 1}})
    return {"ids": ids, "one": one}


def parallel_two(event: Any, step: Any) -> Any:
    a, b = step.parallel([lambda: step.run("a", lambda: 1), lambda: step.run("b", later(2))])
    return step.run("c", lambda: a + b)


def parallel_mixed(event: Any, step: Any) -> Any:
    x, child, ids = step.parallel(
        [
            lambda: step.run("x", lambda: "x"),
            lambda: step.invoke("kid", function="child-fn", data={"n": 1}),
            lambda: step.send_event("tell", {"name": "told", "data": {}}),
        ]
    )
    return {"x": x, "child": child, "ids": ids}


def parallel_error(event: Any, step: Any) -> Any:
    step.parallel([lambda: step.run("ok", lambda: 1), lambda: step.run("bad", boom(RuntimeError("boom")))])
    return "unreachable"


def parallel_sleep(event: Any, step: Any) -> Any:
    step.parallel([lambda: step.run("a", lambda: 1), lambda: step.sleep("nap", "1m")])
    return "unreachable"


def steps_then_sleep(event: Any, step: Any) -> Any:
    a = step.run("a", lambda: 1)
    b = step.run("b", later(a + 1))
    step.sleep("nap", "1h")
    return step.run("c", lambda: b + 1)


def step_then_wait(event: Any, step: Any) -> Any:
    a = step.run("a", lambda: "x")
    w = step.wait_for_event("w", event="go", timeout="1m")
    return {"a": a, "w": w}


def step_then_invoke(event: Any, step: Any) -> Any:
    a = step.run("a", lambda: 1)
    return step.invoke("kid", function="child-fn", data={"n": a})


def step_then_send(event: Any, step: Any) -> Any:
    a = step.run("a", lambda: 1)
    return step.send_event("tell", {"name": "told", "data": {"a": a}})


def step_then_parallel(event: Any, step: Any) -> Any:
    a = step.run("a", lambda: 1)
    b, c = step.parallel([lambda: step.run("b", lambda: 2), lambda: step.run("c", later(3))])
    return a + b + c


def step_then_throw(event: Any, step: Any) -> Any:
    step.run("ok", lambda: 1)
    step.run("explode", boom(RuntimeError("boom")))
    return "unreachable"


# `async def` reference handlers: the same logic, step calls awaited.
async def three_steps_async(event: Any, step: Any) -> Any:
    a = await step.run("a", later(1))
    b = await step.run("b", lambda: "two")
    c = await step.run("c", later({"three": 3}))
    return {"a": a, "b": b, "c": c}


async def sleep_then_done_async(event: Any, step: Any) -> Any:
    await step.sleep("nap", "1h")
    return "rested"


async def sleep_mixed_async(event: Any, step: Any) -> Any:
    await step.sleep("long", "1w2d3h4m5s6ms")
    await step.sleep("short", 1500)
    return "awake"


async def wait_approval_async(event: Any, step: Any) -> Any:
    approval = await step.wait_for_event(
        "approval", event="approval.received", match={"orderId": event["data"]["orderId"]}, timeout="2d"
    )
    if approval is None:
        return {"approved": False}
    return {"approved": True, "by": approval["data"]["by"]}


async def wait_any_async(event: Any, step: Any) -> Any:
    return {"got": await step.wait_for_event("ping", event="ping.sent", timeout=90_000)}


async def loop_fetch_async(event: Any, step: Any) -> Any:
    return [await step.run("fetch", later(i)) for i in range(3)]


async def same_id_everywhere_async(event: Any, step: Any) -> Any:
    r = await step.run("x", lambda: "r")
    await step.sleep("x", "1s")
    w = await step.wait_for_event("x", event="go", timeout="1m")
    return {"run": r, "wait": w}


async def throws_async(event: Any, step: Any) -> Any:
    async def explode() -> None:
        raise RuntimeError("boom")

    await step.run("explode", explode)
    return "unreachable"


async def throws_fatal_async(event: Any, step: Any) -> Any:
    await step.run("explode", boom(NonRetryableError("bad input")))
    return "unreachable"


async def handler_throws_async(event: Any, step: Any) -> Any:
    await step.run("before", lambda: "ok")
    error = NonRetryableError if event["data"]["fatal"] else RuntimeError
    raise error(event["data"]["message"])


async def guarded_step_async(event: Any, step: Any) -> Any:
    try:
        return await step.run("guarded", boom(RuntimeError("boom")) if event["data"]["fail"] else later("ok"))
    except Exception:
        return "swallowed"


async def non_serialisable_async(event: Any, step: Any) -> Any:
    return await step.run("bad", later(NOT_JSON))


async def non_serialisable_result_async(event: Any, step: Any) -> Any:
    return NOT_JSON


async def batch_sum_async(event: Any, step: Any) -> Any:
    total = await step.run("sum", lambda: sum(item["data"]["n"] for item in event["data"]))
    return {"count": len(event["data"]), "sum": total}


async def cron_echo_async(event: Any, step: Any) -> Any:
    return event["data"]["cron"]


async def invoke_child_async(event: Any, step: Any) -> Any:
    try:
        r = await step.invoke(
            "charge", function="charge-card", data={"orderId": event["data"]["orderId"]}, timeout="1h"
        )
        return {"charged": r}
    except InvokeError as e:
        return {"failed": e.message, "reason": e.reason, "child": e.run_id}


async def invoke_forever_async(event: Any, step: Any) -> Any:
    return await step.invoke("child", function="child-fn", data={})


async def send_events_async(event: Any, step: Any) -> Any:
    ids = await step.send_event(
        "notify",
        [
            {"name": "order.shipped", "data": {"orderId": event["data"]["orderId"]}},
            {"name": "audit", "data": {}, "id": "audit-" + event["id"]},
        ],
    )
    one = await step.send_event("single", {"name": "ping.sent", "data": {"n": 1}})
    return {"ids": ids, "one": one}


async def parallel_two_async(event: Any, step: Any) -> Any:
    a, b = await asyncio.gather(step.run("a", later(1)), step.run("b", lambda: 2))
    return await step.run("c", lambda: a + b)


async def parallel_mixed_async(event: Any, step: Any) -> Any:
    x, child, ids = await asyncio.gather(
        step.run("x", later("x")),
        step.invoke("kid", function="child-fn", data={"n": 1}),
        step.send_event("tell", {"name": "told", "data": {}}),
    )
    return {"x": x, "child": child, "ids": ids}


async def parallel_error_async(event: Any, step: Any) -> Any:
    async def explode() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    await asyncio.gather(step.run("ok", later(1)), step.run("bad", explode))
    return "unreachable"


async def parallel_sleep_async(event: Any, step: Any) -> Any:
    await asyncio.gather(step.run("a", lambda: 1), step.sleep("nap", "1m"))
    return "unreachable"


async def steps_then_sleep_async(event: Any, step: Any) -> Any:
    a = await step.run("a", later(1))
    b = await step.run("b", lambda: a + 1)
    await step.sleep("nap", "1h")
    return await step.run("c", later(b + 1))


async def step_then_wait_async(event: Any, step: Any) -> Any:
    a = await step.run("a", later("x"))
    w = await step.wait_for_event("w", event="go", timeout="1m")
    return {"a": a, "w": w}


async def step_then_invoke_async(event: Any, step: Any) -> Any:
    a = await step.run("a", later(1))
    return await step.invoke("kid", function="child-fn", data={"n": a})


async def step_then_send_async(event: Any, step: Any) -> Any:
    a = await step.run("a", lambda: 1)
    return await step.send_event("tell", {"name": "told", "data": {"a": a}})


async def step_then_parallel_async(event: Any, step: Any) -> Any:
    a = await step.run("a", later(1))
    b, c = await asyncio.gather(step.run("b", lambda: 2), step.run("c", later(3)))
    return a + b + c


async def step_then_throw_async(event: Any, step: Any) -> Any:
    async def explode() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    await step.run("ok", later(1))
    await step.run("explode", explode)
    return "unreachable"


HANDLERS = {
    name: (globals()[name], globals()[name + "_async"]) for name in {case["handler"] for case in CASES}
}
MODES = ["sync", "async", "wsgi", "asgi"]


def checkpoint_option(case: dict[str, Any]) -> bool | durable_sdk.Checkpoint:
    """The case's ``checkpoint``: absent is off (the cases before checkpointing keep their meaning),
    ``true``/``false`` as given, an object its bounds (camelCase in the vectors)."""
    value = case.get("checkpoint", False)
    if isinstance(value, bool):
        return value
    names = {"maxSteps": "max_steps", "maxBytes": "max_bytes", "maxMs": "max_ms"}
    return durable_sdk.Checkpoint(**{names[key]: bound for key, bound in value.items()})


def check(actual: dict[str, Any], case: dict[str, Any]) -> None:
    expect = dict(case["expect"])
    if case.get("messageIsPrefix"):
        assert actual["message"].startswith(expect["message"]), actual["message"]
        expect["message"] = actual["message"]
    # canonical JSON tells true from 1 and null from absent
    assert json.dumps(actual, sort_keys=True) == json.dumps(expect, sort_keys=True)


def test_cases_cover_every_op_and_handler() -> None:
    ops = {"step", "sleep", "wait", "done", "error", "invoke", "send", "parallel", "checkpoint"}
    assert {case["expect"]["op"] for case in CASES} == ops
    thens = {case["expect"]["then"]["op"] for case in CASES if case["expect"].get("then")}
    assert thens == {"sleep", "wait", "invoke", "send", "parallel", "done", "error"}
    assert {type(case.get("checkpoint")).__name__ for case in CASES} == {"NoneType", "bool", "dict"}
    assert len({case["name"] for case in CASES}) == len(CASES)
    assert set(HANDLERS) == {name for name in globals() if name + "_async" in globals()}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_case(
    case: dict[str, Any],
    mode: str,
    key: str,
    asgi_request: Any,
    wsgi_request: Any,
    invoke_headers: Any,
    check_answer: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invoke = case["invoke"]
    plain, coroutine = HANDLERS[case["handler"]]
    handler = plain if mode in ("sync", "wsgi") else coroutine
    trigger = {"event": invoke["event"]["name"]}
    fn = durable_sdk.function(id=invoke["functionId"], trigger=trigger, checkpoint=checkpoint_option(case))(
        handler
    )
    clock = lambda: case["now"]  # noqa: E731
    monkeypatch.setattr(_step, "_monotonic_ms", lambda: 0.0)  # a case's clock stands still: no max_ms
    if mode == "sync":
        op = _step.execute_sync(fn, json.loads(json.dumps(invoke)), clock=clock)
    elif mode == "async":
        op = asyncio.run(_step.execute_async(fn, json.loads(json.dumps(invoke)), clock=clock))
    else:
        monkeypatch.setattr(_step, "_now_ms", clock)
        body = json.dumps(invoke).encode()
        request = asgi_request if mode == "asgi" else wsgi_request
        serve = durable_sdk.serve if mode == "asgi" else durable_sdk.serve_wsgi
        headers = invoke_headers(body, key, t=case["now"])  # the SDK clock reads case["now"]
        answer = request(serve([fn], signing_key=key), body=body, headers=headers)
        assert answer.status == 200
        check_answer(answer, key, headers, now=case["now"])
        op = answer.json()
    check(op, case)
