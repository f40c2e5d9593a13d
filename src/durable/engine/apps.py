"""Workspaces (app × environment): provisioning, lookup, and the function set a sync declares."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from durable.config import ENVIRONMENTS
from durable.core.cron import next_after, parse_cron
from durable.core.ids import new_app_id, new_signing_key
from durable.core.jsonvalue import to_json_text
from durable.core.options import FunctionDef, SyncRequest
from durable.core.times import iso_ms
from durable.engine.ingest import store_events
from durable.errors import InvalidInput, NotFound
from durable.store.db import Database
from durable.types import EventIn


@dataclass(frozen=True)
class App:
    id: str
    name: str
    environment: str
    signing_key: str


async def provision(db: Database, name: object, environment: object) -> dict[str, Any]:
    """Create the workspace or return the existing one (idempotent per name × environment)."""
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise InvalidInput("name: must be a non-empty string of at most 100 characters")
    if environment not in ENVIRONMENTS:
        raise InvalidInput(f"environment: must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}")
    row = await db.fetchrow("app_provision", new_app_id(), name, environment, new_signing_key())
    assert row is not None
    return dict(row)


class AppCache:
    """Signing keys by app id. A workspace's key never changes, so entries never go stale."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._apps: dict[str, App] = {}

    async def get(self, app_id: str) -> App:
        app = self._apps.get(app_id)
        if app is None:
            row = await self.db.fetchrow("app_get", app_id)
            if row is None:
                raise NotFound(f"no app with id {app_id!r}")
            app = App(row["id"], row["name"], row["environment"], row["signing_key"])
            self._apps[app_id] = app
        return app


async def sync(db: Database, app_id: str, request: SyncRequest) -> int:
    """Make the app's function set exactly `request.functions`; return how many there are.

    Cron functions get a schedule at their next occurrence; a changed expression reschedules, a
    removed function (or one no longer on cron) loses its schedule.
    """
    functions = request.functions
    crons = [f for f in functions if "cron" in f["trigger"]]
    parsed = [parse_cron(f["trigger"]["cron"], "trigger.cron") for f in crons]
    async with db.transaction() as tx:
        # The next occurrence after the database clock, which cron_due compares next_at with.
        now_ms = await tx.fetchval("clock_now_ms") if crons else 0
        next_at = [datetime.fromtimestamp(next_after(cron, now_ms) / 1000, UTC) for cron in parsed]
        await tx.execute("app_set_url", app_id, request.url)
        await tx.execute("function_delete_missing", app_id, [f["id"] for f in functions])
        if functions:
            await tx.execute(
                "function_upsert",
                app_id,
                [f["id"] for f in functions],
                [f["name"] or f["id"] for f in functions],
                [f["trigger"].get("event") for f in functions],
                [f["trigger"].get("cron") for f in functions],
                [to_json_text(_config(f), f"functions.{f['id']}") for f in functions],
            )
        await tx.execute("cron_delete_missing", app_id, [f["id"] for f in crons])
        if crons:
            await tx.execute(
                "cron_upsert",
                app_id,
                [f["id"] for f in crons],
                [f["trigger"]["cron"] for f in crons],
                next_at,
            )
    return len(functions)


def _config(function: FunctionDef) -> dict[str, Any]:
    """The options that are set, durations in milliseconds."""
    return {k: v for k, v in function.items() if k not in ("id", "name", "trigger") and v is not None}


async def require_app(db: Database, app_id: str) -> dict[str, Any]:
    row = await db.fetchrow("app_get", app_id)
    if row is None:
        raise NotFound(f"no app with id {app_id!r}")
    return dict(row)


async def run_function(db: Database, app_id: str, function_id: str, data: object) -> list[str]:
    """Start one run of a function now, from the dashboard: an event of its trigger's name (`$cron` for a
    cron function) that starts that function only."""
    if not isinstance(data, dict):
        raise InvalidInput("data: must be a JSON object")
    function = await db.fetchrow("function_get", app_id, function_id)
    if function is None:
        raise NotFound(f"no function {function_id!r} in app {app_id!r}")
    now_ms = await db.fetchval("clock_now_ms")
    if function["trigger_cron"]:
        name = "$cron"
        data = {"cron": function["trigger_cron"], "scheduledAt": iso_ms(now_ms), "manual": True, **data}
    else:
        name = function["trigger_event"]
    event: EventIn = {"id": None, "name": name, "data": data, "ts": now_ms}
    async with db.transaction() as tx:
        ids, _ = await store_events(tx, app_id, [event], function_id=function_id)
        return ids
