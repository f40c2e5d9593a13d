"""An app that is unreachable (a redeploy, a proxy answering 503) fails no run, and a run's `error` is
set only when it failed (docs/decisions.md, "Attempts").

Every app here is served over real HTTP by uvicorn; "down" means nothing listens on its port, so the
engine's invokes are refused, exactly as during a redeploy.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import durable_sdk
import httpx
import orjson
import pytest
import uvicorn

from durable.api.app import create_app
from durable.api.schemas import Run
from durable.config import Settings
from durable.store.db import Database
from durable.worker.loop import Wakeup
from tests.harness import Engine, Workspace, free_port, make_settings, read_request

ASGI = Callable[..., Any]


class Served:
    """An ASGI app on a fixed port, started and stopped at will (the port is free while stopped)."""

    def __init__(self, asgi: ASGI, port: int | None = None, path: str = "/api/durable") -> None:
        self.asgi = asgi
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}{path}"
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> Served:
        config = uvicorn.Config(
            self.asgi, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the test app did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(10)
            self.server = None


class Gateway:
    """ASGI: a proxy in front of the app that answers `status` to the first `failures` invokes (the app
    behind it is deploying), then passes them on. Records each invoke's `attempt`."""

    def __init__(self, app: ASGI, failures: int, status: int = 503) -> None:
        self.app = app
        self.failures = failures
        self.status = status
        self.attempts: list[int] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body, replay = await read_request(receive)
        self.attempts.append(int(orjson.loads(body)["attempt"]))
        if len(self.attempts) <= self.failures:
            await send({"type": "http.response.start", "status": self.status, "headers": []})
            await send({"type": "http.response.body", "body": b"upstream is deploying"})
            return
        await self.app(scope, replay, send)


@asynccontextmanager
async def engine_with(db: Database, dsn: str, settings: Settings) -> AsyncIterator[Engine]:
    wakeup = Wakeup()
    await wakeup.start(dsn)
    app = create_app(db, settings, on_ingest=wakeup.set)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://engine") as api:
        eng = Engine(db=db, dsn=dsn, settings=settings, api=api, wakeup=wakeup, app=app)
        try:
            yield eng
        finally:
            await eng.stop_workers()
            await wakeup.close()


def _checkout() -> Any:
    @durable_sdk.function(id="checkout", trigger={"event": "order.placed"})
    async def checkout(event, step):  # type: ignore[no-untyped-def]
        order = await step.run("load", lambda: {"orderId": event["data"].get("orderId")})
        await step.sleep("settle", "200ms")
        return await step.run("charge", lambda: {"charged": order["orderId"]})

    return checkout


async def _only_run(engine: Engine, ws: Workspace) -> dict[str, Any]:
    async def one() -> list[dict[str, Any]]:
        return await engine.runs(ws)

    [run] = await engine.wait_for(one, what="the run")
    return await engine.run(run["id"])


async def test_an_app_down_longer_than_the_old_retry_budget_fails_no_run(engine: Engine) -> None:
    """Down 8 s (3 attempts used to fail the run in 2.4 s); the run waits, shows why, and completes."""
    checkout = _checkout()
    ws = await engine.workspace()
    app = Served(durable_sdk.serve([checkout], signing_key=ws.signing_key))  # not started: refused
    await engine.sync(ws, app.url, [checkout])
    await engine.start_workers()
    down_at = time.monotonic()
    await engine.send(ws, "order.placed", {"orderId": "o-1"})
    run_id = (await _only_run(engine, ws))["id"]

    async def waiting() -> dict[str, Any] | None:
        run = await engine.run(run_id)
        return run if run["retry"] is not None else None

    waiting_run = await engine.wait_for(waiting, what="the run to show its retry")
    Run.model_validate(waiting_run, extra="forbid")
    retry = waiting_run["retry"]
    assert waiting_run["status"] == "active" and waiting_run["activity"] == "scheduled"
    assert waiting_run["error"] is None  # no failure banner while it waits
    assert retry["reason"] == "app unreachable: connection refused"
    assert retry["unreachable"] is True and retry["attempt"] == 1 and retry["maxAttempts"] == 3
    assert retry["nextAt"] > retry["since"]

    while time.monotonic() - down_at < 8:
        run = await engine.run(run_id)
        assert run["status"] == "active", run  # today: failed after 2.4 s
        await asyncio.sleep(0.2)
    app.start()
    try:
        [done] = await engine.wait_runs(ws, 1, timeout=40)
    finally:
        app.stop()
    run = await engine.run(done["id"])
    Run.model_validate(run, extra="forbid")
    assert run["output"] == {"charged": "o-1"}
    assert run["error"] is None and run["retry"] is None
    assert [s["attempts"] for s in run["steps"]] == [1, 1, 1]  # the outage used up no attempt
    assert len(run["errors"]) >= 3  # each refused try is kept in the run's history
    assert {e["message"] for e in run["errors"]} == {"app unreachable: connection refused"}
    assert all(e["attempt"] == 1 for e in run["errors"])


