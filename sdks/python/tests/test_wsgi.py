"""The WSGI app: same protocol, async handlers run with asyncio.run."""

from __future__ import annotations

import json
from typing import Any

import pytest

import durable_sdk
from durable_sdk import _signing, _step


@durable_sdk.function(id="hello", trigger={"event": "demo.hello"})
async def hello(event: Any, step: Any) -> Any:
    await step.sleep("pause", "1s")
    return await step.run("greet", lambda: f"hi {event['data']['name']}")


@durable_sdk.function(id="plain", trigger={"event": "demo.plain"})
def plain(event: Any, step: Any) -> Any:
    return step.run("greet", lambda: "hi")


def invoke_body(function_id: str, steps: dict[str, Any] | None = None) -> bytes:
    event = {"id": "e1", "name": "demo.hello", "data": {"name": "Zoë"}, "ts": 1767225600000}
    return json.dumps(
        {"runId": "r1", "functionId": function_id, "attempt": 1, "event": event, "steps": steps or {}}
    ).encode()


@pytest.fixture
def app(key: str) -> Any:
    return durable_sdk.serve_wsgi([hello, plain], signing_key=key)


def post(app: Any, key: str, wsgi_request: Any, body: bytes) -> Any:
    nonce = _signing.new_nonce()
    headers = {"x-durable-signature-v2": durable_sdk.sign_v2(body, key, "engine", _step._now_ms(), n=nonce)}
    answer = wsgi_request(app, body=body, headers=headers)
    assert answer.headers["x-durable-signature"] == durable_sdk.sign(answer.body, key)
    assert _signing.parse_v2(answer.headers["x-durable-signature-v2"]).r == nonce
    return answer


def test_async_handler_runs_under_asyncio_run(app: Any, key: str, wsgi_request: Any) -> None:
    answer = post(app, key, wsgi_request, invoke_body("hello", {"pause": {"type": "sleep"}}))
    expected = (
        '{"op":"checkpoint","steps":[{"id":"greet","data":"hi Zoë"}],"then":{"op":"done","data":"hi Zoë"}}'
    ).encode()
    assert (answer.status, answer.body) == (200, expected)


def test_plain_handler(app: Any, key: str, wsgi_request: Any) -> None:
    answer = post(app, key, wsgi_request, invoke_body("plain", {"greet": {"type": "run", "data": "x"}}))
    assert answer.json() == {"op": "done", "data": "x"}


def test_bad_signature_is_401(app: Any, key: str, wsgi_request: Any, bad_signature: Any) -> None:
    headers, error = bad_signature
    answer = wsgi_request(app, body=invoke_body("hello"), headers=headers)
    assert answer.status == 401
    assert answer.json()["error"].startswith(error)
    assert durable_sdk.verify(answer.body, key, answer.headers["x-durable-signature"])


def test_unknown_function_malformed_body_and_methods(app: Any, key: str, wsgi_request: Any) -> None:
    assert post(app, key, wsgi_request, invoke_body("nope")).status == 404
    assert post(app, key, wsgi_request, b"{oops").status == 400
    answer = wsgi_request(app, method="GET")
    assert (answer.status, answer.json()) == (200, {"functions": ["hello", "plain"]})
    assert wsgi_request(app, method="DELETE").status == 405


def test_oversized_body_is_413(app: Any, wsgi_request: Any) -> None:
    assert wsgi_request(app, body=b" " * (4 * 1024 * 1024 + 1)).status == 413
