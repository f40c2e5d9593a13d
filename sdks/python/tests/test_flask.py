"""The Flask helper: ``durable_sdk.flask.blueprint`` registered on a real Flask app."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

import durable_sdk
from durable_sdk import _signing, _step

flask = pytest.importorskip("flask")  # a test-only dependency
from durable_sdk.flask import blueprint  # noqa: E402

threads: dict[str, int] = {}


@durable_sdk.function(id="hello", trigger={"event": "demo.hello"})
async def hello(event: Any, step: Any) -> Any:
    await step.sleep("pause", "1s")
    return await step.run("greet", lambda: f"hi {event['data']['name']}")


@durable_sdk.function(id="plain", trigger={"event": "demo.plain"})
def plain(event: Any, step: Any) -> Any:
    threads["sync"] = threading.get_ident()
    return step.run("greet", lambda: "hi")


def invoke_body(function_id: str, steps: dict[str, Any] | None = None) -> bytes:
    event = {"id": "e1", "name": "demo.hello", "data": {"name": "Zoë"}, "ts": 1767225600000}
    body = {"runId": "r1", "functionId": function_id, "attempt": 1, "event": event, "steps": steps or {}}
    return json.dumps(body).encode()


def make_client(key: str, **kwargs: Any) -> Any:
    app = flask.Flask(__name__)
    app.register_blueprint(blueprint([hello, plain], signing_key=key, **kwargs))

    @app.get("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    return app.test_client()


def post(client: Any, key: str, body: bytes, path: str = "/api/durable") -> Any:
    nonce = _signing.new_nonce()
    signature = durable_sdk.sign_v2(body, key, "engine", _step._now_ms(), n=nonce)
    answer = client.post(path, data=body, headers={"x-durable-signature-v2": signature})
    assert answer.headers["x-durable-signature"] == durable_sdk.sign(answer.data, key)
    assert _signing.parse_v2(answer.headers["x-durable-signature-v2"]).r == nonce
    assert answer.headers["content-type"] == "application/json"
    return answer


def test_async_handler_runs_under_asyncio_run(key: str) -> None:
    answer = post(make_client(key), key, invoke_body("hello", {"pause": {"type": "sleep"}}))
    expected = (
        '{"op":"checkpoint","steps":[{"id":"greet","data":"hi Zoë"}],"then":{"op":"done","data":"hi Zoë"}}'
    ).encode()
    assert (answer.status_code, answer.data) == (200, expected)


def test_plain_handler_runs_in_the_request_thread(key: str) -> None:
    threads.clear()
    answer = post(make_client(key), key, invoke_body("plain", {"greet": {"type": "run", "data": "x"}}))
    assert (answer.status_code, answer.get_json()) == (200, {"op": "done", "data": "x"})
    assert threads == {"sync": threading.get_ident()}


def test_bad_signature_is_401(key: str, bad_signature: Any) -> None:
    headers, error = bad_signature
    threads.clear()
    answer = make_client(key).post("/api/durable", data=invoke_body("plain"), headers=headers)
    assert answer.status_code == 401
    assert answer.get_json()["error"].startswith(error)
    assert durable_sdk.verify(answer.data, key, answer.headers["x-durable-signature"])
    assert threads == {}


def test_custom_prefix_get_and_the_rest_of_the_app(key: str) -> None:
    client = make_client(key, url_prefix="/hooks/durable")
    assert post(client, key, invoke_body("plain"), path="/hooks/durable").get_json()["op"] == "checkpoint"
    assert client.get("/hooks/durable").get_json() == {"functions": ["hello", "plain"]}
    assert client.post("/api/durable").status_code == 404
    assert client.get("/health").get_json() == {"ok": True}
    assert client.delete("/hooks/durable").status_code == 405


def test_unknown_function_and_oversized_body(key: str) -> None:
    client = make_client(key)
    assert post(client, key, invoke_body("nope")).status_code == 404
    assert client.post("/api/durable", data=b" " * (4 * 1024 * 1024 + 1)).status_code == 413
