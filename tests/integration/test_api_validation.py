"""Bad input of every kind gets a 4xx naming the problem, and nothing partial is stored (§8.7)."""

from __future__ import annotations

import orjson
import pytest

from durable.core.signing import verify
from tests.harness import Engine, Workspace


async def _counts(engine: Engine) -> tuple[int, int, int]:
    async with engine.db.connection() as conn:
        raw = conn.raw
        return (
            await raw.fetchval("SELECT count(*) FROM events"),
            await raw.fetchval("SELECT count(*) FROM runs"),
            await raw.fetchval("SELECT count(*) FROM functions"),
        )


GOOD_FUNCTION = {"id": "fn", "trigger": {"event": "e"}}


@pytest.mark.parametrize(
    ("path", "raw", "needle"),
    [
        ("/e", b"{not json", "malformed JSON: "),
        ("/e", b'{"name": ""}', "name: must be a non-empty string, got ''"),
        ("/e", b'{"name": 5}', "name: must be a non-empty string, got 5"),
        ("/e", b'{"name": "x", "data": [1]}', "data: must be a JSON object, got an array"),
        ("/e", b'{"name": "x", "ts": "yesterday"}', "ts: must be integer epoch milliseconds"),
        ("/e", b'{"name": "x", "id": 7}', "id: must be a non-empty string, got 7"),
        ("/e", b'{"name": "x", "colour": "red"}', "unknown field 'colour'"),
        ("/e", b'[{"name": "ok"}, {"name": ""}]', "events[1].name: must be a non-empty string"),
        ("/e", b"[]", "events: the list must not be empty"),
        ("/e", b'"just a string"', "body must be an event object or a non-empty list of events"),
        (
            "/fn/sync",
            b'{"url": "http://x", "functions": [{"id": "f", "trigger": {"event": "e"}, '
            b'"throttle": {"limit": 1, "period": "soon"}}]}',
            "function 'f': throttle.period: invalid duration 'soon'",
        ),
        (
            "/fn/sync",
            b'{"url": "http://x", "functions": [{"id": "f", "trigger": {"cron": "61 * * * *"}}]}',
            "function 'f': trigger.cron: invalid cron expression '61 * * * *'",
        ),
        (
            "/fn/sync",
            b'{"url": "http://x", "functions": [{"id": "f", "trigger": {}}]}',
            "trigger: needs exactly one of event or cron",
        ),
        (
            "/fn/sync",
            b'{"url": "http://x", "functions": [{"id": "f", "trigger": {"event": "e"}, "retries": -1}]}',
            "function 'f': retries: must be an integer 0..20, got -1",
        ),
        (
            "/fn/sync",
            b'{"url": "http://x", "functions": [{"id": "f", "trigger": {"event": "e"}, "color": 1}]}',
            "function 'f': unknown field 'color'",
        ),
        ("/fn/sync", b'{"url": "not a url", "functions": []}', "url: must be the app's http(s) URL"),
        (
            "/fn/sync",
            b'{"url": "http://x", "functions": [{"id": "a", "trigger": {"event": "e"}}, '
            b'{"id": "a", "trigger": {"event": "e"}}]}',
            "function 'a': id: duplicate (also functions[0])",
        ),
    ],
)
async def test_bad_bodies_are_refused_with_the_field_named(
    engine: Engine, path: str, raw: bytes, needle: str
) -> None:
    ws = await engine.workspace()
    await engine.sync(ws, "http://127.0.0.1:9/app", [GOOD_FUNCTION])
    before = await _counts(engine)
    response = await engine.signed(ws, path, None, raw=raw)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "bad_request" and needle in body["error"]
    assert verify(response.content, ws.signing_key, response.headers["x-durable-signature"])
    assert await _counts(engine) == before


