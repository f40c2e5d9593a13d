"""Invariant 10 and DESIGN.md §2: Postgres restarts and outages are survived by every process.

Real `durable` processes on a private Postgres (tests/pgcluster.py) that each test crash-restarts
(`pg_ctl restart -m immediate`) or stops: a worker process is woken again right after a restart, an
open SSE stream is ended so the browser refetches (and a new one gets changes), the API answers 503 +
JSON + Retry-After while the database is away (never 500) and recovers by itself, cron keeps firing,
and the store's pool and LISTEN connection come back without help.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import durable_sdk
import httpx

from durable.store.db import Database
from durable.store.listen import Listener
from durable.store.outage import is_unavailable
from tests.e2e.procs import Proc, engine_env
from tests.e2e.test_crash_recovery import _provision, _signed
from tests.harness import AppServer
from tests.pgcluster import PgCluster


@durable_sdk.function(id="one", trigger={"event": "go"})
def one(event, step):  # type: ignore[no-untyped-def]
    return step.run("only", lambda: event["data"]["n"])


def _sync(base: str, app_id: str, key: str, app: AppServer, function: Any) -> None:
    response = _signed(base, app_id, key, "/fn/sync", {"url": app.url, "functions": [function.wire]})
    assert response.status_code == 200, response.text


def _send(base: str, app_id: str, key: str, n: int) -> None:
    """POST /e until acknowledged: right after a restart one request may meet a dying connection."""
    deadline = time.monotonic() + 10
    while True:
        response = _signed(base, app_id, key, "/e", {"name": "go", "id": f"go-{n}", "data": {"n": n}})
        if response.status_code == 200:
            return
        assert response.status_code == 503 and time.monotonic() < deadline, response.text
        time.sleep(0.05)


def _until_completed(base: str, app_id: str, n: int, timeout: float) -> float:
    """Seconds until the run of event `go-{n}` completes (polled every 10 ms)."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        response = httpx.get(f"{base}/api/apps/{app_id}/runs", params={"status": "completed", "limit": 200})
        if response.status_code == 200 and any(r["eventId"] == f"go-{n}" for r in response.json()["items"]):
            return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError(f"the run of go-{n} did not complete within {timeout}s")


def _latency(base: str, app_id: str, key: str, n: int) -> float:
    started = time.monotonic()
    _send(base, app_id, key, n)
    return (time.monotonic() - started) + _until_completed(base, app_id, n, 15)


def _engine(dsn: str, tmp_path: Path, **extra: Any) -> Proc:
    engine = Proc("start", engine_env(dsn, **extra), tmp_path, "engine")
    engine.wait_healthy()
    return engine


def test_a_worker_process_is_woken_right_after_a_restart(pg_cluster: PgCluster, tmp_path: Path) -> None:
    dsn = pg_cluster.create_database("wake")
    # The engine runs no worker loop, so every run reaches the worker process through its LISTEN.
    engine = _engine(dsn, tmp_path, DURABLE_WORKERS=0)
    worker = Proc("worker", engine_env(dsn, DURABLE_WORKERS=1), tmp_path, "worker")
    try:
        worker.wait_log("1 worker loop(s) running")
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = _provision(base)
        with AppServer([one], key) as app:
            _sync(base, app_id, key, app, one)
            _latency(base, app_id, key, 0)  # warm up the app and the connections
            before = _latency(base, app_id, key, 1)
            pg_cluster.restart_immediate()
            # No pause: the first run after the restart must not wait for the 10 s safety recheck,
            # whether its NOTIFY reached the re-opened LISTEN or fell in the gap before it.
            after = _latency(base, app_id, key, 2)
            again = _latency(base, app_id, key, 3)
        worker.wait_log("LISTEN durable_jobs: listening again")
        assert worker.popen.poll() is None and engine.popen.poll() is None
    finally:
        worker.stop()
        engine.stop()
    assert before < 1.0, before
    assert after < 2.5 and again < max(1.0, 3 * before), (before, after, again)


def _read_stream(url: str, into: list[tuple[str, float, str]]) -> None:
    """Append (event, time, data) for each SSE message, then ("end", time, why) when the stream ends."""
    why = "closed by the server"
    try:
        with httpx.stream("GET", url, timeout=httpx.Timeout(30, read=30)) as response:
            if response.status_code != 200:
                why = f"HTTP {response.status_code}"
            else:
                event = "message"
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        into.append((event, time.monotonic(), line[6:]))
    except httpx.HTTPError as exc:
        why = repr(exc)
    into.append(("end", time.monotonic(), why))


