"""The measurements. Each function prints its lines and returns its figures for the summary table."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import orjson
import psutil
from benchapp import (
    BRANCHES,
    FAN_EVENT,
    FLOOD_EVENT,
    FLOW_GATED_EVENT,
    FLOW_LIMIT,
    FLOW_PLAIN_EVENT,
    NEVER_EVENT,
    PARALLEL_EVENT,
    PARK_EVENT,
    SEQUENTIAL_EVENT,
    STATS_PATH,
    THREE_STEPS_EVENT,
)
from harness import BenchError, Child, Postgres, Stack, Tenant, start_app

from durable.store.db import sql

STEPS_PER_RUN = 3
WARM_UP_RUNS = 10


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def seconds_between(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def three_step_events(n: int, tag: str) -> list[dict[str, Any]]:
    return [{"name": THREE_STEPS_EVENT, "data": {"tag": tag, "i": i}} for i in range(n)]


async def send_all(stack: Stack, events: list[dict[str, Any]], batch: int) -> None:
    for start in range(0, len(events), batch):
        await stack.send(events[start : start + batch])


async def warm_up(stack: Stack) -> None:
    """A few runs first, so connections, caches and imports are warm before anything is timed."""
    await stack.send(three_step_events(WARM_UP_RUNS, "warm-up"))
    await stack.wait_counts("the warm-up runs", lambda c: c["completed"] >= WARM_UP_RUNS, timeout=60)


# --- references ----------------------------------------------------------------------------------


async def reference_http(requests: int, concurrency: int) -> float:
    """No-op POSTs per second from an aiohttp client to the bench app (unsigned, so it answers 401)."""
    app, url = await start_app(f"app-reference-c{concurrency}", "reference-key")
    try:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as http:
            remaining = requests

            async def client() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    async with http.post(url, data=b"{}") as response:
                        await response.read()
                        if response.status != 401:
                            raise BenchError(f"the app answered {response.status} to an unsigned POST")

            for _ in range(50):  # warm the connections
                async with http.post(url, data=b"{}") as response:
                    await response.read()
            start = time.perf_counter()
            await asyncio.wait_for(asyncio.gather(*(client() for _ in range(concurrency))), 120)
            return requests / (time.perf_counter() - start)
    finally:
        await asyncio.to_thread(app.stop)


async def reference_postgres(pg: Postgres, statements: int) -> tuple[float, float]:
    """On one connection: `SELECT 1` per second, and one-row INSERT + COMMIT per second."""
    dsn = await pg.create_database("bench_reference")
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            await conn.execute("CREATE TABLE t (id bigserial PRIMARY KEY, v int NOT NULL)")
            for _ in range(100):
                await conn.fetchval("SELECT 1")
            start = time.perf_counter()
            for _ in range(statements):
                await conn.fetchval("SELECT 1")
            selects = statements / (time.perf_counter() - start)
            start = time.perf_counter()
            for i in range(statements):
                await conn.execute("INSERT INTO t (v) VALUES ($1)", i)  # autocommit: one commit each
            inserts = statements / (time.perf_counter() - start)
        finally:
            await conn.close()
    finally:
        await pg.drop_database("bench_reference")
    return selects, inserts


async def references(pg: Postgres, quick: bool) -> dict[str, float]:
    figures = {
        "http_c1": await reference_http(500 if quick else 1000, 1),
        "http_c32": await reference_http(1000 if quick else 2000, 32),
    }
    figures["select"], figures["commit"] = await reference_postgres(pg, 1000 if quick else 2000)
    print(
        f"reference: aiohttp no-op POST to the uvicorn app: {figures['http_c1']:,.0f} req/s at concurrency 1,"
        f" {figures['http_c32']:,.0f} req/s at concurrency 32"
    )
    print(
        f"reference: one asyncpg connection: {figures['select']:,.0f} SELECT 1/s,"
        f" {figures['commit']:,.0f} one-row INSERT+COMMIT/s"
    )
    return figures


# --- 1. throughput -------------------------------------------------------------------------------


async def throughput(pg: Postgres, runs: int, workers: int, batch: int = 500) -> dict[str, float]:
    """Send `runs` events in batches as fast as possible; time from the first send to the last run's end."""
    async with Stack(pg, f"throughput_w{workers}", workers) as stack:
        await warm_up(stack)
        target = WARM_UP_RUNS + runs
        meter = CpuMeter(stack)
        await meter.start()
        first_send = time.time()
        await send_all(stack, three_step_events(runs, "throughput"), batch)
        sent = time.time()
        await stack.wait_counts(
            f"{runs} runs to complete", lambda c: c["completed"] >= target, timeout=max(120, runs / 20)
        )
        cpu = meter.stop()
        assert stack.db is not None
        last_end = await stack.db.fetchval(
            "SELECT extract(epoch FROM max(ended_at)) FROM runs WHERE event->'data'->>'tag' = 'throughput'"
        )
    wall = float(last_end) - first_send
    rate = runs / wall
    print(
        f"throughput: {runs} runs in {wall:.2f} s = {rate:,.0f} runs/s = {rate * STEPS_PER_RUN:,.0f} steps/s"
        f" (workers={workers}; sending took {sent - first_send:.2f} s = {runs / (sent - first_send):,.0f} events/s)"
    )
    print(f"  {CpuMeter.describe(cpu)}")
    return {"workers": workers, "runs": runs, "seconds": wall, "runs_per_s": rate}


