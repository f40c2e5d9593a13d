"""The dashboard's composition and run control in a real browser against a real engine: pausing and
resuming a function (its badge and the workspace banner), searching runs by event data, bulk cancel
with its dry-run count (and the prod guard on top), and a parent run linked to the child it invoked.

Each test starts `durable start` on its own database, an SDK app on a free port, and drives Debian's
Chromium with Playwright (see tests/e2e/browser.py). Screenshots land in test-artifacts/dashboard/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import durable_sdk
import httpx
from playwright.async_api import expect

from tests.e2e.browser import (  # noqa: F401  (the fixtures `browser` and `page`)
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


def _engine(dsn: str, tmp_path: Path) -> Proc:
    proc = Proc("start", engine_env(dsn, DURABLE_LEASE_MS=30_000), tmp_path, "engine")
    proc.wait_healthy()
    return proc


def _until(check: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    """Poll `check` until it answers something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _functions(base: str, app_id: str) -> dict[str, dict[str, Any]]:
    response = httpx.get(f"{base}/api/apps/{app_id}/functions", timeout=10)
    assert response.status_code == 200, response.text
    return {f["id"]: f for f in response.json()["items"]}


async def _open(page: Any, url: str) -> None:
    await page.goto(url)
    await expect(page.get_by_test_id("live-indicator")).to_have_attribute("data-state", "live")
    await mark_page(page)


def _quick_function() -> Any:
    @durable_sdk.function(id="checkout", trigger={"event": "order.placed"})
    def checkout(event, step):  # type: ignore[no-untyped-def]
        return step.run("charge", lambda: {"charged": event["data"].get("orderId")})

    return checkout


def _waiting_function() -> Any:
    @durable_sdk.function(id="approval", trigger={"event": "order.placed"})
    def approval(event, step):  # type: ignore[no-untyped-def]
        step.run("prepare", lambda: {"tenant": event["data"].get("tenant")})
        return step.wait_for_event("approve", event="order.approved", timeout="1h")

    return approval


