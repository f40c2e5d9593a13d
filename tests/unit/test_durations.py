"""core.durations: the duration strings of function options."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable.core.durations import MAX_DURATION_MS, format_duration, parse_duration
from durable.errors import InvalidInput


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
        ("1w2d", 777_600_000),
        ("2m500ms", 120_500),
        ("1d2h3m4s5ms", 93_784_005),
        ("0s", 0),
        (0, 0),
        (1500, 1500),
    ],
)
def test_parses(value: object, ms: int) -> None:
    assert parse_duration(value, "f") == ms


@pytest.mark.parametrize(
    "value",
    [
        "",
        "abc",
        "5",
        "-5s",
        "1.5h",
        "1h 30m",
        " 1h",
        "30m1h",  # ascending
        "1h1h",  # repeated
        "5ms5m",  # ms before m
        "1H",
        "1sec",
        "٥s",  # a non-ASCII digit
        "1" * 16 + "ms",
        -1,
        True,
        False,
        1.5,
        1000.0,
        None,
        [],
        {},
    ],
)
def test_refuses(value: object) -> None:
    with pytest.raises(InvalidInput):
        parse_duration(value, "f")


def test_message_names_the_field_and_shows_the_syntax() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_duration("abc", "function 'onboarding': throttle.period")
    assert caught.value.message == (
        "function 'onboarding': throttle.period: invalid duration 'abc' "
        '(use e.g. "500ms", "90s", "5m", "1h30m" or integer milliseconds)'
    )


def test_message_for_wrong_order_says_so() -> None:
    with pytest.raises(InvalidInput, match="largest to smallest"):
        parse_duration("30m1h", "f")


def test_message_for_a_wrong_type_names_the_type() -> None:
    with pytest.raises(InvalidInput, match="^debounce.period: must be a duration, got an object"):
        parse_duration({}, "debounce.period")


def test_upper_bound() -> None:
    assert parse_duration("52w1d", "f") == MAX_DURATION_MS
    assert parse_duration(MAX_DURATION_MS, "f") == MAX_DURATION_MS
    with pytest.raises(InvalidInput, match="at most 365d"):
        parse_duration("366d", "f")
    with pytest.raises(InvalidInput, match="at most 365d"):
        parse_duration(MAX_DURATION_MS + 1, "f")


def test_long_values_are_cut_short_in_messages() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_duration("x" * 10_000, "f")
    assert len(caught.value.message) < 200


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0ms"), (500, "500ms"), (90_000, "1m30s"), (5_400_000, "1h30m"), (777_600_000, "1w2d")],
)
def test_format(ms: int, text: str) -> None:
    assert format_duration(ms) == text


def test_format_refuses_negative() -> None:
    with pytest.raises(ValueError):
        format_duration(-1)


@given(st.integers(min_value=0, max_value=MAX_DURATION_MS))
def test_format_then_parse_round_trips(ms: int) -> None:
    assert parse_duration(format_duration(ms), "f") == ms


@given(st.integers(min_value=0, max_value=MAX_DURATION_MS))
def test_integer_milliseconds_pass_through(ms: int) -> None:
    assert parse_duration(ms, "f") == ms
