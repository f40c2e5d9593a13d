"""Chaos with restarts: real `durable start` + `durable worker` processes on a private Postgres
(tests/pgcluster.py), driving runs of steps a, b, a durable sleep "nap", c, d against a Python SDK app on
real HTTP (checkpointed, the SDK's default: a kill mid-invoke loses, and re-executes, up to two steps), while worker processes and the engine are killed with SIGKILL (and restarted) and Postgres is
crash-restarted (`pg_ctl restart -m immediate`) or crashed and kept down for longer than a lease (so every
lease lapses while workers still hold runs). Events are resent until acknowledged, under event ids, so a
resend is idempotent; meanwhile the API may refuse them with 503, never with another error.

The app logs every invoke it receives (run id, the memo's step ids, the worker's user-agent, start and
end) and every step execution. Afterwards (DESIGN.md §8, invariants 1, 2, 3, 9, 10):
- every event id was acknowledged and has exactly one run;
- every run completed with the right output, its stored steps exactly a, b, nap, c, d, once, in order;
- memos only grow: no invoke's memo lacks a step that an earlier invoke of the run carried, or a step
  stored before the invoke began (a zombie invoke after a lapsed lease);
- no step executed after it was stored or after a memo of its run carried it; a step may execute twice
  only when the first execution's result was never stored (an in-flight step at a crash);
- no two invokes of one run overlapped in time;
- no engine or worker process exited by itself (each recovers from a Postgres restart).
Every violation is collected with its run before one assertion, so a failure shows all of them.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import durable_sdk
import httpx
import orjson
import pytest

from tests.e2e.procs import Proc, engine_env
from tests.e2e.test_crash_recovery import _provision, _signed
from tests.harness import AppServer, read_request
from tests.pgcluster import PgCluster

RUN_STEPS = ("a", "b", "c", "d")
STORED_ORDER = ["a", "b", "nap", "c", "d"]
SLACK_S = 0.25  # clock skew between the app's log and a stored step's time: same host, one clock
LEASE_MS = 2000
OUTAGE_S = 1.75 * LEASE_MS / 1000  # Postgres down longer than a lease: every lease lapses meanwhile


@dataclass(frozen=True)
class Invoke:
    run_id: str
    n: int
    memo: frozenset[str]
    agent: str
    start: float
    end: float
    status: int


class InvokeLog:
    """ASGI middleware in front of the SDK app: logs each invoke with the memo it carried."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.invokes: list[Invoke] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body, replay = await read_request(receive)
        start = time.time()
        request = orjson.loads(body) if body else {}
        agent = dict(scope["headers"]).get(b"user-agent", b"").decode()
        status = 0

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, replay, sending)
        finally:
            invoke = Invoke(
                run_id=str(request.get("runId", "")),
                n=int(((request.get("event") or {}).get("data") or {}).get("n", -1)),
                memo=frozenset((request.get("steps") or {}).keys()),
                agent=agent,
                start=start,
                end=time.time(),
                status=status,
            )
            with self.lock:
                self.invokes.append(invoke)


class LoggedApp(AppServer):
    """An AppServer whose every invoke passes through an InvokeLog."""

    def __init__(self, functions: list[Any], signing_key: str) -> None:
        super().__init__(functions, signing_key)
        self.invoke_log = InvokeLog(self.server.config.app)
        self.server.config.app = self.invoke_log


