from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from durable.api.app import create_app
from durable.store.db import Database
from durable.worker.loop import Wakeup
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
