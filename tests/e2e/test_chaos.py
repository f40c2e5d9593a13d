"""Chaos: three worker processes, one of them killed with SIGKILL every second and restarted, while
200 five-step runs execute. Afterwards every run has completed, every step was stored once, no step
ran again after its result was stored, and no run was ever invoked twice at once (invariants 2 and 3)."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import defaultdict
from pathlib import Path

import asyncpg
import durable_sdk

from tests.e2e.procs import Proc, engine_env
from tests.e2e.test_crash_recovery import _provision, _signed, _wait_completed
from tests.harness import AppServer

RUNS = 200
STEPS = ("a", "b", "c", "d", "e")


def test_kill_9_storm_loses_nothing_and_repeats_no_stored_step(dsn: str, tmp_path: Path) -> None:
    lock = threading.Lock()
    executions: dict[tuple[str, str], list[float]] = defaultdict(list)

    def work(run_id: str, step_id: str) -> str:
        with lock:
            executions[(run_id, step_id)].append(time.time())
        time.sleep(random.uniform(0.05, 0.25))
        return f"{run_id}/{step_id}"

    @durable_sdk.function(id="chain", trigger={"event": "chain"})
    def chain(event, step):  # type: ignore[no-untyped-def]
        run = str(event["data"]["n"])
        return [step.run(name, lambda name=name: work(run, name)) for name in STEPS]

    # Ten runs in flight per worker process, so the 200 runs span the whole kill storm.
    env = engine_env(dsn, DURABLE_LEASE_MS=1500, DURABLE_WORKERS=1, DURABLE_INVOKES_PER_WORKER=10)
    api = Proc("start", {**env, "DURABLE_WORKERS": "0"}, tmp_path, "api")
    workers = [Proc("worker", env, tmp_path, f"w{i}") for i in range(3)]
    kills = 0
    try:
        api.wait_healthy()
        for w in workers:
            w.wait_log("worker loop(s) running")
        base = f"http://127.0.0.1:{api.port}"
        app_id, key = _provision(base)
        with AppServer([chain], key, record=True) as app:
            assert app.recorder is not None
            _signed(base, app_id, key, "/fn/sync", {"url": app.url, "functions": [chain.wire]})
            events = [{"name": "chain", "data": {"n": i}} for i in range(RUNS)]
            assert _signed(base, app_id, key, "/e", events).status_code == 200
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                time.sleep(random.uniform(0.5, 1.0))
                victim = random.randrange(len(workers))
                workers[victim].kill9()
                workers[victim].stop()  # closes its log
                kills += 1
                workers[victim] = Proc("worker", env, tmp_path, f"w{victim}-{kills}")
            _wait_completed(base, app_id, RUNS, timeout=120)
            overlaps = list(app.recorder.overlaps)
    finally:
        api.stop()
        for w in workers:
            w.stop()

    async def stored() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(
                "SELECT r.event -> 'data' ->> 'n' AS n, s.id, s.status, extract(epoch FROM s.ended_at) AS ended"
                " FROM steps s JOIN runs r ON r.id = s.run_id"
            )
        finally:
            await conn.close()

    rows = asyncio.run(stored())
    assert kills >= 5
    assert len(rows) == RUNS * len(STEPS) and all(r["status"] == "completed" for r in rows)
    assert overlaps == []  # no invoke of a run began while another of it was in flight
    late = []
    for r in rows:
        runs_after_store = [t for t in executions[(r["n"], r["id"])] if t > float(r["ended"]) + 0.05]
        if runs_after_store:
            late.append((r["n"], r["id"], runs_after_store))
    assert late == []  # a stored step never executed again
    assert all(len(executions[(str(n), s)]) >= 1 for n in range(RUNS) for s in STEPS)
    # The storm hit runs mid-step: those steps ran again (their results were not stored yet).
    assert any(len(times) > 1 for times in executions.values())
