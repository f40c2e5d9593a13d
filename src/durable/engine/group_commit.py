"""Group commit for the hot path: steps stored, and runs completed.

Many runs are driven at once; each stored step is one row, each completed run one job deleted and one run
updated. Instead of one statement and one commit per step or per completion, `StepWriter` gathers what
arrives while a write is in flight and stores it in the next flush: the steps of runs going on in one
statement (`steps_complete_many`), the runs that ended with `done` (and the steps of their last answer,
a checkpoint's) in another (`runs_complete_many`). Every entry is one run's, fenced on its own lease, so
one run's write is all or none and a lost lease stores nothing of it. Outputs arrive as JSON text already
checked storable, so one run's value cannot fail the statement for the others. One run alone pays the
same single round trip as before; under load the commits per step fall with the batch size.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from durable.store.db import Database

MAX_BATCH = 256  # runs per flush


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


@dataclass(frozen=True)
class _Entry:
    run_id: str
    token: UUID
    rows: list[StepRow]
    output_json: str | None  # set: the run completes with this output
    future: asyncio.Future[datetime | None]


class StepWriter:
    def __init__(self, db: Database, *, concurrency: int = 4) -> None:
        self.db = db
        self._pending: list[_Entry] = []
        self._slots = asyncio.Semaphore(concurrency)
        self._scheduled = False

    async def complete(self, *rows: StepRow) -> datetime | None:
        """Store the steps of one run (one, or a checkpoint's): all in the same statement, each fenced on
        the run's lease, so all are stored or none. The database time of the commit, or None if the
        lease was not held."""
        return await self._enqueue(rows[0].run_id, rows[0].token, list(rows), None)

    async def complete_run(self, run_id: str, token: UUID, output_json: str, *rows: StepRow) -> bool:
        """Complete the run with `output_json` (its job deleted: the lease's end), storing `rows` (the
        steps of its last answer) in the same statement. False if the lease was not held: nothing."""
        return await self._enqueue(run_id, token, list(rows), output_json) is not None

    async def _enqueue(
        self, run_id: str, token: UUID, rows: list[StepRow], output_json: str | None
    ) -> datetime | None:
        future: asyncio.Future[datetime | None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Entry(run_id, token, rows, output_json, future))
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
            going = [e for e in batch if e.output_json is None]
            ending = [e for e in batch if e.output_json is not None]
            try:
                committed: dict[str, datetime] = {}
                if going:
                    committed.update(await self._store(going))
                if ending:
                    committed.update(await self._end(ending))
            except Exception as exc:  # each waiting run sees it (and fails or retries its own attempt)
                _fail(batch, exc)
                return
            except BaseException as exc:
                _fail(batch, exc)
                raise
            for entry in batch:
                if not entry.future.done():
                    entry.future.set_result(committed.get(entry.run_id))

    async def _store(self, entries: list[_Entry]) -> dict[str, datetime]:
        rows = [r for e in entries for r in e.rows]
        stored = await self.db.fetch("steps_complete_many", *_columns(rows))
        return {r["run_id"]: r["now"] for r in stored}

    async def _end(self, entries: list[_Entry]) -> dict[str, datetime]:
        rows = [r for e in entries for r in e.rows]
        ended = await self.db.fetch(
            "runs_complete_many",
            [e.run_id for e in entries],
            [e.token for e in entries],
            [e.output_json for e in entries],
            *_columns(rows)[2:],
            [r.run_id for r in rows],
        )
        return {r["id"]: r["now"] for r in ended}


def _columns(rows: list[StepRow]) -> list[list[Any]]:
    """The array parameters of a batch of step rows, in the order steps_complete_many takes them."""
    return [
        [r.run_id for r in rows],
        [r.token for r in rows],
        [r.step_id for r in rows],
        [r.attempts for r in rows],
        [r.output_json for r in rows],
        [r.queued_ms for r in rows],
        [r.app_ms for r in rows],
        [r.started_at for r in rows],
        [r.ended_at for r in rows],
    ]


def _fail(batch: list[_Entry], exc: BaseException) -> None:
    for entry in batch:
        if not entry.future.done():
            entry.future.set_exception(exc)
