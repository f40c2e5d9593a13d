"""Composition against a real engine: `durable start` on Postgres, this SDK served over real HTTP.

A parent invokes a child and uses its output, runs two steps in parallel (which must overlap, in one
invoke) and sends an event that triggers a second function; a function that fails for good has its
on_failure handler run. Both handler styles: ``async def`` (asyncio.gather) and plain ``def``
(step.parallel).

Postgres: ``DATABASE_URL`` (each test gets a fresh database on that server), else the embedded test
Postgres the repository's tests use (``.durable-test-pg``).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

import durable_sdk

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # the repository's e2e helpers, also when pytest runs from sdks/python
    sys.path.append(str(ROOT))

asyncpg = pytest.importorskip("asyncpg", reason="the engine's dependencies are needed: run `make install`")
httpx = pytest.importorskip("httpx", reason="the engine's test dependencies are needed: run `make install`")

from tests.e2e.procs import Proc, engine_env  # noqa: E402
from tests.e2e.test_crash_recovery import _provision  # noqa: E402
from tests.harness import AppServer  # noqa: E402

TERMINAL = {"completed", "failed", "cancelled"}


class Overlap:
    """Counts step functions running at once, per parent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.calls: dict[str, int] = {}

    def enter(self, who: str, name: str) -> None:
        with self.lock:
            self.active[who] = self.active.get(who, 0) + 1
            self.peak[who] = max(self.peak.get(who, 0), self.active[who])
            self.calls[f"{who}/{name}"] = self.calls.get(f"{who}/{name}", 0) + 1

    def leave(self, who: str) -> None:
        with self.lock:
            self.active[who] -= 1


overlap = Overlap()


@durable_sdk.function(id="double", trigger=None)
async def double(event: Any, step: Any) -> Any:
    return await step.run("double", lambda: {"doubled": event["data"]["n"] * 2})


@durable_sdk.function(id="parent-async", trigger={"event": "compose.async"})
async def parent_async(event: Any, step: Any) -> Any:
    child = await step.invoke("child", function=double, data={"n": 21}, timeout="1m")

    async def part(name: str, value: int) -> int:
        overlap.enter("async", name)
        try:
            await asyncio.sleep(0.5)
        finally:
            overlap.leave("async")
        return value

    a, b = await asyncio.gather(step.run("a", lambda: part("a", 1)), step.run("b", lambda: part("b", 2)))
    sent = await step.send_event("notify", {"name": "compose.notified", "data": {"from": "async"}})
    return {"child": child, "sum": a + b, "sent": sent}


@durable_sdk.function(id="parent-plain", trigger={"event": "compose.plain"})
def parent_plain(event: Any, step: Any) -> Any:
    child = step.invoke("child", function="double", data={"n": 5})

    def part(name: str, value: int) -> Any:
        def fn() -> int:
            overlap.enter("plain", name)
            try:
                time.sleep(0.5)
            finally:
                overlap.leave("plain")
            return value

        return fn

    a, b = step.parallel([lambda: step.run("a", part("a", 3)), lambda: step.run("b", part("b", 4))])
    sent = step.send_event("notify", [{"name": "compose.notified", "data": {"from": "plain"}}])
    return {"child": child, "sum": a + b, "sent": sent}


@durable_sdk.function(id="listener", trigger={"event": "compose.notified"})
def listener(event: Any, step: Any) -> Any:
    return {"heard": event["data"]["from"], "event": event["id"]}


def report_failure(event: Any, step: Any) -> Any:
    data = event["data"]
    return step.run(
        "report", lambda: {"run": data["runId"], "fn": data["functionId"], "error": data["error"]}
    )


@durable_sdk.function(id="doomed", trigger={"event": "compose.doom"}, retries=0, on_failure=report_failure)
async def doomed(event: Any, step: Any) -> Any:
    def explode() -> None:
        raise RuntimeError("out of stock")

    return await step.run("ship", explode)


FUNCTIONS = [double, parent_async, parent_plain, listener, doomed]


