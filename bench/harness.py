"""What the scenarios stand on: a Postgres, child processes, one engine + app pair per scenario (or
several engine and worker processes on one database), and parked runs cloned by SQL.

Every child runs in its own session (Ctrl-C in the terminal reaches only the bench, which then stops
them), logs to a file in a temporary directory, and is killed at exit whatever happened. Every wait
is bounded and fails with a BenchError that says what it waited for.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import orjson
from benchapp import FUNCTIONS, durable_sdk  # benchapp finds the SDK in this checkout if not installed

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
EMBEDDED_DIR = REPO / ".bench-pg"
EMBEDDED_PORT = int(os.environ.get("BENCH_PG_PORT", "5439"))
LOG_DIR = Path(tempfile.mkdtemp(prefix="durable-bench-"))


class BenchError(Exception):
    """A scenario could not be measured; the message says why."""


# --- waiting -------------------------------------------------------------------------------------


async def wait_for(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float, every: float = 0.05
) -> float:
    """Call `check` every `every` seconds until it is true; return the seconds waited."""
    start = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(every)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- child processes -----------------------------------------------------------------------------

_children: list[Child] = []
_keep_logs = False
_PROBLEM_MARKS = (" WARNING ", " ERROR ", " CRITICAL ", "Traceback")


class Child:
    """A child process with its output in LOG_DIR/<name>.log."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.log_path = LOG_DIR / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        _children.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(f"    | {line}" for line in text[-lines:])

    def check_alive(self) -> None:
        if not self.alive():
            raise BenchError(
                f"{self.name} exited with code {self.proc.returncode}; log {self.log_path}:\n{self.log_tail()}"
            )

    def report_problems(self) -> None:
        """Print how many warnings, errors and tracebacks the child logged; keep the logs if any."""
        global _keep_logs
        lines = self.log_path.read_text(errors="replace").splitlines()
        bad = [line for line in lines if any(mark in line for mark in _PROBLEM_MARKS)]
        if bad:
            _keep_logs = True
            print(
                f"  note: {self.name} logged {len(bad)} warning/error line(s), first: {bad[0].strip()[:200]}"
            )
            print(f"        log: {self.log_path}")

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self in _children:
            _children.remove(self)


@atexit.register
def _kill_leftovers() -> None:
    for child in list(_children):
        if child.alive():
            child.proc.kill()


