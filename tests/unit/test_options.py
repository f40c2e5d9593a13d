"""core.options: the POST /fn/sync body, key paths and priorities."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable.core.options import FunctionDef, SyncRequest, key_value, parse_sync, priority_of
from durable.errors import InvalidInput

URL = "http://localhost:4000/api/durable"


def sync(*functions: dict[str, Any]) -> SyncRequest:
    return parse_sync({"url": URL, "functions": list(functions)})


def one(**fields: Any) -> FunctionDef:
    return sync({"id": "fn", "trigger": {"event": "e"}, **fields}).functions[0]


def refused(body: object) -> str:
    with pytest.raises(InvalidInput) as caught:
        parse_sync(body)
    return caught.value.message


def refused_fn(**fields: Any) -> str:
    return refused({"url": URL, "functions": [{"id": "fn", "trigger": {"event": "e"}, **fields}]})


def test_minimal_function_gets_defaults() -> None:
    assert one() == {
        "id": "fn",
        "name": "fn",
        "trigger": {"event": "e"},
        "retries": None,
        "concurrency": None,
        "priority": None,
        "throttle": None,
        "rateLimit": None,
        "debounce": None,
        "batch": None,
        "onFailure": None,
        "cancelOn": None,
        "idempotency": None,
        "singleton": None,
    }


def test_composition_options_normalised() -> None:
    body = {
        "url": URL,
        "functions": [
            {
                "id": "ship",
                "trigger": {"event": "order.paid"},
                "onFailure": "ship:failure",
                "cancelOn": [
                    {"event": "order.cancelled", "match": "order.id", "timeout": "7d"},
                    {"event": "stop"},
                ],
                "idempotency": "orderId",
                "singleton": {"key": "userId", "mode": "cancel"},
            },
            {"id": "ship:failure", "trigger": None},
        ],
    }
    ship, handler = parse_sync(body).functions
    assert ship["onFailure"] == "ship:failure"
    assert ship["cancelOn"] == [
        {"event": "order.cancelled", "match": "order.id", "timeout": 604_800_000},
        {"event": "stop"},
    ]
    assert ship["idempotency"] == "orderId"
    assert ship["singleton"] == {"key": "userId", "mode": "cancel"}
    assert handler["trigger"] == {}  # trigger: null, started only by invoke or as a failure handler


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"onFailure": "nope"}, "function 'fn': onFailure: names no function of this sync ('nope')"),
        ({"onFailure": "fn"}, "function 'fn': onFailure: cannot name the function itself"),
        ({"onFailure": 3}, "function 'fn': onFailure: must be the id of a function of this sync, got 3"),
        ({"cancelOn": {"event": "x"}}, "function 'fn': cancelOn: must be a non-empty list"),
        ({"cancelOn": [{"event": "x", "when": 1}]}, "function 'fn': cancelOn[0]: unknown field 'when'"),
        ({"cancelOn": [{"event": 7}]}, "function 'fn': cancelOn[0].event: must be a non-empty event name"),
        (
            {"cancelOn": [{"event": "x", "match": "a..b"}]},
            "function 'fn': cancelOn[0].match: must be a dotted path",
        ),
        (
            {"cancelOn": [{"event": "x", "timeout": "soon"}]},
            "function 'fn': cancelOn[0].timeout: invalid duration",
        ),
        (
            {"cancelOn": [{"event": f"e{i}"} for i in range(11)]},
            "function 'fn': cancelOn: at most 10 entries (got 11)",
        ),
        ({"idempotency": ""}, "function 'fn': idempotency: must be a dotted path"),
        (
            {"singleton": {"key": "u"}},
            'function \'fn\': singleton.mode: must be "skip" or "cancel", got null',
        ),
        ({"singleton": {"mode": "skip", "x": 1}}, "function 'fn': singleton: unknown field 'x'"),
    ],
)
def test_composition_refusals_name_function_and_field(fields: dict[str, Any], message: str) -> None:
    assert refused_fn(**fields).startswith(message)


def test_missing_trigger_is_refused_but_null_is_allowed() -> None:
    assert refused({"url": URL, "functions": [{"id": "fn"}]}).endswith("got nothing (the field is missing)")
    assert (
        parse_sync({"url": URL, "functions": [{"id": "fn", "trigger": None}]}).functions[0]["trigger"] == {}
    )


def test_empty_function_list() -> None:
    assert parse_sync({"url": "https://app.example.com/durable", "functions": []}) == SyncRequest(
        url="https://app.example.com/durable", functions=[]
    )


def test_every_option_normalised() -> None:
    fn = one(
        name="Hello",
        retries=5,
        concurrency={"limit": 2, "key": "tenantId"},
        priority=10,
        rateLimit={"limit": 100, "period": "1h", "key": "user.id"},
        debounce={"period": "5s", "key": "tenantId", "timeout": "1m"},
    )
    assert one(throttle={"limit": 1, "period": "1m"})["throttle"] == {"limit": 1, "period": 60_000}
    assert fn["name"] == "Hello"
    assert fn["retries"] == 5
    assert fn["concurrency"] == {"limit": 2, "key": "tenantId"}
    assert fn["priority"] == 10
    assert fn["rateLimit"] == {"limit": 100, "period": 3_600_000, "key": "user.id"}
    assert fn["debounce"] == {"period": 5_000, "key": "tenantId", "timeout": 60_000}


def test_debounce_and_throttle_are_refused_together() -> None:
    with pytest.raises(InvalidInput, match="function 'fn': debounce and throttle cannot be combined"):
        one(debounce={"period": "5s"}, throttle={"limit": 1, "period": "1m"})


def test_batch_and_priority_key() -> None:
    fn = one(batch={"maxSize": 100, "timeout": "5s", "key": "accountId"})
    assert fn["batch"] == {"maxSize": 100, "timeout": 5_000, "key": "accountId"}
    assert one(priority={"key": "prio"})["priority"] == {"key": "prio"}


def test_integer_millisecond_durations() -> None:
    assert one(throttle={"limit": 1, "period": 1500})["throttle"] == {"limit": 1, "period": 1500}


def test_cron_trigger() -> None:
    fn = sync({"id": "nightly", "trigger": {"cron": " TZ=Europe/Amsterdam 0 3 * * * "}}).functions[0]
    assert fn["trigger"] == {"cron": "TZ=Europe/Amsterdam 0 3 * * *"}


def test_explicit_nulls_mean_absent() -> None:
    assert one(name=None, retries=None, throttle=None, priority=None) == one()


def test_the_brief_example_message() -> None:
    body = {
        "url": URL,
        "functions": [
            {"id": "onboarding", "trigger": {"event": "e"}, "throttle": {"limit": 1, "period": "abc"}}
        ],
    }
    assert refused(body) == (
        "function 'onboarding': throttle.period: invalid duration 'abc' "
        '(use e.g. "500ms", "90s", "5m", "1h30m" or integer milliseconds)'
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"retries": 21}, "function 'fn': retries: must be an integer 0..20, got 21"),
        ({"retries": -1}, "function 'fn': retries: must be an integer 0..20, got -1"),
        ({"retries": True}, "function 'fn': retries: must be an integer 0..20, got true"),
        ({"retries": "3"}, "function 'fn': retries: must be an integer 0..20, got '3'"),
        ({"name": ""}, "function 'fn': name: must be a non-empty string"),
        ({"nmae": "x"}, "function 'fn': unknown field 'nmae' (expected id, name, trigger, retries,"),
        ({"concurrency": 2}, "function 'fn': concurrency: must be an object {limit, key}, got 2"),
        ({"concurrency": {}}, "function 'fn': concurrency.limit: missing (an integer 1..100000)"),
        (
            {"concurrency": {"limit": 0}},
            "function 'fn': concurrency.limit: must be an integer 1..100000, got 0",
        ),
        (
            {"concurrency": {"limit": 1, "key": "a..b"}},
            "function 'fn': concurrency.key: must be a dotted path",
        ),
        ({"concurrency": {"limit": 1, "key": 5}}, "function 'fn': concurrency.key: must be a dotted path"),
        (
            {"concurrency": {"limit": 1, "scope": "fn"}},
            "function 'fn': concurrency: unknown field 'scope' (expected limit, key)",
        ),
        ({"priority": 1001}, "function 'fn': priority: must be an integer -1000..1000, got 1001"),
        ({"priority": True}, "function 'fn': priority: must be an integer -1000..1000 or {key}, got true"),
        ({"priority": {}}, "function 'fn': priority.key: missing"),
        ({"priority": {"key": "event.data.x y"}}, "function 'fn': priority.key: must be a dotted path"),
        ({"throttle": {"limit": 1}}, "function 'fn': throttle.period: missing (a duration such as \"30s\")"),
        (
            {"throttle": {"limit": 1, "period": "0s"}},
            "function 'fn': throttle.period: must be longer than zero",
        ),
        ({"throttle": {"limit": 1, "period": 0}}, "function 'fn': throttle.period: must be longer than zero"),
        ({"throttle": {"period": "1s"}}, "function 'fn': throttle.limit: missing"),
        (
            {"rateLimit": {"limit": 1, "period": "1x"}},
            "function 'fn': rateLimit.period: invalid duration '1x'",
        ),
        ({"debounce": {}}, "function 'fn': debounce.period: missing"),
        (
            {"debounce": {"period": "1m", "timeout": "30s"}},
            "function 'fn': debounce.timeout: must be at least debounce.period",
        ),
        ({"batch": {"timeout": "1s"}}, "function 'fn': batch.maxSize: missing (an integer 1..1000)"),
        (
            {"batch": {"maxSize": 1001, "timeout": "1s"}},
            "function 'fn': batch.maxSize: must be an integer 1..1000, got 1001",
        ),
        ({"batch": {"maxSize": 10}}, "function 'fn': batch.timeout: missing"),
        (
            {"batch": {"maxSize": 10, "timeout": "1s"}, "debounce": {"period": "1s"}},
            "function 'fn': batch and debounce cannot be combined",
        ),
        (
            {"batch": {"maxSize": 10, "timeout": "1s"}, "rateLimit": {"limit": 1, "period": "1s"}},
            "function 'fn': batch and rateLimit cannot be combined",
        ),
        (
            {"batch": {"maxSize": 10, "timeout": "1s"}, "priority": {"key": "p"}},
            "function 'fn': batch and priority.key cannot be combined",
        ),
        (
            {"trigger": {"cron": "0 3 * * *"}, "debounce": {"period": "1s"}},
            "function 'fn': debounce cannot be used with trigger.cron",
        ),
        (
            {"trigger": {"cron": "0 3 * * *"}, "batch": {"maxSize": 2, "timeout": "1s"}},
            "function 'fn': batch cannot be used with trigger.cron",
        ),
        ({"trigger": {"cron": "bad"}}, "function 'fn': trigger.cron: 'bad' has 1 fields"),
        (
            {"trigger": {"cron": "0 0 30 2 *"}},
            "function 'fn': trigger.cron: cron expression '0 0 30 2 *' never occurs",
        ),
        ({"trigger": {"event": ""}}, "function 'fn': trigger.event: must be a non-empty event name"),
        ({"trigger": {}}, "function 'fn': trigger: needs exactly one of event or cron"),
        (
            {"trigger": {"event": "e", "cron": "0 3 * * *"}},
            "function 'fn': trigger: needs exactly one of event or cron",
        ),
        ({"trigger": {"evnt": "e"}}, "function 'fn': trigger: unknown field 'evnt' (expected event, cron)"),
        (
            {"trigger": "e"},
            'function \'fn\': trigger: must be {"event": "order.paid"}, {"cron": "0 3 * * *"} or null (started only by invoke), got \'e\'',
        ),
    ],
)
def test_function_refusals_name_function_and_field(fields: dict[str, Any], message: str) -> None:
    assert refused_fn(**fields).startswith(message)


def test_combinations_that_are_allowed() -> None:
    fn = one(
        debounce={"period": "1s"},
        rateLimit={"limit": 1, "period": "1m"},
        concurrency={"limit": 1},
    )
    assert fn["debounce"] == {"period": 1000}
    batched = one(
        batch={"maxSize": 2, "timeout": "1s"},
        priority=5,
        concurrency={"limit": 1, "key": "a"},
        throttle={"limit": 1, "period": "1s"},
    )
    assert batched["priority"] == 5 and batched["throttle"] == {"limit": 1, "period": 1000}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "body must be an object {url, functions}, got an array"),
        ({"url": URL}, "functions: must be a list (may be empty), got null"),
        ({"url": URL, "functions": {}}, "functions: must be a list (may be empty), got an object"),
        (
            {"url": URL, "functions": [], "appName": "x"},
            "body: unknown field 'appName' (expected url, functions)",
        ),
        ({"functions": []}, "url: must be the app's http(s) URL, got null"),
        ({"url": "ftp://x/y", "functions": []}, "url: must be the app's http(s) URL, got 'ftp://x/y'"),
        ({"url": "http://", "functions": []}, "url: must be the app's http(s) URL"),
        ({"url": "localhost:4000", "functions": []}, "url: must be the app's http(s) URL"),
        ({"url": "http://a b/", "functions": []}, "url: must be the app's http(s) URL"),
        ({"url": "http://host:99999/", "functions": []}, "url: must be the app's http(s) URL"),
        ({"url": URL, "functions": [1]}, "functions[0]: must be an object {id, trigger, …}, got 1"),
        (
            {"url": URL, "functions": [{"trigger": {"event": "e"}}]},
            "functions[0]: id: must be 1-128 characters",
        ),
        (
            {"url": URL, "functions": [{"id": "-x", "trigger": {"event": "e"}}]},
            "functions[0]: id: must be 1-128 characters",
        ),
        (
            {"url": URL, "functions": [{"id": "a" * 129, "trigger": {"event": "e"}}]},
            "functions[0]: id: must be 1-128 characters",
        ),
        (
            {"url": URL, "functions": [{"id": "a b", "trigger": {"event": "e"}}]},
            "functions[0]: id: must be 1-128 characters",
        ),
        ({"url": URL, "functions": [{"id": "fn"}]}, "function 'fn': trigger: must be"),
        (
            {
                "url": URL,
                "functions": [{"id": "a", "trigger": {"event": "e"}}, {"id": "a", "trigger": {"event": "f"}}],
            },
            "function 'a': id: duplicate (also functions[0])",
        ),
    ],
)
def test_body_refusals(body: object, message: str) -> None:
    assert refused(body).startswith(message)


def test_valid_ids() -> None:
    ids = ["a", "A1", "fn.v2", "billing:charge", "x_y-z", "9" * 128]
    result = parse_sync({"url": URL, "functions": [{"id": i, "trigger": {"event": "e"}} for i in ids]})
    assert [f["id"] for f in result.functions] == ids


@pytest.mark.parametrize(
    ("path", "data", "value"),
    [
        ("tenantId", {"tenantId": "t1"}, "t1"),
        ("user.id", {"user": {"id": "u1"}}, "u1"),
        ("user.id", {"user": {"id": 7}}, "7"),
        ("user.id", {"user": {"id": 7.0}}, "7"),
        ("n", {"n": 1.5}, "1.5"),
        ("b", {"b": True}, "true"),
        ("o", {"o": {"b": 1, "a": [1, "x"]}}, '{"a":[1,"x"],"b":1}'),
        ("missing", {"a": 1}, None),
        ("a.b", {"a": 1}, None),
        ("a.b", {"a": None}, None),
        ("a", {"a": None}, None),
        ("a", [1], None),
        ("a", None, None),
    ],
)
def test_key_value(path: str, data: object, value: str | None) -> None:
    assert key_value(path, data) == value


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=3).filter(lambda k: "." not in k), st.integers(), max_size=3
    ),
    st.dictionaries(
        st.text(min_size=1, max_size=3).filter(lambda k: "." not in k), st.integers(), max_size=3
    ),
)
def test_key_value_of_objects_ignores_key_order(a: dict[str, int], b: dict[str, int]) -> None:
    merged = {**a, **b}
    reordered = dict(reversed(list(merged.items())))
    assert key_value("k", {"k": merged}) == key_value("k", {"k": reordered})


@pytest.mark.parametrize(
    ("priority", "data", "value"),
    [
        (None, {}, 0),
        (5, {}, 5),
        (-5, {"p": 9}, -5),
        ({"key": "p"}, {"p": 9}, 9),
        ({"key": "p"}, {"p": 9.0}, 9),
        ({"key": "a.p"}, {"a": {"p": -3}}, -3),
        ({"key": "p"}, {"p": 5000}, 1000),
        ({"key": "p"}, {"p": -5000}, -1000),
        ({"key": "p"}, {"p": "9"}, 0),
        ({"key": "p"}, {"p": True}, 0),
        ({"key": "p"}, {"p": 1.5}, 0),
        ({"key": "p"}, {}, 0),
        ({"key": "p"}, None, 0),
    ],
)
def test_priority_of(priority: Any, data: object, value: int) -> None:
    assert priority_of(priority, data) == value
