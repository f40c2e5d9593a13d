"""The response models in /openapi.json describe what the API really sends (checked on real runs)."""

from __future__ import annotations

import durable_sdk

from durable.api import schemas
from tests.harness import AppServer, Engine


async def test_documented_shapes_match_real_answers(engine: Engine) -> None:
    @durable_sdk.function(id="shape", trigger={"event": "shape"}, rate_limit={"limit": 1, "period": "1h"})
    async def shape(event, step):  # type: ignore[no-untyped-def]
        await step.run("a", lambda: {"x": 1})
        await step.sleep("nap", "10ms")
        return await step.run("b", lambda: [1, 2])

    ws = await engine.workspace()
    created = await engine.api.post("/api/apps", json={"name": "other", "environment": "acc"})
    schemas.CreatedWorkspace.model_validate(created.json())
    with AppServer([shape], ws.signing_key) as app:
        await engine.sync(ws, app.url, [shape])
        await engine.start_workers()
        schemas.Ids.model_validate(
            (await engine.signed(ws, "/e", [{"name": "shape"}, {"name": "shape"}])).json()
        )
        [run] = await engine.wait_runs(ws, 1)
    get = engine.api.get
    schemas.WorkspaceList.model_validate((await get("/api/apps")).json())
    schemas.FunctionList.model_validate((await get(f"/api/apps/{ws.id}/functions")).json())
    schemas.RunList.model_validate((await get(f"/api/apps/{ws.id}/runs")).json())
    view = schemas.Run.model_validate((await get(f"/api/runs/{run['id']}")).json())
    assert [s.type for s in view.steps] == ["run", "sleep", "run"]
    events = schemas.EventList.model_validate((await get(f"/api/apps/{ws.id}/events")).json())
    assert any(e.outcomes for e in events.items)  # the rate-limited one
    schemas.Metrics.model_validate((await get(f"/api/apps/{ws.id}/metrics")).json())
    schemas.Session.model_validate((await get("/api/session")).json())
    schemas.RerunAnswer.model_validate(
        (await engine.api.post(f"/api/runs/{run['id']}/rerun", json={})).json()
    )
    error = await get("/api/runs/nope")
    schemas.ErrorBody.model_validate(error.json())