# --- 2. latency ----------------------------------------------------------------------------------


async def one_run(stack: Stack, tag: str, timeout: float = 10.0) -> tuple[float, str]:
    """Send one three-step event, poll its run until completed; return (seconds, run id)."""
    return await timed_run(stack, THREE_STEPS_EVENT, {"tag": tag}, timeout)


async def latency(pg: Postgres, runs: int, workers: int = 2) -> dict[str, float]:
    async with Stack(pg, "latency", workers) as stack:
        for _ in range(WARM_UP_RUNS):
            await one_run(stack, "warm-up")
        observed, run_ids = [], []
        for _ in range(runs):
            seconds, run_id = await one_run(stack, "latency")
            observed.append(seconds * 1000)
            run_ids.append(run_id)
        views = [await stack.get_run(run_id) for run_id in run_ids]

    figures = analyse_latency(observed, views)
    print(
        f"latency: {runs} three-step runs one at a time, event sent -> completed seen: p50/p90/p99 {figures['observed']} ms"
    )
    print(
        f"latency: the same inside the engine, run created -> run ended: p50/p90/p99 {figures['engine']} ms"
    )
    print(
        f"latency: per step, p50: app round trip {figures['app_step_p50']:.2f} ms, engine time"
        f" {figures['engine_step_p50']:.2f} ms; queuedMs p50 {figures['queued_step_p50']:.0f} ms"
    )
    print(
        f"latency: where a run's time goes, p50 ms: created -> first invoke sent {figures['to_first']:.2f}"
        f" | a step's invoke {figures['app_step_p50']:.2f} | answer -> next invoke sent {figures['between']:.2f}"
        f" | last step's answer -> run ended {figures['tail']:.2f}"
    )
    print(
        "  app round trip: a step's invoke, POST sent -> answer received, as the engine stamped it."
        " engine time per step: (run created -> ended - the 3 steps' round trips) / 3, i.e. ingest,"
        " wake-up, claim, one commit per step, and the 4th invoke (it returns the result) with the run's"
        " completion, shared over the 3 steps. queuedMs: the engine's integer count of a step's time before"
        " its invoke. The observed figure adds the POST /e round trip and up to ~1 ms of SQL polling, and"
        " that polling competes with the engine for the same cores."
    )
    return figures


