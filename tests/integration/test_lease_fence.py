"""No invoke without a live lease (DESIGN.md §8.9): a worker that stalled between its claim and the
invoke, past its lease, must not call the app; one whose lease still holds after renewing goes on."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Awaitable, Callable

import durable_sdk
import pytest

from durable.engine.claim import Claim
from tests.harness import AppServer, Engine, make_settings

LEASE_MS = 1000
STALL_S = 1.6  # past the lease


def _two_steps(executed: Counter[str], lock: threading.Lock, checkpoint: bool):  # type: ignore[no-untyped-def]
    def effect(name: str) -> Callable[[], str]:
        def run() -> str:
            with lock:
                executed[name] += 1
            return name

        return run

    @durable_sdk.function(id="charge", trigger={"event": "order.paid"}, checkpoint=checkpoint)
    async def charge(event, step):  # type: ignore[no-untyped-def]
        a = await step.run("a", effect("a"))
        b = await step.run("b", effect("b"))
        return [a, b]

    return charge


def _stall_first(drive: Callable[[Claim], Awaitable[None]]) -> Callable[[Claim], Awaitable[None]]:
    stalled: list[str] = []

    async def stalled_drive(claim: Claim) -> None:
        if not stalled:
            stalled.append(claim.run_id)
            await asyncio.sleep(STALL_S)  # as if paused (SIGSTOP) right after the claim
        await drive(claim)

    return stalled_drive


@pytest.mark.parametrize(("checkpoint", "rounds"), [(False, 3), (True, 1)])
async def test_a_worker_stalled_past_its_lease_does_not_call_the_app(
    engine: Engine, checkpoint: bool, rounds: int
) -> None:
    engine.settings = make_settings(engine.dsn, lease_ms=LEASE_MS)
    executed: Counter[str] = Counter()
    charge = _two_steps(executed, threading.Lock(), checkpoint)
    ws = await engine.workspace()
    with AppServer([charge], ws.signing_key, record=True) as app:
        await engine.sync(ws, app.url, [charge])
        await engine.start_workers(1)
        stalled_loop = engine.loops[0]
        stalled_loop.drive = _stall_first(stalled_loop.drive)  # type: ignore[method-assign]
        await engine.send(ws, "order.paid")  # handed straight to the stalled loop
        await engine.start_workers(1)  # a second loop takes the run over once the lease lapses
        [summary] = await engine.wait_runs(ws, 1, timeout=10)
        await asyncio.sleep(STALL_S)  # the stalled loop wakes up meanwhile
        assert app.recorder is not None
        invokes = app.recorder.invokes
    run = await engine.run(summary["id"])
    assert run["output"] == ["a", "b"]
    assert executed == {"a": 1, "b": 1}, "a stored step ran again"
    assert invokes == rounds  # two steps and the return (or one checkpoint): none from the stalled worker
    assert [s["id"] for s in run["steps"]] == ["a", "b"]


@pytest.mark.parametrize(("checkpoint", "rounds"), [(False, 3), (True, 1)])
async def test_a_stalled_worker_whose_lease_was_not_taken_renews_it_and_goes_on(
    engine: Engine, checkpoint: bool, rounds: int
) -> None:
    engine.settings = make_settings(engine.dsn, lease_ms=LEASE_MS)
    executed: Counter[str] = Counter()
    charge = _two_steps(executed, threading.Lock(), checkpoint)
    ws = await engine.workspace()
    with AppServer([charge], ws.signing_key, record=True) as app:
        await engine.sync(ws, app.url, [charge])
        await engine.start_workers(1)
        only_loop = engine.loops[0]
        only_loop.drive = _stall_first(only_loop.drive)  # type: ignore[method-assign]
        await engine.send(ws, "order.paid")
        [summary] = await engine.wait_runs(ws, 1, timeout=10)
        assert app.recorder is not None
        assert app.recorder.overlaps == []
        invokes = app.recorder.invokes
    assert executed == {"a": 1, "b": 1}
    assert invokes == rounds
    assert (await engine.run(summary["id"]))["output"] == ["a", "b"]
