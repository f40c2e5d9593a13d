"""Events in: store them, start the runs they trigger (through flow control), resume the waits they match.

All in one transaction, committed before the caller answers 2xx. The shared advisory lock per
(app, event name) pairs with the exclusive one a wait takes while being stored (see execution.py), so
an event is either seen by the wait's look-back or sees the stored wait.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import orjson

from durable.core.ids import new_id
from durable.core.jsonvalue import to_json_text
from durable.core.match import matches
from durable.engine.cancel import cancel_runs, cause
from durable.engine.claim import Claim, made_due
from durable.engine.flow import Handoff, Planner
from durable.engine.nonces import recording, refusing_replay
from durable.store.db import Conn, Database
from durable.types import EventIn

# What event_store answers per event, and, the same on every row, what runs handed to a worker start
# with (flow.Planner.basis).
_EVENT_COLUMNS = ("seq", "id", "name", "data", "ts", "functions", "waits", "cancels")
_BASIS_COLUMNS = (
    "url",
    "signing_key",
    "previous_signing_key",
    "signature_mode",
    "handed_off",
    "ready_at",
    "db_now",
    "lease_left_ms",
)


class Stored(NamedTuple):
    """What storing events did: their ids in order, the runs claimed for `handoff`'s worker (drive them
    at once), and whether it left work for the queue (a run not handed off, a debounce or batch moved,
    a wait resumed, a run cancelled): only then are worker loops woken (the transaction's NOTIFY on
    `durable_jobs` wakes every process's; docs/architecture.md, "Wake-ups")."""

    ids: list[str]
    claims: list[Claim]
    queued: bool


async def ingest(
    db: Database,
    app_id: str,
    events: list[EventIn],
    handoff: Handoff | None = None,
    *,
    nonce: str | None = None,
) -> Stored:
    """Store `events` for the app (all or nothing). `nonce`: the v2 nonce of the signed request,
    recorded in the same transaction before the events (a replay stores nothing: Unauthorized)."""
    # The event-name locks and the nonce ride in the message that opens the transaction: no round trip
    # of their own.
    opening = [_locks(app_id, events)]
    if nonce is not None:
        opening.append(recording(app_id, nonce))
    with refusing_replay(nonce):
        async with db.transaction(opening=opening) as tx:
            return await store_events(tx, app_id, events, handoff=handoff, locked=True)


def _locks(app_id: str, events: list[EventIn]) -> tuple[str, str, list[str]]:
    """The statement taking the shared (app, event name) locks for `events`, and its arguments."""
    return "event_lock_names", app_id, sorted({e["name"] for e in events})


async def store_events(
    tx: Conn,
    app_id: str,
    events: list[EventIn],
    *,
    function_id: str | None = None,
    handoff: Handoff | None = None,
    locked: bool = False,
) -> Stored:
    """Store events in `tx` and act on them; with `function_id`, they start that function (cron).
    `locked`: `tx` has taken the events' name locks already (`ingest`); they must be taken in a
    statement before the one that stores the events, whose snapshot then holds every wait committed
    before them."""
    ids = [e["id"] or new_id() for e in events]
    claims: list[Claim] = []
    queued = False
    tx.changed(app_id, "events")
    if not locked:
        await tx.execute(*_locks(app_id, events))
    sent = time.monotonic()
    rows = await tx.fetch(
        "event_store",
        app_id,
        ids,
        [e["name"] for e in events],
        [to_json_text(e["data"], "event data") for e in events],
        [e["ts"] for e in events],
        function_id,
        handoff.lease_ms if handoff is not None else 0,
    )
    stored = [{key: row[key] for key in _EVENT_COLUMNS} for row in rows]
    keys = {i: e["idempotencyKey"] for i, e in zip(ids, events, strict=True) if "idempotencyKey" in e}
    if keys:
        for row in stored:
            if row["id"] in keys:
                row["idempotencyKey"] = keys[row["id"]]
    effects: dict[int, list[dict[str, Any]]] = {}  # per event seq: runs it resumed or cancelled
    if any(row["cancels"] for row in stored):
        await cancel_matching(tx, stored, effects)
    if any(row["functions"] for row in stored):
        basis = {key: rows[0][key] for key in _BASIS_COLUMNS} | {"sent": sent}
        if not basis["handed_off"]:  # a capped workspace: its runs go through the claim, which counts
            handoff = None
        # The database clock (durable_now()): flow-control windows and due times are compared with it.
        planner = Planner(tx, app_id, rows[0]["now_ms"], handoff, basis)
        await planner.plan(stored)
        claims, queued = planner.claims, planner.queued
    if any(row["waits"] for row in stored):
        await resume_waits(tx, stored, effects)
    if effects:
        seqs = list(effects)
        outcomes = [orjson.dumps(effects[s]).decode() for s in seqs]
        await tx.execute("event_outcomes_append", app_id, seqs, outcomes)
    return Stored(ids, claims, queued or bool(effects))


async def cancel_matching(
    tx: Conn, events: list[dict[str, Any]], effects: dict[int, list[dict[str, Any]]]
) -> list[str]:
    """Cancel the active runs whose cancelOn one of `events` matches exactly (the first such event is
    named as the cause, and records {outcome: cancelled, runId} in `effects` by its seq)."""
    chosen: dict[str, dict[str, Any]] = {}
    for event in events:
        for candidate in event["cancels"]:
            if candidate["runId"] not in chosen and matches(candidate["match"], event["data"]):
                chosen[candidate["runId"]] = event
    cancelled: list[str] = []
    by_event: dict[str, list[str]] = {}
    for run_id, event in chosen.items():
        by_event.setdefault(event["id"], []).append(run_id)
    by_id = {event["id"]: event for event in chosen.values()}
    for event_id, run_ids in by_event.items():
        event = by_id[event_id]
        functions: dict[str, str] = {}
        why = cause("event", eventId=event_id, eventName=event["name"])
        done = await cancel_runs(tx, run_ids, why, functions)
        chosen_here = set(run_ids)
        for run_id in done:
            if run_id in chosen_here:  # descendants cancelled with them are the runs' own record
                entry = {"outcome": "cancelled", "runId": run_id, "functionId": functions[run_id]}
                effects.setdefault(event["seq"], []).append(entry)
        cancelled += done
    return cancelled


async def resume_waits(
    tx: Conn, events: list[dict[str, Any]], effects: dict[int, list[dict[str, Any]]] | None = None
) -> int:
    """Resolve every wait one of `events` matches exactly (the first such event wins, and records
    {outcome: resumed, runId, functionId} in `effects` by its seq)."""
    chosen: dict[str, dict[str, Any]] = {}
    for event in events:
        for wait in event["waits"]:
            if wait["runId"] not in chosen and matches(wait["match"], event["data"]):
                chosen[wait["runId"]] = event
    if not chosen:
        return 0
    run_ids = sorted(chosen)
    await tx.fetch("waits_lock_jobs", run_ids)
    keys = ("id", "name", "data", "ts")
    resuming = {event["seq"]: event for event in chosen.values()}  # each event once, however many it resumes
    order = {seq: k for k, seq in enumerate(resuming, start=1)}
    events_json = [to_json_text({key: event[key] for key in keys}, "event") for event in resuming.values()]
    picks = [order[chosen[r]["seq"]] for r in run_ids]
    resumed = await tx.fetch("waits_resolve", run_ids, picks, events_json)
    await made_due(tx, len(resumed))
    for row in resumed:
        tx.changed(row["app_id"], "runs", row["id"])
        if effects is not None:
            entry = {"outcome": "resumed", "runId": row["id"], "functionId": row["function_id"]}
            effects.setdefault(chosen[row["id"]]["seq"], []).append(entry)
    return len(resumed)
