"""Composition invariants with real processes (issue 11, point 9): an idempotency key and a singleton key
hold across engine processes receiving the same events at once; a child's completion resolves its
parent even when the engine driving the parent is killed with -9 while the child runs."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import durable_sdk
import httpx

from tests.e2e.procs import Proc, engine_env
from tests.e2e.test_crash_recovery import _provision, _signed, _wait_completed
from tests.harness import AppServer


def _runs(base: str, app_id: str, **params: str) -> list[dict[str, object]]:
    response = httpx.get(f"{base}/api/apps/{app_id}/runs", params={"limit": 500, **params}, timeout=10)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_idempotency_and_singleton_keys_hold_across_three_engines(dsn: str, tmp_path: Path) -> None:
    @durable_sdk.function(id="once", trigger={"event": "pay"}, idempotency="orderId")
    def once(event, step):  # type: ignore[no-untyped-def]
        return event["data"]["orderId"]

    @durable_sdk.function(id="solo", trigger={"event": "pay"}, singleton={"key": "orderId", "mode": "skip"})
    def solo(event, step):  # type: ignore[no-untyped-def]
        step.sleep("hold", "1h")

    engines = [Proc("start", engine_env(dsn), tmp_path, f"e{i}") for i in range(3)]
    try:
        for engine in engines:
            engine.wait_healthy()
        bases = [f"http://127.0.0.1:{e.port}" for e in engines]
        app_id, key = _provision(bases[0])
        with AppServer([once, solo], key) as app:
            wires = [once.wire, solo.wire]
            assert (
                _signed(bases[0], app_id, key, "/fn/sync", {"url": app.url, "functions": wires}).status_code
                == 200
            )
            # 30 sends of 5 order ids, spread over the three engines and sent concurrently.
            sends = [(bases[i % 3], {"name": "pay", "data": {"orderId": f"o{i % 5}"}}) for i in range(30)]
            with ThreadPoolExecutor(max_workers=12) as pool:
                codes = list(pool.map(lambda s: _signed(s[0], app_id, key, "/e", s[1]).status_code, sends))
            assert codes == [200] * 30
            _wait_completed(bases[1], app_id, 5, timeout=30)
            deadline = time.monotonic() + 20
            while len(_runs(bases[2], app_id, status="active", activity="sleeping")) < 5:
                assert time.monotonic() < deadline, "the singleton runs did not all park"
                time.sleep(0.1)
            time.sleep(0.5)  # nothing else is still on its way
            runs = _runs(bases[2], app_id)
    finally:
        for engine in engines:
            engine.stop()
    by_function: dict[str, list[dict[str, object]]] = {}
    for run in runs:
        by_function.setdefault(str(run["functionId"]), []).append(run)
    assert len(by_function["once"]) == 5  # one run per order id, whichever engine took the event
    assert len(by_function["solo"]) == 5  # at most one active run per order id


def test_a_parent_resumes_with_its_childs_output_after_its_engine_is_killed(dsn: str, tmp_path: Path) -> None:
    release = threading.Event()
    child_started = threading.Event()

    @durable_sdk.function(id="child", trigger=None)
    def child(event, step):  # type: ignore[no-untyped-def]
        def work() -> int:
            child_started.set()
            release.wait(30)
            return int(event["data"]["n"]) * 2

        return step.run("work", work)

    @durable_sdk.function(id="parent", trigger={"event": "go"})
    def parent(event, step):  # type: ignore[no-untyped-def]
        doubled = step.invoke("call", function=child, data={"n": 21})
        return step.run("after", lambda: {"doubled": doubled})

    first = Proc("start", engine_env(dsn), tmp_path, "first")
    second = Proc("worker", engine_env(dsn, DURABLE_LEASE_MS=3000), tmp_path, "second")
    try:
        first.wait_healthy()
        second.wait_log("worker loop(s) running")
        base = f"http://127.0.0.1:{first.port}"
        app_id, key = _provision(base)
        with AppServer([parent, child], key) as app:
            assert (
                _signed(
                    base, app_id, key, "/fn/sync", {"url": app.url, "functions": [parent.wire, child.wire]}
                ).status_code
                == 200
            )
            assert _signed(base, app_id, key, "/e", {"name": "go"}).status_code == 200
            assert child_started.wait(20)
            first.kill9()  # wherever the parent's and child's leases were, the other process takes over
            api = Proc("start", engine_env(dsn, DURABLE_WORKERS=0), tmp_path, "api")
            try:
                api.wait_healthy()
                release.set()
                base = f"http://127.0.0.1:{api.port}"
                done = _wait_completed(base, app_id, 2, timeout=60)
                [summary] = [r for r in done if r["functionId"] == "parent"]
                finished = httpx.get(f"{base}/api/runs/{summary['id']}", timeout=10).json()
            finally:
                api.stop()
    finally:
        first.stop()
        second.stop()
    assert finished["output"] == {"doubled": 42}
    assert [c["status"] for c in finished["children"]] == ["completed"]
