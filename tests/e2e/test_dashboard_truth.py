"""The dashboard says the truth (issue 12, point 8), in a real browser against a real engine: the runs
list shows outputs (a preview past 2048 characters), events say which runs they resumed or cancelled,
the durable-time card counts a sleep while it sleeps, each step shows its attempt history, p95 comes
from fine buckets (a single run's p95 is its duration), icons are lucide SVGs and charts are uPlot's.
And the dashboard's API types are generated from the engine's OpenAPI document, checked here.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import durable_sdk
import httpx
from playwright.async_api import expect

from durable.engine.metrics import fine_bucket_of, percentile_fine
from tests.e2e.browser import (  # noqa: F401  (the fixtures `browser` and `page`)
    browser_fixture,
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

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboard"
OLD_GLYPHS = "▶⚡ƒ▦⌂↻■☾◌⤷✉◆⤴◎▸‹›«"
BIG = "x" * 3000  # an output whose JSON text is over the list's 2048-character cap


def test_checked_in_api_types_are_a_fresh_generation(tmp_path: Path) -> None:
    """dashboard/src/api.gen.ts is what openapi-typescript makes of the engine's OpenAPI document now:
    a response model changed without `npm run gen:api` fails here."""
    generator = DASHBOARD / "node_modules" / ".bin" / "openapi-typescript"
    assert generator.exists(), "openapi-typescript is missing: run `npm ci` in dashboard/"
    document = tmp_path / "openapi.json"
    dumped = subprocess.run(
        [sys.executable, str(DASHBOARD / "scripts" / "openapi.py")], capture_output=True, check=True
    )
    document.write_bytes(dumped.stdout)
    fresh = tmp_path / "api.gen.ts"
    subprocess.run([str(generator), str(document), "-o", str(fresh)], check=True, capture_output=True)
    checked_in = (DASHBOARD / "src" / "api.gen.ts").read_text()
    assert fresh.read_text() == checked_in, (
        "dashboard/src/api.gen.ts differs from the engine's OpenAPI: run `cd dashboard && npm run gen:api`"
    )
    # the hand-written client takes its response types from the generated file, not its own copies
    client = (DASHBOARD / "src" / "api.ts").read_text()
    assert 'from "./api.gen"' in client
    for name in ("Run", "StepView", "DurableEvent", "Metrics", "App"):
        assert f"export interface {name} " not in client, f"{name} is written by hand in api.ts"


def test_percentiles_come_from_fine_buckets() -> None:
    # one 3.06 s run: p95 is its duration (the 48 √2-wide buckets said 4.10 s)
    assert percentile_fine({fine_bucket_of(3060): 1}, 0.95, 3060, 3060) == 3060
    rng = random.Random(12)
    for _ in range(20):
        durations = [rng.randint(0, 600_000) for _ in range(rng.randint(1, 400))]
        exact = sorted(durations)[math.ceil(0.95 * len(durations)) - 1]
        histogram = Counter(fine_bucket_of(d) for d in durations)
        estimate = percentile_fine(dict(histogram), 0.95, min(durations), max(durations))
        assert estimate is not None and abs(estimate - exact) <= max(1, 0.011 * exact), (exact, estimate)
    assert percentile_fine({}, 0.95) is None


def _functions(attempts: dict[str, int]) -> list[Any]:
    @durable_sdk.function(id="report", trigger={"event": "report.requested"})
    def report(event, step):  # type: ignore[no-untyped-def]
        def flaky() -> dict[str, int]:
            attempts["call"] = attempts.get("call", 0) + 1
            if attempts["call"] == 1:
                raise RuntimeError("upstream said 503")
            return {"rows": 3}

        step.run("call", flaky)
        step.sleep("nap", "4s")
        return {"blob": BIG}

    @durable_sdk.function(id="small", trigger={"event": "small.requested"})
    def small(event, step):  # type: ignore[no-untyped-def]
        step.run("answer", lambda: 42)
        return {"answer": 42}

    @durable_sdk.function(id="approval", trigger={"event": "order.placed"})
    def approval(event, step):  # type: ignore[no-untyped-def]
        decision = step.wait_for_event(
            "approve", event="order.approved", match={"orderId": event["data"]["orderId"]}, timeout="1h"
        )
        return {"approved": decision is not None}

    @durable_sdk.function(
        id="shipper",
        trigger={"event": "order.placed"},
        cancel_on=[{"event": "order.cancelled", "match": "orderId"}],
    )
    def shipper(event, step):  # type: ignore[no-untyped-def]
        step.sleep("hold", "1h")
        return "shipped"

    return [report, small, approval, shipper]


def _wait(predicate: Any, what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


async def test_the_dashboard_says_the_truth(dsn: str, tmp_path: Path, page: Any) -> None:
    engine = Proc("start", engine_env(dsn, DURABLE_LEASE_MS=30_000), tmp_path, "engine")
    engine.wait_healthy()
    attempts: dict[str, int] = {}
    functions = _functions(attempts)
    try:
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = provision(base, "truth")
        with AppServer(functions, key) as app:
            sync(base, app_id, key, app.url, functions)
            send(base, app_id, key, "report.requested")
            report_id = _wait(lambda: runs(base, app_id, functionId="report"), "no report run")[0]["id"]

            # the durable-time card counts the sleep while it sleeps, as its bar does
            _wait(
                lambda: any(
                    s["id"] == "nap" and s["status"] == "sleeping" for s in run(base, report_id)["steps"]
                ),
                "the run never slept",
            )
            await page.goto(f"{base}/w/{app_id}/runs?run={report_id}")
            # The API docs are one click away (issue 12, point 3), on the engine's bundled page.
            await expect(page.get_by_test_id("nav-api-docs")).to_have_attribute("href", "/api/docs")
            drawer = page.get_by_test_id("run-drawer")
            nap = drawer.locator('[data-step-id="nap"]')
            await expect(nap).to_have_attribute("data-step-status", "sleeping")
            durable = drawer.get_by_test_id("stat-durable")
            await expect(durable).to_have_attribute("data-ms", re.compile(r"^\d+$"))
            await _number_reaches(durable, "data-ms", 1500)
            assert await nap.get_attribute("data-step-status") == "sleeping", "measured after the sleep"

            # attempt history per step: the failed first attempt and how the step ended
            await expect(drawer).to_have_attribute("data-status", "completed", timeout=15_000)
            durable_ms = int(await durable.get_attribute("data-ms") or 0)
            assert durable_ms >= 4000, f"the 4 s sleep is durable time, the card says {durable_ms} ms"
            call = drawer.locator('[data-testid="step-row"][data-step-id="call"]')
            await expect(call.get_by_test_id("step-failed-attempts")).to_have_text("1 failed attempt")
            await call.click()
            history = drawer.get_by_test_id("step-attempt-history")
            await expect(history.get_by_test_id("attempt-error")).to_have_count(1)
            await expect(history.get_by_test_id("attempt-error")).to_contain_text("attempt 1")
            await expect(history.get_by_test_id("attempt-error")).to_contain_text("upstream said 503")
            await expect(history.get_by_test_id("step-attempt-last")).to_have_text("attempt 2: completed")
            await screenshot(page, "truth-attempts")
            await page.keyboard.press("Escape")  # the keyboard way out of the drawer
            await expect(page.get_by_test_id("run-drawer")).to_have_count(0)

            # outputs in the runs list: whole when small, a marked preview when over 2048 characters
            send(base, app_id, key, "small.requested")
            small_id = _wait(
                lambda: runs(base, app_id, functionId="small", status="completed"), "small did not complete"
            )[0]["id"]
            listed = {r["id"]: r for r in runs(base, app_id)}
            assert listed[small_id]["output"] == {"answer": 42} and not listed[small_id]["outputTruncated"]
            assert listed[report_id]["output"] is None and listed[report_id]["outputTruncated"]
            assert len(listed[report_id]["outputPreview"]) == 2048
            assert listed[report_id]["outputPreview"].startswith('{"blob": "xxx')
            assert run(base, report_id)["output"] == {"blob": BIG}
            small_row = page.locator(f'[data-testid="run-row"][data-run-id="{small_id}"]')
            await expect(small_row.get_by_test_id("run-output-preview")).to_have_text('{"answer":42}')
            report_row = page.locator(f'[data-testid="run-row"][data-run-id="{report_id}"]')
            preview = report_row.get_by_test_id("run-output-preview")
            await expect(preview).to_have_attribute("data-truncated", "true")
            await expect(preview).to_contain_text('{"blob": "xxxx')
            await expect(preview).to_contain_text("truncated")

            # events say which runs they resumed and cancelled
            send(base, app_id, key, "order.placed", {"orderId": "o-1"})
            _wait(
                lambda: (
                    {"approval", "shipper"}
                    <= {
                        r["functionId"]
                        for r in runs(base, app_id, status="active")
                        if r["activity"] != "executing"
                    }
                ),
                "the order runs did not park",
            )
            approval_id = runs(base, app_id, functionId="approval")[0]["id"]
            _wait(lambda: run(base, approval_id)["activity"] == "waiting", "approval never waited")
            shipper_id = runs(base, app_id, functionId="shipper")[0]["id"]
            approved = send(base, app_id, key, "order.approved", {"orderId": "o-1"})
            cancelled = send(base, app_id, key, "order.cancelled", {"orderId": "o-1"})
            _wait(lambda: run(base, approval_id)["status"] == "completed", "approval was not resumed")
            _wait(lambda: run(base, shipper_id)["status"] == "cancelled", "shipper was not cancelled")
            await page.get_by_test_id("nav-events").click()
            resumed = page.locator(f'[data-testid="event-row"][data-event-id="{approved}"]')
            outcome = resumed.locator('[data-testid="event-outcome"][data-outcome="resumed"]')
            await expect(outcome).to_contain_text("approval")
            await expect(outcome).to_contain_text("resumed")
            await expect(resumed).not_to_contain_text("No function is triggered")
            stopped = page.locator(f'[data-testid="event-row"][data-event-id="{cancelled}"]')
            outcome = stopped.locator('[data-testid="event-outcome"][data-outcome="cancelled"]')
            await expect(outcome).to_contain_text("cancelled")
            await expect(outcome.get_by_role("button")).to_have_attribute("title", shipper_id)
            await outcome.get_by_role("button").click()  # opens the run it cancelled
            await expect(page.get_by_test_id("run-drawer")).to_have_attribute("data-run-id", shipper_id)
            await page.get_by_test_id("drawer-close").click()
            await expect(page.get_by_test_id("run-drawer")).to_have_count(0)
            await screenshot(page, "truth-events")

            # real icons (lucide SVGs), none of the old Unicode glyphs
            assert await page.locator('nav svg[data-icon="lucide"]').count() >= 5
            assert await page.locator('[data-testid="event-outcome"] svg[data-icon="lucide"]').count() >= 2
            text = await page.evaluate("document.body.innerText")
            assert not [g for g in OLD_GLYPHS if g in text], "a Unicode glyph is still used as an icon"

            # p95 of the single report run is its duration (fine buckets clamped to the exact extremes),
            # and the charts are uPlot canvases
            report_run = run(base, report_id)
            exact = _ms(report_run["endedAt"]) - _ms(report_run["createdAt"])
            await page.get_by_test_id("nav-metrics").click()
            row = page.locator('[data-testid="chart-p95"] [data-testid="barlist-row"][data-label="report"]')
            await expect(row).to_have_count(1, timeout=30_000)  # the rollup runs every 10 s
            shown = int(await row.get_attribute("data-value") or -1)
            assert abs(shown - exact) <= 2, f"p95 of one {exact} ms run shows {shown} ms"
            body = httpx.get(f"{base}/api/apps/{app_id}/metrics", timeout=10).json()
            [report_metrics] = [f for f in body["functions"] if f["functionId"] == "report"]
            assert report_metrics["p95Ms"] == shown and abs(report_metrics["maxMs"] - exact) <= 2
            for chart in ("chart-throughput", "chart-failure-rate", "chart-time", "chart-backlog"):
                figure = page.get_by_test_id(chart)
                await expect(figure.locator(".uplot canvas")).to_have_count(1)
                assert await figure.locator("svg").count() == 0, f"{chart} is still hand-drawn SVG"
            await page.get_by_test_id("chart-throughput").locator(".uplot .u-over").hover()
            await expect(page.get_by_test_id("chart-throughput").get_by_test_id("chart-tip")).to_be_visible()
            await screenshot(page, "truth-metrics")
    finally:
        engine.stop()


async def _number_reaches(locator: Any, attribute: str, at_least: int, timeout: float = 4) -> int:
    """Wait until the element's numeric attribute is ≥ `at_least`; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = int(await locator.get_attribute(attribute) or 0)
        if value >= at_least:
            return value
        assert time.monotonic() < deadline, f"{attribute} stayed at {value}, below {at_least}"
        await asyncio.sleep(0.1)
