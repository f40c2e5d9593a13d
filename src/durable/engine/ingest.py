"""Events in: store them, start the runs they trigger (through flow control), resume the waits they match.

All in one transaction, committed before the caller answers 2xx. The shared advisory lock per
(app, event name) pairs with the exclusive one a wait takes while being stored (see execution.py), so
an event is either seen by the wait's look-back or sees the stored wait.

Two paths (docs/architecture.md, "Ingest"). The plain one is a single autocommitted statement
(durable_ingest_plain, migration 0016): when every function the events' names trigger, as the last
ingest of each name here saw them (`Triggers`), starts its runs with no decision of the Planner's, the
engine makes those runs beforehand and the statement stores them with the events, after checking
under the locks that the functions are still those and that nothing parked may match an event. When a
check fails it writes nothing, and the general path runs: a transaction of event_store, the Planner,
waits and cancels, which also tells `Triggers` what the names trigger now.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple
from uuid import UUID, uuid4

import orjson

from durable.core import flow
from durable.core.ids import new_id
from durable.core.jsonvalue import to_json_text
from durable.core.match import matches
from durable.core.options import priority_of
from durable.engine.cancel import cancel_runs, cause
from durable.engine.claim import Claim, made_due
from durable.engine.flow import Handoff, Planner, new_claim, undecided
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


class _Start(NamedTuple):
    """A run the plain path starts: made by the engine, stored by durable_ingest_plain."""

    event_id: str
    run_id: str
    function_id: str
    config: dict[str, Any]
    priority: int
    gate: str | None  # the concurrency gate (flow.gate), and its limit
    gate_limit: int | None
    token: UUID | None  # the lease token of a run handed to this process's worker, else None (queued)


class Triggers:
    """What each (app, event name) triggers, as this process last read it (event_store's `functions`,
    or durable_triggered the first time a name is ingested here: [{id, config, paused}]). Only a hint:
    durable_ingest_plain checks it under the locks, so a stale entry (an app synced, a function paused,
    by any process) costs one fallback, never a wrong run; the general path then learns the new one.

    A refusal the general path explains by neither (the functions were as assumed, so something
    parked on the name may have matched) sends that name's ingests straight to the general path for
    PARKED_S: a name whose events keep resuming waits pays the refused statement once a second at
    most, not once per event."""

    LIMIT = 4096  # names kept; past it the memory starts over
    PARKED_S = 1.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._functions: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._refused: dict[tuple[str, str], list[dict[str, Any]]] = {}  # what a refused statement assumed
        self._general_until: dict[tuple[str, str], float] = {}

    def learn(self, app_id: str, named: list[dict[str, Any]]) -> None:
        """Keep what each of `named` ({name, functions}) triggers."""
        if len(self._functions) + len(named) > self.LIMIT:
            self._functions.clear()
            self._refused.clear()
            self._general_until.clear()
        for row in named:
            key = (app_id, row["name"])
            if self._refused.pop(key, None) == row["functions"]:
                self._general_until[key] = self.clock() + self.PARKED_S
            self._functions[key] = row["functions"]

    def refused(self, app_id: str, functions: dict[str, list[dict[str, Any]]]) -> None:
        """durable_ingest_plain refused an ingest of these names, assuming they trigger `functions`."""
        for name, assumed in functions.items():
            self._refused[(app_id, name)] = assumed

    async def plain(
        self, db: Database, app_id: str, names: list[str]
    ) -> dict[str, list[dict[str, Any]]] | None:
        """The functions of each name, when every one of them starts its runs undecided and none of
        the names was refused for what is parked on it lately (names not known yet are read first, in
        one statement)."""
        if self._general_until:
            now = self.clock()
            for name in names:
                until = self._general_until.get((app_id, name))
                if until is not None:
                    if until > now:
                        return None
                    del self._general_until[(app_id, name)]
        unknown = [name for name in names if (app_id, name) not in self._functions]
        if unknown:
            self.learn(app_id, [dict(row) for row in await db.fetch("functions_triggered", app_id, unknown)])
        found = {}
        for name in names:
            functions = self._functions.get((app_id, name))
            if functions is None or not all(undecided(f) for f in functions):
                return None
            found[name] = functions
        return found


_TRIGGERS: weakref.WeakKeyDictionary[Database, Triggers] = weakref.WeakKeyDictionary()


def triggers(db: Database) -> Triggers:
    """The Triggers of `db`'s process (one per Database)."""
    known = _TRIGGERS.get(db)
    if known is None:
        known = _TRIGGERS[db] = Triggers()
    return known


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
    known = triggers(db)
    plain = await _ingest_plain(db, known, app_id, events, handoff, nonce)
    if plain is not None:
        return plain
    # The event-name locks and the nonce ride in the message that opens the transaction: no round trip
    # of their own.
    opening = [_locks(app_id, events)]
    if nonce is not None:
        opening.append(recording(app_id, nonce))
    with refusing_replay(nonce):
        async with db.transaction(opening=opening) as tx:
            return await store_events(tx, app_id, events, handoff=handoff, locked=True, learn=known)