def analyse_latency(observed: list[float], views: list[dict[str, Any]]) -> dict[str, Any]:
    """Percentiles of the observed latencies and, from the run views, where the engine's time went."""
    engine_ms: list[float] = []
    engine_per_step: list[float] = []
    app: list[float] = []
    queued: list[float] = []
    to_first: list[float] = []
    between: list[float] = []
    tail: list[float] = []
    for view in views:
        steps = [s for s in view["steps"] if s["type"] == "run"]
        if len(steps) != STEPS_PER_RUN:
            raise BenchError(f"run {view['id']} has {len(steps)} run steps, expected {STEPS_PER_RUN}")
        total = seconds_between(view["createdAt"], view["endedAt"]) * 1000
        trips = [seconds_between(s["startedAt"], s["endedAt"]) * 1000 for s in steps]
        engine_ms.append(total)
        engine_per_step.append((total - sum(trips)) / STEPS_PER_RUN)
        app.extend(trips)
        queued.extend(s["queuedMs"] for s in steps)
        to_first.append(seconds_between(view["createdAt"], steps[0]["startedAt"]) * 1000)
        between.extend(
            seconds_between(a["endedAt"], b["startedAt"]) * 1000
            for a, b in zip(steps, steps[1:], strict=False)
        )
        tail.append(seconds_between(steps[-1]["endedAt"], view["endedAt"]) * 1000)

    def ps(values: list[float]) -> str:
        return "/".join(f"{percentile(values, p):.1f}" for p in (50, 90, 99))

    return {
        "p50": percentile(observed, 50),
        "p90": percentile(observed, 90),
        "p99": percentile(observed, 99),
        "observed": ps(observed),
        "engine": ps(engine_ms),
        "engine_p50": percentile(engine_ms, 50),
        "app_step_p50": percentile(app, 50),
        "engine_step_p50": percentile(engine_per_step, 50),
        "queued_step_p50": statistics.median(queued),
        "to_first": percentile(to_first, 50),
        "between": percentile(between, 50),
        "tail": percentile(tail, 50),
    }


# --- 3. parked runs ------------------------------------------------------------------------------


def cpu_seconds(process: psutil.Process) -> float:
    """CPU time of a process and its descendants that are alive now."""
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