@pytest.fixture
def dsn(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, empty database (the engine migrates it at start)."""
    root_conftest = sys.modules.get("tests.conftest")  # it scrubs DATABASE_URL, keeping it here
    server = os.environ.get("DATABASE_URL") or getattr(root_conftest, "_DATABASE_URL", None)
    started = None
    if not server:
        from durable.config import embedded_dsn
        from durable.store import embedded
        from tests.harness import free_port

        pgdata = ROOT / ".durable-test-pg"
        port = embedded.running_port(pgdata) or free_port()
        started = pgdata if embedded.ensure_running(pgdata, port) else None
        server = embedded_dsn(pgdata, port)
    for name in list(os.environ):  # the engine reads its settings from the environment
        if name.startswith("DURABLE_") or name in ("DATABASE_URL", "PORT"):
            monkeypatch.delenv(name)
    name = f"durable_sdk_e2e_{uuid.uuid4().hex[:12]}"
    admin = _with_database(server, "postgres")
    asyncio.run(_execute(admin, f"CREATE DATABASE {name}"))
    try:
        yield _with_database(server, name)
    finally:
        asyncio.run(_execute(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        if started is not None:
            from durable.store import embedded

            embedded.stop(started)


def test_invoke_parallel_send_and_on_failure_end_to_end(dsn: str, tmp_path: Path) -> None:
    engine = Proc("start", engine_env(dsn), tmp_path, "engine")
    try:
        engine.wait_healthy()
        base = f"http://127.0.0.1:{engine.port}"
        app_id, key = _provision(base, "compose-python")
        with AppServer(FUNCTIONS, key) as app:
            client = durable_sdk.Client(base_url=base, app_id=app_id, signing_key=key, app_url=app.url)
            client.sync(FUNCTIONS)
            client.send("compose.async")
            client.send("compose.plain")
            client.send("compose.doom", {"sku": "x1"})
            expected = {"parent-async": 1, "parent-plain": 1, "double": 2, "listener": 2}
            expected.update({"doomed": 1, "doomed:failure": 1})
            runs = _wait_ended(base, app_id, expected, engine)
            views = {run["id"]: httpx.get(f"{base}/api/runs/{run['id']}").json() for run in runs}
    finally:
        engine.stop()

    by_function: dict[str, list[dict[str, Any]]] = {}
    for view in views.values():
        by_function.setdefault(view["functionId"], []).append(view)
    summary = {view["functionId"]: view["status"] for view in views.values()}
    assert len(by_function["double"]) == 2 and len(by_function["listener"]) == 2, summary

    # a parent invokes a child and uses its output
    (parent_a,) = by_function["parent-async"]
    (parent_p,) = by_function["parent-plain"]
    for parent, n in ((parent_a, 21), (parent_p, 5)):
        assert parent["status"] == "completed", parent
        assert parent["output"]["child"] == {"doubled": n * 2}, parent
        (link,) = parent["children"]
        assert link["functionId"] == "double" and link["stepId"] == "child" and link["status"] == "completed"
        child = views[link["runId"]]
        assert child["parentRunId"] == parent["id"] and child["output"] == {"doubled": n * 2}

    # two parallel steps ran at once, each once
    assert parent_a["output"]["sum"] == 3 and parent_p["output"]["sum"] == 7
    assert overlap.peak == {"async": 2, "plain": 2}, overlap.peak
    assert set(overlap.calls.values()) == {1}, overlap.calls

    # send_event triggered the listener with the event whose id it returned
    heard = {view["output"]["heard"]: view for view in by_function["listener"]}
    assert set(heard) == {"async", "plain"}
    for parent, style in ((parent_a, "async"), (parent_p, "plain")):
        (sent_id,) = parent["output"]["sent"]
        assert heard[style]["eventId"] == sent_id and heard[style]["output"]["event"] == sent_id

    # on_failure ran once the function failed for good
    (failed,) = by_function["doomed"]
    assert failed["status"] == "failed" and "out of stock" in failed["error"]["message"]
    (handler,) = by_function["doomed:failure"]
    assert handler["status"] == "completed", handler
    assert handler["output"]["run"] == failed["id"] and handler["output"]["fn"] == "doomed"
    assert "out of stock" in handler["output"]["error"]["message"]


def _wait_ended(base: str, app_id: str, expected: dict[str, int], engine: Proc) -> list[dict[str, Any]]:
    """Every run of the app, once each function has at least ``expected[id]`` runs and none is active."""
    deadline = time.monotonic() + 60
    while True:
        runs = httpx.get(f"{base}/api/apps/{app_id}/runs", params={"limit": 500}).json()["items"]
        counts = {fn: sum(run["functionId"] == fn for run in runs) for fn in expected}
        if all(counts[fn] >= n for fn, n in expected.items()) and all(r["status"] in TERMINAL for r in runs):
            return list(runs)
        if time.monotonic() > deadline:
            states = sorted((run["functionId"], run["status"], run.get("activity")) for run in runs)
            raise AssertionError(
                f"runs after 60 s: {states}; expected at least {expected}\n"
                f"--- engine log ---\n{engine.log()[-3000:]}"
            )
        time.sleep(0.2)


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def _execute(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()
