"""Dashboard metrics: a per-minute rollup, and the series the dashboard charts.

`rollup` reads only what changed since its cursor (runs created, runs ended; both indexed by time)
and adds it to `metrics_minute`; one process does it at a time (a try-lock), so nothing is counted
twice. Run durations go into a sparse histogram with `PER_DOUBLING` (64) buckets per doubling, each
1.1 % wide, beside the exact shortest and longest duration. A percentile over any range merges those:
it is interpolated inside its bucket and clamped to the exact extremes, so it is within 1.1 % of the
exact value, and exact for a single run (a 3.06 s run shows p95 3.06 s, where the old √2-wide buckets
said 4.10 s). Rows rolled up before migration 0012 carry only the old 48-bucket histogram
(`bucket_of`, `percentile_ms`), read at their buckets' upper bounds.
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

BUCKETS = 48  # the legacy histogram's buckets (rows rolled up before migration 0012)
PER_DOUBLING = 64  # buckets of the fine histogram per doubling of the duration
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


def fine_bucket_of(duration_ms: int) -> int:
    """The fine histogram's bucket: 0 for 0 ms, else 1 + floor(64·log2(ms)), so bucket b ≥ 1 holds
    [2^((b-1)/64), 2^(b/64))."""
    if duration_ms < 1:
        return 0
    b = 1 + math.floor(PER_DOUBLING * math.log2(duration_ms))
    # log2 of a large integer can round across a bound: settle on the bucket that really holds it
    while b > 1 and 2 ** ((b - 1) / PER_DOUBLING) > duration_ms:
        b -= 1
    while 2 ** (b / PER_DOUBLING) <= duration_ms:
        b += 1
    return b


def _bounds(bucket: int) -> tuple[float, float]:
    if bucket == 0:
        return 0.0, 0.0
    return 2 ** ((bucket - 1) / PER_DOUBLING), 2 ** (bucket / PER_DOUBLING)


def percentile_fine(
    durations: dict[int, int], fraction: float, low: int | None = None, high: int | None = None
) -> int | None:
    """The `fraction` percentile (nearest rank) of the durations in a fine histogram, interpolated
    inside its bucket and clamped to the exact shortest (`low`) and longest (`high`) duration."""
    total = sum(durations.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(fraction * total - 1e-9))
    seen = 0
    estimate = 0.0
    for bucket in sorted(durations):
        count = durations[bucket]
        if count <= 0:
            continue
        if seen + count >= rank:
            lo, hi = _bounds(bucket)
            estimate = lo + (hi - lo) * (rank - seen - 0.5) / count
            break
        seen += count
    if low is not None:
        estimate = max(estimate, float(low))
    if high is not None:
        estimate = min(estimate, float(high))
    return round(estimate)


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
                "durations": defaultdict(int),
                "min_ms": None,
                "max_ms": None,
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
            duration = max(0, int(r["duration_ms"]))
            row["durations"][fine_bucket_of(duration)] += 1
            row["min_ms"] = duration if row["min_ms"] is None else min(row["min_ms"], duration)
            row["max_ms"] = duration if row["max_ms"] is None else max(row["max_ms"], duration)
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
                [orjson.dumps({str(b): n for b, n in v["durations"].items()}).decode() for v in values],
                [v["min_ms"] for v in values],
                [v["max_ms"] for v in values],
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
        entry = merged.setdefault(
            r["function_id"],
            {
                "completed": 0,
                "failed": 0,
                "durations": defaultdict(int),
                "min": None,
                "max": None,
                "legacy": False,
            },
        )
        entry["completed"] += r["completed"]
        entry["failed"] += r["failed"]
        if r["durations"]:
            for bucket, count in r["durations"].items():
                entry["durations"][int(bucket)] += int(count)
            if r["min_ms"] is not None:
                entry["min"] = r["min_ms"] if entry["min"] is None else min(entry["min"], r["min_ms"])
            if r["max_ms"] is not None:
                entry["max"] = r["max_ms"] if entry["max"] is None else max(entry["max"], r["max_ms"])
        else:  # rolled up before migration 0012: the √2-wide buckets, at their upper bounds
            for i, count in enumerate((r["histogram"] or [])[:BUCKETS]):
                if count:
                    entry["durations"][fine_bucket_of(round(2 ** ((i + 1) / 2)))] += int(count)
                    entry["legacy"] = True
    functions = []
    for fid, e in sorted(merged.items()):
        # with legacy rows the extremes are not exact: leave the estimate unclamped
        low, high = (None, None) if e["legacy"] else (e["min"], e["max"])
        functions.append(
            {
                "functionId": fid,
                "completed": e["completed"],
                "failed": e["failed"],
                "p95Ms": percentile_fine(e["durations"], 0.95, low, high),
                "maxMs": e["max"] if not e["legacy"] else None,
            }
        )
    return {"range": range_name, "bucketSeconds": bucket_s, "buckets": buckets, "functions": functions}