class CpuMeter:
    """CPU used by the engine, the app, the bench database's Postgres backends and the whole machine,
    in % of one core, between `start()` and `stop()`."""

    def __init__(self, stack: Stack) -> None:
        assert isinstance(stack.engine, Child) and isinstance(stack.app, Child)
        self.stack = stack
        self.engine = psutil.Process(stack.engine.pid)
        self.app = psutil.Process(stack.app.pid)
        self.backends: list[psutil.Process] = []
        self.before: tuple[float, ...] = ()
        self.started = 0.0

    async def start(self) -> None:
        assert self.stack.db is not None
        rows = await self.stack.db.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        )
        self.backends = []
        for row in rows:
            try:
                self.backends.append(psutil.Process(row["pid"]))
            except psutil.NoSuchProcess:
                pass
        psutil.cpu_percent()  # starts the machine-wide measurement
        self.before = self._sample()
        self.started = time.perf_counter()

    def stop(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self.started
        used = [(b - a) / elapsed * 100 for a, b in zip(self.before, self._sample(), strict=True)]
        machine = psutil.cpu_percent() * (psutil.cpu_count() or 1)
        return {"engine": used[0], "app": used[1], "postgres": used[2], "machine": machine}

    def _sample(self) -> tuple[float, float, float]:
        return cpu_seconds(self.engine), cpu_seconds(self.app), sum(cpu_seconds(p) for p in self.backends)

    @staticmethod
    def describe(cpu: dict[str, float]) -> str:
        return (
            f"CPU in % of one core: engine {cpu['engine']:.0f}, app {cpu['app']:.0f},"
            f" Postgres backends {cpu['postgres']:.0f}, whole machine {cpu['machine']:.0f}"
        )


async def parked(pg: Postgres, runs: int, window: float, workers: int = 2) -> dict[str, float]:
    async with Stack(pg, "parked", workers) as stack:
        start = time.perf_counter()
        await send_all(stack, [{"name": PARK_EVENT, "data": {"i": i}} for i in range(runs)], 1000)
        await stack.wait_counts(
            f"{runs} runs to be waiting", lambda c: c["waiting"] >= runs, timeout=max(120, runs / 20)
        )
        parked_s = time.perf_counter() - start
        meter = CpuMeter(stack)
        rss_start = meter.engine.memory_info().rss / 2**20
        await meter.start()
        await asyncio.sleep(window)
        cpu = meter.stop()
        rss_end = meter.engine.memory_info().rss / 2**20
        stack.check_alive()

        wake_start = time.perf_counter()
        await stack.send([{"name": NEVER_EVENT, "data": {}}])
        await stack.wait_counts(
            f"{runs} parked runs to complete after the event",
            lambda c: c["completed"] >= runs,
            timeout=max(120, runs / 20),
        )
        wake_s = time.perf_counter() - wake_start

    print(
        f"parked: {runs} runs waiting for an event after {parked_s:.1f} s ({runs / parked_s:,.0f} runs/s parked)"
    )
    print(
        f"parked: over {window:.0f} s idle, engine {cpu['engine']:.1f} % of one core, RSS {rss_start:.0f} MiB at"
        f" start, {rss_end:.0f} MiB at end (app {cpu['app']:.1f} %, Postgres backends of the bench database"
        f" {cpu['postgres']:.1f} %, whole machine {cpu['machine']:.1f} %: other load on the machine shows there)"
    )
    print(
        f"parked: one event woke all {runs} runs, all completed in {wake_s:.2f} s = {runs / wake_s:,.0f} runs/s"
    )
    return {
        "runs": runs,
        "window": window,
        "cpu": cpu["engine"],
        "rss_start": rss_start,
        "rss_end": rss_end,
        "wake_per_s": runs / wake_s,
    }


# --- 4. flow control: a concurrency gate per key -------------------------------------------------

FLOW_KEYS = 100


async def app_stats(stack: Stack, function_id: str) -> dict[str, Any]:
    """What the app counted for one function: maxPerKey, overall_max, steps (see benchapp.Executing)."""
    assert stack.http is not None and stack.app_url
    app = urlsplit(stack.app_url)
    async with stack.http.get(urlunsplit(app._replace(path=STATS_PATH))) as response:
        if response.status != 200:
            raise BenchError(f"GET {STATS_PATH} on the app: {response.status} {await response.text()}")
        return (await response.json())[function_id]  # type: ignore[no-any-return]


async def burst(
    pg: Postgres, runs: int, gated: bool, workers: int = 2, work_ms: int | None = None
) -> dict[str, Any]:
    """Send `runs` events over FLOW_KEYS tenants at once; time from the first send to the last run's end.

    With `work_ms`, each step works that long instead of 5 ms (the saturation proof)."""
    function_id, event = ("burst-gated", FLOW_GATED_EVENT) if gated else ("burst-plain", FLOW_PLAIN_EVENT)
    # 1,000 runs in flight per worker loop: more than the 100 keys × 10 slots, so the gate binds.
    in_flight = {"DURABLE_INVOKES_PER_WORKER": str(FLOW_IN_FLIGHT)}
    name = f"flow_{'gated' if gated else 'plain'}{'_saturated' if work_ms else ''}"
    async with Stack(pg, name, workers, in_flight) as stack:
        await warm_up(stack)
        target = WARM_UP_RUNS + runs
        extra = {"workMs": work_ms} if work_ms else {}
        events = [{"name": event, "data": {"tenant": f"t{i % FLOW_KEYS}", **extra}} for i in range(runs)]
        meter = CpuMeter(stack)
        await meter.start()
        first_send = time.time()
        await send_all(stack, events, 1000)
        sent = time.time()
        try:
            await stack.wait_counts(
                f"{runs} {function_id} runs to complete",
                lambda c: c["completed"] >= target,
                timeout=max(120, runs / 20),
            )
        except BenchError as exc:
            raise BenchError(f"{exc}\n{await flow_state(stack)}") from None
        cpu = meter.stop()
        assert stack.db is not None
        last_end = await stack.db.fetchval(
            "SELECT extract(epoch FROM max(ended_at)) FROM runs WHERE function_id = $1", function_id
        )
        stats = await app_stats(stack, function_id)
    wall = float(last_end) - first_send
    per_key = stats["maxPerKey"]
    return {
        "runs": runs,
        "seconds": wall,
        "runs_per_s": runs / wall,
        "send_s": sent - first_send,
        "max_per_key": max(per_key.values(), default=0),
        "over_limit": {k: v for k, v in per_key.items() if v > FLOW_LIMIT},
        "keys": len(per_key),
        "overall_max": stats["overall_max"],
        "steps": stats["steps"],
        "cpu": cpu,
    }


async def flow_state(stack: Stack) -> str:
    """The runs and leased jobs by state, for a report when a burst did not drain."""
    assert stack.db is not None
    runs = await stack.db.fetch("SELECT status, activity, count(*) FROM runs GROUP BY 1, 2 ORDER BY 1, 2")
    gates = await stack.db.fetch(
        "SELECT gate, count(*) FROM jobs WHERE lease_token IS NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 20"
    )
    lines = ["  runs by status, activity: " + ", ".join(f"{r[0]}/{r[1]}: {r[2]}" for r in runs)]
    lines.append("  leased jobs by gate: " + (", ".join(f"{r[0]!r}: {r[1]}" for r in gates) or "none"))
    return "\n".join(lines)


FLOW_IN_FLIGHT = 1000


async def flow(pg: Postgres, runs: int, workers: int = 2) -> dict[str, Any]:
    """The burst with `concurrency {limit: 10, key: tenant}`, then the same burst without the option."""
    gated = await burst(pg, runs, gated=True, workers=workers)
    print(
        f"flow: {runs} one-step runs (5 ms of work each) over {FLOW_KEYS} keys, concurrency limit"
        f" {FLOW_LIMIT} per key: drained in {gated['seconds']:.2f} s = {gated['runs_per_s']:,.0f} runs/s"
        f" (workers={workers} × {FLOW_IN_FLIGHT} runs in flight; sending took {gated['send_s']:.2f} s)"
    )
    print(
        f"flow: at the app, max steps executing at once per key: {gated['max_per_key']} (limit {FLOW_LIMIT},"
        f" over {gated['keys']} keys); overall {gated['overall_max']}; {gated['steps']} step executions"
    )
    if gated["over_limit"]:
        print(
            f"flow: !!! VIOLATION !!! {len(gated['over_limit'])} key(s) had more than {FLOW_LIMIT}"
            f" steps executing at once: {dict(sorted(gated['over_limit'].items())[:20])}"
        )
    print(f"  {CpuMeter.describe(gated['cpu'])}")
    plain = await burst(pg, runs, gated=False, workers=workers)
    print(
        f"flow: the same burst without the concurrency option: drained in {plain['seconds']:.2f} s"
        f" = {plain['runs_per_s']:,.0f} runs/s (sending took {plain['send_s']:.2f} s); at the app, max per"
        f" key {plain['max_per_key']}, overall {plain['overall_max']}; {plain['steps']} step executions"
    )
    print(f"  {CpuMeter.describe(plain['cpu'])}")
    # With 5 ms steps the engine drains faster than runs pile up per key (~1-3 executing per key), so
    # the gate rarely binds. The proof: the same burst with 1 s steps, which keeps every key saturated.
    saturated = await burst(pg, runs, gated=True, workers=workers, work_ms=1000)
    print(
        f"flow: saturated proof, {runs} runs with 1 s steps over {saturated['keys']} keys: max executing at"
        f" once per key {saturated['max_per_key']} (limit {FLOW_LIMIT}); overall {saturated['overall_max']};"
        f" drained in {saturated['seconds']:.2f} s"
    )
    if saturated["over_limit"]:
        print(f"flow: !!! VIOLATION !!! {dict(sorted(saturated['over_limit'].items())[:20])}")
    overhead_us = (gated["seconds"] - plain["seconds"]) / runs * 1e6
    print(
        f"flow: gate overhead per start (drain-time difference / runs): {overhead_us:,.0f} µs"
        f" = ({gated['seconds']:.2f} s - {plain['seconds']:.2f} s) / {runs}"
    )
    return {"gated": gated, "plain": plain, "saturated": saturated, "overhead_us": overhead_us}


# --- 5. fairness: a flooding workspace beside a quiet one ----------------------------------------

FAIR_SLOTS = 8  # one worker loop of 8: small, so the flood holds every slot
FAIR_WORK_MS = 500


async def leased(stack: Stack, app_id: str) -> int:
    assert stack.db is not None
    return int(
        await stack.db.fetchval(
            "SELECT count(*) FROM jobs WHERE app_id = $1 AND lease_token IS NOT NULL"
            " AND available_at > now()",
            app_id,
        )
    )


async def time_to_start(stack: Stack, tenant: Tenant, tag: str, timeout: float = 30.0) -> float:
    """Send one three-step run to `tenant`; seconds from its creation to its start (database times)."""
    assert stack.db is not None
    [event_id] = await stack.send([{"name": THREE_STEPS_EVENT, "data": {"tag": tag}}], tenant)
    start = time.monotonic()
    while True:
        row = await stack.db.fetchrow(
            "SELECT extract(epoch FROM started_at - created_at) AS waited FROM runs"
            " WHERE app_id = $1 AND event_id = $2 AND started_at IS NOT NULL",
            tenant.app_id,
            event_id,
        )
        if row is not None:
            return float(row["waited"])
        if time.monotonic() - start > timeout:
            stack.check_alive()
            raise BenchError(f"the quiet run of event {event_id} did not start within {timeout:.0f} s")
        await asyncio.sleep(0.002)


async def claim_ms(stack: Stack, limit: int, repeat: int = 5) -> float:
    """The claim statement's execution time (EXPLAIN ANALYZE, rolled back: nothing is claimed), median."""
    assert stack.db is not None
    times = []
    for _ in range(repeat):
        tx = stack.db.transaction()
        await tx.start()
        try:
            plan = await stack.db.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + sql("jobs_claim"), "bench", limit, 30_000, [], []
            )
        finally:
            await tx.rollback()
        times.append(float(orjson.loads(plan)[0]["Execution Time"]))
    return statistics.median(times)


