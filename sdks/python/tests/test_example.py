"""The example app's functions (examples/python/app.py) replay as its README describes."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import Any

from durable_sdk import _step

spec = importlib.util.spec_from_file_location(
    "durable_example_app", Path(__file__).resolve().parents[3] / "examples/python/app.py"
)
assert spec and spec.loader
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)
NOW = 1767225600000


def replay(function: Any, data: dict[str, Any], steps: dict[str, Any]) -> dict[str, Any]:
    invoke = {
        "runId": "r",
        "functionId": function.id,
        "attempt": 1,
        "steps": steps,
        "event": {"id": "e", "name": "x", "data": data, "ts": NOW},
    }
    if _step.is_async(function):
        return asyncio.run(_step.execute_async(function, invoke, clock=lambda: NOW))
    return _step.execute_sync(function, invoke, clock=lambda: NOW)


def checkpoint(steps: list[tuple[str, Any]], then: dict[str, Any]) -> dict[str, Any]:
    """The answer of an invoke that executed ``steps`` (checkpointing is on by default), then ``then``."""
    return {"op": "checkpoint", "steps": [{"id": id, "data": data} for id, data in steps], "then": then}


def test_onboarding_runs_load_user_sleeps_two_seconds_then_sends_email() -> None:
    user = {"id": "ada", "email": "ada@example.com"}
    steps: dict[str, Any] = {}
    assert replay(example.onboarding, {"userId": "ada"}, steps) == checkpoint(
        [("load-user", user)], {"op": "sleep", "id": "cooldown", "until": "2026-01-01T00:00:02.000Z"}
    )
    steps["load-user"] = {"type": "run", "data": user}
    steps["cooldown"] = {"type": "sleep"}
    email = {"to": "ada@example.com", "template": "welcome"}
    assert replay(example.onboarding, {"userId": "ada"}, steps) == checkpoint(
        [("send-email", email)], {"op": "done", "data": {"user": "ada", "email": email}}
    )
    steps["send-email"] = {"type": "run", "data": email}
    assert replay(example.onboarding, {"userId": "ada"}, steps) == {
        "op": "done",
        "data": {"user": "ada", "email": email},
    }


def test_approval_waits_an_hour_for_the_matching_event() -> None:
    order = {"orderId": "o1"}
    assert replay(example.approval, order, {}) == {
        "op": "wait",
        "id": "approve",
        "event": "approval.received",
        "match": order,
        "until": "2026-01-01T01:00:00.000Z",
    }
    approved = {"id": "e2", "name": "approval.received", "data": {"orderId": "o1", "by": "bob"}, "ts": NOW}
    for decision, by in ((approved, "bob"), (None, None)):
        record = {"orderId": "o1", "approved": decision is not None, "by": by}
        assert replay(example.approval, order, {"approve": {"type": "wait", "data": decision}}) == checkpoint(
            [("record", record)], {"op": "done", "data": record}
        )
