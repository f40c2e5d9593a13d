"""The dashboard in a real browser against real engine processes: live updates over SSE, the trace
drawer, run actions, prod guards, sign-in, and surviving an engine restart.

Each test starts `durable start` on its own database, an SDK app on a free port, and drives Debian's
Chromium with Playwright (see tests/e2e/browser.py). Screenshots land in test-artifacts/dashboard/.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import durable_sdk
import httpx
from playwright.async_api import expect

from tests.e2e.browser import (  # noqa: F401  (the fixtures `browser` and `page`)
    assert_not_reloaded,
    browser_fixture,
    mark_page,
    page_fixture,
    provision,
    run,
    runs,
    screenshot,
    send,
    sync,
)
from tests.e2e.procs import Proc, engine_env
from tests.harness import AppServer

TOKEN = "s3cret-admin-token"


def _engine(dsn: str, tmp_path: Path, name: str = "engine", **extra: Any) -> Proc:
    # A long lease: a step that blocks on purpose must not time out and be retried mid-test.
    proc = Proc("start", engine_env(dsn, DURABLE_LEASE_MS=30_000, **extra), tmp_path, name)
    proc.wait_healthy()
    return proc


async def _runs_page(page: Any, base: str, app_id: str) -> None:
    await page.goto(f"{base}/w/{app_id}/runs")
    await expect(page.get_by_test_id("live-indicator")).to_have_attribute("data-state", "live")
    await mark_page(page)


def _row(page: Any, run_id: str) -> Any:
    return page.locator(f'[data-testid="run-row"][data-run-id="{run_id}"]')


def _only_run(base: str, app_id: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        items = runs(base, app_id)
        if items:
            return items[0]
        assert time.monotonic() < deadline, "no run was created"
        time.sleep(0.05)


def _traced_function(gate: threading.Event) -> Any:
    @durable_sdk.function(id="checkout", trigger={"event": "order.placed"})
    def checkout(event, step):  # type: ignore[no-untyped-def]
        order = step.run("load-order", lambda: {"orderId": event["data"]["orderId"], "total": 42})
        step.sleep("settle", "400ms")
        charged = step.run("charge", lambda: gate.wait(15) and {"charged": order["total"]})
        return {"order": order["orderId"], "charge": charged}

    return checkout


def _waiting_function() -> Any:
    @durable_sdk.function(id="approval", trigger={"event": "order.placed"})
    def approval(event, step):  # type: ignore[no-untyped-def]
        step.run("prepare", lambda: {"orderId": event["data"].get("orderId")})
        decision = step.wait_for_event("approve", event="order.approved", timeout="1h")
        return step.run("record", lambda: {"approved": decision is not None})

    return approval


async def test_a_run_appears_live_and_completes_without_reload(dsn: str, tmp_path: Path, page: Any) -> None:
    gate = threading.Event()
    engine = _engine(dsn, tmp_path)
    try:
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = provision(base, "shop")
        checkout = _traced_function(gate)
        with AppServer([checkout], key) as app:
            sync(base, app_id, key, app.url, [checkout])
            await _runs_page(page, base, app_id)
            await expect(page.get_by_test_id("empty")).to_be_visible()

            send(base, app_id, key, "order.placed", {"orderId": "o-1"})
            run_id = _only_run(base, app_id)["id"]
            row = _row(page, run_id)
            await expect(row).to_have_attribute("data-status", "active")  # pushed while the step blocks
            await expect(row).to_contain_text("checkout")
            await screenshot(page, "runs")

            gate.set()
            await expect(row).to_have_attribute("data-status", "completed", timeout=15_000)
            await assert_not_reloaded(page)
    finally:
        gate.set()
        engine.stop()


async def test_trace_drawer_shows_steps_with_durable_and_app_segments(
    dsn: str, tmp_path: Path, page: Any
) -> None:
    gate = threading.Event()
    gate.set()
    engine = _engine(dsn, tmp_path)
    try:
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = provision(base, "shop")
        checkout = _traced_function(gate)

        @durable_sdk.function(
            id="notify", trigger={"event": "order.placed"}, rate_limit={"limit": 1, "period": "1h"}
        )
        def notify(event, step):  # type: ignore[no-untyped-def]
            return step.run("email", lambda: {"sent": True})

        with AppServer([checkout, notify], key) as app:
            sync(base, app_id, key, app.url, [checkout, notify])
            send(base, app_id, key, "order.placed", {"orderId": "o-6"})
            send(base, app_id, key, "order.placed", {"orderId": "o-7"})  # notify: skipped by its rate limit
            deadline = time.monotonic() + 15
            while len(runs(base, app_id, status="completed")) < 3:
                assert time.monotonic() < deadline, "the runs did not complete"
                time.sleep(0.1)
            run_id = runs(base, app_id, functionId="checkout")[0]["id"]

            await _runs_page(page, base, app_id)
            await _row(page, run_id).click()
            drawer = page.get_by_test_id("run-drawer")
            await expect(drawer).to_have_attribute("data-status", "completed")
            steps = drawer.get_by_test_id("step-row")
            await expect(steps).to_have_count(3)
            await expect(steps.nth(0)).to_have_attribute("data-step-id", "load-order")
            # the sleep is durable time (grey), the app's steps are app time (green)
            settle = drawer.locator('[data-step-id="settle"]')
            await expect(settle.get_by_test_id("seg-queued")).to_be_visible()
            charge = drawer.locator('[data-step-id="charge"]')
            await expect(charge.get_by_test_id("seg-app")).to_be_visible()
            assert await drawer.get_by_test_id("seg-queued").count() >= 1
            assert await drawer.get_by_test_id("seg-app").count() >= 2
            box = await settle.get_by_test_id("seg-queued").bounding_box()
            assert box is not None
            sleep_width = box["width"]
            assert sleep_width > 20, "a 400 ms sleep must be drawn to scale, not as a sliver"
            await expect(drawer.get_by_test_id("run-input")).to_contain_text('"o-7"')

            await charge.click()
            detail = drawer.get_by_test_id("step-detail")
            await expect(detail).to_contain_text("charged")
            await expect(detail.get_by_test_id("step-attempts")).to_have_text("1")
            await screenshot(page, "trace-drawer")

            # the other screens of this workspace, for the record
            await page.keyboard.press("Escape")
            await expect(drawer).to_have_count(0)
            await page.get_by_test_id("nav-events").click()
            await expect(page.get_by_test_id("event-row")).to_have_count(2)
            newest = page.get_by_test_id("event-row").first
            await expect(newest.get_by_test_id("event-outcome")).to_have_text("notifyskipped: rateLimit")
            await expect(page.get_by_test_id("event-row").nth(1)).to_contain_text("notify")
            await screenshot(page, "events")
            await page.get_by_test_id("nav-functions").click()
            await expect(page.get_by_test_id("function-row")).to_have_count(2)
            await expect(page.get_by_test_id("functions-table")).to_contain_text("1 per 1h")
            await screenshot(page, "functions")
            await page.get_by_test_id("nav-metrics").click()
            await expect(page.get_by_test_id("chart-throughput")).to_be_visible()
            await expect(page.get_by_test_id("metrics")).to_contain_text("Runs started")
            await screenshot(page, "metrics")
            await page.get_by_test_id("nav-workspaces").click()
            await expect(page.get_by_test_id("workspace-row")).to_have_count(1)
            await screenshot(page, "workspaces")
    finally:
        engine.stop()


async def test_cancel_rerun_and_rerun_from_step_from_the_drawer(dsn: str, tmp_path: Path, page: Any) -> None:
    engine = _engine(dsn, tmp_path)
    try:
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = provision(base, "shop")
        approval = _waiting_function()
        with AppServer([approval], key) as app:
            sync(base, app_id, key, app.url, [approval])
            send(base, app_id, key, "order.placed", {"orderId": "o-9"})
            first = _only_run(base, app_id)["id"]

            await page.goto(f"{base}/w/{app_id}/runs?run={first}")
            drawer = page.get_by_test_id("run-drawer")
            await expect(drawer.get_by_test_id("run-status")).to_have_text("waiting")
            await drawer.get_by_test_id("cancel-run").click()
            await expect(drawer).to_have_attribute("data-status", "cancelled")
            await expect(_row(page, first)).to_have_attribute("data-status", "cancelled")
            assert run(base, first)["status"] == "cancelled"
            await expect(drawer.get_by_test_id("cancel-run")).to_have_count(0)

            await drawer.get_by_test_id("rerun").click()
            await expect(drawer).not_to_have_attribute("data-run-id", first)
            second = await drawer.get_attribute("data-run-id")
            assert second and second != first
            assert run(base, second)["rerunOf"] == first
            await expect(_row(page, second)).to_be_visible()

            await drawer.get_by_test_id("rerun-step-select").select_option("approve")
            await drawer.get_by_test_id("rerun-from-step").click()
            await expect(drawer).not_to_have_attribute("data-run-id", second)
            third = await drawer.get_attribute("data-run-id")
            assert third and third not in (first, second)
            rerun = run(base, third)
            assert rerun["rerunOf"] == second
            # the step before "approve" is reused, not executed again
            assert rerun["steps"][0]["id"] == "prepare"
            assert rerun["steps"][0]["status"] == "completed"
            assert {r["id"] for r in runs(base, app_id)} == {first, second, third}
    finally:
        engine.stop()


async def test_prod_actions_arm_on_first_click_and_run_on_the_second(
    dsn: str, tmp_path: Path, page: Any
) -> None:
    engine = _engine(dsn, tmp_path)
    try:
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = provision(base, "billing", "prod")
        approval = _waiting_function()
        with AppServer([approval], key) as app:
            sync(base, app_id, key, app.url, [approval])
            send(base, app_id, key, "order.placed", {"orderId": "o-1"})
            run_id = _only_run(base, app_id)["id"]

            await page.goto(f"{base}/w/{app_id}/runs?run={run_id}")
            await expect(page.get_by_test_id("prod-banner")).to_be_visible()
            drawer = page.get_by_test_id("run-drawer")
            await expect(drawer.get_by_test_id("run-status")).to_have_text("waiting")

            cancel = drawer.get_by_test_id("cancel-run")
            await cancel.click()
            await expect(cancel).to_have_attribute("data-armed", "true")
            await expect(cancel).to_have_text("Click again to confirm")
            await page.wait_for_timeout(500)
            assert run(base, run_id)["status"] == "active", "the first click must only arm"
            await screenshot(page, "prod-armed")
            await cancel.click()
            await expect(drawer).to_have_attribute("data-status", "cancelled")
            assert run(base, run_id)["status"] == "cancelled"

            # an armed action that is not confirmed disarms by itself and does nothing
            rerun = drawer.get_by_test_id("rerun")
            await rerun.click()
            await expect(rerun).to_have_attribute("data-armed", "true")
            await expect(rerun).to_have_attribute("data-armed", "false", timeout=6_000)
            assert len(runs(base, app_id)) == 1

            # firing an event from the dashboard is guarded too
            await page.goto(f"{base}/w/{app_id}/events")
            await page.get_by_test_id("fire-event").click()
            await page.get_by_test_id("fire-event-name").fill("order.placed")
            data = page.get_by_test_id("fire-event-data")
            await data.fill('{"orderId": o-2}')
            await expect(page.get_by_test_id("fire-event-data-status")).to_contain_text("line 1, column 13")
            await expect(page.get_by_test_id("fire-event-send")).to_be_disabled()
            await data.fill('{"orderId": "o-2"}')
            send_button = page.get_by_test_id("fire-event-send")
            await send_button.click()
            await expect(send_button).to_have_attribute("data-armed", "true")
            await page.wait_for_timeout(300)
            assert len(runs(base, app_id)) == 1
            await send_button.click()
            await expect(page.get_by_test_id("event-row")).to_have_count(2)
            assert len(runs(base, app_id)) == 2
    finally:
        engine.stop()


async def test_admin_token_requires_sign_in_and_sign_out_works(dsn: str, tmp_path: Path, page: Any) -> None:
    engine = _engine(dsn, tmp_path, DURABLE_ADMIN_TOKEN=TOKEN)
    try:
        base = f"http://127.0.0.1:{engine.port}"
        provision(base, "shop", token=TOKEN)
        assert httpx.get(f"{base}/api/apps").status_code == 401
        assert httpx.get(f"{base}/api/session").json() == {"authRequired": True, "signedIn": False}

        await page.goto(f"{base}/")
        await expect(page.get_by_test_id("sign-in")).to_be_visible()
        assert (await page.request.get(f"{base}/api/apps")).status == 401
        await screenshot(page, "sign-in")

        await page.get_by_test_id("token-input").fill("not-the-token")
        await page.get_by_test_id("sign-in-submit").click()
        await expect(page.get_by_role("alert")).to_contain_text("not right")

        await page.get_by_test_id("token-input").fill(TOKEN)
        await page.get_by_test_id("sign-in-submit").click()
        await expect(page.get_by_test_id("workspace-row")).to_have_count(1)
        await expect(page.get_by_test_id("live-indicator")).to_have_attribute("data-state", "live")
        assert (await page.request.get(f"{base}/api/apps")).status == 200
        assert "durable_session" not in await page.evaluate("document.cookie"), (
            "the session cookie is httpOnly"
        )
        await page.reload()
        await expect(page.get_by_test_id("workspace-row")).to_have_count(1)

        # A write with the session cookie (JSON, same origin) goes through the browser-write check.
        app_id = (await (await page.request.get(f"{base}/api/apps")).json())["items"][0]["id"]
        await page.goto(f"{base}/w/{app_id}/events")
        await page.get_by_test_id("fire-event").click()
        await page.get_by_test_id("fire-event-name").fill("order.placed")
        await page.get_by_test_id("fire-event-data").fill('{"orderId": "o-1"}')
        await page.get_by_test_id("fire-event-send").click()
        await expect(page.get_by_test_id("event-row")).to_have_count(1)

        await page.get_by_test_id("sign-out").click()
        await expect(page.get_by_test_id("sign-in")).to_be_visible()
        assert (await page.request.get(f"{base}/api/apps")).status == 401
        await page.reload()
        await expect(page.get_by_test_id("sign-in")).to_be_visible()
    finally:
        engine.stop()


async def test_the_open_page_survives_an_engine_restart(dsn: str, tmp_path: Path, page: Any) -> None:
    gate = threading.Event()
    gate.set()
    first = _engine(dsn, tmp_path, "first")
    second: Proc | None = None
    try:
        base = f"http://127.0.0.1:{first.port}"
        app_id, key = provision(base, "shop")
        checkout = _traced_function(gate)
        with AppServer([checkout], key) as app:
            sync(base, app_id, key, app.url, [checkout])
            await _runs_page(page, base, app_id)

            first.term()
            assert first.wait(20) == 0
            indicator = page.get_by_test_id("live-indicator")
            await expect(indicator).not_to_have_attribute("data-state", "live")
            await expect(indicator).to_have_text(re.compile("Reconnecting|Connecting"))

            second = _engine(dsn, tmp_path, "second", PORT=first.port)
            await expect(indicator).to_have_attribute("data-state", "live", timeout=15_000)
            send(base, app_id, key, "order.placed", {"orderId": "after-restart"})
            run_id = _only_run(base, app_id)["id"]
            await expect(_row(page, run_id)).to_have_attribute("data-status", "completed", timeout=15_000)
            await assert_not_reloaded(page)
    finally:
        first.stop()
        if second is not None:
            second.stop()


async def test_the_api_docs_page_renders_from_bundled_files_behind_sign_in(
    dsn: str, tmp_path: Path, page: Any
) -> None:
    engine = _engine(dsn, tmp_path, DURABLE_ADMIN_TOKEN=TOKEN)
    try:
        base = f"http://127.0.0.1:{engine.port}"
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        assert (await page.goto(f"{base}/api/docs")).status == 401
        await page.goto(f"{base}/")
        await page.get_by_test_id("token-input").fill(TOKEN)
        await page.get_by_test_id("sign-in-submit").click()
        await expect(page.get_by_test_id("sign-out")).to_be_visible()
        await page.goto(f"{base}/api/docs")  # the session cookie opens it; CSP violations fail the test
        await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Durable")
        await expect(page.locator(".opblock").first).to_be_visible()
        await screenshot(page, "api-docs")
        foreign = [url for url in requested if not url.startswith(base) and not url.startswith("data:")]
        assert foreign == [], f"the docs page reached another host: {foreign}"
    finally:
        engine.stop()
