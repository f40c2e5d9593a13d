"""Invariants 4 and 5 with real processes: concurrency exact across three workers (one killed while
holding slots), cron firing once per occurrence across three engines, and never in `durable worker`."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import durable_sdk

from tests.e2e.procs import Proc, engine_env
from tests.e2e.test_crash_recovery import _provision, _signed, _wait_completed
from tests.harness import AppServer


def test_concurrency_holds_across_three_workers_and_a_kill_9(dsn: str, tmp_path: Path) -> None:
    lock = threading.Lock()
    running: dict[str, int] = defaultdict(int)
    peak: dict[str, int] = defaultdict(int)
    first_started = threading.Event()

    def work(tenant: str) -> str:
        with lock:
            running[tenant] += 1
            peak[tenant] = max(peak[tenant], running[tenant])
        first_started.set()
        time.sleep(0.05)
        with lock:
            running[tenant] -= 1
        return tenant

    @durable_sdk.function(id="gated", trigger={"event": "job"}, concurrency={"limit": 3, "key": "tenant"})
    def gated(event, step):  # type: ignore[no-untyped-def]
        tenant = event["data"]["tenant"]
        step.run("a", lambda: work(tenant))
        step.run("b", lambda: work(tenant))
        return step.run("c", lambda: work(tenant))

    api = Proc("start", engine_env(dsn, DURABLE_WORKERS=0), tmp_path, "api")
    workers = [Proc("worker", engine_env(dsn), tmp_path, f"w{i}") for i in range(3)]
    try:
        api.wait_healthy()
        for w in workers:
            w.wait_log("worker loop(s) running")
        base = f"http://127.0.0.1:{api.port}"
        app_id, key = _provision(base)
        with AppServer([gated], key) as app:
            _signed(base, app_id, key, "/fn/sync", {"url": app.url, "functions": [gated.wire]})
            events = [{"name": "job", "data": {"tenant": f"t{i % 2}"}} for i in range(60)]
            assert _signed(base, app_id, key, "/e", events).status_code == 200
            assert first_started.wait(20)
            time.sleep(0.3)
            workers[0].kill9()  # it holds slots of both tenants: they come back when its leases expire
            _wait_completed(base, app_id, 60, timeout=90)
    finally:
        api.stop()
        for w in workers:
            w.stop()
    assert peak["t0"] == 3 and peak["t1"] == 3  # the limit was reached and never exceeded


def test_cron_fires_each_occurrence_once_across_three_engines(dsn: str, tmp_path: Path) -> None:
    seen: list[str] = []
    lock = threading.Lock()

    @durable_sdk.function(id="every_second", trigger={"cron": "* * * * * *"})
    def every_second(event, step):  # type: ignore[no-untyped-def]
        def record() -> str:
            with lock:
                seen.append(event["data"]["scheduledAt"])
            return str(event["data"]["scheduledAt"])

        return step.run("record", record)

    worker = Proc("worker", engine_env(dsn), tmp_path, "worker")
    engines: list[Proc] = []
    try:
        first = Proc("start", engine_env(dsn, DURABLE_WORKERS=0), tmp_path, "first")
        engines.append(first)
        first.wait_healthy()
        base = f"http://127.0.0.1:{first.port}"
        app_id, key = _provision(base)
        with AppServer([every_second], key) as app:
            # Sync while only `durable worker` runs beside a scheduler-less wait: stop the first engine.
            _signed(base, app_id, key, "/fn/sync", {"url": app.url, "functions": [every_second.wire]})
            first.term()
            assert first.wait(30) == 0
            worker.wait_log("worker loop(s) running")
            time.sleep(2.5)
            assert seen == []  # `durable worker` runs no scheduler
            engines += [
                Proc("start", engine_env(dsn, DURABLE_WORKERS=0), tmp_path, f"e{i}") for i in range(3)
            ]
            for e in engines[1:]:
                e.wait_healthy()
            time.sleep(4.5)
            for e in engines[1:]:
                e.term()
            for e in engines[1:]:
                assert e.wait(30) == 0
            time.sleep(1.0)  # let the worker finish the last runs
            base = f"http://127.0.0.1:{engines[1].port}"
    finally:
        worker.stop()
        for e in engines:
            e.stop()
    counts = Counter(seen)
    assert counts and max(counts.values()) == 1, counts  # never twice
    assert len(counts) >= 3  # and it did fire, about once a second