def child_env(**extra: str) -> dict[str, str]:
    """The bench's environment without anything that would point a child elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_") and k != "DATABASE_URL"}
    env.update(extra)
    return env


def remove_logs() -> bool:
    """Remove the child logs unless a child logged a problem; True if removed."""
    if _keep_logs:
        return False
    shutil.rmtree(LOG_DIR, ignore_errors=True)
    return True


# --- Postgres ------------------------------------------------------------------------------------


class Postgres:
    """The server the scenarios create their databases on: DATABASE_URL's, or an embedded one."""

    def __init__(self, admin_dsn: str, embedded: bool, started_here: bool) -> None:
        self.admin_dsn = admin_dsn
        self.embedded = embedded
        self.started_here = started_here
        self.label = "embedded" if embedded else "external"

    @classmethod
    def start(cls) -> Postgres:
        url = os.environ.get("DATABASE_URL")
        if url:
            return cls.external(url)
        return cls.embedded_server()

    @classmethod
    def external(cls, url: str) -> Postgres:
        return cls(url, embedded=False, started_here=False)

    @classmethod
    def embedded_server(cls) -> Postgres:
        """The embedded Postgres in .bench-pg/, started unless it runs already."""
        from durable.config import embedded_dsn
        from durable.store import embedded

        started = embedded.ensure_running(EMBEDDED_DIR, EMBEDDED_PORT)
        return cls(embedded_dsn(EMBEDDED_DIR, EMBEDDED_PORT), True, started)

    def stop(self) -> None:
        if self.started_here:
            from durable.store import embedded

            embedded.stop(EMBEDDED_DIR)

    def dsn(self, database: str) -> str:
        parts = urlsplit(self.admin_dsn)
        return urlunsplit(parts._replace(path="/" + database))

    async def create_database(self, name: str) -> str:
        conn = await asyncpg.connect(self.admin_dsn, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.dsn(name)

    async def drop_database(self, name: str) -> None:
        conn = await asyncpg.connect(self.admin_dsn, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def describe(self) -> dict[str, str]:
        conn = await asyncpg.connect(self.admin_dsn, timeout=10)
        try:
            info = {"version": await conn.fetchval("SHOW server_version")}
            for setting in ("fsync", "synchronous_commit", "shared_buffers", "max_connections"):
                info[setting] = await conn.fetchval(f"SHOW {setting}")
        finally:
            await conn.close()
        return info

    async def summary(self) -> str:
        """One line: version, where, and the settings that decide commit cost and connections."""
        info = await self.describe()
        where = "embedded, .bench-pg/" if self.embedded else "external"
        return (
            f"PostgreSQL {info['version']} ({where}; fsync={info['fsync']},"
            f" synchronous_commit={info['synchronous_commit']}, shared_buffers={info['shared_buffers']},"
            f" max_connections={info['max_connections']})"
        )


# --- the app process alone -----------------------------------------------------------------------


async def start_app(name: str, signing_key: str, processes: int = 1) -> tuple[Child, str]:
    """Start bench/benchapp.py under uvicorn (`processes` worker processes on one port); return it and
    its URL once it answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/durable"
    child = Child(
        name,
        [PYTHON, str(REPO / "bench" / "benchapp.py"), str(port), str(processes)],
        child_env(BENCH_SIGNING_KEY=signing_key),
    )
    async with aiohttp.ClientSession() as http:

        async def answers() -> bool:
            child.check_alive()
            try:
                async with http.get(url) as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(answers, f"the app at {url}", timeout=30)
    return child, url


# --- one engine + app pair on a fresh database ---------------------------------------------------


@dataclass
class Tenant:
    """Another workspace on a Stack's engine, with its own app process (Stack.add_workspace)."""

    app_id: str
    signing_key: str
    app: Child
    app_url: str


class EndWatch:
    """Runs ending, as Postgres announces them: a trigger the bench adds to its own database NOTIFYs
    `bench_ended` with the run's event id, id and status in the transaction that ends the run, so the
    bench sees a run end when that commit is done, with no polling (a 1 ms SQL poll added up to 1 ms and
    its queries competed with the engine for the two cores). Its cost lands in the engine's statement
    that ends the run: one trigger call and one NOTIFY per run (microseconds; timed runs only).
    """

    SQL = """
        CREATE OR REPLACE FUNCTION bench_ended() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('bench_ended', coalesce(NEW.event_id, '-') || ' ' || NEW.id || ' ' || NEW.status);
            RETURN NULL;
        END $$;
        DROP TRIGGER IF EXISTS bench_ended ON runs;
        CREATE TRIGGER bench_ended AFTER UPDATE OF status ON runs FOR EACH ROW
            WHEN (OLD.status = 'active' AND NEW.status <> 'active') EXECUTE FUNCTION bench_ended();
    """

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.seen: dict[str, tuple[float, str, str]] = {}  # event id -> (perf_counter, run id, status)
        self.waiting: dict[str, asyncio.Future[tuple[float, str, str]]] = {}

    @classmethod
    async def start(cls, dsn: str) -> EndWatch:
        conn = await asyncpg.connect(dsn, timeout=10)
        watch = cls(conn)
        await conn.execute(cls.SQL)
        await conn.add_listener("bench_ended", watch._notified)
        return watch

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        seen = time.perf_counter()
        event_id, run_id, status = payload.split(" ")
        ended = (seen, run_id, status)
        waiter = self.waiting.pop(event_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(ended)
        else:
            self.seen[event_id] = ended

    async def wait(self, event_id: str, timeout: float) -> tuple[float, str, str]:
        if event_id in self.seen:
            return self.seen.pop(event_id)
        waiter = asyncio.get_running_loop().create_future()
        self.waiting[event_id] = waiter
        try:
            return await asyncio.wait_for(waiter, timeout)
        finally:
            self.waiting.pop(event_id, None)

    async def close(self) -> None:
        await self.conn.close()


class Stack:
    """A fresh database `bench_<name>`, an engine process on it, and an app process synced to it.

    `async with Stack(pg, "x", workers=2) as stack:` starts everything; leaving stops the processes
    and drops the database. `engines=N` starts N `durable start` processes on the same database, each
    on its own port (all a second process needs: the same DATABASE_URL, another PORT; each runs
    `workers` worker loops, its own scheduler and maintenance, and hands the runs its API ingests to
    its own loops), `worker_processes=M` adds M `durable worker` processes (worker loops only), and
    `app_processes` runs the app with that many uvicorn processes.
    """

    def __init__(
        self,
        pg: Postgres,
        name: str,
        workers: int = 2,
        engine_env: dict[str, str] | None = None,
        *,
        engines: int = 1,
        worker_processes: int = 0,
        app_processes: int = 1,
    ) -> None:
        self.engine_env = engine_env or {}
        self.pg = pg
        self.name = name
        self.database = f"bench_{name}"
        self.workers = workers
        self.engine_count = engines
        self.worker_count = worker_processes
        self.app_processes = app_processes
        self.engines: list[Child] = []  # `durable start` processes; the first is `engine`
        self.engine_urls: list[str] = []
        self.worker_procs: list[Child] = []  # `durable worker` processes
        self.app: Child | None = None
        self.db: asyncpg.Connection | None = None
        self.dsn = ""
        self.ends: EndWatch | None = None  # runs ending, announced at commit (timed runs)
        self.http: aiohttp.ClientSession | None = None
        self.app_url = ""
        self.app_id = ""
        self.signing_key = ""
        self.tenants: list[Tenant] = []

    @property
    def engine(self) -> Child | None:
        return self.engines[0] if self.engines else None

    @property
    def base_url(self) -> str:
        return self.engine_urls[0] if self.engine_urls else ""

    async def __aenter__(self) -> Stack:
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _start(self) -> None:
        dsn = await self.pg.create_database(self.database)
        env = {
            "DATABASE_URL": dsn,
            "DURABLE_HOST": "127.0.0.1",
            "DURABLE_WORKERS": str(self.workers),
            "DURABLE_DRAIN_TIMEOUT_MS": "2000",
            **self.engine_env,
        }
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64), timeout=aiohttp.ClientTimeout(total=60)
        )
        # The first engine migrates the fresh database; the others start once it answers.
        await self._start_engine(env)
        await asyncio.gather(*(self._start_engine(env) for _ in range(1, self.engine_count)))
        await asyncio.gather(*(self._start_worker(env) for _ in range(self.worker_count)))
        workspace = await self._admin_post("/api/apps", {"name": f"bench-{self.name}", "environment": "dev"})
        self.app_id, self.signing_key = workspace["id"], workspace["signingKey"]
        self.app, self.app_url = await start_app(f"app-{self.name}", self.signing_key, self.app_processes)
        client = durable_sdk.Client(self.base_url, self.app_id, self.signing_key, self.app_url)
        await asyncio.to_thread(client.sync, FUNCTIONS)
        self.db = await asyncpg.connect(dsn, timeout=10)
        self.dsn = dsn

    async def watch_ends(self) -> EndWatch:
        """Listen for runs ending (EndWatch), from now on: call it before sending the event of a run
        to time, which may end before the POST is answered."""
        if self.ends is None:
            self.ends = await EndWatch.start(self.dsn)
        return self.ends

    async def ended(self, event_id: str, timeout: float) -> tuple[float, str, str]:
        """When (perf_counter) the run `event_id` started ended, its id and status, as announced by
        Postgres at the commit that ended it (watch_ends must have run before its event was sent)."""
        return await (await self.watch_ends()).wait(event_id, timeout)

    async def _start_engine(self, env: dict[str, str]) -> None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        suffix = f"-{len(self.engines) + 1}" if self.engines else ""
        child = Child(
            f"engine-{self.name}{suffix}",
            [PYTHON, "-m", "durable", "start"],
            child_env(**env, PORT=str(port)),
        )
        self.engines.append(child)
        self.engine_urls.append(url)
        await wait_for(
            lambda: self._healthy(child, url), f"the engine's /healthz on {url}", timeout=60, every=0.1
        )

    async def _start_worker(self, env: dict[str, str]) -> None:
        child = Child(
            f"worker-{self.name}-{len(self.worker_procs) + 1}",
            [PYTHON, "-m", "durable", "worker"],
            child_env(**env),
        )
        self.worker_procs.append(child)

        async def running() -> bool:
            child.check_alive()
            return "worker loop(s) running" in child.log_path.read_text(errors="replace")

        await wait_for(running, f"{child.name} to run its worker loops", timeout=60, every=0.1)

    async def close(self) -> None:
        if self.ends is not None:
            await self.ends.close()
            self.ends = None
        if self.db is not None:
            await self.db.close()
            self.db = None
        if self.http is not None:
            await self.http.close()
            self.http = None
        children = [*(t.app for t in self.tenants), self.app, *self.worker_procs, *self.engines]
        await asyncio.gather(*(asyncio.to_thread(child.stop) for child in children if child is not None))
        for child in children:
            if child is not None:
                child.report_problems()
        await self.pg.drop_database(self.database)

    async def add_workspace(self, name: str) -> Tenant:
        """Another workspace on this engine, its own app process synced to it."""
        workspace = await self._admin_post("/api/apps", {"name": name, "environment": "dev"})
        app, url = await start_app(f"app-{self.name}-{name}", workspace["signingKey"])
        tenant = Tenant(workspace["id"], workspace["signingKey"], app, url)
        self.tenants.append(tenant)
        client = durable_sdk.Client(self.base_url, tenant.app_id, tenant.signing_key, url)
        await asyncio.to_thread(client.sync, FUNCTIONS)
        return tenant

    def check_alive(self) -> None:
        for child in (*self.engines, *self.worker_procs, self.app, *(t.app for t in self.tenants)):
            if child is not None:
                child.check_alive()

    async def _healthy(self, engine: Child, url: str) -> bool:
        assert self.http is not None
        engine.check_alive()
        try:
            async with self.http.get(url + "/healthz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    async def _admin_post(self, path: str, payload: Any) -> Any:
        assert self.http is not None
        async with self.http.post(self.base_url + path, json=payload) as response:
            if response.status != 200:
                raise BenchError(f"POST {path}: {response.status} {await response.text()}")
            return await response.json()

    async def send(
        self, events: list[dict[str, Any]], tenant: Tenant | None = None, via: int = 0
    ) -> list[str]:
        """Send events (at most 1000) as the SDK does, signed, to the stack's workspace or `tenant`,
        through engine number `via`; return their ids."""
        return (await self.send_timed(events, tenant, via))[1]

    async def send_timed(
        self, events: list[dict[str, Any]], tenant: Tenant | None = None, via: int = 0
    ) -> tuple[float, list[str]]:
        """`send`, and the seconds from the signed request's first byte sent to its answer read."""
        start, elapsed, ids = await self.send_stamped(events, tenant, via)
        return elapsed, ids

    async def send_stamped(
        self, events: list[dict[str, Any]], tenant: Tenant | None = None, via: int = 0
    ) -> tuple[float, float, list[str]]:
        """`send`, with when (perf_counter) the signed request was sent and the seconds until its answer
        was read. The clock starts once the body is encoded and signed, as a peer's client, which signs
        nothing, starts it just before its POST."""
        assert self.http is not None
        body = orjson.dumps(events)
        app_id, key = (tenant.app_id, tenant.signing_key) if tenant else (self.app_id, self.signing_key)
        headers = {  # both signatures, as the SDKs' clients send them: the engine checks v2 and its nonce
            "content-type": "application/json",
            "x-durable-app": app_id,
            "x-durable-signature-v2": durable_sdk.sign_v2(body, key, "app", time.time_ns() // 1_000_000),
            "x-durable-signature": durable_sdk.sign(body, key),
        }
        url = self.engine_urls[via % len(self.engine_urls)] + "/e"
        start = time.perf_counter()
        async with self.http.post(url, data=body, headers=headers) as response:
            answer = await response.read()
            elapsed = time.perf_counter() - start
            if response.status != 200:
                raise BenchError(f"POST /e: {response.status} {answer.decode(errors='replace')}")
        return start, elapsed, list(orjson.loads(answer)["ids"])

    async def get_run(self, run_id: str) -> dict[str, Any]:
        assert self.http is not None
        async with self.http.get(f"{self.base_url}/api/runs/{run_id}") as response:
            if response.status != 200:
                raise BenchError(f"GET /api/runs/{run_id}: {response.status} {await response.text()}")
            return orjson.loads(await response.read())  # type: ignore[no-any-return]

    async def count_runs(self) -> dict[str, int]:
        """Runs by status, plus `waiting` (active runs parked in a wait)."""
        assert self.db is not None
        row = await self.db.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'completed') AS completed,"
            " count(*) FILTER (WHERE status = 'failed') AS failed,"
            " count(*) FILTER (WHERE activity = 'waiting') AS waiting,"
            " count(*) AS total FROM runs"
        )
        return dict(row)

    async def wait_counts(
        self, what: str, done: Callable[[dict[str, int]], bool], timeout: float, every: float = 0.05
    ) -> None:
        """Poll `count_runs` every `every` s until `done(counts)`; fail fast on failed runs or a dead child.

        Each poll counts the whole runs table: with 100,000 runs, poll seldom (it costs Postgres CPU)."""
        counts: dict[str, int] = {}

        async def check() -> bool:
            nonlocal counts
            self.check_alive()
            counts = await self.count_runs()
            if counts["failed"]:
                raise BenchError(f"{counts['failed']} run(s) failed while waiting for {what}: {counts}")
            return done(counts)

        try:
            await wait_for(check, what, timeout, every)
        except BenchError as exc:
            raise BenchError(f"{exc} (last counts {counts})") from None


# --- parked runs cloned by SQL -------------------------------------------------------------------

# The rows that make a parked run, by table, with the column that names the run. A clone copies every
# column of the template's rows (read from the catalogue, so a column a later migration adds is copied
# too) except identity and generated columns, which take their own values, and those it varies.
CLONED_TABLES = {
    "runs": "id",
    "jobs": "run_id",
    "steps": "run_id",
    "waits": "run_id",
    "run_cancels": "run_id",
}

_GENERATED_COLUMNS = """
SELECT attrelid::regclass::text || '.' || attname AS name FROM pg_attribute
WHERE attrelid = ANY($1::regclass[]) AND attnum > 0 AND NOT attisdropped AND attgenerated <> ''
ORDER BY 1
"""

_COPIED_COLUMNS = """
SELECT attname FROM pg_attribute
WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attidentity = '' AND attgenerated = ''
ORDER BY attnum
"""


async def clone_run(
    db: asyncpg.Connection, run_id: str, first: int, count: int, vary: dict[str, dict[str, str]] | None = None
) -> str:
    """Insert clones number `first` .. `first + count - 1` of the parked run `run_id`, in one transaction,
    then ANALYZE the tables (as autovacuum would have by the time that many runs were parked).

    Clone g's run id is the template's first 10 characters (its time) and g in 16 digits. `vary` gives,
    per table, SQL expressions for columns that differ per clone, over the template row `t` and the clone
    number `g` (for example a wait's match). Returns how long it took and what was copied."""
    vary = vary or {}
    start = time.perf_counter()
    rows = 0
    async with db.transaction():
        for table, key in CLONED_TABLES.items():
            columns = [r["attname"] for r in await db.fetch(_COPIED_COLUMNS, table)]
            exprs = {key: f"left(t.{key}, 10) || lpad(g::text, 16, '0')", **vary.get(table, {})}
            missing = set(exprs) - set(columns)
            if missing:
                raise BenchError(f"cannot vary {table}.{', '.join(sorted(missing))}: no such copied column")
            copied = [c for c in columns if c not in exprs]
            names = ", ".join(f'"{c}"' for c in [*copied, *exprs])
            values = ", ".join([*(f't."{c}"' for c in copied), *exprs.values()])
            status = await db.execute(
                f"INSERT INTO {table} ({names}) SELECT {values}"
                f" FROM {table} t, generate_series($1::int, $2::int) AS g WHERE t.{key} = $3",
                first,
                first + count - 1,
                run_id,
            )
            rows += int(status.split()[-1])
    await db.execute(f"ANALYZE {', '.join(CLONED_TABLES)}")
    varied = ", ".join(f"{t}.{c}" for t, cols in vary.items() for c in cols)
    generated = [r["name"] for r in await db.fetch(_GENERATED_COLUMNS, list(CLONED_TABLES))]
    computed = f"; generated columns computed by Postgres: {', '.join(generated)}" if generated else ""
    return (
        f"{count:,} clones, {rows // max(count, 1)} rows each in {', '.join(CLONED_TABLES)}, every column"
        f" copied but the run id{' and ' + varied if varied else ''}{computed}, in"
        f" {time.perf_counter() - start:.1f} s"
    )