class Fleet:
    """The engine (`durable start`) and worker processes; kills, restarts and self-exits."""

    def __init__(self, dsn: str, log_dir: Path, workers: int, engine_workers: int) -> None:
        self.log_dir = log_dir
        # Ten runs in flight per loop, so every process drives some of the runs (the engine's own loop
        # takes fresh runs straight from its ingests and would otherwise drive nearly all).
        self.env = engine_env(
            dsn, DURABLE_WORKERS=1, DURABLE_INVOKES_PER_WORKER=10, DURABLE_LEASE_MS=LEASE_MS
        )
        self.engine_env = {**self.env, "DURABLE_WORKERS": str(engine_workers)}
        self.base = f"http://127.0.0.1:{self.env['PORT']}"
        self.spawned = 0
        self.names: dict[int, str] = {}  # pid → process name, to tell which process sent an invoke
        self.self_exits: list[str] = []
        self.engine = self._spawn("start", self.engine_env, "engine")
        self.workers = [self._spawn("worker", self.env, f"worker{i}") for i in range(workers)]
        self.engine.wait_healthy()
        for w in self.workers:
            w.wait_log("worker loop(s) running")

    def _spawn(self, command: str, env: dict[str, str], name: str) -> Proc:
        self.spawned += 1
        proc = Proc(command, env, self.log_dir, f"{name}-{self.spawned}")
        self.names[proc.pid] = f"{name}-{self.spawned}"
        return proc

    def kill_worker(self, index: int) -> None:
        self.workers[index].kill9()
        self.workers[index].stop()
        self.workers[index] = self._spawn("worker", self.env, f"worker{index}")
        self.workers[index].wait_log("worker loop(s) running")

    def kill_engine(self) -> None:
        self.engine.kill9()
        self.engine.stop()
        self.engine = self._spawn("start", self.engine_env, "engine")
        self.engine.wait_healthy()

    def check_exits(self) -> None:
        """Record (and replace) any process that exited on its own: none should."""
        for i, w in enumerate(self.workers):
            if w.popen.poll() is not None:
                self.self_exits.append(f"{self.names[w.pid]} exited {w.popen.returncode}: {_tail(w.log())}")
                w.stop()
                self.workers[i] = self._spawn("worker", self.env, f"worker{i}")
        if self.engine.popen.poll() is not None:
            name = self.names[self.engine.pid]
            self.self_exits.append(
                f"{name} exited {self.engine.popen.returncode}: {_tail(self.engine.log())}"
            )
            self.engine.stop()
            self.engine = self._spawn("start", self.engine_env, "engine")
            self.engine.wait_healthy()

    def who(self, agent: str) -> str:
        for pid, name in self.names.items():
            if f"(pid {pid})" in agent:
                return name
        return agent

    def stop(self) -> None:
        self.engine.stop()
        for w in self.workers:
            w.stop()


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])


class Sender(threading.Thread):
    """Sends batches of events at a steady pace, each batch resent until acknowledged (200)."""

    def __init__(self, base: str, app_id: str, key: str, events: list[dict[str, Any]], span_s: float) -> None:
        super().__init__(daemon=True)
        self.base, self.app_id, self.key = base, app_id, key
        self.batches = [events[i : i + 10] for i in range(0, len(events), 10)]
        self.pace_s = span_s / len(self.batches)
        self.acked: dict[str, int] = defaultdict(int)  # event id → acknowledgements
        self.refusals: dict[str, int] = defaultdict(int)  # what a failed send saw → how often
        self.unacked: list[str] = []
        self.wrong_refusals: list[str] = []  # answers other than 200 or 503 (DESIGN §2: never a 500)

    def run(self) -> None:
        for batch in self.batches:
            deadline = time.monotonic() + 60
            while True:
                try:
                    response = _signed(self.base, self.app_id, self.key, "/e", batch)
                    if response.status_code == 200:
                        for event_id in response.json()["ids"]:
                            self.acked[event_id] += 1
                        break
                    self.refusals[f"HTTP {response.status_code}"] += 1
                    if response.status_code != 503:
                        self.wrong_refusals.append(f"HTTP {response.status_code}: {response.text[:300]}")
                except httpx.HTTPError as exc:
                    self.refusals[type(exc).__name__] += 1
                if time.monotonic() > deadline:
                    self.unacked += [e["id"] for e in batch]
                    break
                time.sleep(0.2)
            time.sleep(self.pace_s)


def _get(base: str, path: str, params: dict[str, Any] | None = None, timeout: float = 30) -> Any:
    """GET with retries: the API may answer 503 (or be restarting) for a moment."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(f"{base}{path}", params=params, timeout=10)
            if response.status_code == 200:
                return response.json()
            problem = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            problem = repr(exc)
        if time.monotonic() > deadline:
            raise AssertionError(f"GET {path} kept failing: {problem}")
        time.sleep(0.2)


def _all_runs(base: str, app_id: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = _get(base, f"/api/apps/{app_id}/runs", params)
        runs += page["items"]
        cursor = page["nextCursor"]
        if cursor is None:
            return runs


def _wait_settled(base: str, app_id: str, count: int, timeout: float) -> None:
    """Until `count` runs are completed, or no longer active, or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = _all_runs(base, app_id)
        if len(runs) >= count and all(r["status"] != "active" for r in runs):
            return
        time.sleep(0.5)


