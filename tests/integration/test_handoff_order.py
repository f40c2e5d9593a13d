"""A run handed off by its ingest sends its first invoke before the event's answer is written (api/http.py,
INVOKES_BEFORE_ANSWER; docs/decisions.md, "The first invokes before the event's answer"): the engine's
HTTP answer and its invoke are both writes that wake another process, and the invoke's is the one the
run waits for. Each test logs, in order, the invokes as the engine's HTTP client sends them and the
`POST /e` answer as the engine's ASGI app starts it; the ingest's commit precedes both either way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from durable.api.http import INVOKES_BEFORE_ANSWER
from durable.core.signing import sign
from durable.worker import http1
from tests.harness import Engine, ScriptedApp, Workspace

FUNCTION = {"id": "f", "trigger": {"event": "go"}}


class Order:
    """The log, and a client for the engine's API whose `POST /e` answers are logged as "answer"."""

    def __init__(self, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log: list[str] = []
        self.engine = engine
        post, request = http1.Client.post, http1._Connection.request

        async def logged_post(client: http1.Client, url: str, body: bytes, *args: Any) -> Any:
            self.log.append(f"invoke {orjson.loads(body)['event']['data']['n']}")
            return await post(client, url, body, *args)

        async def logged_request(connection: Any, data: bytes) -> Any:
            self.log.append("written")
            return await request(connection, data)

        monkeypatch.setattr(http1.Client, "post", logged_post)
        monkeypatch.setattr(http1._Connection, "request", logged_request)

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        async def logged(message: Any) -> None:
            if message["type"] == "http.response.start" and scope["path"] == "/e":
                self.log.append("answer")
            await send(message)

        await self.engine.app(scope, receive, logged)

    async def send(self, ws: Workspace, count: int) -> None:
        body = orjson.dumps([{"name": "go", "data": {"n": n}} for n in range(count)])
        headers = {"content-type": "application/json", "x-durable-app": ws.id}
        headers["x-durable-signature"] = sign(body, ws.signing_key)
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://engine") as api:
            response = await api.post("/e", content=body, headers=headers)
        assert response.status_code == 200, response.text


@pytest.fixture
async def warm(engine: Engine) -> AsyncIterator[Workspace]:
    """A workspace with its app synced, workers running, and one run done (a connection to the app open)."""
    ws = await engine.workspace()
    with ScriptedApp(lambda invoke: {"op": "done", "data": None}, ws.signing_key) as app:
        await engine.sync(ws, app.url, [FUNCTION])
        await engine.start_workers()
        await engine.send(ws, "go", {"n": -1})
        await engine.wait_runs(ws, 1)
        yield ws
        await engine.stop_workers()


async def test_the_first_invoke_is_written_before_the_answer(
    engine: Engine, warm: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = Order(engine, monkeypatch)
    await order.send(warm, 1)
    await engine.wait_runs(warm, 2)
    assert order.log == ["invoke 0", "written", "answer"]


async def test_a_batch_starts_a_few_runs_before_its_answer_and_the_rest_after(
    engine: Engine, warm: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = INVOKES_BEFORE_ANSWER + 3
    order = Order(engine, monkeypatch)
    await order.send(warm, count)
    await engine.wait_runs(warm, 1 + count)
    invokes = [entry for entry in order.log if entry.startswith("invoke")]
    before = order.log[: order.log.index("answer")]
    assert sorted(invokes) == sorted(f"invoke {n}" for n in range(count))  # every run was driven
    assert len([entry for entry in before if entry.startswith("invoke")]) == INVOKES_BEFORE_ANSWER
    assert "written" in before  # the one with the open connection wrote; the others were connecting