async def test_a_failed_sync_keeps_the_previous_function_set(engine: Engine) -> None:
    ws = await engine.workspace()
    await engine.sync(
        ws, "http://127.0.0.1:9/app", [GOOD_FUNCTION, {"id": "two", "trigger": {"event": "e2"}}]
    )
    bad = {"url": "http://127.0.0.1:9/app", "functions": [{"id": "only", "trigger": {"event": "e", "x": 1}}]}
    assert (await engine.signed(ws, "/fn/sync", bad)).status_code == 400
    listed = (await engine.api.get(f"/api/apps/{ws.id}/functions")).json()["items"]
    assert [f["id"] for f in listed] == ["fn", "two"]
    # A good sync makes the set exactly the new list.
    await engine.sync(ws, "http://127.0.0.1:9/app", [{"id": "three", "trigger": {"cron": "*/5 * * * *"}}])
    listed = (await engine.api.get(f"/api/apps/{ws.id}/functions")).json()["items"]
    assert [(f["id"], f["trigger"]) for f in listed] == [("three", {"cron": "*/5 * * * *"})]


async def test_signatures_are_required_and_checked(engine: Engine) -> None:
    ws = await engine.workspace()
    body = orjson.dumps({"name": "x"})
    cases = [
        {"content-type": "application/json", "x-durable-app": ws.id},  # no signature
        {"x-durable-app": ws.id, "x-durable-signature": "00" * 32},  # wrong signature
        {"x-durable-signature": "00" * 32},  # no app id
        {"x-durable-app": "app_missing", "x-durable-signature": "00" * 32},  # unknown app
    ]
    for headers in cases:
        response = await engine.api.post("/e", content=body, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["code"] == "unauthorized"
    tampered = await engine.api.post(
        "/e",
        content=orjson.dumps({"name": "y"}),
        headers={"x-durable-app": ws.id, "x-durable-signature": _sig(body, ws)},
    )
    assert tampered.status_code == 401
    assert await _counts(engine) == (0, 0, 0)


def _sig(body: bytes, ws: Workspace) -> str:
    from durable.core.signing import sign

    return sign(body, ws.signing_key)


async def test_oversized_bodies_get_413(engine: Engine) -> None:
    ws = await engine.workspace()
    big = orjson.dumps({"name": "big", "data": {"blob": "x" * (4 * 1024 * 1024)}})
    response = await engine.signed(ws, "/e", None, raw=big)
    assert response.status_code == 413 and "4 MiB" in response.json()["error"]
    assert await _counts(engine) == (0, 0, 0)


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"name": "", "environment": "dev"}, "name: must be a non-empty string"),
        ({"name": "x", "environment": "staging"}, "environment: must be one of dev, acc, prod"),
        ({"name": "x", "environment": "dev", "extra": 1}, "unknown field 'extra'"),
    ],
)
async def test_provisioning_validates(engine: Engine, payload: dict[str, object], needle: str) -> None:
    response = await engine.api.post("/api/apps", json=payload)
    assert response.status_code == 400 and needle in response.json()["error"]
    assert (await engine.api.get("/api/apps")).json()["items"] == []


async def test_provisioning_is_idempotent_per_name_and_environment(engine: Engine) -> None:
    first = await engine.workspace("billing", "prod")
    again = await engine.workspace("billing", "prod")
    other = await engine.workspace("billing", "acc")
    assert first == again and other.id != first.id
    assert len(first.signing_key) >= 32


async def test_read_api_errors(engine: Engine) -> None:
    assert (await engine.api.get("/api/runs/missing")).status_code == 404
    assert (await engine.api.get("/api/apps/missing/runs")).status_code == 404
    ws = await engine.workspace()
    response = await engine.api.get(f"/api/apps/{ws.id}/runs", params={"status": "weird"})
    assert response.status_code == 400 and "status" in response.json()["error"]
    response = await engine.api.get(f"/api/apps/{ws.id}/runs", params={"limit": 0})
    assert response.status_code == 400 and "limit" in response.json()["error"]
    assert (await engine.api.get("/healthz")).json()["ok"] is True
    spec = (await engine.api.get("/openapi.json")).json()
    for path in (
        "/e",
        "/fn/sync",
        "/api/apps",
        "/api/apps/{app_id}/runs",
        "/api/runs/{run_id}",
        "/api/runs/{run_id}/cancel",
        "/api/runs/{run_id}/rerun",
        "/healthz",
    ):
        assert path in spec["paths"], path
