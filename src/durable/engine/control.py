"""Run control (docs/protocol.md, "Run control and links"): pause and resume a function, and cancel or
rerun many runs at once by a filter.

Pause in `queue` mode holds the function's runs that have not started (due in the year 3000,
`scheduled`, `flow.paused`); the ingest path creates new runs of a paused-queue function held the same
way and skips events for a paused-skip one. Resume makes every held run due now. Both take the
function's row first (`FOR UPDATE`), then the jobs in run_id order, so they are idempotent and exact
across processes.

A bulk filter selects at most `MAX_RUNS` runs of one workspace, oldest first: `match` is pre-filtered
in SQL with jsonb `@>` and checked exactly with `durable.core.match.matches`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg

from durable.core.match import matches
from durable.core.times import iso_ms
from durable.engine.cancel import cancel_runs, cause
from durable.engine.claim import made_due
from durable.engine.runs import RUN_STATUSES, check_match, match_prefilter, rerun_many
from durable.errors import InvalidInput, NotFound
from durable.store.db import Conn, Database

MAX_RUNS = 10_000
PAUSE_MODES = ("queue", "skip")
FILTER_FIELDS = ("functionId", "status", "from", "to", "match")
_PAGE = 2_000

Mode = Literal["queue", "skip"]


def paused_view(paused: Any) -> dict[str, Any] | None:
    """A function's `paused` for the API: {mode, since (ISO 8601)}, or None."""
    if paused is None:
        return None
    return {"mode": paused["mode"], "since": iso_ms(paused["since"])}


# ---------------------------------------------------------------- pause and resume