async def test_pausing_a_function_shows_its_badge_and_the_banner_and_resume_clears_them(
    dsn: str, tmp_path: Path, page: Any
) -> None:
    engine = _engine(dsn, tmp_path)
    try:
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = provision(base, "shop")
        checkout = _quick_function()
        with AppServer([checkout], key) as app:
            sync(base, app_id, key, app.url, [checkout])
            await _open(page, f"{base}/w/{app_id}/functions")
            row = page.locator('[data-testid="function-row"][data-function-id="checkout"]')
            await expect(row).to_be_visible()
            await expect(page.get_by_test_id("paused-banner")).to_have_count(0)
            await expect(row.get_by_test_id("paused-badge")).to_have_count(0)

            # Pause, queueing new runs.
            await row.get_by_test_id("pause-function").click()
            modal = page.get_by_test_id("pause-function-modal")
            await modal.get_by_test_id("pause-mode-queue").click()
            await modal.get_by_test_id("pause-function-confirm").click()
            await expect(modal).to_have_count(0)
            badge = row.get_by_test_id("paused-badge")
            await expect(badge).to_have_text("Paused (queueing)")
            await expect(row).to_have_attribute("data-paused", "queue")
            await expect(row.get_by_test_id("paused-since")).to_contain_text("since")
            banner = page.get_by_test_id("paused-banner")
            await expect(banner).to_contain_text("1 function is paused")
            await expect(banner).to_contain_text("checkout (queueing new runs)")
            paused = _functions(base, app_id)["checkout"]["paused"]
            assert paused is not None and paused["mode"] == "queue" and paused["since"], paused
            await screenshot(page, "functions-paused")

            # The banner is on every screen of the workspace; a new run is held while paused.
            send(base, app_id, key, "order.placed", {"orderId": "o-held"})
            held = _until(lambda: runs(base, app_id), "the held run")[0]
            await page.get_by_test_id("nav-runs").click()
            await expect(page.get_by_test_id("paused-banner")).to_be_visible()
            await expect(page.get_by_test_id("paused-banner")).to_contain_text("Resume on Functions")
            time.sleep(0.5)
            assert run(base, held["id"])["status"] == "active", "a paused (queue) function must hold its runs"

            # Resume: the badge and the banner go, and the held run completes.
            await page.get_by_test_id("nav-functions").click()
            await row.get_by_test_id("resume-function").click()
            await expect(row.get_by_test_id("paused-badge")).to_have_count(0)
            await expect(row).to_have_attribute("data-paused", "")
            await expect(page.get_by_test_id("paused-banner")).to_have_count(0)
            assert _functions(base, app_id)["checkout"]["paused"] is None
            _until(lambda: run(base, held["id"])["status"] == "completed", "the held run to complete")

            # Pause, skipping new events: the event says why it started nothing.
            await row.get_by_test_id("pause-function").click()
            await page.get_by_test_id("pause-mode-skip").click()
            await page.get_by_test_id("pause-function-confirm").click()
            await expect(row.get_by_test_id("paused-badge")).to_have_text("Paused (skipping)")
            await expect(page.get_by_test_id("paused-banner")).to_contain_text(
                "checkout (skipping new events)"
            )
            send(base, app_id, key, "order.placed", {"orderId": "o-skipped"})
            await page.get_by_test_id("nav-events").click()
            newest = page.get_by_test_id("event-row").first
            await expect(newest.get_by_test_id("event-outcome")).to_have_text("checkoutskipped: paused")
            assert len(runs(base, app_id)) == 1
            await screenshot(page, "events-skipped-paused")

            await page.get_by_test_id("nav-functions").click()
            await row.get_by_test_id("resume-function").click()
            await expect(page.get_by_test_id("paused-banner")).to_have_count(0)
            assert _functions(base, app_id)["checkout"]["paused"] is None
    finally:
        engine.stop()


async def test_an_invalid_search_is_told_inline_and_sends_no_request(
    dsn: str, tmp_path: Path, page: Any
) -> None:
    engine = _engine(dsn, tmp_path)
    try:
        base = f"http://127.0.0.1:{engine.port}"
        app_id, _key = provision(base, "shop")
        searched: list[str] = []
        page.on(
            "request", lambda r: searched.append(r.url) if "/runs?" in r.url and "match=" in r.url else None
        )
        await _open(page, f"{base}/w/{app_id}/runs")

        match = page.get_by_test_id("search-match")
        await match.fill('{"tenant": t1}')
        await page.get_by_test_id("search-submit").click()
        error = page.get_by_test_id("search-match-error")
        await expect(error).to_contain_text("line 1, column 12")
        await expect(match).to_have_attribute("aria-invalid", "true")
        await match.fill("[1, 2]")
        await match.press("Enter")
        await expect(error).to_contain_text("JSON object")
        await page.wait_for_timeout(300)
        assert searched == [], f"an invalid search must send nothing: {searched}"
        assert "match=" not in page.url
        await screenshot(page, "runs-search-invalid")

        # A valid one is sent as ?match=<JSON>, and the error goes.
        await match.fill('{"tenant": "t1"}')
        await page.get_by_test_id("search-submit").click()
        await expect(error).to_have_count(0)
        await expect(page.get_by_test_id("empty")).to_contain_text("No runs match")
        assert searched, "the valid search was not sent"
        assert any(json.loads(httpx.URL(url).params["match"]) == {"tenant": "t1"} for url in searched), (
            searched
        )

        # What the engine refuses (a match that is not an object, typed into the URL) is shown as its 400.
        response = httpx.get(f"{base}/api/apps/{app_id}/runs", params={"match": "[1]"}, timeout=10)
        assert response.status_code == 400, response.text
        await page.goto(f"{base}/w/{app_id}/runs?match=%5B1%5D")
        await expect(page.get_by_test_id("search-refused")).to_have_text(response.json()["error"])
    finally:
        engine.stop()


