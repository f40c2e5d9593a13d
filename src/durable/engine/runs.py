"""Run management and reads: cancel, rerun (from a step), and the run/step views of the API, with the
runs list's `match` (event data) and `output` filters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import orjson

from durable.core.jsonvalue import parse_json, refuse_nul
from durable.core.match import matches
from durable.core.times import iso, iso_ms
from durable.engine.cancel import cancel_runs, cause
from durable.engine.flow import Planner, Start
from durable.errors import Conflict, InvalidInput, NotFound
from durable.store.db import Conn, Database


async def cancel(db: Database, run_id: str) -> dict[str, Any]:
    async with db.transaction() as tx:
        cancelled = await cancel_runs(tx, [run_id], cause("user"))
    if run_id not in cancelled:
        run = await db.fetchrow("run_get", run_id)
        if run is None:
            raise NotFound(f"no run with id {run_id!r}")
        raise Conflict(f"run {run_id!r} is {run['status']}; only an active run can be cancelled")
    return await get_run(db, run_id)


async def rerun(db: Database, run_id: str, from_step: object = None) -> str:
    """Start a new run of the same function and event; with `from_step`, memoize the steps before it."""
    if from_step is not None and (not isinstance(from_step, str) or not from_step):
        raise InvalidInput("fromStep: must be a step id (a non-empty string) or absent")
    async with db.transaction() as tx:
        source = await tx.fetchrow("run_get", run_id)
        if source is None:
            raise NotFound(f"no run with id {run_id!r}")
        if from_step is not None and await tx.fetchrow("run_step_exists", run_id, from_step) is None:
            raise InvalidInput(f"fromStep: run {run_id!r} has no step {from_step!r}")
        return await rerun_in(tx, source, from_step)


async def rerun_in(tx: Conn, source: Mapping[str, Any], from_step: str | None = None) -> str:
    """In `tx`, start a new run of `source`'s function and event (`source` has id, app_id, function_id
    and event); with `from_step` (a step of that run), memoize the completed steps before it."""
    [new_id] = await rerun_many(tx, source["app_id"], [source])
    if from_step is not None:
        await tx.execute("run_copy_steps", source["id"], new_id, from_step)
    return new_id


async def rerun_many(tx: Conn, app_id: str, sources: Sequence[Mapping[str, Any]]) -> list[str]:
    """In `tx`, a new run of each source's function and event, in one planner (throttle rows locked in
    key order, one write); a paused function's reruns are held. The one place a rerun creates its run."""
    functions: dict[str, Any] = {}
    for function_id in {s["function_id"] for s in sources}:
        functions[function_id] = await tx.fetchrow("function_for_invoke", app_id, function_id)
    starts = []
    for source in sources:
        function = functions[source["function_id"]]
        config = function["config"] if function is not None else {}
        paused = function["paused"] if function is not None else None
        starts.append(
            Start(source["function_id"], config, source["event"], rerun_of=source["id"], paused=paused)
        )
    planner = Planner(tx, app_id, await tx.fetchval("clock_now_ms"))
    return await planner.add_runs(starts)


OUTPUT_PREVIEW_CHARS = 2048  # run_list: a longer output's JSON text is cut to this many characters


def run_view(row: asyncpg.Record) -> dict[str, Any]:
    """A run's summary. From `run_list`, an output whose JSON text is longer than
    OUTPUT_PREVIEW_CHARS comes as `outputPreview` (that many characters of it) with `output` null and
    `outputTruncated` true; `GET /api/runs/{id}` always has the whole output."""
    keys = set(row.keys())  # Record.keys() is an iterator: one `in` would consume it
    preview = row["output_preview"] if "output_preview" in keys else None
    return {
        "id": row["id"],
        "appId": row["app_id"],
        "functionId": row["function_id"],
        "eventId": row["event_id"],
        "status": row["status"],
        "activity": row["activity"],
        "output": row["output"] if "output" in keys else None,
        "outputPreview": preview,
        "outputTruncated": preview is not None,
        "error": _error_view(row["error"]),
        "flow": flow_view(row),
        "parentRunId": row["parent_run_id"],
        "cancelledBy": row["cancelled_by"],
        "createdAt": iso(row["created_at"]),
        "startedAt": iso(row["started_at"]),
        "endedAt": iso(row["ended_at"]),
    }


