"""Flow control at run creation: which runs an ingest starts, when, and in which gate.

For each stored event and each function it triggers, in event order (docs/architecture.md,
"Flow control"):

0. a paused function skips the event (mode skip) or keeps it as a held run (mode queue); an
   idempotency key already used in the last 24 h skips it; a singleton key with an active run skips
   it (mode skip) or cancels that run (mode cancel);
1. debounce / batch: join the function's open run for the event's key if it has not started;
2. rateLimit: a new run must fit the sliding window, or the event is recorded as skipped;
3. throttle: a new run gets the next free start slot (FIFO), at or after when it would start;
4. concurrency and priority are stored on the job and enforced when workers claim it.

Every run the engine creates goes through a Planner, whatever started it (an event, a cron occurrence,
`step.invoke`, a failure handler, a rerun): `plan` for events, `add_run` for the others.

State rows (`flow_state`) are locked for the whole ingest transaction, in key order, so decisions are
exact across any number of processes. Everything is written back in a handful of statements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID, uuid4

import orjson

from durable.core import flow
from durable.core.ids import new_id
from durable.core.options import priority_of
from durable.engine.cancel import cancel_runs, cause
from durable.engine.claim import Claim
from durable.store.db import Conn

KINDS = ("rateLimit", "throttle", "debounce", "batch", "singleton")  # state scoped by the option's key
# The options that make a run's start a decision of the Planner's (state, a skip, a delay, cancelOn rows);
# concurrency and priority are only stored on the job.
DECIDED = (*KINDS, "idempotency", "cancelOn")


def undecided(function: dict[str, Any]) -> bool:
    """Whether an event starts a run of `function` ({id, config, paused}, as event_store lists it) at
    once, with no decision of the Planner's: no option of DECIDED, not paused."""
    config = function["config"]
    return function.get("paused") is None and not any(config.get(kind) for kind in DECIDED)


def new_claim(
    handoff: Handoff,
    basis: dict[str, Any],
    app_id: str,
    run_id: str,
    token: UUID,
    function_id: str,
    config: dict[str, Any],
    event: dict[str, Any],
    parent: tuple[str | None, str | None] = (None, None),
) -> Claim:
    """The claim of a new run handed to `handoff`'s worker by the ingest that created it; `basis`: what
    the ingest's statement said its runs start with (url, keys, ready_at, db_now, lease_left_ms) and
    `sent`, the monotonic time before it."""
    return Claim.build(
        run_id=run_id,
        token=token,
        attempt=1,
        app={**basis, "app_id": app_id},
        function_id=function_id,
        config=config,
        event=event,
        steps={},
        ready_at=basis["ready_at"],
        db_now=basis["db_now"],
        lease_left_ms=basis["lease_left_ms"],
        sent=basis["sent"],
        default_max_attempts=handoff.default_max_attempts,
        parent_run_id=parent[0],
        parent_step_id=parent[1],
    )


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass
class _State:
    stamps: list[int]
    run_id: str | None
    first_at: int | None
    size: int


@dataclass
class _NewRun:
    run_id: str
    function_id: str
    event_id: str
    event: dict[str, Any]
    due_ms: int | None
    priority: int
    gate: str | None
    gate_limit: int | None
    flow: dict[str, Any] | None
    rerun_of: str | None = None
    parent_run_id: str | None = None
    parent_step_id: str | None = None


@dataclass
class _Merge:
    kind: str
    event: Any  # debounce: the new event; batch: the list of events to append
    due_ms: int
    flow: dict[str, Any]


@dataclass(frozen=True)
class Start:
    """A run to create outside any event flow: its function, options, event, and where it comes from."""

    function_id: str
    config: dict[str, Any]
    event: dict[str, Any]
    rerun_of: str | None = None
    parent: tuple[str, str] | None = None  # (run, invoke step) of a run started by step.invoke
    paused: dict[str, Any] | None = None  # the function's pause: the run is held


