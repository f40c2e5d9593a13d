"""Definition-time validation of every option; errors name the function and the field."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import durable_sdk
from durable_sdk._options import iso_ms, parse_duration


def handler(event: Any, step: Any) -> None:
    return None


def define(**options: Any) -> durable_sdk.Function:
    options.setdefault("trigger", {"event": "demo.hello"})
    return durable_sdk.function(id="hello", **options)(handler)


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("500ms", 500),
        ("90s", 90_000),
        ("5m", 300_000),
        ("12h", 43_200_000),
        ("30d", 2_592_000_000),
        ("1w", 604_800_000),
        ("1h30m", 5_400_000),
        ("1m30s250ms", 90_250),
        (0, 0),
        (1500, 1500),
        (dt.timedelta(minutes=2, milliseconds=3), 120_003),
    ],
)
def test_durations(value: Any, ms: int) -> None:
    assert parse_duration(value) == ms


@pytest.mark.parametrize(
    "value", ["abc", "", "5", "m5", "1.5h", "5 m", "-1s", "1y", -1, 1.5, True, None, dt.timedelta(seconds=-1)]
)
def test_invalid_durations(value: Any) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(value)


def test_iso_ms() -> None:
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_ms(1783242000007) == "2026-07-05T09:00:00.007Z"


def test_wire_form_keeps_values_as_written_with_camel_case_keys() -> None:
    fn = define(
        name="Hello",
        retries=0,
        concurrency={"limit": 2, "key": "tenantId"},
        priority={"key": "user.rank"},
        throttle={"limit": 1, "period": 90_000},
        rate_limit={"limit": 5, "period": "1h30m", "key": "user.id"},
        debounce={"period": "5s", "timeout": dt.timedelta(minutes=1)},
        batch={"maxSize": 3, "timeout": "2s"},
    )
    assert fn.id == "hello" and fn.handler is handler
    assert fn.wire == {
        "id": "hello",
        "name": "Hello",
        "trigger": {"event": "demo.hello"},
        "retries": 0,
        "concurrency": {"limit": 2, "key": "tenantId"},
        "priority": {"key": "user.rank"},
        "throttle": {"limit": 1, "period": 90_000},
        "rateLimit": {"limit": 5, "period": "1h30m", "key": "user.id"},
        "debounce": {"period": "5s", "timeout": 60_000},
        "batch": {"maxSize": 3, "timeout": "2s"},
    }
    assert define(trigger={"cron": "0 3 * * *"}, priority=-5).wire == {
        "id": "hello",
        "trigger": {"cron": "0 3 * * *"},
        "priority": -5,
    }


def test_composition_options_use_the_wire_names() -> None:
    fn = define(
        trigger=None,
        cancel_on=[
            {"event": "order.cancelled", "match": "orderId", "timeout": "7d"},
            {"event": "user.deleted", "timeout": dt.timedelta(hours=1)},
            {"event": "shop.closed"},
        ],
        idempotency="order.id",
        singleton={"key": "userId", "mode": "skip"},
        on_failure=handler,
    )
    assert fn.wire == {
        "id": "hello",
        "trigger": None,
        "cancelOn": [
            {"event": "order.cancelled", "match": "orderId", "timeout": "7d"},
            {"event": "user.deleted", "timeout": 3_600_000},
            {"event": "shop.closed"},
        ],
        "idempotency": "order.id",
        "singleton": {"key": "userId", "mode": "skip"},
        "onFailure": "hello:failure",
    }
    assert define(singleton={"mode": "cancel"}).wire["singleton"] == {"mode": "cancel"}
    assert define().failure is None and "onFailure" not in define().wire


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"trigger": {"event": ""}}, "trigger.event: must be a non-empty string"),
        ({"cancel_on": {"event": "x"}}, "cancel_on: must be a non-empty list"),
        ({"cancel_on": []}, "cancel_on: must be a non-empty list"),
        ({"cancel_on": [{"event": "x"}] * 11}, "cancel_on: at most 10 entries (got 11)"),
        ({"cancel_on": ["x"]}, "cancel_on[0]: must be a dict"),
        ({"cancel_on": [{"match": "orderId"}]}, "cancel_on[0].event: must be a non-empty string"),
        ({"cancel_on": [{"event": "x", "match": "a..b"}]}, "cancel_on[0].match: must be a dotted path"),
        ({"cancel_on": [{"event": "x", "timeout": "soon"}]}, "cancel_on[0].timeout: invalid duration 'soon'"),
        ({"cancel_on": [{"event": "x", "timeout": 0}]}, "cancel_on[0].timeout: must be a positive duration"),
        ({"cancel_on": [{"event": "x", "key": "a"}]}, "cancel_on[0].key: unknown option"),
        ({"idempotency": ""}, "idempotency: must be a dotted path"),
        ({"idempotency": 5}, "idempotency: must be a dotted path"),
        ({"singleton": "skip"}, "singleton: must be a dict"),
        ({"singleton": {"key": "userId"}}, 'singleton.mode: must be "skip" or "cancel", got None'),
        ({"singleton": {"mode": "queue"}}, 'singleton.mode: must be "skip" or "cancel"'),
        ({"singleton": {"mode": "skip", "key": " "}}, "singleton.key: must be a dotted path"),
        ({"singleton": {"mode": "skip", "limit": 1}}, "singleton.limit: unknown option"),
        ({"on_failure": "notify"}, "on_failure: must be a handler (event, step)"),
        ({"trigger": {"cron": 5}}, "trigger.cron: must be a non-empty string"),
        ({"trigger": {"event": "a", "cron": "* * * * *"}}, "trigger: must be"),
        ({"trigger": {"topic": "a"}}, "trigger: must be"),
        ({"trigger": "demo.hello"}, "trigger: must be"),
        ({"name": ""}, "name: must be a non-empty string"),
        ({"retries": -1}, "retries: must be an integer >= 0"),
        ({"retries": True}, "retries: must be an integer >= 0"),
        ({"concurrency": 2}, "concurrency: must be a dict"),
        ({"concurrency": {}}, "concurrency.limit: is required"),
        ({"concurrency": {"limit": 0}}, "concurrency.limit: must be an integer >= 1"),
        ({"concurrency": {"limit": 1, "key": "a..b"}}, "concurrency.key: must be a dotted path"),
        ({"concurrency": {"limit": 1, "scope": "fn"}}, "concurrency.scope: unknown option"),
        ({"priority": 1.5}, "priority: must be an integer"),
        ({"priority": {"key": ""}}, "priority.key: must be a dotted path"),
        ({"throttle": {"limit": 1, "period": "abc"}}, "throttle.period: invalid duration 'abc'"),
        ({"throttle": {"limit": 1}}, "throttle.period: is required"),
        ({"throttle": {"limit": 1, "period": "0s"}}, "throttle.period: must be a positive duration"),
        ({"rate_limit": {"limit": "5", "period": "1m"}}, "rate_limit.limit: must be an integer >= 1"),
        ({"rate_limit": {"limit": 5, "period": -1}}, "rate_limit.period: invalid duration -1"),
        ({"debounce": {"period": "5s", "timeout": "soon"}}, "debounce.timeout: invalid duration 'soon'"),
        ({"debounce": {"timeout": "5s"}}, "debounce.period: is required"),
        ({"batch": {"max_size": 0, "timeout": "1s"}}, "batch.max_size: must be an integer >= 1"),
        ({"batch": {"max_size": 2}}, "batch.timeout: is required"),
        ({"batch": {"max_size": 2, "maxSize": 2, "timeout": "1s"}}, "batch.maxSize: unknown option"),
    ],
)
def test_errors_name_function_and_field(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        define(**options)
    assert str(caught.value).startswith(f"function 'hello': {message}")


def test_on_failure_takes_a_handler_and_needs_room_for_the_failure_id() -> None:
    with pytest.raises(
        ValueError, match=r"on_failure: must be a handler \(event, step\), not the function 'hello'"
    ):
        define(on_failure=define())
    long_id = "f" * 121
    with pytest.raises(ValueError) as caught:
        durable_sdk.function(id=long_id, trigger=None, on_failure=handler)
    assert str(caught.value) == (
        f"function {long_id!r}: on_failure: the function id must be at most 120 characters, "
        "so that '<id>:failure' is a valid function id (it has 121)"
    )
    assert durable_sdk.function(id="f" * 120, trigger=None, on_failure=handler)(handler).failure is not None
    assert durable_sdk.function(id=long_id, trigger=None)(handler).wire == {"id": long_id, "trigger": None}


def test_function_id_and_handler_are_checked() -> None:
    with pytest.raises(ValueError, match="function id must be a non-empty string"):
        durable_sdk.function(id="", trigger={"event": "a"})
    with pytest.raises(ValueError, match="function 'hello': the handler must be callable"):
        durable_sdk.function(id="hello", trigger={"event": "a"})("not callable")  # type: ignore[arg-type]
