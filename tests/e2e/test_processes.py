"""The process contract of §2: embedded Postgres, one-line config errors, graceful drain, invariant 1."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import durable_sdk
import httpx
import pytest

from tests.e2e.procs import ROOT, Proc, child_env, engine_env, refused_start
from tests.e2e.test_crash_recovery import _provision, _signed, _wait_completed
from tests.harness import AppServer, free_port


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("DURABLE_WORKERS", "-1"),
        ("DURABLE_LEASE_MS", "fast"),
        ("DURABLE_MAX_ATTEMPTS", "0"),
        ("DURABLE_DRAIN_TIMEOUT_MS", "1.5"),
        ("DURABLE_UNREACHABLE_MS", "15m"),
        ("DURABLE_UNREACHABLE_MS", "-1"),
        ("DURABLE_PG_PORT", "x"),
        ("DATABASE_URL", "mysql://nope"),
        ("DURABLE_ENV", "staging"),
        ("DURABLE_SESSION_TTL_MS", "12h"),
        ("DURABLE_ALLOWED_HOSTS", "https://durable.example.com"),
        ("DURABLE_INSECURE", "maybe"),
        ("DURABLE_HOST", "0.0.0.0"),  # a public address without DURABLE_ADMIN_TOKEN
    ],
)
def test_a_bad_variable_stops_start_up_with_one_line(name: str, value: str) -> None:
    env = child_env()
    env[name] = value
    line = refused_start(env)
    assert name in line and "expected" in line, line


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_start_runs_the_embedded_postgres_and_a_worker_attaches(tmp_path: Path) -> None:
    pg_port = free_port()
    env = {
        "DURABLE_PG_DIR": str(tmp_path / "pgdata"),
        "DURABLE_PG_PORT": str(pg_port),
        "PORT": str(free_port()),
    }
    engine = Proc("start", env, tmp_path, "engine")
    worker: Proc | None = None
    try:
        engine.wait_healthy(timeout=120)
        base = f"http://127.0.0.1:{engine.port}"
        app_id, _ = _provision(base, "embedded")
        worker = Proc("worker", {k: v for k, v in env.items() if k != "PORT"}, tmp_path, "worker")
        worker.wait_log("worker loop(s) running")
        worker.term()
        assert worker.wait() == 0
        engine.term()
        assert engine.wait(60) == 0
        assert not _port_open(pg_port)  # the Postgres that `start` started is stopped with it
        # The data survives a restart.
        again = Proc("start", env, tmp_path, "again")
        try:
            again.wait_healthy(timeout=120)
            apps = httpx.get(f"http://127.0.0.1:{again.port}/api/apps").json()["items"]
            assert [a["id"] for a in apps] == [app_id]
            again.term()
            assert again.wait(60) == 0
        finally:
            again.stop()
    finally:
        engine.stop()
        if worker:
            worker.stop()


def test_worker_without_a_database_says_what_to_do(tmp_path: Path) -> None:
    env = child_env()
    env["DURABLE_PG_PORT"] = str(free_port())
    result = subprocess.run(
        [sys.executable, "-m", "durable", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode != 0 and "durable start" in result.stderr


def test_a_public_address_without_a_token_refuses_to_start_and_says_what_to_set(tmp_path: Path) -> None:
    port = free_port()
    env = child_env(DURABLE_HOST="0.0.0.0", PORT=str(port), DURABLE_PG_DIR=str(tmp_path / "pg"))
    line = refused_start(env)
    assert "DURABLE_HOST='0.0.0.0'" in line and "DURABLE_ADMIN_TOKEN" in line
    assert "DURABLE_INSECURE=1" in line
    assert not _port_open(port) and not (tmp_path / "pg").exists()  # refused before anything started


def test_insecure_starts_loudly_and_the_host_and_origin_checks_hold(dsn: str, tmp_path: Path) -> None:
    engine = Proc("start", engine_env(dsn, DURABLE_HOST="0.0.0.0", DURABLE_INSECURE="1"), tmp_path, "engine")
    try:
        engine.wait_healthy()
        assert "INSECURE" in engine.log() and "NO admin token" in engine.log()
        base = f"http://127.0.0.1:{engine.port}"
        health = httpx.get(f"{base}/healthz")
        assert health.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in health.headers["content-security-policy"]
        rebound = httpx.get(f"{base}/api/apps", headers={"host": f"rebind.example:{engine.port}"})
        assert rebound.status_code == 421 and "rebind.example" in rebound.json()["error"]
        form = httpx.post(
            f"{base}/api/apps",
            content=b'{"name": "planted"}',
            headers={"origin": "http://127.0.0.1:9999", "content-type": "text/plain"},
        )
        assert form.status_code == 403
        assert httpx.get(f"{base}/api/apps").json()["items"] == []
    finally:
        engine.stop()


def _slow_function(seconds: float, started: threading.Event):  # type: ignore[no-untyped-def]
    @durable_sdk.function(id="slow", trigger={"event": "slow"})
    def slow(event, step):  # type: ignore[no-untyped-def]
        def work() -> str:
            started.set()
            time.sleep(seconds)
            return "finished"

        step.run("work", work)
        return step.run("after", lambda: "after")

    return slow


@contextmanager
def _engine_mid_invoke(dsn: str, tmp_path: Path, seconds: float) -> Iterator[tuple[Proc, AppServer]]:
    """An engine process whose only run is inside a step that takes `seconds` at the app."""
    started = threading.Event()
    slow = _slow_function(seconds, started)
    engine = Proc("start", engine_env(dsn, DURABLE_LEASE_MS=int(seconds * 3000) + 30000), tmp_path, "engine")
    try:
        engine.wait_healthy()
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = _provision(base)
        with AppServer([slow], key) as app:
            _signed(base, app_id, key, "/fn/sync", {"url": app.url, "functions": [slow.wire]})
            _signed(base, app_id, key, "/e", {"name": "slow"})
            assert started.wait(20)
            yield engine, app
    finally:
        engine.stop()


def test_sigterm_drains_in_flight_work_and_exits_0(dsn: str, tmp_path: Path) -> None:
    with _engine_mid_invoke(dsn, tmp_path, 1.5) as (engine, _):
        engine.term()
        assert engine.wait(20) == 0
    assert "draining" in engine.log()

    async def stored() -> list[tuple[str, str]]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT s.id, r.activity FROM steps s JOIN runs r ON r.id = s.run_id")
            job = await conn.fetchrow("SELECT lease_token, available_at <= now() AS due FROM jobs")
        finally:
            await conn.close()
        assert job is not None and job["lease_token"] is None and job["due"]  # handed back, due now
        return [(r["id"], r["activity"]) for r in rows]

    # The in-flight step finished and was stored; the run went back to the queue instead of going on.
    assert asyncio.run(stored()) == [("work", "executing")]


def test_a_second_signal_exits_at_once(dsn: str, tmp_path: Path) -> None:
    with _engine_mid_invoke(dsn, tmp_path, 20) as (engine, app):
        engine.term()
        time.sleep(0.5)
        assert engine.popen.poll() is None  # still draining the 20 s invoke
        t0 = time.monotonic()
        engine.term()
        code = engine.wait(5)
        assert time.monotonic() - t0 < 2 and code != 0
        app.server.should_exit = True


def test_an_acknowledged_event_survives_a_kill_right_after(dsn: str, tmp_path: Path) -> None:
    @durable_sdk.function(id="echo", trigger={"event": "echo"})
    async def echo(event, step):  # type: ignore[no-untyped-def]
        return await step.run("say", lambda: event["data"]["n"])

    first = Proc("start", engine_env(dsn, DURABLE_WORKERS=0), tmp_path, "first")
    try:
        first.wait_healthy()
        base = f"http://127.0.0.1:{first.port}"
        app_id, key = _provision(base)
        with AppServer([echo], key) as app:
            _signed(base, app_id, key, "/fn/sync", {"url": app.url, "functions": [echo.wire]})
            answer = _signed(base, app_id, key, "/e", [{"name": "echo", "data": {"n": i}} for i in range(50)])
            assert answer.status_code == 200
            first.kill9()  # right after the 2xx
            second = Proc("start", engine_env(dsn), tmp_path, "second")
            try:
                second.wait_healthy()
                base = f"http://127.0.0.1:{second.port}"
                runs = _wait_completed(base, app_id, 50, timeout=30)
                outputs = sorted(httpx.get(f"{base}/api/runs/{r['id']}").json()["output"] for r in runs)
            finally:
                second.stop()
    finally:
        first.stop()
    assert outputs == list(range(50))


def test_migrate_applies_and_exits(pg_server: str, tmp_path: Path) -> None:
    import uuid

    from tests.conftest import with_database

    name = f"durable_mig_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    try:
        env = child_env()
        env["DATABASE_URL"] = with_database(pg_server, name)
        for _ in range(2):  # idempotent
            result = subprocess.run(
                [sys.executable, "-m", "durable", "migrate"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                cwd=ROOT,
            )
            assert result.returncode == 0, result.stderr
            assert "migrations applied" in result.stdout

        async def tables() -> set[str]:
            conn = await asyncpg.connect(with_database(pg_server, name))
            try:
                rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            finally:
                await conn.close()
            return {r["tablename"] for r in rows}

        assert {"apps", "events", "runs", "steps", "jobs", "waits", "durable_migrations"} <= asyncio.run(
            tables()
        )
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
