"""Cancelling runs: one home for every cause (a user, an event matching cancelOn, a singleton's new run,
a parent's cancel, a bulk cancel).

Cancelling a run cancels the runs it invoked that are still active (recursively), and resolves the
invoke step of its parent, when that parent is not cancelled with it, with a `cancelled` error the
parent's handler can catch. All in the caller's transaction, with every job involved locked first in
run_id order (docs/architecture.md, "Lock order").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from durable.store.db import Conn

Kind = Literal["user", "event", "singleton", "parent", "bulk"]


def cause(kind: Kind, **detail: str) -> dict[str, Any]:
    """What `runs.cancelled_by` records: {kind, eventId?, eventName?, runId?}."""
    return {"kind": kind, **detail}


async def cancel_runs(
    tx: Conn, run_ids: Sequence[str], why: dict[str, Any], functions: dict[str, str] | None = None
) -> list[str]:
    """Cancel the active runs among `run_ids` (and their active descendants) in `tx`; returns the ids
    of every run cancelled (and fills `functions`, when given, with each one's function id). Runs
    already ended are left as they are."""
    if not run_ids:
        return []
    ids = sorted(set(run_ids))
    await tx.fetch("runs_cancel_lock", ids)
    rows = await tx.fetch("runs_cancel_many", ids, why)
    cancelled = {r["id"] for r in rows}
    for r in rows:
        tx.changed(r["app_id"], "runs", r["id"])
        if functions is not None:
            functions[r["id"]] = r["function_id"]
        parent = r["parent_run_id"]
        if parent is not None and parent not in cancelled:
            await resolve_parent(
                tx,
                parent,
                r["parent_step_id"],
                r["id"],
                output=None,
                error=child_error("the invoked run was cancelled", "cancelled", r["id"], r["function_id"]),
            )
    if any(r["gated"] for r in rows):
        await tx.execute("notify_jobs")
    return [r["id"] for r in rows]


def child_error(message: str, reason: str, run_id: str | None, function_id: str) -> dict[str, Any]:
    """The `error` of a resolved invoke memo (docs/protocol.md, "Composition")."""
    return {"message": message, "reason": reason, "runId": run_id, "functionId": function_id}


async def resolve_parent(
    tx: Conn,
    parent_run_id: str,
    step_id: str,
    child_run_id: str,
    *,
    output: Any,
    error: dict[str, Any] | None,
) -> bool:
    """Complete the parent's invoke step pending on `child_run_id` (the parent's job must be locked
    already); the parent becomes due. False when the step was no longer pending (it timed out first)."""
    row = await tx.fetchrow("invoke_resolve", parent_run_id, step_id, child_run_id, output, error)
    if row is not None and row["resolved"]:
        tx.changed(row["app_id"], "runs", parent_run_id)
        return True
    return False
