"""An idle engine sleeps: its periodic loops wake only when there is something to do.

uvicorn's main loop polls `should_exit` ten times a second, the change feed used to time out every
second with nothing to publish, and the statistics check ran every second whatever the tables did:
together with cron's tick (tests/integration/test_cron.py) that was twenty wake-ups a second of an
engine with nothing to do. Each test here fails on the loop as it was.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import uvicorn

from durable.engine.changes import ChangeFeed
from durable.runtime import TICK_S, _Server
from durable.scheduler import maintenance
from durable.store import statistics


async def _nothing(scope: Any, receive: Any, send: Any) -> None:
    pass


async def test_the_http_server_ticks_once_a_second_and_an_exit_wakes_it() -> None:
    server = _Server(uvicorn.Config(_nothing))
    ticks: list[int] = []

    async def on_tick(counter: int) -> bool:
        ticks.append(counter)
        return server.should_exit

    server.on_tick = on_tick  # type: ignore[method-assign]
    loop = asyncio.create_task(server.main_loop())
    await asyncio.sleep(0.45)
    assert ticks == [0]  # uvicorn's own loop ticks five times in this while
    server.should_exit = True
    await asyncio.wait_for(loop, TICK_S / 2)  # at once, not at the next tick
    assert ticks == [0, 10]  # every tick refreshes the Date header (uvicorn does it when counter % 10 == 0)
    server.should_exit = False
    assert not server.should_exit


async def test_the_change_feed_sleeps_until_a_change_and_stops_at_once() -> None:
    feed = ChangeFeed(None)
    flushed: list[list[str]] = []

    async def flush() -> None:
        flushed.append(feed.payloads())

    feed.flush = flush  # type: ignore[method-assign]
    stop = asyncio.Event()
    running = asyncio.create_task(feed.run(stop))
    await asyncio.sleep(1.2)
    assert flushed == []  # no timer: nothing pending, nothing done (it used to wake every second)
    feed.touch("app_1", "runs", "run_1")
    await asyncio.sleep(0.05)
    assert flushed == [['{"appId":"app_1","kinds":["runs"],"runIds":["run_1"]}']]
    await asyncio.sleep(0.3)  # past the coalescing pause: asleep again
    stop.set()
    await asyncio.wait_for(
        running, 0.5
    )  # at once (it used to take up to a second), then one last flush of what is pending
    assert flushed[1:] == [[]]


async def test_the_statistics_check_backs_off_while_the_tables_do_not_grow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(maintenance, "STATISTICS_EVERY_S", 0.05)
    monkeypatch.setattr(maintenance, "STATISTICS_IDLE_S", 0.2)
    pages = iter([10, 10, 10, 10, 10, 12, 12])
    checked: list[float] = []
    stop = asyncio.Event()

    async def check(_db: object) -> statistics.Checked:
        checked.append(time.monotonic())
        try:
            return statistics.Checked([], next(pages))
        except StopIteration:
            stop.set()
            return statistics.Checked([], 12)

    monkeypatch.setattr(statistics, "check", check)
    await asyncio.wait_for(maintenance.keep_statistics(None, stop), 10)  # type: ignore[arg-type]
    gaps = [b - a for a, b in zip(checked, checked[1:], strict=False)]
    assert len(gaps) == 7
    # Unchanged (10 pages): the wait doubles, 0.1 then 0.2, and stays at the cap.
    assert gaps[1] >= 0.095 and min(gaps[2:5]) >= 0.195, gaps
    # Grown (12 pages): back to every 0.05 s at once, then doubling again.
    assert gaps[5] < 0.15 and gaps[6] >= 0.095, gaps
