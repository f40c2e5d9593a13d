"""The FastAPI helper: ``durable_sdk.fastapi.router`` included into a real FastAPI app."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

import durable_sdk
from durable_sdk import _signing, _step

fastapi = pytest.importorskip("fastapi")  # a test-only dependency
httpx = pytest.importorskip("httpx")
from durable_sdk.fastapi import router  # noqa: E402

threads: dict[str, int] = {}


@durable_sdk.function(id="hello", trigger={"event": "demo.hello"})
async def hello(event: Any, step: Any) -> Any:
    threads["async"] = threading.get_ident()
    return await step.run("greet", lambda: f"hi {event['data']['name']}")


@durable_sdk.function(id="plain", trigger={"event": "demo.plain"})
def plain(event: Any, step: Any) -> Any:
    threads["sync"] = threading.get_ident()
    return step.run("greet", lambda: "hi")


def invoke_body(function_id: str, steps: dict[str, Any] | None = None) -> bytes:
    event = {"id": "e1", "name": "demo.hello", "data": {"name": "Zoë"}, "ts": 1767225600000}
    body = {"runId": "r1", "functionId": function_id, "attempt": 1, "event": event, "steps": steps or {}}
    return json.dumps(body).encode()


def make_app(key: str, **kwargs: Any) -> Any:
    app = fastapi.FastAPI()

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    app.include_router(router([hello, plain], signing_key=key, **kwargs))
    return app


def request(app: Any, method: str, path: str, body: bytes = b"", **headers: str) -> Any:
    """One request through the app over httpx's ASGI transport, on an event loop in this thread."""

    async def go() -> Any:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.request(method, path, content=body, headers=headers)

    return asyncio.run(go())


def post(app: Any, key: str, body: bytes, path: str = "/api/durable") -> Any:
    nonce = _signing.new_nonce()
    signature = durable_sdk.sign_v2(body, key, "engine", _step._now_ms(), n=nonce)
    answer = request(app, "POST", path, body, **{"x-durable-signature-v2": signature})
    assert answer.headers["x-durable-signature"] == durable_sdk.sign(answer.content, key)
    assert _signing.parse_v2(answer.headers["x-durable-signature-v2"]).r == nonce
    assert answer.headers["content-type"] == "application/json"
    return answer


def test_async_handler_runs_on_the_event_loop(key: str) -> None:
    threads.clear()
    answer = post(make_app(key), key, invoke_body("hello"))
    expected = (
        '{"op":"checkpoint","steps":[{"id":"greet","data":"hi Zoë"}],"then":{"op":"done","data":"hi Zoë"}}'
    ).encode()
    assert (answer.status_code, answer.content) == (200, expected)
    assert threads == {"async": threading.get_ident()}


def test_plain_handler_runs_in_a_worker_thread(key: str) -> None:
    threads.clear()
    answer = post(make_app(key), key, invoke_body("plain", {"greet": {"type": "run", "data": "x"}}))
    assert (answer.status_code, answer.json()) == (200, {"op": "done", "data": "x"})
    assert threads["sync"] != threading.get_ident()


def test_bad_signature_is_401(key: str, bad_signature: Any) -> None:
    headers, error = bad_signature
    threads.clear()
    answer = request(make_app(key), "POST", "/api/durable", invoke_body("hello"), **headers)
    assert answer.status_code == 401
    assert answer.json()["error"].startswith(error)
    assert durable_sdk.verify(answer.content, key, answer.headers["x-durable-signature"])
    assert threads == {}


def test_custom_path_get_and_the_rest_of_the_app(key: str) -> None:
    app = make_app(key, path="/hooks/durable")
    assert post(app, key, invoke_body("plain"), path="/hooks/durable").json()["op"] == "checkpoint"
    assert request(app, "GET", "/hooks/durable").json() == {"functions": ["hello", "plain"]}
    assert request(app, "POST", "/api/durable").status_code == 404
    assert request(app, "GET", "/health").json() == {"ok": True}
    assert request(app, "DELETE", "/hooks/durable").status_code == 405
    assert "/hooks/durable" not in app.openapi()["paths"]


def test_unknown_function_and_oversized_body(key: str) -> None:
    app = make_app(key)
    assert post(app, key, invoke_body("nope")).status_code == 404
    assert request(app, "POST", "/api/durable", b" " * (4 * 1024 * 1024 + 1)).status_code == 413