def _epoch(iso: str | None) -> float | None:
    if iso is None:
        return None
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@dataclass
class Outcome:
    runs: list[dict[str, Any]]
    invokes: list[Invoke]
    executions: dict[tuple[int, str], list[float]]
    sender: Sender
    fleet: Fleet
    counts: dict[str, int] = field(default_factory=dict)


def _violations(out: Outcome, expected: int) -> dict[str, list[str]]:
    bad: dict[str, list[str]] = defaultdict(list)
    sender = out.sender
    event_ids = [f"ev-{n}" for n in range(expected)]
    for event_id in event_ids:
        if sender.acked.get(event_id, 0) == 0:
            bad["event never acknowledged"].append(event_id)
    for refusal in sender.wrong_refusals:
        bad["event send refused with other than 503 while Postgres was down"].append(refusal)
    by_event: dict[str, list[str]] = defaultdict(list)
    for run in out.runs:
        by_event[run["eventId"]].append(run["id"])
    for event_id in event_ids:
        if len(by_event.get(event_id, [])) != 1:
            bad["event id without exactly one run"].append(f"{event_id}: runs {by_event.get(event_id, [])}")

    invokes_by_run: dict[str, list[Invoke]] = defaultdict(list)
    for invoke in out.invokes:
        invokes_by_run[invoke.run_id].append(invoke)
    for run in out.runs:
        rid = run["id"]
        n = int(run["event"]["data"]["n"])
        expected_output = [f"{n}/{s}" for s in RUN_STEPS]
        if run["status"] != "completed" or run["output"] != expected_output:
            bad["run not completed with the right output"].append(
                f"{rid} (n={n}): {run['status']}/{run['activity']} output={run['output']!r} "
                f"error={run['error']} steps={[(s['id'], s['status'], s['attempts']) for s in run['steps']]}"
            )
        stored = [s["id"] for s in run["steps"]]
        if stored != STORED_ORDER or any(s["status"] != "completed" for s in run["steps"]):
            bad["stored steps not exactly a, b, nap, c, d"].append(
                f"{rid} (n={n}): {[(s['id'], s['status']) for s in run['steps']]}"
            )
        stored_at = {s["id"]: _epoch(s["endedAt"]) for s in run["steps"] if s["type"] == "run"}
        invokes = sorted(invokes_by_run.get(rid, []), key=lambda i: i.start)
        carried: set[str] = set()
        latest_end = 0.0
        for invoke in invokes:
            who = out.fleet.who(invoke.agent)
            dropped = carried - invoke.memo
            if dropped:
                bad["invoke whose memo dropped a step an earlier invoke carried"].append(
                    f"{rid} (n={n}) at {invoke.start:.3f} by {who}: memo {sorted(invoke.memo)} lacks {sorted(dropped)}"
                )
            stale = [
                s
                for s, t in stored_at.items()
                if t is not None and t + SLACK_S < invoke.start and s not in invoke.memo
            ]
            if stale:
                bad["invoke whose memo lacked a step stored before it began"].append(
                    f"{rid} (n={n}) at {invoke.start:.3f} by {who}: memo {sorted(invoke.memo)} lacks {stale}"
                )
            if invoke.start < latest_end:
                bad["invokes of one run overlapped"].append(
                    f"{rid} (n={n}): an invoke by {who} began at {invoke.start:.3f}, before another ended at {latest_end:.3f}"
                )
            carried |= invoke.memo
            latest_end = max(latest_end, invoke.end)
        for step_id in RUN_STEPS:
            times = out.executions.get((n, step_id), [])
            if not times:
                bad["step never executed"].append(f"{rid} (n={n}) {step_id}")
            first_carried = min((i.start for i in invokes if step_id in i.memo), default=None)
            t_stored = stored_at.get(step_id)
            for t in times:
                if first_carried is not None and t > first_carried:
                    bad["step executed after a memo of its run carried it"].append(
                        f"{rid} (n={n}) {step_id} executed at {t:.3f}, carried since {first_carried:.3f}"
                    )
                elif t_stored is not None and t > t_stored + SLACK_S:
                    bad["step executed after its result was stored"].append(
                        f"{rid} (n={n}) {step_id} executed at {t:.3f}, stored at {t_stored:.3f}"
                    )
    for exit_note in out.fleet.self_exits:
        bad["process exited by itself"].append(exit_note)
    return dict(bad)


