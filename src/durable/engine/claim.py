"""A claimed run: everything a worker needs to invoke it, and the lease it holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from durable.core.signing import Keys, Mode
from durable.store.db import Conn

# Jobs made due in one transaction from which the claim's statistics are refreshed in it (jobs_analyze).
BULK_DUE = 10_000


async def made_due(tx: Conn, count: int) -> None:
    """`count` parked jobs were made due in `tx`: past BULK_DUE, analyze jobs there, so the next claims
    plan with the true number of due jobs (a claim of 64 among 100,000 due jobs took 65 ms on stale
    statistics, 7 ms after; the ANALYZE costs about 80 ms, once, in a transaction that is large anyway)."""
    if count >= BULK_DUE:
        await tx.execute("jobs_analyze")


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
    parent_run_id: str | None = None  # the run that invoked this one, and its invoke step
    parent_step_id: str | None = None
    on_failure: str | None = None  # the function to start when this run fails for good
    pending_invokes: int = 0  # invoke steps still waiting on a child when the run was claimed
    capped: bool = False  # the workspace has a cap (max_concurrency): its run ending frees a slot

    @classmethod
    def build(
        cls,
        *,
        run_id: str,
        token: UUID,
        attempt: int,
        app: Mapping[str, Any],
        function_id: str,
        config: Mapping[str, Any] | None,
        event: dict[str, Any],
        steps: dict[str, Any],
        ready_at: datetime,
        db_now: datetime,
        lease_left_ms: int,
        sent: float,
        default_max_attempts: int,
        parent_run_id: str | None = None,
        parent_step_id: str | None = None,
        pending_invokes: int = 0,
        capped: bool = False,
    ) -> Claim:
        """The one way to make a Claim, from a claim (jobs_claim) or a hand-off (runs_create).

        `app` holds the workspace's url, signing_key, previous_signing_key and signature_mode; `config`
        is the function's options (None when the function no longer exists); `sent` is the monotonic
        time before the statement that took the lease, which had `lease_left_ms` left as it ended."""
        retries = (config or {}).get("retries")
        return cls(
            run_id=run_id,
            token=token,
            attempt=attempt,
            app_id=app["app_id"],
            function_id=function_id,
            event=event,
            url=app["url"],
            signing_key=app["signing_key"],
            max_attempts=retries + 1 if retries is not None else default_max_attempts,
            steps=steps,
            ready_at=ready_at,
            db_now=db_now,
            lease_deadline=sent + lease_left_ms / 1000,
            function_exists=config is not None,
            previous_key=app["previous_signing_key"],
            signature_mode=app["signature_mode"],
            parent_run_id=parent_run_id,
            parent_step_id=parent_step_id,
            on_failure=(config or {}).get("onFailure"),
            pending_invokes=pending_invokes,
            capped=capped,
        )

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