async def test_bulk_cancel_shows_the_dry_run_count_before_the_confirming_click(
    dsn: str, tmp_path: Path, page: Any
) -> None:
    engine = _engine(dsn, tmp_path)
    try:
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = provision(base, "shop")
        approval = _waiting_function()
        with AppServer([approval], key) as app:
            sync(base, app_id, key, app.url, [approval])
            for i, tenant in enumerate(["t1", "t1", "t2", "t1"]):
                send(base, app_id, key, "order.placed", {"tenant": tenant, "orderId": f"o-{i}"})
            _until(
                lambda: len([r for r in runs(base, app_id) if r["activity"] == "waiting"]) == 4,
                "4 waiting runs",
            )
            t1 = {r["id"] for r in runs(base, app_id, match=json.dumps({"tenant": "t1"}))}
            assert len(t1) == 3, "the API's ?match= selects the three t1 runs"

            bodies: list[dict[str, Any]] = []
            page.on(
                "request",
                lambda r: (
                    bodies.append(json.loads(r.post_data or "{}")) if r.url.endswith("/runs/cancel") else None
                ),
            )
            await _open(page, f"{base}/w/{app_id}/runs")
            await page.get_by_test_id("search-match").fill('{"tenant": "t1"}')
            await page.get_by_test_id("search-submit").click()
            rows = page.get_by_test_id("run-row")
            await expect(rows).to_have_count(3)
            assert {await r.get_attribute("data-run-id") for r in await rows.all()} == t1

            await page.get_by_test_id("bulk-cancel").click()
            preview = page.get_by_test_id("bulk-preview")
            await expect(preview).to_contain_text("3 runs will be cancelled")
            await expect(preview).to_have_attribute("data-count", "3")
            await screenshot(page, "runs-bulk-preview")
            assert bodies == [{"filter": {"match": {"tenant": "t1"}}, "dryRun": True}], bodies
            assert {r["status"] for r in runs(base, app_id)} == {"active"}, "the dry run must change nothing"

            await page.get_by_test_id("bulk-confirm").click()
            await expect(page.get_by_test_id("bulk-done")).to_contain_text("Cancelled 3 runs")
            assert bodies[1] == {"filter": {"match": {"tenant": "t1"}}}, bodies
            for run_id in t1:
                await expect(
                    page.locator(f'[data-testid="run-row"][data-run-id="{run_id}"]')
                ).to_have_attribute("data-status", "cancelled")
            statuses = {r["id"]: r["status"] for r in runs(base, app_id)}
            assert {statuses[i] for i in t1} == {"cancelled"}
            assert [s for i, s in statuses.items() if i not in t1] == ["active"], "the t2 run goes on"
            cancelled = next(iter(t1))
            assert (run(base, cancelled).get("cancelledBy") or {}).get("kind") == "bulk"

            await page.locator(f'[data-testid="run-row"][data-run-id="{cancelled}"]').click()
            await expect(page.get_by_test_id("run-cancelled-by")).to_contain_text("Cancelled in bulk")
    finally:
        engine.stop()


