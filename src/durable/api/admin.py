"""The read and admin API under /api (JSON; admin token when DURABLE_ADMIN_TOKEN is set)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from durable.api import schemas
from durable.api.auth import check_admin, client_address, sign_in, sign_out
from durable.api.http import JSON, ingest_and_hand_off, read_body
from durable.api.stream import stream
from durable.config import is_loopback
from durable.core.events import parse_events
from durable.core.jsonvalue import parse_json, refuse_nul
from durable.core.times import iso
from durable.engine import apps, control, metrics, runs
from durable.errors import Forbidden, InvalidInput, Unauthorized


async def require_admin(request: Request) -> None:
    await check_admin(request, request.app.state.settings.admin_token)


router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)], tags=["admin"])
public = APIRouter(prefix="/api", tags=["auth"])


def _body_schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": bool(required),
            "content": {
                "application/json": {
                    "schema": {"type": "object", "properties": properties, "required": required}
                }
            },
        }
    }


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await read_body(request)
    payload = parse_json(raw) if raw.strip() else {}
    if not isinstance(payload, dict):
        raise InvalidInput("body: must be a JSON object")
    refuse_nul(payload, "body")
    return payload


@public.post(
    "/login",
    responses=schemas.answers(schemas.Ok),
    summary="Exchange the admin token for a server-side session (httpOnly cookie; 5 failures/min/client)",
    openapi_extra=_body_schema({"token": {"type": "string"}}, ["token"]),
)
async def login(request: Request) -> Response:
    payload = await _json_object(request)
    unknown = sorted(set(payload) - {"token"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r} (expected token)")
    given = payload.get("token")
    if not isinstance(given, str):
        raise InvalidInput("token: must be a string")
    response = JSON({"ok": True})
    await sign_in(request, given, response)
    return response


@public.get(
    "/session",
    responses=schemas.answers(schemas.Session),
    summary="Whether sign-in is required, and whether this request is signed in",
)
async def session(request: Request) -> Response:
    token = request.app.state.settings.admin_token
    try:
        await check_admin(request, token)
        signed_in = True
    except Unauthorized:
        signed_in = False
    return JSON({"authRequired": token is not None, "signedIn": signed_in})


@public.post(
    "/logout", responses=schemas.answers(schemas.Ok), summary="End the session server-side, clear its cookie"
)
async def logout(request: Request) -> Response:
    response = JSON({"ok": True})
    await sign_out(request, response)
    return response


@router.post(
    "/apps",
    responses=schemas.answers(schemas.CreatedWorkspace),
    summary="Create a workspace (idempotent per name × environment; environment defaults to DURABLE_ENV)",
    openapi_extra=_body_schema(
        {"name": {"type": "string"}, "environment": {"type": "string", "enum": ["dev", "acc", "prod"]}},
        ["name"],
    ),
)
async def create_app(request: Request) -> Response:
    # The answer holds the workspace's signing key, existing workspaces included. With a token set the
    # router's dependency has checked it; with none, only this machine may ask (the API is open).
    address = client_address(request)
    if request.app.state.settings.admin_token is None and not is_loopback(address):
        raise Forbidden(
            f"provisioning from {address} is refused: with no DURABLE_ADMIN_TOKEN only loopback clients "
            "may create a workspace or fetch its signing key; set DURABLE_ADMIN_TOKEN and send it as "
            "Authorization: Bearer"
        )
    payload = await _json_object(request)
    unknown = sorted(set(payload) - {"name", "environment"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r} (expected name and environment)")
    # An app provisioning itself may leave the environment out: DURABLE_ENV decides (default dev).
    environment = payload.get("environment", request.app.state.settings.env)
    row = await apps.provision(request.app.state.db, payload.get("name"), environment)
    return JSON(
        {
            "id": row["id"],
            "name": row["name"],
            "environment": row["environment"],
            "signingKey": row["signing_key"],
        }
    )


@router.get("/apps", responses=schemas.answers(schemas.WorkspaceList), summary="List workspaces")
async def list_apps(request: Request) -> Response:
    rows = await request.app.state.db.fetch("app_list")
    loads = {r["id"]: r for r in await request.app.state.db.fetch("jobs_load_by_app")}
    items = [
        {
            "id": r["id"],
            "name": r["name"],
            "environment": r["environment"],
            "url": r["url"],
            "functionCount": r["function_count"],
            "createdAt": iso(r["created_at"]),
            "syncedAt": iso(r["synced_at"]),
            "signatureMode": r["signature_mode"],
            "rotating": r["rotating"],
            **_load(loads.get(r["id"])),
        }
        for r in rows
    ]
    return JSON({"items": items, "nextCursor": None})


def _load(row: Any) -> dict[str, Any]:
    """A workspace's cap and what it runs now (jobs_load_by_app); a workspace created since the list
    was read has none of either."""
    if row is None:
        return {"maxConcurrency": None, "executing": 0, "queued": 0, "scheduled": 0}
    return {
        "maxConcurrency": row["max_concurrency"],
        "executing": row["executing"],
        "queued": row["queued"],
        "scheduled": row["scheduled"],
    }


# Signing keys and signature mode (docs/protocol.md, "Signing"). A key is shown only in the answer that
# creates it; no list or GET returns one.


@router.post(
    "/apps/{app_id}/keys/rotate",
    responses=schemas.answers(schemas.RotatedKey, 409),
    summary="Give a workspace a new signing key; the previous one stays accepted (and signs) until removed",
)
async def rotate_key(request: Request, app_id: str) -> Response:
    row = await apps.rotate_key(request.app.state.db, app_id)
    request.app.state.apps.forget(app_id)
    return JSON({"id": row["id"], "signingKey": row["signing_key"], "signatureMode": row["signature_mode"]})


@router.delete(
    "/apps/{app_id}/keys/previous",
    responses=schemas.answers(schemas.PreviousKeyRemoved),
    summary="End a key rotation: the previous key stops working and the engine signs with the new one",
)
async def remove_previous_key(request: Request, app_id: str) -> Response:
    removed = await apps.drop_previous_key(request.app.state.db, app_id)
    request.app.state.apps.forget(app_id)
    return JSON({"id": app_id, "removed": removed})


@router.patch(
    "/apps/{app_id}",
    responses=schemas.answers(schemas.WorkspaceSettings),
    summary="Change a workspace's settings: its signature mode (v2: v2 signatures only; compat: v1 "
    "accepted too) and its cap on runs executing at once (maxConcurrency, null for none)",
    openapi_extra=_body_schema(
        {
            "signatureMode": {"type": "string", "enum": ["compat", "v2"]},
            "maxConcurrency": {
                "anyOf": [
                    {"type": "integer", "minimum": 1, "maximum": apps.MAX_CONCURRENCY},
                    {"type": "null"},
                ]
            },
        },
        [],
    ),
)
async def update_app(request: Request, app_id: str) -> Response:
    payload = await _json_object(request)
    row = await apps.update_settings(request.app.state.db, app_id, payload)
    request.app.state.apps.forget(app_id)
    return JSON(
        {"id": row["id"], "signatureMode": row["signature_mode"], "maxConcurrency": row["max_concurrency"]}
    )


@router.get(
    "/apps/{app_id}/functions",
    responses=schemas.answers(schemas.FunctionList),
    summary="List a workspace's functions",
)
async def list_functions(request: Request, app_id: str) -> Response:
    await apps.require_app(request.app.state.db, app_id)
    rows = await request.app.state.db.fetch("function_list", app_id)
    items = []
    for r in rows:
        trigger = {"event": r["trigger_event"]} if r["trigger_event"] else {"cron": r["trigger_cron"]}
        items.append(
            {
                "id": r["id"],
                "name": r["name"],
                "trigger": trigger,
                **r["config"],
                "paused": control.paused_view(r["paused"]),
            }
        )
    return JSON({"items": items, "nextCursor": None})


@router.get(
    "/apps/{app_id}/events",
    responses=schemas.answers(schemas.EventList),
    summary="List a workspace's events, newest first, with their runs",
)
async def list_events(
    request: Request, app_id: str, limit: int = Query(50, ge=1, le=500), cursor: str | None = None
) -> Response:
    await apps.require_app(request.app.state.db, app_id)
    return JSON(await runs.list_events(request.app.state.db, app_id, cursor=cursor, limit=limit))


@router.post(
    "/apps/{app_id}/events",
    responses=schemas.answers(schemas.Ids),
    summary="Fire an event into a workspace (from the dashboard)",
    openapi_extra=_body_schema({"name": {"type": "string"}, "data": {"type": "object"}}, ["name"]),
)
async def fire_event(request: Request, app_id: str) -> Response:
    await apps.require_app(request.app.state.db, app_id)
    events, _ = parse_events(parse_json(await read_body(request)))
    ids = await ingest_and_hand_off(request, app_id, events)
    return JSON({"ids": ids})


@router.post(
    "/apps/{app_id}/functions/{function_id}/run",
    responses=schemas.answers(schemas.Ids),
    summary="Start one run of a function now (a cron function gets a $cron event)",
    openapi_extra=_body_schema({"data": {"type": "object"}}, []),
)
async def run_function(request: Request, app_id: str, function_id: str) -> Response:
    await apps.require_app(request.app.state.db, app_id)
    payload = await _json_object(request)
    unknown = sorted(set(payload) - {"data"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r} (expected data)")
    ids = await apps.run_function(request.app.state.db, app_id, function_id, payload.get("data", {}))
    request.app.state.on_ingest()
    return JSON({"ids": ids})


@router.get(
    "/apps/{app_id}/runs",
    responses=schemas.answers(schemas.RunList),
    summary="List a workspace's runs, newest first",
)
async def list_runs(
    request: Request,
    app_id: str,
    status: str | None = None,
    functionId: str | None = None,
    activity: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
    match: str | None = Query(
        None, description="JSON object: runs whose event data contains it (a recursive subset)"
    ),
    output: str | None = Query(None, description="JSON value: runs whose output contains it (jsonb @>)"),
) -> Response:
    await apps.require_app(request.app.state.db, app_id)
    page = await runs.list_runs(
        request.app.state.db,
        app_id,
        status=status,
        function_id=functionId,
        activity=activity,
        cursor=cursor,
        limit=limit,
        match=match,
        output=output,
    )
    return JSON(page)


# Run control (docs/protocol.md, "Run control and links").


@router.post(
    "/apps/{app_id}/functions/{function_id}/pause",
    responses=schemas.answers(schemas.PauseAnswer),
    summary="Pause a function: queue (new and not-yet-started runs are held until resume; the default) "
    "or skip (new events start nothing). Pausing again changes the mode",
    openapi_extra=_body_schema({"mode": {"type": "string", "enum": list(control.PAUSE_MODES)}}, []),
)
async def pause_function(request: Request, app_id: str, function_id: str) -> Response:
    await apps.require_app(request.app.state.db, app_id)
    mode = control.parse_mode(await _json_object(request))
    answer = await control.pause(request.app.state.db, app_id, function_id, mode)
    return JSON(answer)


@router.post(
    "/apps/{app_id}/functions/{function_id}/resume",
    responses=schemas.answers(schemas.PauseAnswer),
    summary="Resume a paused function: every held run becomes due now (a no-op when not paused)",
)
async def resume_function(request: Request, app_id: str, function_id: str) -> Response:
    await apps.require_app(request.app.state.db, app_id)
    answer = await control.resume(request.app.state.db, app_id, function_id)
    request.app.state.on_ingest()
    return JSON(answer)


_FILTER_BODY = {
    "filter": {
        "type": "object",
        "description": "every field optional (null is the same as absent); {} selects every run",
        "properties": {
            "functionId": {"type": "string"},
            "status": {"type": "string", "enum": list(runs.RUN_STATUSES)},
            "from": {
                "anyOf": [{"type": "null"}, {"type": "string", "format": "date-time"}],
                "description": "createdAt at or after (ISO 8601 with a time zone)",
            },
            "to": {
                "anyOf": [{"type": "null"}, {"type": "string", "format": "date-time"}],
                "description": "createdAt before (ISO 8601 with a time zone)",
            },
            "match": {
                "anyOf": [{"type": "null"}, {"type": "object"}],
                "description": "a subset of the event's data",
            },
        },
    },
    "dryRun": {"type": "boolean", "description": "count only, change nothing"},
}


@router.post(
    "/apps/{app_id}/runs/cancel",
    responses=schemas.answers(schemas.BulkAnswer),
    summary="Cancel the active runs a filter selects (at most 10,000, oldest first), in one transaction",
    openapi_extra=_body_schema(_FILTER_BODY, ["filter"]),
)
async def cancel_runs(request: Request, app_id: str) -> Response:
    await apps.require_app(request.app.state.db, app_id)
    bulk = control.parse_bulk(await _json_object(request))
    count, _ = await control.bulk_cancel(request.app.state.db, app_id, bulk)
    return JSON({"count": count})


@router.post(
    "/apps/{app_id}/runs/rerun",
    responses=schemas.answers(schemas.BulkAnswer),
    summary="Start a new run of the same function and event for each run a filter selects (any status, "
    "at most 10,000, oldest first), in one transaction",
    openapi_extra=_body_schema(_FILTER_BODY, ["filter"]),
)
async def rerun_runs(request: Request, app_id: str) -> Response:
    await apps.require_app(request.app.state.db, app_id)
    bulk = control.parse_bulk(await _json_object(request))
    count, started = await control.bulk_rerun(request.app.state.db, app_id, bulk)
    if started:
        request.app.state.on_ingest()
    return JSON({"count": count})


@router.get(
    "/apps/{app_id}/metrics",
    responses=schemas.answers(schemas.Metrics),
    summary="Throughput, failures, durable vs app time, p95, backlog",
)
async def app_metrics(request: Request, app_id: str, range: str = "1h") -> Response:  # noqa: A002
    await apps.require_app(request.app.state.db, app_id)
    return JSON(await metrics.series(request.app.state.db, app_id, range))


@router.get(
    "/stream",
    summary="Server-Sent Events: what changed (pushed from Postgres NOTIFY)",
    responses={
        200: {"description": "text/event-stream: one `change` event per NOTIFY, {appId, kinds, runIds}"},
        401: schemas.ERRORS[401],
        503: schemas.ERRORS[503],
    },
)
async def change_stream(request: Request) -> Response:
    return await stream(request)


@router.get(
    "/runs/{run_id}",
    responses=schemas.answers(schemas.Run),
    summary="One run with its steps in execution order",
)
async def get_run(request: Request, run_id: str) -> Response:
    return JSON(await runs.get_run(request.app.state.db, run_id))


@router.post("/runs/{run_id}/cancel", responses=schemas.answers(schemas.Run), summary="Cancel an active run")
async def cancel_run(request: Request, run_id: str) -> Response:
    view = await runs.cancel(request.app.state.db, run_id)
    return JSON(view)


@router.post(
    "/runs/{run_id}/rerun",
    responses=schemas.answers(schemas.RerunAnswer),
    summary="Start a new run of the same function and event, optionally from a step",
    openapi_extra=_body_schema({"fromStep": {"type": "string"}}, []),
)
async def rerun_run(request: Request, run_id: str) -> Response:
    payload = await _json_object(request)
    unknown = sorted(set(payload) - {"fromStep"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r} (expected fromStep)")
    new_id = await runs.rerun(request.app.state.db, run_id, payload.get("fromStep"))
    request.app.state.on_ingest()
    return JSON({"runId": new_id})