@dataclass(frozen=True)
class Handoff:
    """Up to `capacity` new runs due now and outside any concurrency gate are claimed for `worker`
    inside the ingest transaction and returned as claims, to be driven at once by that process.

    Offered only by a worker loop with room and no claimable work waiting (worker.loop.LocalDispatch),
    so a hand-off never takes a slot the fair claim would give another workspace; a capped workspace
    gets none (runs_create), its cap being counted at claim."""

    worker: str
    capacity: int
    lease_ms: int
    default_max_attempts: int


class Dispatcher(Protocol):
    """The local workers, as the API sees them: offer capacity for a hand-off, then take the claims."""

    def offer(self) -> Handoff | None: ...

    def adopt(self, handoff: Handoff, claims: list[Claim]) -> None: ...


@dataclass
class Planner:
    tx: Conn
    app_id: str
    now_ms: int
    handoff: Handoff | None = None
    # With `handoff`: what its runs start with, read by the ingest's event_store in this transaction
    # (the workspace's url and keys; the lease's ready_at, db_now and lease_left_ms) and `sent`, the
    # monotonic time before that statement.
    basis: dict[str, Any] | None = None
    claims: list[Claim] = field(default_factory=list)
    new_runs: dict[str, _NewRun] = field(default_factory=dict)
    merges: dict[str, _Merge] = field(default_factory=dict)
    outcomes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    replaced: list[tuple[str, str]] = field(default_factory=list)  # singleton cancel: (old run, new run)
    _cancel_rows: list[tuple[str, int, str, Any, int | None]] = field(default_factory=list)
    _state: dict[tuple[str, str, str], _State] = field(default_factory=dict)
    _open: dict[str, dict[str, Any]] = field(default_factory=dict)  # open run id -> its flow info
    _active: set[str] = field(default_factory=set)  # singleton keys' runs that are still active
    _configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # function id -> its options

    @property
    def queued(self) -> bool:
        """Whether the writes left work for the queue (announced by their NOTIFY on `durable_jobs`): a
        run not handed off, a debounce or batch that moved a run's start, a run replaced (singleton)."""
        return len(self.claims) < len(self.new_runs) or bool(self.merges) or bool(self.replaced)

    async def plan(self, events: list[dict[str, Any]]) -> None:
        """Decide for every (event, function) pair; then write runs, merges, state and outcomes."""
        pairs = [(e, f) for e in events for f in e["functions"]]
        await self._lock_state(pairs)
        for event, function in pairs:
            self._decide(event, function["id"], function["config"], function.get("paused"))
        await self._write()

    async def add_run(
        self,
        function_id: str,
        config: dict[str, Any],
        event: dict[str, Any],
        *,
        rerun_of: str | None = None,
        parent: tuple[str, str] | None = None,
        paused: dict[str, Any] | None = None,
    ) -> str:
        """A run outside any event flow (a rerun, an invoked child, a failure handler): throttle, gate,
        priority and cancelOn only; held when the function is paused. `parent`: (run, invoke step)."""
        [run_id] = await self.add_runs([Start(function_id, config, event, rerun_of, parent, paused)])
        return run_id

    async def add_runs(self, starts: list[Start]) -> list[str]:
        """Several runs outside any event flow (a bulk rerun), their throttle rows locked together in key
        order (as an ingest locks them), in one write."""
        throttled = [
            (
                {"data": _keys_data(s.event)},
                {"id": s.function_id, "config": {"throttle": s.config["throttle"]}},
            )
            for s in starts
            if s.config.get("throttle")
        ]
        if throttled:  # a start takes a throttle slot: lock those rows first
            await self._lock_state(throttled)
        ids = []
        for start in starts:
            run = self._new_run(start.function_id, start.config, start.event, None, None, held=start.paused)
            run.rerun_of = start.rerun_of
            if start.parent is not None:
                run.parent_run_id, run.parent_step_id = start.parent
            ids.append(run.run_id)
        await self._write()
        return ids

    async def _lock_state(self, pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        needed = sorted(
            {
                (function["id"], kind, flow.scope_key(function["config"][kind], event["data"]))
                for event, function in pairs
                for kind in KINDS
                if function["config"].get(kind)
            }
            | {
                (function["id"], "idempotency", key)
                for event, function in pairs
                if (key := flow.idempotency_key(function["config"], event)) is not None
            }
        )
        if not needed:
            return
        rows = await self.tx.fetch(
            "flow_lock", self.app_id, [n[0] for n in needed], [n[1] for n in needed], [n[2] for n in needed]
        )
        for r in rows:
            self._state[(r["function_id"], r["kind"], r["key"])] = _State(
                list(r["stamps"]), r["run_id"], r["first_at"], r["size"]
            )
        candidates = [s.run_id for (_, kind, _), s in self._state.items() if s.run_id and kind != "singleton"]
        if candidates:
            for r in await self.tx.fetch("flow_open_runs", candidates):
                self._open[r["run_id"]] = dict(r["flow"] or {})
        singles = [s.run_id for (_, kind, _), s in self._state.items() if s.run_id and kind == "singleton"]
        if singles:
            self._active = {r["id"] for r in await self.tx.fetch("runs_active_among", singles)}

    def _state_for(self, function_id: str, kind: str, option: dict[str, Any], data: object) -> _State:
        return self._state[(function_id, kind, flow.scope_key(option, data))]

    def _outcome(self, event: dict[str, Any], entry: dict[str, Any]) -> None:
        self.outcomes.setdefault(event["seq"], []).append(entry)

    def _decide(
        self, stored: dict[str, Any], function_id: str, config: dict[str, Any], paused: dict[str, Any] | None
    ) -> None:
        """Step 0 of the module's order (pause, idempotency, singleton), then flow control."""
        if paused is not None and paused.get("mode") == "skip":
            self._skip(stored, function_id, "paused")
            return
        if (key := flow.idempotency_key(config, stored)) is not None:
            used = self._state[(function_id, "idempotency", key)]
            if not flow.fresh_key(used.first_at, self.now_ms):
                self._skip(stored, function_id, "idempotency")
                return
            used.first_at = self.now_ms
        single = config.get("singleton")
        holder = self._state_for(function_id, "singleton", single, stored["data"]) if single else None
        previous = holder.run_id if holder is not None else None
        if previous is not None and (previous in self._active or previous in self.new_runs):
            if single and single["mode"] == "skip":
                self._skip(stored, function_id, "singleton")
                return
        else:
            previous = None
        run = self._flow(stored, function_id, config, paused)
        if holder is not None and run is not None and run.run_id != previous:
            holder.run_id = run.run_id
            if previous is not None:  # mode cancel: the newer run replaces the active one
                if self.new_runs.pop(previous, None) is None:
                    self.replaced.append((previous, run.run_id))
                self._active.discard(previous)

    def _skip(self, stored: dict[str, Any], function_id: str, reason: str) -> None:
        self._outcome(stored, {"functionId": function_id, "outcome": "skipped", "reason": reason})

    def _flow(
        self, stored: dict[str, Any], function_id: str, config: dict[str, Any], paused: dict[str, Any] | None
    ) -> _NewRun | None:
        """Debounce, batch, rateLimit and a new run (throttled). Returns the run the event started or
        joined, or None when it started none."""
        event = {k: stored[k] for k in ("id", "name", "data", "ts")}
        data = event["data"]
        if paused is not None:  # mode queue: kept as a held run of its own, started on resume
            if config.get("batch"):
                event = {"id": event["id"], "name": event["name"], "data": [event], "ts": event["ts"]}
            return self._new_run(function_id, config, event, None, None, held=paused)
        if debounce := config.get("debounce"):
            state = self._state_for(function_id, "debounce", debounce, data)
            if state.run_id in self._open or state.run_id in self.new_runs:
                assert state.run_id is not None and state.first_at is not None
                due = flow.debounce_due(
                    state.first_at, self.now_ms, debounce["period"], debounce.get("timeout")
                )
                self._merge(state.run_id, "debounce", event, due, {"debounce": {"until": due}})
                self._outcome(
                    stored, {"functionId": function_id, "outcome": "debounced", "runId": state.run_id}
                )
                return self.new_runs.get(state.run_id)
            if not self._rate_ok(stored, function_id, config):
                return None
            due = flow.debounce_due(self.now_ms, self.now_ms, debounce["period"], debounce.get("timeout"))
            run = self._new_run(function_id, config, event, due, {"debounce": {"until": due}})
            state.run_id, state.first_at = run.run_id, self.now_ms
            self._outcome(stored, {"functionId": function_id, "outcome": "debounced", "runId": run.run_id})
            return run
        if batch := config.get("batch"):
            state = self._state_for(function_id, "batch", batch, data)
            full = state.size + 1 >= batch["maxSize"]
            if state.run_id in self._open or state.run_id in self.new_runs:
                assert state.run_id is not None and state.first_at is not None
                state.size += 1
                due = self.now_ms if full else state.first_at + batch["timeout"]
                self._append(state.run_id, event, due, state.size)
                self._outcome(
                    stored, {"functionId": function_id, "outcome": "batched", "runId": state.run_id}
                )
                joined = self.new_runs.get(state.run_id)
                if full:
                    state.run_id = None
                return joined
            due = self.now_ms if batch["maxSize"] == 1 else self.now_ms + batch["timeout"]
            batch_event = {"id": event["id"], "name": event["name"], "data": [event], "ts": event["ts"]}
            run = self._new_run(function_id, config, batch_event, due, {"batch": {"size": 1, "until": due}})
            state.run_id, state.first_at, state.size = run.run_id, self.now_ms, 1
            if batch["maxSize"] == 1:
                state.run_id = None
            self._outcome(stored, {"functionId": function_id, "outcome": "batched", "runId": run.run_id})
            return run
        if not self._rate_ok(stored, function_id, config):
            return None
        return self._new_run(function_id, config, event, None, None)

    def _rate_ok(self, stored: dict[str, Any], function_id: str, config: dict[str, Any]) -> bool:
        option = config.get("rateLimit")
        if not option:
            return True
        state = self._state_for(function_id, "rateLimit", option, stored["data"])
        allowed, state.stamps = flow.rate_limit(state.stamps, self.now_ms, option["limit"], option["period"])
        if not allowed:
            self._outcome(stored, {"functionId": function_id, "outcome": "skipped", "reason": "rateLimit"})
        return allowed

    def _new_run(
        self,
        function_id: str,
        config: dict[str, Any],
        event: dict[str, Any],
        due_ms: int | None,
        info: dict[str, Any] | None,
        *,
        held: dict[str, Any] | None = None,
    ) -> _NewRun:
        data = _keys_data(event)
        if held is not None:  # a paused function's run: no throttle slot until it is resumed
            due_ms, info = flow.HELD_MS, {"paused": {"since": held.get("since")}}
        elif throttle := config.get("throttle"):
            state = self._state_for(function_id, "throttle", throttle, data)
            earliest = self.now_ms if due_ms is None else due_ms
            slot, state.stamps = flow.throttle_slot(
                state.stamps, earliest, throttle["limit"], throttle["period"]
            )
            if slot > earliest or due_ms is not None:
                due_ms = slot
            if slot > self.now_ms:
                info = {**(info or {}), "throttle": {"until": slot}}
        gate, gate_limit = flow.gate(function_id, config, data)
        self._configs[function_id] = config
        run = _NewRun(
            new_id(),
            function_id,
            event["id"],
            event,
            due_ms,
            priority_of(config.get("priority"), data),
            gate,
            gate_limit,
            info,
        )
        self.new_runs[run.run_id] = run
        for index, entry in enumerate(config.get("cancelOn") or ()):
            possible, match = flow.cancel_match(entry.get("match"), data)
            if possible:
                timeout = entry.get("timeout")
                until = None if timeout is None else self.now_ms + timeout
                self._cancel_rows.append((run.run_id, index, entry["event"], match, until))
        return run

    def _merge(self, run_id: str, kind: str, event: dict[str, Any], due: int, info: dict[str, Any]) -> None:
        run = self.new_runs.get(run_id)
        if run is not None:
            run.event, run.event_id, run.due_ms, run.flow = event, event["id"], due, info
            return
        self.merges[run_id] = _Merge(kind, event, due, info)

    def _append(self, run_id: str, event: dict[str, Any], due: int, size: int) -> None:
        run = self.new_runs.get(run_id)
        if run is not None:
            run.event["data"].append(event)
            run.due_ms = max(due, (run.flow or {}).get("throttle", {}).get("until", due))
            run.flow = {**(run.flow or {}), "batch": {"size": size, "until": run.due_ms}}
            return
        opened = self._open.get(run_id, {})
        due = max(due, opened.get("throttle", {}).get("until", due))  # a batch never starts before its slot
        merge = self.merges.get(run_id)
        events = [*(merge.event if merge else []), event]
        self.merges[run_id] = _Merge("batch", events, due, {**opened, "batch": {"size": size, "until": due}})

    def _hand_off(self, runs: list[_NewRun]) -> dict[str, UUID]:
        """Lease tokens for the new runs this process will drive at once: due now, no gate."""
        if self.handoff is None:
            return {}
        eligible = [r for r in runs if r.due_ms is None and r.gate is None][: self.handoff.capacity]
        return {r.run_id: uuid4() for r in eligible}

    def _make_claims(self, runs: list[_NewRun], handed: dict[str, UUID]) -> None:
        if not handed:
            return
        assert self.handoff is not None and self.basis is not None
        for run in runs:
            token = handed.get(run.run_id)
            if token is not None:
                self.claims.append(
                    new_claim(
                        self.handoff,
                        self.basis,
                        self.app_id,
                        run.run_id,
                        token,
                        run.function_id,
                        self._configs[run.function_id],
                        run.event,
                        (run.parent_run_id, run.parent_step_id),
                    )
                )

    async def _write(self) -> None:
        tx = self.tx
        for old, new in self.replaced:  # singleton mode cancel: the active run goes before its successor
            await cancel_runs(tx, [old], cause("singleton", runId=new))
        if self._state:
            keys = list(self._state)
            states = [self._state[k] for k in keys]
            await tx.execute(
                "flow_save",
                self.app_id,
                [k[0] for k in keys],
                [k[1] for k in keys],
                [k[2] for k in keys],
                [_json(s.stamps) for s in states],
                [s.run_id for s in states],
                [s.first_at for s in states],
                [s.size for s in states],
            )
        if self.new_runs:
            runs = list(self.new_runs.values())
            handed = self._hand_off(runs)
            await tx.write(
                "runs_create",
                self.app_id,
                [r.run_id for r in runs],
                [r.function_id for r in runs],
                [r.event_id for r in runs],
                [_json(r.event) for r in runs],
                [None if r.due_ms is None else _at(r.due_ms) for r in runs],
                [r.priority for r in runs],
                [r.gate for r in runs],
                [r.gate_limit for r in runs],
                [None if r.flow is None else _json(r.flow) for r in runs],
                [r.rerun_of for r in runs],
                [handed.get(r.run_id) for r in runs],
                self.handoff.worker if self.handoff else None,
                self.handoff.lease_ms if self.handoff else 0,
                [r.parent_run_id for r in runs],
                [r.parent_step_id for r in runs],
            )
            for run in runs:
                tx.changed(self.app_id, "runs", run.run_id)
            self._make_claims(runs, handed)
            rows = [c for c in self._cancel_rows if c[0] in self.new_runs]
            if rows:  # after runs_create: sent with it, in order, when that one is deferred
                await tx.write(
                    "run_cancels_add",
                    self.app_id,
                    [c[0] for c in rows],
                    [c[1] for c in rows],
                    [c[2] for c in rows],
                    [None if c[3] is None else _json(c[3]) for c in rows],
                    [None if c[4] is None else _at(c[4]) for c in rows],
                )
        if self.merges:
            ids = list(self.merges)
            merges = [self.merges[i] for i in ids]
            await tx.execute(
                "runs_merge",
                ids,
                [m.kind for m in merges],
                [_json(m.event) for m in merges],
                [_at(m.due_ms) for m in merges],
                [_json(m.flow) for m in merges],
            )
        if self.outcomes:
            seqs = list(self.outcomes)
            await tx.execute("event_outcomes", self.app_id, seqs, [_json(self.outcomes[s]) for s in seqs])


def _keys_data(event: dict[str, Any]) -> Any:
    """The data option keys and priority are read from: a batch's first event's."""
    data = event["data"]
    if isinstance(data, list):
        return data[0].get("data") if data and isinstance(data[0], dict) else {}
    return data
