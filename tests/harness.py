"""Test harness: the engine in the test's event loop, and SDK apps on real HTTP in a thread.

`Engine` mounts the API through httpx's ASGI transport and runs real worker loops (claim → HTTP
invoke → apply) against the test's database. `AppServer` serves durable_sdk functions with uvicorn on
a free port, so every invoke crosses a real socket.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import durable_sdk
import httpx
import orjson
import uvicorn
from durable_sdk._serve import _Endpoint

from durable.config import Settings
from durable.core.signing import V2_HEADER, new_nonce, sign, sign_v2
from durable.engine.execution import Executor, invoke_timeout
from durable.store.db import Database
from durable.worker.invoke import Invoker
from durable.worker.loop import LocalDispatch, Wakeup, WorkerLoop

_handed_out: set[int] = set()


def free_port() -> int:
    """A free TCP port, never the same one twice in a test session (the kernel may hand out a port it
    just gave us again, before the first process bound it)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


async def read_request(receive: Any) -> tuple[bytes, Any]:
    """For ASGI middleware that looks at a request's body before the app does: the whole body, and a
    `receive` to hand the app that replays it (then passes on whatever comes next, e.g. a disconnect)."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return dict(await receive())

    return body, replay


class Recorder:
    """ASGI middleware: records who invoked which run, and any overlap of invokes of one run."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.inflight: dict[str, int] = {}
        self.overlaps: list[str] = []
        self.agents: set[str] = set()
        self.invokes = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body, replay = await read_request(receive)
        run_id = orjson.loads(body).get("runId", "") if body else ""
        headers = dict(scope["headers"])
        with self.lock:
            self.invokes += 1
            self.agents.add(headers.get(b"user-agent", b"").decode())
            if self.inflight.get(run_id):
                self.overlaps.append(run_id)
            self.inflight[run_id] = self.inflight.get(run_id, 0) + 1
        try:
            await self.app(scope, replay, send)
        finally:
            with self.lock:
                self.inflight[run_id] -= 1


class AppServer:
    """A durable_sdk app served by uvicorn in a background thread."""

    def __init__(self, functions: Sequence[Any], signing_key: str, *, record: bool = False) -> None:
        self._serve(durable_sdk.serve(list(functions), signing_key=signing_key), record)

    def _serve(self, asgi: Any, record: bool) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api/durable"
        self.recorder = Recorder(asgi) if record else None
        config = uvicorn.Config(
            self.recorder or asgi,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> AppServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test app did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)


class ScriptedApp(AppServer):
    """An app whose answers a test writes: `script(invoke)` returns the op (a dict) for each verified
    invoke, signed as an SDK signs it. For engine behaviour no SDK produces on its own (malformed or
    hostile answers, checkpoints of exact shapes). `invokes` keeps every invoke body, in order."""

    def __init__(self, script: Callable[[dict[str, Any]], Any], signing_key: str) -> None:
        endpoint = _Endpoint([], signing_key)
        self.invokes: list[dict[str, Any]] = []

        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            body, _ = await read_request(receive)
            headers = dict(scope["headers"])
            v2 = headers.get(V2_HEADER.encode())
            nonce = endpoint.authenticate(body, None, v2 and v2.decode("latin-1"))
            if isinstance(nonce, str):
                invoke = orjson.loads(body)
                self.invokes.append(invoke)
                status, answer, payload = endpoint.respond(200, script(invoke), nonce)
            else:
                status, answer, payload = nonce
            start = {"type": "http.response.start", "status": status}
            await send({**start, "headers": [(k.encode(), v.encode()) for k, v in answer]})
            await send({"type": "http.response.body", "body": payload})

        self._serve(asgi, False)


@dataclass
class Workspace:
    id: str
    signing_key: str
    environment: str = "dev"


