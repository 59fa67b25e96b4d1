"""UTC instants and durations: parsing, formatting, alignment; the only reader of the wall clock."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^(\d{1,12})(ms|s|m|h|d|w)$")  # 12 digits: far beyond any use, far below overflow
_LONGEST = timedelta(days=3650)
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
    """Parse `30s`, `5m`, `1h`, `7d`, `2w` or `500ms` into a timedelta; ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration (use e.g. 30s, 5m, 1h, 7d)")
    count, unit = int(match.group(1)), _UNITS[match.group(2)]
    if count > _LONGEST // unit:
        raise ValueError(f"{text!r} is longer than {_LONGEST.days} days")
    return count * unit


def format_duration(value: timedelta) -> str:
    """The shortest exact `<n><unit>` spelling of a duration, in the units `parse_duration` reads."""
    for unit in ("h", "m", "s", "ms"):  # hours read better than days for windows: 24h, 168h
        size = _UNITS[unit]
        if value % size == timedelta(0):
            return f"{value // size}{unit}"
    raise ValueError(f"{value} is not a whole number of milliseconds")


def parse_instant(text: str) -> datetime:
    """Parse an ISO-8601 instant (naive means UTC) into a timezone-aware UTC datetime; ValueError otherwise."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_instant(value: datetime, *, milliseconds: bool = False) -> str:
    """ISO-8601 UTC with a `Z`, to the second (milliseconds when present, or always with `milliseconds`)."""
    value = value.astimezone(UTC)
    if value.microsecond or milliseconds:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def floor_instant(value: datetime, step: timedelta) -> datetime:
    """The latest multiple of `step` since the Unix epoch (UTC) that is not after `value`."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((value - epoch) // step) * step
