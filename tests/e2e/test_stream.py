"""`GET /api/stream`: changes arrive as Server-Sent Events from a real engine, within a second."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import durable_sdk
import httpx

from tests.e2e.procs import Proc, engine_env
from tests.e2e.test_crash_recovery import _provision, _signed
from tests.harness import AppServer


def _collect(url: str, into: list[dict[str, object]], stop: threading.Event, headers: dict[str, str]) -> None:
    try:
        with httpx.stream("GET", url, headers=headers, timeout=None) as response:
            event = None
            for line in response.iter_lines():
                if stop.is_set():
                    return
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "change":
                    into.append({"at": time.monotonic(), **json.loads(line[6:])})
    except httpx.HTTPError:
        return  # the engine stopped at the end of the test


def test_runs_and_events_changes_are_pushed(dsn: str, tmp_path: Path) -> None:
    release = threading.Event()

    @durable_sdk.function(id="slowish", trigger={"event": "go"})
    def slowish(event, step):  # type: ignore[no-untyped-def]
        step.run("wait", lambda: release.wait(10))
        return "done"

    engine = Proc("start", engine_env(dsn), tmp_path, "engine")
    messages: list[dict[str, object]] = []
    stop = threading.Event()
    try:
        engine.wait_healthy()
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = _provision(base)
        reader = threading.Thread(
            target=_collect, args=(f"{base}/api/stream", messages, stop, {}), daemon=True
        )
        reader.start()
        time.sleep(0.3)
        with AppServer([slowish], key) as app:
            _signed(base, app_id, key, "/fn/sync", {"url": app.url, "functions": [slowish.wire]})
            sent = time.monotonic()
            _signed(base, app_id, key, "/e", {"name": "go"})
            deadline = time.monotonic() + 5
            while not any("runs" in m["kinds"] and m["runIds"] for m in messages):  # type: ignore[operator]
                assert time.monotonic() < deadline, messages
                time.sleep(0.02)
            first = next(m for m in messages if "events" in m["kinds"])  # type: ignore[operator]
            assert first["appId"] == app_id and float(first["at"]) - sent < 1.0  # type: ignore[arg-type]
            run_id = next(m["runIds"][0] for m in messages if m["runIds"])  # type: ignore[index]
            count = len(messages)
            release.set()
            deadline = time.monotonic() + 5
            while httpx.get(f"{base}/api/runs/{run_id}").json()["status"] != "completed":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.5)
            assert any(run_id in m["runIds"] for m in messages[count:])  # type: ignore[operator]
    finally:
        stop.set()
        engine.stop()