async def test_bulk_cancel_in_prod_arms_before_it_acts(dsn: str, tmp_path: Path, page: Any) -> None:
    engine = _engine(dsn, tmp_path)
    try:
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = provision(base, "billing", "prod")
        approval = _waiting_function()
        with AppServer([approval], key) as app:
            sync(base, app_id, key, app.url, [approval])
            send(base, app_id, key, "order.placed", {"tenant": "t1"})
            send(base, app_id, key, "order.placed", {"tenant": "t1"})
            _until(
                lambda: len([r for r in runs(base, app_id) if r["activity"] == "waiting"]) == 2,
                "2 waiting runs",
            )

            await _open(page, f"{base}/w/{app_id}/runs?fn=approval")
            await expect(page.get_by_test_id("prod-banner")).to_be_visible()
            await page.get_by_test_id("bulk-cancel").click()
            await expect(page.get_by_test_id("bulk-preview")).to_contain_text("2 runs will be cancelled")
            confirm = page.get_by_test_id("bulk-confirm")
            await confirm.click()
            await expect(confirm).to_have_attribute("data-armed", "true")
            await expect(confirm).to_have_text("Click again to confirm")
            await page.wait_for_timeout(500)
            assert {r["status"] for r in runs(base, app_id)} == {"active"}, (
                "the confirming click must only arm in prod"
            )
            await screenshot(page, "runs-bulk-prod-armed")
            await confirm.click()
            await expect(page.get_by_test_id("bulk-done")).to_contain_text("Cancelled 2 runs")
            assert {r["status"] for r in runs(base, app_id)} == {"cancelled"}
    finally:
        engine.stop()


async def test_a_child_run_links_to_its_parent_and_the_parent_lists_it(
    dsn: str, tmp_path: Path, page: Any
) -> None:
    @durable_sdk.function(id="charge", trigger={"event": "charge.requested"})
    def charge(event, step):  # type: ignore[no-untyped-def]
        return step.run("capture", lambda: {"charged": event["data"]["orderId"]})

    @durable_sdk.function(id="checkout", trigger={"event": "order.placed"})
    def checkout(event, step):  # type: ignore[no-untyped-def]
        # step.invoke is the SDK's composition primitive (shared/DESIGN.md §7.1).
        paid = step.invoke("pay", function=charge, data={"orderId": event["data"]["orderId"]}, timeout="1m")
        return {"paid": paid}

    engine = _engine(dsn, tmp_path)
    try:
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = provision(base, "shop")
        with AppServer([checkout, charge], key) as app:
            sync(base, app_id, key, app.url, [checkout, charge])
            send(base, app_id, key, "order.placed", {"orderId": "o-42"})
            parent_id = _until(lambda: runs(base, app_id, functionId="checkout"), "the parent run")[0]["id"]
            parent = _until(
                lambda: (r := run(base, parent_id))["status"] != "active" and r,
                "the parent run to end",
            )
            assert parent["status"] == "completed", parent["error"]
            assert len(parent["children"]) == 1, parent
            child = parent["children"][0]
            assert (child["functionId"], child["stepId"], child["status"]) == ("charge", "pay", "completed")
            assert run(base, child["runId"])["parentRunId"] == parent_id

            await _open(page, f"{base}/w/{app_id}/runs?run={parent_id}")
            drawer = page.get_by_test_id("run-drawer")
            await expect(drawer).to_have_attribute("data-status", "completed")
            await expect(drawer.get_by_test_id("run-parent")).to_have_count(0)
            listed = drawer.get_by_test_id("child-run")
            await expect(listed).to_have_count(1)
            await expect(listed).to_have_attribute("data-run-id", child["runId"])
            await expect(listed.get_by_test_id("run-status")).to_have_attribute("data-status", "completed")
            await expect(listed).to_contain_text("charge")
            step = drawer.locator('[data-testid="step-row"][data-step-id="pay"]')
            await expect(step.get_by_test_id("step-kind")).to_have_text("invoke")
            await step.click()
            await expect(drawer.get_by_test_id("step-child-link")).to_have_attribute(
                "data-run-id", child["runId"]
            )
            await screenshot(page, "drawer-parent")

            await listed.click()
            await expect(drawer).to_have_attribute("data-run-id", child["runId"])
            parent_link = drawer.get_by_test_id("run-parent-link")
            await expect(parent_link).to_have_attribute("data-run-id", parent_id)
            await expect(drawer.get_by_test_id("run-parent")).to_contain_text(f"Invoked by {parent_id}")
            await screenshot(page, "drawer-child")
            await parent_link.click()
            await expect(drawer).to_have_attribute("data-run-id", parent_id)
    finally:
        engine.stop()
