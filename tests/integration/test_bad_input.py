"""Every bad input, at every route that takes input, gets a 4xx that names the problem, and stores nothing
(DESIGN.md §8.7; issue 9, item 6).

The routes come from the app's own OpenAPI document, so a route added later is covered the day it is
added: each operation's body (when it takes one), path parameters and query parameters get the same
list of bad inputs: NUL characters in every string and every key, nesting 255 and 1000 deep, integers
outside 64 bits, malformed and non-UTF-8 JSON, wrong types for every field, unknown fields, an oversized
body, bad signatures; and in the URL a NUL or a 10 KB value in every parameter. After each, every table
that holds user data is compared with its state before: a refused request leaves no trace.

Hypothesis then sends arbitrary bytes and arbitrary JSON to every route, and arbitrary text in every
URL parameter: whatever it is, the answer is never a 5xx.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable.api.app import create_app
from durable.types import MAX_BODY
from tests.harness import Engine, Workspace, make_settings

# Tables that hold what users send; a refused request must leave each exactly as it was.
TABLES = ("apps", "functions", "cron_schedules", "events", "event_ids", "runs", "steps", "jobs", "waits")
TEN_KB = "x" * 10_240
NUL = "a\x00b"
FUNCTIONS: list[dict[str, Any]] = [
    {
        "id": "fn",
        "name": "Function",
        "trigger": {"event": "order.paid"},
        "retries": 2,
        "concurrency": {"limit": 2, "key": "tenant"},
        "priority": 5,
        "throttle": {"limit": 1, "period": "1s", "key": "tenant"},
    },
    {"id": "nightly", "trigger": {"cron": "0 3 * * *"}, "rateLimit": {"limit": 5, "period": "1m"}},
    {"id": "quiet", "trigger": {"event": "typed"}, "debounce": {"period": "5s", "timeout": "1m"}},
    {"id": "batched", "trigger": {"event": "row"}, "batch": {"maxSize": 10, "timeout": "5s", "key": "t"}},
]
SYNC: dict[str, Any] = {"url": "http://127.0.0.1:9/app", "functions": FUNCTIONS}
EVENT: dict[str, Any] = {
    "name": "order.paid",
    "data": {"tenant": "t1", "n": 1},
    "id": "evt-1",
    "ts": 1767225600000,
}

# A valid body for each known operation; each case below breaks one thing in it. `FREE` names the fields
# that hold any JSON value (event data), where a "wrong type" does not exist.
GOOD_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/e"): EVENT,
    ("POST", "/fn/sync"): SYNC,
    ("POST", "/api/apps"): {"name": "other", "environment": "dev"},
    ("POST", "/api/login"): {"token": "not-the-token"},
    ("POST", "/api/apps/{app_id}/events"): {"name": "order.paid", "data": {"tenant": "t1"}},
    ("POST", "/api/apps/{app_id}/functions/{function_id}/run"): {"data": {"tenant": "t1"}},
    ("POST", "/api/runs/{run_id}/rerun"): {"fromStep": "first"},
}
FREE = {"data"}
# Server-Sent Events: a valid request never ends, so only refusals are sent to these.
STREAMING = {"/api/stream"}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    body_schema: dict[str, Any] | None
    signed: bool

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"

    def good_body(self) -> Any:
        known = GOOD_BODIES.get((self.method, self.path))
        if known is not None:
            return known
        return _example(self.body_schema or {})


def operations(spec: dict[str, Any]) -> list[Operation]:
    """Every operation of an OpenAPI document."""
    found = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = op.get("parameters", [])
            body = op.get("requestBody")
            schema = body["content"].get("application/json", {}).get("schema", {}) if body else None
            found.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    path_params=tuple(p["name"] for p in params if p["in"] == "path"),
                    query_params=tuple(p["name"] for p in params if p["in"] == "query"),
                    body_schema=schema,
                    signed=any(p["in"] == "header" and p["name"].startswith("x-durable-") for p in params),
                )
            )
    return found


def _example(schema: dict[str, Any]) -> Any:
    """A plausible value for a JSON schema: the fallback body of an operation added after this test."""
    if "enum" in schema:
        return schema["enum"][0]
    if "oneOf" in schema or "anyOf" in schema:
        return _example((schema.get("oneOf") or schema["anyOf"])[0])
    kind = schema.get("type", "object")
    if kind == "object":
        return {name: _example(sub) for name, sub in schema.get("properties", {}).items()}
    return {"string": "x", "integer": 1, "number": 1, "boolean": True, "array": []}.get(kind)


# The document at collection time, so each operation is its own test; test_every_route_is_covered checks
# it against the /openapi.json a running engine serves.
OPERATIONS = operations(create_app(None, make_settings("postgresql://unused/unused")).openapi())  # type: ignore[arg-type]
BODY_OPERATIONS = [op for op in OPERATIONS if op.body_schema is not None]
URL_OPERATIONS = [op for op in OPERATIONS if op.path_params or op.query_params]


# --- the cases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A request body and what the refusal must say (any one of `needles`, case-insensitive)."""

    label: str
    raw: bytes
    needles: tuple[str, ...] = ()
    status: int = 400


