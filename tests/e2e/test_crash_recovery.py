"""Invariants 2 and 3 with real processes: kill -9 mid-run loses nothing; two workers never share a run."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import durable_sdk
import httpx
import orjson
import pytest

from durable.core.signing import sign
from tests.e2e.procs import Proc, engine_env
from tests.harness import AppServer


def _provision(base: str, name: str = "shop") -> tuple[str, str]:
    body = httpx.post(f"{base}/api/apps", json={"name": name, "environment": "dev"}).json()
    return body["id"], body["signingKey"]


def _signed(base: str, app_id: str, key: str, path: str, payload: object) -> httpx.Response:
    raw = orjson.dumps(payload)
    headers = {
        "content-type": "application/json",
        "x-durable-app": app_id,
        "x-durable-signature": sign(raw, key),
    }
    return httpx.post(f"{base}{path}", content=raw, headers=headers, timeout=30)


def _wait_completed(base: str, app_id: str, count: int, timeout: float) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while True:
        items = httpx.get(
            f"{base}/api/apps/{app_id}/runs", params={"status": "completed", "limit": 500}
        ).json()["items"]
        if len(items) >= count:
            return list(items)
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(items)} of {count} runs completed")
        time.sleep(0.1)


@pytest.mark.parametrize("checkpoint", [False, True])
def test_kill_9_mid_invoke_loses_nothing_and_repeats_no_stored_step(
    dsn: str, tmp_path: Path, checkpoint: bool
) -> None:
    executions: dict[str, int] = {"a": 0, "b": 0, "c": 0}
    in_b = threading.Event()
    lock = threading.Lock()

    def count(name: str, value: int, slow: bool = False) -> int:
        with lock:
            executions[name] += 1
            first = executions[name] == 1
        if slow and first:
            in_b.set()
            time.sleep(4)  # the engine is killed while this invoke is in flight
        return value

    @durable_sdk.function(id="crashy", trigger={"event": "go"}, checkpoint=checkpoint)
    def crashy(event, step):  # type: ignore[no-untyped-def]
        a = step.run("a", lambda: count("a", 1))
        b = step.run("b", lambda: count("b", a + 1, slow=True))
        return step.run("c", lambda: count("c", b + 1))

    env = engine_env(dsn)
    first = Proc("start", env, tmp_path, "first")
    second: Proc | None = None
    try:
        first.wait_healthy()
        base = f"http://127.0.0.1:{first.port}"
        app_id, key = _provision(base)
        with AppServer([crashy], key) as app:
            assert (
                _signed(
                    base, app_id, key, "/fn/sync", {"url": app.url, "functions": [crashy.wire]}
                ).status_code
                == 200
            )
            assert _signed(base, app_id, key, "/e", {"name": "go"}).status_code == 200
            assert in_b.wait(20), first.log()
            first.kill9()  # mid-invoke of step b, holding the run's lease
            second = Proc("start", engine_env(dsn), tmp_path, "second")
            second.wait_healthy()
            base = f"http://127.0.0.1:{second.port}"
            [summary] = _wait_completed(base, app_id, 1, timeout=30)
        run = httpx.get(f"{base}/api/runs/{summary['id']}").json()
    finally:
        first.stop()
        if second:
            second.stop()
    assert run["output"] == 3
    assert [(s["id"], s["output"]) for s in run["steps"]] == [("a", 1), ("b", 2), ("c", 3)]
    assert executions["c"] == 1 and executions["b"] == 2  # b was in flight at the crash: it ran again
    # A stored step never runs again; with checkpointing, a was in the same unanswered invoke as b, so
    # it was never stored before the crash and runs again too (docs/protocol.md, "Checkpointing").
    assert executions["a"] == (2 if checkpoint else 1)


def test_two_worker_processes_never_drive_one_run_at_once(dsn: str, tmp_path: Path) -> None:
    done: dict[str, int] = {}
    lock = threading.Lock()

    def once(run_id: str, name: str) -> str:
        with lock:
            key = f"{run_id}/{name}"
            done[key] = done.get(key, 0) + 1
        time.sleep(0.002)
        return name

    # One step per invoke, so that each run has several invokes that could overlap.
    @durable_sdk.function(id="work", trigger={"event": "work"}, checkpoint=False)
    def work(event, step):  # type: ignore[no-untyped-def]
        rid = event["data"]["n"]
        for name in ("x", "y", "z"):
            step.run(name, lambda name=name: once(str(rid), name))
        return rid

    api = Proc("start", engine_env(dsn, DURABLE_WORKERS=0), tmp_path, "api")
    # Ten runs in flight per process at most, so that 200 runs need both processes.
    small = {"DURABLE_WORKERS": 1, "DURABLE_INVOKES_PER_WORKER": 10}
    workers = [Proc("worker", engine_env(dsn, **small), tmp_path, f"worker{i}") for i in range(2)]
    try:
        api.wait_healthy()
        for w in workers:
            w.wait_log("worker loop(s) running")
        base = f"http://127.0.0.1:{api.port}"
        app_id, key = _provision(base)
        with AppServer([work], key, record=True) as app:
            assert app.recorder is not None
            _signed(base, app_id, key, "/fn/sync", {"url": app.url, "functions": [work.wire]})
            events = [{"name": "work", "data": {"n": i}} for i in range(200)]
            assert _signed(base, app_id, key, "/e", events).status_code == 200
            _wait_completed(base, app_id, 200, timeout=60)
            recorder = app.recorder
    finally:
        api.stop()
        for w in workers:
            w.stop()
    assert recorder.overlaps == []  # no invoke of a run began while another of the same run was in flight
    assert len({a for a in recorder.agents if "pid" in a}) == 2  # both worker processes drove runs
    assert recorder.invokes == 200 * 4
    assert len(done) == 600 and set(done.values()) == {1}  # each step executed exactly once