def _chaos(
    pg: PgCluster,
    tmp_path: Path,
    *,
    runs: int,
    workers: int,
    plan: list[str],
    spread_s: float,
    settle_s: float,
    seed: int,
) -> tuple[Outcome, dict[str, list[str]]]:
    """Run `runs` chaos runs, their events sent over `spread_s`, while doing the actions of `plan` in
    random order at random moments over the same span."""
    rng = random.Random(seed)
    lock = threading.Lock()
    executions: dict[tuple[int, str], list[float]] = defaultdict(list)

    async def work(n: int, step_id: str) -> str:
        with lock:
            executions[(n, step_id)].append(time.time())
        await asyncio.sleep(rng.uniform(0.02, 0.3))
        return f"{n}/{step_id}"

    @durable_sdk.function(id="napper", trigger={"event": "nap"})
    async def napper(event, step):  # type: ignore[no-untyped-def]
        n = int(event["data"]["n"])
        a = await step.run("a", lambda: work(n, "a"))
        b = await step.run("b", lambda: work(n, "b"))
        await step.sleep("nap", "1s")
        c = await step.run("c", lambda: work(n, "c"))
        d = await step.run("d", lambda: work(n, "d"))
        return [a, b, c, d]

    dsn = pg.create_database("chaos")
    fleet = Fleet(dsn, tmp_path, workers=workers, engine_workers=1)
    counts = {"worker kills": 0, "engine kills": 0, "postgres restarts": 0, "postgres outages": 0}
    try:
        app_id, key = _provision(fleet.base)
        app = LoggedApp([napper], key)
        with app:
            assert (
                _signed(
                    fleet.base, app_id, key, "/fn/sync", {"url": app.url, "functions": [napper.wire]}
                ).status_code
                == 200
            )
            events = [{"name": "nap", "id": f"ev-{n}", "data": {"n": n}} for n in range(runs)]
            sender = Sender(fleet.base, app_id, key, events, spread_s)
            sender.start()
            actions = list(plan)
            rng.shuffle(actions)
            gap = spread_s / (len(actions) + 1)
            for action in actions:
                time.sleep(rng.uniform(0.5 * gap, 1.5 * gap))
                fleet.check_exits()
                if action == "worker":
                    fleet.kill_worker(rng.randrange(len(fleet.workers)))
                    counts["worker kills"] += 1
                elif action == "engine":
                    fleet.kill_engine()
                    counts["engine kills"] += 1
                elif action == "outage":
                    pg.stop_immediate()
                    time.sleep(OUTAGE_S)
                    pg.start()
                    counts["postgres outages"] += 1
                else:
                    pg.restart_immediate()
                    counts["postgres restarts"] += 1
            sender.join(120)
            _wait_settled(fleet.base, app_id, runs, settle_s)
            fleet.check_exits()
            summaries = _all_runs(fleet.base, app_id)
            details = [_get(fleet.base, f"/api/runs/{r['id']}") for r in summaries]
            with app.invoke_log.lock:
                invokes = list(app.invoke_log.invokes)
        outcome = Outcome(details, invokes, dict(executions), sender, fleet, counts)
        violations = _violations(outcome, runs)
    finally:
        fleet.stop()
    reexecuted = sum(len(t) - 1 for t in executions.values() if len(t) > 1)
    counts.update(
        {
            "runs": len(details),
            "completed": sum(r["status"] == "completed" for r in details),
            "invokes": len(invokes),
            "re-executed in-flight steps": reexecuted,
            "processes spawned": fleet.spawned,
        }
    )
    by_process = Counter(fleet.who(i.agent) for i in invokes)
    print(
        f"chaos (seed {seed}): {counts}; send refusals {dict(sender.refusals)}; invokes by {dict(by_process)}"
    )
    for what, examples in violations.items():
        print(f"VIOLATION {what}: {len(examples)}, e.g.\n  " + "\n  ".join(examples[:5]))
    return outcome, violations


