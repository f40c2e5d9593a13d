"""Mistakes mypy --strict must report with AsyncStep (tests/test_typing.py counts them)."""

from __future__ import annotations

import durable_sdk


@durable_sdk.function(id="wrong", trigger={"event": "t"})
async def wrong(event: durable_sdk.Event, step: durable_sdk.AsyncStep) -> int:
    name: str = await step.run("a", lambda: 1)  # error: int is not str
    missing: int = step.run("b", lambda: 2)  # error: forgot await
    return len(name) + missing


@durable_sdk.function(id="wrong-option", trigger=None, checkpoint={"max_steps": 2})  # error: not a Checkpoint
def wrong_option(event: durable_sdk.Event, step: durable_sdk.SyncStep) -> None:
    durable_sdk.Checkpoint(max_steps="2")  # error: not an int
