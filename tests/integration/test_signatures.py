"""Signatures v2 on the engine (docs/protocol.md, "Signing"), attacked the way the review did: captured
requests replayed, an old timestamp, a proxy that moves one invoke's signed answer to another, v1 sent
to a v2-only workspace, and a key rotation end to end. Real Postgres, apps over real HTTP."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import durable_sdk
import httpx
import orjson
import uvicorn
from pydantic import BaseModel

from durable.api import schemas
from durable.core.signing import V1_HEADER, V2_HEADER, new_nonce, sign, sign_v2, verify, verify_v2
from tests.harness import AppServer, Engine, Workspace, free_port


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def v2_request(
    ws: Workspace, payload: Any, *, key: str | None = None, t: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """A request signed v2 by the app, as an SDK would send it (and as an attacker captures it)."""
    body = orjson.dumps(payload)
    nonce = new_nonce()
    header = sign_v2(key or ws.signing_key, "app", t if t is not None else now_ms(), nonce, "", body)
    return body, {"content-type": "application/json", "x-durable-app": ws.id, V2_HEADER: header}


def check(model: type[BaseModel], response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return model.model_validate(response.json(), extra="forbid")


async def events(engine: Engine, ws: Workspace) -> list[dict[str, Any]]:
    response = await engine.api.get(f"/api/apps/{ws.id}/events")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def workspace_view(engine: Engine, ws: Workspace) -> dict[str, Any]:
    items = (await engine.api.get("/api/apps")).json()["items"]
    return next(item for item in items if item["id"] == ws.id)


async def test_a_captured_post_e_replayed_is_refused_and_stores_nothing(engine: Engine) -> None:
    ws = await engine.workspace("shop", "prod")
    body, headers = v2_request(ws, {"name": "order.paid", "data": {"orderId": "o-1"}})
    first = await engine.api.post("/e", content=body, headers=headers)
    assert first.status_code == 200, first.text
    # The engine's answer is signed v2 for this request (r = its nonce); prod sends no v1.
    request_nonce = headers[V2_HEADER].split(",")[1].removeprefix("n=")
    verdict = verify_v2(
        first.headers[V2_HEADER], first.content, [ws.signing_key], "engine", now_ms(), request_nonce
    )
    assert verdict.ok, verdict
    assert V1_HEADER not in first.headers
    for _ in range(3):
        replay = await engine.api.post("/e", content=body, headers=headers)
        assert replay.status_code == 401
        assert "already received (replay)" in replay.json()["error"]
    assert [e["name"] for e in await events(engine, ws)] == ["order.paid"]


async def test_concurrent_replays_store_one_event(engine: Engine) -> None:
    ws = await engine.workspace("shop", "prod")
    body, headers = v2_request(ws, {"name": "order.paid"})
    answers = await asyncio.gather(*[engine.api.post("/e", content=body, headers=headers) for _ in range(8)])
    assert sorted(a.status_code for a in answers) == [200] + [401] * 7
    assert len(await events(engine, ws)) == 1


async def test_an_old_sync_replayed_does_not_revert_the_workspace(engine: Engine) -> None:
    ws = await engine.workspace("shop", "prod")
    old_functions = [{"id": "old", "trigger": {"event": "a"}}]
    old_body, old_headers = v2_request(ws, {"url": "http://127.0.0.1:1/old", "functions": old_functions})
    assert (await engine.api.post("/fn/sync", content=old_body, headers=old_headers)).status_code == 200
    new_body, new_headers = v2_request(
        ws, {"url": "http://127.0.0.1:1/new", "functions": [{"id": "new", "trigger": {"event": "b"}}]}
    )
    assert (await engine.api.post("/fn/sync", content=new_body, headers=new_headers)).status_code == 200
    replay = await engine.api.post("/fn/sync", content=old_body, headers=old_headers)
    assert replay.status_code == 401 and "(replay)" in replay.json()["error"]
    assert (await workspace_view(engine, ws))["url"] == "http://127.0.0.1:1/new"
    functions = (await engine.api.get(f"/api/apps/{ws.id}/functions")).json()["items"]
    assert [f["id"] for f in functions] == ["new"]


async def test_a_timestamp_six_minutes_old_is_refused(engine: Engine) -> None:
    ws = await engine.workspace("shop", "dev")
    t = now_ms() - 6 * 60 * 1000
    body, headers = v2_request(ws, {"name": "late"}, t=t)
    refused = await engine.api.post("/e", content=body, headers=headers)
    assert refused.status_code == 401
    error = refused.json()["error"]
    assert f"t={t}" in error and "stale" in error and "5 minutes" in error
    ahead_body, ahead_headers = v2_request(ws, {"name": "early"}, t=now_ms() + 6 * 60 * 1000)
    ahead = await engine.api.post("/e", content=ahead_body, headers=ahead_headers)
    assert ahead.status_code == 401 and "in the future" in ahead.json()["error"]
    assert await events(engine, ws) == []


async def test_a_bad_v2_signature_is_refused_naming_why(engine: Engine) -> None:
    ws = await engine.workspace("shop", "dev")
    body, headers = v2_request(ws, {"name": "x"}, key="not-the-key")
    wrong = await engine.api.post("/e", content=body, headers=headers)
    assert wrong.status_code == 401 and "(mac)" in wrong.json()["error"]
    # A signature with r (an answer) is not a request, even with the right key.
    body = orjson.dumps({"name": "x"})
    header = sign_v2(ws.signing_key, "app", now_ms(), new_nonce(), new_nonce(), body)
    headers = {"content-type": "application/json", "x-durable-app": ws.id, V2_HEADER: header}
    answer = await engine.api.post("/e", content=body, headers=headers)
    assert answer.status_code == 401 and "(reply)" in answer.json()["error"]
    # The engine's own signature (sender engine) is refused as the app's.
    header = sign_v2(ws.signing_key, "engine", now_ms(), new_nonce(), "", body)
    headers[V2_HEADER] = header
    reflected = await engine.api.post("/e", content=body, headers=headers)
    assert reflected.status_code == 401 and "(mac)" in reflected.json()["error"]
    headers[V2_HEADER] = "t=soon"
    malformed = await engine.api.post("/e", content=body, headers=headers)
    assert malformed.status_code == 401 and "malformed" in malformed.json()["error"]
    # v2 present is the one checked even in compat mode: a good v1 beside a bad v2 is refused.
    headers[V1_HEADER] = sign(body, ws.signing_key)
    assert (await engine.api.post("/e", content=body, headers=headers)).status_code == 401
    assert await events(engine, ws) == []


async def test_v1_alone_is_refused_by_a_v2_workspace_and_accepted_by_a_dev_one(engine: Engine) -> None:
    prod = await engine.workspace("billing", "prod")
    dev = await engine.workspace("billing", "dev")
    assert (await workspace_view(engine, prod))["signatureMode"] == "v2"  # v2-only from creation
    assert (await workspace_view(engine, dev))["signatureMode"] == "compat"
    refused = await engine.signed(prod, "/e", {"name": "x"}, v2=False)
    assert refused.status_code == 401
    assert refused.json()["error"].startswith(
        "this workspace requires signatures v2 (x-durable-signature-v2); "
    )
    assert await events(engine, prod) == []
    # The seed-port path: v1 only, on a dev workspace; the answer is signed v1 too.
    accepted = await engine.signed(dev, "/e", {"name": "x"}, v2=False)
    assert accepted.status_code == 200, accepted.text
    assert verify(accepted.content, dev.signing_key, accepted.headers[V1_HEADER])
    assert V2_HEADER not in accepted.headers  # nothing to bind a v2 answer to
    # v2 to a compat workspace: answered with both.
    body, headers = v2_request(dev, {"name": "y"})
    both = await engine.api.post("/e", content=body, headers=headers)
    assert both.status_code == 200 and V1_HEADER in both.headers and V2_HEADER in both.headers


async def test_the_signature_mode_can_be_switched(engine: Engine) -> None:
    dev = await engine.workspace("shop", "dev")
    switched = check(
        schemas.SignatureMode, await engine.api.patch(f"/api/apps/{dev.id}", json={"signatureMode": "v2"})
    )
    assert switched.signatureMode == "v2"
    refused = await engine.signed(dev, "/e", {"name": "x"}, v2=False)
    assert refused.status_code == 401 and "requires signatures v2" in refused.json()["error"]
    assert (await engine.signed(dev, "/e", {"name": "x"}, v2=True)).status_code == 200
    back = await engine.api.patch(f"/api/apps/{dev.id}", json={"signatureMode": "compat"})
    assert back.status_code == 200 and back.json()["signatureMode"] == "compat"
    assert (await engine.signed(dev, "/e", {"name": "x"}, v2=False)).status_code == 200
    bad = await engine.api.patch(f"/api/apps/{dev.id}", json={"signatureMode": "v3"})
    assert bad.status_code == 400 and "signatureMode" in bad.json()["error"]
    unknown = await engine.api.patch(f"/api/apps/{dev.id}", json={"name": "other"})
    assert unknown.status_code == 400 and "'name'" in unknown.json()["error"]
    missing = await engine.api.patch("/api/apps/app_nope", json={"signatureMode": "v2"})
    assert missing.status_code == 404


class SwappingProxy:
    """An HTTP proxy in front of the app that keeps the first answer it sees (status, headers, body) and
    serves it (less the `strip` headers) to the next `swaps` invokes instead of forwarding them."""

    def __init__(self, target: str, *, swaps: int = 1, strip: tuple[str, ...] = ()) -> None:
        self.target = target
        self.swaps = swaps
        self.strip = strip
        self.kept: tuple[int, dict[str, str], bytes] | None = None
        self.served: list[str] = []  # "forwarded" or "swapped", per invoke
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api/durable"
        config = uvicorn.Config(
            self.asgi,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    async def asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.kept is not None and self.swaps > 0:
            self.swaps -= 1
            self.served.append("swapped")
            status, kept_headers, answer = self.kept
            headers = {k: v for k, v in kept_headers.items() if k not in self.strip}
        else:
            request_headers = {
                k.decode(): v.decode() for k, v in scope["headers"] if k.decode().startswith("x-")
            }
            async with httpx.AsyncClient() as client:
                response = await client.post(
                    self.target, content=body, headers={**request_headers, "content-type": "application/json"}
                )
            status, answer = response.status_code, response.content
            headers = {k: v for k, v in response.headers.items() if k.startswith("x-durable")}
            if self.kept is None:
                self.kept = (status, headers, answer)
            self.served.append("forwarded")
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")]
                + [(k.encode(), v.encode()) for k, v in headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    def __enter__(self) -> SwappingProxy:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the proxy did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)


@durable_sdk.function(id="echo", trigger={"event": "order.paid"})
async def echo(event, step):  # type: ignore[no-untyped-def]
    return {"order": event["data"]["order"]}


async def swapped_run(engine: Engine, environment: str, strip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run A completes through the proxy, which then serves A's signed `done` answer to run B's invoke.
    Returns run B once it ended."""
    ws = await engine.workspace("swap", environment)
    with AppServer([echo], ws.signing_key) as app, SwappingProxy(app.url, strip=strip) as proxy:
        await engine.sync(ws, proxy.url, [echo])
        await engine.start_workers()
        await engine.send(ws, "order.paid", {"order": "A"})
        [run_a] = await engine.wait_runs(ws, 1)
        assert (await engine.run(run_a["id"]))["output"] == {"order": "A"}
        await engine.send(ws, "order.paid", {"order": "B"})
        runs = await engine.wait_runs(ws, 2, timeout=20)
        assert proxy.served[:3] == ["forwarded", "swapped", "forwarded"]
    [run_b] = [r for r in runs if r["id"] != run_a["id"]]
    return await engine.run(run_b["id"])


