"""Dashboard metrics: a per-minute rollup, and the series the dashboard charts.

`rollup` reads only what changed since its cursor (runs created, runs ended; both indexed by time)
and adds it to `metrics_minute`; one process does it at a time (a try-lock), so nothing is counted
twice. Run durations go into a histogram of 48 buckets, each √2 wider than the last, so a p95 over
any range is a merge of small arrays, accurate to a factor of √2.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from durable.core.times import iso
from durable.errors import InvalidInput
from durable.store.db import Database

BUCKETS = 48
RANGES = {"1h": (timedelta(hours=1), 60), "24h": (timedelta(hours=24), 900), "7d": (timedelta(days=7), 3600)}


def bucket_of(duration_ms: int) -> int:
    return 0 if duration_ms < 1 else min(BUCKETS - 1, int(2 * math.log2(duration_ms)))


def percentile_ms(histogram: list[int], fraction: float) -> int | None:
    """The upper bound of the bucket holding the given fraction of the durations."""
    total = sum(histogram)
    if total == 0:
        return None
    seen = 0
    for index, count in enumerate(histogram):
        seen += count
        if seen >= fraction * total:
            return round(2 ** ((index + 1) / 2))
    return round(2 ** (len(histogram) / 2))


async def rollup(db: Database) -> int:
    """Add what happened since the last rollup; return the number of runs read (0 if another process
    holds the rollup)."""
    async with db.transaction() as tx:
        if not await tx.fetchval("metrics_try_lock"):
            return 0
        cursor = await tx.fetchrow("metrics_cursor")
        assert cursor is not None
        upto = cursor["upto"]
        rows: dict[tuple[str, str, datetime], dict[str, Any]] = defaultdict(
            lambda: {
                "started": 0,
                "completed": 0,
                "failed": 0,
                "queued_ms": 0,
                "app_ms": 0,
                "hist": [0] * BUCKETS,
            }
        )
        created = await tx.fetch("metrics_created", cursor["created_to"], upto)
        for r in created:
            rows[(r["app_id"], r["function_id"], r["minute"])]["started"] += r["n"]
        ended = await tx.fetch("metrics_ended", cursor["ended_to"], upto)
        for r in ended:
            row = rows[(r["app_id"], r["function_id"], r["minute"])]
            row["completed" if r["status"] == "completed" else "failed"] += 1
            row["queued_ms"] += r["queued_ms"]
            row["app_ms"] += r["app_ms"]
            row["hist"][bucket_of(r["duration_ms"])] += 1
        if rows:
            keys = list(rows)
            values = [rows[k] for k in keys]
            await tx.execute(
                "metrics_add",
                [k[0] for k in keys],
                [k[1] for k in keys],
                [k[2] for k in keys],
                [v["started"] for v in values],
                [v["completed"] for v in values],
                [v["failed"] for v in values],
                [v["queued_ms"] for v in values],
                [v["app_ms"] for v in values],
                [orjson.dumps(v["hist"]).decode() for v in values],
            )
        await tx.execute("metrics_sample_backlog")
        await tx.execute("metrics_advance", upto)
        return len(ended) + sum(int(r["n"]) for r in created)


async def series(db: Database, app_id: str, range_name: str) -> dict[str, Any]:
    if range_name not in RANGES:
        raise InvalidInput(f"range: must be one of {', '.join(RANGES)}, got {range_name!r}")
    span, bucket_s = RANGES[range_name]
    step = timedelta(seconds=bucket_s)
    now = db.now()  # metrics minutes are on the database clock
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    start = epoch + ((now - span - epoch) // step) * step
    async with db.connection() as conn:
        counts = {r["t"]: r for r in await conn.fetch("metrics_series", app_id, start, step)}
        backlog = {
            r["t"]: r["backlog"] for r in await conn.fetch("metrics_backlog_series", app_id, start, step)
        }
        per_function = await conn.fetch("metrics_functions", app_id, start)
    buckets = []
    t = start
    while t <= now:
        row = counts.get(t)
        buckets.append(
            {
                "t": iso(t),
                "started": row["started"] if row else 0,
                "completed": row["completed"] if row else 0,
                "failed": row["failed"] if row else 0,
                "queuedMs": row["queued_ms"] if row else 0,
                "appMs": row["app_ms"] if row else 0,
                "backlog": backlog.get(t, 0),
            }
        )
        t += step
    merged: dict[str, dict[str, Any]] = {}
    for r in per_function:
        entry = merged.setdefault(r["function_id"], {"completed": 0, "failed": 0, "hist": [0] * BUCKETS})
        entry["completed"] += r["completed"]
        entry["failed"] += r["failed"]
        for i, count in enumerate(r["histogram"][:BUCKETS]):
            entry["hist"][i] += count
    functions = [
        {
            "functionId": fid,
            "completed": e["completed"],
            "failed": e["failed"],
            "p95Ms": percentile_ms(e["hist"], 0.95),
        }
        for fid, e in sorted(merged.items())
    ]
    return {"range": range_name, "bucketSeconds": bucket_s, "buckets": buckets, "functions": functions}