def flow_view(row: asyncpg.Record) -> dict[str, Any] | None:
    """Why an active run is scheduled or queued: throttle, debounce or batch (with when it starts), or
    a full concurrency gate. None when no flow control holds it."""
    if row["status"] != "active":
        return None
    view: dict[str, Any] = {}
    for option, info in (row["flow"] or {}).items():
        view[option] = {k: iso_ms(v) if k == "until" else v for k, v in info.items()}
    keys = row.keys()
    if "gate_limit" in keys and row["gate_limit"] is not None and row["activity"] == "queued":
        view["concurrency"] = {"limit": row["gate_limit"], "running": row["gate_running"]}
    return view or None


def _error_view(error: Any) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"message": error.get("message", "")}


def step_error_view(error: Any) -> dict[str, Any] | None:
    """A step's error; an invoke step whose child did not complete also says why (`reason`: failed,
    timeout, cancelled, not_found), which child run and which function (engine/cancel.child_error)."""
    view = _error_view(error)
    if view is not None and "reason" in error:
        view.update(reason=error["reason"], runId=error.get("runId"), functionId=error.get("functionId"))
    return view


def retry_view(row: asyncpg.Record) -> dict[str, Any] | None:
    """The retry a run is waiting out: why, which attempt comes next and when. None unless the run is
    `scheduled` by a retry (runs.retry outlives the wait; a claim makes it history)."""
    retry = row["retry"]
    if retry is None or row["status"] != "active" or row["activity"] != "scheduled":
        return None
    return {
        "reason": retry["reason"],
        "attempt": retry["attempt"],
        "maxAttempts": retry["maxAttempts"],
        "unreachable": retry["unreachable"],
        "since": iso_ms(retry["since"]),
        "nextAt": iso_ms(retry["nextAt"]),
    }


def errors_view(errors: Any) -> list[dict[str, Any]]:
    """Failed attempts, oldest first: [{attempt, message, at}]."""
    return [{"attempt": e["attempt"], "message": e["message"], "at": iso_ms(e["at"])} for e in errors or []]


def step_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "type": row["type"],
        "status": row["status"],
        "attempts": row["attempts"],
        "output": row["output"],
        "error": step_error_view(row["error"]),
        "errors": errors_view(row["errors"]),
        "queuedMs": row["queued_ms"],
        "appMs": row["app_ms"],
        "startedAt": iso(row["started_at"]),
        "endedAt": iso(row["ended_at"]),
    }


async def get_run(db: Database, run_id: str) -> dict[str, Any]:
    async with db.connection() as conn:
        row = await conn.fetchrow("run_get", run_id)
        if row is None:
            raise NotFound(f"no run with id {run_id!r}")
        steps = await conn.fetch("run_steps", run_id)
        children = await conn.fetch("run_children", run_id)
    view = run_view(row)
    view["event"] = row["event"]
    view["rerunOf"] = row["rerun_of"]
    view["retry"] = retry_view(row)
    view["errors"] = errors_view(row["errors"])
    view["steps"] = [step_view(s) for s in steps]
    view["children"] = [
        {
            "runId": c["id"],
            "functionId": c["function_id"],
            "stepId": c["parent_step_id"],
            "status": c["status"],
        }
        for c in children
    ]
    return view


RUN_STATUSES = ("active", "completed", "failed", "cancelled")
RUN_ACTIVITIES = ("executing", "queued", "waiting", "sleeping", "scheduled")


