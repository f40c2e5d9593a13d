from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from durable.api.app import create_app
from durable.store.db import Database
from durable.worker.loop import Wakeup
from tests.conftest import with_database
from tests.harness import Engine, make_settings


@pytest.fixture
async def engine(db: Database, dsn: str) -> AsyncIterator[Engine]:
    settings = make_settings(dsn)
    wakeup = Wakeup()
    await wakeup.start(dsn)
    app = create_app(db, settings, on_ingest=wakeup.set)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://engine") as api:
        eng = Engine(db=db, dsn=dsn, settings=settings, api=api, wakeup=wakeup, app=app)
        yield eng
        await eng.stop_workers()
    await wakeup.close()


@pytest.fixture
async def empty_dsn(pg_server: str) -> AsyncIterator[str]:
    """A database of its own with nothing in it (no migration applied), dropped afterwards."""
    name = f"durable_m_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(pg_server)
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    yield with_database(pg_server, name)
    conn = await asyncpg.connect(pg_server)
    await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await conn.close()