async def test_an_answer_moved_to_another_invoke_is_refused(engine: Engine) -> None:
    run_b = await swapped_run(engine, "prod")
    assert run_b["status"] == "completed" and run_b["output"] == {"order": "B"}  # never A's output
    errors = run_b.get("errors") or [e for s in run_b["steps"] for e in s.get("errors", [])]
    messages = [e["message"] if isinstance(e, dict) else str(e) for e in errors]
    assert any("the app's answer was signed for another invoke" in m for m in messages), run_b


async def test_in_compat_mode_a_moved_answer_with_its_v2_header_is_refused_too(engine: Engine) -> None:
    run_b = await swapped_run(engine, "dev")
    assert run_b["status"] == "completed" and run_b["output"] == {"order": "B"}
    assert "signed for another invoke" in orjson.dumps(run_b).decode()


async def test_a_v2_workspace_refuses_an_answer_stripped_to_v1(engine: Engine) -> None:
    run_b = await swapped_run(engine, "prod", strip=(V2_HEADER,))
    assert run_b["output"] == {"order": "B"}
    assert "requires signatures v2" in orjson.dumps(run_b).decode()


async def test_key_rotation(engine: Engine) -> None:
    ws = await engine.workspace("rotating", "dev")
    old_key = ws.signing_key

    @durable_sdk.function(id="hello", trigger={"event": "hello"})
    async def hello(event, step):  # type: ignore[no-untyped-def]
        return "hi"

    rotated = check(schemas.RotatedKey, await engine.api.post(f"/api/apps/{ws.id}/keys/rotate"))
    new_key = rotated.signingKey
    assert new_key != old_key and new_key.startswith("dur_sk_")
    again = await engine.api.post(f"/api/apps/{ws.id}/keys/rotate")
    assert again.status_code == 409 and "keys/previous" in again.json()["error"]
    view = await workspace_view(engine, ws)
    assert view["rotating"] is True
    # No list or GET shows a key.
    for path in ("/api/apps", f"/api/apps/{ws.id}/functions", f"/api/apps/{ws.id}/runs"):
        text = (await engine.api.get(path)).text
        assert old_key not in text and new_key not in text, path

    # While rotating: either key is accepted, v1 and v2 alike.
    for key in (old_key, new_key):
        for v2 in (False, True):
            sent = await engine.signed(ws, "/e", {"name": "ping"}, key=key, v2=v2)
            assert sent.status_code == 200, (key, v2, sent.text)
    # The engine still signs with the old key: an app that only knows the old key runs.
    with AppServer([hello], old_key) as app:
        await engine.sync(ws, app.url, [hello])
        await engine.start_workers()
        await engine.send(ws, "hello")
        [run] = await engine.wait_runs(ws, 1)
        text = (await engine.api.get(f"/api/runs/{run['id']}")).text
        assert old_key not in text and new_key not in text
        await engine.stop_workers()

    removed = check(schemas.PreviousKeyRemoved, await engine.api.delete(f"/api/apps/{ws.id}/keys/previous"))
    assert removed.removed is True
    assert (await workspace_view(engine, ws))["rotating"] is False
    for v2 in (False, True):
        refused = await engine.signed(ws, "/e", {"name": "ping"}, key=old_key, v2=v2)
        assert refused.status_code == 401, refused.text
        assert (await engine.signed(ws, "/e", {"name": "ping"}, key=new_key, v2=v2)).status_code == 200
    # Now the engine signs with the new key: an app with only the new key runs.
    ws_new = Workspace(ws.id, new_key, ws.environment)
    with AppServer([hello], new_key) as app:
        await engine.sync(ws_new, app.url, [hello])
        await engine.start_workers()
        await engine.send(ws_new, "hello")
        await engine.wait_runs(ws_new, 2)
    again_removed = await engine.api.delete(f"/api/apps/{ws.id}/keys/previous")
    assert again_removed.status_code == 200 and again_removed.json()["removed"] is False
    assert (await engine.api.post("/api/apps/app_nope/keys/rotate")).status_code == 404
    assert (await engine.api.delete("/api/apps/app_nope/keys/previous")).status_code == 404