def parse_mode(payload: dict[str, Any]) -> Mode:
    """The body of a pause: {"mode": "queue" | "skip"}, queue when absent."""
    unknown = sorted(set(payload) - {"mode"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r} (expected mode)")
    mode = payload.get("mode", "queue")
    if mode == "queue":
        return "queue"
    if mode == "skip":
        return "skip"
    raise InvalidInput(f"mode: must be one of {', '.join(PAUSE_MODES)}")


async def pause(db: Database, app_id: str, function_id: str, mode: Mode) -> dict[str, Any]:
    """Pause a function. Pausing again changes the mode and keeps `since`. In queue mode the function's
    runs not yet started are held too. Answers {id, paused, held}: held counts the runs this call held."""
    async with db.transaction() as tx:
        function = await _lock_function(tx, app_id, function_id)
        previous = function["paused"]
        since = previous["since"] if previous else await tx.fetchval("clock_now_ms")
        paused = {"mode": mode, "since": since}
        await tx.execute("control_function_set_paused", app_id, function_id, paused)
        held: list[asyncpg.Record] = []
        if mode == "queue":
            ids = [r["run_id"] for r in await tx.fetch("control_lock_unstarted", app_id, function_id)]
            if ids:
                held = await tx.fetch("control_hold", ids, since)
    return {"id": function_id, "paused": paused_view(paused), "runs": len(held)}


async def resume(db: Database, app_id: str, function_id: str) -> dict[str, Any]:
    """Resume a function (a no-op when it is not paused): every held run of it becomes due now.
    Answers {id, paused: None, runs}: runs counts the runs released."""
    async with db.transaction() as tx:
        function = await _lock_function(tx, app_id, function_id)
        if function["paused"] is not None:
            await tx.execute("control_function_set_paused", app_id, function_id, None)
        released = 0
        ids = [r["run_id"] for r in await tx.fetch("control_lock_held", app_id, function_id)]
        if ids:
            released = int((await tx.fetchval("control_release", ids)) or 0)
            await made_due(tx, released)
    return {"id": function_id, "paused": None, "runs": released}


async def _lock_function(tx: Conn, app_id: str, function_id: str) -> asyncpg.Record:
    row = await tx.fetchrow("control_function_lock", app_id, function_id)
    if row is None:
        raise NotFound(f"no function {function_id!r} in app {app_id!r}")
    if row["event"] is not None:  # ingests of that event wait for this change, or finished before it
        await tx.execute("step_wait_lock", app_id, row["event"])
    tx.changed(app_id, "functions")
    tx.changed(app_id, "runs")
    return row


# ---------------------------------------------------------------- bulk filters


@dataclass(frozen=True)
class RunFilter:
    """Which runs of a workspace a bulk action selects; every field None selects all of them."""

    function_id: str | None = None
    status: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    match: dict[str, Any] | None = None


@dataclass(frozen=True)
class BulkRequest:
    filter: RunFilter
    dry_run: bool


def parse_bulk(payload: dict[str, Any]) -> BulkRequest:
    """The body of a bulk cancel or rerun: {"filter": {functionId?, status?, from?, to?, match?},
    "dryRun"?: bool}. A field set to null is the same as absent."""
    unknown = sorted(set(payload) - {"filter", "dryRun"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r} (expected filter and dryRun)")
    if "filter" not in payload:
        raise InvalidInput("filter: required, an object ({} selects every run of the workspace)")
    raw = payload["filter"]
    if not isinstance(raw, dict):
        raise InvalidInput("filter: must be an object with functionId, status, from, to or match")
    unknown = sorted(set(raw) - set(FILTER_FIELDS))
    if unknown:
        raise InvalidInput(f"filter: unknown field {unknown[0]!r} (expected {', '.join(FILTER_FIELDS)})")
    dry_run = payload.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise InvalidInput("dryRun: must be true or false")
    function_id = raw.get("functionId")
    if function_id is not None and not isinstance(function_id, str):
        raise InvalidInput("filter.functionId: must be a function id (a string)")
    status = raw.get("status")
    if status is not None and status not in RUN_STATUSES:
        raise InvalidInput(f"filter.status: must be one of {', '.join(RUN_STATUSES)}")
    created_from = _instant(raw.get("from"), "filter.from")
    created_to = _instant(raw.get("to"), "filter.to")
    match = check_match(raw.get("match"), "filter.match")
    return BulkRequest(RunFilter(function_id, status, created_from, created_to, match), dry_run)


def _instant(value: object, field: str) -> datetime | None:
    if value is None:
        return None
    problem = f"{field}: must be an ISO 8601 date and time with a time zone, e.g. 2026-07-05T09:00:00Z"
    if not isinstance(value, str):
        raise InvalidInput(problem)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{problem}; got {value[:64]!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidInput(f"{problem}; {value[:64]!r} has no time zone")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{field}: {value[:64]!r} is outside the years 1 to 9999") from None


async def select_runs(
    conn: Conn, app_id: str, where: RunFilter, limit: int = MAX_RUNS
) -> list[asyncpg.Record]:
    """The runs of `app_id` the filter selects, oldest first, at most `limit`."""
    prefilter = match_prefilter(where.match)
    selected: list[asyncpg.Record] = []
    after: str | None = None
    while len(selected) < limit:
        page = min(_PAGE, limit - len(selected)) if prefilter is None else _PAGE
        rows = await conn.fetch(
            "control_select",
            app_id,
            where.function_id,
            where.status,
            where.created_from,
            where.created_to,
            prefilter,
            after,
            page,
        )
        selected.extend(r for r in rows if prefilter is None or matches(where.match, r["data"]))
        if len(rows) < page:
            break
        after = rows[-1]["id"]
    return selected[:limit]


async def bulk_cancel(db: Database, app_id: str, request: BulkRequest) -> tuple[int, list[str]]:
    """Cancel the active runs the filter selects (at most MAX_RUNS) in one transaction, with
    `cancelled_by {kind: bulk}`; a dry run only counts them. Returns the count and every run id
    cancelled (descendants included)."""
    where = request.filter
    if where.status is not None and where.status != "active":
        raise InvalidInput("filter.status: only active runs can be cancelled (use active or leave it out)")
    where = RunFilter(where.function_id, "active", where.created_from, where.created_to, where.match)
    if request.dry_run:
        async with db.connection() as conn:
            return len(await select_runs(conn, app_id, where)), []
    async with db.transaction() as tx:
        ids = [r["id"] for r in await select_runs(tx, app_id, where)]
        cancelled = await cancel_runs(tx, ids, cause("bulk"))
    chosen = set(ids)
    return sum(1 for run_id in cancelled if run_id in chosen), cancelled


async def bulk_rerun(db: Database, app_id: str, request: BulkRequest) -> tuple[int, list[str]]:
    """Start a new run of the same function and event for every run the filter selects (any status, at
    most MAX_RUNS), in one transaction; a dry run only counts them. Returns the count and the new ids."""
    if request.dry_run:
        async with db.connection() as conn:
            return len(await select_runs(conn, app_id, request.filter)), []
    async with db.transaction() as tx:
        sources = await select_runs(tx, app_id, request.filter)
        started = await rerun_many(tx, app_id, sources)
    return len(started), started