async def fairness(pg: Postgres, backlog: int, quiet: int) -> dict[str, Any]:
    """A workspace queues `backlog` runs of priority 100, each a 500 ms step, on an engine with 8 slots;
    then a quiet workspace sends `quiet` three-step runs one at a time: how long each waits to start."""
    env = {"DURABLE_INVOKES_PER_WORKER": str(FAIR_SLOTS)}
    async with Stack(pg, "fairness", workers=1, engine_env=env) as stack:
        await warm_up(stack)
        other = await stack.add_workspace("quiet")
        await time_to_start(stack, other, "warm-up")
        idle = statistics.median([await time_to_start(stack, other, "idle") for _ in range(5)])
        sending = time.perf_counter()
        flood = [{"name": FLOOD_EVENT, "data": {"workMs": FAIR_WORK_MS, "i": i}} for i in range(backlog)]
        await send_all(stack, flood, 1000)
        send_s = time.perf_counter() - sending
        await wait_for_slots(stack)
        claim = {limit: await claim_ms(stack, limit) for limit in (1, 64)}
        waits = []
        for _ in range(quiet):
            waits.append(await time_to_start(stack, other, "quiet") * 1000)
            await asyncio.sleep(0.1)
        assert stack.db is not None
        left = await stack.db.fetchval(
            "SELECT count(*) FROM jobs WHERE app_id = $1 AND available_at <= now()", stack.app_id
        )
    old_order_s = backlog * FAIR_WORK_MS / 1000 / FAIR_SLOTS
    figures = {
        "backlog": backlog,
        "quiet": quiet,
        "p50": percentile(waits, 50),
        "p90": percentile(waits, 90),
        "max": max(waits),
        "idle_ms": idle * 1000,
        "left": int(left),
        "claim_1": claim[1],
        "claim_64": claim[64],
        "old_order_s": old_order_s,
    }
    print(
        f"fairness: {backlog} runs of priority 100 (one {FAIR_WORK_MS} ms step each) queued in one workspace"
        f" (sent in {send_s:.1f} s), {FAIR_SLOTS} slots; a quiet workspace's three-step runs, one at a time:"
        f" time to start p50/p90/max {figures['p50']:.0f}/{figures['p90']:.0f}/{figures['max']:.0f} ms"
        f" ({quiet} runs; {figures['left']} flood runs still queued at the end; on the idle engine"
        f" {figures['idle_ms']:.1f} ms)"
    )
    print(
        f"fairness: the claim statement with that backlog queued (EXPLAIN ANALYZE, median of 5):"
        f" {claim[1]:.2f} ms for 1 run, {claim[64]:.2f} ms for 64"
    )
    print(
        f"  without fair claiming a quiet run waited behind the whole backlog:"
        f" {backlog} × {FAIR_WORK_MS} ms / {FAIR_SLOTS} slots ≈ {old_order_s:,.0f} s"
    )
    return figures