async def test_nonces_are_forgotten_after_ten_minutes_and_pruned(engine: Engine) -> None:
    ws = await engine.workspace("shop", "dev")
    body, headers = v2_request(ws, {"name": "x"})
    assert (await engine.api.post("/e", content=body, headers=headers)).status_code == 200
    nonce = headers[V2_HEADER].split(",")[1].removeprefix("n=")
    async with engine.db.connection() as conn:
        await engine.db.execute("signature_nonces_prune")
        count = "SELECT count(*) FROM signature_nonces WHERE app_id = $1"
        assert await conn.raw.fetchval(count, ws.id) == 1  # fresh: kept
        await conn.raw.execute("UPDATE signature_nonces SET seen_at = now() - interval '11 minutes'")
        # Remembered no longer: the same nonce (in a fresh signature) is accepted again, and recorded anew.
        header = sign_v2(ws.signing_key, "app", now_ms(), nonce, "", body)
        again = await engine.api.post("/e", content=body, headers={**headers, V2_HEADER: header})
        assert again.status_code == 200, again.text
        assert (
            await engine.api.post("/e", content=body, headers={**headers, V2_HEADER: header})
        ).status_code == 401
        await conn.raw.execute("UPDATE signature_nonces SET seen_at = now() - interval '11 minutes'")
        await engine.db.execute("signature_nonces_prune")
        assert await conn.raw.fetchval(count, ws.id) == 0
