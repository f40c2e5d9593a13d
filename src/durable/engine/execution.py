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

from durable.core.backoff import backoff_ms, unreachable_backoff_ms
from durable.core.durations import format_duration
from durable.core.ids import new_id
from durable.core.jsonvalue import to_json_text
from durable.core.match import matches
from durable.engine.cancel import child_error, resolve_parent
from durable.engine.changes import ChangeFeed
from durable.engine.claim import Claim
from durable.engine.flow import Planner, Start
from durable.engine.group_commit import StepRow, StepWriter
from durable.engine.ingest import store_events
from durable.errors import InvalidInput
from durable.store.db import Conn, Database
from durable.store.outage import RETRYABLE, is_unavailable
from durable.types import (
    CheckpointOp,
    CheckpointStep,
    DoneOp,
    ErrorOp,
    InvokeOp,
    Op,
    SendOp,
    SleepOp,
    StepOp,
    WaitOp,
)

INVOKED_EVENT = "durable/function.invoked"  # the event name of a run started by step.invoke
FAILED_EVENT = "durable/run.failed"  # the event name of a failure handler's run
_STEP_TYPE = {"step": "run", "send": "send", "invoke": "invoke"}


class Outcome(enum.Enum):
    CONTINUE = "continue"  # the lease is still ours: invoke the next round now
    PARKED = "parked"  # sleeping, waiting, or retrying later: the job is free again
    ENDED = "ended"  # completed or failed
    LOST = "lost"  # the lease was no longer ours (cancelled, or taken over): nothing was stored


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
            for claim in got:
                if claim.pending_invokes:
                    await self._expire_invokes(claim)
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
            claims.append(
                Claim.build(
                    run_id=row["run_id"],
                    token=row["lease_token"],
                    attempt=row["attempt"],
                    app=row,
                    function_id=row["function_id"],
                    config=row["config"],
                    event=row["event"],
                    steps=row["steps"],
                    ready_at=row["ready_at"],
                    db_now=row["now"],
                    lease_left_ms=row["lease_left_ms"],
                    sent=sent,
                    default_max_attempts=self.default_max_attempts,
                    parent_run_id=row["parent_run_id"],
                    parent_step_id=row["parent_step_id"],
                    pending_invokes=row["pending_invokes"],
                    capped=row["capped"],
                )
            )
        return claims

    async def _expire_invokes(self, claim: Claim) -> None:
        """A claimed run parked on invokes: those past their deadline resolve with a timeout error."""
        row = await self.db.fetchrow("invoke_timeouts", claim.run_id, claim.token)
        if row is not None and row["timed_out"]:
            await self._reload(claim)

    async def _reload(self, claim: Claim) -> None:
        """Read the run's memo afresh (steps resolved by others while this worker held it)."""
        claim.steps = await self.db.fetchval("run_memo", claim.run_id, claim.token)

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
            return await self._done(claim, op, timing)  # type: ignore[arg-type]
        if kind in ("invoke", "send"):
            return await self._compose(claim, [op], timing)  # type: ignore[list-item]
        if kind == "parallel":
            return await self._compose(claim, op["ops"], timing)  # type: ignore[typeddict-item]
        if kind == "checkpoint":
            return await self._checkpoint(claim, op, timing)  # type: ignore[arg-type]
        error: ErrorOp = op  # type: ignore[assignment]
        return await self._attempt_failed(
            claim, error["message"], timing, step_id=error["id"], retryable=error["retryable"]
        )

    async def _step(self, claim: Claim, op: StepOp, timing: Timing) -> Outcome:
        return await self._store(claim, [op], timing)

    async def _checkpoint(self, claim: Claim, op: CheckpointOp, timing: Timing) -> Outcome:
        """Consecutive steps the app executed in this invoke, stored like one step (one statement fenced
        on the lease: all or none), then the op that stopped them, applied as the next invoke's answer
        would be (None: a bound stopped them, so invoke again at once)."""
        then = op["then"]
        if then is not None and then["op"] == "done" and claim.parent_run_id is None:
            return await self._store(claim, op["steps"], timing, done=then)  # one statement
        began = claim.db_now  # when this invoke began, on the database clock
        outcome = await self._store(claim, op["steps"], timing)
        if outcome is not Outcome.CONTINUE or then is None:
            return outcome
        # `then` was reached in this same invoke: a wait must see every event since it began, not only
        # those since the steps' commit, and a park's durable time counts from it (a 4 s sleep is ≥ 4 s).
        claim.db_now, claim.ready_at = began, timing.started_at
        return await self._apply(claim, then, timing)

    async def _store(
        self,
        claim: Claim,
        steps: list[StepOp] | list[CheckpointStep],
        timing: Timing,
        *,
        done: DoneOp | None = None,
    ) -> Outcome:
        """Store new steps' results in one fenced statement (group-committed with other runs' steps);
        with `done`, complete the run in the same statement (a run that no parent waits on; none of
        `steps` after a plain done)."""
        again = next((step["id"] for step in steps if step["id"] in claim.steps), None)
        if again is not None:
            return await self._attempt_failed(
                claim,
                f"step {again!r} is already completed in this run; a handler must reach its steps "
                "in the same order on every replay",
                timing,
                step_id=None,
                retryable=True,
            )
        outputs = [to_json_text(step["data"], f"step {step['id']!r}: result") for step in steps]
        queued_ms = _ms_between(claim.ready_at, timing.started_at)
        rows = [
            StepRow(
                claim.run_id,
                claim.token,
                step["id"],
                claim.attempt,
                output,
                queued_ms,
                timing.app_ms,
                timing.started_at,
                timing.ended_at,
            )
            for step, output in zip(steps, outputs, strict=True)
        ]
        if done is not None:  # the run ends: its job goes, so no attempt counter to reset
            output_json = to_json_text(done["data"], "the run's output")
            ended = await self.steps.complete_run(claim.run_id, claim.token, output_json, *rows)
            return Outcome.ENDED if ended else Outcome.LOST
        # The first step stored after a retry resets the job's attempt counter (and renews the lease).
        if claim.attempt != 1 and not await self._renew(claim, 1):
            return Outcome.LOST
        now = await self.steps.complete(*rows)
        if now is None:
            return Outcome.LOST
        for step in steps:
            claim.steps[step["id"]] = {"type": "run", "data": step["data"]}
        claim.attempt = 1
        claim.ready_at = timing.ended_at
        claim.db_now = now
        return Outcome.CONTINUE

    async def _sleep(self, claim: Claim, op: SleepOp, timing: Timing) -> Outcome:
        until = datetime.fromtimestamp(op["until_ms"] / 1000, UTC)
        row = await self.db.fetchrow(
            "step_park_sleep",
            claim.run_id,
            claim.token,
            op["id"],
            until,
            claim.attempt,
            timing.app_ms,
            timing.ended_at,
        )
        return Outcome.LOST if row is None else Outcome.PARKED

    async def _wait(self, claim: Claim, op: WaitOp, timing: Timing) -> Outcome:
        """Park on the event, unless one that arrived after this invoke began resolves the wait at once.

        The common case is one statement (durable_wait_park, migration 0014): the (app, event name)
        lock, the look-back and the park, so the lock that every ingest of that name pairs with is held
        for one call and its commit. Only when events of that name arrived since the invoke began is the
        choice made here, under the lock in a transaction (the look-back's filter is `@>`; the exact
        match is core/match.py's)."""
        until = datetime.fromtimestamp(op["until_ms"] / 1000, UTC)
        args = (
            claim.run_id,
            claim.token,
            op["id"],
            claim.app_id,
            op["event"],
            op["match"],
            claim.db_now,  # an event that arrived after this invoke began resolves the wait at once
            timing.app_ms,
            until,
            claim.attempt,
        )
        row = await self.db.fetchrow("wait_park", *args, True, True)
        assert row is not None
        if row["outcome"] != "arrived":
            return Outcome.PARKED if row["outcome"] == "parked" else Outcome.LOST
        async with self.db.transaction() as tx:
            row = await tx.fetchrow("wait_park", *args, True, False)
            assert row is not None
            candidates = row["candidates"] or []
            found = next((c for c in candidates if matches(op["match"], c["data"])), None)
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
            row = await tx.fetchrow("wait_park", *args, False, True)
        assert row is not None
        return Outcome.PARKED if row["outcome"] == "parked" else Outcome.LOST

    async def _compose(
        self, claim: Claim, ops: list[StepOp | ErrorOp | InvokeOp | SendOp], timing: Timing
    ) -> Outcome:
        """Store an invoke, a send, or the ops of a parallel answer, in one transaction (all or none).

        Then: an error among them retries (or fails) as that error alone would; an answer whose only ops
        are invokes now pending parks the run until a child ends or a deadline passes; otherwise the
        worker goes on at once (a step or send stored: the replay can get further). An invoke
        the run reported pending that has resolved meanwhile means the memo is stale: read it again and
        go on (the replay will see the child's result)."""
        error = next((op for op in ops if op["op"] == "error"), None)
        stored = [op for op in ops if op["op"] != "error"]
        for op in stored:
            if op["id"] in claim.steps:
                message = (
                    f"step {op['id']!r} is already completed in this run; a handler must reach its steps "
                    "in the same order on every replay"
                )
                return await self._attempt_failed(claim, message, timing, step_id=None, retryable=True)
        outputs = {
            op["id"]: to_json_text(op["data"], f"step {op['id']!r}: result")
            for op in stored
            if op["op"] == "step"
        }
        if outputs and claim.attempt != 1 and not await self._renew(claim, 1):
            return Outcome.LOST  # the first step stored after a retry resets the attempt counter
        memo: dict[str, Any] = {}
        async with self.db.transaction() as tx:
            held = await tx.fetchrow("jobs_hold", claim.run_id, claim.token)
            if held is None:
                return Outcome.LOST
            prior = {
                r["id"]: r for r in await tx.fetch("steps_of", claim.run_id, [op["id"] for op in stored])
            }
            pending = stale = 0
            steps: list[StepOp] = []
            invokes: list[InvokeOp] = []
            for op in stored:
                known = prior.get(op["id"])
                if known is not None:
                    if known["type"] != _STEP_TYPE[op["op"]]:
                        message = (
                            f"step {op['id']!r} is recorded as type {known['type']!r}, but the app answered "
                            f"a {op['op']!r} op for it (the handler is not deterministic)"
                        )
                        raise InvalidInput(message)
                    if known["status"] == "waiting":
                        pending += 1  # reported again while its child runs: nothing to start
                    else:
                        stale += 1
                elif op["op"] == "step":
                    steps.append(op)
                    memo[op["id"]] = {"type": "run", "data": op["data"]}
                elif op["op"] == "send":
                    ids = await self._send(tx, claim, op, timing)
                    memo[op["id"]] = {"type": "send", "data": ids}
                else:
                    invokes.append(op)
            if steps:
                await self._store_steps(tx, claim, steps, outputs, timing)
            if invokes:
                resolved = await self._start_children(tx, claim, invokes, held["now_ms"], timing)
                memo.update(resolved)
                pending += len(invokes) - len(resolved)
            # Park only when the answer made no progress besides invokes now pending: a step, a send, or an
            # invoke resolved at once means the replay can go further (Promise.race past a pending child).
            park = error is None and pending > 0 and stale == 0 and not memo
            if park and await tx.fetchrow("run_park_invokes", claim.run_id, claim.token) is None:
                return Outcome.LOST
        claim.steps.update(memo)
        if error is not None:
            return await self._attempt_failed(
                claim, error["message"], timing, step_id=error["id"], retryable=error["retryable"]
            )
        if park:
            return Outcome.PARKED
        if stale:
            await self._reload(claim)
        claim.attempt = 1
        claim.ready_at = timing.ended_at
        claim.db_now = held["now"]
        return Outcome.CONTINUE

    async def _store_steps(
        self, tx: Conn, claim: Claim, ops: list[StepOp], outputs: dict[str, str], timing: Timing
    ) -> None:
        """The results of a parallel answer's new steps, in one statement."""
        n = len(ops)
        await tx.fetch(
            "steps_complete_many",
            [claim.run_id] * n,
            [claim.token] * n,
            [op["id"] for op in ops],
            [claim.attempt] * n,
            [outputs[op["id"]] for op in ops],
            [_ms_between(claim.ready_at, timing.started_at)] * n,
            [timing.app_ms] * n,
            [timing.started_at] * n,
            [timing.ended_at] * n,
        )

    async def _send(self, tx: Conn, claim: Claim, op: SendOp, timing: Timing) -> list[str]:
        """The events of a send op, stored as POST /e stores them, in the run's transaction."""
        ids = (await store_events(tx, claim.app_id, op["events"])).ids
        await tx.execute(
            "step_store",
            claim.run_id,
            op["id"],
            "send",
            ids,
            None,
            claim.attempt,
            _ms_between(claim.ready_at, timing.started_at),
            timing.app_ms,
            timing.started_at,
            timing.ended_at,
        )
        return ids

    async def _start_children(
        self, tx: Conn, claim: Claim, ops: list[InvokeOp], now_ms: int, timing: Timing
    ) -> dict[str, Any]:
        """Start the runs invoke ops ask for (one planner, one write) and store their pending steps.
        Returns the memo of those resolved at once (no such function); the others are pending."""
        functions = {}
        for function_id in {op["function"] for op in ops}:
            functions[function_id] = await tx.fetchrow("function_for_invoke", claim.app_id, function_id)
        resolved: dict[str, Any] = {}
        starts: list[tuple[InvokeOp, Start]] = []
        for op in ops:
            function = functions[op["function"]]
            if function is None:
                message = f"no function {op['function']!r} in this workspace"
                error = child_error(message, "not_found", None, op["function"])
                await tx.execute(
                    "step_store",
                    claim.run_id,
                    op["id"],
                    "invoke",
                    None,
                    error,
                    claim.attempt,
                    _ms_between(claim.ready_at, timing.started_at),
                    timing.app_ms,
                    timing.started_at,
                    timing.ended_at,
                )
                resolved[op["id"]] = {"type": "invoke", "data": None, "error": error}
                continue
            event = {"id": new_id(), "name": INVOKED_EVENT, "data": op["data"], "ts": now_ms}
            parent = (claim.run_id, op["id"])
            starts.append(
                (
                    op,
                    Start(
                        op["function"], function["config"], event, parent=parent, paused=function["paused"]
                    ),
                )
            )
        if starts:
            children = await Planner(tx, claim.app_id, now_ms).add_runs([start for _, start in starts])
            await tx.execute(
                "steps_invoke_pending",
                claim.run_id,
                [op["id"] for op, _ in starts],
                children,
                [
                    None if op["until_ms"] is None else datetime.fromtimestamp(op["until_ms"] / 1000, UTC)
                    for op, _ in starts
                ],
                claim.attempt,
                timing.app_ms,
            )
        return resolved

    async def _done(self, claim: Claim, op: DoneOp, timing: Timing) -> Outcome:
        if claim.parent_run_id is None:  # group-committed with other runs' completions and steps
            return await self._store(claim, [], timing, done=op)
        to_json_text(op["data"], "the run's output")  # refuses what the store cannot hold, by name
        return await self._end(
            claim, "run_complete", claim.run_id, claim.token, op["data"], output=op["data"]
        )

    async def _end(
        self,
        claim: Claim,
        statement: str,
        *args: Any,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> Outcome:
        """End the run with `statement` (run_complete or run_fail). A run that was invoked resolves its
        parent's step in the same transaction (the parent's job locked first: run_id order); a run that
        failed for good starts its function's failure handler."""
        failure = (
            error is not None and claim.on_failure is not None and claim.event.get("name") != FAILED_EVENT
        )
        if claim.parent_run_id is None and not failure:
            row = await self.db.fetchrow(statement, *args)
            return Outcome.LOST if row is None else Outcome.ENDED
        async with self.db.transaction() as tx:
            if claim.parent_run_id is not None:
                await tx.fetchrow("jobs_lock", claim.parent_run_id)
            if await tx.fetchrow(statement, *args) is None:
                return Outcome.LOST
            if claim.parent_run_id is not None and claim.parent_step_id is not None:
                problem = None
                if error is not None:
                    problem = child_error(error["message"], "failed", claim.run_id, claim.function_id)
                await resolve_parent(
                    tx, claim.parent_run_id, claim.parent_step_id, claim.run_id, output=output, error=problem
                )
            if failure and error is not None:
                await self._start_failure_handler(tx, claim, error)
        return Outcome.ENDED

    async def _start_failure_handler(self, tx: Conn, claim: Claim, error: dict[str, Any]) -> None:
        assert claim.on_failure is not None
        function = await tx.fetchrow("function_for_invoke", claim.app_id, claim.on_failure)
        if function is None:
            log.warning(
                "run %s failed; its failure handler %r no longer exists", claim.run_id, claim.on_failure
            )
            return
        now_ms = await tx.fetchval("clock_now_ms")
        data = {
            "runId": claim.run_id,
            "functionId": claim.function_id,
            "error": {"message": error["message"]},
            "event": claim.event,
        }
        event = {"id": new_id(), "name": FAILED_EVENT, "data": data, "ts": now_ms}
        await Planner(tx, claim.app_id, now_ms).add_run(
            claim.on_failure, function["config"], event, paused=function["paused"]
        )

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
        return await self._end(
            claim,
            "run_fail",
            claim.run_id,
            claim.token,
            step_id,
            error,
            timing.app_ms,
            timing.started_at,
            error=error,
        )

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
            if left_ms > 0:
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
        # Out of budget: the run fails (in a transaction of its own, which locks a parent's job first).
        elapsed = now_ms - since_ms
        shown = format_duration(elapsed - elapsed % 1000) if elapsed >= 1000 else f"{elapsed}ms"
        failed = {
            "message": f"the app at {claim.url} was unreachable for {shown}, longer than "
            f"DURABLE_UNREACHABLE_MS ({self.unreachable_ms} ms); last try: {message}",
            "attempt": claim.attempt,
        }
        return await self._end(
            claim,
            "run_fail",
            claim.run_id,
            claim.token,
            None,
            failed,
            timing.app_ms,
            timing.started_at,
            error=failed,
        )