async def test_a_proxy_answering_503_uses_up_no_attempt(engine: Engine) -> None:
    checkout = _checkout()
    ws = await engine.workspace()
    gateway = Gateway(durable_sdk.serve([checkout], signing_key=ws.signing_key), failures=3)
    app = Served(gateway).start()
    try:
        await engine.sync(ws, app.url, [checkout])
        await engine.start_workers()
        await engine.send(ws, "order.placed", {"orderId": "o-2"})
        run_id = (await _only_run(engine, ws))["id"]

        async def retrying() -> dict[str, Any] | None:
            retry = (await engine.run(run_id))["retry"]
            return dict(retry) if retry is not None else None

        retry = await engine.wait_for(retrying, what="the 503 and its retry")
        assert retry["reason"] == "app unreachable: HTTP 503 Service Unavailable", retry
        assert retry["unreachable"] is True and retry["attempt"] == 1
        deadline = time.monotonic() + 15
        while (await engine.run(run_id))["status"] == "active":  # skip the backoffs on the database clock
            assert time.monotonic() < deadline, "the run did not complete"
            if (await engine.run(run_id))["retry"] is not None:
                await engine.advance_clock(8_000)  # past the longest of the first three backoffs
            await asyncio.sleep(0.05)
        [done] = await engine.wait_runs(ws, 1)
    finally:
        app.stop()
    run = await engine.run(done["id"])
    assert run["error"] is None
    # Three 503s are more than the 3 attempts, yet every invoke until the first answer was attempt 1.
    assert gateway.attempts[:4] == [1, 1, 1, 1]
    assert [e["message"] for e in run["errors"]] == ["app unreachable: HTTP 503 Service Unavailable"] * 3