async def wait_for_slots(stack: Stack, timeout: float = 60.0) -> None:
    start = time.monotonic()
    while await leased(stack, stack.app_id) < FAIR_SLOTS:
        if time.monotonic() - start > timeout:
            stack.check_alive()
            raise BenchError(f"the flood did not fill the {FAIR_SLOTS} slots within {timeout:.0f} s")
        await asyncio.sleep(0.05)


# --- 7. composition ------------------------------------------------------------------------------


async def timed_run(
    stack: Stack, name: str, data: dict[str, Any], timeout: float = 60.0
) -> tuple[float, str]:
    """Send one event and poll until the run it started completed: (seconds, run id)."""
    assert stack.db is not None
    start = time.perf_counter()
    [event_id] = await stack.send([{"name": name, "data": data}])
    while True:
        row = await stack.db.fetchrow(
            "SELECT id, status FROM runs WHERE app_id = $1 AND event_id = $2", stack.app_id, event_id
        )
        elapsed = time.perf_counter() - start
        if row is not None and row["status"] == "completed":
            return elapsed, row["id"]
        if row is not None and row["status"] != "active":
            raise BenchError(f"run {row['id']} ended {row['status']}")
        if elapsed > timeout:
            stack.check_alive()
            raise BenchError(f"run of {name} not completed after {timeout:.0f} s")
        await asyncio.sleep(0.001)


