"""core.cron: parsing, next occurrence, 6-field seconds and DST in Europe/Amsterdam."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durable.core.cron import Cron, next_after, parse_cron
from durable.errors import InvalidInput

AMS = ZoneInfo("Europe/Amsterdam")


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def utc(text: str) -> int:
    return ms(datetime.fromisoformat(text))


def local(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=AMS).isoformat()


def series(expr: str, start: datetime, count: int) -> list[str]:
    cron = parse_cron(expr, "trigger.cron")
    at = ms(start)
    out = []
    for _ in range(count):
        at = next_after(cron, at)
        out.append(local(at))
    return out


def test_parse_five_fields() -> None:
    assert parse_cron("0 3 * * *", "f") == Cron(
        expr="0 3 * * *", tz="UTC", fields=("0", "3", "*", "*", "*"), has_seconds=False
    )


def test_parse_six_fields_seconds_first() -> None:
    cron = parse_cron("*/20 * * * * *", "f")
    assert cron.has_seconds and cron.fields[0] == "*/20"


def test_parse_zone_prefix() -> None:
    cron = parse_cron("TZ=Europe/Amsterdam 0 9 * * mon-fri", "f")
    assert cron.tz == "Europe/Amsterdam" and cron.fields == ("0", "9", "*", "*", "mon-fri")
    assert parse_cron("CRON_TZ=America/New_York 0 9 * * *", "f").tz == "America/New_York"


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "trigger.cron: must be a cron expression string, got ''"),
        (5, "trigger.cron: must be a cron expression string, got 5"),
        ("0 3 * *", "trigger.cron: '0 3 * *' has 4 fields"),
        ("0 0 3 * * * 2026", "trigger.cron: '0 0 3 * * * 2026' has 7 fields"),
        ("@daily", "trigger.cron: aliases like '@daily' are not supported"),
        ("TZ=Mars/Olympus 0 3 * * *", "trigger.cron: unknown time zone 'Mars/Olympus'"),
        ("TZ=../etc/passwd 0 3 * * *", "trigger.cron: unknown time zone '../etc/passwd'"),
        ("TZ=Europe/Amsterdam", "trigger.cron: 'TZ=Europe/Amsterdam' has a time zone but no schedule"),
        ("60 * * * *", "trigger.cron: invalid cron expression '60 * * * *'"),
        ("0 24 * * *", "trigger.cron: invalid cron expression '0 24 * * *'"),
        ("61 * * * * *", "trigger.cron: invalid cron expression '61 * * * * *'"),
        ("a b c d e", "trigger.cron: invalid cron expression 'a b c d e'"),
        ("*/0 * * * *", "trigger.cron: invalid cron expression '*/0 * * * *'"),
        ("0 0 30 2 *", "trigger.cron: cron expression '0 0 30 2 *' never occurs"),
        ("H * * * *", "trigger.cron: 'H * * * *': hashed or random values like 'H' are not supported"),
        ("R 3 * * *", "trigger.cron: 'R 3 * * *': hashed or random values"),
        ("0 3 * * * ;rm", "trigger.cron: '0 3 * * * ;rm': invalid field ';rm'"),
    ],
)
def test_refusals_name_the_field(expr: object, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_cron(expr, "trigger.cron")
    assert caught.value.message.startswith(message)


def test_next_is_strictly_after() -> None:
    cron = parse_cron("0 3 * * *", "f")
    assert next_after(cron, utc("2026-01-01T02:59:59.999+00:00")) == utc("2026-01-01T03:00:00+00:00")
    assert next_after(cron, utc("2026-01-01T03:00:00+00:00")) == utc("2026-01-02T03:00:00+00:00")
    assert next_after(cron, utc("2026-01-01T03:00:00.001+00:00")) == utc("2026-01-02T03:00:00+00:00")


def test_six_field_seconds() -> None:
    cron = parse_cron("*/20 * * * * *", "f")
    t0 = utc("2026-01-01T00:00:00+00:00")
    assert next_after(cron, t0) == t0 + 20_000
    assert next_after(cron, t0 + 20_000) == t0 + 40_000
    assert next_after(cron, t0 + 20_500) == t0 + 40_000
    assert next_after(cron, t0 + 40_000) == t0 + 60_000


def test_six_field_with_fixed_second() -> None:
    cron = parse_cron("30 0 12 * * *", "f")
    assert next_after(cron, utc("2026-01-01T00:00:00+00:00")) == utc("2026-01-01T12:00:30+00:00")


def test_zone_shifts_the_schedule() -> None:
    cron = parse_cron("TZ=Europe/Amsterdam 0 9 * * *", "f")
    # 09:00 CET is 08:00 UTC in winter, 07:00 UTC in summer.
    assert next_after(cron, utc("2026-01-10T00:00:00+00:00")) == utc("2026-01-10T08:00:00+00:00")
    assert next_after(cron, utc("2026-07-10T00:00:00+00:00")) == utc("2026-07-10T07:00:00+00:00")


def test_spring_forward_missing_time_fires_once_at_the_jump() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    assert series("TZ=Europe/Amsterdam 30 2 * * *", datetime(2026, 3, 27, 12, tzinfo=AMS), 4) == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_spring_forward_hourly_skips_no_real_hour() -> None:
    assert series("TZ=Europe/Amsterdam 0 * * * *", datetime(2026, 3, 29, 0, 30, tzinfo=AMS), 3) == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T04:00:00+02:00",
    ]


def test_fall_back_repeated_time_fires_once() -> None:
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    assert series("TZ=Europe/Amsterdam 30 2 * * *", datetime(2026, 10, 23, 12, tzinfo=AMS), 3) == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]


def test_fall_back_starting_inside_the_repeated_hour() -> None:
    start = datetime(2026, 10, 25, 2, 15, fold=1, tzinfo=AMS)  # 02:15 CET, the second pass
    assert series("TZ=Europe/Amsterdam 30 2 * * *", start, 1) == ["2026-10-26T02:30:00+01:00"]


def test_fall_back_hourly_fires_in_both_passes() -> None:
    assert series("TZ=Europe/Amsterdam 0 * * * *", datetime(2026, 10, 25, 0, 30, tzinfo=AMS), 4) == [
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]


def test_seconds_across_spring_forward() -> None:
    start = datetime(2026, 3, 29, 1, 59, 30, tzinfo=AMS)
    assert series("TZ=Europe/Amsterdam */20 * * * * *", start, 3) == [
        "2026-03-29T01:59:40+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:00:20+02:00",
    ]


def test_after_downtime_next_is_in_the_future_not_a_catch_up() -> None:
    cron = parse_cron("*/5 * * * *", "f")
    now = utc("2026-05-01T12:03:10+00:00")
    assert next_after(cron, now) == utc("2026-05-01T12:05:00+00:00")


@settings(max_examples=200)
@given(
    st.integers(min_value=utc("2020-01-01T00:00:00+00:00"), max_value=utc("2035-01-01T00:00:00+00:00")),
    st.sampled_from(
        [
            "*/20 * * * * *",
            "0 3 * * *",
            "TZ=Europe/Amsterdam 30 2 * * *",
            "TZ=Europe/Amsterdam 0 * * * *",
            "TZ=America/New_York 15 1,2 * * *",
            "0 0 29 2 *",
        ]
    ),
)
def test_next_is_strictly_increasing(after: int, expr: str) -> None:
    cron = parse_cron(expr, "f")
    first = next_after(cron, after)
    assert first > after
    assert first % 1000 == 0
    assert next_after(cron, first) > first
    assert next_after(cron, first - 1) == first


def test_occurrence_is_utc_epoch_ms() -> None:
    cron = parse_cron("0 0 1 1 *", "f")
    assert next_after(cron, 0) == ms(datetime(1971, 1, 1, tzinfo=UTC))
