"""Metrics: rolled up once per run (never twice), served as series with per-function p95."""

from __future__ import annotations

import asyncio

import durable_sdk

from durable.engine.metrics import bucket_of, percentile_ms, rollup
from tests.harness import AppServer, Engine


def test_histogram_percentiles() -> None:
    histogram = [0] * 48
    for ms in [10] * 95 + [5000] * 5:
        histogram[bucket_of(ms)] += 1
    assert 10 <= (percentile_ms(histogram, 0.95) or 0) <= 15  # within √2 above
    assert (percentile_ms(histogram, 0.99) or 0) >= 5000
    assert percentile_ms([0] * 48, 0.95) is None


async def test_rollup_counts_each_run_once_and_serves_series(engine: Engine) -> None:
    @durable_sdk.function(id="ok", trigger={"event": "go"})
    async def ok(event, step):  # type: ignore[no-untyped-def]
        return await step.run("a", lambda: 1)

    @durable_sdk.function(id="bad", trigger={"event": "go"}, retries=0)
    async def bad(event, step):  # type: ignore[no-untyped-def]
        def boom() -> None:
            raise RuntimeError("no")

        return await step.run("a", boom)

    ws = await engine.workspace()
    with AppServer([ok, bad], ws.signing_key) as app:
        await engine.sync(ws, app.url, [ok, bad])
        await engine.start_workers()
        await engine.signed(ws, "/e", [{"name": "go"} for _ in range(5)])
        await engine.wait_runs(ws, 5)
        await engine.wait_runs(ws, 5, status="failed")
        await engine.signed(ws, "/e", [{"name": "nothing.listens"}])
    await asyncio.sleep(2.1)  # the rollup lags 2 s behind commits
    assert await rollup(engine.db) == 20  # 10 runs created + 10 ended
    assert await rollup(engine.db) == 0  # nothing counted twice
    response = await engine.api.get(f"/api/apps/{ws.id}/metrics", params={"range": "1h"})
    assert response.status_code == 200
    body = response.json()
    assert body["bucketSeconds"] == 60 and len(body["buckets"]) >= 60
    totals = {k: sum(b[k] for b in body["buckets"]) for k in ("started", "completed", "failed")}
    assert totals == {"started": 10, "completed": 5, "failed": 5}
    async with engine.db.connection() as conn:  # the rollup's time sums are the steps' own
        app_ms, queued_ms = await conn.raw.fetchrow("SELECT sum(app_ms), sum(queued_ms) FROM steps")
    assert sum(b["appMs"] for b in body["buckets"]) == app_ms
    assert sum(b["queuedMs"] for b in body["buckets"]) == queued_ms
    assert all(b["backlog"] == 0 for b in body["buckets"])
    functions = {f["functionId"]: f for f in body["functions"]}
    assert functions["ok"]["completed"] == 5 and functions["bad"]["failed"] == 5
    assert functions["ok"]["p95Ms"] is not None
    for range_name, seconds in (("24h", 900), ("7d", 3600)):
        other = (await engine.api.get(f"/api/apps/{ws.id}/metrics", params={"range": range_name})).json()
        assert other["bucketSeconds"] == seconds
        assert sum(b["completed"] for b in other["buckets"]) == 5
    bad_range = await engine.api.get(f"/api/apps/{ws.id}/metrics", params={"range": "1y"})
    assert bad_range.status_code == 400 and "range" in bad_range.json()["error"]
