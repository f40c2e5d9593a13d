"""The ASGI app, driven directly with hand-made scope, receive and send."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

import durable_sdk
from durable_sdk import _step

threads: dict[str, int] = {}


@durable_sdk.function(id="hello", trigger={"event": "demo.hello"})
async def hello(event: Any, step: Any) -> Any:
    threads["async"] = threading.get_ident()
    return await step.run("greet", lambda: f"hi {event['data']['name']} ☕")


@durable_sdk.function(id="plain", trigger={"event": "demo.plain"})
def plain(event: Any, step: Any) -> Any:
    threads["sync"] = threading.get_ident()
    return step.run("greet", lambda: "hi")


def invoke_body(function_id: str = "hello", steps: dict[str, Any] | None = None) -> bytes:
    event = {"id": "e1", "name": "demo.hello", "data": {"name": "Zoë"}, "ts": 1767225600000}
    body = {"runId": "r1", "functionId": function_id, "attempt": 1, "event": event, "steps": steps or {}}
    return json.dumps(body).encode()


@pytest.fixture
def app(key: str) -> Any:
    return durable_sdk.serve([hello, plain], signing_key=key)


def signed(body: bytes, key: str) -> dict[str, str]:
    """An invoke's headers as the engine signs them (v2, fresh nonce, now)."""
    return {
        "x-durable-signature-v2": durable_sdk.sign_v2(body, key, "engine", _step._now_ms()),
        "content-type": "application/json",
    }


def test_invoke_answers_one_signed_compact_op(app: Any, key: str, asgi_request: Any) -> None:
    body = invoke_body()
    answer = asgi_request(app, body=body, headers=signed(body, key))
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-durable-signature"] == durable_sdk.sign(answer.body, key)
    assert "x-durable-signature-v2" in answer.headers  # checked in test_serve.py
    expected = (  # checkpointing is on by default: the step and the handler's return in one answer
        '{"op":"checkpoint","steps":[{"id":"greet","data":"hi Zoë ☕"}],'
        '"then":{"op":"done","data":"hi Zoë ☕"}}'
    ).encode()
    assert answer.body == expected
    assert int(answer.headers["content-length"]) == len(answer.body)


def test_replay_finishes_with_done(app: Any, key: str, asgi_request: Any) -> None:
    body = invoke_body(steps={"greet": {"type": "run", "data": "hi there"}})
    assert asgi_request(app, body=body, headers=signed(body, key)).json() == {
        "op": "done",
        "data": "hi there",
    }


def test_body_may_arrive_in_chunks(app: Any, key: str, asgi_request: Any) -> None:
    body = invoke_body()
    answer = asgi_request(app, chunks=[body[:10], body[10:30], body[30:]], headers=signed(body, key))
    assert answer.json()["op"] == "checkpoint"


def test_bad_signature_is_401(app: Any, key: str, asgi_request: Any, bad_signature: Any) -> None:
    threads.clear()
    headers, error = bad_signature
    answer = asgi_request(app, body=invoke_body(), headers=headers)
    assert answer.status == 401
    assert answer.json()["error"].startswith(error)
    assert durable_sdk.verify(answer.body, key, answer.headers["x-durable-signature"])
    assert threads == {}  # the handler did not run


def test_unknown_function_is_404(app: Any, key: str, asgi_request: Any) -> None:
    body = invoke_body("nope")
    answer = asgi_request(app, body=body, headers=signed(body, key))
    assert (answer.status, answer.json()) == (404, {"error": "unknown function 'nope'"})


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "invalid JSON"),
        (b"[]", "the body must be a JSON object"),
        (b'{"event": {}}', "functionId must be a string"),
        (b'{"functionId": "hello", "event": "x"}', "event must be an object"),
        (b'{"functionId": "hello", "event": {}, "steps": {"a": {"type": "nap"}}}', "steps.a must be"),
    ],
)
def test_malformed_body_is_400(app: Any, key: str, asgi_request: Any, body: bytes, problem: str) -> None:
    answer = asgi_request(app, body=body, headers=signed(body, key))
    assert answer.status == 400
    assert answer.json()["error"].startswith(f"malformed invoke: {problem}")


def test_oversized_body_is_413(app: Any, key: str, asgi_request: Any) -> None:
    chunk = b" " * (1024 * 1024)
    answer = asgi_request(app, chunks=[chunk] * 5 + [b"{}"], headers={"x-durable-signature": "x"})
    assert answer.status == 413


def test_get_lists_functions_and_other_methods_are_405(app: Any, key: str, asgi_request: Any) -> None:
    answer = asgi_request(app, method="GET")
    assert (answer.status, answer.json()) == (200, {"functions": ["hello", "plain"]})
    assert durable_sdk.verify(answer.body, key, answer.headers["x-durable-signature"])
    assert asgi_request(app, method="PUT").status == 405


def test_sync_handlers_run_in_a_thread_async_ones_on_the_loop(app: Any, key: str) -> None:
    async def call(function_id: str) -> int:
        body = invoke_body(function_id)
        messages = [{"type": "http.request", "body": body}]
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "headers": [(k.encode(), v.encode()) for k, v in signed(body, key).items()],
        }
        sent: list[Any] = []

        async def receive() -> Any:
            return messages.pop()

        async def send(message: Any) -> None:
            sent.append(message)

        await app(scope, receive, send)
        assert sent[0]["status"] == 200
        return threading.get_ident()

    async def main() -> None:
        loop_thread = await call("hello")
        assert threads["async"] == loop_thread
        await call("plain")
        assert threads["sync"] != loop_thread

    asyncio.run(main())


def test_lifespan_startup_and_shutdown_complete(app: Any) -> None:
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Any] = []

    async def receive() -> Any:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


def test_client_disconnect_sends_nothing(app: Any) -> None:
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "method": "POST", "headers": []}, receive, send))
    assert sent == []


def test_serve_refuses_bad_arguments(key: str) -> None:
    with pytest.raises(ValueError, match="signing_key"):
        durable_sdk.serve([hello], signing_key="")
    with pytest.raises(ValueError, match="duplicate function id 'hello'"):
        durable_sdk.serve([hello, hello], signing_key=key)
    with pytest.raises(ValueError, match=r"expected functions made by @durable_sdk\.function"):
        durable_sdk.serve([lambda event, step: None], signing_key=key)  # type: ignore[list-item]
