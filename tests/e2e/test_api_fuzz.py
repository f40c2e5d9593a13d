"""Schemathesis against a real engine's /openapi.json: no generated request gets a 5xx, and every answer
matches the documented response schema.

The path identifiers are pinned to a real workspace, function and run (through a `[parameters]` config),
so the fuzzer reads real lists, run views with steps and metrics, not only the 404 bodies that random
ids would get."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import durable_sdk
import httpx
import orjson

from durable.core.signing import V2_HEADER, new_nonce, sign, sign_v2
from tests.e2e.procs import Proc, engine_env
from tests.harness import AppServer

CHECKS = "not_a_server_error,response_schema_conformance"


@durable_sdk.function(id="fuzzed", trigger={"event": "fuzz"}, concurrency={"limit": 2})
async def fuzzed(event, step):  # type: ignore[no-untyped-def]
    first = await step.run("first", lambda: {"list": [1, [2]], "n": None})
    await step.sleep("nap", "10ms")
    return await step.run("second", lambda: [first, "two"])


def _signed(base: str, app_id: str, key: str, path: str, payload: Any) -> httpx.Response:
    body = orjson.dumps(payload)
    headers = {
        "content-type": "application/json",
        "x-durable-app": app_id,
        "x-durable-signature": sign(body, key),
        V2_HEADER: sign_v2(key, "app", time.time_ns() // 1_000_000, new_nonce(), "", body),  # prod: v2 only
    }
    response = httpx.post(base + path, content=body, headers=headers)
    assert response.status_code == 200, response.text
    return response


def _completed_run(base: str, app_id: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        items = httpx.get(f"{base}/api/apps/{app_id}/runs", params={"status": "completed"}).json()["items"]
        if items:
            return str(items[0]["id"])
        time.sleep(0.1)
    raise AssertionError("the seeded run did not complete")


def test_no_generated_request_gets_a_server_error(dsn: str, tmp_path: Path) -> None:
    engine = Proc("start", engine_env(dsn), tmp_path, "engine")
    try:
        engine.wait_healthy()
        base = f"http://127.0.0.1:{engine.port}"
        created = httpx.post(f"{base}/api/apps", json={"name": "fuzz", "environment": "prod"}).json()
        app_id, key = created["id"], created["signingKey"]
        with AppServer([fuzzed], key) as app:
            _signed(base, app_id, key, "/fn/sync", {"url": app.url, "functions": [fuzzed.wire]})
            _signed(base, app_id, key, "/e", {"name": "fuzz", "data": {"n": 1}})
            run_id = _completed_run(base, app_id)
            config = tmp_path / "schemathesis.toml"
            config.write_text(
                "[parameters]\n"
                f'"path.app_id" = "{app_id}"\n'
                '"path.function_id" = "fuzzed"\n'
                f'"path.run_id" = "{run_id}"\n'
            )
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "schemathesis.cli",
                    "--config-file",
                    str(config),
                    "run",
                    f"{base}/openapi.json",
                    "--max-examples",
                    "10",
                    "--checks",
                    CHECKS,
                    "--seed",
                    "1",
                ],  # fmt: skip
                capture_output=True,
                text=True,
                timeout=300,
            )
    finally:
        engine.stop()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "passed" in result.stdout and "failed" not in result.stdout.split("Test cases:")[-1]
    assert "repeatedly returned 404" not in result.stdout  # the pinned ids reached real data
    assert "Traceback" not in engine.log() and "ERROR" not in engine.log()
