"""Run management and reads: cancel, rerun (from a step), and the run/step views of the API."""

from __future__ import annotations

from typing import Any

import asyncpg

from durable.core.times import iso, iso_ms
from durable.engine.flow import Planner
from durable.errors import Conflict, InvalidInput, NotFound
from durable.store.db import Database


async def cancel(db: Database, run_id: str) -> dict[str, Any]:
    async with db.transaction() as tx:
        await tx.fetchrow("jobs_lock", run_id)  # the run's mutex first: see the lock order in 0001_init
        cancelled = await tx.fetchrow("run_cancel", run_id)
    if cancelled is None:
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
        function = await tx.fetchrow("function_get", source["app_id"], source["function_id"])
        planner = Planner(tx, source["app_id"], await tx.fetchval("clock_now_ms"))
        config = function["config"] if function is not None else {}
        new_id = await planner.add_run(source["function_id"], config, source["event"], rerun_of=run_id)
        if from_step is not None:
            await tx.execute("run_copy_steps", run_id, new_id, from_step)
    return new_id


def run_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "appId": row["app_id"],
        "functionId": row["function_id"],
        "eventId": row["event_id"],
        "status": row["status"],
        "activity": row["activity"],
        "output": row["output"] if "output" in row.keys() else None,
        "error": _error_view(row["error"]),
        "flow": flow_view(row),
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
        "error": _error_view(row["error"]),
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
    view = run_view(row)
    view["event"] = row["event"]
    view["rerunOf"] = row["rerun_of"]
    view["retry"] = retry_view(row)
    view["errors"] = errors_view(row["errors"])
    view["steps"] = [step_view(s) for s in steps]
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
) -> dict[str, Any]:
    if status is not None and status not in RUN_STATUSES:
        raise InvalidInput(f"status: must be one of {', '.join(RUN_STATUSES)}, got {status!r}")
    if activity is not None and activity not in RUN_ACTIVITIES:
        raise InvalidInput(f"activity: must be one of {', '.join(RUN_ACTIVITIES)}, got {activity!r}")
    rows = await db.fetch("run_list", app_id, status, function_id, activity, cursor, limit + 1)
    items = [run_view(r) for r in rows[:limit]]
    return {"items": items, "nextCursor": items[-1]["id"] if len(rows) > limit else None}


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
