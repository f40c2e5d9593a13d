"""core.ops: the closed set of answer ops."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable.core.ops import parse_op, parse_timestamp
from durable.errors import InvalidInput

T = 1_783_242_000_000  # 2026-07-05T09:00:00.000Z


def op(body: object) -> object:
    return parse_op(json.dumps(body).encode())


def refused(raw: bytes | object) -> str:
    data = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
    with pytest.raises(InvalidInput) as caught:
        parse_op(data)
    return caught.value.message


def test_step() -> None:
    assert op({"op": "step", "id": "send", "data": {"ok": 1}}) == {
        "op": "step",
        "id": "send",
        "data": {"ok": 1},
    }


def test_step_data_may_be_null() -> None:
    assert op({"op": "step", "id": "fetch:1", "data": None}) == {
        "op": "step",
        "id": "fetch:1",
        "data": None,
    }


def test_sleep() -> None:
    assert op({"op": "sleep", "id": "cooldown", "until": "2026-07-05T09:00:00.000Z"}) == {
        "op": "sleep",
        "id": "cooldown",
        "until_ms": T,
    }


def test_wait() -> None:
    body = {
        "op": "wait",
        "id": "approve",
        "event": "approval.received",
        "match": {"orderId": "o1"},
        "until": "2026-07-05T09:00:00Z",
    }
    assert op(body) == {
        "op": "wait",
        "id": "approve",
        "event": "approval.received",
        "match": {"orderId": "o1"},
        "until_ms": T,
    }


@pytest.mark.parametrize("match", [None, "absent"])
def test_wait_without_match(match: object) -> None:
    body: dict[str, object] = {"op": "wait", "id": "w", "event": "e", "until": "2026-07-05T09:00:00Z"}
    if match != "absent":
        body["match"] = match
    result = op(body)
    assert isinstance(result, dict) and result["match"] is None


def test_done() -> None:
    assert op({"op": "done", "data": [1, 2]}) == {"op": "done", "data": [1, 2]}
    assert op({"op": "done"}) == {"op": "done", "data": None}


def test_error_defaults() -> None:
    assert op({"op": "error"}) == {"op": "error", "id": None, "message": "error", "retryable": True}


def test_error_full() -> None:
    body = {"op": "error", "id": "send", "message": "boom", "retryable": False}
    assert op(body) == {"op": "error", "id": "send", "message": "boom", "retryable": False}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "malformed JSON:"),
        ([1], "answer: must be a JSON object with an 'op' field, got an array"),
        (
            {},
            "answer has no 'op' field (expected step, sleep, wait, done, error, invoke, send, parallel or checkpoint)",
        ),
        (
            {"op": "foo"},
            "unknown op 'foo' (expected step, sleep, wait, done, error, invoke, send, parallel or checkpoint)",
        ),
        (
            {"op": 1},
            "unknown op 1 (expected step, sleep, wait, done, error, invoke, send, parallel or checkpoint)",
        ),
        (
            {"op": ["step"]},
            "unknown op an array (expected step, sleep, wait, done, error, invoke, send, parallel or checkpoint)",
        ),
        ({"op": "step", "id": "a"}, "step.data: missing (send null when the step returned nothing)"),
        ({"op": "step", "data": 1}, "step.id: must be a non-empty string, got null"),
        ({"op": "step", "id": "", "data": 1}, "step.id: must be a non-empty string, got ''"),
        ({"op": "step", "id": 3, "data": 1}, "step.id: must be a non-empty string, got 3"),
        ({"op": "step", "id": "x" * 257, "data": 1}, "step.id: must be at most 256 characters"),
        (
            {"op": "step", "id": "a", "data": 1, "extra": 1},
            "step: unknown field 'extra' (a step op has id, data)",
        ),
        ({"op": "sleep", "id": "a"}, 'sleep.until: missing (e.g. "2026-07-05T09:00:00.000Z")'),
        ({"op": "sleep", "id": "a", "until": 5}, "sleep.until: must be an ISO-8601 timestamp"),
        ({"op": "sleep", "id": "a", "until": "tomorrow"}, "sleep.until: 'tomorrow' is not an ISO-8601"),
        (
            {"op": "sleep", "id": "a", "until": "2026-07-05T09:00:00"},
            "sleep.until: '2026-07-05T09:00:00' is not",
        ),
        (
            {"op": "sleep", "id": "a", "until": "2026-02-30T09:00:00Z"},
            "sleep.until: '2026-02-30T09:00:00Z' is not a valid timestamp",
        ),
        (
            {"op": "sleep", "id": "a", "until": "2026-07-05T24:00:00Z"},
            "sleep.until: '2026-07-05T24:00:00Z' is not a valid timestamp (hour must be in 0..23)",
        ),
        (
            {"op": "sleep", "id": "a", "until": "2026-07-05T09:00:00+24:00"},
            "sleep.until: '2026-07-05T09:00:00+24:00' is not a valid timestamp (offset out of range)",
        ),
        (
            {"op": "wait", "id": "a", "until": "2026-07-05T09:00:00Z"},
            "wait.event: must be a non-empty event name, got null",
        ),
        (
            {"op": "wait", "id": "a", "event": "e", "match": [1], "until": "2026-07-05T09:00:00Z"},
            "wait.match: must be an object or null, got an array",
        ),
        ({"op": "wait", "id": "a", "event": "e"}, "wait.until: missing"),
        ({"op": "done", "data": 1, "id": "x"}, "done: unknown field 'id' (a done op has data)"),
        ({"op": "error", "message": 5}, "error.message: must be a string, got 5"),
        ({"op": "error", "retryable": "yes"}, "error.retryable: must be true or false, got 'yes'"),
        ({"op": "error", "retryable": 1}, "error.retryable: must be true or false, got 1"),
        ({"op": "error", "id": ""}, "error.id: must be a non-empty string, got ''"),
    ],
)
def test_refusals_name_the_field(body: object, message: str) -> None:
    assert refused(body).startswith(message)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-07-05T09:00:00.000Z", T),
        ("2026-07-05T09:00:00Z", T),
        ("2026-07-05t09:00:00z", T),
        ("2026-07-05T11:00:00+02:00", T),
        ("2026-07-05T04:30:00-04:30", T),
        ("2026-07-05T09:00:00.5Z", T + 500),
        ("2026-07-05T09:00:00.123456789Z", T + 123),
        ("2026-07-05T09:00:00.999+00:00", T + 999),
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59.999Z", -1),
    ],
)
def test_timestamps(text: str, ms: int) -> None:
    assert parse_timestamp(text, "f") == ms


@pytest.mark.parametrize(
    "text",
    [
        "2026-07-05",
        "2026-07-05 09:00:00Z",
        "2026-07-05T09:00Z",
        "2026-07-05T09:00:00.Z",
        "2026W01",
        "",
        "2026-07-05T09:00:00+0200",
    ],
)
def test_timestamps_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_timestamp(text, "f")


@given(st.integers(min_value=0, max_value=253_402_300_799_999))
def test_timestamp_round_trips_javascript_iso_strings(ms: int) -> None:
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"
    assert parse_timestamp(text, "f") == ms


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"op": "step", "id": "a\u0000b", "data": 1}, r"^step.id: contains a NUL character"),
        ({"op": "sleep", "id": "\u0000", "until": "2026-07-05T09:00:00Z"}, r"^sleep.id: contains a NUL"),
        (
            {"op": "wait", "id": "w", "event": "e\u0000", "match": None, "until": "2026-07-05T09:00:00Z"},
            r"^wait.event: contains a NUL",
        ),
        (
            {
                "op": "wait",
                "id": "w",
                "event": "e",
                "match": {"k": "v\u0000"},
                "until": "2026-07-05T09:00:00Z",
            },
            r"^wait.match.k: contains a NUL",
        ),
    ],
)
def test_nul_characters_in_ids_and_names_are_refused(answer: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_op(orjson.dumps(answer))


def test_an_error_message_with_a_nul_is_kept_with_the_nul_escaped() -> None:
    op = parse_op(orjson.dumps({"op": "error", "id": None, "message": "bad\u0000byte"}))
    assert op["message"] == "bad\\u0000byte"  # type: ignore[typeddict-item]


def test_a_huge_integer_in_an_answer_is_refused_not_rounded() -> None:
    with pytest.raises(InvalidInput, match="outside the range Durable stores exactly"):
        parse_op(b'{"op": "step", "id": "a", "data": [1180591620717411303424]}')


def test_checkpoint() -> None:
    body = {
        "op": "checkpoint",
        "steps": [{"id": "a", "data": [1, 2, 3]}, {"id": "b", "data": None}],
        "then": {"op": "sleep", "id": "nap", "until": "2026-07-05T09:00:00.000Z"},
    }
    assert op(body) == {
        "op": "checkpoint",
        "steps": [{"id": "a", "data": [1, 2, 3]}, {"id": "b", "data": None}],
        "then": {"op": "sleep", "id": "nap", "until_ms": T},
    }
    assert op({**body, "then": None})["then"] is None  # type: ignore[index]
    parallel = {
        "op": "parallel",
        "ops": [{"op": "step", "id": "c", "data": 1}, {"op": "step", "id": "d", "data": 2}],
    }
    assert op({**body, "then": parallel})["then"]["op"] == "parallel"  # type: ignore[index]


_CP = {"op": "checkpoint", "steps": [{"id": "a", "data": 1}]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"op": "checkpoint", "then": None},
            "checkpoint.steps: must be a list of 1 to 1000 {id, data} objects",
        ),
        ({"op": "checkpoint", "steps": [], "then": None}, "checkpoint.steps: must be a list of 1 to 1000"),
        (
            {"op": "checkpoint", "steps": [{"id": "a", "data": i} for i in range(1001)], "then": None},
            "checkpoint.steps: must be a list of 1 to 1000",
        ),
        (
            {"op": "checkpoint", "steps": [1], "then": None},
            "checkpoint.steps[0]: must be an object {id, data}, got 1",
        ),
        ({"op": "checkpoint", "steps": [{"id": "a"}], "then": None}, "checkpoint.steps[0].data: missing"),
        (
            {"op": "checkpoint", "steps": [{"data": 1}], "then": None},
            "checkpoint.steps[0].id: must be a non-empty string",
        ),
        (
            {"op": "checkpoint", "steps": [{"id": "a", "data": 1, "op": "step"}], "then": None},
            "checkpoint.steps[0]: unknown field 'op' (a checkpointed step has id, data)",
        ),
        (
            {"op": "checkpoint", "steps": [{"id": "a", "data": 1}, {"id": "a", "data": 2}], "then": None},
            "checkpoint.steps[1]: step id 'a' appears twice",
        ),
        (_CP, "checkpoint.then: missing (the op that stopped the checkpoint, or null for a bound)"),
        ({**_CP, "then": None, "x": 1}, "checkpoint: unknown field 'x' (a checkpoint op has steps, then)"),
        (
            {**_CP, "then": {"op": "step", "id": "b", "data": 1}},
            "checkpoint.then: a step op cannot end a checkpoint",
        ),
        ({**_CP, "then": {**_CP, "then": None}}, "checkpoint.then: a checkpoint op cannot end a checkpoint"),
        ({**_CP, "then": {"op": "nope"}}, "checkpoint.then: unknown op 'nope'"),
        ({**_CP, "then": [1]}, "checkpoint.then: must be a JSON object with an 'op' field, got an array"),
        ({**_CP, "then": {}}, "checkpoint.then: has no 'op' field"),
        ({**_CP, "then": {"op": "done", "data": 1, "id": "x"}}, "checkpoint.then: done: unknown field 'id'"),
        (
            {**_CP, "then": {"op": "error", "id": "a", "message": "m"}},
            "checkpoint.then: step id 'a' is also in checkpoint.steps",
        ),
        (
            {
                **_CP,
                "then": {
                    "op": "parallel",
                    "ops": [{"op": "step", "id": "b", "data": 1}, {"op": "step", "id": "a", "data": 1}],
                },
            },
            "checkpoint.then: step id 'a' is also in checkpoint.steps",
        ),
        (
            {**_CP, "then": {"op": "parallel", "ops": [{"op": "step", "id": "b", "data": 1}]}},
            "checkpoint.then: parallel.ops: must be a list of 2 to 1000 ops",
        ),
    ],
)
def test_checkpoint_refusals_name_the_field(body: object, message: str) -> None:
    assert refused(body).startswith(message)
