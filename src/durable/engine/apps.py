"""Workspaces (app × environment): provisioning, lookup, and the function set a sync declares."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from durable.config import ENVIRONMENTS
from durable.core.cron import Cron, next_after, parse_cron
from durable.core.ids import new_app_id, new_signing_key
from durable.core.jsonvalue import to_json_text
from durable.core.options import FunctionDef, SyncRequest
from durable.core.signing import MODES, Keys, Mode
from durable.core.times import iso_ms
from durable.engine.ingest import store_events
from durable.engine.nonces import record_nonce
from durable.errors import Conflict, InvalidInput, NotFound
from durable.store.db import Database
from durable.types import EventIn


@dataclass(frozen=True)
class App:
    id: str
    name: str
    environment: str
    signing_key: str
    previous_key: str | None = None  # set while the key is rotated: accepted too, and signed with
    signature_mode: Mode = "v2"

    @property
    def keys(self) -> Keys:
        return Keys(self.signing_key, self.previous_key, self.signature_mode)


async def provision(db: Database, name: object, environment: object) -> dict[str, Any]:
    """Create the workspace or return the existing one (idempotent per name × environment)."""
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise InvalidInput("name: must be a non-empty string of at most 100 characters")
    if environment not in ENVIRONMENTS:
        raise InvalidInput(f"environment: must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}")
    row = await db.fetchrow("app_provision", new_app_id(), name, environment, new_signing_key())
    assert row is not None
    db.changed(row["id"], "apps")
    return dict(row)


class AppCache:
    """Workspaces (keys and signature mode) by app id, for the signed routes.

    Keys and modes change (rotation, PATCH), so an entry lives `max_age_s`: a change made through this
    process is seen at once (`forget`), one made through another engine process within that time.
    """

    def __init__(self, db: Database, max_age_s: float = 2.0) -> None:
        self.db = db
        self.max_age_s = max_age_s
        self._apps: dict[str, tuple[float, App]] = {}

    async def get(self, app_id: str) -> App:
        cached = self._apps.get(app_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self.max_age_s:
            return cached[1]
        row = await self.db.fetchrow("app_get", app_id)
        if row is None:
            raise NotFound(f"no app with id {app_id!r}")
        app = App(
            row["id"],
            row["name"],
            row["environment"],
            row["signing_key"],
            row["previous_signing_key"],
            row["signature_mode"],
        )
        self._apps[app_id] = (now, app)
        return app

    def forget(self, app_id: str) -> None:
        self._apps.pop(app_id, None)


async def rotate_key(db: Database, app_id: str) -> dict[str, Any]:
    """Give the workspace a new key; the current one stays accepted (and signs) until removed."""
    row = await db.fetchrow("app_rotate_key", app_id, new_signing_key())
    if row is None:
        await require_app(db, app_id)
        raise Conflict(
            f"app {app_id!r} is already rotating its key: remove the previous key first "
            f"(DELETE /api/apps/{app_id}/keys/previous), then rotate again"
        )
    db.changed(app_id, "apps")
    return dict(row)


async def drop_previous_key(db: Database, app_id: str) -> bool:
    """End a rotation: the previous key stops working. False when there was none."""
    removed = await db.fetchval("app_drop_previous_key", app_id)
    if removed is None:
        raise NotFound(f"no app with id {app_id!r}")
    db.changed(app_id, "apps")
    return bool(removed)


MAX_CONCURRENCY = 100_000  # a workspace cap above every worker's slots would mean no cap


async def update_settings(db: Database, app_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Apply `PATCH /api/apps/{id}`: `signatureMode` and/or `maxConcurrency` (the cap on the workspace's
    runs executing at once, null for none), all or nothing. Returns the settings as they are now."""
    unknown = sorted(set(payload) - {"signatureMode", "maxConcurrency"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r} (expected signatureMode or maxConcurrency)")
    if not payload:
        raise InvalidInput("body: give signatureMode (compat or v2) or maxConcurrency (an integer, or null)")
    mode = payload.get("signatureMode")
    if "signatureMode" in payload and mode not in MODES:
        raise InvalidInput(f"signatureMode: must be one of {', '.join(MODES)}, got {mode!r}")
    cap = payload.get("maxConcurrency")
    if cap is not None and (
        not isinstance(cap, int) or isinstance(cap, bool) or not 1 <= cap <= MAX_CONCURRENCY
    ):
        raise InvalidInput(
            f"maxConcurrency: must be an integer 1..{MAX_CONCURRENCY} or null (no cap), got {cap!r}"
        )
    row = await db.fetchrow("app_update_settings", app_id, mode, "maxConcurrency" in payload, cap)
    if row is None:
        raise NotFound(f"no app with id {app_id!r}")
    db.changed(app_id, "apps")
    return dict(row)


async def sync(db: Database, app_id: str, request: SyncRequest, *, nonce: str | None = None) -> int:
    """Make the app's function set exactly `request.functions`; return how many there are.

    `nonce`: the v2 nonce of the signed request, recorded in the same transaction (a replay stores
    nothing).

    Cron functions get a schedule at their next occurrence; a changed expression reschedules, a
    removed function (or one no longer on cron) loses its schedule.
    """
    functions = request.functions
    crons = [f for f in functions if "cron" in f["trigger"]]
    parsed = [parse_cron(f["trigger"]["cron"], "trigger.cron") for f in crons]
    async with db.transaction() as tx:
        tx.changed(app_id, "functions")
        if nonce is not None:
            await record_nonce(tx, app_id, nonce)
        # The next occurrence after the database clock, which cron_due compares next_at with.
        now_ms = await tx.fetchval("clock_now_ms") if crons else 0
        # Milliseconds apiece for a rare schedule, up to 1000 of them: off the event loop.
        next_at = await asyncio.to_thread(_occurrences_after, parsed, now_ms) if crons else []
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


def _occurrences_after(parsed: list[Cron], now_ms: int) -> list[datetime]:
    return [datetime.fromtimestamp(next_after(cron, now_ms) / 1000, UTC) for cron in parsed]


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
    cron function, `durable/function.invoked` for one without a trigger) that starts that function only."""
    if not isinstance(data, dict):
        raise InvalidInput("data: must be a JSON object")
    function = await db.fetchrow("function_get", app_id, function_id)
    if function is None:
        raise NotFound(f"no function {function_id!r} in app {app_id!r}")
    now_ms = await db.fetchval("clock_now_ms")
    if function["trigger_cron"]:
        name = "$cron"
        data = {"cron": function["trigger_cron"], "scheduledAt": iso_ms(now_ms), "manual": True, **data}
    else:  # an event function, or one started only by invoke (trigger: null)
        name = function["trigger_event"] or "durable/function.invoked"
    event: EventIn = {"id": None, "name": name, "data": data, "ts": now_ms}
    async with db.transaction() as tx:
        ids = (await store_events(tx, app_id, [event], function_id=function_id)).ids
        return ids
