"""The measurements. Each function prints its lines and returns its figures for the summary table."""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import orjson
import psutil
from benchapp import (
    APPROVAL_EVENT,
    BRANCHES,
    FAN_EVENT,
    FLOOD_EVENT,
    FLOW_GATED_EVENT,
    FLOW_LIMIT,
    FLOW_PLAIN_EVENT,
    NEVER_EVENT,
    ORDER_EVENT,
    PARALLEL_EVENT,
    PARK_EVENT,
    SEQUENTIAL_EVENT,
    STATS_PATH,
    THREE_STEPS_EVENT,
    THREE_STEPS_OFF_EVENT,
    TWENTY_STEPS,
    TWENTY_STEPS_EVENT,
)
from harness import BenchError, Child, Postgres, Stack, Tenant, clone_run, start_app

from durable.store.db import sql

STEPS_PER_RUN = 3
WARM_UP_RUNS = 10


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def seconds_between(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def variant(checkpoint: bool) -> str:
    return f"checkpointing {'on' if checkpoint else 'off'}"


def three_step_event(checkpoint: bool) -> str:
    """The event of the three-step function with checkpointing on (the SDK's default) or off."""
    return THREE_STEPS_EVENT if checkpoint else THREE_STEPS_OFF_EVENT


def three_step_events(n: int, tag: str, checkpoint: bool = True) -> list[dict[str, Any]]:
    return [{"name": three_step_event(checkpoint), "data": {"tag": tag, "i": i}} for i in range(n)]


async def send_all(stack: Stack, events: list[dict[str, Any]], batch: int) -> None:
    """Send in batches, one after the other when the stack has one engine; with several, one sender
    per engine, the batches dealt round-robin (each engine ingests and runs its share)."""
    batches = [events[start : start + batch] for start in range(0, len(events), batch)]
    ways = len(stack.engine_urls)

    async def through(via: int) -> None:
        for chunk in batches[via::ways]:
            await stack.send(chunk, via=via)

    await asyncio.gather(*(through(via) for via in range(ways)))


async def warm_up(stack: Stack, checkpoint: bool = True) -> None:
    """A few runs first, so connections, caches and imports are warm before anything is timed."""
    await send_all(stack, three_step_events(WARM_UP_RUNS, "warm-up", checkpoint), 1)
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


async def drive(stack: Stack, runs: int, checkpoint: bool, batch: int = 500) -> dict[str, Any]:
    """Warm up, then send `runs` three-step events in batches as fast as possible; time from the first
    send to the last run's end, and the CPU of every process meanwhile."""
    await warm_up(stack, checkpoint)
    target = WARM_UP_RUNS + runs
    meter = CpuMeter(stack)
    await meter.start()
    first_send = time.time()
    await send_all(stack, three_step_events(runs, "throughput", checkpoint), batch)
    sent = time.time()
    await stack.wait_counts(
        f"{runs} runs to complete", lambda c: c["completed"] >= target, timeout=max(120, runs / 20)
    )
    cpu = await meter.stop()
    assert stack.db is not None
    last_end = await stack.db.fetchval(
        "SELECT extract(epoch FROM max(ended_at)) FROM runs WHERE event->'data'->>'tag' = 'throughput'"
    )
    wall = float(last_end) - first_send
    rate = runs / wall
    return {
        "runs": runs,
        "checkpoint": checkpoint,
        "seconds": wall,
        "runs_per_s": rate,
        "steps_per_s": rate * STEPS_PER_RUN,
        "send_s": sent - first_send,
        "cpu": cpu,
    }


async def throughput(pg: Postgres, runs: int, workers: int, checkpoint: bool) -> dict[str, Any]:
    """`runs` three-step runs as fast as they go, on one engine process with `workers` loops."""
    name = f"throughput_w{workers}_{'on' if checkpoint else 'off'}"
    async with Stack(pg, name, workers) as stack:
        figures = await drive(stack, runs, checkpoint)
    wall, rate, send_s = figures["seconds"], figures["runs_per_s"], figures["send_s"]
    print(
        f"throughput: {runs} runs in {wall:.2f} s = {rate:,.0f} runs/s = {figures['steps_per_s']:,.0f} steps/s"
        f" (workers={workers}, {variant(checkpoint)}; sending took {send_s:.2f} s = {runs / send_s:,.0f} events/s)"
    )
    print(f"  {CpuMeter.describe(figures['cpu'])}")
    return {"workers": workers, **figures}


# --- 1b. scale-out: several engine and worker processes on one Postgres -------------------------


async def scaleout(
    pg: Postgres, runs: int, engines: int, worker_processes: int, checkpoint: bool, app_processes: int = 1
) -> dict[str, Any]:
    """The throughput scenario on `engines` `durable start` processes (the batches dealt round-robin
    to their APIs) plus `worker_processes` `durable worker` processes, all on one database."""
    name = (
        f"scaleout_{pg.label}_s{engines}_w{worker_processes}_a{app_processes}_{'on' if checkpoint else 'off'}"
    )
    async with Stack(
        pg, name, engines=engines, worker_processes=worker_processes, app_processes=app_processes
    ) as stack:
        figures = await drive(stack, runs, checkpoint)
    shape = f"{engines} start + {worker_processes} worker"
    apps = f", app in {app_processes} processes" if app_processes > 1 else ""
    print(
        f"scaleout [{pg.label}]: {shape}, {variant(checkpoint)}{apps}: {runs} runs in"
        f" {figures['seconds']:.2f} s = {figures['steps_per_s']:,.0f} steps/s (sending took"
        f" {figures['send_s']:.2f} s)"
    )
    print(f"  {CpuMeter.describe(figures['cpu'])}")
    return {
        "pg": pg.label,
        "engines": engines,
        "worker_processes": worker_processes,
        "app_processes": app_processes,
        "shape": shape + apps,
        **figures,
    }


# --- 2. latency ----------------------------------------------------------------------------------


async def one_run(stack: Stack, tag: str, checkpoint: bool, timeout: float = 10.0) -> tuple[float, str]:
    """Send one three-step event, poll its run until completed; return (seconds, run id)."""
    return await timed_run(stack, three_step_event(checkpoint), {"tag": tag}, timeout)


async def latency(pg: Postgres, runs: int, twenty: int, workers: int = 2) -> dict[str, Any]:
    """Three-step runs one at a time, checkpointing off and on alternately (so both see the same
    machine), then `twenty` twenty-step runs (checkpointing on) one at a time."""
    async with Stack(pg, "latency", workers) as stack:
        for _ in range(WARM_UP_RUNS):
            for checkpoint in (False, True):
                await one_run(stack, "warm-up", checkpoint)
        await timed_run(stack, TWENTY_STEPS_EVENT, {"tag": "warm-up"})
        observed: dict[bool, list[float]] = {False: [], True: []}
        run_ids: dict[bool, list[str]] = {False: [], True: []}
        before = await app_stats(stack, "invokes")
        for _ in range(runs):
            for checkpoint in (False, True):
                seconds, run_id = await one_run(stack, "latency", checkpoint)
                observed[checkpoint].append(seconds * 1000)
                run_ids[checkpoint].append(run_id)
        middle = await app_stats(stack, "invokes")
        long_observed, long_ids = [], []
        for _ in range(twenty):
            seconds, run_id = await timed_run(stack, TWENTY_STEPS_EVENT, {"tag": "latency"})
            long_observed.append(seconds * 1000)
            long_ids.append(run_id)
        after = await app_stats(stack, "invokes")
        views = {c: [await stack.get_run(run_id) for run_id in ids] for c, ids in run_ids.items()}
        long_views = [await stack.get_run(run_id) for run_id in long_ids]

    results: dict[str, Any] = {}
    for checkpoint, function_id in ((False, "three-steps-off"), (True, "three-steps")):
        figures = analyse_latency(observed[checkpoint], views[checkpoint], STEPS_PER_RUN)
        figures["app_invokes"] = (middle.get(function_id, 0) - before.get(function_id, 0)) / runs
        results["on" if checkpoint else "off"] = figures
        print_latency(f"{runs} three-step runs", variant(checkpoint), figures)
    long = analyse_latency(long_observed, long_views, TWENTY_STEPS)
    long["app_invokes"] = (after.get("twenty-steps", 0) - middle.get("twenty-steps", 0)) / twenty
    results["twenty"] = long
    print_latency(f"{twenty} {TWENTY_STEPS}-step runs", variant(True), long)
    print(
        "  app round trip: an invoke that carried steps, POST sent -> answer received, as the engine stamped"
        " it (the steps of one checkpoint share their invoke's stamps). engine time per step: (run created"
        " -> ended - the round trips of the invokes that carried steps) / steps, i.e. ingest, wake-up,"
        " claim, the commits, and an invoke that only returns the result, with the run's completion, shared"
        " over the steps. answer -> next invoke sent: between two invokes that carried steps (none when one"
        " checkpoint carried them all). invokes per run: handler calls counted by the app. The observed"
        " figure adds the POST /e round trip; the end is seen when Postgres announces the commit that"
        " ended the run (a NOTIFY from a trigger the bench adds to its database, no polling)."
    )
    return results


def print_latency(what: str, how: str, figures: dict[str, Any]) -> None:
    between = f"{figures['between']:.2f}" if figures["between"] is not None else "none (one invoke)"
    print(
        f"latency: {what} one at a time, {how}, event sent -> completed seen: p50/p90/p99"
        f" {figures['observed']} ms; {figures['app_invokes']:.1f} invokes per run at the app,"
        f" {figures['invokes_p50']:.0f} of them carrying steps (p50)"
    )
    print(
        f"  inside the engine, run created -> ended: p50/p90/p99 {figures['engine']} ms; per step, p50: app"
        f" round trip {figures['app_step_p50']:.2f} ms, engine time {figures['engine_step_p50']:.2f} ms"
    )
    print(
        f"  where a run's time goes, p50 ms: created -> first invoke sent {figures['to_first']:.2f}"
        f" | an invoke's round trip {figures['app_step_p50']:.2f} | answer -> next invoke sent {between}"
        f" | last step's answer -> run ended {figures['tail']:.2f}"
    )


def analyse_latency(observed: list[float], views: list[dict[str, Any]], steps_per_run: int) -> dict[str, Any]:
    """Percentiles of the observed latencies and, from the run views, where the engine's time went.

    The steps of one checkpoint share their invoke's startedAt and endedAt, so the invokes that carried
    steps are the distinct (startedAt, endedAt) pairs of a run's steps."""
    engine_ms: list[float] = []
    engine_per_step: list[float] = []
    app: list[float] = []
    to_first: list[float] = []
    between: list[float] = []
    tail: list[float] = []
    invokes: list[int] = []
    for view in views:
        steps = [s for s in view["steps"] if s["type"] == "run"]
        if len(steps) != steps_per_run:
            raise BenchError(f"run {view['id']} has {len(steps)} run steps, expected {steps_per_run}")
        total = seconds_between(view["createdAt"], view["endedAt"]) * 1000
        carried = sorted(
            {(s["startedAt"], s["endedAt"]) for s in steps}, key=lambda t: datetime.fromisoformat(t[0])
        )
        trips = [seconds_between(start, end) * 1000 for start, end in carried]
        invokes.append(len(carried))
        engine_ms.append(total)
        engine_per_step.append((total - sum(trips)) / steps_per_run)
        app.extend(trips)
        to_first.append(seconds_between(view["createdAt"], carried[0][0]) * 1000)
        between.extend(seconds_between(a[1], b[0]) * 1000 for a, b in zip(carried, carried[1:], strict=False))
        tail.append(seconds_between(carried[-1][1], view["endedAt"]) * 1000)

    def ps(values: list[float]) -> str:
        return "/".join(f"{percentile(values, p):.1f}" for p in (50, 90, 99))

    return {
        "runs": len(observed),
        "p50": percentile(observed, 50),
        "p90": percentile(observed, 90),
        "p99": percentile(observed, 99),
        "observed": ps(observed),
        "engine": ps(engine_ms),
        "engine_p50": percentile(engine_ms, 50),
        "app_step_p50": percentile(app, 50),
        "engine_step_p50": percentile(engine_per_step, 50),
        "invokes_p50": percentile(invokes, 50),
        "to_first": percentile(to_first, 50),
        "between": percentile(between, 50) if between else None,
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


def wakeups(process: psutil.Process) -> int | None:
    """How many times the kernel has put the process's threads on a CPU so far (the third field of
    /proc/PID/task/TID/schedstat), or None where the kernel does not say: an idle process's wake-ups."""
    total = 0
    try:
        for task in Path(f"/proc/{process.pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return None
    return total


class CpuMeter:
    """CPU used between `start()` and `stop()`, in % of one core: each engine and worker process, the
    app, Postgres (the backends of the bench database, and the whole server: the postmaster and all its
    processes, WAL writer and checkpointer included, whoever they serve) and the whole machine.

    A process that starts within the window counts from zero; one that ends within it is missed."""

    def __init__(self, stack: Stack) -> None:
        assert isinstance(stack.engine, Child) and isinstance(stack.app, Child)
        self.stack = stack
        self.engine = psutil.Process(stack.engine.pid)
        self.app = psutil.Process(stack.app.pid)
        alone = len(stack.engines) == 1 and not stack.worker_procs
        names = ["engine"] if alone else [f"start-{i + 1}" for i in range(len(stack.engines))]
        names += [f"worker-{i + 1}" for i in range(len(stack.worker_procs))]
        self.engines = {
            name: psutil.Process(child.pid)
            for name, child in zip(names, [*stack.engines, *stack.worker_procs], strict=True)
        }
        self.server: psutil.Process | None = None
        self.before: dict[str, float] = {}
        self.backends_before: dict[int, float] = {}
        self.server_before: dict[int, float] = {}
        self.started = 0.0
        self.wakeups_before: int | None = None

    async def start(self) -> None:
        assert self.stack.db is not None
        try:  # the postmaster: the parent of this connection's backend (Postgres on this machine)
            backend = psutil.Process(await self.stack.db.fetchval("SELECT pg_backend_pid()"))
            self.server = backend.parent()
        except (psutil.Error, OSError):
            self.server = None
        psutil.cpu_percent()  # starts the machine-wide measurement
        self.backends_before = await self._backends()
        self.server_before = self._server()
        self.before = self._sample()
        self.wakeups_before = wakeups(self.engine)
        self.started = time.perf_counter()

    async def stop(self) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.started
        after = self._sample()
        woken = wakeups(self.engine)
        backends, server = await self._backends(), self._server()
        machine = psutil.cpu_percent() * (psutil.cpu_count() or 1)

        def pct(seconds: float) -> float:
            return seconds / elapsed * 100

        def spent(before: dict[int, float], now: dict[int, float]) -> float:
            return sum(cpu - before.get(pid, 0.0) for pid, cpu in now.items())

        processes = {name: pct(after[name] - self.before[name]) for name in self.engines}
        figures = {
            "engine": sum(processes.values()),
            "processes": processes,
            "app": pct(after["app"] - self.before["app"]),
            "bench": pct(after["bench"] - self.before["bench"]),
            "postgres": pct(spent(self.backends_before, backends)),
            "pg_server": pct(spent(self.server_before, server)) if self.server is not None else None,
            "machine": machine,
            # the (first) engine's wake-ups a second: what an idle engine's CPU is made of
            "engine_wakeups": None
            if woken is None or self.wakeups_before is None
            else (woken - self.wakeups_before) / elapsed,
        }
        ours = figures["engine"] + figures["app"] + figures["bench"]
        figures["others"] = machine - ours - (figures["pg_server"] or figures["postgres"])
        return figures

    def _sample(self) -> dict[str, float]:
        sample = {name: cpu_seconds(process) for name, process in self.engines.items()}
        sample["app"] = cpu_seconds(self.app)
        sample["bench"] = sum(own_cpu([os.getpid()]).values())  # not its children: they are counted above
        return sample

    async def _backends(self) -> dict[int, float]:
        """CPU seconds of each backend connected to the bench database now."""
        assert self.stack.db is not None
        rows = await self.stack.db.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        )
        return own_cpu(row["pid"] for row in rows)

    def _server(self) -> dict[int, float]:
        if self.server is None:
            return {}
        try:
            pids = [self.server.pid, *(child.pid for child in self.server.children())]
        except psutil.Error:
            return {}
        return own_cpu(pids)

    @staticmethod
    def describe(cpu: dict[str, Any]) -> str:
        processes = cpu["processes"]
        if list(processes) == ["engine"]:
            engines = f"engine {cpu['engine']:.0f}"
        else:
            each = ", ".join(f"{name} {value:.0f}" for name, value in processes.items())
            engines = f"{each} (engine processes together {cpu['engine']:.0f})"
        server = f"{cpu['pg_server']:.0f}" if cpu["pg_server"] is not None else "n/a (not on this machine)"
        return (
            f"CPU in % of one core: {engines}, app {cpu['app']:.0f}, Postgres backends of the bench"
            f" database {cpu['postgres']:.0f} (whole Postgres server {server}), the bench itself"
            f" {cpu['bench']:.0f}; whole machine {cpu['machine']:.0f}, of which {max(cpu['others'], 0):.0f}"
            " outside these processes (other work on the machine)"
        )


def own_cpu(pids: Any) -> dict[int, float]:
    """CPU seconds (user + system) of each process, children not included; gone ones left out."""
    found = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        found[pid] = times.user + times.system
    return found


async def parked(
    pg: Postgres, runs: int, window: float, cloned: int, drain_cap: float, workers: int = 2
) -> dict[str, Any]:
    """`runs` runs parked through the app, then `cloned` parked runs cloned by SQL from one real one:
    for each, the engine's CPU and RSS while idle, then one event that resumes them all (the drain is
    measured over at most `drain_cap` seconds)."""
    real = await parked_idle(pg, "parked", runs, window, workers, False, drain_cap)
    many = await parked_idle(pg, "parked_clones", cloned, window, workers, True, drain_cap)
    return {"real": real, "cloned": many}


async def parked_idle(
    pg: Postgres, name: str, runs: int, window: float, workers: int, cloned: bool, drain_cap: float = 120.0
) -> dict[str, Any]:
    async with Stack(pg, name, workers) as stack:
        assert stack.db is not None
        start = time.perf_counter()
        sent = 1 if cloned else runs
        await send_all(stack, [{"name": PARK_EVENT, "data": {"i": i}} for i in range(sent)], 1000)
        await stack.wait_counts(
            f"{sent} runs to be waiting", lambda c: c["waiting"] >= sent, timeout=max(120, runs / 20)
        )
        if cloned:
            template = await stack.db.fetchval("SELECT id FROM runs WHERE function_id = 'parked'")
            copied = await clone_run(stack.db, template, 1, runs - 1)
        parked_s = time.perf_counter() - start
        await asyncio.sleep(1.0)  # the clones' commit and ANALYZE settle before the window opens
        meter = CpuMeter(stack)
        rss_start = meter.engine.memory_info().rss / 2**20
        await meter.start()
        await asyncio.sleep(window)
        cpu = await meter.stop()
        rss_end = meter.engine.memory_info().rss / 2**20
        stack.check_alive()

        wake_start = time.time()
        post_s, _ = await stack.send_timed([{"name": NEVER_EVENT, "data": {}}])
        # Each poll counts the whole runs table, so poll seldom, and take the end from the rows. A slow
        # drain is measured over `drain_cap` seconds rather than waited out.
        try:
            await stack.wait_counts(
                f"{runs} parked runs to complete after the event",
                lambda c: c["completed"] >= runs,
                timeout=drain_cap,
                every=0.05 if runs <= 10_000 else 0.5,
            )
        except BenchError:
            stack.check_alive()
            if time.time() - wake_start < drain_cap:
                raise  # a failed run, not the cap
        drained, last_end = await stack.db.fetchrow(
            "SELECT count(*), extract(epoch FROM max(ended_at)) FROM runs"
            " WHERE function_id = 'parked' AND status = 'completed'"
        )
        if not drained:
            raise BenchError(f"no parked run completed within {drain_cap:.0f} s of the event")
        wake_s = float(last_end) - wake_start

    how = (
        f"1 parked through the app and {runs - 1} cloned from it by SQL ({copied})"
        if cloned
        else "through the app"
    )
    label = "parked (cloned)" if cloned else "parked"
    print(f"{label}: {runs} runs waiting for an event, {how}, after {parked_s:.1f} s")
    woken = "" if cpu["engine_wakeups"] is None else f" ({cpu['engine_wakeups']:.1f} wake-ups a second)"
    print(
        f"{label}: over {window:.0f} s idle, engine {cpu['engine']:.1f} % of one core{woken}, RSS {rss_start:.0f} MiB at"
        f" start, {rss_end:.0f} MiB at end (app {cpu['app']:.1f} %, Postgres backends of the bench database"
        f" {cpu['postgres']:.1f} %, whole machine {cpu['machine']:.1f} %: other load on the machine shows there)"
    )
    drain = (
        "all completed"
        if drained == runs
        else f"{drained:,} completed (the bench waited {drain_cap:.0f} s, not for all)"
    )
    print(
        f"{label}: one event resumed all {runs} runs (its POST /e took {post_s:.2f} s), {drain}"
        f" {wake_s:.2f} s after it was sent = {drained / wake_s:,.0f} runs/s"
    )
    return {
        "runs": runs,
        "window": window,
        "cpu": cpu["engine"],
        "wakeups": cpu["engine_wakeups"],
        "rss_start": rss_start,
        "rss_end": rss_end,
        "post_s": post_s,
        "drained": drained,
        "wake_per_s": drained / wake_s,
    }


# --- 3b. ingest with parked waits ----------------------------------------------------------------


async def ingest(pg: Postgres, levels: tuple[int, ...], samples: int, matching: int) -> dict[str, Any]:
    """The latency of one signed `POST /e` of an event whose name has 0, 10,000, ... parked waits (each on
    its own orderId) that it matches none of; then of events that match exactly one wait each.

    One run parks through the app (`await-approval`, waiting for `bench.approval` with match
    {orderId: o-0}); the others are cloned from it by SQL, clone k waiting on orderId o-k."""
    async with Stack(pg, "ingest") as stack:
        assert stack.db is not None
        for i in range(50):  # warm: connections, the statement cache, the signature check
            await stack.send([{"name": APPROVAL_EVENT, "data": {"orderId": f"warm-{i}"}}])
        figures: dict[str, Any] = {"levels": {}, "samples": samples}
        parked = 0
        for level in levels:
            if level > 0 and parked == 0:
                await stack.send([{"name": ORDER_EVENT, "data": {"orderId": "o-0"}}])
                await stack.wait_counts("the template run to wait", lambda c: c["waiting"] >= 1, timeout=30)
                parked = 1
            if level > parked:
                template = await stack.db.fetchval("SELECT id FROM runs WHERE function_id = 'await-approval'")
                figures["copied"] = await clone_run(
                    stack.db, template, parked, level - parked, vary=approval_waits()
                )
                parked = level
            waits = await stack.db.fetchval(
                "SELECT count(*) FROM waits WHERE event_name = $1", APPROVAL_EVENT
            )
            if waits != level:
                raise BenchError(f"{waits} waits on {APPROVAL_EVENT}, expected {level}")
            # In turn, the same event under a name nobody waits for: a baseline from the same moments.
            misses, unwaited = [], []
            for i in range(samples):
                data = {"orderId": f"none-{level}-{i}"}
                misses.append((await stack.send_timed([{"name": APPROVAL_EVENT, "data": data}]))[0])
                unwaited.append((await stack.send_timed([{"name": UNWAITED_EVENT, "data": data}]))[0])
            figures["levels"][level] = summarise_ms(misses)
            figures["levels"][level]["unwaited_p50"] = summarise_ms(unwaited)["p50"]
        top = max(levels)
        chosen = sorted({(k * 7919) % top for k in range(1, matching + 1)}) if top else []
        hits = [
            (await stack.send_timed([{"name": APPROVAL_EVENT, "data": {"orderId": f"o-{k}"}}]))[0]
            for k in chosen
        ]
        if hits:
            await stack.wait_counts(
                f"the {len(hits)} matched runs to complete", lambda c: c["completed"] >= len(hits), timeout=60
            )
            figures["hit"] = summarise_ms(hits) | {"count": len(hits), "among": top}
    base = figures["levels"][min(levels)]["p50"]
    for level, lat in figures["levels"].items():
        print(
            f"ingest: POST /e of an event matching none of {level:,} parked waits of its name:"
            f" p50 {lat['p50']:.2f} ms, p90 {lat['p90']:.2f} ms over {samples} events;"
            f" {lat['p50'] / base:.2f}× the p50 with {min(levels):,} waits measured first,"
            f" {lat['p50'] / lat['unwaited_p50']:.2f}× the p50 of a name without waits sent in turn with it"
        )
    if "hit" in figures:
        hit = figures["hit"]
        print(
            f"ingest: POST /e of an event matching exactly one of {hit['among']:,} parked waits:"
            f" p50 {hit['p50']:.2f} ms, p90 {hit['p90']:.2f} ms over {hit['count']} events (each resumed"
            " its run, which then completed)"
        )
    if "copied" in figures:
        print(
            f"  the parked waits: 1 run parked through the app, the others cloned from it by SQL"
            f" ({figures['copied']}), each clone's wait on its own orderId; ANALYZE after cloning"
        )
    return figures


UNWAITED_EVENT = "bench.unwaited"  # an event name no run waits for


def approval_waits() -> dict[str, dict[str, str]]:
    """What a clone of the await-approval run changes: its order (in its event) and its wait's match."""
    return {
        "runs": {"event": "jsonb_set(t.event, '{data,orderId}', to_jsonb('o-' || g))"},
        "waits": {"match": "jsonb_build_object('orderId', 'o-' || g)"},
    }


def summarise_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"p50": percentile(ms, 50), "p90": percentile(ms, 90)}


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
        cpu = await meter.stop()
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
    """Send one event and wait until the run it started has ended (the commit that ended it announced
    by Postgres, harness.EndWatch): (seconds from the POST sent, run id)."""
    await stack.watch_ends()
    start, _, [event_id] = await stack.send_stamped([{"name": name, "data": data}])
    try:
        seen, run_id, status = await stack.ended(event_id, timeout)
    except TimeoutError:
        stack.check_alive()
        raise BenchError(f"run of {name} not ended after {timeout:.0f} s") from None
    if status != "completed":
        raise BenchError(f"run {run_id} ended {status}")
    return seen - start, run_id


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