@dataclass
class Engine:
    db: Database
    dsn: str
    settings: Settings
    api: httpx.AsyncClient
    wakeup: Wakeup
    app: Any = None  # the ASGI app, so workers can take runs straight from its ingests
    loops: list[WorkerLoop] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    invokers: list[Invoker] = field(default_factory=list)

    async def start_workers(self, count: int = 1, capacity: int = 32) -> None:
        invoker = Invoker(timeout_ms=invoke_timeout(self.settings.lease_ms))
        executor = Executor(
            self.db,
            lease_ms=self.settings.lease_ms,
            default_max_attempts=self.settings.max_attempts,
            unreachable_ms=self.settings.unreachable_ms,
        )
        for i in range(count):
            loop = WorkerLoop(executor, invoker, self.wakeup, name=f"test:{i}", capacity=capacity)
            self.loops.append(loop)
            self.tasks.append(asyncio.create_task(loop.run()))
        self.invokers.append(invoker)
        if self.app is not None:
            self.app.state.dispatcher = LocalDispatch(
                self.loops, lease_ms=self.settings.lease_ms, default_max_attempts=self.settings.max_attempts
            )

    async def stop_workers(self) -> None:
        if self.app is not None:
            self.app.state.dispatcher = None
        for loop in self.loops:
            loop.stop()
        for loop in self.loops:
            await loop.drain(5)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.loops.clear()
        self.tasks.clear()
        for invoker in self.invokers:
            await invoker.close()
        self.invokers.clear()

    async def advance_clock(self, ms: int) -> None:
        """Move the database clock `ms` ahead (durable_now(), migration 0007) and wake the worker
        loops, which otherwise sleep until the due time they computed before the jump."""
        await self.db.set_clock_offset(self.db.clock_offset_ms + ms)
        self.wakeup.set()

    async def workspace(self, name: str = "shop", environment: str = "dev") -> Workspace:
        response = await self.api.post("/api/apps", json={"name": name, "environment": environment})
        assert response.status_code == 200, response.text
        body = response.json()
        return Workspace(body["id"], body["signingKey"], body["environment"])

    async def signed(
        self,
        ws: Workspace,
        path: str,
        payload: Any,
        *,
        raw: bytes | None = None,
        key: str | None = None,
        v2: bool | None = None,
    ) -> httpx.Response:
        """POST signed as an app: v1 (the seed's signature) for dev and acc workspaces, v2 for prod
        (v2-only by default), unless `v2` says which."""
        body = raw if raw is not None else orjson.dumps(payload)
        headers = {"content-type": "application/json", "x-durable-app": ws.id}
        if v2 if v2 is not None else ws.environment == "prod":
            now_ms = time.time_ns() // 1_000_000
            headers[V2_HEADER] = sign_v2(key or ws.signing_key, "app", now_ms, new_nonce(), "", body)
        else:
            headers["x-durable-signature"] = sign(body, key or ws.signing_key)
        return await self.api.post(path, content=body, headers=headers)

    async def sync(self, ws: Workspace, url: str, functions: Sequence[Any]) -> None:
        payload = {"url": url, "functions": [getattr(f, "wire", f) for f in functions]}
        response = await self.signed(ws, "/fn/sync", payload)
        assert response.status_code == 200, response.text

    async def send(self, ws: Workspace, name: str, data: dict[str, Any] | None = None, **extra: Any) -> str:
        response = await self.signed(ws, "/e", {"name": name, "data": data or {}, **extra})
        assert response.status_code == 200, response.text
        return str(response.json()["ids"][0])

    async def runs(self, ws: Workspace, **params: Any) -> list[dict[str, Any]]:
        response = await self.api.get(f"/api/apps/{ws.id}/runs", params={"limit": 500, **params})
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    async def run(self, run_id: str) -> dict[str, Any]:
        response = await self.api.get(f"/api/runs/{run_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def wait_for(
        self, predicate: Callable[[], Any], *, timeout: float = 15.0, what: str = "condition"
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = await predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)

    async def wait_runs(
        self, ws: Workspace, count: int, *, status: str = "completed", timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        async def ready() -> list[dict[str, Any]] | None:
            runs = await self.runs(ws, status=status)
            return runs if len(runs) >= count else None

        return list(await self.wait_for(ready, timeout=timeout, what=f"{count} {status} run(s)"))


def make_settings(dsn: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"database_url": dsn, "lease_ms": 5000, "max_attempts": 3}
    values.update(overrides)
    return Settings(**values)
