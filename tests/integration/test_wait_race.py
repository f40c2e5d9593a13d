"""No wait misses an event that arrives while the wait is being stored, whatever the interleaving.

A wait is stored in one call (durable_wait_park, migration 0014): the exclusive lock of its (app, event
name), a look-back for events stored since its invoke began, and the park. An ingest takes the same
lock shared before storing its events and resolves the waits it finds. Here runs store waits while
their matching events are ingested at the same moment, in arrival orders hypothesis draws (each side
delayed by a few event-loop turns or fractions of a millisecond), on real connections: every wait must
end resolved with its own event, by the look-back (the invoke goes on) or by the ingest (the run is
due again), and none may stay parked.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable.engine.execution import Executor, Outcome, Timing
from durable.engine.ingest import Triggers, ingest, triggers
from tests.harness import Engine

RUNS = 6
URL = "http://127.0.0.1:9/x"

# Per run: (the wait's delay, the event's delay), each in units of 0.3 ms; 0 is one event-loop turn.
DELAYS = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=RUNS, max_size=RUNS)


async def _after(units: int) -> None:
    await (asyncio.sleep(units * 0.0003) if units else asyncio.sleep(0))


@pytest.mark.parametrize("parked_s", [0.0, Triggers.PARKED_S], ids=["plain-first", "refusals-remembered"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(delays=DELAYS, matched=st.booleans())
async def test_a_wait_stored_while_its_event_arrives_is_resolved_once(
    engine: Engine, parked_s: float, delays: list[tuple[int, int]], matched: bool
) -> None:
    """`matched`: the wait names its run's orderId (else it waits for any event of the name).
    `parked_s`: how long a name refused for a parked wait skips the plain ingest (engine/ingest.py
    Triggers); at 0 every event of the example tries the one-statement path first."""
    triggers(engine.db).PARKED_S = parked_s
    ws = await engine.workspace(f"race-{uuid.uuid4().hex[:12]}")  # one per example
    await engine.sync(ws, URL, [{"id": "w", "trigger": {"event": "go"}}])
    executor = Executor(engine.db, lease_ms=60_000, default_max_attempts=3)
    await ingest(engine.db, ws.id, [{"id": None, "name": "go", "data": {}, "ts": None} for _ in range(RUNS)])
    claims = await executor.claim("race", RUNS)
    assert len(claims) == RUNS and {c.app_id for c in claims} == {ws.id}
    until_ms = int(time.time() * 1000) + 3_600_000
    outcomes: dict[str, Outcome] = {}

    async def wait(index: int, units: int) -> None:
        claim = claims[index]
        await _after(units)
        match = {"orderId": f"o{index}"} if matched else None
        op: Any = {"op": "wait", "id": "approve", "event": "approved", "match": match, "until_ms": until_ms}
        now = engine.db.now()
        outcomes[claim.run_id] = await executor.apply(claim, op, Timing(now, now))

    async def send(index: int, units: int) -> None:
        await _after(units)
        event = {"id": None, "name": "approved", "data": {"orderId": f"o{index}"}, "ts": None}
        await ingest(engine.db, ws.id, [event])  # type: ignore[list-item]

    await asyncio.gather(
        *(wait(i, w) for i, (w, _) in enumerate(delays)), *(send(i, e) for i, (_, e) in enumerate(delays))
    )

    async with engine.db.connection() as conn:
        # Nothing of this example is left for the next one's claim to take.
        await conn.raw.execute("DELETE FROM jobs WHERE app_id = $1", ws.id)
        parked = await conn.raw.fetch("SELECT run_id FROM waits WHERE app_id = $1", ws.id)
        steps = {
            r["run_id"]: r
            for r in await conn.raw.fetch(
                "SELECT s.run_id, s.status, s.output FROM steps s JOIN runs r ON r.id = s.run_id"
                " WHERE r.app_id = $1 AND s.id = 'approve'",
                ws.id,
            )
        }
    assert parked == [], f"waits left parked with their events stored: {parked}"
    for index, claim in enumerate(claims):
        step = steps[claim.run_id]
        assert step["status"] == "completed", (claim.run_id, outcomes[claim.run_id])
        if matched:  # its own event, never another run's
            assert step["output"]["data"] == {"orderId": f"o{index}"}, (
                index,
                outcomes[claim.run_id],
                delays,
                [(c.run_id, steps[c.run_id]["output"]) for c in claims],
            )
        # Resolved by the look-back: the invoke goes on; by an ingest: the run parked, then was resumed.
        assert outcomes[claim.run_id] in (Outcome.CONTINUE, Outcome.PARKED)
