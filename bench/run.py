"""Durable's benchmark: `python bench/run.py [--quick]` (or `make bench`). It prints; it asserts nothing.

Each scenario runs the engine (`python -m durable start`) and the app (bench/benchapp.py under uvicorn)
as two processes on a fresh database `bench_<scenario>`, dropped afterwards:

  reference   aiohttp no-op POSTs to the app, and SELECT 1 / INSERT+COMMIT on one connection,
              so the figures below can be quoted as ratios of what this machine does
  throughput  N three-step runs sent in batches of 500; first send -> last run ended; with the SDK's
              checkpointing off (one step per invoke) and on (the default: one invoke runs all three)
  scaleout    the throughput scenario on 1, 2 and 4 `durable start` processes and with `durable worker`
              processes added, on one database, on the embedded Postgres and on the external one
              (--external-pg or DATABASE_URL): steps/s and the CPU of every process and of Postgres
  latency     three-step runs one at a time, checkpointing off and on in turn; event sent ->
              completed, and where the time goes; then 20-step runs (checkpointing on): invokes per run
  parked      runs waiting for an event: the engine's CPU and RSS while idle, then one event wakes all;
              first runs parked through the app, then 100,000 cloned by SQL from one
  ingest      POST /e latency of an event whose name has 0, 10,000 and 100,000 parked waits (SQL
              clones, each on its own orderId) that it matches none of, and of events matching one
  flow        a burst of one-step runs over 100 keys with concurrency 10 per key: drain time, the most
              steps per key executing at once as counted by the app, and the same burst ungated
  fairness    one workspace queues a deep backlog of slow priority-100 runs on 8 slots; a quiet
              workspace's runs, one at a time: time to start, and the claim statement's cost

Postgres: the server of DATABASE_URL when set (the scenarios create databases on it), otherwise the
embedded one in .bench-pg/ on port BENCH_PG_PORT (default 5439), started and stopped by the bench.
scaleout runs on the embedded one and, when --external-pg or DATABASE_URL names one, on that too.
At the end it prints a Markdown table for bench/RESULTS.md, with ratios against the figures Restate
1.7 reached on this kind of machine (../shared/bench-anchors.md) where issue 13 sets targets.
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

SCENARIOS = (
    "reference",
    "throughput",
    "latency",
    "parked",
    "ingest",
    "flow",
    "fairness",
    "compose",
    "scaleout",
)
# (start processes, worker processes) of the scale-out scenario
SCALEOUT = ((1, 0), (2, 0), (4, 0), (1, 1), (1, 3))
SCALEOUT_QUICK = ((1, 0), (2, 0), (1, 1))
APP_LIMIT_PCT = 80  # app CPU (% of one core) from which scale-out repeats its best shape with 2 app processes

# Restate 1.7 on this kind of machine (../shared/bench-anchors.md, two days): the 3-step handler
RESTATE_STEPS_PER_S = (607, 1133)
RESTATE_P50_MS = (8.6, 12.7)
# Issue 13's targets as ratios against Restate: (steps/s at least, p50 at most), checkpointing off / on
TARGETS = {False: (2.5, 0.6), True: (5.0, 0.3)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts and windows (about a minute)")
    parser.add_argument(
        "--only", choices=SCENARIOS, action="append", help="run only this scenario (repeatable)"
    )
    parser.add_argument("--workers", default=None, help="worker counts for throughput, e.g. 1,2,4")
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help="three-step runs per throughput round (default 3000; quick 600)",
    )
    parser.add_argument(
        "--external-pg",
        metavar="URL",
        default=os.environ.get("DATABASE_URL"),
        help="a Postgres server scaleout also runs on, besides the embedded one (default: DATABASE_URL)",
    )
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


async def machine_state(pg: Postgres, others: list[Postgres]) -> dict[str, Any]:
    state = {
        "cpus": os.cpu_count(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "postgres": await pg.summary(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "revision": git_revision(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
    print(f"machine: {state['cpus']} CPUs (nproc), load average {state['load']}, {platform.platform()}")
    print(f"postgres: {state['postgres']}")
    for other in others:
        print(f"postgres for scaleout: {await other.summary()}")
    print(f"durable: {state['revision']}, {state['python']}, {state['date']}")
    return state


async def attempt(name: str, measurement: Awaitable[Any]) -> Any:
    """Run one measurement; on a BenchError print why and go on with the next."""
    try:
        return await measurement
    except BenchError as exc:
        print(f"{name}: FAILED: {exc}")
        return None


def vs_restate_steps(steps: float, checkpoint: bool) -> str:
    low, high = RESTATE_STEPS_PER_S
    target = TARGETS[checkpoint][0]
    return (
        f"{steps / high:.1f}–{steps / low:.1f}× Restate's {low:,}–{high:,} steps/s"
        f" (target ≥ {target}× with {scenarios.variant(checkpoint)})"
    )


def vs_restate_p50(p50: float, checkpoint: bool) -> str:
    low, high = RESTATE_P50_MS
    target = TARGETS[checkpoint][1]
    return (
        f"{p50 / high:.2f}–{p50 / low:.2f}× Restate's p50 {low}–{high} ms"
        f" (target ≤ {target}× with {scenarios.variant(checkpoint)})"
    )


def cpu_cell(cpu: dict[str, Any]) -> str:
    """The CPU of a scale-out configuration, compact: each engine process, the app, Postgres."""
    engines = " / ".join(f"{v:.0f}" for v in cpu["processes"].values())
    server = f"{cpu['pg_server']:.0f}" if cpu["pg_server"] is not None else "n/a"
    return (
        f"CPU % of a core: engine processes {engines}, app {cpu['app']:.0f}, Postgres bench backends"
        f" {cpu['postgres']:.0f} (server {server}), machine {cpu['machine']:.0f}"
        f" ({max(cpu['others'], 0):.0f} outside the bench's processes)"
    )


def summary(state: dict[str, Any], results: dict[str, Any]) -> str:
    ref = results.get("reference") or {}
    trip_ms = 1000 / ref["http_c1"] if ref else None
    commit_ms = 1000 / ref["commit"] if ref else None

    def ratio(value: float, unit: float | None, text: str) -> str:
        return f"{value / unit:.1f}× {text}" if unit else ""

    rows = []
    for tp in results.get("throughput") or []:
        rows.append(
            (
                f"throughput, {tp['runs']:,} three-step runs, one engine process, workers={tp['workers']},"
                f" {scenarios.variant(tp['checkpoint'])}",
                f"{tp['runs_per_s']:,.0f} runs/s = {tp['steps_per_s']:,.0f} steps/s",
                vs_restate_steps(tp["steps_per_s"], tp["checkpoint"]),
            )
        )
    single: dict[tuple[str, bool], float] = {}
    for so in results.get("scaleout") or []:
        key = (so["pg"], so["checkpoint"])
        if so["engines"] == 1 and so["worker_processes"] == 0 and so["app_processes"] == 1:
            single[key] = so["steps_per_s"]
        rows.append(
            (
                f"scale-out [{so['pg']} Postgres], {so['runs']:,} three-step runs, {so['shape']},"
                f" {scenarios.variant(so['checkpoint'])}",
                f"{so['steps_per_s']:,.0f} steps/s; {cpu_cell(so['cpu'])}",
                f"{so['steps_per_s'] / single[key]:.2f}× one process" if key in single else "",
            )
        )
    lat = results.get("latency")
    if lat:
        for checkpoint in (False, True):
            figures = lat["on" if checkpoint else "off"]
            how = scenarios.variant(checkpoint)
            rows.append(
                (
                    f"latency, three-step run one at a time, {how} (event sent → completed seen)",
                    f"p50 {figures['p50']:.1f} ms, p90 {figures['p90']:.1f} ms, p99 {figures['p99']:.1f} ms;"
                    f" {figures['app_invokes']:.1f} invokes per run",
                    vs_restate_p50(figures["p50"], checkpoint),
                )
            )
            rows.append(
                (
                    f"… {how}, inside the engine (run created → ended)",
                    f"p50 {figures['engine_p50']:.1f} ms",
                    ratio(figures["engine_p50"], trip_ms, "a no-op HTTP round trip"),
                )
            )
            between = (
                f"; answer → next invoke sent p50 {figures['between']:.2f} ms"
                if figures["between"] is not None
                else ""
            )
            rows.append(
                (
                    f"… {how}, per step: engine time besides the app round trips",
                    f"p50 {figures['engine_step_p50']:.2f} ms (an invoke's round trip"
                    f" {figures['app_step_p50']:.2f} ms){between}",
                    ratio(figures["engine_step_p50"], commit_ms, "a one-row commit"),
                )
            )
        long = lat["twenty"]
        rows.append(
            (
                f"latency, {long['runs']} twenty-step runs one at a time, checkpointing on",
                f"p50 {long['p50']:.1f} ms, p99 {long['p99']:.1f} ms; {long['app_invokes']:.1f} invokes per run",
                "target ≤ 3 invokes",
            )
        )
    park = results.get("parked")
    if park:
        for kind, part in (("", park["real"]), (" (cloned by SQL)", park["cloned"])):
            target = "target < 1 % and < 150 MiB at 100,000" if kind else ""
            woken = "" if part.get("wakeups") is None else f" ({part['wakeups']:.1f} wake-ups/s)"
            rows.append(
                (
                    f"{part['runs']:,} runs parked on a wait{kind}, engine idle over {part['window']:.0f} s",
                    f"{part['cpu']:.1f} % of a core{woken}, RSS {part['rss_start']:.0f} → {part['rss_end']:.0f} MiB",
                    target,
                )
            )
            some = (
                f" ({part['drained']:,} completed when the bench stopped waiting)"
                if part["drained"] < part["runs"]
                else ""
            )
            rows.append(
                (
                    f"one event wakes {part['runs']:,} parked runs{kind}{some}",
                    f"{part['wake_per_s']:,.0f} runs/s (its POST /e {part['post_s']:.2f} s)",
                    "target ≥ 2,000 runs/s at 100,000" if kind else "",
                )
            )
    ing = results.get("ingest")
    if ing:
        levels = ing["levels"]
        base = levels[min(levels)]["p50"]
        for level, figures in levels.items():
            rows.append(
                (
                    f"ingest: POST /e of an event matching none of {level:,} parked waits",
                    f"p50 {figures['p50']:.2f} ms, p90 {figures['p90']:.2f} ms",
                    f"{figures['p50'] / base:.2f}× with none measured first,"
                    f" {figures['p50'] / figures['unwaited_p50']:.2f}× a name without waits sent in turn"
                    " (target ≤ 1.5× at 100,000)"
                    if level
                    else "",
                )
            )
        if "hit" in ing:
            hit = ing["hit"]
            rows.append(
                (
                    f"ingest: POST /e of an event matching exactly one of {hit['among']:,} parked waits",
                    f"p50 {hit['p50']:.2f} ms, p90 {hit['p90']:.2f} ms",
                    f"{hit['p50'] / base:.2f}× with none",
                )
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


async def bench(pg: Postgres, targets: list[Postgres], args: argparse.Namespace) -> bool:
    """Run the chosen scenarios on `pg` (scaleout on each of `targets`), print, and the summary table."""
    quick = args.quick
    state = await machine_state(pg, [t for t in targets if t is not pg])
    print(f"mode: {'quick' if quick else 'full'}; child logs in {LOG_DIR}")
    print()
    results: dict[str, Any] = {}
    if "reference" in args.only:
        results["reference"] = await attempt("reference", scenarios.references(pg, quick))
    if "throughput" in args.only:
        runs = args.runs or (600 if quick else 3000)
        measured = [
            await attempt("throughput", scenarios.throughput(pg, runs, w, checkpoint))
            for w in args.workers
            for checkpoint in (False, True)
        ]
        results["throughput"] = [m for m in measured if m is not None]
    if "latency" in args.only:
        runs, twenty = (60, 10) if quick else (300, 30)
        results["latency"] = await attempt("latency", scenarios.latency(pg, runs, twenty))
    if "parked" in args.only:
        runs, window, cloned, cap = (1000, 10.0, 10_000, 30.0) if quick else (10_000, 30.0, 100_000, 120.0)
        results["parked"] = await attempt("parked", scenarios.parked(pg, runs, window, cloned, cap))
    if "ingest" in args.only:
        levels, samples, matching = (
            ((0, 1_000, 10_000), 100, 10) if quick else ((0, 10_000, 100_000), 300, 20)
        )
        results["ingest"] = await attempt("ingest", scenarios.ingest(pg, levels, samples, matching))
    if "flow" in args.only:
        results["flow"] = await attempt("flow", scenarios.flow(pg, 2000 if quick else 10_000))
    if "fairness" in args.only:
        backlog, quiet = (10_000, 10) if quick else (100_000, 20)
        results["fairness"] = await attempt("fairness", scenarios.fairness(pg, backlog, quiet))
    if "compose" in args.only:
        results["compose"] = await attempt("compose", scenarios.compose(pg, 100, 3 if quick else 5))
    if "scaleout" in args.only:
        shapes, runs = (SCALEOUT_QUICK, 600) if quick else (SCALEOUT, 3000)
        results["scaleout"] = [m for target in targets for m in await scale_out(target, shapes, runs)]
    print()
    print(summary(state, results))
    failed = [name for name in args.only if not results.get(name)]
    if failed:
        print(f"\nfailed: {', '.join(failed)} (child logs kept in {LOG_DIR})")
    return not failed


async def scale_out(pg: Postgres, shapes: tuple[tuple[int, int], ...], runs: int) -> list[dict[str, Any]]:
    """Every shape, checkpointing off then on; where the app used most of a core, the fastest shape
    again with the app in 2 processes, to show whether the app was the limit."""
    measured = []
    for checkpoint in (False, True):
        sweep = []
        for engines, workers in shapes:
            figures = await attempt("scaleout", scenarios.scaleout(pg, runs, engines, workers, checkpoint))
            if figures is not None:
                sweep.append(figures)
        busy = [f for f in sweep if f["cpu"]["app"] >= APP_LIMIT_PCT]
        if busy:
            best = max(sweep, key=lambda f: f["steps_per_s"])
            print(
                f"scaleout [{pg.label}]: the app used {max(f['cpu']['app'] for f in busy):.0f} % of a core"
                f" (≥ {APP_LIMIT_PCT}): the fastest shape again with the app in 2 uvicorn processes"
            )
            again = await attempt(
                "scaleout",
                scenarios.scaleout(
                    pg, runs, best["engines"], best["worker_processes"], checkpoint, app_processes=2
                ),
            )
            if again is not None:
                sweep.append(again)
        measured.extend(sweep)
    return measured


def scale_out_servers(pg: Postgres, args: argparse.Namespace) -> list[Postgres]:
    """The servers scaleout runs on: the embedded one, and the external one when one is named."""
    if "scaleout" not in args.only:
        return [pg]
    embedded = pg if pg.embedded else Postgres.embedded_server()
    targets = [embedded]
    if args.external_pg:
        same = not pg.embedded and pg.admin_dsn == args.external_pg
        targets.append(pg if same else Postgres.external(args.external_pg))
    return targets


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C and SIGTERM both stop the children and Postgres, even where the shell started us ignoring SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    ok = False
    try:
        pg = Postgres.start()
        targets = [pg]
        try:
            targets = scale_out_servers(pg, args)
            ok = uvloop.run(bench(pg, targets, args))
        finally:
            for server in {id(t): t for t in [pg, *targets]}.values():
                server.stop()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        if ok and not remove_logs():
            print(f"child logs kept in {LOG_DIR}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
