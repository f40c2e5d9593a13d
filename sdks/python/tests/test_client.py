"""Client.sync / send / send_many against a tiny engine stand-in that checks signatures and signs answers."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import durable_sdk

KEY = "signkey-test-1"


class FakeEngine(http.server.ThreadingHTTPServer):
    """Records every request; answers like the engine would, or misbehaves as told by ``mode``."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict[str, Any]] = []
        self.mode = "ok"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    server: FakeEngine

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if not durable_sdk.verify(body, KEY, self.headers["x-durable-signature"]):
            return self.answer(401, {"error": "wrong x-durable-signature"})
        try:  # the request, as the engine checks it: from the app, fresh, no r
            signed = durable_sdk.verify_v2(body, KEY, self.headers["x-durable-signature-v2"], "app", now_ms())
        except durable_sdk.SignatureError as exc:
            return self.answer(401, {"error": str(exc)})
        request = {
            "path": self.path,
            "json": json.loads(body),
            "app": self.headers["x-durable-app"],
            "content-type": self.headers["content-type"],
            "nonce": signed.n,
        }
        self.server.requests.append(request)
        mode = self.server.mode
        if mode == "refuse":
            return self.answer(422, {"error": "function 'hello': throttle.period: invalid duration 'x'"})
        payload = {
            "ids": ["evt-1", "evt-2"][: len(request["json"]) if isinstance(request["json"], list) else 1]
        }
        if self.path == "/fn/sync":
            payload = {"functions": [f["id"] for f in request["json"]["functions"]]}
        if mode in ("ok", "v1-only", "wrong", "missing"):  # an engine from before v2, or a broken one
            signature = {"ok": None, "v1-only": None, "wrong": "0" * 64, "missing": ""}[mode]
            return self.answer(
                200, payload, signature=signature, reply_to=request["nonce"] if mode == "ok" else None
            )
        key, sender, t, reply_to = {  # v2 answers that must be refused
            "another-request": (KEY, "engine", now_ms(), "another-request-01"),
            "no-r": (KEY, "engine", now_ms(), ""),
            "from-the-app": (KEY, "app", now_ms(), request["nonce"]),
            "stale": (KEY, "engine", now_ms() - 5 * 60 * 1000 - 1, request["nonce"]),
            "wrong-key": ("other", "engine", now_ms(), request["nonce"]),
            "next-key": ("the-next-key", "engine", now_ms(), request["nonce"]),
        }[mode]
        self.answer(200, payload, v2=(key, sender, t, reply_to))

    def answer(
        self,
        status: int,
        payload: Any,
        signature: str | None = None,
        reply_to: str | None = None,
        v2: tuple[str, str, int, str] | None = None,
    ) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        if signature != "":
            self.send_header("x-durable-signature", signature or durable_sdk.sign(body, KEY))
        if reply_to is not None:
            v2 = (KEY, "engine", now_ms(), reply_to)
        if v2 is not None:
            key, sender, t, r = v2
            self.send_header("x-durable-signature-v2", durable_sdk.sign_v2(body, key, sender, t, r=r))
        self.end_headers()
        self.wfile.write(body)


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def engine() -> Iterator[FakeEngine]:
    server = FakeEngine()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def client(engine: FakeEngine) -> durable_sdk.Client:
    return durable_sdk.Client(
        base_url=engine.url + "/",
        app_id="app-1",
        signing_key=KEY,
        app_url="http://localhost:4000/api/durable",
    )


@durable_sdk.function(
    id="hello",
    trigger={"event": "demo.hello"},
    concurrency={"limit": 2, "key": "tenantId"},
    rate_limit={"limit": 5, "period": "1m"},
    batch={"max_size": 10, "timeout": dt.timedelta(seconds=5)},
)
async def hello(event: Any, step: Any) -> Any:
    return await step.run("greet", lambda: "hi")


def test_sync_posts_the_wire_form(client: durable_sdk.Client, engine: FakeEngine) -> None:
    assert client.sync([hello]) == {"functions": ["hello"]}
    (request,) = engine.requests
    assert request["path"] == "/fn/sync"
    assert request["app"] == "app-1" and request["content-type"] == "application/json"
    assert request["json"] == {
        "url": "http://localhost:4000/api/durable",
        "functions": [
            {
                "id": "hello",
                "trigger": {"event": "demo.hello"},
                "concurrency": {"limit": 2, "key": "tenantId"},
                "rateLimit": {"limit": 5, "period": "1m"},
                "batch": {"maxSize": 10, "timeout": 5000},
            }
        ],
    }


def test_send_one_event(client: durable_sdk.Client, engine: FakeEngine) -> None:
    assert client.send("demo.hello", {"name": "world"}) == ["evt-1"]
    assert client.send("demo.hello", id="order-1", ts=1767225600000) == ["evt-1"]
    assert [r["json"] for r in engine.requests] == [
        {"name": "demo.hello", "data": {"name": "world"}},
        {"name": "demo.hello", "data": {}, "id": "order-1", "ts": 1767225600000},
    ]
    assert {r["path"] for r in engine.requests} == {"/e"}