def _leaves(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every (path, value) in a decoded body, containers included (the root excepted)."""
    if path:
        yield path, value
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaves(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _leaves(child, (*path, index))


def _replace(value: Any, path: tuple[str | int, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: (_replace(v, rest, new) if k == head else v) for k, v in value.items()}
    return [_replace(v, rest, new) if i == head else v for i, v in enumerate(value)]


def _rename(value: Any, path: tuple[str | int, ...], new_key: str) -> Any:
    """`value` with the key at `path` renamed (its value kept)."""
    *parent_path, key = path
    parent = value
    for part in parent_path:
        parent = parent[part]
    renamed = {(new_key if k == key else k): v for k, v in parent.items()}
    return _replace(value, tuple(parent_path), renamed)


def _field(path: tuple[str | int, ...]) -> str:
    """The last named field of a path: what a message must mention."""
    return next(str(p) for p in reversed(path) if isinstance(p, str))


def _nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def body_cases(op: Operation) -> list[Case]:
    good = op.good_body()
    dumps = orjson.dumps
    deep = "nested deeper than 254 levels"
    outside = "outside the range Durable stores exactly"
    cases = [
        Case("malformed", b"{not json", ("malformed JSON",)),
        Case("truncated", dumps(good)[:-1], ("malformed JSON",)),
        Case("trailing garbage", dumps(good) + b" x", ("malformed JSON",)),
        Case("not UTF-8", b'{"name": "\xff\xfe"}', ("malformed JSON",)),
        Case("lone surrogate", b'{"name": "\\ud800"}', ("malformed JSON",)),
        Case("NaN", b'{"name": NaN}', ("malformed JSON",)),
        Case("1e400", b'{"name": 1e400}', ("malformed JSON",)),
        Case("nested 255", _nested(255), (deep,)),
        Case("nested 1000", _nested(1000), (deep,)),
        Case("nested 2000", _nested(2000), ("malformed JSON", deep)),
        Case("2^64", b"18446744073709551616", (outside,)),
        Case("-2^63-1", b"-9223372036854775809", (outside,)),
        Case("10^30", b"1" + b"0" * 30, (outside,)),
        Case("oversized", b'{"name": "' + b"x" * MAX_BODY + b'"}', ("4 MiB",), status=413),
        Case("unknown field", dumps({**good, "zzUnknown": 1}), ("zzUnknown",)),
    ]
    for label, raw in (("string", b'"text"'), ("null", b"null"), ("number", b"5"), ("list", b"[1]")):
        cases.append(Case(f"top-level {label}", raw))
    for path, value in _leaves(good):
        where = "/".join(map(str, path))
        name = _field(path)
        cases.append(Case(f"{where}: nested 255", _literal_at(good, path, _nested(255 - len(path))), (deep,)))
        for big in (2**64, -(2**63) - 1, 10**30):
            cases.append(Case(f"{where}: {big}", _literal_at(good, path, str(big).encode()), (outside,)))
        if isinstance(value, str):
            cases.append(Case(f"{where}: NUL", dumps(_replace(good, path, NUL)), ("NUL",)))
            cases.append(Case(f"{where}: NUL only", dumps(_replace(good, path, "\x00")), ("NUL",)))
        if isinstance(path[-1], str):
            cases.append(
                Case(
                    f"{where}: NUL in key",
                    dumps(_rename(good, path, name + "\x00")),
                    ("NUL", "unknown field"),
                )
            )
        if not FREE & {str(p) for p in path}:
            for wrong in _wrong_types(value):
                cases.append(
                    Case(
                        f"{where}: {orjson.dumps(wrong).decode()}",
                        dumps(_replace(good, path, wrong)),
                        (name,),
                    )
                )
        if isinstance(value, dict) and not FREE & {str(p) for p in path}:
            extra = {**value, "zzExtra": 1}
            cases.append(Case(f"{where}: unknown field", dumps(_replace(good, path, extra)), ("zzExtra",)))
    if isinstance(good, dict) and "data" in good:
        for label, data in (
            ("NUL key in data", {"k\x00": 1}),
            ("NUL value deep in data", {"a": [{"b": ["ok", NUL]}]}),
            ("escaped NUL in data", orjson.loads(b'{"k": "\\u0000"}')),
        ):
            cases.append(Case(label, dumps({**good, "data": data}), ("NUL",)))
    return cases + SPECIFIC.get((op.method, op.path), [])


def _literal_at(good: Any, path: tuple[str | int, ...], literal: bytes) -> bytes:
    """`good` with the value at `path` replaced by the JSON text `literal` (which orjson cannot write:
    an integer beyond 64 bits, nesting deeper than it encodes)."""
    marker = "__literal__"
    return orjson.dumps(_replace(good, path, marker)).replace(f'"{marker}"'.encode(), literal)


def _wrong_types(value: Any) -> list[Any]:
    """Values of another JSON type than `value`'s, none of which a field of that type accepts."""
    if isinstance(value, bool):
        return ["yes", [1]]
    if isinstance(value, int):
        return ["x", True, [1]]
    if isinstance(value, str):
        return [[value], True, {"x": 1}]
    if isinstance(value, dict):
        return ["x", [1], True]
    if isinstance(value, list):
        return ["x", {"x": 1}, True]
    return []


def _sync_with(**function: Any) -> bytes:
    return orjson.dumps(
        {"url": SYNC["url"], "functions": [{"id": "f", "trigger": {"event": "e"}, **function}]}
    )


HUGE_MINUTES = ",".join(str(i % 60) for i in range(300_000))  # the 600 KB schedule of the review
SPECIFIC: dict[tuple[str, str], list[Case]] = {
    ("POST", "/fn/sync"): [
        Case("duration word", _sync_with(throttle={"limit": 1, "period": "soon"}), ("throttle.period",)),
        Case("duration negative", _sync_with(throttle={"limit": 1, "period": -5}), ("throttle.period",)),
        Case("duration zero", _sync_with(debounce={"period": "0s"}), ("debounce.period",)),
        Case("duration 2^64 ms", _sync_with(batch={"maxSize": 2, "timeout": 2**64 - 1}), ("batch.timeout",)),
        Case("duration huge", _sync_with(debounce={"period": "99999999999999999999w"}), ("debounce.period",)),
        Case("duration NUL", _sync_with(debounce={"period": "5s\x00"}), ("NUL",)),
        Case("cron 61", _sync_with(trigger={"cron": "61 * * * *"}), ("trigger.cron",)),
        Case("cron fields", _sync_with(trigger={"cron": "* * *"}), ("trigger.cron",)),
        Case("cron never", _sync_with(trigger={"cron": "0 0 30 2 *"}), ("never occurs",)),
        Case("cron alias", _sync_with(trigger={"cron": "@daily"}), ("trigger.cron",)),
        Case("cron zone", _sync_with(trigger={"cron": "TZ=Mars/Olympus 0 3 * * *"}), ("time zone",)),
        Case("cron NUL", _sync_with(trigger={"cron": "0 3 * * *\x00"}), ("NUL",)),
        Case("cron 257 chars", _sync_with(trigger={"cron": "0 3 * * *" + " " * 248}), ("at most 256",)),
        Case(
            "cron 61 items", _sync_with(trigger={"cron": ",".join(["0"] * 61) + " * * * *"}), ("at most 60",)
        ),
        Case("cron 300,000 items", _sync_with(trigger={"cron": HUGE_MINUTES + " * * * *"}), ("at most 256",)),
        Case("url scheme", orjson.dumps({"url": "ftp://x/", "functions": []}), ("url",)),
        Case("url NUL", orjson.dumps({"url": "http://x/\x00", "functions": []}), ("NUL",)),
        Case("url 10 KB", orjson.dumps({"url": "http://x/" + TEN_KB, "functions": []}), ("url",)),
        Case("limit 2^64", _sync_with(concurrency={"limit": 2**64 - 1}), ("concurrency.limit",)),
        Case(
            "limit 10^30",
            b'{"url": "http://x/", "functions": [{"id": "f", "trigger": {"event": "e"}, '
            b'"concurrency": {"limit": 1000000000000000000000000000000}}]}',
            ("outside the range",),
        ),
        Case("priority 2^63", _sync_with(priority=2**63), ("priority",)),
        Case("retries float", _sync_with(retries=1.5), ("retries",)),
        Case("key path", _sync_with(concurrency={"limit": 1, "key": "a..b"}), ("concurrency.key",)),
        Case("id", _sync_with(id="bad id!"), ("id",)),
        Case("id 129", _sync_with(id="f" * 129), ("id",)),
        Case("name 257", _sync_with(name="n" * 257), ("name",)),
        Case("event 10 KB", _sync_with(trigger={"event": TEN_KB}), ("trigger.event",)),
        Case(
            "too many",
            orjson.dumps(
                {
                    "url": "http://x/",
                    "functions": [{"id": f"f{i}", "trigger": {"event": "e"}} for i in range(1001)],
                }
            ),
            ("at most 1000",),
        ),
        Case(
            "duplicate",
            orjson.dumps({"url": "http://x/", "functions": [FUNCTIONS[0], FUNCTIONS[0]]}),
            ("duplicate",),
        ),
        Case(
            "batch+debounce",
            _sync_with(batch={"maxSize": 2, "timeout": "1s"}, debounce={"period": "1s"}),
            ("cannot be combined",),
        ),
    ],
    ("POST", "/e"): [
        Case("empty list", b"[]", ("must not be empty",)),
        Case("list with a bad event", orjson.dumps([EVENT, {**EVENT, "name": NUL}]), ("events[1]",)),
        Case("list of 1001", orjson.dumps([{"name": "e"}] * 1001), ("at most 1000",)),
        Case("name 257", orjson.dumps({"name": "n" * 257}), ("name",)),
        Case("ts 2^64", b'{"name": "e", "ts": 18446744073709551615}', ("ts",)),
        Case("ts negative", orjson.dumps({"name": "e", "ts": -1}), ("ts",)),
        Case("ts float", orjson.dumps({"name": "e", "ts": 1.5}), ("ts",)),
        Case("empty body", b"", ("malformed JSON",)),
    ],
}
SPECIFIC[("POST", "/api/apps/{app_id}/events")] = [
    c for c in SPECIFIC[("POST", "/e")] if c.label != "empty body"
]


# --- the bench --------------------------------------------------------------------------------------


@dataclass
class Bench:
    engine: Engine
    ws: Workspace
    run_id: str
    values: dict[str, str] = field(default_factory=dict)

    def url(self, op: Operation, **override: str) -> str:
        path = op.path
        for name in op.path_params:
            value = override.get(name, self.values.get(name, "x"))
            path = path.replace("{" + name + "}", quote(value, safe=""))
        return path

    async def send(
        self,
        op: Operation,
        raw: bytes | None = None,
        *,
        path: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        url = self.url(op, **(path or {}))
        if op.signed and raw is not None and headers is None:
            return await self.engine.signed(self.ws, url + _query(query), None, raw=raw)
        all_headers = {"content-type": "application/json", **(headers or {})}
        request = self.engine.api.build_request(
            op.method, url, params=query, content=raw, headers=all_headers, timeout=10
        )
        return await asyncio.wait_for(self.engine.api.send(request), 20)

    async def state(self) -> dict[str, str]:
        """A digest of every user-data table: equal digests, nothing stored or changed."""
        async with self.engine.db.connection() as conn:
            return {
                table: await conn.raw.fetchval(
                    f"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') "
                    f"FROM {table} t"
                )
                for table in TABLES
            }


def _query(query: dict[str, str] | None) -> str:
    return ("?" + str(httpx.QueryParams(query))) if query else ""


@pytest.fixture
async def bench(engine: Engine) -> AsyncIterator[Bench]:
    ws = await engine.workspace()
    await engine.sync(ws, SYNC["url"], FUNCTIONS)
    response = await engine.signed(ws, "/e", EVENT)
    assert response.status_code == 200, response.text
    runs = (await engine.api.get(f"/api/apps/{ws.id}/runs")).json()["items"]
    assert len(runs) == 1, runs
    bench = Bench(engine, ws, runs[0]["id"])
    bench.values = {"app_id": ws.id, "function_id": "fn", "run_id": bench.run_id}
    yield bench


def _check(response: httpx.Response, case: Case) -> str | None:
    """What is wrong with the answer to a bad request, or None."""
    if not 400 <= response.status_code < 500:
        return f"status {response.status_code}: {response.text[:200]}"
    if case.status and response.status_code != case.status and response.status_code != 429:
        return f"status {response.status_code} (expected {case.status}): {response.text[:200]}"
    try:
        message = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"not a JSON error: {response.text[:200]}"
    if not isinstance(message, str) or not message:
        return f"empty error: {response.text[:200]}"
    if case.needles and not any(n.lower() in message.lower() for n in case.needles):
        return f"message does not name {' or '.join(map(repr, case.needles))}: {message[:300]}"
    return None


async def _run_cases(bench: Bench, op: Operation, cases: list[tuple[Case, dict[str, Any]]]) -> None:
    before = await bench.state()
    failures = []
    for case, request in cases:
        response = await bench.send(op, **request)
        problem = _check(response, case)
        if problem is not None:
            failures.append(f"{case.label}: {problem}")
            continue
        after = await bench.state()
        changed = [t for t in TABLES if after[t] != before[t]]
        if changed:
            failures.append(f"{case.label}: stored something in {', '.join(changed)}")
            before = after
    assert not failures, f"{op.name}:\n  " + "\n  ".join(failures)


# --- the tests --------------------------------------------------------------------------------------


async def test_every_route_is_covered(bench: Bench) -> None:
    """The operations tested are those the running engine documents, and every body-taking operation
    either has a known valid body or one derived from its schema (a new route is tested at once)."""
    response = await bench.engine.api.get("/openapi.json")
    assert response.status_code == 200, response.text
    served = {op.name for op in operations(response.json())}
    assert served == {op.name for op in OPERATIONS}
    assert {"POST /e", "POST /fn/sync", "GET /api/runs/{run_id}"} <= served
    for op in BODY_OPERATIONS:
        assert isinstance(op.good_body(), dict), op.name


@pytest.mark.parametrize("op", BODY_OPERATIONS, ids=lambda op: op.name)
async def test_every_bad_body_is_refused_by_name(bench: Bench, op: Operation) -> None:
    await _run_cases(bench, op, [(case, {"raw": case.raw}) for case in body_cases(op)])


@pytest.mark.parametrize("op", [op for op in OPERATIONS if op.signed], ids=lambda op: op.name)
async def test_a_bad_signature_is_refused(bench: Bench, op: Operation) -> None:
    raw = orjson.dumps(op.good_body())
    unsigned = {"content-type": "application/json", "x-durable-app": bench.ws.id}
    cases = [
        (Case("no signature", raw, ("signature",), 401), {"raw": raw, "headers": unsigned}),
        (
            Case("wrong signature", raw, ("signature",), 401),
            {"raw": raw, "headers": {**unsigned, "x-durable-signature": "0" * 64}},
        ),
        (Case("no app", raw, ("x-durable-app",), 401), {"raw": raw, "headers": {"x-durable-signature": "0"}}),
        (
            Case("app id 10 KB", raw, ("app",), 401),
            {"raw": raw, "headers": {"x-durable-app": TEN_KB, "x-durable-signature": "0" * 64}},
        ),
    ]
    await _run_cases(bench, op, cases)


def _url_values(op: Operation) -> list[tuple[Case, dict[str, Any]]]:
    cases: list[tuple[Case, dict[str, Any]]] = []
    for name in op.path_params:
        for label, value, needles in (
            ("NUL", NUL, (name, "NUL")),
            ("NUL only", "\x00", (name,)),
            ("10 KB", TEN_KB, ()),
            ("10 KB of NUL", "\x00" * 10_240, (name,)),
        ):
            status = 400 if "NUL" in label else 0
            cases.append((Case(f"path {name}: {label}", b"", needles, status), {"path": {name: value}}))
    for name in op.query_params:
        for label, value, needles in (
            ("NUL", NUL, (name, "NUL")),
            ("NUL only", "\x00", (name,)),
            ("10 KB", TEN_KB, (name,)),
            ("10 KB of NUL", "\x00" * 10_240, (name,)),
        ):
            status = 400 if "NUL" in label else 0
            cases.append((Case(f"query {name}: {label}", b"", needles, status), {"query": {name: value}}))
    return cases


@pytest.mark.parametrize("op", URL_OPERATIONS, ids=lambda op: op.name)
async def test_a_bad_path_or_query_parameter_is_refused_by_name(bench: Bench, op: Operation) -> None:
    good = orjson.dumps(op.good_body()) if op.body_schema is not None else None
    cases = [(case, {**request, "raw": good}) for case, request in _url_values(op)]
    await _run_cases(bench, op, cases)


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.name)
async def test_a_nul_anywhere_in_the_url_is_refused(bench: Bench, op: Operation) -> None:
    """Also on routes without parameters, and in a parameter no route declares."""
    cases = [
        (Case("unknown query parameter", b"", ("zz", "NUL")), {"query": {"zz": NUL}}),
        (Case("NUL in a query name", b"", ("NUL",)), {"query": {"z\x00z": "1"}}),
    ]
    await _run_cases(bench, op, cases)


async def test_a_nul_in_a_path_no_route_takes_is_refused(bench: Bench) -> None:
    for path in ("/api/%00", "/%00", "/assets/%00.js", "/api/apps/%00/functions/%00/run"):
        response = await bench.engine.api.get(path)
        assert response.status_code == 400, (path, response.text)
        assert "NUL" in response.json()["error"], response.text


# --- hypothesis: never a 5xx --------------------------------------------------------------------------

FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _mutations(op: Operation) -> st.SearchStrategy[bytes]:
    """A valid body with one field set to an arbitrary JSON value, or arbitrary bytes."""
    good = op.good_body()
    paths = [path for path, _ in _leaves(good)] or [()]
    mutated = st.tuples(st.sampled_from(paths), JSON_VALUES).map(
        lambda pv: orjson.dumps(_replace(good, pv[0], pv[1]))
    )
    return st.binary(max_size=512) | JSON_VALUES.map(orjson.dumps) | mutated


@pytest.mark.parametrize("op", BODY_OPERATIONS, ids=lambda op: op.name)
@FUZZ
@given(data=st.data())
async def test_no_body_reaches_a_server_error(bench: Bench, op: Operation, data: st.DataObject) -> None:
    raw = data.draw(_mutations(op), label="body")
    response = await bench.send(op, raw)
    assert response.status_code < 500, response.text


@pytest.mark.parametrize(
    "op", [op for op in URL_OPERATIONS if op.path not in STREAMING], ids=lambda op: op.name
)
@FUZZ
@given(data=st.data())
async def test_no_url_parameter_reaches_a_server_error(
    bench: Bench, op: Operation, data: st.DataObject
) -> None:
    names = [("path", n) for n in op.path_params] + [("query", n) for n in op.query_params]
    kind, name = data.draw(st.sampled_from(names), label="parameter")
    value = data.draw(st.text(min_size=1, max_size=300), label="value")
    good = orjson.dumps(op.good_body()) if op.body_schema is not None else None
    response = await bench.send(op, good, **{kind: {name: value}})
    assert response.status_code < 500, response.text


# --- cron size: refused at once, the loop stays free ------------------------------------------------


async def _healthz_latencies(api: httpx.AsyncClient, stop: asyncio.Event) -> list[float]:
    latencies = []
    while not stop.is_set():
        started = time.perf_counter()
        response = await api.get("/healthz")
        assert response.status_code == 200, response.text
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)
    return latencies


