"""One row of a metric CSV file (`timestamp,metric,series,value`): its header's column order, and each row's fields
turned into a validated UTC sample or refused with the reason (csv_file reads the files, lines and fields)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from math import isfinite
from typing import NamedTuple, TypeVar

from atlas.errors import DataError

COLUMNS = ("timestamp", "metric", "series", "value")
# Each name is a keyword in Elasticsearch (Lucene refuses terms over 32766 bytes) and a label in Kibana; the `_id`
# is a 64-character digest whatever the names, so 512 bytes keeps names readable, not ids short.
MAX_NAME_BYTES = 512
# Elasticsearch's `date` takes 0001 to 9999 (written with 4 digits), but a metric at a year before 1000 is a typo,
# and the detection stage (pandas) could not place it on a time axis anyway: refused, naming the row.
MIN_YEAR, MAX_YEAR = 1000, 9999
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL, C1: NUL, newlines, ESC of ANSI sequences, CSI
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_SECONDS = re.compile(r"([+-]?)([0-9]+)(?:\.([0-9]*))?")
_EPOCH_CHARS = "+-.0123456789"
_SHOWN_CHARS = 60  # of a bad value quoted in a message, so an error stays one readable line
T = TypeVar("T")


class MetricSample(NamedTuple):
    """One value of one series of one metric at one instant (`timestamp` is timezone-aware UTC).

    A named tuple: imports make one per row, and a tuple is made in half the time of a frozen dataclass."""

    timestamp: datetime
    metric: str
    series: str
    value: float


class BadRow(ValueError):
    """A row that cannot become a sample; the message says why, without path and line."""


@functools.lru_cache(maxsize=65_536)  # imports repeat each timestamp once per series
def format_timestamp(ts: datetime) -> str:
    """ISO-8601 UTC with a `Z`, to the second (milliseconds when non-zero), e.g. `2024-05-01T10:00:00Z`.

    The year always has 4 digits: Elasticsearch's `date` refuses `999-...`, which is what strftime writes on Linux
    for a year the reader lets through, should MIN_YEAR ever go down."""
    ts = ts.astimezone(UTC)
    millis = f".{ts.microsecond // 1000:03d}" if ts.microsecond else ""
    return f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}T{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}{millis}Z"


def parse_timestamp(text: str) -> datetime:
    """Parse ISO-8601 (naive or date-only means UTC) or epoch seconds into an aware UTC datetime; else ValueError.

    Digits with an optional sign and decimals (`1714557600`, `1714557600.5`) are epoch seconds, never a
    basic-format ISO date (Python would read `20240501.10` as 2024-05-01T10:00).
    """
    text = text.strip()
    try:
        if text.isdigit() and text.isascii():  # the common epoch case, without the regex
            return datetime.fromtimestamp(int(text), UTC)
        epoch = None if text.strip(_EPOCH_CHARS) else _EPOCH_SECONDS.fullmatch(text)
        if epoch:
            sign, whole, fraction = epoch.groups()
            # Decimal digits, not float: float seconds would turn `.123` into 122999 microseconds.
            delta = timedelta(seconds=int(whole), microseconds=int((fraction or "")[:6].ljust(6, "0")))
            return _EPOCH - delta if sign == "-" else _EPOCH + delta
        value = datetime.fromisoformat(text)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    except (OverflowError, OSError) as exc:  # out of datetime range, or of the platform's time_t
        raise ValueError(f"{text!r} is out of range") from exc


def column_order(where: str, header: list[str]) -> tuple[int, int, int, int]:
    """The positions of timestamp, metric, series and value in the header; DataError naming a bad column."""
    columns = [name.strip() for name in header]
    expected = ",".join(COLUMNS)
    if not set(columns) & set(COLUMNS):
        raise DataError(f"{where}: first row {show_text(','.join(header))} is not a header (expected {expected})")
    problems = [f"unexpected column {show_text(name)}" for name in columns if name not in COLUMNS]
    problems += [f"duplicate column {name!r}" for name in COLUMNS if columns.count(name) > 1]
    problems += [f"missing column {name!r}" for name in COLUMNS if name not in columns]
    if problems:
        raise DataError(f"{where}: {'; '.join(problems)} (the header must be {expected})")
    ts, metric, series, value = (columns.index(name) for name in COLUMNS)
    return ts, metric, series, value


def parse_row(row: list[str], order: tuple[int, int, int, int]) -> MetricSample:
    if len(row) != len(COLUMNS):
        raise BadRow(f"expected {len(COLUMNS)} fields, got {len(row)}")
    ts_at, metric_at, series_at, value_at = order
    return MetricSample(
        _parse_time(row[ts_at]), _parse_metric(row[metric_at]), _parse_series(row[series_at]),
        _parse_value(row[value_at]),
    )  # fmt: skip


_CACHED_TEXT = 256  # characters: a field up to this long is parsed once while it stays among the recent ones
_CACHED_FIELDS = 4096  # texts remembered per kind of field: 4096 x 256 characters at most


def _remember_short(parse: Callable[[str], T]) -> Callable[[str], T]:
    """`parse`, remembering its results for recent short texts: rows repeat each timestamp once per series and each
    name on every row of its series. Memory stays bounded (a few MB) however many series a file has."""
    cached = functools.lru_cache(maxsize=_CACHED_FIELDS)(parse)

    @functools.wraps(parse)
    def parse_remembered(text: str) -> T:
        return cached(text) if len(text) <= _CACHED_TEXT else parse(text)

    return parse_remembered


@_remember_short
def _parse_time(text: str) -> datetime:
    try:
        timestamp = parse_timestamp(text)
    except ValueError:
        raise BadRow(f"timestamp {show_text(text)} is not ISO-8601 or epoch seconds") from None
    if not MIN_YEAR <= timestamp.year <= MAX_YEAR:
        raise BadRow(f"timestamp {show_text(text)} is outside the years {MIN_YEAR} to {MAX_YEAR} (UTC)")
    return timestamp


@_remember_short
def _parse_metric(text: str) -> str:
    return _parse_name("metric", text)


@_remember_short
def _parse_series(text: str) -> str:
    return _parse_name("series", text)


def _parse_name(field: str, text: str) -> str:
    name = text.strip()
    if not name:
        raise BadRow(f"{field} {text!r} is empty")
    if _CONTROL.search(name):  # shown escaped: a name must not move the cursor or recolour the terminal it lists in
        raise BadRow(f"{field} {show_text(name)} contains a control character")
    if len(name) * 4 > MAX_NAME_BYTES and len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise BadRow(f"{field} {show_text(name)} is {len(name.encode('utf-8'))} bytes, over {MAX_NAME_BYTES}")
    return name


def _parse_value(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        reason = "is empty" if not text.strip() else "is not a number"
        raise BadRow(f"value {show_text(text)} {reason}") from None
    if "_" in text:  # float() reads `1_000`; a CSV number has no digit separators
        raise BadRow(f"value {show_text(text)} is not a number")
    if not isfinite(value):
        raise BadRow(f"value {show_text(text)} is not a finite number")
    return value


def show_text(text: str) -> str:
    """`text` quoted and escaped (repr), cut to _SHOWN_CHARS characters."""
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return f"{text[:_SHOWN_CHARS]!r}... ({len(text)} characters)"
