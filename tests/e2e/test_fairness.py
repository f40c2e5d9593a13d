"""Isolated under load, with real processes: a workspace flooding the engine with slow, high-priority runs
and a quiet workspace share two `durable worker` processes (4 slots each, so 8 in all); every quiet
run starts within about one slot's turnover.

The bound: a flood run holds its slot for one 2 s step and the invoke that returns its result, so a
slot frees within STEP_S of any moment once the flood has filled them all; the quiet run takes the
first one (its workspace runs nothing, the flood runs 7). MARGIN_S covers the claim, the invokes and a
loaded machine. Without fair claiming the quiet run waits behind the whole backlog: 200 runs / 8 slots
× 2 s = 50 s (104.6 s in issue 10, where the flood also had priority 100).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import durable_sdk
import httpx
from playwright.async_api import expect

from tests.e2e.browser import (  # noqa: F401  (the fixtures `browser` and `page`)
    browser_fixture,
    page_fixture,
    screenshot,
)
from tests.e2e.procs import Proc, engine_env
from tests.e2e.test_crash_recovery import _provision, _signed
from tests.harness import AppServer

STEP_S = 2.0
MARGIN_S = 1.5
FLOOD_RUNS = 200
SLOTS = 2 * 4  # two worker processes × DURABLE_INVOKES_PER_WORKER


@durable_sdk.function(id="slow", trigger={"event": "flood.go"}, priority=100)
async def slow(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    return await step.run("work", lambda: asyncio.sleep(STEP_S))


@durable_sdk.function(id="quick", trigger={"event": "quiet.go"})
async def quick(event: dict[str, Any], step: durable_sdk.Step) -> Any:
    return await step.run("work", lambda: event["data"]["n"])


def _load(base: str, app_id: str) -> dict[str, Any]:
    [item] = [a for a in httpx.get(f"{base}/api/apps").json()["items"] if a["id"] == app_id]
    return dict(item)


def _wait(check: Any, what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return result


def _started(base: str, app_id: str, event_id: str) -> dict[str, Any] | None:
    runs = httpx.get(f"{base}/api/apps/{app_id}/runs", params={"limit": 50}).json()["items"]
    return next((r for r in runs if r["eventId"] == event_id and r["startedAt"]), None)


def _seconds(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def test_a_quiet_workspace_starts_within_a_slot_turnover_beside_a_flood(dsn: str, tmp_path: Path) -> None:
    # Leases above the 2 s step (engine_env's 2 s lease would time the invokes out).
    env = {"DURABLE_LEASE_MS": 10_000}
    api = Proc("start", engine_env(dsn, DURABLE_WORKERS=0, **env), tmp_path, "api")
    workers = [
        Proc(
            "worker",
            engine_env(dsn, DURABLE_WORKERS=1, DURABLE_INVOKES_PER_WORKER=4, **env),
            tmp_path,
            f"w{i}",
        )
        for i in range(2)
    ]
    try:
        api.wait_healthy()
        for w in workers:
            w.wait_log("worker loop(s) running")
        base = f"http://127.0.0.1:{api.port}"
        flood_id, flood_key = _provision(base, "flood")
        quiet_id, quiet_key = _provision(base, "quiet")
        with AppServer([slow], flood_key) as flood_app, AppServer([quick], quiet_key) as quiet_app:
            _signed(base, flood_id, flood_key, "/fn/sync", {"url": flood_app.url, "functions": [slow.wire]})
            _signed(base, quiet_id, quiet_key, "/fn/sync", {"url": quiet_app.url, "functions": [quick.wire]})
            flood = [{"name": "flood.go", "data": {"n": i}} for i in range(FLOOD_RUNS)]
            assert _signed(base, flood_id, flood_key, "/e", flood).status_code == 200
            # The flood holds every slot, with the rest of its runs queued behind them.
            _wait(lambda: _load(base, flood_id)["executing"] == SLOTS, "the flood to fill the slots", 20)
            waits = []
            for n in range(3):
                # The previous quiet run is done and its slot back with the flood; most of it still queued.
                before = _wait(
                    lambda: (load := _load(base, flood_id))["executing"] == SLOTS and load, "a full flood", 10
                )
                assert before["queued"] >= FLOOD_RUNS // 2, before
                response = _signed(base, quiet_id, quiet_key, "/e", {"name": "quiet.go", "data": {"n": n}})
                [event_id] = response.json()["ids"]
                run = _wait(lambda: _started(base, quiet_id, event_id), f"quiet run {n} to start", 30)
                waits.append(_seconds(run["createdAt"], run["startedAt"]))
            after = _load(base, flood_id)
    finally:
        api.stop()
        for w in workers:
            w.stop()
    assert max(waits) < STEP_S + MARGIN_S, waits
    # The flood was still backlogged at the end: the quiet runs did not just wait for it to drain.
    assert after["queued"] >= FLOOD_RUNS // 2, after


async def test_the_workspaces_page_shows_the_load_and_sets_a_cap(dsn: str, tmp_path: Path, page: Any) -> None:
    # No worker loops: the runs stay queued, and one waits out a throttle slot (scheduled).
    engine = Proc("start", engine_env(dsn, DURABLE_WORKERS=0), tmp_path, "engine")
    engine.wait_healthy()
    try:
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = _provision(base, "busy")
        paced = {"id": "paced", "trigger": {"event": "paced.go"}, "throttle": {"limit": 1, "period": "1h"}}
        functions = [quick.wire, paced]
        _signed(base, app_id, key, "/fn/sync", {"url": "http://127.0.0.1:9/none", "functions": functions})
        events = [{"name": "quiet.go", "data": {"n": n}} for n in range(5)]
        events += [{"name": "paced.go", "data": {}} for _ in range(2)]  # the second waits an hour
        assert _signed(base, app_id, key, "/e", events).status_code == 200
        load = _load(base, app_id)
        assert (load["executing"], load["queued"], load["scheduled"], load["maxConcurrency"]) == (
            0,
            6,
            1,
            None,
        )

        await page.goto(f"{base}/")
        row = page.locator(f'[data-testid="workspace-row"][data-app-id="{app_id}"]')
        await expect(row.get_by_test_id("workspace-queued")).to_have_text("6")
        await expect(row.get_by_test_id("workspace-scheduled")).to_have_text("1")
        await expect(row.get_by_test_id("workspace-executing")).to_contain_text("0")
        await row.get_by_test_id("edit-cap").click()
        modal = page.get_by_test_id("cap-modal")
        await modal.get_by_test_id("cap-input").fill("0")
        await modal.get_by_test_id("save-cap").click()
        await expect(modal).to_contain_text("1 or more")  # refused in the page, nothing sent
        assert _load(base, app_id)["maxConcurrency"] is None
        await modal.get_by_test_id("cap-input").fill("3")
        await modal.get_by_test_id("save-cap").click()
        await expect(modal).to_have_count(0)
        await expect(row.get_by_test_id("workspace-executing")).to_contain_text("/ 3")
        assert _load(base, app_id)["maxConcurrency"] == 3
        await screenshot(page, "workspaces-load")
        await row.get_by_test_id("edit-cap").click()
        await page.get_by_test_id("remove-cap").click()
        await expect(row.get_by_test_id("workspace-executing")).not_to_contain_text("/")
        assert _load(base, app_id)["maxConcurrency"] is None
    finally:
        engine.stop()
