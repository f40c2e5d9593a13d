"""DESIGN.md §2 and issue 12 point 9: the engine behind PgBouncer in transaction mode.

A real `pgbouncer` (config in tmp_path, `pool_mode = transaction`, no ignored startup parameters, a
server pool smaller than the engine's client pool so transactions really share server connections) in
front of a fresh database on the test Postgres. `durable start` and `durable worker` get the pooler as
DATABASE_URL and the server itself as DATABASE_DIRECT_URL (migrations and LISTEN). Runs with steps, a
sleep and a wait complete, a wait resumes, every `POST /e` is acknowledged (never a 500), and a worker
process is woken through its LISTEN, which must therefore reach the server directly.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg
import durable_sdk
import httpx
import pytest

from tests.conftest import with_database
from tests.e2e.procs import Proc, child_env, engine_env, refused_start
from tests.e2e.test_crash_recovery import _provision, _signed
from tests.harness import AppServer, free_port

SERVER_POOL = 3
"""Server connections per (database, user) in PgBouncer: fewer than the engine's client connections."""


def _pgbouncer_binary() -> str | None:
    # Debian installs it in /usr/sbin, which is not on every user's PATH.
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")


class PgBouncer:
    """A pgbouncer process in transaction mode in front of the server `server_dsn` names."""

    def __init__(self, binary: str, server_dsn: str, folder: Path) -> None:
        server = urlsplit(server_dsn)
        self.user = unquote(server.username or "postgres")
        self.port = free_port()
        target = f"host={server.hostname or '127.0.0.1'} port={server.port or 5432} user={self.user}"
        if server.password:
            target += f" password={unquote(server.password)}"
        folder.mkdir(exist_ok=True)
        (folder / "users.txt").write_text(f'"{self.user}" ""\n')
        config = folder / "pgbouncer.ini"
        config.write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = {target}",  # any database name, on the test server
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {self.port}",
                    "unix_socket_dir =",
                    "auth_type = trust",
                    f"auth_file = {folder / 'users.txt'}",
                    "pool_mode = transaction",
                    f"default_pool_size = {SERVER_POOL}",
                    "max_client_conn = 200",
                    # no ignore_startup_parameters: a parameter the engine must not send is refused
                    "",
                ]
            )
        )
        # PgBouncer refuses to run as root; `-u` drops to another user once the config is read.
        command = [binary, *(["-u", "nobody"] if os.geteuid() == 0 else []), str(config)]
        self.log_path = folder / "pgbouncer.log"
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            if self.popen.poll() is not None:
                raise AssertionError(f"pgbouncer exited with {self.popen.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"pgbouncer does not listen:\n{self.log()}") from None
                time.sleep(0.05)

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._log.close()


@pytest.fixture(scope="module")
def pgbouncer(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgBouncer]:
    binary = _pgbouncer_binary()
    if binary is None:
        pytest.skip("no pgbouncer binary on PATH or in /usr/sbin (Debian: apt-get install pgbouncer)")
    bouncer = PgBouncer(binary, pg_server, tmp_path_factory.mktemp("pgbouncer"))
    yield bouncer
    bouncer.stop()


@pytest.fixture
def fresh_database(pg_server: str) -> Iterator[str]:
    """The name of an empty database (no migrations: `durable start` applies them, directly)."""
    name = f"durable_pgb_{uuid.uuid4().hex[:12]}"

    async def run(statement: str) -> None:
        conn = await asyncpg.connect(pg_server)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run(f"CREATE DATABASE {name}"))
    yield name
    asyncio.run(run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@durable_sdk.function(id="order", trigger={"event": "order.placed"})
def order(event, step):  # type: ignore[no-untyped-def]
    order_id = event["data"]["orderId"]
    total = step.run("price", lambda: event["data"]["n"] * 10)
    step.run("reserve", lambda: f"reserved {order_id}")
    step.sleep("settle", "1s")
    approval = step.wait_for_event(
        "approve", event="order.approved", match={"orderId": order_id}, timeout="2m"
    )
    return {"total": total, "approvedBy": approval["data"]["by"] if approval else None}


def _runs(base: str, app_id: str, **params: Any) -> list[dict[str, Any]]:
    response = httpx.get(f"{base}/api/apps/{app_id}/runs", params={"limit": 500, **params}, timeout=10)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def _output(base: str, run_id: str) -> Any:
    response = httpx.get(f"{base}/api/runs/{run_id}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["output"]


def _until(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _send_all(base: str, app_id: str, key: str, events: list[dict[str, Any]]) -> None:
    """POST /e for each event, eight at a time: every answer must be a 200, never a 500."""

    def send(event: dict[str, Any]) -> tuple[int, str]:
        response = _signed(base, app_id, key, "/e", event)
        return response.status_code, response.text

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, events))
    refused = [a for a in answers if a[0] != 200]
    assert not refused, refused


def test_a_direct_url_without_a_pooled_one_is_refused_at_start() -> None:
    env = child_env(
        DATABASE_DIRECT_URL="postgresql://postgres@127.0.0.1:5432/postgres", PORT=str(free_port())
    )
    line = refused_start(env)
    assert line.startswith("durable: DATABASE_DIRECT_URL is set without DATABASE_URL"), line


def test_a_direct_url_equal_to_the_pooled_one_is_refused_without_echoing_it() -> None:
    url = "postgresql://postgres:s3cret-password@127.0.0.1:5432/postgres"
    line = refused_start(child_env(DATABASE_URL=url, DATABASE_DIRECT_URL=url, PORT=str(free_port())))
    assert "DATABASE_DIRECT_URL is invalid: it equals DATABASE_URL" in line, line
    assert "s3cret-password" not in line, line


def _engine(pooled_dsn: str, direct_dsn: str, tmp_path: Path, name: str, command: str, **extra: Any) -> Proc:
    return Proc(command, engine_env(pooled_dsn, DATABASE_DIRECT_URL=direct_dsn, **extra), tmp_path, name)


def test_runs_with_steps_sleeps_and_waits_complete_behind_pgbouncer(
    pgbouncer: PgBouncer, pg_server: str, fresh_database: str, tmp_path: Path
) -> None:
    pooled = pgbouncer.dsn(fresh_database)
    engine = _engine(pooled, with_database(pg_server, fresh_database), tmp_path, "engine", "start")
    try:
        engine.wait_healthy()
        assert "pooled: DATABASE_URL without prepared statements" in engine.log()
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = _provision(base)
        with AppServer([order], key) as app:
            synced = _signed(base, app_id, key, "/fn/sync", {"url": app.url, "functions": [order.wire]})
            assert synced.status_code == 200, synced.text
            count = 24
            _send_all(
                base,
                app_id,
                key,
                [{"name": "order.placed", "data": {"orderId": f"o{i}", "n": i}} for i in range(count)],
            )

            def all_waiting() -> bool:
                return len(_runs(base, app_id, status="active", activity="waiting")) == count

            _until(f"{count} runs waiting for their approval", all_waiting, 30)
            _send_all(
                base,
                app_id,
                key,
                [
                    {"name": "order.approved", "data": {"orderId": f"o{i}", "by": f"u{i}"}}
                    for i in range(count)
                ],
            )
            done = _until(
                f"{count} completed runs",
                lambda: (runs := _runs(base, app_id, status="completed")) and len(runs) == count and runs,
                30,
            )
        outputs = sorted((out["total"], out["approvedBy"]) for out in (_output(base, r["id"]) for r in done))
        assert outputs == sorted((i * 10, f"u{i}") for i in range(count))
        assert _runs(base, app_id, status="failed") == []
        engine.term()
        assert engine.wait(30) == 0, engine.log()
    finally:
        engine.stop()
    errors = [line for line in engine.log().splitlines() if " ERROR " in line or "Traceback" in line]
    assert not errors, engine.log()
    assert "__asyncpg_stmt_" not in engine.log() + pgbouncer.log()  # no named statement reached the pooler


def test_a_worker_behind_pgbouncer_is_woken_through_its_direct_listen(
    pgbouncer: PgBouncer, pg_server: str, fresh_database: str, tmp_path: Path
) -> None:
    """The engine runs no worker loop, so each run reaches the worker process through the NOTIFY of
    the ingest; a LISTEN held through the pooler would miss it and the worker would find the run only at
    its 10 s safety recheck."""
    pooled = pgbouncer.dsn(fresh_database)
    direct = with_database(pg_server, fresh_database)
    engine = _engine(pooled, direct, tmp_path, "engine", "start", DURABLE_WORKERS=0)
    worker = _engine(pooled, direct, tmp_path, "worker", "worker", DURABLE_WORKERS=1)
    try:
        engine.wait_healthy()
        worker.wait_log("1 worker loop(s) running")
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = _provision(base)
        with AppServer([order], key) as app:
            synced = _signed(base, app_id, key, "/fn/sync", {"url": app.url, "functions": [order.wire]})
            assert synced.status_code == 200, synced.text
            latencies = []
            for i in range(3):
                started = time.monotonic()
                _send_all(base, app_id, key, [{"name": "order.placed", "data": {"orderId": f"w{i}", "n": i}}])
                _until(
                    f"run w{i} waiting",
                    lambda: len(_runs(base, app_id, status="active", activity="waiting")) == 1,
                    15,
                )
                _send_all(
                    base, app_id, key, [{"name": "order.approved", "data": {"orderId": f"w{i}", "by": "x"}}]
                )
                _until(
                    f"run w{i} completed",
                    lambda i=i: len(_runs(base, app_id, status="completed")) == i + 1,
                    15,
                )
                latencies.append(time.monotonic() - started - 1.0)  # less the 1 s sleep of the function
    finally:
        worker.stop()
        engine.stop()
    # Three wake-ups per run (placed, the sleep's end is timed, approved): each well under the 10 s
    # safety recheck a lost notification would wait for.
    assert max(latencies) < 5.0, (latencies, worker.log())


def _changes(url: str, into: list[str], opened: threading.Event) -> None:
    """Append the data of each `change` message of the SSE stream at `url` until it ends."""
    try:
        with httpx.stream("GET", url, timeout=httpx.Timeout(30, read=30)) as response:
            opened.set()
            event = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "change":
                    into.append(line[6:])
    except httpx.HTTPError:
        return  # the engine stopped at the end of the test


def test_the_live_stream_behind_pgbouncer_gets_changes(
    pgbouncer: PgBouncer, pg_server: str, fresh_database: str, tmp_path: Path
) -> None:
    """The dashboard's stream (`GET /api/stream`) LISTENs too: through the pooler it would stay silent."""
    pooled = pgbouncer.dsn(fresh_database)
    engine = _engine(pooled, with_database(pg_server, fresh_database), tmp_path, "engine", "start")
    changes: list[str] = []
    opened = threading.Event()
    try:
        engine.wait_healthy()
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = _provision(base)
        threading.Thread(target=_changes, args=(f"{base}/api/stream", changes, opened), daemon=True).start()
        assert opened.wait(10), "GET /api/stream did not answer"
        time.sleep(0.3)  # the stream's LISTEN is in place once it has answered; leave it a moment
        _send_all(base, app_id, key, [{"name": "order.placed", "data": {"orderId": "s1", "n": 1}}])
        _until("a change on the stream", lambda: any(app_id in c for c in changes), 5)
    finally:
        engine.stop()