async def test_a_redirect_is_not_followed_and_fails_the_attempt(engine: Engine) -> None:
    @durable_sdk.function(id="moved", trigger={"event": "go"}, retries=0)
    async def moved(event, step):  # type: ignore[no-untyped-def]
        return await step.run("a", lambda: 1)

    ws = await engine.workspace()
    reached: list[str] = []
    sdk_app = durable_sdk.serve([moved], signing_key=ws.signing_key)

    async def record(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])
        await sdk_app(scope, receive, send)

    target = Served(record).start()

    async def redirect(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"location", target.url.encode())]
        await send({"type": "http.response.start", "status": 307, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    old = Served(redirect).start()
    try:
        await engine.sync(ws, old.url, [moved])
        await engine.start_workers()
        await engine.send(ws, "go")
        [failed] = await engine.wait_runs(ws, 1, status="failed")
    finally:
        old.stop()
        target.stop()
    assert reached == []  # the redirect target never got the invoke
    run = await engine.run(failed["id"])
    message = run["error"]["message"]
    assert "HTTP 307" in message and "never follow redirects" in message and target.url in message
    assert "gave up after 1 attempts" in message  # a redirect is an error of the attempt


async def test_a_run_that_retried_then_succeeded_and_sleeps_has_no_error(engine: Engine) -> None:
    calls: list[int] = []

    @durable_sdk.function(id="flaky", trigger={"event": "flaky"})
    async def flaky(event, step):  # type: ignore[no-untyped-def]
        def call() -> str:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("upstream hiccup")
            return "fine"

        await step.run("call", call)
        await step.sleep("nap", "1h")
        return "done"

    ws = await engine.workspace()
    app = Served(durable_sdk.serve([flaky], signing_key=ws.signing_key)).start()
    try:
        await engine.sync(ws, app.url, [flaky])
        await engine.start_workers()
        await engine.send(ws, "flaky")
        run_id = (await _only_run(engine, ws))["id"]

        async def scheduled() -> dict[str, Any] | None:
            run = await engine.run(run_id)
            return run if run["retry"] is not None else None

        retry = (await engine.wait_for(scheduled, what="the retry"))["retry"]
        assert retry["unreachable"] is False and retry["attempt"] == 2
        assert "upstream hiccup" in retry["reason"]
        await engine.advance_clock(1_000)

        async def sleeping() -> dict[str, Any] | None:
            run = await engine.run(run_id)
            return run if run["activity"] == "sleeping" else None

        run = await engine.wait_for(sleeping, what="the sleep")
    finally:
        app.stop()
    Run.model_validate(run, extra="forbid")
    assert run["status"] == "active" and run["error"] is None and run["retry"] is None
    [call, nap] = run["steps"]
    assert call["status"] == "completed" and call["attempts"] == 2 and call["error"] is None
    [first] = call["errors"]
    assert first["attempt"] == 1 and "upstream hiccup" in first["message"] and first["at"]
    assert nap["status"] == "sleeping" and nap["errors"] == []
    assert run["errors"] == []


async def test_the_unreachable_budget_ends_the_run_naming_it(db: Database, dsn: str) -> None:
    settings = make_settings(dsn, unreachable_ms=1500)
    async with engine_with(db, dsn, settings) as engine:
        checkout = _checkout()
        ws = await engine.workspace()
        down = Served(durable_sdk.serve([checkout], signing_key=ws.signing_key))  # never started
        await engine.sync(ws, down.url, [checkout])
        await engine.start_workers()
        started = time.monotonic()
        await engine.send(ws, "order.placed")
        [failed] = await engine.wait_runs(ws, 1, status="failed", timeout=15)
        took = time.monotonic() - started
        run = await engine.run(failed["id"])
    message = run["error"]["message"]
    assert "DURABLE_UNREACHABLE_MS (1500 ms)" in message and down.url in message, message
    assert "app unreachable: connection refused" in message
    assert 1.4 < took < 10
    assert run["retry"] is None and run["steps"] == []
    assert len(run["errors"]) >= 2 and run["errors"][-1]["message"] == message


@pytest.mark.slow
async def test_a_minute_long_redeploy_fails_no_run_under_the_default_settings(db: Database, dsn: str) -> None:
    """Many runs in flight when the app goes away for 65 s; exactly the default settings."""
    runs = 40
    async with engine_with(db, dsn, Settings(database_url=dsn)) as engine:
        checkout = _checkout()
        ws = await engine.workspace()
        port = free_port()
        asgi = durable_sdk.serve([checkout], signing_key=ws.signing_key)
        app = Served(asgi, port).start()
        await engine.sync(ws, app.url, [checkout])
        await engine.start_workers(count=2)
        for i in range(runs // 2):
            await engine.send(ws, "order.placed", {"orderId": f"before-{i}"})
        app.stop()  # the redeploy: runs in flight, sleeping and queued find nothing listening
        down_at = time.monotonic()
        for i in range(runs // 2):
            await engine.send(ws, "order.placed", {"orderId": f"during-{i}"})
        while time.monotonic() - down_at < 65:
            assert await engine.runs(ws, status="failed") == []
            await asyncio.sleep(1)
        app = Served(asgi, port).start()
        try:
            done = await engine.wait_runs(ws, runs, timeout=90)
        finally:
            app.stop()
        assert await engine.runs(ws, status="failed") == []
        assert len(done) == runs
        for summary in done:
            run = await engine.run(summary["id"])
            assert run["error"] is None and [s["attempts"] for s in run["steps"]] == [1, 1, 1]
