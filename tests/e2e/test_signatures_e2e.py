"""Signatures v2 against a real `durable start` process over real HTTP: a prod workspace is v2-only from
creation, a captured `POST /e` replayed is refused and starts no second run, and a proxy in front of the
app that serves run A's signed answer to run B's invoke fails only that attempt of B, which then
completes through the real app with its own output."""

from __future__ import annotations

import time
from pathlib import Path

import durable_sdk
import httpx
import orjson

from durable.core.signing import V2_HEADER, new_nonce, sign, sign_v2
from tests.e2e.procs import Proc, engine_env
from tests.harness import AppServer
from tests.integration.test_signatures import SwappingProxy


def _v2(app_id: str, key: str, payload: object) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(payload)
    header = sign_v2(key, "app", time.time_ns() // 1_000_000, new_nonce(), "", body)
    return body, {"content-type": "application/json", "x-durable-app": app_id, V2_HEADER: header}


def _runs(base: str, app_id: str) -> list[dict[str, object]]:
    return list(httpx.get(f"{base}/api/apps/{app_id}/runs", params={"limit": 500}).json()["items"])


def _wait(base: str, app_id: str, count: int, timeout: float = 30) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while True:
        done = [r for r in _runs(base, app_id) if r["status"] != "active"]
        if len(done) >= count:
            return done
        assert time.monotonic() < deadline, f"only {len(done)} of {count} runs ended"
        time.sleep(0.1)


def test_replays_and_moved_answers_are_refused_by_a_real_engine(dsn: str, tmp_path: Path) -> None:
    # One invoke per run, so the proxy's second request is run B's first invoke.
    @durable_sdk.function(id="charge", trigger={"event": "order.paid"})
    async def charge(event, step):  # type: ignore[no-untyped-def]
        return {"charged": event["data"]["order"]}

    engine = Proc("start", engine_env(dsn), tmp_path, "engine")
    try:
        engine.wait_healthy()
        base = f"http://127.0.0.1:{engine.port}"
        created = httpx.post(f"{base}/api/apps", json={"name": "billing", "environment": "prod"}).json()
        app_id, key = created["id"], created["signingKey"]
        [view] = [a for a in httpx.get(f"{base}/api/apps").json()["items"] if a["id"] == app_id]
        assert view["signatureMode"] == "v2" and key not in httpx.get(f"{base}/api/apps").text

        v1_body = orjson.dumps({"name": "order.paid", "data": {"order": "v1"}})
        v1 = httpx.post(
            f"{base}/e",
            content=v1_body,
            headers={"x-durable-app": app_id, "x-durable-signature": sign(v1_body, key)},
        )
        assert v1.status_code == 401 and "requires signatures v2" in v1.json()["error"]

        with AppServer([charge], key) as app, SwappingProxy(app.url) as proxy:
            body, headers = _v2(app_id, key, {"url": proxy.url, "functions": [charge.wire]})
            assert httpx.post(f"{base}/fn/sync", content=body, headers=headers).status_code == 200

            captured = _v2(app_id, key, {"name": "order.paid", "data": {"order": "A"}})
            assert httpx.post(f"{base}/e", content=captured[0], headers=captured[1]).status_code == 200
            [run_a] = _wait(base, app_id, 1)
            replay = httpx.post(f"{base}/e", content=captured[0], headers=captured[1])
            assert replay.status_code == 401 and "(replay)" in replay.json()["error"]

            body, headers = _v2(app_id, key, {"name": "order.paid", "data": {"order": "B"}})
            assert httpx.post(f"{base}/e", content=body, headers=headers).status_code == 200
            ended = _wait(base, app_id, 2)
            assert len(_runs(base, app_id)) == 2  # the replay started nothing
            assert proxy.served[:3] == ["forwarded", "swapped", "forwarded"]
        [run_b] = [r for r in ended if r["id"] != run_a["id"]]
        view_b = httpx.get(f"{base}/api/runs/{run_b['id']}").json()
        assert view_b["status"] == "completed" and view_b["output"] == {"charged": "B"}, view_b
        assert "the app's answer was signed for another invoke" in orjson.dumps(view_b).decode(), (
            proxy.served,
            view_b,
        )
    finally:
        engine.stop()
