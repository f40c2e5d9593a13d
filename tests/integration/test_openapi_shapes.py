"""The response models in /openapi.json describe what the API really sends (checked on real runs).

Every answer is validated with `extra="forbid"`, which pydantic applies to nested models as well: a key
the API sends but the model does not declare fails the test, so the document cannot fall behind the code.
"""

from __future__ import annotations

from typing import TypeVar

import durable_sdk
import httpx
from pydantic import BaseModel

from durable.api import schemas
from tests.harness import AppServer, Engine

M = TypeVar("M", bound=BaseModel)


def check(model: type[M], response: httpx.Response) -> M:
    """The answer as `model`, refusing any key the model does not declare, at any depth."""
    return model.model_validate(response.json(), extra="forbid")


async def test_documented_shapes_match_real_answers(engine: Engine) -> None:
    @durable_sdk.function(id="shape", trigger={"event": "shape"}, rate_limit={"limit": 1, "period": "1h"})
    async def shape(event, step):  # type: ignore[no-untyped-def]
        await step.run("a", lambda: {"x": 1})
        await step.sleep("nap", "10ms")
        return await step.run("b", lambda: [1, 2])

    # Never triggered: listed so that every option a function can carry is in the checked answer.
    options = [
        {
            "id": "gated",
            "trigger": {"event": "never"},
            "retries": 2,
            "concurrency": {"limit": 1, "key": "k"},
            "throttle": {"limit": 1, "period": "1s", "key": "k"},
            "priority": {"key": "p"},
        },
        {"id": "settled", "trigger": {"event": "never"}, "debounce": {"period": "1s", "timeout": "5s"}},
        {"id": "grouped", "trigger": {"cron": "0 3 * * *"}, "priority": 5},
        {"id": "bulk", "trigger": {"event": "never"}, "batch": {"maxSize": 2, "timeout": "1s", "key": "k"}},
    ]
    ws = await engine.workspace()
    created = await engine.api.post("/api/apps", json={"name": "other", "environment": "acc"})
    check(schemas.CreatedWorkspace, created)
    with AppServer([shape], ws.signing_key) as app:
        await engine.sync(ws, app.url, [shape, *options])
        await engine.start_workers()
        check(schemas.Ids, await engine.signed(ws, "/e", [{"name": "shape"}, {"name": "shape"}]))
        [run] = await engine.wait_runs(ws, 1)
    get = engine.api.get
    check(schemas.WorkspaceList, await get("/api/apps"))
    functions = check(schemas.FunctionList, await get(f"/api/apps/{ws.id}/functions"))
    assert {f.id for f in functions.items} == {"shape", "gated", "settled", "grouped", "bulk"}
    check(schemas.RunList, await get(f"/api/apps/{ws.id}/runs"))
    view = check(schemas.Run, await get(f"/api/runs/{run['id']}"))
    assert [s.type for s in view.steps] == ["run", "sleep", "run"]
    events = check(schemas.EventList, await get(f"/api/apps/{ws.id}/events"))
    assert any(e.outcomes for e in events.items)  # the rate-limited one
    check(schemas.Metrics, await get(f"/api/apps/{ws.id}/metrics"))
    check(schemas.Session, await get("/api/session"))
    check(schemas.RerunAnswer, await engine.api.post(f"/api/runs/{run['id']}/rerun", json={}))
    check(schemas.ErrorBody, await get("/api/runs/nope"))