async def list_runs(
    db: Database,
    app_id: str,
    *,
    status: str | None,
    function_id: str | None,
    activity: str | None,
    cursor: str | None,
    limit: int,
    match: str | None = None,
    output: str | None = None,
) -> dict[str, Any]:
    """A page of runs, newest first. `match` (the query parameter's JSON text: an object) keeps the runs
    whose event data it is a subset of (`durable.core.match.matches`); `output` (JSON text: any value)
    those whose output contains it (jsonb `@>`)."""
    if status is not None and status not in RUN_STATUSES:
        raise InvalidInput(f"status: must be one of {', '.join(RUN_STATUSES)}, got {status!r}")
    if activity is not None and activity not in RUN_ACTIVITIES:
        raise InvalidInput(f"activity: must be one of {', '.join(RUN_ACTIVITIES)}, got {activity!r}")
    subset = check_match(json_param("match", match), "match") if match is not None else None
    wanted = None if output is None else orjson.dumps(json_param("output", output)).decode()
    prefilter = match_prefilter(subset)
    rows: list[asyncpg.Record] = []
    after = cursor
    while True:  # the SQL filter is a superset of `matches`: read on until the page is full
        chunk = await db.fetch(
            "run_list", app_id, status, function_id, activity, after, limit + 1, prefilter, wanted
        )
        rows.extend(r for r in chunk if prefilter is None or matches(subset, r["match_data"]))
        if prefilter is None or len(rows) > limit or len(chunk) <= limit:
            break
        after = chunk[-1]["id"]
    items = [run_view(r) for r in rows[:limit]]
    return {"items": items, "nextCursor": items[-1]["id"] if len(rows) > limit else None}


def json_param(name: str, text: str) -> Any:
    """A query parameter holding JSON, decoded, or a 400 naming the parameter."""
    try:
        value = parse_json(text.encode())
    except InvalidInput as exc:
        raise InvalidInput(f"{name}: {exc.message}") from None
    refuse_nul(value, name)
    return value


def check_match(value: object, field: str) -> dict[str, Any] | None:
    """A `match` filter: a JSON object (a subset of event.data), or null for none."""
    if value is not None and not isinstance(value, dict):
        raise InvalidInput(f"{field}: must be a JSON object (a subset of the event's data)")
    return value


# Integers beyond 2^53 and the floats equal to them compare exactly in Python but by their decimal text
# in jsonb (the float 2.0**62 is stored as 4.611686018427388e18), so the SQL pre-filter leaves them out.
_EXACT = 2**53


def match_prefilter(match: dict[str, Any] | None) -> dict[str, Any] | None:
    """What SQL can check of `match` with jsonb `@>`: a necessary condition for `matches(match, data)`
    (arrays and numbers aside, jsonb containment agrees with it; arrays it checks more loosely), so the
    exact check in Python keeps every run SQL returns that matches. None: no SQL filter (no match, or
    `{}`, which matches any data, an object or not)."""
    if not match:
        return None
    return _containable(match)


def _containable(match: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in match.items():
        if isinstance(value, dict):
            kept[key] = _containable(value)
        elif _exact_in_jsonb(value):
            kept[key] = value
    return kept


def _exact_in_jsonb(value: object) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int | float):
        return abs(value) < _EXACT
    if isinstance(value, list):
        return all(_exact_in_jsonb(v) for v in value)
    if isinstance(value, dict):
        return all(_exact_in_jsonb(v) for v in value.values())
    return False


async def list_events(db: Database, app_id: str, *, cursor: str | None, limit: int) -> dict[str, Any]:
    before: int | None = None
    if cursor is not None:
        try:
            before = int(cursor)
        except ValueError:
            raise InvalidInput(f"cursor: {cursor!r} is not a cursor this endpoint returned") from None
    rows = await db.fetch("event_list", app_id, before, limit + 1)
    items = [
        {
            "id": r["id"],
            "name": r["name"],
            "data": r["data"],
            "ts": r["ts"],
            "receivedAt": iso(r["received_at"]),
            "runs": r["runs"],
            "outcomes": r["outcomes"],
        }
        for r in rows[:limit]
    ]
    next_cursor = str(rows[limit - 1]["seq"]) if len(rows) > limit else None
    return {"items": items, "nextCursor": next_cursor}
