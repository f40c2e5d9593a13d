"""The trace drawer while the app is unreachable: it says why the run waits and when it tries next,
with no failure banner, and keeps each failed try in the run's history once the run completed.

`durable start` (the default DURABLE_UNREACHABLE_MS), an SDK app whose port nothing listens on until the test
starts it, and Debian's Chromium (tests/e2e/browser.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import durable_sdk
from playwright.async_api import expect

from tests.e2e.browser import (  # noqa: F401  (the fixtures `browser` and `page`)
    browser_fixture,
    page_fixture,
    provision,
    runs,
    screenshot,
    send,
    sync,
)
from tests.e2e.procs import Proc, engine_env
from tests.harness import AppServer


async def test_the_drawer_shows_why_a_run_waits_for_an_unreachable_app(
    dsn: str, tmp_path: Path, page: Any
) -> None:
    @durable_sdk.function(id="checkout", trigger={"event": "order.placed"})
    def checkout(event, step):  # type: ignore[no-untyped-def]
        return step.run("charge", lambda: {"charged": True})

    engine = Proc("start", engine_env(dsn), tmp_path, "engine")
    engine.wait_healthy()
    try:
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = provision(base, "shop")
        app = AppServer([checkout], key)  # not started yet: every invoke is refused
        sync(base, app_id, key, app.url, [checkout])
        send(base, app_id, key, "order.placed", {"orderId": "o-1"})
        deadline = time.monotonic() + 10
        while not runs(base, app_id):
            assert time.monotonic() < deadline, "no run was created"
            time.sleep(0.05)
        run_id = runs(base, app_id)[0]["id"]

        await page.goto(f"{base}/w/{app_id}/runs?run={run_id}")
        drawer = page.get_by_test_id("run-drawer")
        notice = drawer.get_by_test_id("run-retry")
        await expect(notice).to_be_visible(timeout=10_000)
        await expect(notice).to_contain_text("Waiting: app unreachable: connection refused · next try at")
        await expect(notice).to_have_attribute("data-unreachable", "true")
        await expect(drawer.get_by_test_id("run-error")).to_have_count(0)  # no "Run failed" banner
        await expect(drawer).to_have_attribute("data-status", "active")
        await screenshot(page, "drawer-waiting-unreachable")

        time.sleep(3)  # longer than the 3 attempts used to last (2.4 s)
        await expect(drawer).to_have_attribute("data-status", "active")
        with app:
            await expect(drawer).to_have_attribute("data-status", "completed", timeout=30_000)
        await expect(drawer.get_by_test_id("run-retry")).to_have_count(0)
        await expect(drawer.get_by_test_id("run-error")).to_have_count(0)
        history = drawer.get_by_test_id("run-attempt-history")
        await expect(history).to_be_visible()
        await history.locator("summary").click()
        await expect(history.get_by_test_id("attempt-error").first).to_contain_text(
            "app unreachable: connection refused"
        )
        await screenshot(page, "drawer-after-outage")
    finally:
        engine.stop()
