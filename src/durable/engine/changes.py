"""The change feed behind the dashboard's live updates.

Engine code calls `touch(app_id, kind, run_id)` whenever something a screen shows changes; the feed
coalesces them and publishes at most one `NOTIFY durable_changes` per app every FLUSH_EVERY_S, so the
hot path never pays a NOTIFY per step. Each API process LISTENs once and fans the messages out to its
SSE clients (api/stream.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import orjson

from durable.store.db import Database
from durable.store.outage import RETRYABLE

log = logging.getLogger("durable.changes")

CHANNEL = "durable_changes"
FLUSH_EVERY_S = 0.2
MAX_RUN_IDS = 100  # keeps a payload far below NOTIFY's 8000 bytes; more means "some runs changed"


@dataclass
class _Pending:
    kinds: set[str] = field(default_factory=set)
    run_ids: set[str] = field(default_factory=set)
    overflow: bool = False


class ChangeFeed:
    def __init__(self, db: Database | None) -> None:
        self.db = db
        self._pending: dict[str, _Pending] = {}
        self._wake = asyncio.Event()

    def touch(self, app_id: str, kind: str, run_id: str | None = None) -> None:
        pending = self._pending.setdefault(app_id, _Pending())
        pending.kinds.add(kind)
        if run_id is not None and not pending.overflow:
            pending.run_ids.add(run_id)
            if len(pending.run_ids) > MAX_RUN_IDS:
                pending.overflow = True
                pending.run_ids.clear()
        self._wake.set()

    def payloads(self) -> list[str]:
        """Take what is pending as NOTIFY payloads, one per app."""
        pending, self._pending = self._pending, {}
        return [
            orjson.dumps({"appId": app_id, "kinds": sorted(p.kinds), "runIds": sorted(p.run_ids)}).decode()
            for app_id, p in pending.items()
        ]

    async def run(self, stop: asyncio.Event) -> None:
        """Publish pending changes until `stop` is set (then once more). With nothing pending it sleeps
        until a change or the stop, with no timer: an idle engine does not wake for it."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                if not self._wake.is_set() and not stop.is_set():
                    waking = asyncio.ensure_future(self._wake.wait())
                    await asyncio.wait((waking, stopping), return_when=asyncio.FIRST_COMPLETED)
                    waking.cancel()
                self._wake.clear()
                await self.flush()
                if stop.is_set():
                    return
                await asyncio.sleep(FLUSH_EVERY_S)
        finally:
            stopping.cancel()

    async def flush(self) -> None:
        payloads = self.payloads()
        if not payloads or self.db is None:
            return
        try:
            await self.db.execute("changes_notify", CHANNEL, payloads)
        except RETRYABLE as exc:  # Postgres restarting or away: try again later
            log.warning("publishing changes failed: %s", exc)
