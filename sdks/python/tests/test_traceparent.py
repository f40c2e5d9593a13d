"""The engine's traceparent reaches the handler (`step.traceparent`): user spans can join the run's trace."""

from __future__ import annotations

import asyncio
from typing import Any

import durable_sdk
from durable_sdk._serve import parse_traceparent
from durable_sdk._step import execute_async, execute_sync

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _invoke(traceparent: str | None) -> dict[str, Any]:
    invoke: dict[str, Any] = {
        "runId": "r1",
        "functionId": "traced",
        "attempt": 1,
        "event": {"id": "e1", "name": "go", "data": {}, "ts": 0},
        "steps": {},
    }
    if traceparent is not None:
        invoke["traceparent"] = traceparent
    return invoke


def test_both_handler_styles_see_the_invokes_traceparent() -> None:
    @durable_sdk.function(id="traced", trigger={"event": "go"})
    async def traced(event: Any, step: durable_sdk.Step) -> Any:
        return step.traceparent

    @durable_sdk.function(id="traced", trigger={"event": "go"})
    def plain(event: Any, step: durable_sdk.Step) -> Any:
        return step.traceparent

    assert asyncio.run(execute_async(traced, _invoke(TRACEPARENT))) == {"op": "done", "data": TRACEPARENT}
    assert execute_sync(plain, _invoke(TRACEPARENT)) == {"op": "done", "data": TRACEPARENT}
    assert execute_sync(plain, _invoke(None)) == {"op": "done", "data": None}


def test_a_malformed_traceparent_is_dropped() -> None:
    assert parse_traceparent(TRACEPARENT) == TRACEPARENT
    for bad in ("", "00-xyz", "00-" + "0" * 32 + "-b7ad6b7169203331-01", TRACEPARENT + "\\n"):
        assert parse_traceparent(bad) is None