def test_sync_sends_each_failure_handler_as_a_function_of_its_own(
    client: durable_sdk.Client, engine: FakeEngine
) -> None:
    @durable_sdk.function(
        id="ship",
        trigger={"event": "order.paid"},
        on_failure=lambda event, step: None,
        cancel_on=[{"event": "order.cancelled", "match": "orderId", "timeout": "7d"}],
        idempotency="orderId",
        singleton={"key": "userId", "mode": "cancel"},
    )
    def ship(event: Any, step: Any) -> Any:
        return None

    charge = durable_sdk.function(id="charge", trigger=None)(ship.handler)
    assert client.sync([ship, charge]) == {"functions": ["ship", "ship:failure", "charge"]}
    assert engine.requests[0]["json"]["functions"] == [
        {
            "id": "ship",
            "trigger": {"event": "order.paid"},
            "cancelOn": [{"event": "order.cancelled", "match": "orderId", "timeout": "7d"}],
            "idempotency": "orderId",
            "singleton": {"mode": "cancel", "key": "userId"},
            "onFailure": "ship:failure",
        },
        {"id": "ship:failure", "name": "ship (failure)", "trigger": None},
        {"id": "charge", "trigger": None},
    ]


def test_send_carries_an_idempotency_key(client: durable_sdk.Client, engine: FakeEngine) -> None:
    assert client.send("order.paid", {"orderId": "o1"}, idempotency_key="pay-o1") == ["evt-1"]
    client.send_many([{"name": "a", "idempotencyKey": "k"}, {"name": "b"}])
    assert [r["json"] for r in engine.requests] == [
        {"name": "order.paid", "data": {"orderId": "o1"}, "idempotencyKey": "pay-o1"},
        [{"name": "a", "data": {}, "idempotencyKey": "k"}, {"name": "b", "data": {}}],
    ]
    for bad in ("", "k" * 257, 5):
        with pytest.raises(ValueError, match="idempotency_key must be a string of 1 to 256 characters"):
            client.send("a", idempotency_key=bad)  # type: ignore[arg-type]
    assert len(engine.requests) == 2


def test_send_many_posts_a_list(client: durable_sdk.Client, engine: FakeEngine) -> None:
    ids = client.send_many([{"name": "a.b", "data": {"n": 1}}, {"name": "a.c", "id": "x"}])
    assert ids == ["evt-1", "evt-2"]
    assert engine.requests[0]["json"] == [
        {"name": "a.b", "data": {"n": 1}},
        {"name": "a.c", "data": {}, "id": "x"},
    ]


@pytest.mark.parametrize("mode", ["wrong", "missing"])
def test_answer_without_a_valid_signature_raises(
    client: durable_sdk.Client, engine: FakeEngine, mode: str
) -> None:
    engine.mode = mode
    with pytest.raises(durable_sdk.DurableError, match=f"{mode} x-durable-signature"):
        client.send("demo.hello")


def test_requests_carry_fresh_nonces_and_answers_are_bound_to_them(
    client: durable_sdk.Client, engine: FakeEngine
) -> None:
    client.send("demo.hello")
    client.send("demo.hello")
    nonces = [r["nonce"] for r in engine.requests]
    assert len(set(nonces)) == 2 and all(len(n) == 32 for n in nonces)


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("another-request", "reply"),  # a signed answer moved from another request
        ("no-r", "reply"),
        ("from-the-app", "mac"),  # the app's own signature turned around
        ("stale", "stale"),
        ("wrong-key", "mac"),
    ],
)
def test_a_v2_answer_not_made_for_this_request_raises(
    client: durable_sdk.Client, engine: FakeEngine, mode: str, reason: str
) -> None:
    engine.mode = mode
    with pytest.raises(
        durable_sdk.DurableError,
        match=rf"^POST /e: the engine's answer: x-durable-signature-v2 refused \({reason}\)",
    ):
        client.send("demo.hello")


def test_an_engine_sending_only_v1_is_accepted(client: durable_sdk.Client, engine: FakeEngine) -> None:
    engine.mode = "v1-only"
    assert client.send("demo.hello") == ["evt-1"]


def test_the_fallback_key_verifies_answers_while_rotating(engine: FakeEngine) -> None:
    engine.mode = "next-key"
    client = durable_sdk.Client(base_url=engine.url, app_id="app-1", signing_key=KEY)
    with pytest.raises(durable_sdk.DurableError, match=r"refused \(mac\)"):
        client.send("demo.hello")
    rotating = durable_sdk.Client(
        base_url=engine.url, app_id="app-1", signing_key=KEY, signing_key_fallback="the-next-key"
    )
    assert rotating.send("demo.hello") == ["evt-1"]


def test_non_2xx_raises_with_the_engine_message(client: durable_sdk.Client, engine: FakeEngine) -> None:
    engine.mode = "refuse"
    with pytest.raises(durable_sdk.DurableError, match=r"422 function 'hello': throttle\.period") as caught:
        client.sync([hello])
    assert caught.value.status == 422


def test_wrong_key_is_refused_by_the_engine(engine: FakeEngine) -> None:
    client = durable_sdk.Client(base_url=engine.url, app_id="app-1", signing_key="other")
    with pytest.raises(durable_sdk.DurableError, match="401 wrong x-durable-signature"):
        client.send("demo.hello")
    assert engine.requests == []


def test_unreachable_engine_raises(engine: FakeEngine) -> None:
    url = engine.url
    engine.shutdown()
    engine.server_close()
    with pytest.raises(durable_sdk.DurableError, match="cannot reach the engine"):
        durable_sdk.Client(base_url=url, app_id="a", signing_key=KEY, timeout=2).send("x")


def test_bad_calls_fail_before_any_request(client: durable_sdk.Client, engine: FakeEngine) -> None:
    with pytest.raises(ValueError, match="app_url"):
        durable_sdk.Client(base_url=engine.url, app_id="a", signing_key=KEY).sync([hello])
    with pytest.raises(ValueError, match="event name"):
        client.send("")
    assert engine.requests == []