def _open_stream(url: str) -> tuple[list[tuple[str, float, str]], threading.Thread]:
    messages: list[tuple[str, float, str]] = []
    thread = threading.Thread(target=_read_stream, args=(url, messages), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not any(m[0] in ("hello", "end") for m in messages):
        assert time.monotonic() < deadline, "no answer from /api/stream"
        time.sleep(0.01)
    return messages, thread


def test_an_open_stream_is_ended_by_a_restart_and_a_new_one_gets_changes(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    dsn = pg_cluster.create_database("sse")
    engine = _engine(dsn, tmp_path)
    try:
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = _provision(base)
        first, reader = _open_stream(f"{base}/api/stream")
        assert first[0][0] == "hello", first
        restarted_at = time.monotonic()
        pg_cluster.restart_immediate()
        reader.join(10)
        assert first[-1][0] == "end", f"the stream stayed open and silent after the restart: {first}"
        assert first[-1][1] - restarted_at < 5, first

        # The browser reconnects (503 until the LISTEN is back), then gets changes again.
        deadline = time.monotonic() + 10
        while True:
            second, _ = _open_stream(f"{base}/api/stream?appId={app_id}")
            if second[0][0] == "hello":
                break
            assert "HTTP 503" in second[-1][2] and time.monotonic() < deadline, second
            time.sleep(0.2)
        with AppServer([one], key) as app:
            _sync(base, app_id, key, app, one)
            deadline = time.monotonic() + 5
            while not any(m[0] == "change" and json.loads(m[2])["appId"] == app_id for m in second):
                assert time.monotonic() < deadline, second
                time.sleep(0.02)
    finally:
        engine.stop()


def test_while_postgres_is_down_the_api_answers_503_and_recovers(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    dsn = pg_cluster.create_database("down")
    engine = _engine(dsn, tmp_path)
    try:
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = _provision(base)
        with AppServer([one], key) as app:
            _sync(base, app_id, key, app, one)
            _send(base, app_id, key, 1)
            _until_completed(base, app_id, 1, 10)
            health = httpx.get(f"{base}/healthz")
            assert health.status_code == 200 and health.json()["database"] == "ready", health.text

            pg_cluster.stop_immediate()
            for response in (
                httpx.get(f"{base}/api/apps/{app_id}/runs", timeout=10),
                httpx.get(f"{base}/api/stream", timeout=10),
                _signed(base, app_id, key, "/e", {"name": "go", "data": {"n": 2}}),
            ):
                assert response.status_code == 503, (response.request.url, response.text)
                body = response.json()
                assert body["code"] == "unavailable" and "database unavailable" in body["error"], body
                assert int(response.headers["retry-after"]) >= 1
            asked = time.monotonic()
            health = httpx.get(f"{base}/healthz", timeout=10)
            assert time.monotonic() - asked < 3  # a load balancer gets its answer in time
            assert health.status_code == 503, health.text
            assert health.json()["ok"] is False and health.json()["database"] == "unavailable"

            pg_cluster.start()
            deadline = time.monotonic() + 10
            while (health := httpx.get(f"{base}/healthz", timeout=10)).status_code != 200:
                assert time.monotonic() < deadline, health.text
                time.sleep(0.1)
            assert health.json() == {**health.json(), "ok": True, "database": "ready"}
            _send(base, app_id, key, 3)
            _until_completed(base, app_id, 3, 10)
        assert engine.popen.poll() is None
        # No request failed with a 500 (uvicorn logs those as ERROR) and no loop logged a failure as one.
        assert " ERROR " not in engine.log(), engine.log()
    finally:
        engine.stop()


def test_cron_keeps_firing_after_a_restart(pg_cluster: PgCluster, tmp_path: Path) -> None:
    @durable_sdk.function(id="tick", trigger={"cron": "* * * * * *"})
    def tick(event, step):  # type: ignore[no-untyped-def]
        return None

    dsn = pg_cluster.create_database("cron")
    engine = _engine(dsn, tmp_path)

    def fired() -> set[str]:  # the runs cron started, whatever their status
        response = httpx.get(f"{base}/api/apps/{app_id}/runs", params={"limit": 200})
        return {r["id"] for r in response.json()["items"]} if response.status_code == 200 else set()

    def wait_new(seen: set[str], count: int) -> set[str]:
        deadline = time.monotonic() + 8
        while len(fired() - seen) < count:
            assert time.monotonic() < deadline, (sorted(seen), sorted(fired()), engine.log()[-2000:])
            time.sleep(0.1)
        return fired()

    try:
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = _provision(base)
        with AppServer([tick], key) as app:
            _sync(base, app_id, key, app, tick)
            before = wait_new(set(), 1)
            pg_cluster.restart_immediate()
            wait_new(before | fired(), 2)  # two occurrences scheduled after the restart fired
        assert engine.popen.poll() is None
    finally:
        engine.stop()


async def test_the_pool_and_a_listener_come_back_by_themselves(pg_cluster: PgCluster) -> None:
    dsn = pg_cluster.create_database("store")
    db = await Database.connect(dsn, min_size=3, max_size=3)
    received: list[str] = []
    lost, restored = asyncio.Event(), asyncio.Event()
    listener = Listener(dsn, "restart_test", received.append, on_lost=lost.set, on_restored=restored.set)
    try:
        await asyncio.gather(*(db.fetchval("health_check") for _ in range(3)))  # 3 open connections
        await listener.start()
        await asyncio.to_thread(pg_cluster.restart_immediate)
        await asyncio.wait_for(lost.wait(), 2)
        # Each of the pool's connections died with the server: a query fails at most once.
        failures = 0
        for _ in range(6):
            try:
                value = await db.fetchval("health_check")
            except Exception as exc:
                assert is_unavailable(exc), repr(exc)
                failures += 1
                continue
            assert value == 1
        assert failures <= 1
        await asyncio.wait_for(restored.wait(), 3)
        assert listener.listening
        await db.execute("changes_notify", "restart_test", ["after"])
        deadline = time.monotonic() + 2
        while received != ["after"]:
            assert time.monotonic() < deadline, received
            await asyncio.sleep(0.01)
    finally:
        await listener.close()
        await db.close()
