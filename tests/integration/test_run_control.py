"""Run control over the admin API: pause/resume a function, bulk cancel and rerun by a filter, the
`match`/`output` filters of the runs list, and the run view's links (docs/protocol.md, "Run control and
links").

Runs that must stay unstarted are created with no worker running, against an app URL nothing listens
on; those that must execute are served by a durable_sdk app on real HTTP.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import durable_sdk
import httpx
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable.core.match import matches
from tests.harness import AppServer, Engine, Workspace

NOWHERE = "http://127.0.0.1:9/app"  # no app: runs stay queued while no worker runs
HELD_UNTIL = datetime(3000, 1, 1, tzinfo=UTC)


def _simple(fn_id: str = "work", event: str = "go"):  # type: ignore[no-untyped-def]
    @durable_sdk.function(id=fn_id, trigger={"event": event})
    async def work(event, step):  # type: ignore[no-untyped-def]
        return await step.run("one", lambda: {"n": event["data"].get("n"), "tag": "done"})

    return work


async def _post(engine: Engine, path: str, body: Any = None) -> httpx.Response:
    if body is None:
        return await engine.api.post(path)
    return await engine.api.post(path, json=body)


async def _functions(engine: Engine, ws: Workspace) -> dict[str, dict[str, Any]]:
    response = await engine.api.get(f"/api/apps/{ws.id}/functions")
    assert response.status_code == 200, response.text
    return {f["id"]: f for f in response.json()["items"]}


async def _jobs(engine: Engine, ws: Workspace) -> dict[str, datetime]:
    async with engine.db.connection() as conn:
        rows = await conn.raw.fetch("SELECT run_id, available_at FROM jobs WHERE app_id = $1", ws.id)
    return {r["run_id"]: r["available_at"] for r in rows}


async def _queued(engine: Engine, ws: Workspace, fn: Any, count: int, **data: Any) -> list[dict[str, Any]]:
    """`count` runs of `fn`, created and left unstarted (no worker runs)."""
    for i in range(count):
        await engine.send(ws, fn.wire["trigger"]["event"], {"n": i, **data})
    runs = await engine.runs(ws, functionId=fn.wire["id"])
    assert len(runs) >= count and all(r["activity"] == "queued" for r in runs), runs
    return runs


# ---------------------------------------------------------------- pause and resume


async def test_pause_in_queue_mode_holds_unstarted_runs_and_resume_runs_them(engine: Engine) -> None:
    work = _simple()
    ws = await engine.workspace()
    with AppServer([work], ws.signing_key) as app:
        await engine.sync(ws, app.url, [work])
        created = await _queued(engine, ws, work, 3)
        ids = {r["id"] for r in created}

        response = await _post(engine, f"/api/apps/{ws.id}/functions/work/pause", {"mode": "queue"})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["id"] == "work" and answer["runs"] == 3 and answer["paused"]["mode"] == "queue"
        since = answer["paused"]["since"]
        assert (await _functions(engine, ws))["work"]["paused"] == {"mode": "queue", "since": since}
        for run in await engine.runs(ws):
            assert run["activity"] == "scheduled", run
            assert set(run["flow"]) == {"paused"} and run["flow"]["paused"]["since"] > 0, run
        assert set((await _jobs(engine, ws)).values()) == {HELD_UNTIL}

        # Workers find nothing due: the held runs do not start.
        await engine.start_workers()
        await asyncio.sleep(0.3)
        assert {r["status"] for r in await engine.runs(ws)} == {"active"}

        # Pausing again changes the mode and keeps `since`; the runs stay held.
        again = await _post(engine, f"/api/apps/{ws.id}/functions/work/pause", {"mode": "skip"})
        assert again.status_code == 200, again.text
        assert again.json()["paused"] == {"mode": "skip", "since": since} and again.json()["runs"] == 0
        assert (await _functions(engine, ws))["work"]["paused"] == {"mode": "skip", "since": since}

        response = await _post(engine, f"/api/apps/{ws.id}/functions/work/resume")
        assert response.status_code == 200, response.text
        assert response.json() == {"id": "work", "paused": None, "runs": 3}
        assert (await _functions(engine, ws))["work"]["paused"] is None
        done = await engine.wait_runs(ws, 3)
    assert {r["id"] for r in done} == ids
    async with engine.db.connection() as conn:  # the view hides `flow` once a run ends: read the column
        flows = await conn.raw.fetch("SELECT flow FROM runs WHERE app_id = $1", ws.id)
    assert [f["flow"] for f in flows] == [None] * 3
    # A resume of a function that is not paused changes nothing.
    noop = await _post(engine, f"/api/apps/{ws.id}/functions/work/resume")
    assert noop.status_code == 200 and noop.json() == {"id": "work", "paused": None, "runs": 0}


async def test_pause_leaves_started_runs_alone_and_skip_mode_holds_nothing(engine: Engine) -> None:
    @durable_sdk.function(id="napper", trigger={"event": "nap"})
    async def napper(event, step):  # type: ignore[no-untyped-def]
        await step.sleep("nap", "1h")
        return "woke"

    idle = _simple("idle", "idle")
    ws = await engine.workspace()
    with AppServer([napper, idle], ws.signing_key) as app:
        await engine.sync(ws, app.url, [napper, idle])
        await engine.start_workers()
        await engine.send(ws, "nap")

        async def sleeping():  # type: ignore[no-untyped-def]
            return await engine.runs(ws, activity="sleeping")

        [run] = await engine.wait_for(sleeping, what="a sleeping run")
        due_before = await _jobs(engine, ws)
        response = await _post(engine, f"/api/apps/{ws.id}/functions/napper/pause", {})
        assert response.status_code == 200 and response.json()["runs"] == 0, response.text
        assert response.json()["paused"]["mode"] == "queue"  # the default mode
        assert await _jobs(engine, ws) == due_before
        after = await engine.run(run["id"])
        assert after["activity"] == "sleeping" and after["flow"] is None
        await engine.stop_workers()

    # Skip mode holds no run that exists already.
    queued = await _queued(engine, ws, idle, 2)
    response = await _post(engine, f"/api/apps/{ws.id}/functions/idle/pause", {"mode": "skip"})
    assert response.status_code == 200 and response.json()["runs"] == 0, response.text
    assert [r["activity"] for r in await engine.runs(ws, functionId="idle")] == ["queued"] * len(queued)


async def test_pause_and_resume_refuse_unknown_targets_and_bad_bodies(engine: Engine) -> None:
    ws = await engine.workspace()
    await engine.sync(ws, NOWHERE, [_simple()])
    base = f"/api/apps/{ws.id}/functions"
    for path in ("/api/apps/nope/functions/work/pause", "/api/apps/nope/functions/work/resume"):
        response = await _post(engine, path, {})
        assert response.status_code == 404 and "nope" in response.json()["error"], response.text
    for path in (f"{base}/ghost/pause", f"{base}/ghost/resume"):
        response = await _post(engine, path, {})
        assert response.status_code == 404 and "ghost" in response.json()["error"], response.text
    for body, needle in (
        ({"mode": "later"}, "mode"),
        ({"mode": 1}, "mode"),
        ({"mode": "queue", "extra": 1}, "extra"),
        ([1], "body"),
    ):
        response = await _post(engine, f"{base}/work/pause", body)
        assert response.status_code == 400 and needle in response.json()["error"], (body, response.text)
    malformed = await engine.api.post(
        f"{base}/work/pause", content=b"{", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["error"]
    assert (await _functions(engine, ws))["work"]["paused"] is None


async def test_concurrent_pauses_and_resumes_end_consistent(engine: Engine) -> None:
    work = _simple()
    ws = await engine.workspace()
    await engine.sync(ws, NOWHERE, [work])
    await _queued(engine, ws, work, 5)
    base = f"/api/apps/{ws.id}/functions/work"
    answers = await asyncio.gather(
        *[_post(engine, f"{base}/pause", {"mode": "queue"}) for _ in range(4)],
        *[_post(engine, f"{base}/resume") for _ in range(2)],
    )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    final = await _post(engine, f"{base}/pause", {"mode": "queue"})
    assert final.status_code == 200
    runs = await engine.runs(ws)
    assert all(r["activity"] == "scheduled" and "paused" in r["flow"] for r in runs), runs
    assert set((await _jobs(engine, ws)).values()) == {HELD_UNTIL}
    assert (await _post(engine, f"{base}/resume")).json()["runs"] == 5
    runs = await engine.runs(ws)
    assert all(r["activity"] == "queued" and r["flow"] is None for r in runs), runs
    assert all(at < HELD_UNTIL for at in (await _jobs(engine, ws)).values())


# ---------------------------------------------------------------- bulk cancel


async def test_bulk_cancel_by_function_and_match_with_a_dry_run_first(engine: Engine) -> None:
    a, b = _simple("a", "ea"), _simple("b", "eb")
    ws = await engine.workspace()
    await engine.sync(ws, NOWHERE, [a, b])
    await _queued(engine, ws, a, 3, tenant="t1")
    await _queued(engine, ws, a, 2, tenant="t2")
    await _queued(engine, ws, b, 2, tenant="t1")
    path = f"/api/apps/{ws.id}/runs/cancel"
    where = {"functionId": "a", "match": {"tenant": "t1"}}

    before = await engine.runs(ws)
    dry = await _post(engine, path, {"filter": where, "dryRun": True})
    assert dry.status_code == 200 and dry.json() == {"count": 3}, dry.text
    assert await engine.runs(ws) == before

    response = await _post(engine, path, {"filter": where})
    assert response.status_code == 200 and response.json() == {"count": 3}, response.text
    cancelled = await engine.runs(ws, status="cancelled")
    assert len(cancelled) == 3
    for run in cancelled:
        view = await engine.run(run["id"])
        assert view["functionId"] == "a" and view["event"]["data"]["tenant"] == "t1"
        assert view["cancelledBy"] == {"kind": "bulk"} and view["activity"] is None
    assert len(await engine.runs(ws, status="active")) == 4
    jobs = await _jobs(engine, ws)
    assert not set(jobs) & {r["id"] for r in cancelled}  # no job left behind

    # Nothing left to cancel: the count is 0. An empty filter takes every active run.
    assert (await _post(engine, path, {"filter": where})).json() == {"count": 0}
    assert (await _post(engine, path, {"filter": {}})).json() == {"count": 4}
    assert await _jobs(engine, ws) == {}


async def test_a_bulk_action_takes_at_most_10000_runs_oldest_first(engine: Engine) -> None:
    ws = await engine.workspace()
    await engine.sync(ws, NOWHERE, [_simple()])
    for chunk in range(11):
        size = 1000 if chunk < 10 else 1
        events = [{"name": "go", "data": {"n": chunk * 1000 + i}} for i in range(size)]
        response = await engine.signed(ws, "/e", events)
        assert response.status_code == 200, response.text
    path = f"/api/apps/{ws.id}/runs"
    for action in ("cancel", "rerun"):
        dry = await _post(engine, f"{path}/{action}", {"filter": {}, "dryRun": True})
        assert dry.json() == {"count": 10_000}, dry.text
    response = await _post(engine, f"{path}/cancel", {"filter": {}})
    assert response.json() == {"count": 10_000}, response.text
    [left] = await engine.runs(ws, status="active")
    assert (await engine.run(left["id"]))["event"]["data"]["n"] == 10_000  # the newest one
    assert (await _post(engine, f"{path}/cancel", {"filter": {}})).json() == {"count": 1}


async def test_bulk_cancel_bounds_created_at(engine: Engine) -> None:
    work = _simple()
    ws = await engine.workspace()
    await engine.sync(ws, NOWHERE, [work])
    early = await _queued(engine, ws, work, 2)
    await asyncio.sleep(0.05)
    cut = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await engine.send(ws, "go", {"n": 9})
    path = f"/api/apps/{ws.id}/runs/cancel"
    iso = cut.isoformat()
    assert (await _post(engine, path, {"filter": {"to": iso}, "dryRun": True})).json() == {"count": 2}
    assert (await _post(engine, path, {"filter": {"from": iso}, "dryRun": True})).json() == {"count": 1}
    zoned = cut.astimezone(timezone(timedelta(hours=2))).isoformat()  # the same instant, another zone
    assert (await _post(engine, path, {"filter": {"to": zoned}, "dryRun": True})).json() == {"count": 2}
    response = await _post(engine, path, {"filter": {"to": iso, "from": None}})
    assert response.json() == {"count": 2}
    assert {r["id"] for r in await engine.runs(ws, status="cancelled")} == {r["id"] for r in early}


async def test_bulk_cancel_refuses_bad_filters_by_name(engine: Engine) -> None:
    ws = await engine.workspace()
    await engine.sync(ws, NOWHERE, [_simple()])
    await engine.send(ws, "go")
    path = f"/api/apps/{ws.id}/runs/cancel"
    cases: list[tuple[Any, str]] = [
        ({"filter": {"status": "completed"}}, "only active runs can be cancelled"),
        ({"filter": {"status": "sleeping"}}, "filter.status"),
        ({"filter": {"from": "yesterday"}}, "filter.from"),
        ({"filter": {"to": "2026-07-05T09:00:00"}}, "time zone"),
        ({"filter": {"to": 5}}, "filter.to"),
        ({"filter": {"from": "0001-01-01T00:00:00+05:00"}}, "filter.from"),
        ({"filter": {"match": [1]}}, "filter.match"),
        ({"filter": {"match": "tenant"}}, "filter.match"),
        ({"filter": {"functionId": 7}}, "filter.functionId"),
        ({"filter": {"tenant": "t1"}}, "tenant"),
        ({"filter": [], "dryRun": True}, "filter"),
        ({"dryRun": True}, "filter"),
        ({"filter": {}, "dryRun": "yes"}, "dryRun"),
        ({"filter": {}, "limit": 5}, "limit"),
        ({"filter": {"match": {"k": "a\x00b"}}}, "NUL"),
    ]
    for body, needle in cases:
        response = await _post(engine, path, body)
        assert response.status_code == 400, (body, response.text)
        assert needle in response.json()["error"], (body, response.text)
    unknown = await _post(engine, "/api/apps/nope/runs/cancel", {"filter": {}})
    assert unknown.status_code == 404
    assert [r["status"] for r in await engine.runs(ws)] == ["active"]


async def test_single_cancel_records_the_user_and_the_view_shows_links(engine: Engine) -> None:
    ws = await engine.workspace()
    await engine.sync(ws, NOWHERE, [_simple()])
    await engine.send(ws, "go")
    [run] = await engine.runs(ws)
    assert run["parentRunId"] is None and run["cancelledBy"] is None
    view = await engine.run(run["id"])
    assert view["children"] == [] and view["parentRunId"] is None and view["cancelledBy"] is None
    response = await engine.api.post(f"/api/runs/{run['id']}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled" and response.json()["cancelledBy"] == {"kind": "user"}
    again = await engine.api.post(f"/api/runs/{run['id']}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["error"]
    missing = await engine.api.post("/api/runs/nope/cancel")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    [listed] = await engine.runs(ws)
    assert listed["cancelledBy"] == {"kind": "user"}


async def test_the_view_lists_children_and_their_parent(engine: Engine) -> None:
    """Links are written by invoke (not this module): set them as invoke does and read them back."""
    ws = await engine.workspace()
    await engine.sync(ws, NOWHERE, [_simple()])
    await engine.send(ws, "go", {"n": 1})
    await engine.send(ws, "go", {"n": 2})
    parent, child = sorted(r["id"] for r in await engine.runs(ws))
    async with engine.db.connection() as conn:
        await conn.raw.execute(
            "UPDATE runs SET parent_run_id = $1, parent_step_id = 'charge' WHERE id = $2", parent, child
        )
    view = await engine.run(parent)
    assert view["children"] == [
        {"runId": child, "functionId": "work", "stepId": "charge", "status": "active"}
    ]
    assert (await engine.run(child))["parentRunId"] == parent
    # Cancelling the parent in bulk cancels the child it invoked, recorded as the parent's doing.
    response = await _post(engine, f"/api/apps/{ws.id}/runs/cancel", {"filter": {"match": {"n": 1}}})
    assert response.json() == {"count": 1}
    assert (await engine.run(parent))["cancelledBy"] == {"kind": "bulk"}
    assert (await engine.run(child))["cancelledBy"] == {"kind": "parent", "runId": parent}


# ---------------------------------------------------------------- bulk rerun


async def test_bulk_rerun_starts_one_new_run_per_selected_run(engine: Engine) -> None:
    work = _simple()
    ws = await engine.workspace()
    with AppServer([work], ws.signing_key) as app:
        await engine.sync(ws, app.url, [work])
        await engine.start_workers()
        for n in range(4):
            await engine.send(ws, "go", {"n": n, "even": n % 2 == 0})
        originals = await engine.wait_runs(ws, 4)
        path = f"/api/apps/{ws.id}/runs/rerun"
        where = {"status": "completed", "match": {"even": True}}
        dry = await _post(engine, path, {"filter": where, "dryRun": True})
        assert dry.status_code == 200 and dry.json() == {"count": 2}, dry.text
        assert len(await engine.runs(ws)) == 4
        response = await _post(engine, path, {"filter": where})
        assert response.status_code == 200 and response.json() == {"count": 2}, response.text
        done = await engine.wait_runs(ws, 6)
    evens = {r["id"] for r in originals if (await engine.run(r["id"]))["event"]["data"]["even"]}
    reruns = [await engine.run(r["id"]) for r in done if r["id"] not in {o["id"] for o in originals}]
    assert sorted(r["rerunOf"] for r in reruns) == sorted(evens)
    assert all(r["output"] == {"n": r["event"]["data"]["n"], "tag": "done"} for r in reruns)
    bad = await _post(engine, f"/api/apps/{ws.id}/runs/rerun", {"filter": {"status": "resting"}})
    assert bad.status_code == 400 and "filter.status" in bad.json()["error"]


# ---------------------------------------------------------------- the runs list: match and output


async def test_the_runs_list_filters_by_match_and_output(engine: Engine) -> None:
    work = _simple()
    ws = await engine.workspace()
    with AppServer([work], ws.signing_key) as app:
        await engine.sync(ws, app.url, [work])
        await engine.start_workers()
        await engine.send(ws, "go", {"n": 1, "user": {"id": "u1", "plan": "pro"}, "tags": ["a"]})
        await engine.send(ws, "go", {"n": 2, "user": {"id": "u2", "plan": "pro"}, "tags": ["a", "b"]})
        await engine.send(ws, "go", {"n": 3, "user": {"id": "u1", "plan": "free"}})
        await engine.send(ws, "go", {"n": 4, "user": {"id": "u3", "plan": "free"}, "tags": ["b", "a"]})
        await engine.wait_runs(ws, 4)

    async def ns(**params: Any) -> list[int]:
        query = {k: orjson.dumps(v).decode() for k, v in params.items()}
        runs = await engine.runs(ws, **query)
        return sorted([(await engine.run(r["id"]))["event"]["data"]["n"] for r in runs])

    assert await ns(match={"user": {"id": "u1"}}) == [1, 3]
    assert await ns(match={"user": {"plan": "pro"}, "n": 2}) == [2]
    assert await ns(match={"tags": ["a"]}) == [1]  # arrays compare whole, not as subsets
    assert await ns(match={}) == [1, 2, 3, 4]
    assert await ns(output={"n": 3}) == [3]
    assert await ns(output={"tag": "done"}, match={"n": 1}) == [1]
    assert await ns(output={"tag": "other"}) == []

    async def page(match: str, cursor: str | None = None) -> tuple[list[int], str | None]:
        params = {"match": match, "limit": 1, **({"cursor": cursor} if cursor else {})}
        body = (await engine.api.get(f"/api/apps/{ws.id}/runs", params=params)).json()
        found = [(await engine.run(r["id"]))["event"]["data"]["n"] for r in body["items"]]
        return found, body["nextCursor"]

    # Runs 4 and 2 pass the SQL pre-filter (jsonb @> treats arrays as sets) and fail the exact rule:
    # the page still holds the one run that matches, found past them.
    assert await page('{"tags": ["a"]}') == ([1], None)
    first, cursor = await page('{"user": {"plan": "pro"}}')
    assert first == [2] and cursor is not None
    assert await page('{"user": {"plan": "pro"}}', cursor) == ([1], None)
    for params, needle in (
        ({"match": "{"}, "match"),
        ({"match": "[1]"}, "match"),
        ({"match": '{"k": "\\u0000"}'}, "NUL"),
        ({"output": "nope"}, "output"),
    ):
        response = await engine.api.get(f"/api/apps/{ws.id}/runs", params=params)
        assert response.status_code == 400 and needle in response.json()["error"], (params, response.text)


# ---------------------------------------------------------------- the match filter is `matches`

_KEYS = st.sampled_from(["a", "b", "c", "ü", ""])
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0, 1, 1.0, 2**62, float(2**62), "x", "1", ""])
    | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=3)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=8,
)
_DATA = st.dictionaries(_KEYS, _VALUES, max_size=4)
EXAMPLES = settings(
    max_examples=30,
    deadline=None,
    # One engine per test, shared by its examples on purpose (each example has its own workspace).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _subset(data: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    return {k: data[k] for k in keys if k in data}


@EXAMPLES
@given(draw=st.data())
async def test_bulk_cancel_selects_exactly_what_matches_selects(engine: Engine, draw: st.DataObject) -> None:
    datas = draw.draw(st.lists(_DATA, min_size=1, max_size=6), label="event data")
    # Half the filters are taken from one of the events (so they hit), half are arbitrary.
    source = draw.draw(st.sampled_from(datas), label="source")
    taken = _subset(source, draw.draw(st.lists(st.sampled_from(["a", "b", "c", "ü", ""]), max_size=3)))
    match = draw.draw(st.sampled_from([taken]) | _DATA, label="match")
    ws = await engine.workspace(f"p{uuid.uuid4().hex[:10]}")
    await engine.sync(ws, NOWHERE, [_simple()])
    response = await engine.signed(
        ws, "/e", [{"name": "go", "id": f"e{i}", "data": d} for i, d in enumerate(datas)]
    )
    assert response.status_code == 200, response.text
    runs = await engine.runs(ws)
    by_event = {r["eventId"]: r["id"] for r in runs}
    expected = {by_event[f"e{i}"] for i, d in enumerate(datas) if matches(match, d)}

    listed = await engine.runs(ws, match=orjson.dumps(match).decode())
    assert {r["id"] for r in listed} == expected
    path = f"/api/apps/{ws.id}/runs/cancel"
    dry = await _post(engine, path, {"filter": {"match": match}, "dryRun": True})
    assert dry.status_code == 200 and dry.json() == {"count": len(expected)}, dry.text
    response = await _post(engine, path, {"filter": {"match": match}})
    assert response.json() == {"count": len(expected)}
    assert {r["id"] for r in await engine.runs(ws, status="cancelled")} == expected


async def test_numbers_match_by_value_beyond_2_to_the_53(engine: Engine) -> None:
    """Numbers compare by the value of their JSON text, as jsonb keeps them: the float 2.0**62 travels
    as 4.611686018427388e18, which is not the integer 2**62, and a float sent in the data matches the
    same float in the filter (both are 9223372036854776000 once stored)."""
    ws = await engine.workspace()
    await engine.sync(ws, NOWHERE, [_simple()])
    await engine.send(ws, "go", {"big": 2**62})
    await engine.send(ws, "go", {"big": float(2**62) * 2})
    path = f"/api/apps/{ws.id}/runs/cancel"
    stored = [{"big": 2**62}, {"big": 9223372036854776000}]  # what jsonb gives back
    for match, count in (
        ({"big": float(2**62)}, 0),
        ({"big": 2**62}, 1),
        ({"big": float(2**62) * 2}, 1),
        ({"big": 2**63 - 1}, 0),
    ):
        assert sum(matches(match, data) for data in stored) == count
        response = await _post(engine, path, {"filter": {"match": match}, "dryRun": True})
        assert response.json() == {"count": count}, (match, response.text)
