"""Driving runs: claim due jobs, and turn each answer (op) of the app into one transaction.

A worker holds a run's job under a lease token from claim until the run parks or ends. Every write
below is fenced by that token: a worker whose lease was taken over (it stalled, or the run was
cancelled) stores nothing and stops. After a `step` the worker keeps the lease and invokes again at
once; only sleeps, waits, retries and crashes go back through the queue.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from durable.core.backoff import backoff_ms, unreachable_backoff_ms
from durable.core.durations import format_duration
from durable.core.jsonvalue import to_json_text
from durable.core.match import matches
from durable.core.signing import Keys, Mode
from durable.engine.changes import ChangeFeed
from durable.engine.group_commit import StepRow, StepWriter
from durable.errors import InvalidInput
from durable.store.db import Database
from durable.store.outage import RETRYABLE, is_unavailable
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
    # The database's real clock (clock_timestamp(), not the movable durable_clock(): it is compared with
    # events.received_at, which is real too) when the claim (or the last commit) happened.
    db_now: datetime
    # The local monotonic time until which the lease surely holds: the time before the statement that
    # took (or renewed) it was sent, plus what the statement reported left of it. A stall anywhere after
    # that (a slow statement, a Postgres restart, a paused process) only brings the deadline closer.
    lease_deadline: float = 0.0
    function_exists: bool = True
    previous_key: str | None = None  # set while the workspace's key is rotated (core/signing.py Keys)
    signature_mode: Mode = "v2"

    def keys(self) -> Keys:
        return Keys(self.signing_key, self.previous_key, self.signature_mode)

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


def invoke_timeout(lease_ms: int) -> int:
    """The app-call timeout: slightly below the lease, so an invoke gives up before its lease could
    lapse (a lease must cover a whole invoke; see `Executor.hold_lease`)."""
    return lease_ms - min(1000, lease_ms // 10)


def _step_of(op: Op) -> str | None:
    """The step an op belongs to, if it names one (a done op does not)."""
    return op.get("id")  # type: ignore[return-value]


log = logging.getLogger("durable.worker")

# Statements one claim may take: the lock-free round, a round under the locks it named, and, when a
# gate's free slots cut its candidates short, the same pair again (the gate is full then, so the jobs
# behind its backlog are seen). Runs outside gates and caps take one statement.
CLAIM_ROUNDS = 4


class Executor:
    """The transactional rules for claimed runs."""

    def __init__(
        self,
        db: Database,
        *,
        lease_ms: int,
        default_max_attempts: int,
        feed: ChangeFeed | None = None,
        invoke_timeout_ms: int | None = None,
        unreachable_ms: int = 900_000,
    ) -> None:
        self.db = db
        self.feed = feed or ChangeFeed(None)
        self.lease_ms = lease_ms
        self.invoke_timeout_ms = invoke_timeout(lease_ms) if invoke_timeout_ms is None else invoke_timeout_ms
        self.default_max_attempts = default_max_attempts
        self.unreachable_ms = unreachable_ms  # DURABLE_UNREACHABLE_MS: the outage a run outlasts
        self.steps = StepWriter(db)

    async def claim(self, worker_id: str, limit: int) -> list[Claim]:
        """Claim up to `limit` due runs, shared fairly among workspaces (jobs_claim).

        The first statement runs alone and takes what needs no lock. When the fair order picked runs of
        concurrency gates or capped workspaces, it names them; the next round takes their advisory locks
        in a transaction and claims again, counting inside the locks, so every limit is exact however
        many processes claim at once. A round whose candidates a gate's free slots cut short is followed
        by another too (the gate is full now, so its backlog no longer hides the jobs behind it).
        """
        claims: list[Claim] = []
        gates: list[str] = []
        apps: list[str] = []
        for _ in range(CLAIM_ROUNDS):
            wanted = limit - len(claims)
            sent = time.monotonic()
            if gates or apps:
                async with self.db.transaction() as tx:
                    await tx.execute("claim_locks", gates, apps)
                    rows = await tx.fetch("jobs_claim", worker_id, wanted, self.lease_ms, gates, apps)
            else:
                rows = await self.db.fetch("jobs_claim", worker_id, wanted, self.lease_ms, [], [])
            got = self._claims(rows, sent)
            claims += got
            head = rows[0]
            gates, apps = list(head["lock_gates"]), list(head["lock_apps"])
            if len(claims) >= limit or not (gates or apps or (head["trimmed"] and got)):
                break
        return claims

    def _claims(self, rows: list[Any], sent: float) -> list[Claim]:
        claims = []
        for row in rows:
            if row["run_id"] is None:  # jobs_claim answers one row even when it claims nothing
                continue
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
                    lease_deadline=sent + row["lease_left_ms"] / 1000,
                    function_exists=config is not None,
                    previous_key=row["previous_signing_key"],
                    signature_mode=row["signature_mode"],
                )
            )
        return claims

    async def next_due_ms(self) -> float | None:
        """Milliseconds until the earliest job is due on the database clock (≤ 0: due now), or None."""
        ms = await self.db.fetchval("jobs_next_due")
        return None if ms is None else float(ms)

    def now(self) -> datetime:
        """The clock invoke timings are measured with: Python's, moved like the database clock
        (`Database.now`), so queued and app times stay consistent with database times."""
        return self.db.now()

    async def release(self, claim: Claim) -> None:
        """Give the job back, due now (graceful drain)."""
        await self.db.execute("jobs_release", claim.run_id, claim.token)

    async def hold_lease(self, claim: Claim) -> bool:
        """Whether the lease covers a whole invoke (the app-call timeout) from now, renewing it when it
        would not. False: the lease is lost (taken over, cancelled) and the app must not be called."""
        for _ in range(3):  # a renewal that itself stalled past the margin is retried, twice at most
            if claim.lease_deadline - time.monotonic() >= self.invoke_timeout_ms / 1000:
                return True
            if not await self._renew(claim, claim.attempt):
                return False
        return False

    async def _renew(self, claim: Claim, attempt: int) -> bool:
        sent = time.monotonic()
        left_ms = await self.db.fetchval("jobs_renew", claim.run_id, claim.token, self.lease_ms, attempt)
        if left_ms is None:
            return False
        claim.lease_deadline = sent + left_ms / 1000
        return True

    async def apply(self, claim: Claim, op: Op, timing: Timing) -> Outcome:
        """Store the app's answer to one invoke; never raises for a database problem.

        A value the store cannot hold, or a statement Postgres refuses, fails the attempt (bounded by
        the step's attempts). While the database is unreachable the same answer is offered again until
        the lease runs out: every write is fenced on the lease token, so an answer whose commit was
        lost with the connection is not stored twice (the retry finds the lease changed: LOST).
        """
        delay = 0.1
        while True:
            try:
                outcome = await self._apply(claim, op, timing)
                break
            except InvalidInput as exc:  # refused before anything was written
                outcome = await self._attempt_failed_quietly(claim, exc.message, timing, _step_of(op))
                break
            except RETRYABLE as exc:
                if is_unavailable(exc):
                    if time.monotonic() + delay >= claim.lease_deadline:
                        log.warning(
                            "run %s: database unreachable until the lease ran out (%s)", claim.run_id, exc
                        )
                        return Outcome.LOST
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                log.exception("run %s: storing the app's %s op failed", claim.run_id, op["op"])
                message = f"the engine could not store the app's answer: {exc}"
                outcome = await self._attempt_failed_quietly(claim, message, timing, _step_of(op))
                break
        self.feed.touch(claim.app_id, "runs", claim.run_id)  # after the commit: listeners refetch
        return outcome

    async def _attempt_failed_quietly(
        self, claim: Claim, message: str, timing: Timing, step_id: str | None
    ) -> Outcome:
        """A retryable failed attempt, from `apply`; if even that cannot be written, the run is left to
        its lease's expiry, as after a crash."""
        try:
            return await self._attempt_failed(claim, message, timing, step_id=step_id, retryable=True)
        except RETRYABLE as exc:
            log.warning("run %s: could not record a failed attempt (%s)", claim.run_id, exc)
            return Outcome.LOST

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
        output = to_json_text(op["data"], f"step {op['id']!r}: result")
        # The first step stored after a retry resets the job's attempt counter (and renews the lease).
        if claim.attempt != 1 and not await self._renew(claim, 1):
            return Outcome.LOST
        now = await self.steps.complete(
            StepRow(
                claim.run_id,
                claim.token,
                op["id"],
                claim.attempt,
                output,
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
        to_json_text(op["data"], "the run's output")  # refuses what the store cannot hold, by name
        row = await self.db.fetchrow("run_complete", claim.run_id, claim.token, op["data"])
        return Outcome.LOST if row is None else Outcome.ENDED

    async def attempt_failed(
        self,
        claim: Claim,
        message: str,
        timing: Timing,
        *,
        step_id: str | None,
        retryable: bool,
        unreachable: bool = False,
    ) -> Outcome:
        """One attempt failed: retry after a backoff, or fail the run when out of attempts.

        `unreachable`: the app ran nothing (InvokeError.unreachable); the attempt is not used up.
        """
        try:
            return await self._attempt_failed(
                claim, message, timing, step_id=step_id, retryable=retryable, unreachable=unreachable
            )
        finally:
            self.feed.touch(claim.app_id, "runs", claim.run_id)

    async def _attempt_failed(
        self,
        claim: Claim,
        message: str,
        timing: Timing,
        *,
        step_id: str | None,
        retryable: bool,
        unreachable: bool = False,
    ) -> Outcome:
        if unreachable and retryable:
            return await self._unreachable(claim, message, timing)
        error = {"message": message, "attempt": claim.attempt}
        if retryable and claim.attempt < claim.max_attempts:
            retry = {
                "reason": message,
                "attempt": claim.attempt + 1,
                "maxAttempts": claim.max_attempts,
                "unreachable": False,
            }
            row = await self.db.fetchrow(
                "step_retry",
                claim.run_id,
                claim.token,
                step_id,
                error,
                backoff_ms(claim.attempt),
                timing.app_ms,
                timing.started_at,
                1,
                retry,
            )
            return Outcome.LOST if row is None else Outcome.PARKED
        if retryable:
            error["message"] = f"{message} (gave up after {claim.attempt} attempts)"
        row = await self.db.fetchrow(
            "run_fail", claim.run_id, claim.token, step_id, error, timing.app_ms, timing.started_at
        )
        return Outcome.LOST if row is None else Outcome.ENDED

    async def _unreachable(self, claim: Claim, message: str, timing: Timing) -> Outcome:
        """The app ran nothing: back off without using up the step's attempt, and fail the run only once
        the app has been unreachable, without a break, for `unreachable_ms`.

        The outage is unbroken when the last retry was an unreachable one and the invoke carried as many
        steps as then: every answer of the app but `error` adds a step by the next invoke, and an error
        answer writes an attempt retry, which ends the outage's record.
        """
        progress = len(claim.steps)
        async with self.db.transaction() as tx:
            state = await tx.fetchrow("step_retry_state", claim.run_id, claim.token)
            if state is None:
                return Outcome.LOST
            now_ms = int(state["now_ms"])
            last = state["retry"] or {}
            unbroken = last.get("unreachable") is True and last.get("progress") == progress
            since_ms = int(last["since"]) if unbroken else now_ms
            tries = int(last.get("tries", 0)) + 1 if unbroken else 1
            left_ms = since_ms + self.unreachable_ms - now_ms
            if left_ms <= 0:
                elapsed = now_ms - since_ms
                shown = format_duration(elapsed - elapsed % 1000) if elapsed >= 1000 else f"{elapsed}ms"
                error = {
                    "message": f"the app at {claim.url} was unreachable for {shown}, longer than "
                    f"DURABLE_UNREACHABLE_MS ({self.unreachable_ms} ms); last try: {message}",
                    "attempt": claim.attempt,
                }
                row = await tx.fetchrow(
                    "run_fail", claim.run_id, claim.token, None, error, timing.app_ms, timing.started_at
                )
                return Outcome.LOST if row is None else Outcome.ENDED
            retry = {
                "reason": message,
                "attempt": claim.attempt,
                "maxAttempts": claim.max_attempts,
                "unreachable": True,
                "since": since_ms,
                "tries": tries,
                "progress": progress,
            }
            # The last try falls at the end of the budget, so a run outlasts an outage of exactly it.
            delay = min(unreachable_backoff_ms(tries), left_ms)
            error = {"message": message, "attempt": claim.attempt}
            row = await tx.fetchrow(
                "step_retry",
                claim.run_id,
                claim.token,
                None,
                error,
                delay,
                timing.app_ms,
                timing.started_at,
                0,
                retry,
            )
        return Outcome.LOST if row is None else Outcome.PARKED
