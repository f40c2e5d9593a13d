"""Group commit for the step hot path.

Many runs are driven at once; each stored step is one row. Instead of one statement and one commit
per step, `StepWriter` gathers the steps that arrive while a write is in flight and stores them in the
next single statement (`steps_complete_many`), each still fenced on its own lease. Outputs arrive as
JSON text already checked storable, so one run's value cannot fail the statement for the others. One run alone pays
the same single round trip as before; under load the commits per step fall with the batch size.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from durable.store.db import Database

MAX_BATCH = 256


@dataclass(frozen=True)
class StepRow:
    run_id: str
    token: UUID
    step_id: str
    attempts: int
    output_json: str  # the result as JSON text, checked storable (core/jsonvalue.py)
    queued_ms: int
    app_ms: int
    started_at: datetime
    ended_at: datetime


class StepWriter:
    def __init__(self, db: Database, *, concurrency: int = 4) -> None:
        self.db = db
        self._pending: list[tuple[list[StepRow], asyncio.Future[datetime | None]]] = []
        self._slots = asyncio.Semaphore(concurrency)
        self._scheduled = False

    async def complete(self, *rows: StepRow) -> datetime | None:
        """Store the steps of one run (one, or a checkpoint's): all in the same statement, each fenced on
        the run's lease, so all are stored or none. The database time of the commit, or None if the
        lease was not held."""
        future: asyncio.Future[datetime | None] = asyncio.get_running_loop().create_future()
        self._pending.append((list(rows), future))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        async with self._slots:
            self._scheduled = False
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            if self._pending and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().create_task(self._flush())
            if not batch:
                return
            rows = [r for run_rows, _ in batch for r in run_rows]
            try:
                stored = await self.db.fetch(
                    "steps_complete_many",
                    [r.run_id for r in rows],
                    [r.token for r in rows],
                    [r.step_id for r in rows],
                    [r.attempts for r in rows],
                    [r.output_json for r in rows],
                    [r.queued_ms for r in rows],
                    [r.app_ms for r in rows],
                    [r.started_at for r in rows],
                    [r.ended_at for r in rows],
                )
            except Exception as exc:  # each waiting run sees it (and fails or retries its own attempt)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                return
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                raise
            committed = {r["run_id"]: r["now"] for r in stored}
            for run_rows, future in batch:
                if not future.done():
                    future.set_result(committed.get(run_rows[0].run_id))
