"""Driving runs: claim due jobs, and turn each answer (op) of the app into one transaction.

A worker holds a run's job under a lease token from claim until the run parks or ends. Every write
below is fenced by that token: a worker whose lease was taken over (it stalled, or the run was
cancelled) stores nothing and stops. After a `step` the worker keeps the lease and invokes again at
once; only sleeps, waits, retries and crashes go back through the queue.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from durable.core.backoff import backoff_ms
from durable.core.match import matches
from durable.engine.changes import ChangeFeed
from durable.engine.group_commit import StepRow, StepWriter
from durable.store.db import Database
from durable.types import DoneOp, ErrorOp, Op, SleepOp, StepOp, WaitOp


class Outcome(enum.Enum):
    CONTINUE = "continue"  # the lease is still ours: invoke the next round now
    PARKED = "parked"  # sleeping, waiting, or retrying later: the job is free again
    ENDED = "ended"  # completed or failed
    LOST = "lost"  # the lease was no longer ours (cancelled, or taken over): nothing was stored


@dataclass
class Claim:
    """A run this worker drives, with everything its next invoke needs."""

    run_id: str
    token: UUID
    attempt: int
    app_id: str
    function_id: str
    event: dict[str, Any]
    url: str | None
    signing_key: str
    max_attempts: int
    steps: dict[str, Any]
    ready_at: datetime  # when the run last became due: the start of the next step's queued time
    db_now: datetime  # the database's clock when the claim (or the last commit) happened
    function_exists: bool = True
    renewed: float = field(default_factory=time.monotonic)  # when the lease was last taken or renewed

    def invoke_body(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "functionId": self.function_id,
            "attempt": self.attempt,
            "event": self.event,
            "steps": self.steps,
        }


@dataclass(frozen=True)
class Timing:
    started_at: datetime  # when the invoke was sent
    ended_at: datetime  # when its answer arrived

    @property
    def app_ms(self) -> int:
        return max(0, int((self.ended_at - self.started_at).total_seconds() * 1000))


def _ms_between(a: datetime, b: datetime) -> int:
    return max(0, int((b - a).total_seconds() * 1000))


def utcnow() -> datetime:
    return datetime.now(UTC)


class Executor:
    """The transactional rules for claimed runs."""

    def __init__(
        self, db: Database, *, lease_ms: int, default_max_attempts: int, feed: ChangeFeed | None = None
    ) -> None:
        self.db = db
        self.feed = feed or ChangeFeed(None)
        self.lease_ms = lease_ms
        self.default_max_attempts = default_max_attempts
        self.steps = StepWriter(db)

    async def claim(self, worker_id: str, limit: int) -> list[Claim]:
        """Claim up to `limit` due runs outside concurrency gates: one statement, no transaction."""
        rows = await self.db.fetch("jobs_claim", worker_id, limit, self.lease_ms, [])
        return self._claims(rows)

    async def claim_gated(self, worker_id: str, limit: int) -> list[Claim]:
        """Claim up to `limit` due runs in concurrency gates, under each gate's advisory lock, so a
        gate's running count is exact however many processes claim at once."""
        gates = await self.db.fetchval("jobs_due_gates", limit)
        if not gates:
            return []
        async with self.db.transaction() as tx:
            await tx.execute("gates_lock", gates)
            rows = await tx.fetch("jobs_claim", worker_id, limit, self.lease_ms, gates)
        return self._claims(rows)

    def _claims(self, rows: list[Any]) -> list[Claim]:
        claims = []
        for row in rows:
            self.feed.touch(row["app_id"], "runs", row["run_id"])
            config = row["config"]
            retries = (config or {}).get("retries")
            claims.append(
                Claim(
                    run_id=row["run_id"],
                    token=row["lease_token"],
                    attempt=row["attempt"],
                    app_id=row["app_id"],
                    function_id=row["function_id"],
                    event=row["event"],
                    url=row["url"],
                    signing_key=row["signing_key"],
                    max_attempts=retries + 1 if retries is not None else self.default_max_attempts,
                    steps=row["steps"],
                    ready_at=row["ready_at"],
                    db_now=row["now"],
                    function_exists=config is not None,
                )
            )
        return claims

    async def next_due(self) -> datetime | None:
        return await self.db.fetchval("jobs_next_due")  # type: ignore[no-any-return]

    async def release(self, claim: Claim) -> None:
        """Give the job back, due now (graceful drain)."""
        await self.db.execute("jobs_release", claim.run_id, claim.token)

    async def apply(self, claim: Claim, op: Op, timing: Timing) -> Outcome:
        """Store the app's answer to one invoke."""
        outcome = await self._apply(claim, op, timing)
        self.feed.touch(claim.app_id, "runs", claim.run_id)  # after the commit: listeners refetch
        return outcome

    async def _apply(self, claim: Claim, op: Op, timing: Timing) -> Outcome:
        kind = op["op"]
        if kind == "step":
            return await self._step(claim, op, timing)  # type: ignore[arg-type]
        if kind == "sleep":
            return await self._sleep(claim, op, timing)  # type: ignore[arg-type]
        if kind == "wait":
            return await self._wait(claim, op, timing)  # type: ignore[arg-type]
        if kind == "done":
            return await self._done(claim, op)  # type: ignore[arg-type]
        error: ErrorOp = op  # type: ignore[assignment]
        return await self._attempt_failed(
            claim, error["message"], timing, step_id=error["id"], retryable=error["retryable"]
        )

    async def _step(self, claim: Claim, op: StepOp, timing: Timing) -> Outcome:
        if op["id"] in claim.steps:
            return await self._attempt_failed(
                claim,
                f"step {op['id']!r} is already completed in this run; a handler must reach its steps "
                "in the same order on every replay",
                timing,
                step_id=None,
                retryable=True,
            )
        if not await self._keep_lease(claim):
            return Outcome.LOST
        now = await self.steps.complete(
            StepRow(
                claim.run_id,
                claim.token,
                op["id"],
                claim.attempt,
                op["data"],
                _ms_between(claim.ready_at, timing.started_at),
                timing.app_ms,
                timing.started_at,
                timing.ended_at,
            )
        )
        if now is None:
            return Outcome.LOST
        claim.steps[op["id"]] = {"type": "run", "data": op["data"]}
        claim.attempt = 1
        claim.ready_at = timing.ended_at
        claim.db_now = now
        return Outcome.CONTINUE

    async def _keep_lease(self, claim: Claim) -> bool:
        """Renew the lease when a third of it has passed, or reset the attempt after a retry succeeded.

        Most steps skip this: the lease taken at claim covers many fast rounds, and the hot path then
        writes only the step row.
        """
        if claim.attempt == 1 and time.monotonic() - claim.renewed < self.lease_ms / 3000:
            return True
        if await self.db.fetchval("jobs_renew", claim.run_id, claim.token, self.lease_ms) is None:
            return False
        claim.renewed = time.monotonic()
        return True

    async def _sleep(self, claim: Claim, op: SleepOp, timing: Timing) -> Outcome:
        until = datetime.fromtimestamp(op["until_ms"] / 1000, UTC)
        row = await self.db.fetchrow(
            "step_park_sleep", claim.run_id, claim.token, op["id"], until, claim.attempt, timing.app_ms
        )
        return Outcome.LOST if row is None else Outcome.PARKED

    async def _wait(self, claim: Claim, op: WaitOp, timing: Timing) -> Outcome:
        until = datetime.fromtimestamp(op["until_ms"] / 1000, UTC)
        async with self.db.transaction() as tx:
            await tx.execute("step_wait_lock", claim.app_id, op["event"])
            # An event that arrived after this invoke began resolves the wait at once.
            candidates = await tx.fetch("events_since", claim.app_id, op["event"], claim.db_now, op["match"])
            found = next((dict(c) for c in candidates if matches(op["match"], c["data"])), None)
            if found is not None:
                now = await tx.fetchval(
                    "step_resolve_wait_now",
                    claim.run_id,
                    claim.token,
                    op["id"],
                    claim.attempt,
                    found,
                    timing.app_ms,
                    self.lease_ms,
                )
                if now is None:
                    return Outcome.LOST
                claim.steps[op["id"]] = {"type": "wait", "data": found}
                claim.attempt = 1
                claim.ready_at = timing.ended_at
                claim.db_now = now
                return Outcome.CONTINUE
            row = await tx.fetchrow(
                "step_park_wait",
                claim.run_id,
                claim.token,
                op["id"],
                op["event"],
                op["match"],
                timing.app_ms,
                until,
                claim.attempt,
            )
        return Outcome.LOST if row is None else Outcome.PARKED

    async def _done(self, claim: Claim, op: DoneOp) -> Outcome:
        row = await self.db.fetchrow("run_complete", claim.run_id, claim.token, op["data"])
        return Outcome.LOST if row is None else Outcome.ENDED

    async def attempt_failed(
        self, claim: Claim, message: str, timing: Timing, *, step_id: str | None, retryable: bool
    ) -> Outcome:
        """One attempt failed: retry after a backoff, or fail the run when out of attempts."""
        try:
            return await self._attempt_failed(claim, message, timing, step_id=step_id, retryable=retryable)
        finally:
            self.feed.touch(claim.app_id, "runs", claim.run_id)

    async def _attempt_failed(
        self, claim: Claim, message: str, timing: Timing, *, step_id: str | None, retryable: bool
    ) -> Outcome:
        error = {"message": message, "attempt": claim.attempt}
        if retryable and claim.attempt < claim.max_attempts:
            row = await self.db.fetchrow(
                "step_retry",
                claim.run_id,
                claim.token,
                step_id,
                error,
                backoff_ms(claim.attempt),
                timing.app_ms,
                timing.started_at,
            )
            return Outcome.LOST if row is None else Outcome.PARKED
        if retryable:
            error["message"] = f"{message} (gave up after {claim.attempt} attempts)"
        row = await self.db.fetchrow(
            "run_fail", claim.run_id, claim.token, step_id, error, timing.app_ms, timing.started_at
        )
        return Outcome.LOST if row is None else Outcome.ENDED
