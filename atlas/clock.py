"""UTC instants and durations: parsing, formatting, alignment, the bounds every one of them keeps; the only reader of
the wall clock."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from atlas.errors import ConfigError

# Every instant atlas takes in (an option, a setting, a truth file, a simulated hour) lies in [EARLIEST, LATEST): Unix
# time from its epoch to well past any data of today. Every duration lies in [0, LONGEST], and settings.py keeps what
# one computation reaches back (a window's warm-up, the threshold's history) within LONGEST too, so no arithmetic on
# an instant leaves 1900-2200: far inside datetime's years 1-9999 and always a 4-digit ISO-8601 year.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
LONGEST = timedelta(days=3650)
# Window ends one run or backfill may enumerate (11.4 years of hourly windows): the list of them, and the work, is
# refused above it before anything is allocated; a longer history is backfilled in parts.
MAX_WINDOWS = 100_000


class OutOfRange(ValueError):
    """A well-formed instant or duration outside the bounds above; its message says the allowed range."""


_DURATION = re.compile(r"^([0-9]{1,12})(ms|s|m|h|d|w)$")  # ASCII digits; 12 of them: far beyond LONGEST, no overflow
_UNITS: dict[str, timedelta] = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
}


def now_utc() -> datetime:
    """The current instant, timezone-aware UTC."""
    return datetime.now(UTC)


def parse_duration(text: str) -> timedelta:
    """Parse `30s`, `5m`, `1h`, `7d`, `2w` or `500ms` (at most LONGEST) into a timedelta; ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration (use e.g. 30s, 5m, 1h, 7d)")
    count, unit = int(match.group(1)), _UNITS[match.group(2)]
    if count > LONGEST // unit:
        raise OutOfRange(f"{text!r} is longer than {LONGEST.days}d, the longest duration atlas takes")
    return count * unit


def format_duration(value: timedelta) -> str:
    """The shortest exact `<n><unit>` spelling of a duration, in the units `parse_duration` reads."""
    for unit in ("h", "m", "s", "ms"):  # hours read better than days for windows: 24h, 168h
        size = _UNITS[unit]
        if value % size == timedelta(0):
            return f"{value // size}{unit}"
    raise ValueError(f"{value} is not a whole number of milliseconds")


def parse_instant(text: str) -> datetime:
    """Parse an ISO-8601 instant (naive means UTC) in [EARLIEST, LATEST) into a timezone-aware UTC datetime;
    ValueError otherwise (saying the allowed range when it is outside)."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 instant") from None
    try:
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00:00+01:00 leaves datetime's range when turned to UTC
        raise OutOfRange(f"{text!r} is {_RANGE}") from exc
    return check_instant(value, repr(text))


def instant_from_epoch(seconds: float) -> datetime:
    """The UTC instant `seconds` after the Unix epoch, in [EARLIEST, LATEST); ValueError otherwise."""
    if not EARLIEST.timestamp() <= seconds < LATEST.timestamp():  # also refuses NaN
        raise OutOfRange(f"{seconds!r} seconds since the epoch is {_RANGE}")
    return EARLIEST + timedelta(seconds=seconds)


def check_instant(value: datetime, shown: str | None = None) -> datetime:
    """`value` (timezone-aware) when it lies in [EARLIEST, LATEST); else ValueError naming the allowed range."""
    if not EARLIEST <= value < LATEST:
        raise OutOfRange(f"{shown or format_instant(value)} is {_RANGE}")
    return value


_RANGE = f"outside the instants atlas computes with, {EARLIEST:%Y-%m-%d} (inclusive) to {LATEST:%Y-%m-%d} (exclusive)"


def format_instant(value: datetime, *, milliseconds: bool = False) -> str:
    """ISO-8601 UTC with a `Z`, to the second (milliseconds when present, or always with `milliseconds`)."""
    value = value.astimezone(UTC)
    stamp = f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    if value.microsecond or milliseconds:
        return f"{stamp}.{value.microsecond // 1000:03d}Z"
    return stamp + "Z"


def floor_instant(value: datetime, step: timedelta) -> datetime:
    """The latest multiple of `step` since the Unix epoch (UTC) that is not after `value`."""
    return EARLIEST + ((value - EARLIEST) // step) * step


def aligned_instants(first: datetime, last: datetime, step: timedelta, what: str) -> list[datetime]:
    """`first`, `first + step`, ... up to `last` (UTC); ValueError, before any is built, when they would be more than
    MAX_WINDOWS (`what` names them in the message, e.g. "window ends to backfill")."""
    count = (last - first) // step + 1 if last >= first else 0
    if count > MAX_WINDOWS:
        raise OutOfRange(
            f"{count:,} {what} from {format_instant(first)} to {format_instant(last)} at a step of"
            f" {format_duration(step)}; at most {MAX_WINDOWS:,} at once: take the range in parts"
        )
    return [first + k * step for k in range(count)]


def window_ends(first: datetime, last: datetime, step: timedelta, what: str) -> list[datetime]:
    """The window ends first, first + step, ... up to last (UTC); ConfigError, before any is built, when they are more
    than MAX_WINDOWS (`what` names them)."""
    try:
        return aligned_instants(first, last, step, what)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
