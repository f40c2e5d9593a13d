"""Browser tests of the dashboard: Playwright driving Debian's Chromium (`apt-get install chromium`).

Playwright's own browser downloads are not used: the tests launch `/usr/bin/chromium` (override with
CHROMIUM_PATH). Screenshots of the main screens go to `test-artifacts/dashboard/` (gitignored).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from durable.core.signing import V2_HEADER, new_nonce, sign, sign_v2
from durable.dashboard.mount import STATIC

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 900}


def ensure_dashboard_built() -> None:
    """Build the dashboard once if `static/` has no build (`npm ci && npm run build` in dashboard/)."""
    if (STATIC / "index.html").is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("the dashboard is not built and npm is missing: run `make install`")
    dashboard = ROOT / "dashboard"
    if not (dashboard / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=dashboard, check=True)
    subprocess.run([npm, "run", "build"], cwd=dashboard, check=True)


@pytest.fixture(scope="session", name="browser")
async def browser_fixture() -> AsyncIterator[Any]:
    """One Chromium for the session (the async API: pytest-asyncio owns the event loop)."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (or set CHROMIUM_PATH)")
    from playwright.async_api import async_playwright, expect

    ensure_dashboard_built()
    expect.set_options(timeout=10_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture(name="page")
async def page_fixture(browser: Any) -> AsyncIterator[Any]:
    """A fresh browser context (no cookies) and page; errors thrown in the page fail the test."""
    context = await browser.new_context(viewport=VIEWPORT)
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    # The engine's CSP allows no inline script or style markup: any violation fails the test too.
    tab.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        yield tab
    finally:
        await context.close()
    assert errors == [], f"errors in the page: {errors}"


async def screenshot(page: Any, name: str) -> None:
    await page.wait_for_timeout(250)  # let transitions settle
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


async def mark_page(page: Any) -> None:
    """Tag the loaded document; `assert_not_reloaded` proves a later update came without a page load."""
    await page.evaluate("window.__durableTestMark = 'loaded-once'")


async def assert_not_reloaded(page: Any) -> None:
    assert await page.evaluate("window.__durableTestMark") == "loaded-once", "the page was reloaded"


def provision(base: str, name: str, environment: str = "dev", token: str | None = None) -> tuple[str, str]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(
        f"{base}/api/apps", json={"name": name, "environment": environment}, headers=headers, timeout=10
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return body["id"], body["signingKey"]


def signed(base: str, app_id: str, key: str, path: str, payload: object) -> httpx.Response:
    """POST as the app, signed v2 (which prod workspaces require) and v1 (ignored beside v2)."""
    raw = orjson.dumps(payload)
    headers = {
        "content-type": "application/json",
        "x-durable-app": app_id,
        "x-durable-signature": sign(raw, key),
        V2_HEADER: sign_v2(key, "app", time.time_ns() // 1_000_000, new_nonce(), "", raw),
    }
    return httpx.post(f"{base}{path}", content=raw, headers=headers, timeout=10)


def sync(base: str, app_id: str, key: str, url: str, functions: list[Any]) -> None:
    response = signed(base, app_id, key, "/fn/sync", {"url": url, "functions": [f.wire for f in functions]})
    assert response.status_code == 200, response.text


def send(base: str, app_id: str, key: str, name: str, data: dict[str, Any] | None = None) -> str:
    response = signed(base, app_id, key, "/e", {"name": name, "data": data or {}})
    assert response.status_code == 200, response.text
    return str(response.json()["ids"][0])


def runs(base: str, app_id: str, token: str | None = None, **params: Any) -> list[dict[str, Any]]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(
        f"{base}/api/apps/{app_id}/runs", params={"limit": 500, **params}, headers=headers, timeout=10
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def run(base: str, run_id: str) -> dict[str, Any]:
    response = httpx.get(f"{base}/api/runs/{run_id}", timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())
