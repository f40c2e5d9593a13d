"""The workspace screen's signature controls, in Debian's Chromium against `durable start`: "Rotate key"
shows the new key once (with a copy button), both keys work until "Remove previous key", and the mode
switch needs the confirming second click in prod."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
from playwright.async_api import expect

from durable.core.signing import sign
from tests.e2e.browser import (  # noqa: F401  (the fixtures `browser` and `page`)
    browser_fixture,
    page_fixture,
    provision,
    screenshot,
    signed,
)
from tests.e2e.procs import Proc, engine_env


def v1(base: str, app_id: str, key: str) -> httpx.Response:
    body = orjson.dumps({"name": "x"})
    headers = {"x-durable-app": app_id, "x-durable-signature": sign(body, key)}
    return httpx.post(f"{base}/e", content=body, headers=headers)


def _view(base: str, app_id: str) -> dict[str, Any]:
    return next(a for a in httpx.get(f"{base}/api/apps").json()["items"] if a["id"] == app_id)


async def test_rotate_and_remove_a_key_and_switch_the_mode(dsn: str, tmp_path: Path, page: Any) -> None:
    engine = Proc("start", engine_env(dsn), tmp_path, "engine")
    engine.wait_healthy()
    try:
        base = f"http://127.0.0.1:{engine.port}"
        app_id, old_key = provision(base, "billing", "prod")
        await page.goto(f"{base}/")
        row = page.locator(f'[data-testid="workspace-row"][data-app-id="{app_id}"]')
        await expect(row.get_by_test_id("signature-mode")).to_have_attribute("data-mode", "v2")

        rotate = row.get_by_test_id("rotate-key")
        await rotate.click()  # prod: the first click only arms it
        await expect(rotate).to_have_attribute("data-armed", "true")
        assert _view(base, app_id)["rotating"] is False
        await rotate.click()
        modal = page.get_by_test_id("key-rotated")
        await expect(modal).to_be_visible()
        new_key = (await modal.get_by_test_id("rotated-key").inner_text()).strip()
        assert new_key.startswith("dur_sk_") and new_key != old_key
        await expect(modal.get_by_test_id("copy-rotated-key")).to_be_visible()
        await screenshot(page, "key-rotated")
        await modal.get_by_test_id("rotated-done").click()
        assert _view(base, app_id)["rotating"] is True
        # While rotating, both keys are accepted.
        assert signed(base, app_id, old_key, "/e", {"name": "x"}).status_code == 200
        assert signed(base, app_id, new_key, "/e", {"name": "x"}).status_code == 200
        await expect(page.get_by_text(new_key)).to_have_count(0)  # shown once, gone with the dialog

        remove = row.get_by_test_id("remove-previous-key")
        await remove.click()
        await remove.click()
        await expect(row.get_by_test_id("rotate-key")).to_be_visible()
        assert _view(base, app_id)["rotating"] is False

        switch = row.get_by_test_id("switch-signature-mode")
        await switch.click()
        await switch.click()
        await expect(row.get_by_test_id("signature-mode")).to_have_attribute("data-mode", "compat")
        assert _view(base, app_id)["signatureMode"] == "compat"
        # compat: the seed's v1 signature alone is accepted now, under the new key only.
        assert v1(base, app_id, new_key).status_code == 200
        assert v1(base, app_id, old_key).status_code == 401
        assert signed(base, app_id, old_key, "/e", {"name": "x"}).status_code == 401
        await screenshot(page, "workspaces-signatures")
    finally:
        engine.stop()
