"""clock.py's bounds: every instant atlas takes in lies in [1970, 2100), every duration in [0, 3650d], and a range of
window ends longer than MAX_WINDOWS is refused before any is built."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from atlas.clock import (
    EARLIEST,
    LATEST,
    LONGEST,
    MAX_WINDOWS,
    OutOfRange,
    aligned_instants,
    check_instant,
    format_instant,
    instant_from_epoch,
    parse_duration,
    parse_instant,
)


@dataclass(frozen=True)
class InstantCase:
    id: str
    text: str
    expected: datetime | None  # None: refused
    out_of_range: bool = False


INSTANTS = [
    InstantCase("epoch", "1970-01-01T00:00:00Z", EARLIEST),
    InstantCase("naive-is-utc", "2024-05-01T10:00:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
    InstantCase("offset", "2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
    InstantCase("last-second", "2099-12-31T23:59:59Z", LATEST - timedelta(seconds=1)),
    InstantCase("first-year", "0001-01-01T00:00:00Z", None, out_of_range=True),
    InstantCase("first-year-offset", "0001-01-01T00:00:00+01:00", None, out_of_range=True),
    InstantCase("last-year", "9999-12-31T23:59:59Z", None, out_of_range=True),
    InstantCase("last-year-negative-offset", "9999-12-31T23:00:00-05:00", None, out_of_range=True),
    InstantCase("before-epoch", "1969-12-31T23:59:59Z", None, out_of_range=True),
    InstantCase("latest-itself", "2100-01-01T00:00:00Z", None, out_of_range=True),
    InstantCase("offset-into-range", "1969-12-31T23:00:00-01:00", EARLIEST),
    InstantCase("words", "yesterday", None),
    InstantCase("empty", "", None),
    InstantCase("bad-offset", "2024-01-01T00:00:00+25:00", None),
]


@pytest.mark.parametrize("case", INSTANTS, ids=[c.id for c in INSTANTS])
def test_instants_are_parsed_within_the_bounds(case: InstantCase) -> None:
    if case.expected is not None:
        assert parse_instant(case.text) == case.expected
        return
    with pytest.raises(ValueError) as info:
        parse_instant(case.text)
    assert isinstance(info.value, OutOfRange) == case.out_of_range
    if case.out_of_range:
        assert "1970-01-01 (inclusive) to 2100-01-01 (exclusive)" in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, EARLIEST), (1714557600.5, datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=UTC)), (-1, None), (1e300, None),
     (float("nan"), None), (float("inf"), None), (LATEST.timestamp(), None)],
    ids=["epoch", "fraction", "negative", "huge", "nan", "inf", "latest"],
)  # fmt: skip
def test_epoch_seconds_are_bounded(seconds: float, expected: datetime | None) -> None:
    if expected is not None:
        assert instant_from_epoch(seconds) == expected
    else:
        with pytest.raises(OutOfRange):
            instant_from_epoch(seconds)


def test_check_instant_names_the_value_and_the_range() -> None:
    with pytest.raises(OutOfRange, match=r"^2100-01-01T00:00:00Z is outside .* 1970-01-01 .* 2100-01-01"):
        check_instant(LATEST)
    assert check_instant(EARLIEST) == EARLIEST


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3650d", LONGEST), ("521w", timedelta(weeks=521)), ("87600h", LONGEST), ("0s", timedelta(0)),
     ("3651d", None), ("522w", None), ("87601h", None), ("999999999999ms", None), ("9999999999999h", None)],
    ids=["longest-days", "weeks", "longest-hours", "zero", "day-over", "week-over", "hour-over", "ms-over",
         "13-digits"],
)  # fmt: skip
def test_durations_are_bounded(text: str, expected: timedelta | None) -> None:
    if expected is not None:
        assert parse_duration(text) == expected
        return
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert "longer than 3650d" in str(info.value) or "is not a duration" in str(info.value)


def test_a_range_of_window_ends_is_refused_above_the_limit_before_it_is_built() -> None:
    step = timedelta(hours=1)
    first = datetime(2024, 1, 1, tzinfo=UTC)
    ends = aligned_instants(first, first + (MAX_WINDOWS - 1) * step, step, "window ends")
    assert len(ends) == MAX_WINDOWS and ends[-1] - ends[0] == (MAX_WINDOWS - 1) * step
    assert aligned_instants(first, first - step, step, "window ends") == []
    with pytest.raises(OutOfRange, match=f"^{MAX_WINDOWS + 1:,} window ends from 2024-01-01T00:00:00Z .* 1h; at most"):
        aligned_instants(first, first + MAX_WINDOWS * step, step, "window ends")
    # The whole allowed calendar at the smallest step: refused at once, nothing allocated.
    with pytest.raises(OutOfRange, match="4,102,444,801 window ends"):
        aligned_instants(EARLIEST, LATEST, timedelta(seconds=1), "window ends")


def test_instants_are_formatted_with_four_digit_years() -> None:
    assert format_instant(EARLIEST) == "1970-01-01T00:00:00Z"
    assert format_instant(datetime(999, 1, 1, tzinfo=UTC)) == "0999-01-01T00:00:00Z"
    assert format_instant(EARLIEST, milliseconds=True) == "1970-01-01T00:00:00.000Z"
