"""core.events: POST /e bodies and JSON decoding."""

from __future__ import annotations

import pytest

from durable.core.events import MAX_EVENTS_PER_REQUEST, parse_event, parse_events
from durable.core.jsonvalue import parse_json
from durable.errors import InvalidInput


def refused(body: object) -> str:
    with pytest.raises(InvalidInput) as caught:
        parse_events(body)
    return caught.value.message


def test_one_event_with_defaults() -> None:
    events, was_list = parse_events({"name": "user.created"})
    assert was_list is False
    assert events == [{"id": None, "name": "user.created", "data": {}, "ts": None}]


def test_one_full_event() -> None:
    body = {"name": "a", "data": {"x": [1]}, "id": "e1", "ts": 1_767_225_600_000}
    events, _ = parse_events(body)
    assert events == [{"id": "e1", "name": "a", "data": {"x": [1]}, "ts": 1_767_225_600_000}]


def test_null_data_means_empty() -> None:
    assert parse_events({"name": "a", "data": None})[0][0]["data"] == {}


def test_list_of_events() -> None:
    events, was_list = parse_events([{"name": "a"}, {"name": "b", "data": {"k": 1}}])
    assert was_list is True
    assert [e["name"] for e in events] == ["a", "b"]
    assert events[1]["data"] == {"k": 1}


def test_list_messages_name_the_index() -> None:
    assert refused([{"name": "a"}, {"name": "b"}, {"name": ""}]) == (
        "events[2].name: must be a non-empty string, got ''"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "name: must be a non-empty string, got null"),
        ({"name": 5}, "name: must be a non-empty string, got 5"),
        ({"name": "a" * 257}, "name: must be at most 256 characters"),
        ({"name": "a", "data": [1]}, "data: must be a JSON object, got an array"),
        ({"name": "a", "data": "x"}, "data: must be a JSON object, got 'x'"),
        ({"name": "a", "id": ""}, "id: must be a non-empty string, got ''"),
        ({"name": "a", "id": 7}, "id: must be a non-empty string, got 7"),
        ({"name": "a", "id": "x" * 257}, "id: must be at most 256 characters"),
        ({"name": "a", "ts": "2026"}, "ts: must be integer epoch milliseconds, got '2026'"),
        ({"name": "a", "ts": True}, "ts: must be integer epoch milliseconds, got true"),
        ({"name": "a", "ts": -1}, "ts: must be integer epoch milliseconds, got -1"),
        ({"name": "a", "ts": 1.5}, "ts: must be integer epoch milliseconds, got 1.5"),
        ({"name": "a", "ts": 10**20}, "ts: must be integer epoch milliseconds, got 100000000000000000000"),
        (
            {"name": "a", "nmae": 1},
            "event: unknown field 'nmae' (an event has name, data, id, ts and idempotencyKey)",
        ),
        ([], "events: the list must not be empty"),
        ([{"name": "a"}, 3], "events[1]: must be an object {name, data, id?, ts?}, got 3"),
        (
            [{"name": "a", "x": 1}],
            "events[0]: unknown field 'x' (an event has name, data, id, ts and idempotencyKey)",
        ),
        ("hello", "body must be an event object or a non-empty list of events, got 'hello'"),
        (None, "body must be an event object or a non-empty list of events, got null"),
    ],
)
def test_refusals_name_the_field(body: object, message: str) -> None:
    assert refused(body) == message


def test_ts_bounds() -> None:
    assert parse_event({"name": "a", "ts": 0})["ts"] == 0
    assert parse_event({"name": "a", "ts": 253_402_300_799_999})["ts"] == 253_402_300_799_999
    with pytest.raises(InvalidInput):
        parse_event({"name": "a", "ts": 253_402_300_800_000})


def test_list_size_limit() -> None:
    events, _ = parse_events([{"name": "a"}] * MAX_EVENTS_PER_REQUEST)
    assert len(events) == MAX_EVENTS_PER_REQUEST
    assert refused([{"name": "a"}] * (MAX_EVENTS_PER_REQUEST + 1)) == (
        "events: at most 1000 events per request (got 1001)"
    )


def test_a_bad_event_anywhere_refuses_the_whole_list() -> None:
    body = [{"name": "a"}] * 10 + [{"name": None}]
    assert refused(body).startswith("events[10].name:")


def test_parse_json() -> None:
    assert parse_json(b'{"a": [1, 2.5, null, true]}') == {"a": [1, 2.5, None, True]}
    assert parse_json('{"é": "😀"}'.encode()) == {"é": "😀"}


@pytest.mark.parametrize("raw", [b"", b"{", b"{'a': 1}", b"[1,]", b"NaN", b"\xff\xfe", b'{"a":1} x'])
def test_parse_json_refuses_malformed(raw: bytes) -> None:
    with pytest.raises(InvalidInput, match=r"^malformed JSON: \S"):
        parse_json(raw)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"name": "a\u0000"}, r"^event.name: contains a NUL character"),
        ({"name": "a", "id": "\u0000"}, r"^event.id: contains a NUL character"),
        ({"name": "a", "data": {"x": ["ok", "\u0000"]}}, r"^event.data.x\[1\]: contains a NUL character"),
        ({"name": "a", "data": {"\u0000": 1}}, r"^event.data: a key contains a NUL character"),
    ],
)
def test_nul_characters_are_refused_by_field(event: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_event(event)