def _seed() -> int:
    return int(os.environ.get("CHAOS_SEED") or time.time())


@pytest.mark.slow
def test_restart_storm_keeps_every_invariant(pg_cluster: PgCluster, tmp_path: Path) -> None:
    plan = ["restart"] * 4 + ["outage"] * 2 + ["worker"] * 8 + ["engine"] * 2
    outcome, violations = _chaos(
        pg_cluster,
        tmp_path,
        runs=300,
        workers=3,
        plan=plan,
        spread_s=20,
        settle_s=120,
        seed=_seed(),
    )
    assert outcome.counts["postgres restarts"] >= 3 and outcome.counts["worker kills"] >= 5
    # Checkpointed (the SDK's default): a run is invoked at least twice, a, b, nap | c, d, done.
    assert len(outcome.invokes) >= 300 * 2
    assert violations == {}


def test_one_restart_and_kills_keep_every_invariant(pg_cluster: PgCluster, tmp_path: Path) -> None:
    outcome, violations = _chaos(
        pg_cluster,
        tmp_path,
        runs=40,
        workers=2,
        plan=["outage", "worker", "engine"],
        spread_s=6,
        settle_s=30,
        seed=_seed(),
    )
    assert outcome.counts["postgres outages"] == 1 and outcome.counts["worker kills"] == 1
    assert len(outcome.invokes) >= 40 * 2  # a, b, nap | c, d, done: checkpointed
    assert violations == {}


@pytest.mark.slow
def test_wakeup_latency_after_a_postgres_restart_equals_before(pg_cluster: PgCluster, tmp_path: Path) -> None:
    """A worker process wakes for a new run as fast after a Postgres crash-restart as before it (its
    LISTEN connection is back), not after some fallback recheck."""
    first_invoke: dict[int, float] = {}
    arrived = threading.Condition()

    @durable_sdk.function(id="ping", trigger={"event": "ping"})
    def ping(event, step):  # type: ignore[no-untyped-def]
        n = int(event["data"]["n"])
        with arrived:
            first_invoke.setdefault(n, time.time())
            arrived.notify_all()
        return step.run("once", lambda: n)

    dsn = pg_cluster.create_database("latency")
    # Only the worker process runs workers, so each run reaches it through a wake-up.
    fleet = Fleet(dsn, tmp_path, workers=1, engine_workers=0)
    try:
        app_id, key = _provision(fleet.base)
        with AppServer([ping], key) as app:
            assert (
                _signed(
                    fleet.base, app_id, key, "/fn/sync", {"url": app.url, "functions": [ping.wire]}
                ).status_code
                == 200
            )

            def latency(n: int) -> float:
                """From the send that was acknowledged to the run's first invoke at the app."""
                event = {"name": "ping", "id": f"p-{n}", "data": {"n": n}}
                while True:
                    sent = time.time()
                    if _signed(fleet.base, app_id, key, "/e", event).status_code == 200:
                        break
                    time.sleep(0.2)
                with arrived:
                    arrived.wait_for(lambda: n in first_invoke, timeout=20)
                return first_invoke.get(n, float("inf")) - sent

            for n in range(3):  # warm up the app and the worker's connections
                latency(-1 - n)
            before = [latency(n) for n in range(10)]
            pg_cluster.restart_immediate()
            time.sleep(5)  # invariant 10: wake-ups work again within seconds
            after = [latency(100 + n) for n in range(10)]
        fleet.check_exits()
    finally:
        fleet.stop()
    b, a = statistics.median(before), statistics.median(after)
    print(
        f"wake-up latency: median before {b * 1000:.0f} ms, after {a * 1000:.0f} ms; after {[round(x, 3) for x in after]}"
    )
    assert fleet.self_exits == []
    assert a <= max(3 * b, b + 0.3), f"median {a:.3f}s after the restart against {b:.3f}s before: {after}"