async def compose(pg: Postgres, fan_size: int, repeats: int, workers: int = 2) -> dict[str, Any]:
    """A parent invoking `fan_size` children at once and gathering their outputs (time to complete,
    invokes sent), and a 10-branch parallel step against the same ten steps one after the other."""
    async with Stack(pg, "compose", workers) as stack:
        await warm_up(stack)
        before = await app_stats(stack, "invokes")
        fan = [(await timed_run(stack, FAN_EVENT, {"size": fan_size}))[0] * 1000 for _ in range(repeats)]
        after = await app_stats(stack, "invokes")
        parent_invokes = (after.get("fan-parent", 0) - before.get("fan-parent", 0)) / repeats
        child_invokes = (after.get("fan-child", 0) - before.get("fan-child", 0)) / repeats
        parallel = [(await timed_run(stack, PARALLEL_EVENT, {}))[0] * 1000 for _ in range(repeats * 3)]
        sequential = [(await timed_run(stack, SEQUENTIAL_EVENT, {}))[0] * 1000 for _ in range(repeats * 3)]
        final = await app_stats(stack, "invokes")
    figures = {
        "fan_size": fan_size,
        "fan_ms_p50": statistics.median(fan),
        "fan_parent_invokes": parent_invokes,
        "fan_child_invokes": child_invokes,
        "parallel_ms_p50": statistics.median(parallel),
        "sequential_ms_p50": statistics.median(sequential),
        "parallel_invokes": (final.get("parallel-10", 0)) / (repeats * 3),
        "sequential_invokes": (final.get("sequential-10", 0)) / (repeats * 3),
    }
    print(
        f"compose: a parent invoking {fan_size} children at once and gathering their outputs: p50 "
        f"{figures['fan_ms_p50']:.0f} ms event -> parent completed ({repeats} runs); invokes per fan-out: "
        f"parent {parent_invokes:.1f}, children {child_invokes:.0f} ({child_invokes / fan_size:.1f} each)"
    )
    print(
        f"compose: {BRANCHES} branches of a 20 ms step: parallel p50 {figures['parallel_ms_p50']:.0f} ms in "
        f"{figures['parallel_invokes']:.1f} invokes, sequential p50 {figures['sequential_ms_p50']:.0f} ms in "
        f"{figures['sequential_invokes']:.1f} invokes"
    )
    return figures
