"""Handlers typed with AsyncStep / SyncStep: mypy --strict accepts this file (tests/test_typing.py)."""

from __future__ import annotations

import asyncio

import durable_sdk


async def fetch() -> int:
    return 2


@durable_sdk.function(id="typed-async", trigger={"event": "t"})
async def typed_async(event: durable_sdk.Event, step: durable_sdk.AsyncStep) -> dict[str, object]:
    a: int = await step.run("a", lambda: 1)
    b: int = await step.run("b", fetch)
    c, d = await asyncio.gather(step.run("c", lambda: "x"), step.run("d", fetch))
    ids: list[str] = await step.send_event("tell", {"name": "told", "data": {}})
    reply = await step.wait_for_event("w", event="approved", timeout="1m")
    await step.sleep("nap", "1s")
    return {"sum": a + b + d, "c": c.upper(), "ids": ids, "by": reply and reply["data"]}


@durable_sdk.function(
    id="typed-sync", trigger={"event": "t"}, checkpoint=durable_sdk.Checkpoint(max_steps=10)
)
def typed_sync(event: durable_sdk.Event, step: durable_sdk.SyncStep) -> int:
    a = step.run("a", lambda: 1)
    b, c = step.parallel([lambda: step.run("b", lambda: 2), lambda: step.run("c", lambda: 3)])
    return a + b + c


bounds: durable_sdk.Checkpoint = durable_sdk.Checkpoint(max_bytes=65_536, max_ms=500)
steps: int = bounds.max_steps
off = durable_sdk.function(id="one-step-per-invoke", trigger=None, checkpoint=False)(typed_sync.handler)
