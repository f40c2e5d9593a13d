"""Durable's benchmark: `python bench/run.py [--quick]` (or `make bench`). It prints; it asserts nothing.

Each scenario runs the engine (`python -m durable start`) and the app (bench/benchapp.py under uvicorn)
as two processes on a fresh database `bench_<scenario>`, dropped afterwards:

  reference   aiohttp no-op POSTs to the app, and SELECT 1 / INSERT+COMMIT on one connection,
              so the figures below can be quoted as ratios of what this machine does
  throughput  N three-step runs sent in batches of 500; first send -> last run ended
  latency     three-step runs one at a time; event sent -> completed, and where the time goes
  parked      runs waiting for an event: the engine's CPU and RSS while idle, then one event wakes all
  flow        a burst of one-step runs over 100 keys with concurrency 10 per key: drain time, the most
              steps per key executing at once as counted by the app, and the same burst ungated
  fairness    one workspace queues a deep backlog of slow priority-100 runs on 8 slots; a quiet
              workspace's runs, one at a time: time to start, and the claim statement's cost

Postgres: the server of DATABASE_URL when set (the scenarios create databases on it), otherwise the
embedded one in .bench-pg/ on port BENCH_PG_PORT (default 5439), started and stopped by the bench.
At the end it prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable
from typing import Any

import scenarios
import uvloop
from benchapp import FLOW_LIMIT
from harness import LOG_DIR, REPO, BenchError, Postgres, remove_logs

SCENARIOS = ("reference", "throughput", "latency", "parked", "flow", "fairness", "compose")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts and windows (about a minute)")
    parser.add_argument(
        "--only", choices=SCENARIOS, action="append", help="run only this scenario (repeatable)"
    )
    parser.add_argument("--workers", default=None, help="worker counts for throughput, e.g. 1,2,4")
    args = parser.parse_args(argv)
    args.only = args.only or list(SCENARIOS)
    default_workers = "2" if args.quick else "1,2,4"
    args.workers = [int(w) for w in (args.workers or default_workers).split(",")]
    return args


def git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return f"{rev}{' + uncommitted changes in src/' if dirty else ''}"


async def machine_state(pg: Postgres) -> dict[str, Any]:
    info = await pg.describe()
    state = {
        "cpus": os.cpu_count(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "postgres": f"PostgreSQL {info['version']} ({'embedded, .bench-pg/' if pg.embedded else 'external, DATABASE_URL'};"
        f" fsync={info['fsync']}, synchronous_commit={info['synchronous_commit']},"
        f" shared_buffers={info['shared_buffers']}, max_connections={info['max_connections']})",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "revision": git_revision(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
    print(f"machine: {state['cpus']} CPUs (nproc), load average {state['load']}, {platform.platform()}")
    print(f"postgres: {state['postgres']}")
    print(f"durable: {state['revision']}, {state['python']}, {state['date']}")
    return state


async def attempt(name: str, measurement: Awaitable[Any]) -> Any:
    """Run one measurement; on a BenchError print why and go on with the next."""
    try:
        return await measurement
    except BenchError as exc:
        print(f"{name}: FAILED: {exc}")
        return None


def summary(state: dict[str, Any], results: dict[str, Any]) -> str:
    ref = results.get("reference") or {}
    trip_ms = 1000 / ref["http_c1"] if ref else None
    commit_ms = 1000 / ref["commit"] if ref else None

    def ratio(value: float, unit: float | None, text: str) -> str:
        return f"{value / unit:.1f}× {text}" if unit else ""

    rows = []
    for tp in results.get("throughput") or []:
        steps = tp["runs_per_s"] * scenarios.STEPS_PER_RUN
        rows.append(
            (
                f"throughput, {tp['runs']:,} three-step runs, workers={tp['workers']}",
                f"{tp['runs_per_s']:,.0f} runs/s = {steps:,.0f} steps/s",
                ratio(steps, ref.get("commit"), "the one-connection commit rate") if ref else "",
            )
        )
    lat = results.get("latency")
    if lat:
        rows.append(
            (
                "latency, three-step run one at a time (event sent → completed seen)",
                f"p50 {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms, p99 {lat['p99']:.1f} ms",
                ratio(lat["p50"], trip_ms, "a no-op HTTP round trip"),
            )
        )
        rows.append(
            (
                "… inside the engine (run created → ended)",
                f"p50 {lat['engine_p50']:.1f} ms",
                ratio(lat["engine_p50"], trip_ms, "a no-op HTTP round trip"),
            )
        )
        rows.append(
            (
                "… per step: engine time besides the app round trip",
                f"p50 {lat['engine_step_p50']:.2f} ms (app round trip {lat['app_step_p50']:.2f} ms)",
                ratio(lat["engine_step_p50"], commit_ms, "a one-row commit"),
            )
        )
    park = results.get("parked")
    if park:
        rows.append(
            (
                f"{park['runs']:,} runs parked on a wait, engine idle over {park['window']:.0f} s",
                f"{park['cpu']:.1f} % of a core, RSS {park['rss_start']:.0f} → {park['rss_end']:.0f} MiB",
                "",
            )
        )
        rows.append(
            (f"one event wakes {park['runs']:,} parked runs", f"{park['wake_per_s']:,.0f} runs/s", "")
        )
    flow = results.get("flow")
    if flow:
        gated, plain = flow["gated"], flow["plain"]
        violation = (
            f" — VIOLATION: {len(gated['over_limit'])} key(s) over the limit" if gated["over_limit"] else ""
        )
        rows.append(
            (
                f"flow, {gated['runs']:,} one-step runs (5 ms work) over {scenarios.FLOW_KEYS} keys,"
                f" concurrency {FLOW_LIMIT} per key: drain",
                f"{gated['seconds']:.2f} s = {gated['runs_per_s']:,.0f} runs/s",
                "",
            )
        )
        rows.append(
            (
                "… max steps executing at once per key, counted at the app",
                f"{gated['max_per_key']} (limit {FLOW_LIMIT}){violation}",
                "",
            )
        )
        rows.append(
            (
                "… the same burst without the concurrency option: drain",
                f"{plain['seconds']:.2f} s = {plain['runs_per_s']:,.0f} runs/s",
                "",
            )
        )
        saturated = flow["saturated"]
        rows.append(
            (
                "… saturated: the same gated burst with 1 s steps, max executing at once per key (app)",
                f"{saturated['max_per_key']} (limit {FLOW_LIMIT}), {saturated['overall_max']} overall,"
                f" drained in {saturated['seconds']:.1f} s",
                "",
            )
        )
        rows.append(
            (
                "… gate overhead per start (drain-time difference / runs)",
                f"{flow['overhead_us']:,.0f} µs",
                "",
            )
        )
    fair = results.get("fairness")
    if fair:
        rows.append(
            (
                f"fairness: {fair['backlog']:,} slow priority-100 runs queued in one workspace, 8 slots;"
                " a quiet workspace's run, time to start",
                f"p50 {fair['p50']:.0f} ms, p90 {fair['p90']:.0f} ms, max {fair['max']:.0f} ms"
                f" (idle engine {fair['idle_ms']:.1f} ms; before: ≈ {fair['old_order_s']:,.0f} s)",
                "",
            )
        )
        rows.append(
            (
                "… the claim statement with that backlog (EXPLAIN ANALYZE), 1 / 64 runs",
                f"{fair['claim_1']:.2f} / {fair['claim_64']:.2f} ms",
                "",
            )
        )
    comp = results.get("compose")
    if comp:
        rows.append(
            (
                f"compose: a parent invoking {comp['fan_size']} children at once, gathering their outputs",
                f"p50 {comp['fan_ms_p50']:.0f} ms; invokes: parent {comp['fan_parent_invokes']:.1f},"
                f" children {comp['fan_child_invokes']:.0f}",
                "",
            )
        )
        rows.append(
            (
                "… ten 20 ms steps in parallel / one after the other",
                f"p50 {comp['parallel_ms_p50']:.0f} / {comp['sequential_ms_p50']:.0f} ms"
                f" in {comp['parallel_invokes']:.0f} / {comp['sequential_invokes']:.0f} invokes",
                "",
            )
        )
    if ref:
        rows.append(
            (
                "reference: aiohttp no-op POST to the uvicorn app, concurrency 1 / 32",
                f"{ref['http_c1']:,.0f} / {ref['http_c32']:,.0f} req/s",
                "",
            )
        )
        rows.append(
            (
                "reference: one asyncpg connection, SELECT 1 / one-row INSERT+COMMIT",
                f"{ref['select']:,.0f} / {ref['commit']:,.0f} per s",
                "",
            )
        )
    lines = [
        f"Measured {state['date']} at {state['revision']}: {state['cpus']} CPUs, load {state['load']},"
        f" {state['postgres']}, {state['python']}.",
        "",
        "| what | figure | ratio |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
    ]
    return "\n".join(lines)


async def bench(pg: Postgres, args: argparse.Namespace) -> bool:
    quick = args.quick
    state = await machine_state(pg)
    print(f"mode: {'quick' if quick else 'full'}; child logs in {LOG_DIR}")
    print()
    results: dict[str, Any] = {}
    if "reference" in args.only:
        results["reference"] = await attempt("reference", scenarios.references(pg, quick))
    if "throughput" in args.only:
        runs = 600 if quick else 3000
        measured = [await attempt("throughput", scenarios.throughput(pg, runs, w)) for w in args.workers]
        results["throughput"] = [m for m in measured if m is not None]
    if "latency" in args.only:
        results["latency"] = await attempt("latency", scenarios.latency(pg, 60 if quick else 300))
    if "parked" in args.only:
        runs, window = (1000, 10.0) if quick else (10_000, 30.0)
        results["parked"] = await attempt("parked", scenarios.parked(pg, runs, window))
    if "flow" in args.only:
        results["flow"] = await attempt("flow", scenarios.flow(pg, 2000 if quick else 10_000))
    if "fairness" in args.only:
        backlog, quiet = (10_000, 10) if quick else (100_000, 20)
        results["fairness"] = await attempt("fairness", scenarios.fairness(pg, backlog, quiet))
    if "compose" in args.only:
        results["compose"] = await attempt("compose", scenarios.compose(pg, 100, 3 if quick else 5))
    print()
    print(summary(state, results))
    failed = [name for name in args.only if not results.get(name)]
    if failed:
        print(f"\nfailed: {', '.join(failed)} (child logs kept in {LOG_DIR})")
    return not failed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C and SIGTERM both stop the children and Postgres, even where the shell started us ignoring SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    ok = False
    try:
        pg = Postgres.start()
        try:
            ok = uvloop.run(bench(pg, args))
        finally:
            pg.stop()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        if ok and not remove_logs():
            print(f"child logs kept in {LOG_DIR}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
