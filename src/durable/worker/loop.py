"""Worker loops: claim due jobs in batches, drive each claimed run, and drain on shutdown.

Each loop keeps up to `invokes_per_worker` runs in flight. A loop sleeps until the earliest job is due
(a free job's due time or a lease's expiry, so crashed workers' runs are picked up on time), or until
Postgres NOTIFY on `durable_jobs` (or a run finishing here) wakes it. No polling interval sets latency.

With tracing on (`Invoker.tracing`, engine/tracing.py), each drive of a run is a `durable.run` span and
each round a `durable.invoke` span whose `traceparent` goes to the app; off, it costs one `is None` test
per round.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import datetime
from typing import TYPE_CHECKING

from durable.engine.claim import Claim
from durable.engine.execution import Executor, Outcome, Timing
from durable.engine.flow import Handoff
from durable.errors import InvokeError
from durable.metrics import INVOKE_SECONDS, INVOKES, RUNS_ENDED
from durable.store.listen import Listener
from durable.store.outage import RETRYABLE
from durable.types import Op
from durable.worker.invoke import Invoker

if TYPE_CHECKING:
    from durable.engine.tracing import RunSpan

log = logging.getLogger("durable.worker")

IDLE_RECHECK_S = 10.0  # the safety net should a notification be lost


class Wakeup:
    """One LISTEN connection per process; wakes every loop of the process.

    The connection survives Postgres restarts (store/listen.py); once it listens again the loops are
    woken, so a job whose NOTIFY fell in the gap is claimed then rather than at the safety poll.
    """

    def __init__(self) -> None:
        self.event = asyncio.Event()
        # Counts notifications (work became due somewhere, perhaps in another process) and listener
        # restorations: a loop that claimed since the last one has seen all the due work there is.
        self.generation = 0
        self._listener: Listener | None = None

    async def start(self, dsn: str) -> None:
        self._listener = Listener(dsn, "durable_jobs", lambda _: self.notified(), on_restored=self.notified)
        await self._listener.start()

    def notified(self) -> None:
        self.generation += 1
        self.event.set()

    def set(self) -> None:
        self.event.set()

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()


class WorkerLoop:
    def __init__(
        self, executor: Executor, invoker: Invoker, wakeup: Wakeup, *, name: str, capacity: int
    ) -> None:
        self.executor = executor
        self.invoker = invoker
        self.wakeup = wakeup
        self.name = name
        self.capacity = capacity
        self.inflight: set[asyncio.Task[None]] = set()
        self.stopping = False
        self._slot_freed = asyncio.Event()
        # The last claim took everything it could (fewer than it asked for), as of `_seen`.
        self._caught_up = False
        self._seen = -1

    def drained(self) -> bool:
        """Whether no claimable work is waiting, as far as this loop knows: its last claim took less than
        it asked for, no notification arrived since, and it has not been full since (work due while a
        loop is full goes unseen). A hand-off is fair only then (docs/decisions.md, "Hand-off")."""
        return self._caught_up and self._seen == self.wakeup.generation

    async def run(self) -> None:
        while not self.stopping:
            free = self.capacity - len(self.inflight)
            if free <= 0:
                self._caught_up = False
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            self.wakeup.event.clear()
            seen = self.wakeup.generation
            wanted = min(free, 64)
            try:
                # One claim, fair across workspaces; gated runs and capped workspaces under their locks.
                claims = self._spawn(await self.executor.claim(self.name, wanted))
            except RETRYABLE as exc:  # Postgres restarting or away: the loop must outlive it
                log.warning("%s: claim failed (%s); retrying in 1s", self.name, exc)
                self._caught_up = False
                await asyncio.sleep(1)
                continue
            self._caught_up, self._seen = len(claims) < wanted, seen
            if len(claims) == wanted:
                continue  # more may be due right now
            await self._sleep_until_due()

    def _spawn(self, claims: list[Claim]) -> list[Claim]:
        for claim in claims:
            task = asyncio.create_task(self.drive(claim))
            self.inflight.add(task)
            task.add_done_callback(self._done)
        return claims

    async def _sleep_until_due(self) -> None:
        delay = IDLE_RECHECK_S
        try:
            due_ms = await self.executor.next_due_ms()
        except RETRYABLE:
            due_ms = None
        if due_ms is not None:
            delay = min(delay, max(0.0, due_ms / 1000) + 0.002)
        if delay <= 0.002:
            await asyncio.sleep(0)  # a job is due already: it may be held by another worker's claim
            delay = 0.05
        try:
            await asyncio.wait_for(self.wakeup.event.wait(), delay)
        except TimeoutError:
            pass

    def _done(self, task: asyncio.Task[None]) -> None:
        self.inflight.discard(task)
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: driving a run failed", self.name, exc_info=task.exception())

    async def drive(self, claim: Claim) -> None:
        """Invoke the app round after round while the run keeps going; stop when it parks or ends.

        Whatever goes wrong ends in a bounded attempt: an unexpected error here fails the attempt in
        flight like any other retryable error, instead of leaving the run to be re-driven at every
        lease expiry without end.
        """
        tracing = self.invoker.tracing
        span = None if tracing is None else tracing.run(claim.run_id, claim.function_id, claim.app_id)
        outcome: Outcome | None = None
        try:
            outcome = await self._drive(claim, span)
        except Exception as exc:
            log.exception("%s: driving run %s failed", self.name, claim.run_id)
            if span is not None:
                span.end("failed", exc)
                span = None
            now = self.executor.now()
            message = f"the engine failed while driving the run: {type(exc).__name__}: {exc}"
            try:
                await self.executor.attempt_failed(
                    claim, message, Timing(now, now), step_id=None, retryable=True
                )
            except RETRYABLE as again:
                log.warning("%s: run %s: could not record the failure (%s)", self.name, claim.run_id, again)
        finally:
            if span is not None:
                span.end(outcome.value if outcome is not None else "failed")

    async def _drive(self, claim: Claim, span: RunSpan | None) -> Outcome:
        """Drive the run; return how the last round left it (`Outcome.LOST` also when the lease was
        found lost before an invoke, `Outcome.CONTINUE` when the loop stopped between two rounds)."""
        if not claim.function_exists:
            message = (
                f"function {claim.function_id!r} is no longer registered (the app's last sync removed it)"
            )
            now = self.executor.now()
            outcome = await self.executor.attempt_failed(
                claim, message, Timing(now, now), step_id=None, retryable=False
            )
            RUNS_ENDED.labels("failed").inc()
            return outcome
        while True:
            # No invoke without a live lease that covers it: a claim that stalled (a slow statement, a
            # Postgres restart, a paused process) is renewed, or dropped if another worker has it now.
            try:
                held = await self.executor.hold_lease(claim)
            except RETRYABLE as exc:
                log.warning("%s: run %s: could not renew its lease (%s)", self.name, claim.run_id, exc)
                return Outcome.LOST
            if not held:
                log.info(
                    "%s: run %s: lease lost before the invoke; the app is not called", self.name, claim.run_id
                )
                return Outcome.LOST
            invoke_span = None if span is None else span.invoke(claim.attempt)
            started = self.executor.now()
            try:
                op = await self.invoker.invoke(
                    claim.url,
                    claim.invoke_body(),
                    claim.keys(),
                    None if invoke_span is None else invoke_span.traceparent,
                )
            except InvokeError as exc:
                timing = Timing(started, self.executor.now())
                INVOKES.labels("error").inc()
                INVOKE_SECONDS.observe(timing.app_ms / 1000)
                queued_ms = 0 if invoke_span is None else _ms_between(claim.ready_at, started)
                outcome = await self.executor.attempt_failed(
                    claim,
                    exc.message,
                    timing,
                    step_id=None,
                    retryable=exc.retryable,
                    unreachable=exc.unreachable,
                )
                if invoke_span is not None:
                    invoke_span.end(
                        queued_ms=queued_ms,
                        app_ms=timing.app_ms,
                        op=None,
                        outcome=outcome.value,
                        error=exc.message,
                    )
                if outcome is Outcome.ENDED:
                    RUNS_ENDED.labels("failed").inc()
                return outcome
            timing = Timing(started, self.executor.now())
            INVOKES.labels("ok").inc()
            INVOKE_SECONDS.observe(timing.app_ms / 1000)
            queued_ms = 0 if invoke_span is None else _ms_between(claim.ready_at, started)
            outcome = await self.executor.apply(claim, op, timing)
            if invoke_span is not None:
                invoke_span.end(queued_ms=queued_ms, app_ms=timing.app_ms, op=op, outcome=outcome.value)
            if outcome is Outcome.ENDED:
                RUNS_ENDED.labels("completed" if _ends_done(op) else "failed").inc()
            if outcome is not Outcome.CONTINUE:
                if outcome is Outcome.PARKED or (outcome is Outcome.ENDED and claim.capped):
                    self.wakeup.set()  # a timer, or the workspace's free slots, changed: look again
                return outcome
            if self.stopping:
                await self.executor.release(claim)
                return outcome

    def stop(self) -> None:
        self.stopping = True
        self._slot_freed.set()
        self.wakeup.set()

    async def drain(self, timeout_s: float) -> int:
        """Wait for in-flight invokes; return how many were abandoned to lease expiry."""
        if self.inflight:
            _, pending = await asyncio.wait(set(self.inflight), timeout=timeout_s)
            for task in pending:
                task.cancel()
            return len(pending)
        return 0


def _ends_done(op: Op) -> bool:
    """Whether the answer ends with the handler's return: a done op, or a checkpoint whose then is one."""
    last = op.get("then") if op["op"] == "checkpoint" else op
    return isinstance(last, dict) and last["op"] == "done"