async def _during(engine: Engine, request: Any) -> tuple[httpx.Response, float, list[float]]:
    """Send `request` while /healthz is polled; its answer, how long it took, and /healthz's latencies."""
    stop = asyncio.Event()
    poller = asyncio.create_task(_healthz_latencies(engine.api, stop))
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    response = await request
    took = time.perf_counter() - started
    await asyncio.sleep(0.05)
    stop.set()
    return response, took, await poller


async def test_a_600_kb_cron_list_is_refused_at_once_and_healthz_keeps_answering(bench: Bench) -> None:
    raw = _sync_with(trigger={"cron": HUGE_MINUTES + " * * * *"})
    assert len(raw) > 600_000
    before = await bench.state()
    response, took, latencies = await _during(
        bench.engine, bench.engine.signed(bench.ws, "/fn/sync", None, raw=raw)
    )
    assert response.status_code == 400, response.text
    assert "at most 256 are accepted" in response.json()["error"], response.text
    assert took < 1.0, f"the refusal took {took:.2f} s"
    assert max(latencies) < 0.2, f"/healthz took up to {max(latencies) * 1000:.0f} ms"
    assert await bench.state() == before


async def test_a_sync_of_many_rare_schedules_does_not_hold_the_loop(bench: Bench) -> None:
    """Each of these schedules costs milliseconds to probe (the 31st of a 30-day month that is also a
    Monday, probed as OR by croniter): validated and scheduled on the loop, 400 of them held /healthz
    for 1.5 s; in a worker thread, /healthz answers throughout (in about 100 ms at worst, the thread
    holding the GIL for up to 5 ms at each of its turns: the bound leaves room for a busy machine)."""
    functions = [
        {"id": f"rare-{i}", "trigger": {"cron": f"{i % 60} {i // 60 % 24} 31 4,6,9,11 1"}} for i in range(400)
    ]
    payload = {"url": SYNC["url"], "functions": functions}
    response, took, latencies = await _during(
        bench.engine, bench.engine.signed(bench.ws, "/fn/sync", payload)
    )
    assert response.status_code == 200, response.text
    assert len(latencies) > 3, "the sync finished before /healthz was asked often enough to tell"
    assert max(latencies) < 0.5, f"/healthz took up to {max(latencies) * 1000:.0f} ms (sync {took:.2f} s)"


async def test_a_body_that_never_completes_gets_408(engine: Engine) -> None:
    """Through the ASGI app alone (no server deadline): read_body's own bound answers 408."""
    settings_ = make_settings(engine.dsn, request_timeout_ms=300)
    app = create_app(engine.db, settings_)
    ws = await engine.workspace()

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"name": "x"'
        await asyncio.sleep(5)
        yield b"}"

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as api:
        started = time.perf_counter()
        response = await api.post(
            "/api/apps/" + ws.id + "/events", content=trickle(), headers={"content-type": "application/json"}
        )
    assert response.status_code == 408, response.text
    assert "DURABLE_REQUEST_TIMEOUT_MS" in response.json()["error"]
    assert time.perf_counter() - started < 3