async def _ingest_plain(
    db: Database,
    known: Triggers,
    app_id: str,
    events: list[EventIn],
    handoff: Handoff | None,
    nonce: str | None,
) -> Stored | None:
    """The plain path (the module's docstring): the Stored, or None when it does not apply or its
    statement found a check failed (nothing was written)."""
    if any("idempotencyKey" in e for e in events):
        return None
    ids = [e["id"] or new_id() for e in events]
    if len(set(ids)) < len(ids):  # a list repeating an id: the general path keeps its first
        return None
    names = sorted({e["name"] for e in events})
    functions = await known.plain(db, app_id, names)
    if functions is None:
        return None
    runs: list[_Start] = []
    room = handoff.capacity if handoff is not None else 0
    for event_id, event in zip(ids, events, strict=True):
        for function in functions[event["name"]]:
            config = function["config"]
            gate, limit = flow.gate(function["id"], config, event["data"])
            token = None
            if gate is None and room > 0:
                token, room = uuid4(), room - 1
            priority = priority_of(config.get("priority"), event["data"])
            runs.append(_Start(event_id, new_id(), function["id"], config, priority, gate, limit, token))
    sent = time.monotonic()
    with refusing_replay(nonce):
        rows = await db.fetch(
            "ingest_plain",
            app_id,
            ids,
            [e["name"] for e in events],
            [to_json_text(e["data"], "event data") for e in events],
            [e["ts"] for e in events],
            names,
            [orjson.dumps(functions[n]).decode() for n in names],
            nonce,
            handoff.worker if handoff is not None else None,
            handoff.lease_ms if handoff is not None else 0,
            [r.event_id for r in runs],
            [r.run_id for r in runs],
            [r.function_id for r in runs],
            [r.priority for r in runs],
            [r.gate for r in runs],
            [r.gate_limit for r in runs],
            [r.token for r in runs],
        )
    if rows[0]["fallback"]:
        known.refused(app_id, functions)
        return None
    stored = {row["id"]: row for row in rows if row["seq"] is not None}
    db.changed(app_id, "events")
    basis = dict(rows[0]) | {"sent": sent}
    claims: list[Claim] = []
    queued = False
    for run in runs:
        row = stored.get(run.event_id)
        if row is None:  # an id seen in the last 24 h: not stored, no run
            continue
        db.changed(app_id, "runs", run.run_id)
        if run.token is None or handoff is None or not basis["handed_off"]:
            queued = True
            continue
        stored_event = {"id": row["id"], "name": row["name"], "data": row["data"], "ts": row["ts"]}
        claims.append(
            new_claim(
                handoff, basis, app_id, run.run_id, run.token, run.function_id, run.config, stored_event
            )
        )
    return Stored(ids, claims, queued)


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
    learn: Triggers | None = None,
) -> Stored:
    """Store events in `tx` and act on them; with `function_id`, they start that function (cron).
    `locked`: `tx` has taken the events' name locks already (`ingest`); they must be taken in a
    statement before the one that stores the events, whose snapshot then holds every wait committed
    before them. `learn`: told what the stored events' names trigger."""
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
    if learn is not None and function_id is None:
        learn.learn(app_id, stored)
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