def _ms_between(a: datetime, b: datetime) -> int:
    """A round's queued time: from when the run became due (`Claim.ready_at`) to the invoke."""
    return max(0, int((b - a).total_seconds() * 1000))


def worker_name(index: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


class LocalDispatch:
    """Hands runs created by this process's API straight to one of its worker loops (engine.flow.Dispatcher).

    Only to a loop that is drained (`WorkerLoop.drained`): while any claimable work waits, new runs go
    through the queue, where the fair claim decides, so a workspace that floods events cannot take the
    slots freed for the others. A capped workspace's runs are never handed off (runs_create): its cap is
    counted under its lock, at claim.
    """

    MAX_PER_INGEST = 16  # leave most of the capacity to batched claims, which keep the queue fair

    def __init__(self, loops: list[WorkerLoop], *, lease_ms: int, default_max_attempts: int) -> None:
        self.loops = {loop.name: loop for loop in loops}
        self.lease_ms = lease_ms
        self.default_max_attempts = default_max_attempts

    def offer(self) -> Handoff | None:
        open_loops = [loop for loop in self.loops.values() if not loop.stopping and loop.drained()]
        if not open_loops:
            return None
        loop = max(open_loops, key=lambda w: w.capacity - len(w.inflight))
        free = min(loop.capacity - len(loop.inflight), self.MAX_PER_INGEST)
        if free <= 0:
            return None
        return Handoff(loop.name, free, self.lease_ms, self.default_max_attempts)

    def adopt(self, handoff: Handoff, claims: list[Claim]) -> None:
        self.loops[handoff.worker]._spawn(claims)
